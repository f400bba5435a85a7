"""``manifest.json`` as read from a bundle: checked entry by entry, never held whole once parsed.

The manifest has an entry per captured item (about 550 bytes each; 55 MB for 100,000 files), and
parsed into Python objects it takes four times that. `read` checks the canonical form and hands
each entry to a callback (verify checks it there and lets it go); the `Manifest` it returns keeps
the bytes, the fields other than ``entries``, and where each entry lies, so extract and the report
can walk the entries again, one at a time.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from typing import Any

from evidencekit import canonical


class Manifest:
    """A canonical manifest.json that has been read through once (see `read`)."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._what = what
        self._offsets = array("Q")
        self._lengths = array("Q")
        self.fields: dict[str, Any] = {}  # every top-level field but "entries"

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    def __len__(self) -> int:
        return len(self._offsets)

    def entry(self, number: int) -> Any:
        """Entry *number* (from 0), parsed again from the bytes."""
        return canonical.load_item(self._data, self._offsets[number], self._lengths[number],
                                   self._what)

    def entries(self) -> Iterator[Any]:
        """Every entry in manifest order, parsed one at a time (each may be any JSON value:
        `format.entries` says which are sane)."""
        for number in range(len(self)):
            yield self.entry(number)

    def _place(self, offset: int, length: int) -> None:
        self._offsets.append(offset)
        self._lengths.append(length)


def read(data: bytes, what: str, on_entry: Callable[[Any], None] | None = None) -> Manifest:
    """Check that *data* is canonical JSON and hand each of its entries to *on_entry*.

    Raises BundleError when it is not valid canonical JSON (nothing is returned half-read) or
    when ``entries`` is missing or not a list.
    """
    manifest = Manifest(data, what)

    def entry(item: Any, offset: int, length: int) -> None:
        manifest._place(offset, length)
        if on_entry is not None:
            on_entry(item)

    manifest.fields = canonical.load_streaming(data, what, "entries", entry)
    return manifest
