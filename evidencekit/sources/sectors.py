"""Reading a disk that may have bad sectors: the read engine of device imaging (sources/device.py).

Large aligned reads with O_DIRECT (4 MiB at a time): buffered reads near a bad sector fail on a
whole readahead window (some 32 sectors), O_DIRECT reads only on the sectors that are bad. When a
read fails, the span is halved, and halved again, down to the logical sector; a sector that
still fails is tried ``retries`` more times (default 2). Only the sectors that never read are
stored as zeros, and the :class:`ReadMap` holds exactly which: a GNU ddrescue mapfile
(``+`` read, ``-`` bad sector, ``?`` never tried).

A device that disappears while it is read (a USB stick pulled out: ENODEV, ENXIO, ENOMEDIUM, a
short read, a failure where a sector that read well before no longer reads, or :data:`DEAD_AFTER`
sectors failing in a row before any read at all while none of :data:`PROBES` sectors further on
reads either) is not hammered
sector by sector: what is left is recorded as never tried and stored as zeros, and
:attr:`SectorReader.vanished` says where and how it went.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass, field

BLOCK = 4 << 20  # bytes per read: large enough to stream at the device's speed
DEFAULT_RETRIES = 2
# A device none of whose sectors has read yet is taken as not answering at all (dead, or
# gone before it could be probed) after this many sectors failed every try in a row: on real
# hardware each failed read can take seconds, and reading the rest sector by sector would not end.
DEAD_AFTER = 64
# ...unless one of this many sectors spread over the rest of it reads (the last one among them).
PROBES = 16
_GONE = {errno.ENODEV, errno.ENXIO, errno.ENOMEDIUM, errno.ESHUTDOWN, errno.ENOTCONN}

READ, BAD, UNTRIED = "+", "-", "?"


@dataclass
class ReadMap:
    """Runs of ``[position, size, status]`` covering the image from byte 0, in order."""

    runs: list[list[int | str]] = field(default_factory=list)

    def add(self, position: int, size: int, status: str) -> None:
        if size <= 0:
            return
        if self.runs:
            last = self.runs[-1]
            if last[2] == status and int(last[0]) + int(last[1]) == position:
                last[1] = int(last[1]) + size
                return
        self.runs.append([position, size, status])

    def ranges(self, status: str) -> list[tuple[int, int]]:
        """(position, size) of every run with *status*."""
        return [(int(p), int(s)) for p, s, st in self.runs if st == status]

    def count(self, status: str) -> int:
        return sum(size for _, size in self.ranges(status))

    def sectors(self, status: str, sector: int) -> int:
        """Sectors with *status*, a partial one counted whole: a device whose size is not a
        whole number of its logical sectors (a 4096-byte-sector loop device over a file of
        512-byte multiples) ends in one the kernel will not read."""
        return sum(-(-size // sector) for _, size in self.ranges(status))

    def mapfile(self, comments: list[str]) -> bytes:
        """The map as a GNU ddrescue mapfile (ddrescue's manual, "Mapfile structure"): comment
        lines, the status line (current position, ``+`` finished, or ``?`` still copying where
        the device stopped answering, as ddrescue leaves it when interrupted; pass 1), then one
        line per run, positions and sizes in hex."""
        lines = [f"# {printable(line)}" for line in comments]
        lines.append("# current_pos  current_status  current_pass")
        untried = self.ranges(UNTRIED)
        end = sum(int(run[1]) for run in self.runs)
        position, status = (untried[0][0], UNTRIED) if untried else (end, READ)
        lines.append(f"0x{position:08X}     {status}               1")
        lines.append("#      pos        size  status")
        lines += [f"0x{int(p):08X}  0x{int(s):08X}  {st}" for p, s, st in self.runs]
        return ("\n".join(lines) + "\n").encode("ascii")


def printable(text: str) -> str:
    """*text* in printable ASCII, anything else as a Python escape (``clé`` as ``cl\\xe9``, a
    line feed as ``\\n``): a comment line of a mapfile or windows document holds a device's or
    file's name, which may be anything, and must stay one line of ASCII for the tools that read
    them."""
    return "".join(c if " " <= c <= "~" and c != "\\" else
                   c.encode("unicode_escape", "backslashreplace").decode("ascii") for c in text)


@dataclass(frozen=True)
class Vanished:
    at: int  # the first byte not read
    how: str


class SectorReader:
    """Reads *size* bytes of *fd* (a block device or an image file) in order, block by block.

    *direct*: *fd* was opened with O_DIRECT (every read is then of whole logical sectors, at
    aligned offsets, into page-aligned memory). *still_there* says whether the device is still
    attached (e.g. its /sys/dev/block entry exists); None: nothing to ask."""

    def __init__(self, fd: int, size: int, sector: int, *, direct: bool,
                 retries: int = DEFAULT_RETRIES,
                 still_there: Callable[[], bool] | None = None,
                 block: int = BLOCK) -> None:
        self.fd = fd
        self.size = size
        self.sector = sector
        self.direct = direct
        self.retries = retries
        self.map = ReadMap()
        self.vanished: Vanished | None = None
        self.reads_failed = 0
        self._still_there = still_there
        self._block = max(block - block % sector, sector)
        self._buffer = mmap.mmap(-1, self._block)
        self._probe = mmap.mmap(-1, max(sector, mmap.PAGESIZE))
        self._good_sector: int | None = None  # a sector that read well, to tell "gone" apart
        self._last_good: int | None = None  # the last sector of the latest span that read
        self._failed_in_a_row = 0  # sectors that failed every try since the last good read
        self._probed = False  # whether the rest was probed for a sector that reads

    @property
    def block_size(self) -> int:
        """Bytes asked for in one read (before any split)."""
        return self._block

    def close(self) -> None:
        """Free the buffers; when a view of one is still held (reading was interrupted midway
        through a block), it is freed with the last view instead."""
        for buffer in (self._buffer, self._probe):
            with contextlib.suppress(BufferError):
                buffer.close()

    def blocks(self) -> Blocks:
        return Blocks(self)

    def read_block(self, position: int) -> memoryview:
        """The next block from *position*: its bytes as stored (zeros where nothing read), a
        view of the reader's buffer, to release before the next."""
        length = min(self._block, self.size - position)
        # With O_DIRECT every read is of whole sectors, so an image file's last partial sector
        # is asked for whole (the read stops at the file's end).
        whole = -(-length // self.sector) * self.sector if self.direct else length
        view = memoryview(self._buffer)[:whole]
        if self.vanished is not None:
            view[:] = bytes(whole)
            self._add(position, whole, UNTRIED)
        else:
            self._read_span(position, view)
        block = view[:length]
        view.release()
        return block

    def _add(self, position: int, length: int, status: str) -> None:
        """Record a run, clipped to the image's end."""
        self.map.add(position, min(length, self.size - position), status)

    def _read_span(self, position: int, view: memoryview) -> None:
        """Fill *view* from *position*: whole, or split where it fails."""
        length = len(view)
        if self.vanished is not None:  # gone while an earlier part of this block was read
            view[:] = bytes(length)
            self._add(position, length, UNTRIED)
            return
        try:
            got = self._pread(view, position)
        except OSError as exc:
            if self._gone(exc):
                self._vanish(position, view, f"the device stopped answering at byte {position} "
                             f"({exc.strerror or exc})")
                return
            self.reads_failed += 1
            if length <= self.sector:
                self._retry_sector(position, view)
                return
            half = (length // 2 + self.sector - 1) // self.sector * self.sector
            self._read_span(position, view[:half])
            self._read_span(position + half, view[half:])
            return
        if got < length and position + got < self.size:
            self._add(position, got, READ)
            self._vanish(position + got, view[got:], f"the device ended at byte "
                         f"{position + got}, before the {self.size} bytes it reported")
            return
        if self._good_sector is None:
            self._good_sector = position
        self._last_good = position + (length - 1) // self.sector * self.sector
        self._failed_in_a_row = 0
        self._add(position, length, READ)

    def _retry_sector(self, position: int, view: memoryview) -> None:
        for _ in range(self.retries):
            try:
                if self._pread(view, position) == min(len(view), self.size - position):
                    self._add(position, len(view), READ)
                    self._failed_in_a_row = 0
                    return
            except OSError as exc:
                if self._gone(exc):
                    self._vanish(position, view, f"the device stopped answering at byte "
                                 f"{position} ({exc.strerror or exc})")
                    return
                self.reads_failed += 1
        self._failed_in_a_row += 1
        if (self._good_sector is None and self._failed_in_a_row >= DEAD_AFTER
                and not self._answers_further_on(position + len(view))):
            self._vanish(position, view, f"the device does not answer: none of the first "
                         f"{DEAD_AFTER} sectors tried could be read, nor any of "
                         f"{PROBES} further on")
            return
        view[:] = bytes(len(view))
        self._add(position, len(view), BAD)

    def _answers_further_on(self, start: int) -> bool:
        """Whether any of :data:`PROBES` sectors spread from *start* to the device's end (the
        last one included) reads: a disk whose first sectors are worn out (its partition table,
        often) is not dead, and the rest of it must still be read. Asked once."""
        if self._probed:
            return False
        self._probed = True
        probe = memoryview(self._probe)[:self.sector]
        sectors = -(-(self.size - start) // self.sector)
        for number in range(1, PROBES + 1):
            at = start + (sectors * number // PROBES - 1) * self.sector
            if at < start:
                continue
            try:
                if self._pread(probe, at) > 0:
                    self._good_sector = at
                    return True
            except OSError:
                continue
        return False

    def _pread(self, view: memoryview, position: int) -> int:
        """Read all of *view* at *position* (short only at the device's end)."""
        done = 0
        while done < len(view):
            count = os.preadv(self.fd, [view[done:]], position + done)
            if count == 0:
                break
            done += count
        return done

    def _gone(self, exc: OSError) -> bool:
        """Whether the device itself is gone, rather than this span bad."""
        if exc.errno in _GONE:
            return True
        if self._still_there is not None and not self._still_there():
            return True
        if self._good_sector is None:
            return False
        # Sectors that read well no longer do: not a bad spot, the device. Two are asked, the
        # first and the latest that read: on a failing disk one sector that read once may
        # have weakened since, and taking that for a vanished disk leaves the rest unread.
        probe = memoryview(self._probe)[:self.sector]
        for position in dict.fromkeys((self._good_sector, self._last_good)):
            if position is None:
                continue
            try:
                os.preadv(self.fd, [probe], position)
            except OSError:
                continue
            return False
        return True

    def _vanish(self, position: int, view: memoryview, how: str) -> None:
        view[:] = bytes(len(view))
        if self.vanished is None:
            self.vanished = Vanished(position, how)
        self._add(position, len(view), UNTRIED)


class Blocks:
    """The image as a stream for the sealing pipeline (``readinto``), block after block."""

    def __init__(self, reader: SectorReader) -> None:
        self._reader = reader
        self._position = 0  # the next byte of the image to read from the device
        self._block: memoryview | None = None  # the block being handed out, from _offset
        self._offset = 0
        # Told of each block as it is read (a view of the reader's buffer, to release when
        # done with it), and asked to be done with it before the buffer is read into again.
        self.on_block: Callable[[int, memoryview], None] | None = None
        self.before_next: Callable[[], None] | None = None

    @property
    def exhausted(self) -> bool:
        """Every byte of the image was handed out."""
        return self._block is None and self._position >= self._reader.size

    def readinto(self, buffer: memoryview) -> int:
        if self._block is None:
            if self._position >= self._reader.size:
                return 0
            if self.before_next is not None:
                self.before_next()
            self._block = self._reader.read_block(self._position)
            self._offset = 0
            if self.on_block is not None:
                self.on_block(self._position, self._block[:])
            self._position += len(self._block)
        count = min(len(buffer), len(self._block) - self._offset)
        buffer[:count] = self._block[self._offset:self._offset + count]
        self._offset += count
        if self._offset == len(self._block):
            self._block.release()  # the reader's buffer is reused for the next block
            self._block = None
        return count
