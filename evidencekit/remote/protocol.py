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

The sender flushes what it holds at least once a second, so a receiver that hears nothing for
a while (``capture --remote --stall-timeout``) knows the capture there is not moving. Moving
means more than a byte now and then: the payload crosses in age chunks of 64 KiB, so a sender
that brings less than STALL_LEAST bytes in a stall period is taken for a stalled one (a host
trickling one byte per period would otherwise be waited for without end). And a receiver may
set a deadline for the whole stream (``--remote-timeout``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import os
import select
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

from evidencekit.format.outer import BLOCK, HEADER_LEN, SeekBack
from evidencekit.fs.direct import DiskWriter

# Named by both ends, and by capture's options, which every capture imports (receive.py is heavy)
SERVE_COMMAND = "serve-capture"  # the remote evidencekit's hidden command (cli/capture_remote)
PROBLEM_PREFIX = "evidencekit-remote-problem "  # a line on its stderr: one item not fully read
STALL_TIMEOUT = 300  # seconds without a byte before a remote capture is given up (default)
# bytes that must arrive in each stall period: a quarter of an age chunk, so that a chunk cut
# across two periods by the pipe still counts as moving in both
STALL_LEAST = 16 << 10

MAGIC = b"evidencekit-remote 1\n"
_FRAME = struct.Struct(">cQI")
DATA = b"D"
END = b"E"
LARGEST_FRAME = 16 << 20  # what a sender never exceeds, so a receiver never holds more
_END_GRACE = 20  # seconds a sender may take to close the stream after its end frame
_FLUSH_EVERY = 1.0  # seconds a sender holds bytes at most (see the module's docstring)
PIPE_SIZE = 1 << 20  # at most /proc/sys/fs/pipe-max-size for an unprivileged user (1 MiB)


class FramedWriter(SeekBack):
    """The file a remote capture writes its bundle to (evidencekit.capture's ``stream_to``):
    every write becomes a frame on *out*, in order; a write after a seek back (the payload's
    header) is a frame at its own offset. Nothing is held back."""

    what = "a stream over SSH"

    def __init__(self, out: BinaryIO) -> None:
        super().__init__()
        self._out = out
        self._size = 0
        out.write(MAGIC)
        out.flush()
        self._flushed = time.monotonic()

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        for start in range(0, len(view), LARGEST_FRAME):
            piece = view[start:start + LARGEST_FRAME]
            self._out.write(_FRAME.pack(DATA, self._position, len(piece)))
            self._out.write(piece)
            self._position += len(piece)
        self._size = max(self._size, self._position)
        now = time.monotonic()
        if now - self._flushed >= _FLUSH_EVERY:  # a slow capture's bytes are not held back
            self._out.flush()
            self._flushed = now
        return len(view)

    def written(self) -> int:
        return self._size

    def flush(self) -> None:
        self._out.flush()

    def finish(self) -> None:
        """The end frame: what came before is the whole bundle."""
        self._out.write(_FRAME.pack(END, self._size, 0))
        self._out.flush()


class StreamBroken(Exception):
    """The stream ended early or does not follow the protocol (said in the message)."""


class Stalled(StreamBroken):
    """Nothing arrived for the time the receiver waits (the capture there is not moving)."""


class TimedOut(Stalled):
    """The stream did not end by the deadline set for it (``--remote-timeout``)."""


class Refused(StreamBroken):
    """The receiver stopped the stream itself (*advance* raised it: too large, no room left).
    Its message is said to people as it is."""


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


def receive(source: IO[bytes], out: BinaryIO, advance: Callable[[int], None],
            largest: int, stall: float | None = None, deadline: float | None = None) -> Received:
    """Write the framed bundle read from *source* into the file *out* (empty, seekable; when it
    is a plain file opened "w+b", its bytes go straight to disk: evidencekit.fs.direct); raise
    StreamBroken if it ends before its end frame, goes past *largest* bytes, or breaks the
    protocol; Stalled if less than STALL_LEAST bytes arrive in *stall* seconds; TimedOut if it
    has not ended by *deadline* (time.monotonic()); what *advance* raises (called with each new
    frame's byte count once it is written: progress, limits). The caller removes the file
    then."""
    disk = DiskWriter(out)
    try:
        received = _receive_into(Incoming(source, stall, least=STALL_LEAST, deadline=deadline),
                                 out, disk, advance, largest)
        disk.finish()
        out.flush()
        return received
    finally:
        disk.close()


def _receive_into(incoming: Incoming, out: BinaryIO, disk: DiskWriter,
                  advance: Callable[[int], None], largest: int) -> Received:
    magic = incoming.exactly(len(MAGIC))
    if magic != MAGIC:
        raise StreamBroken("it did not answer as evidencekit does")
    size = 0
    wire = len(MAGIC)
    head = b""
    hasher = _PayloadHash()
    went_back = False  # the one frame that goes back (payload.age's header) came
    while True:
        kind, offset, length = _FRAME.unpack(incoming.exactly(_FRAME.size))
        wire += _FRAME.size + length
        if kind == END:
            if offset != size or length:
                raise StreamBroken(f"its end names {offset} bytes, {size} arrived")
            _require_end(incoming)
            digest, payload_size = hasher.result()
            return Received(size, wire, digest, payload_size)
        # A frame that does not grow the bundle escapes --max-size, the free-space guard and
        # the stall timeout: only one may come (the header), and none empty.
        if kind != DATA or not length or length > LARGEST_FRAME or offset > size or \
                offset + length > largest or (offset < size and went_back):
            raise StreamBroken(f"a frame ({kind!r} at {offset}, {length} bytes) breaks the "
                               "protocol")
        data = incoming.frame(length)
        if offset == size:
            disk.write(data)
            if len(head) < HEADER_LEN:
                head = (head + bytes(data[:HEADER_LEN]))[:HEADER_LEN]
            hasher.appended(offset, data, head)
            size += length
            advance(length)
        elif offset + length <= size:
            went_back = True
            # the payload's header, sent again at the payload's end: what went straight to
            # disk is all there first (what follows, the seal and the log, is small)
            disk.finish()
            out.flush()
            write_at(out.fileno(), data, offset)
            hasher.patched(offset, data)
        else:
            raise StreamBroken(f"a frame at {offset} overlaps the end of what arrived")


class Incoming:
    """The stream's bytes, read exactly as asked (nothing read ahead), when *source* is a pipe
    (a test's bytes in memory never wait): at least *least* bytes must arrive in every *stall*
    seconds (counted from the start, then from each time *least* more bytes came, or from
    :meth:`restart`), and the whole stream by *deadline* (time.monotonic(); None: no limit).
    Also what the SFTP client (evidencekit.remote.sftp) reads its answers with."""

    def __init__(self, source: IO[bytes], stall: float | None, *, least: int = 1,
                 deadline: float | None = None, too_slow: str = "a moving capture sends at "
                 "least {least:,} in that time") -> None:
        self._source = source
        self._stall = stall
        self._least = least
        self._too_slow = too_slow  # why too few bytes is stalled, said to people
        self._deadline = deadline
        try:
            self._fd: int | None = source.fileno()
        except (io.UnsupportedOperation, AttributeError):
            self._fd = None
        if self._fd is not None:
            self._poll = select.poll()
            self._poll.register(self._fd, select.POLLIN)
        self._buffer = bytearray()  # frame(): one buffer for all frames, reused
        self.restart()

    def restart(self) -> None:
        """The stall period counted from now, with nothing arrived in it yet."""
        self._mark = time.monotonic()
        self._since_mark = 0

    def ready(self, seconds: float | None) -> bool:
        """Whether bytes (or the stream's end) came within *seconds* (None: waits on)."""
        if self._fd is None:
            return True
        if seconds is not None and seconds <= 0:
            return bool(self._poll.poll(0))
        return bool(self._poll.poll(None if seconds is None else max(1, int(seconds * 1000))))

    def frame(self, count: int) -> memoryview:
        """*count* bytes, in a buffer that the next call overwrites: a new one per frame,
        zeroed and faulted in page by page, cost more CPU than hashing the payload."""
        if len(self._buffer) < count:
            self._buffer = bytearray(count)
        view = memoryview(self._buffer)[:count]
        self._fill(view)
        return view

    def exactly(self, count: int, at_end_ok: bool = False) -> bytearray:
        data = bytearray(count)
        if not self._fill(memoryview(data), at_end_ok):
            return bytearray()
        return data

    def _fill(self, view: memoryview, at_end_ok: bool = False) -> bool:
        """*view* filled from the stream; False if it had ended before (with *at_end_ok*)."""
        count = len(view)
        got = 0
        while got < count:
            self._wait()
            read = os.readv(self._fd, [view[got:]]) if self._fd is not None \
                else self._source.readinto(view[got:])  # type: ignore[attr-defined]
            if not read:
                if at_end_ok and got == 0:
                    return False
                raise StreamBroken("it ended before the whole bundle arrived")
            got += read
            self._since_mark += read
            if self._since_mark >= self._least:
                self.restart()
        return True

    def _wait(self) -> None:
        """Until bytes can be read; Stalled or TimedOut when the time for them has passed."""
        if self._fd is None:
            return
        while not self._poll.poll(0):
            now = time.monotonic()
            if self._deadline is not None and now >= self._deadline:
                raise TimedOut("it did not end in the time given to it")
            if self._stall is not None and now >= self._mark + self._stall:
                raise self._stalled()
            ends = [t for t in (self._deadline, None if self._stall is None
                                else self._mark + self._stall) if t is not None]
            self.ready(min(ends) - now + 0.001 if ends else None)

    def _stalled(self) -> Stalled:
        if not self._since_mark:
            return Stalled(f"nothing arrived for {self._stall:g} seconds")
        return Stalled(f"only {self._since_mark:,} bytes arrived in {self._stall:g} seconds; "
                       + self._too_slow.format(least=self._least))


def _require_end(incoming: Incoming) -> None:
    """Nothing after the end frame, and the stream closed within _END_GRACE seconds (the
    remote evidencekit closes it after the end frame): a sender that keeps it open, writing
    nothing, would otherwise be waited for without end."""
    if not incoming.ready(_END_GRACE):
        raise StreamBroken(f"it was not closed within {_END_GRACE} seconds of its end")
    if incoming.exactly(1, at_end_ok=True):
        raise StreamBroken("more came after its end")


def _member_size(header: bytes) -> int | None:
    """The size an outer member header names (its pax record, evidencekit.format.outer)."""
    record = header[BLOCK:2 * BLOCK].rstrip(b"\0")
    try:
        return int(record.split(b" size=", 1)[1].rstrip(b"\n"))
    except (IndexError, ValueError):
        return None


def widen_pipe(fd: int) -> None:
    """The pipe *fd* made PIPE_SIZE deep (Linux; 64 KiB by default): the stream's two ends, on
    either host (ssh and the receiver here, the sender and sshd there), take turns less often.
    Anything else (a file, a socket, another system) is left as it is."""
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


def write_at(fd: int, data: memoryview, offset: int) -> None:
    """All of *data* at *offset*: pwrite may write less than asked (a disk that fills, a file
    size limit), and only an error that follows says why."""
    while data:
        written = os.pwrite(fd, data, offset)
        if not written:  # (never for a regular file; a loop without end otherwise)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        data = data[written:]
        offset += written
