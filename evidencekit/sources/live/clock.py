"""Item 1: the system clock, how it is kept, and how long the system has been up.

The kernel's view of NTP discipline is read with ``adjtimex`` in read-only mode (``modes`` 0:
nothing is set, no privilege needed). Its ``offset`` is what the kernel is still correcting, its
``maxerror``/``esterror`` its error bounds: the offset a time daemon measured against its servers
is only in the daemon (``chronyc tracking``), which evidencekit does not run.
"""

from __future__ import annotations

import ctypes
import time
from typing import Any

import psutil

from evidencekit.clock import Clock, clock_source, rfc3339
from evidencekit.libc import libc
from evidencekit.sources.live.common import IS_LINUX, Document, Gaps, envelope

_STA_UNSYNC = 0x0040
_STA_NANO = 0x2000
_CLOCK_STATES = {0: "ok", 1: "leap second insert", 2: "leap second delete",
                 3: "leap second in progress", 4: "leap second has occurred", 5: "not synchronised"}


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):  # struct timex, <sys/timex.h> (Linux)
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long),
                ("status", ctypes.c_int), ("constant", ctypes.c_long),
                ("precision", ctypes.c_long), ("tolerance", ctypes.c_long), ("time", _Timeval),
                ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long),
                ("shift", ctypes.c_int), ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long),
                ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long),
                ("tai", ctypes.c_int), ("_reserved", ctypes.c_int * 11)]


def collect(clock: Clock) -> Document:
    started = clock()
    gaps = Gaps()
    monotonic = time.monotonic_ns()
    boot = gaps.attempt("boot_time", psutil.boot_time)
    body: dict[str, Any] = {
        "system_time": rfc3339(started),
        "clock_source": clock_source(),
        "timezone": {"name": time.tzname[time.localtime().tm_isdst > 0],
                     "utc_offset_seconds": -(time.altzone if time.localtime().tm_isdst > 0
                                             else time.timezone)},
        "monotonic_ns": monotonic,
        "boot_time": None if boot is None else rfc3339(int(boot * 1_000_000_000)),
        "uptime_seconds": None if boot is None else max(0, int(started / 1e9 - boot)),
        "ntp": _ntp(gaps) if IS_LINUX else None,
    }
    if not IS_LINUX:
        gaps.unavailable("ntp", "the kernel's NTP state is read on Linux only (adjtimex)")
    return envelope("clock", clock, started, gaps, body)


def _ntp(gaps: Gaps) -> dict[str, Any] | None:
    return gaps.attempt("ntp", _adjtimex)


def _adjtimex() -> dict[str, Any]:
    c_library = libc()
    timex = _Timex()
    timex.modes = 0  # read only: nothing about the clock is changed
    state = c_library.adjtimex(ctypes.byref(timex))
    if state < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"adjtimex failed (errno {error})")
    unit = 1 if timex.status & _STA_NANO else 1000  # offset in ns or µs
    return {"source": "adjtimex (read only)",
            "synchronised": not timex.status & _STA_UNSYNC,
            "state": _CLOCK_STATES.get(state, f"unknown ({state})"),
            "offset_ns": timex.offset * unit,
            "max_error_us": timex.maxerror, "estimated_error_us": timex.esterror,
            "status_flags": timex.status}
