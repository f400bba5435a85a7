"""The outer layer of a bundle: a POSIX (pax) tar with a fixed, canonical header per member.

Every member is stored as three 512-byte blocks of header followed by its data:

1. a pax extended header (typeflag ``x``) named ``PaxHeaders/<name>``,
2. one block holding exactly one pax record, ``<len> size=<decimal size>\\n``, zero-padded,
3. the ustar header of the member itself,

then the data, zero-padded to a multiple of 512. The archive ends with exactly two zero blocks.
Every header field is fixed by (name, size, mtime) — see docs/FORMAT.md — so a reader regenerates the
expected 1536 header bytes and compares: a changed byte in any header is detected even though
headers are not signed. Fixed-size headers also let the writer stream the payload and fill in its
size afterwards (seek back), because the header length does not depend on the size.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from evidencekit.errors import BundleError
from evidencekit.format.ustar import MAX_OCTAL, pax_record, ustar_block
from evidencekit.rawreader import RawReader

BLOCK = 512
HEADER_LEN = 3 * BLOCK
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)
MEMBER_MODE = 0o444  # evidence is read-only
MAX_NAME = 99
_PREADV = getattr(os, "preadv", None)  # not on every platform (macOS)


def member_header(name: str, size: int, mtime: int) -> bytes:
    """The canonical 1536 header bytes of an outer member."""
    raw_name = name.encode("ascii")
    if len(raw_name) > MAX_NAME - len(b"PaxHeaders/") or not raw_name:
        raise ValueError(f"outer member name too long: {name}")
    if mtime < 0 or size < 0:
        raise ValueError("negative size or mtime")
    record = pax_record("size", str(size))
    ustar_size = size if size < MAX_OCTAL[12] else 0  # the pax record holds it
    return (
        ustar_block(b"PaxHeaders/" + raw_name, b"x", len(record), MEMBER_MODE, mtime, 0, 0,
                    device_numbers=True)
        + record.ljust(BLOCK, b"\0")
        + ustar_block(raw_name, b"0", ustar_size, MEMBER_MODE, mtime, 0, 0, device_numbers=True)
    )


def padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


class OuterWriter:
    """Writes outer members to a seekable binary file."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def add_bytes(self, name: str, data: bytes, mtime: int) -> None:
        self._out.write(member_header(name, len(data), mtime))
        self._out.write(data)
        self._out.write(padding(len(data)))

    @contextmanager
    def add_stream(self, name: str, mtime: int, through: Any = None, hashing: bool = True
                   ) -> Iterator[HashingSink]:
        """Yield a sink for a member of unknown size; its header is completed on exit.

        With *through* (e.g. a BackgroundWriter writing to the same file), the sink writes the
        data there instead; the caller makes sure all of it has reached the file before the
        ``with`` block ends. Without *hashing* the sink only counts: the caller hashes the data
        elsewhere (capture does it on its disk thread, to spread the work over the cores).
        """
        start = self._out.tell()
        self._out.write(member_header(name, 0, mtime))
        sink = HashingSink(self._out if through is None else through, hashing)
        yield sink
        end = self._out.tell()
        self._out.seek(start)
        self._out.write(member_header(name, sink.size, mtime))
        self._out.seek(end)
        self._out.write(padding(sink.size))

    def finish(self) -> None:
        self._out.write(END_OF_ARCHIVE)


class SeekBack:
    """What :class:`OuterWriter` needs of an output that is not a local file (an upload, a
    stream to another machine): it takes the bytes in order and lets the writer seek back over
    what it has written (to complete a member's header). A subclass writes, flushes and says how
    far it has written (``written``); *what* names it in errors."""

    what = "this output"

    def __init__(self) -> None:
        self._position = 0

    def written(self) -> int:
        raise NotImplementedError

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        size = self.written()
        if whence == io.SEEK_END:
            offset += size
        elif whence == io.SEEK_CUR:
            offset += self._position
        if not 0 <= offset <= size:
            raise ValueError(f"cannot seek to {offset} in {self.what} of {size} bytes")
        self._position = offset
        return offset

    def tell(self) -> int:
        return self._position

    def fileno(self) -> int:
        raise io.UnsupportedOperation(f"{self.what} has no file descriptor")


class HashingSink(io.RawIOBase):
    """A write-only stream that counts and (with *hashing*) SHA-256-hashes what passes through
    to *out*."""

    def __init__(self, out: BinaryIO, hashing: bool = True) -> None:
        super().__init__()
        self._out = out
        self._hash = hashlib.sha256() if hashing else None
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self._hash is not None:
            self._hash.update(data)
        written = self._out.write(data)
        self.size += len(data)
        return written if written is not None else len(data)

    def flush(self) -> None:
        flush = getattr(self._out, "flush", None)
        if flush is not None:
            flush()

    def hexdigest(self) -> str:
        if self._hash is None:
            raise ValueError("this sink was made without hashing")
        return self._hash.hexdigest()


@dataclass(frozen=True)
class Member:
    name: str
    offset: int  # of the data
    size: int
    mtime: int
    header_offset: int


