"""Birth (creation) time: ``st_birthtime`` where stat has it (macOS, BSD), ``statx`` on Linux.

Python's os.stat does not expose Linux's statx btime, so it is asked for directly through libc.
Where neither works (old kernels, file systems without it) the answer is None, recorded as null.
"""

from __future__ import annotations

import ctypes
import os
import sys

from evidencekit.libc import libc

_AT_SYMLINK_NOFOLLOW = 0x100
_STATX_BTIME = 0x800


class _Timestamp(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_int64), ("tv_nsec", ctypes.c_uint32),
                ("reserved", ctypes.c_int32)]


class _Statx(ctypes.Structure):
    # struct statx from linux/stat.h: 256 bytes in all.
    _fields_ = [
        ("stx_mask", ctypes.c_uint32), ("stx_blksize", ctypes.c_uint32),
        ("stx_attributes", ctypes.c_uint64), ("stx_nlink", ctypes.c_uint32),
        ("stx_uid", ctypes.c_uint32), ("stx_gid", ctypes.c_uint32),
        ("stx_mode", ctypes.c_uint16), ("spare0", ctypes.c_uint16),
        ("stx_ino", ctypes.c_uint64), ("stx_size", ctypes.c_uint64),
        ("stx_blocks", ctypes.c_uint64), ("stx_attributes_mask", ctypes.c_uint64),
        ("stx_atime", _Timestamp), ("stx_btime", _Timestamp), ("stx_ctime", _Timestamp),
        ("stx_mtime", _Timestamp), ("stx_rdev_major", ctypes.c_uint32),
        ("stx_rdev_minor", ctypes.c_uint32), ("stx_dev_major", ctypes.c_uint32),
        ("stx_dev_minor", ctypes.c_uint32), ("spare2", ctypes.c_uint64 * 14),
    ]


def _load_statx() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux"):
        return None
    try:
        c_library = libc()
        function = c_library.statx
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint,
                         ctypes.POINTER(_Statx)]
    function.restype = ctypes.c_int
    return function


_statx = _load_statx()


def birth_time_ns(dir_fd: int, name: bytes, info: os.stat_result) -> int | None:
    """Nanoseconds since the epoch of the entry's creation, without following a symlink."""
    birth = getattr(info, "st_birthtime_ns", None)
    if birth is not None:
        return int(birth)
    if _statx is None:
        return None
    result = _Statx()
    if _statx(dir_fd, name, _AT_SYMLINK_NOFOLLOW, _STATX_BTIME, ctypes.byref(result)) != 0:
        return None
    if not result.stx_mask & _STATX_BTIME:
        return None
    return int(result.stx_btime.tv_sec) * 1_000_000_000 + int(result.stx_btime.tv_nsec)
