"""What capture's options share with profiles, without the profiles themselves.

``--profile-os`` lists `OS_NAMES` and the remote size options take `parse_size`: capture's
options are built at every start, and importing the profiles package for them cost 12 ms
(expand, model, the YAML reader) in captures that use no profile (issue 27)."""

from __future__ import annotations

import re
from typing import Any

OS_NAMES = ("linux", "macos", "windows")

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*", re.IGNORECASE)
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(value: Any) -> int | None:
    """``1048576``, ``"500 MB"``, ``"2GiB"`` → bytes; None if *value* is not a size."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if not isinstance(value, str):
        return None
    match = _SIZE.fullmatch(value)
    if not match:
        return None
    unit = (match.group(2) or "B").upper()
    return int(float(match.group(1)) * _UNITS[unit])
