"""Canonical JSON: the exact bytes evidencekit signs and hashes.

Keys sorted, no insignificant whitespace, UTF-8, no floats (integers and strings only), one
trailing newline so the files read well with `cat`. Readers re-encode what they parsed and compare
bytes, so a document that is valid JSON but not canonical is rejected: nothing unsigned can hide in
whitespace or key order.
"""

from __future__ import annotations

import json
from typing import Any

from evidencekit.errors import BundleError


def dumps(document: Any) -> bytes:
    """Encode *document* canonically (see module docstring)."""
    _reject_floats(document)
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return text.encode("utf-8") + b"\n"


def loads(data: bytes, what: str) -> dict[str, Any]:
    """Parse canonical JSON naming *what* in errors; the bytes must re-encode identically."""
    try:
        document = json.loads(data.decode("utf-8"), parse_float=_no_float, parse_constant=_no_float)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:  # "[[[[…": nesting deeper than any document evidencekit writes
        raise BundleError(f"{what} is not valid JSON: nested too deeply") from None
    if not isinstance(document, dict):
        raise BundleError(f"{what} is not a JSON object")
    try:
        reencoded = dumps(document)
    except RecursionError:
        raise BundleError(f"{what} is not valid JSON: nested too deeply") from None
    except ValueError:  # "\ud800": an escaped unpaired surrogate has no UTF-8 form
        raise BundleError(f"{what} is not valid JSON: it holds a string that is not Unicode "
                          "text (an unpaired surrogate)") from None
    if reencoded != data:
        raise BundleError(f"{what} is not in canonical form (it was edited or not made by evidencekit)")
    return document


def _no_float(value: str) -> Any:
    raise ValueError(f"number {value} is not an integer")


_PLAIN = frozenset({str, int, bool, type(None)})


def _reject_floats(value: Any) -> None:
    # Without recursion: capture encodes one record per file, and calls are what cost.
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) in _PLAIN:  # the common case, decided without isinstance chains
            continue
        if isinstance(item, float):
            raise TypeError("canonical JSON holds no floats")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
