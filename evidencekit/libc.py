"""The C library, for the few calls Python's os module does not offer (statx, adjtimex,
fallocate's hole punching)."""

from __future__ import annotations

import ctypes
import errno
import functools
import os


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library the interpreter itself runs on, with errno kept for ctypes.get_errno().

    Loaded through the process's own symbols (dlopen(NULL)) rather than
    ctypes.util.find_library, which runs `ldconfig -p` in a subprocess: a fork and an exec on
    every start of evidencekit, and a child that memory measurements counted twice."""
    return ctypes.CDLL(None, use_errno=True)


_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_UNSUPPORTED = (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


def punch_hole(fd: int, offset: int, length: int) -> bool:
    """Give back to the file system the space of ``[offset, offset + length)`` of *fd*'s file
    (it then reads as zeros; the file keeps its size): Linux's fallocate(2) with
    FALLOC_FL_PUNCH_HOLE. False where the file system (FAT, exFAT, some network ones) or the
    system cannot; OSError for another failure."""
    call = getattr(libc(), "fallocate64", None) or getattr(libc(), "fallocate", None)
    if call is None:
        return False
    call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    call.restype = ctypes.c_int
    if call(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0:
        return True
    number = ctypes.get_errno()
    if number in _UNSUPPORTED:
        return False
    raise OSError(number, os.strerror(number))