def read_members(f: BinaryIO) -> list[Member]:
    """Parse the outer tar strictly; raise BundleError naming the byte offset of the first defect.

    Reads only headers (data is skipped by seeking), so a huge declared size costs nothing.
    """
    file_size = f.seek(0, os.SEEK_END)
    members: list[Member] = []
    offset = 0
    while True:
        f.seek(offset)
        first = f.read(BLOCK)
        if len(first) < BLOCK:
            raise BundleError(f"bundle is truncated at byte {offset}: the tar ends without its "
                              "end-of-archive marker")
        if first == b"\0" * BLOCK:
            _check_end(f, offset, file_size)
            return members
        header = first + f.read(2 * BLOCK)
        member = parse_member(header, offset, file_size)
        members.append(member)
        offset = member.offset + member.size + len(padding(member.size))
        f.seek(member.offset + member.size)
        if f.read(len(padding(member.size))).strip(b"\0"):
            raise BundleError(f"non-zero padding after member {member.name} "
                              f"(byte {member.offset + member.size})")


def _check_end(f: BinaryIO, offset: int, file_size: int) -> None:
    f.seek(offset)
    tail = f.read(2 * BLOCK + 1)
    if tail[: 2 * BLOCK] != END_OF_ARCHIVE[: len(tail[: 2 * BLOCK])] or len(tail) < 2 * BLOCK:
        raise BundleError(f"bundle is truncated or damaged at byte {offset}: incomplete "
                          "end-of-archive marker")
    if offset + 2 * BLOCK != file_size:
        raise BundleError(f"{file_size - offset - 2 * BLOCK} unexpected bytes after the end of the "
                          f"archive (byte {offset + 2 * BLOCK})")


def parse_member(header: bytes, offset: int, file_size: int) -> Member:
    """The member whose header (HEADER_LEN bytes) lies at *offset* of a bundle of *file_size*
    bytes; BundleError when it is not an evidencekit member header."""
    if len(header) < HEADER_LEN:
        raise BundleError(f"bundle is truncated at byte {offset}: incomplete member header")
    name = header[2 * BLOCK : 2 * BLOCK + 100].split(b"\0", 1)[0]
    record = header[BLOCK : 2 * BLOCK].rstrip(b"\0")
    try:
        text = name.decode("ascii")
        size = int(record.split(b" size=", 1)[1].rstrip(b"\n"))
        mtime = int(header[2 * BLOCK + 136 : 2 * BLOCK + 147], 8)
        expected = member_header(text, size, mtime)
    except (UnicodeDecodeError, IndexError, ValueError):
        raise BundleError(f"damaged tar header at byte {offset}: not an evidencekit member "
                          "header") from None
    if header != expected:
        raise BundleError(f"damaged tar header for member {text!r} at byte "
                          f"{offset + _first_difference(header, expected)}")
    data_offset = offset + HEADER_LEN
    if data_offset + size > file_size:
        raise BundleError(f"bundle is truncated: member {text!r} declares {size} bytes but the file "
                          f"ends {file_size - data_offset} bytes into it")
    return Member(text, data_offset, size, mtime, offset)


def _first_difference(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), 0)


def read_member(f: BinaryIO, member: Member, limit: int) -> bytes:
    """Read a small member whole; refuse members larger than *limit* instead of allocating."""
    if member.size > limit:
        raise BundleError(f"member {member.name!r} is {member.size} bytes, more than the "
                          f"{limit} allowed for it")
    f.seek(member.offset)
    return f.read(member.size)


class MemberReader(RawReader):
    """A read-only stream over one member's data (e.g. the payload), hashing what it returns.

    Reads with ``pread`` at its own position, so other reads of the same file do not disturb it
    (a file without a descriptor, an object in a store, offers ``pread_into`` for the same).
    Wrap it in ``io.BufferedReader`` where line reads are needed (the age header).
    """

    def __init__(self, f: BinaryIO, member: Member,
                 on_read: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self._on_read = on_read
        self._pread_into: Callable[[memoryview, int], int] | None = getattr(
            f, "pread_into", None)
        self._fd = f.fileno() if self._pread_into is None else -1
        self._position = member.offset
        self._left = member.size
        self._hash = hashlib.sha256()

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), self._left)
        if wanted == 0:
            return 0
        target = view[:wanted]
        count: int
        if self._pread_into is not None:
            count = self._pread_into(target, self._position)
        elif _PREADV is not None:
            count = _PREADV(self._fd, [target], self._position)  # straight into the buffer
        else:
            data = os.pread(self._fd, wanted, self._position)
            count = len(data)
            target[:count] = data
        if not count:
            raise BundleError("the bundle file ended early while reading a member")
        self._position += count
        self._left -= count
        self._hash.update(target[:count])
        if self._on_read is not None:
            self._on_read(count)
        return count

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def open_member(f: BinaryIO, member: Member, on_read: Callable[[int], None] | None = None
                ) -> tuple[io.BufferedReader, MemberReader]:
    """A buffered stream over a member, and the raw reader that hashes everything read."""
    raw = MemberReader(f, member, on_read)
    return io.BufferedReader(raw, buffer_size=1 << 20), raw


def drain(stream: io.BufferedIOBase) -> None:
    """Read to the end (so the member's hash covers all of it)."""
    buffer = bytearray(1 << 20)  # one buffer, reused: no allocation per read
    while stream.readinto(buffer):
        pass
