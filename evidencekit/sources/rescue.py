"""Reading past a failing area first, and coming back to it later, as GNU ddrescue does.

When a block of a disk fails to read, :class:`evidencekit.sources.sectors.SectorReader` hands the
rest of the disk to :class:`Rescue`, which reads it in passes (docs/decisions/device-rescue.md):

1. **copying**: the rest in large blocks; a block that fails is marked non-trimmed (``*``) and
   the next bytes are skipped (left non-tried, ``?``), 64 KiB after the first failure, twice as
   many after each failure in a row, up to 1 % of the disk (at most 1 GiB); a block that reads
   brings the skip back to 64 KiB. Then the skipped parts, in blocks, without skipping.
2. **trimming**: each failed block is read from both its ends towards its middle, in spans that
   double while they read and halve when they fail, down to the first bad sector from either
   side (``-``); what lies between is non-scraped (``/``).
3. **scraping**: each non-scraped part, 64 KiB at a time, and sector by sector where that fails.
4. **retrying**: every bad sector, ``retries`` more times.

The good data of a disk with a large bad area is thus read before the disk is asked, thousands of
times, for sectors that do not answer (a dying disk may not last that long). The bundle stores the
image in order, in one pass, so what is read ahead waits in an :class:`ImageSpool`: a temporary
file with no name, encrypted (the evidence is never on disk in clear), read back in order once
the passes are over. The read map says at every moment what is still unread, in ddrescue's
statuses, and what the last pass was doing when the device stopped answering.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from evidencekit.errors import OutputError
from evidencekit.libc import punch_hole
from evidencekit.sources.sectors import BAD, NON_SCRAPED, NON_TRIMMED, READ, UNTRIED
from evidencekit.text import human_size

if TYPE_CHECKING:
    from evidencekit.sources.sectors import SectorReader

SKIP_FIRST = 64 << 10  # ddrescue's initial skip size
SKIP_MOST = 1 << 30
SCRAPE = 64 << 10  # bytes read at once while scraping, before reading sector by sector
SPOOL_BLOCK = 1 << 20
_NONCE = 12
_TAG = 16
_FREED = 2  # ImageSpool._written: a block read back, its space given back to the file system
MARGIN = 64 << 20  # free space left over after the spool and the rest of the bundle
# Spool bytes written between two looks at the free space (as capture's watch over the bundle,
# capture._RoomWatch): the room counted before the first bad area can be taken by someone else
# while the passes run, for hours on a failing disk.
LOOK_EVERY = 64 << 20


def spool_room(folder: Path, rest: int, bundle_beside: bool = True,
               frees_as_read: bool = False) -> str | None:
    """Why the *rest* of an image cannot wait in *folder*, or None when it can.

    The spool holds all of it (encrypted, 28 bytes a block more) once the passes are over. When
    the bundle is written on the same disk (*bundle_beside*; not with an S3 store), the bundle
    then grows by the rest of the image while the spool is read back: by as much at worst
    (random data does not compress; 1/1024 more for the format's own bytes). A spool that
    *frees_as_read* (ImageSpool.frees_as_read) gives back each block's space as the bundle
    takes it, so the two together never hold much more than the larger of them; one on a file
    system that cannot (FAT, exFAT) holds the whole rest until the end, beside the bundle's
    copy. Left free beside the bundle: what capture's own watch over it wants
    (capture.LEAST_FREE_BESIDE_BUNDLE: below that it stops the capture, keeping nothing)."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        return f"its folder {folder} cannot be used: {exc.strerror}"
    spool = rest + -(-rest // SPOOL_BLOCK) * (_NONCE + _TAG)
    if bundle_beside:
        from evidencekit.capture import LEAST_FREE_BESIDE_BUNDLE

        bundle = rest + rest // 1024
        both = max(spool, bundle) + SPOOL_BLOCK if frees_as_read else spool + bundle
        needed = both + max(MARGIN, LEAST_FREE_BESIDE_BUNDLE)
    else:
        needed = spool + MARGIN
    if needed > free:
        return (f"{needed} bytes would be needed in {folder} to read past bad areas first, "
                f"{free} are free")
    return None


class ImageSpool:
    """Bytes ``[start, size)`` of an image, written in any order and read back once in order
    (never written: zeros).

    Each block of :data:`SPOOL_BLOCK` bytes is sealed with ChaCha20-Poly1305 under a key that
    exists only in this process, with a fresh random nonce each time it is written (a block is
    rewritten when a later pass reads sectors of it) and its number as associated data: reading
    back checks that every block is the one written there, unchanged. The block a pass last
    wrote into is kept in memory until it writes into another, so that a pass reading a block
    piece by piece seals and writes it once, not once a piece."""

    def __init__(self, folder: Path, start: int, size: int,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        self.start = start
        self.size = size
        self._folder = folder
        self._random = random
        self._cipher = ChaCha20Poly1305(random(32))
        self._written = bytearray(-(-(size - start) // SPOOL_BLOCK))
        self._file: IO[bytes] = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 (close)
        self._open_index: int | None = None  # the block being written piece by piece
        self._open = bytearray()
        self._unlooked = LOOK_EVERY  # spool bytes written since the last look at the free space
        # Whether each block's space is given back once it is read back (spool_room counts on
        # it): asked of the file system on the empty file.
        self.frees_as_read = self._punch(0, SPOOL_BLOCK)
        # the file system's block, within one spool block (a hole reaching back further would
        # take bytes of a block not yet read back)
        self._grain = min(os.fstat(self._file.fileno()).st_blksize or 4096, SPOOL_BLOCK)

    def _length(self, index: int) -> int:
        return min(SPOOL_BLOCK, self.size - self.start - index * SPOOL_BLOCK)

    def write(self, position: int, data: memoryview) -> None:
        """Keep *data*, the image's bytes from *position* (clipped to the image's end)."""
        data = data[:max(0, self.size - position)]
        while data:
            index, offset = divmod(position - self.start, SPOOL_BLOCK)
            length = self._length(index)
            count = min(len(data), length - offset)
            if offset == 0 and count == length:
                if self._open_index == index:
                    self._open_index = None
                self._put(index, data[:count])
            else:
                if self._open_index != index:
                    self._seal_open()
                    self._open = bytearray(self._get(index))
                    self._open_index = index
                self._open[offset:offset + count] = data[:count]
            position += count
            data = data[count:]

    def _seal_open(self) -> None:
        if self._open_index is not None:
            self._put(self._open_index, memoryview(self._open))
            self._open_index = None

    def read(self, position: int, view: memoryview) -> None:
        """Fill *view* with the image's bytes from *position*. The spool is read back once, in
        order: a block read to its end is freed (:attr:`frees_as_read`)."""
        self._seal_open()
        done = 0
        while done < len(view):
            index, offset = divmod(position + done - self.start, SPOOL_BLOCK)
            block = self._get(index)
            count = min(len(view) - done, len(block) - offset)
            view[done:done + count] = block[offset:offset + count]
            done += count
            if offset + count == len(block) and self.frees_as_read and self._written[index]:
                self._free(index, len(block))

    def _free(self, index: int, length: int) -> None:
        """Give block *index* (*length* bytes of the image) back. Blocks do not start on the
        file system's own blocks: a hole of exactly this block's bytes leaves allocated the
        file system block it shares with the block before (4 KiB a MiB: 0.4 % of the image,
        beyond what spool_room counts), so the hole starts at that file system block when
        the block before is given back (or was never written: a hole already)."""
        start = end = index * (SPOOL_BLOCK + _NONCE + _TAG)
        end += length + _NONCE + _TAG
        if index and self._written[index - 1] != 1:
            start -= start % self._grain
        if index == len(self._written) - 1:  # the file's end: its last block whole
            end += -end % self._grain
        self._punch(start, end - start)
        self._written[index] = _FREED

    def _punch(self, offset: int, length: int) -> bool:
        """Give the space of these bytes of the spool back; whether that could be done (not
        being able to is no error: the space is then given back when the spool is closed)."""
        try:
            return punch_hole(self._file.fileno(), offset, length)
        except OSError:
            return False

    def _put(self, index: int, plain: memoryview) -> None:
        self._look_at_room(len(plain))
        nonce = self._random(_NONCE)
        sealed = self._cipher.encrypt(nonce, plain, index.to_bytes(8, "big"))
        try:  # (the nonce and the block written side by side: no copy of them joined)
            self._write_all([nonce, sealed], index * (SPOOL_BLOCK + _NONCE + _TAG))
        except OSError as exc:  # not the device's failure: the capture cannot go on
            raise OutputError(
                f"the encrypted temporary copy of the image in {self._folder} could not be "
                f"written: {exc.strerror}", hint="free some space there, or capture with the "
                "bundle on another disk; nothing was saved") from None
        self._written[index] = 1

    def _look_at_room(self, size: int) -> None:
        """Stop the capture, plainly, before the spool fills the disk it shares with the bundle
        (and with the system, which may need its last bytes); nothing is kept then."""
        self._unlooked += size
        if self._unlooked < LOOK_EVERY:
            return
        self._unlooked = 0
        try:
            free = shutil.disk_usage(self._folder).free
        except OSError:
            return  # unknown: a real disk-full says so (ENOSPC, below)
        if free < MARGIN:
            raise OutputError(
                f"the disk holding {self._folder} is full ({human_size(free)} free): the "
                "encrypted temporary copy of the image, kept while bad areas are read past, "
                "was stopped before it took the last of it",
                hint="free some space there, or capture with the bundle on another disk; "
                "nothing was saved")

    def _write_all(self, parts: list[bytes], offset: int) -> None:
        """Write all of *parts*, one after the other, at *offset*: a disk filling up in the
        middle of a block takes part of it without an error, and the error (ENOSPC) comes with
        the next write."""
        views = [memoryview(part) for part in parts]
        while views:
            written = os.pwritev(self._file.fileno(), views, offset)
            offset += written
            while views and written >= len(views[0]):
                written -= len(views[0])
                views.pop(0)
            if views:
                views[0] = views[0][written:]

    def _get(self, index: int) -> bytes:
        length = self._length(index)
        if not self._written[index]:
            return bytes(length)
        if self._written[index] == _FREED:  # read back twice: its bytes are gone, never zeros
            raise OutputError(f"block {index} of the encrypted temporary copy of the image in "
                              f"{self._folder} was asked for again after it was read back and "
                              "freed", hint="nothing was saved; run the capture again")
        try:
            stored = os.pread(self._file.fileno(), length + _NONCE + _TAG,
                              index * (SPOOL_BLOCK + _NONCE + _TAG))
        except OSError as exc:
            raise OutputError(
                f"the encrypted temporary copy of the image in {self._folder} could not be "
                f"read back: {exc.strerror}", hint="nothing was saved; run the capture again"
                ) from None
        try:  # (a view: slicing the bytes read would copy the block once more)
            return self._cipher.decrypt(stored[:_NONCE], memoryview(stored)[_NONCE:],
                                        index.to_bytes(8, "big"))
        except InvalidTag:
            raise OutputError(
                f"the encrypted temporary copy of the image in {self._folder} was changed or "
                f"cut short (at block {index}) while the capture was running",
                hint="nothing was saved; run the capture again") from None

    def close(self) -> None:
        self._file.close()


class Rescue:
    """The passes over ``[start, size)`` of *reader*'s device, into *spool*."""

    def __init__(self, reader: SectorReader, spool: ImageSpool,
                 tell: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._reader = reader
        self._spool = spool
        self._map = reader.map
        self._sector = reader.sector
        self._tell = tell
        self._clock = clock
        self._told = 0.0
        self._most_skip = max(SKIP_FIRST, min(SKIP_MOST, reader.size // 100
                                              // reader.sector * reader.sector))

    def run(self) -> None:
        reader = self._reader
        self._map.add(self._spool.start, reader.size - self._spool.start, UNTRIED)
        passes: list[tuple[str, Callable[[], None]]] = [
            (UNTRIED, partial(self._copy, skipping=True)),
            (UNTRIED, partial(self._copy, skipping=False)),
            (NON_TRIMMED, self._trim), (NON_SCRAPED, self._scrape), (BAD, self._retry)]
        for phase, work in passes:
            reader.phase = phase
            work()
            if reader.vanished is not None:
                return
        reader.phase = READ

    # --- the passes ---------------------------------------------------------------------------
    def _copy(self, skipping: bool) -> None:
        block = self._reader.block_size
        for start, size in self._areas(UNTRIED):
            position, end, skip = start, start + size, 0
            while position < end and self._reader.vanished is None:
                length = min(block, end - position)
                if self._read(position, length):
                    skip = 0
                elif self._reader.vanished is None:  # (a device gone: left non-tried)
                    self._map.set(position, length, NON_TRIMMED)
                    if skipping:
                        skip = min(skip * 2 or SKIP_FIRST, self._most_skip)
                        position += skip  # left non-tried, for the second copying pass
                position += length
                self._say(f"bad area at byte {start}: reading past it first")

    def _trim(self) -> None:
        for start, size in self._areas(NON_TRIMMED):
            low, high = start, start + size
            low = self._trim_from(low, high, forward=True)
            if self._reader.vanished is None and low < high:
                high = self._trim_from(low, high, forward=False)
            if self._reader.vanished is None and low < high:
                self._map.set(low, high - low, NON_SCRAPED)
            self._say("trimming the failed blocks")

    def _trim_from(self, low: int, high: int, forward: bool) -> int:
        """Read from one end of ``[low, high)`` towards the other, up to and including the first
        sector that fails (marked bad); the new *low* (forward) or *high* (backward). The spans
        start and end on sectors, but for the image's end, which may fall inside one."""
        sector = self._sector
        top = -(-high // sector) * sector
        span = sector
        while low < high and self._reader.vanished is None:
            if forward:
                position, length = low, min(span, high - low)
            else:
                position = max(low, top - span)
                length = high - position
            if self._read(position, length):
                span = min(span * 2, self._reader.block_size)
                if forward:
                    low += length
                else:
                    high = top = position
            elif self._reader.vanished is not None:
                break
            elif span > sector:
                span = max(sector, span // 2 // sector * sector)
            else:
                self._map.set(position, length, BAD)
                return low + length if forward else position
        return low if forward else high

    def _scrape(self) -> None:
        for start, size in self._areas(NON_SCRAPED):
            position, end = start, start + size
            while position < end and self._reader.vanished is None:
                length = min(SCRAPE, end - position)
                if not self._read(position, length):
                    self._sector_by_sector(position, length, mark_bad=True)
                position += length
                self._say("reading the failed areas sector by sector")

    def _retry(self) -> None:
        for _ in range(self._reader.retries):
            for start, size in self._areas(BAD):
                self._sector_by_sector(start, size, mark_bad=False)
                if self._reader.vanished is not None:
                    return
                self._say("trying the bad sectors again")

    def _sector_by_sector(self, start: int, size: int, mark_bad: bool) -> None:
        for position in range(start, start + size, self._sector):
            if self._reader.vanished is not None:
                return
            length = min(self._sector, start + size - position)
            if not self._read(position, length) and mark_bad and self._reader.vanished is None:
                self._map.set(position, length, BAD)

    def _areas(self, status: str) -> Iterator[tuple[int, int]]:
        """The runs with *status* from the spool's start, in order, found one at a time while
        the pass changes the map (a list of them could be millions long)."""
        position = self._spool.start
        while self._reader.vanished is None:
            found = self._map.next_run(status, position)
            if found is None:
                return
            yield found
            position = found[0] + found[1]

    # --- one read ---------------------------------------------------------------------------
    def _read(self, position: int, length: int) -> bool:
        """Read ``[position, position + length)`` into the spool and mark it read; False when it
        failed (or the device is gone: then :attr:`SectorReader.vanished` says so)."""
        data = self._reader.attempt(position, length)
        if data is None:
            return False
        self._spool.write(position, data)
        self._map.set(position, length, READ)
        data.release()
        return True

    def _say(self, doing: str) -> None:
        """What is being done, and how far, for the progress bar (at most once a second)."""
        now = self._clock()
        if self._tell is None or now - self._told < 1:
            return
        self._told = now
        # (nothing before the spool's start is left unread: reading past began at the first
        # failure)
        left = sum(self._map.count(status) for status in (UNTRIED, NON_TRIMMED, NON_SCRAPED))
        bad = self._map.sectors(BAD, self._sector)
        self._tell(f"{doing}; {left} bytes left to read, {bad} bad sector"
                   f"{'' if bad == 1 else 's'} so far")
