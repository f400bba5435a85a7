"""Time: UTC timestamps in RFC 3339 with nanoseconds, and where the host clock gets its time.

The clock is a parameter everywhere (``Clock``) so tests can fix it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

Clock = Callable[[], int]  # returns nanoseconds since the Unix epoch, UTC


def system_clock() -> int:
    return time.time_ns()


def rfc3339(ns: int) -> str:
    """Format nanoseconds since the epoch as ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`` (always 9 digits)."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    return f"{_seconds_text(seconds)}.{fraction:09d}Z"


@lru_cache(maxsize=4096)  # files of one folder share their times' seconds: capture asks often
def _seconds_text(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\.(\d{9})Z$")


def parse_rfc3339(text: str) -> int:
    """Inverse of :func:`rfc3339`; raises ValueError on any other form."""
    match = _RFC3339.match(text)
    if not match:
        raise ValueError(f"not a UTC timestamp with nanoseconds: {text!r}")
    return _parse_seconds(match.group(1)) * 1_000_000_000 + int(match.group(2))


@lru_cache(maxsize=4096)  # verify parses four times per manifest entry, mostly the same seconds
def _parse_seconds(text: str) -> int:
    # The fields sit at fixed places (the regular expression above); datetime() refuses
    # out-of-range values exactly as strptime did (month 13, 30 February, hour 24, second 60).
    base = dt.datetime(int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]),
                       int(text[14:16]), int(text[17:19]), tzinfo=dt.timezone.utc)
    return int(base.timestamp())


def clock_source() -> str:
    """Describe how the host clock is kept, as far as can be told without privileges.

    Recorded next to every timestamp because a court may ask how reliable the clock was.
    """
    if Path("/run/systemd/timesync/synchronized").exists():
        return "system clock, synchronised by systemd-timesyncd"
    for daemon, marker in (("chronyd", "/run/chrony"), ("ntpd", "/run/ntpd.pid")):
        if os.path.exists(marker):
            return f"system clock, {daemon} present (synchronisation not confirmed)"
    return "system clock, synchronisation unknown"
