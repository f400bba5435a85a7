"""Canonical JSON: the exact bytes evidencekit signs and hashes.

Keys sorted, no insignificant whitespace, UTF-8, no floats (integers and strings only), one
trailing newline so the files read well with `cat`. Readers re-encode what they parsed and compare
bytes, so a document that is valid JSON but not canonical is rejected: nothing unsigned can hide in
whitespace or key order.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from typing import Any

from evidencekit.errors import BundleError

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)  # what json.dumps would build anew at every call


def dumps(document: Any) -> bytes:
    """Encode *document* canonically (see module docstring)."""
    _reject_floats(document)
    return _ENCODER.encode(document).encode("utf-8") + b"\n"


def dumps_typed(document: dict[str, Any]) -> bytes:
    """`dumps` without its trailing newline and without the float check, for a document built
    from typed fields that mypy checks hold no float (a manifest entry, ManifestEntry.to_json:
    one per file, where the check cost a quarter of the encoding). A float there would still
    not pass unseen: every reader refuses it (`loads`, `load_streaming`)."""
    return _ENCODER.encode(document).encode("utf-8")


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


# --- Streaming: one huge array read item by item -------------------------------------------------
#
# manifest.json holds an entry per file: 55 MB of text for 100,000 files, and about four times that
# once parsed into Python objects. `load_streaming` checks the same canonical form as `loads`, piece
# by piece, through a window of decoded text, and hands the items of one array over one at a time,
# so what a reader keeps is its own choice. The canonical encoding of an object is the encodings of
# its keys and values joined by fixed punctuation, keys in strictly increasing order; checking each
# piece and the order is therefore the same as re-encoding the whole.

_WINDOW = 1 << 20
_DECODER = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_float)


def load_streaming(data: bytes, what: str, list_key: str,
                   on_item: Callable[[Any, int, int], None]) -> dict[str, Any]:
    """Parse the canonical JSON object *data*, handing each item of its array *list_key* to
    ``on_item(item, offset, length)`` (its place in *data*, for `load_item`) and keeping none.

    Returns every other field. Raises BundleError, as `loads` does, for anything `loads` refuses,
    and when *list_key* is missing or not an array.
    """
    text = _TextWindow(data, what)
    document: dict[str, Any] = {}
    text.expect("{")
    previous: str | None = None
    streamed = False
    while True:
        key = text.value()
        if not isinstance(key, str):
            raise BundleError(f"{what} is not valid JSON: an object key is not a string")
        if previous is not None and key <= previous:
            raise BundleError(f"{what} is not in canonical form (it was edited or not made by "
                              "evidencekit)")
        previous = key
        text.expect(":")
        if key == list_key and text.peek() != "[":
            text.value()  # valid JSON, but the wrong type: say so rather than "invalid"
            raise BundleError(f"{what}: {list_key!r} is not a list")
        if key == list_key:
            _stream_array(text, on_item)
            streamed = True
        else:
            document[key] = text.value()
        if text.expect(",}") == "}":
            break
    text.expect("\n")
    text.expect_end()
    if not streamed:
        raise BundleError(f"{what} has no field {list_key!r}")
    return document


def load_item(data: bytes, offset: int, length: int, what: str) -> Any:
    """An item `load_streaming` handed over, parsed again from its place in *data*."""
    try:
        return json.loads(data[offset:offset + length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BundleError(f"{what}: no item at byte {offset}") from None


def _stream_array(text: _TextWindow, on_item: Callable[[Any, int, int], None]) -> None:
    text.expect("[")
    if text.peek() == "]":
        text.expect("]")
        return
    while True:
        offset = text.byte_offset()
        item = text.value()
        on_item(item, offset, text.byte_offset() - offset)
        if text.expect(",]") == "]":
            return


class _TextWindow:
    """UTF-8 *data* decoded a window at a time, read as a sequence of canonical JSON pieces."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = memoryview(data)
        self._what = what
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._fed = 0           # bytes of data decoded so far
        self._text = ""         # the decoded window
        self._pos = 0           # where reading stands in the window
        self._consumed = 0      # bytes of data before the window's position

    def byte_offset(self) -> int:
        return self._consumed

    def peek(self) -> str:
        self._fill(1)
        return self._text[self._pos:self._pos + 1]

    def expect(self, choices: str) -> str:
        char = self.peek()
        if not char or char not in choices:
            raise BundleError(f"{self._what} is not valid JSON, or not in canonical form, at byte "
                              f"{self._consumed}")
        self._advance(1, 1)
        return char

    def expect_end(self) -> None:
        if self.peek():
            raise BundleError(f"{self._what} is not in canonical form (bytes follow its end)")

    def value(self) -> Any:
        """The next JSON value, which must be written exactly as `dumps` writes it."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self._text, self._pos)
            except ValueError as exc:  # JSONDecodeError, or a float refused by _no_float
                if self._grow():
                    continue  # the value may only be cut by the window's end
                raise BundleError(f"{self._what} is not valid JSON: {exc}") from None
            except RecursionError:
                raise BundleError(f"{self._what} is not valid JSON: nested too deeply") from None
            if end == len(self._text) and self._grow():
                continue  # a number or literal may go on in the next window
            break
        piece = self._text[self._pos:end]
        encoded = _canonical_piece(value, self._what)
        if encoded != piece:
            raise _not_canonical(encoded, self._what)
        # Equal to text decoded from UTF-8, so it has a UTF-8 form: encoded once, for the offset.
        self._advance(len(piece), len(piece.encode("utf-8")))
        return value

    def _advance(self, chars: int, octets: int) -> None:
        self._pos += chars
        self._consumed += octets

    def _fill(self, wanted: int) -> None:
        while len(self._text) - self._pos < wanted and self._grow():
            pass

    def _grow(self) -> bool:
        """Decode more of data into the window (at least as much again, so a long value that
        keeps being cut off costs linear time); False at the end of data."""
        if self._fed >= len(self._data):
            return False
        size = max(_WINDOW, len(self._text) - self._pos)
        chunk = self._data[self._fed:self._fed + size]
        self._fed += len(chunk)
        try:
            more = self._decoder.decode(chunk, final=self._fed >= len(self._data))
        except UnicodeDecodeError as exc:
            raise BundleError(f"{self._what} is not valid JSON: {exc}") from None
        self._text = self._text[self._pos:] + more
        self._pos = 0
        return True


def _canonical_piece(value: Any, what: str) -> str:
    try:  # floats never get here: the decoder refuses them
        return _ENCODER.encode(value)
    except RecursionError:
        raise BundleError(f"{what} is not valid JSON: nested too deeply") from None


def _not_canonical(encoded: str, what: str) -> BundleError:
    """Why a piece differs from its canonical encoding: an escaped unpaired surrogate ("\\ud800",
    which has no UTF-8 form) is named as such, anything else is an edit."""
    try:
        encoded.encode("utf-8")
    except UnicodeEncodeError:
        return BundleError(f"{what} is not valid JSON: it holds a string that is not Unicode "
                           "text (an unpaired surrogate)")
    return BundleError(f"{what} is not in canonical form (it was edited or not made by "
                       "evidencekit)")
