"""The stream a remote evidencekit sends its bundle back in (``capture --remote``).

Capture writes a bundle in one pass except for one seek back: the outer header of payload.age
names the payload's size, known only at its end (evidencekit.format.outer). So the bytes go over
the SSH channel in frames, each saying where in the file it belongs:

    magic   b"evidencekit-remote 1\\n"
    frame   kind (1 byte) | offset (8 bytes, big-endian) | length (4 bytes) | data
            b"D": data at offset; b"E": the end, offset = the bundle's size, no data

Data frames come in file order; the only one that goes back is the header rewritten at the
payload's end, sent just then. So the receiver can hash the payload as it arrives. A stream
without its end frame (a dropped connection, a remote failure) is never taken for a bundle.
This is a transport between two evidencekit processes, not part of the bundle format.
"""

from __future__ import annotations

import hashlib
import io
import os
import select
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

from evidencekit.format.outer import BLOCK, HEADER_LEN

MAGIC = b"evidencekit-remote 1\n"
_FRAME = struct.Struct(">cQI")
DATA = b"D"
END = b"E"
_LARGEST_FRAME = 16 << 20  # what a sender never exceeds, so a receiver never holds more
_END_GRACE = 20  # seconds a sender may take to close the stream after its end frame


class FramedWriter:
    """The file a remote capture writes its bundle to (evidencekit.capture's ``stream_to``):
    every write becomes a frame on *out*, in order; a write after a seek back (the payload's
    header) is a frame at its own offset. Nothing is held back."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._position = 0
        self._size = 0
        out.write(MAGIC)

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        for start in range(0, len(view), _LARGEST_FRAME):
            piece = view[start:start + _LARGEST_FRAME]
            self._out.write(_FRAME.pack(DATA, self._position, len(piece)))
            self._out.write(piece)
            self._position += len(piece)
        self._size = max(self._size, self._position)
        return len(view)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            offset += self._size
        elif whence == io.SEEK_CUR:
            offset += self._position
        if not 0 <= offset <= self._size:
            raise ValueError(f"cannot seek to {offset} in a stream of {self._size} bytes")
        self._position = offset
        return offset

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        self._out.flush()

    def fileno(self) -> int:
        raise io.UnsupportedOperation("a stream over SSH has no file descriptor to capture")

    def finish(self) -> None:
        """The end frame: what came before is the whole bundle."""
        self._out.write(_FRAME.pack(END, self._size, 0))
        self._out.flush()


class StreamBroken(Exception):
    """The stream ended early or does not follow the protocol (said in the message)."""


@dataclass
class Received:
    size: int  # the bundle's bytes
    wire_bytes: int  # what came over the channel, frames included
    payload_sha256: str | None  # computed as the payload arrived; None if it could not be
    payload_size: int | None


class _PayloadHash:
    """SHA-256 of payload.age's data as it arrives: the second outer member, whose header is
    sent again (with its size) right after its last byte (FORMAT.md §2: README.txt, then
    payload.age)."""

    def __init__(self) -> None:
        self.header_at: int | None = None  # where payload.age's header starts
        self.digest = hashlib.sha256()
        self.hashed = 0
        self.size: int | None = None
        self.failed = False

    def appended(self, offset: int, data: memoryview, head: bytes) -> None:
        if self.header_at is None and len(head) >= HEADER_LEN:
            readme_size = _member_size(head)
            if readme_size is None:
                self.failed = True
                return
            self.header_at = HEADER_LEN + readme_size + (-readme_size % BLOCK)
        if self.header_at is None or self.size is not None or self.failed:
            return
        start = self.header_at + HEADER_LEN
        if offset + len(data) <= start:
            return
        skip = max(0, start - offset)
        self.digest.update(data[skip:])
        self.hashed += len(data) - skip

    def patched(self, offset: int, data: memoryview) -> None:
        if offset != self.header_at or len(data) < HEADER_LEN or self.size is not None:
            self.failed = True
            return
        self.size = _member_size(bytes(data[:HEADER_LEN]))
        if self.size != self.hashed:
            self.failed = True

    def result(self) -> tuple[str | None, int | None]:
        if self.failed or self.size is None:
            return None, None
        return self.digest.hexdigest(), self.size


def receive(source: IO[bytes], fd: int, advance: Callable[[int], None],
            largest: int) -> Received:
    """Write the framed bundle read from *source* into the file *fd* (empty, seekable); raise
    StreamBroken if it ends before its end frame, goes past *largest* bytes, or breaks the
    protocol. The caller removes the file then."""
    magic = _read_exactly(source, len(MAGIC))
    if magic != MAGIC:
        raise StreamBroken("it did not answer as evidencekit does")
    size = 0
    wire = len(MAGIC)
    head = b""
    hasher = _PayloadHash()
    while True:
        kind, offset, length = _FRAME.unpack(_read_exactly(source, _FRAME.size))
        wire += _FRAME.size + length
        if kind == END:
            if offset != size or length:
                raise StreamBroken(f"its end names {offset} bytes, {size} arrived")
            _require_end(source)
            digest, payload_size = hasher.result()
            return Received(size, wire, digest, payload_size)
        if kind != DATA or length > _LARGEST_FRAME or offset > size or offset + length > largest:
            raise StreamBroken(f"a frame ({kind!r} at {offset}, {length} bytes) breaks the "
                               "protocol")
        data = memoryview(_read_exactly(source, length))
        _write_at(fd, data, offset)
        if offset == size:
            if len(head) < HEADER_LEN:
                head = (head + bytes(data[:HEADER_LEN]))[:HEADER_LEN]
            hasher.appended(offset, data, head)
            size += length
            advance(length)
        elif offset + length <= size:
            hasher.patched(offset, data)
        else:
            raise StreamBroken(f"a frame at {offset} overlaps the end of what arrived")


def _require_end(source: IO[bytes]) -> None:
    """Nothing after the end frame, and the stream closed within _END_GRACE seconds (the
    remote evidencekit closes it after the end frame): a sender that keeps it open, writing
    nothing, would otherwise be waited for without end."""
    try:
        ended = bool(select.select([source.fileno()], [], [], _END_GRACE)[0])
    except (io.UnsupportedOperation, AttributeError):  # not a pipe (a test's bytes): no wait
        ended = True
    if not ended:
        raise StreamBroken(f"it was not closed within {_END_GRACE} seconds of its end")
    if _read_exactly(source, 1, at_end_ok=True):
        raise StreamBroken("more came after its end")


def _member_size(header: bytes) -> int | None:
    """The size an outer member header names (its pax record, evidencekit.format.outer)."""
    record = header[BLOCK:2 * BLOCK].rstrip(b"\0")
    try:
        return int(record.split(b" size=", 1)[1].rstrip(b"\n"))
    except (IndexError, ValueError):
        return None


def _write_at(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data = data[written:]
        offset += written


def _read_exactly(source: IO[bytes], count: int, at_end_ok: bool = False) -> bytes:
    parts = []
    left = count
    while left:
        block = source.read(left)
        if not block:
            if at_end_ok and left == count:
                return b""
            raise StreamBroken("it ended before the whole bundle arrived")
        parts.append(block)
        left -= len(block)
    return b"".join(parts)
