"""The C library, for the few calls Python's os module does not offer (statx, adjtimex)."""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library the interpreter itself runs on, with errno kept for ctypes.get_errno().

    Loaded through the process's own symbols (dlopen(NULL)) rather than
    ctypes.util.find_library, which runs `ldconfig -p` in a subprocess: a fork and an exec on
    every start of evidencekit, and a child that memory measurements counted twice."""
    return ctypes.CDLL(None, use_errno=True)
