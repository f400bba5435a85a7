"""Reading a disk that may have bad sectors: the read engine of device imaging (sources/device.py).

Large aligned reads with O_DIRECT (4 MiB at a time): buffered reads near a bad sector fail on a
whole readahead window (some 32 sectors), O_DIRECT reads only on the sectors that are bad. When a
read fails and a spool folder was given (capture), the rest of the disk is read as GNU ddrescue
does, past the failing area first (:mod:`evidencekit.sources.rescue`); otherwise (no room for the
spool; verify --against), the span is halved, and halved again, down to the logical sector. A
sector that still fails is tried ``retries`` more times (default 2). Only the sectors that never
read are stored as zeros, and the :class:`ReadMap` holds exactly which: a GNU ddrescue mapfile
(``+`` read, ``-`` bad sector, and while unfinished ``?`` never tried, ``*`` non-trimmed, ``/``
non-scraped).

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
import queue
import tempfile
import threading
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from evidencekit.errors import OutputError

if TYPE_CHECKING:
    from evidencekit.sources.rescue import ImageSpool

BLOCK = 4 << 20  # bytes per read: large enough to stream at the device's speed
DEFAULT_RETRIES = 2
# A device none of whose sectors has read yet is taken as not answering at all (dead, or
# gone before it could be probed) after this many sectors failed every try in a row: on real
# hardware each failed read can take seconds, and reading the rest sector by sector would not end.
DEAD_AFTER = 64
# ...unless one of this many sectors spread over the rest of it reads (the last one among them).
PROBES = 16
_GONE = {errno.ENODEV, errno.ENXIO, errno.ENOMEDIUM, errno.ESHUTDOWN, errno.ENOTCONN}

# GNU ddrescue's statuses: finished, bad sector, non-tried, non-trimmed, non-scraped (a failed
# block not yet read sector by sector from its edges, then in its middle)
READ, BAD, UNTRIED, NON_TRIMMED, NON_SCRAPED = "+", "-", "?", "*", "/"
NOT_READ = UNTRIED + NON_TRIMMED + NON_SCRAPED  # what a pass would still have read


class _Runs:
    """A page of the :class:`ReadMap`: the runs covering ``[start, end)`` of the image, adjacent
    runs of the same status merged (within the page), each run 9 bytes: its start in an
    ``array`` of 8-byte integers, its status in a ``bytearray``. The bytes and runs of each
    status are counted, as they change, in the map's totals (*bytes*, *runs*)."""

    def __init__(self, start: int, bytes_: dict[str, int], runs: dict[str, int]) -> None:
        self.start = start
        self._starts = array("Q")
        self._status = bytearray()
        self.end = start  # the first byte not yet in the page
        self._bytes = bytes_
        self._runs = runs
        self.slot: tuple[int, int] | None = None  # (offset, room) in the spill file
        self.held = True  # its runs are in memory (else in the spill file, at slot)
        self.changed = False  # since it was last written to the spill file
        self.length = 0  # runs, also while they are in the spill file
        self.edges = (0, 0)  # its first and last run's status, also while in the spill file

    def __len__(self) -> int:
        return self.length

    def _changed(self) -> None:
        self.changed = True
        self.length = len(self._status)
        self.edges = (self._status[0], self._status[-1]) if self._status else (0, 0)

    def dump(self) -> bytes:
        """Its runs, for the spill file (then no longer held in memory)."""
        data = self._starts.tobytes() + bytes(self._status)
        self._starts, self._status, self.held = array("Q"), bytearray(), False
        return data

    def load(self, data: bytes) -> None:
        self._starts = array("Q", data[:8 * self.length])
        self._status = bytearray(data[8 * self.length:])
        self.held, self.changed = True, False

    def split(self, bytes_: dict[str, int], runs: dict[str, int]) -> _Runs:
        """Move its second half of runs into a new page, which is returned (no run is cut, so
        the counts do not change)."""
        half = len(self._status) // 2
        rest = _Runs(self._starts[half], bytes_, runs)
        rest._starts, rest._status, rest.end = self._starts[half:], self._status[half:], self.end
        del self._starts[half:]
        del self._status[half:]
        self.end = rest.start
        self._changed()
        rest._changed()
        return rest

    def index_at(self, position: int) -> int:
        return max(bisect_right(self._starts, position) - 1, 0)

    def run_at(self, index: int) -> tuple[int, int, int]:
        """(start, end, status code) of run *index* (which exists)."""
        return self._starts[index], self._run_end(index), self._status[index]

    def add(self, position: int, size: int, status: str) -> None:
        """Append a run at the map's end (*position* must be :attr:`end`)."""
        if size <= 0:
            return
        assert position == self.end, (position, self.end)
        code = ord(status)
        if self._status and self._status[-1] == code:
            self.end += size
            self._count(status, size, 0)
            return
        self._starts.append(position)
        self._status.append(code)
        self.end += size
        self._count(status, size, 1)
        self._changed()

    def set(self, position: int, size: int, status: str) -> None:
        """Give *status* to ``[position, position + size)``, inside the map (what a later pass
        learned of a part it had skipped or failed on)."""
        end = min(position + size, self.end)
        if end <= position:
            return
        code = ord(status)
        first = bisect_right(self._starts, position) - 1
        last = bisect_right(self._starts, end - 1) - 1
        # what the range covered before, uncounted
        for index in range(first, last + 1):
            run_start = max(self._starts[index], position)
            run_end = min(self._run_end(index), end)
            self._count(chr(self._status[index]), -(run_end - run_start), 0)
        self._count(status, end - position, 0)
        # the new runs: the start of the first old one, the range, the rest of the last one
        pieces: list[tuple[int, int]] = []
        if self._starts[first] < position:
            pieces.append((self._starts[first], self._status[first]))
        pieces.append((position, code))
        if end < self._run_end(last):
            pieces.append((end, self._status[last]))
        # merged with the runs either side when of the same status
        low, high = first, last + 1
        if low > 0 and self._status[low - 1] == pieces[0][1]:
            low -= 1
            pieces[0] = (self._starts[low], pieces[0][1])
        if high < len(self._status) and self._status[high] == pieces[-1][1]:
            high += 1
        merged: list[tuple[int, int]] = []
        for start, piece in pieces:
            if merged and merged[-1][1] == piece:
                continue
            merged.append((start, piece))
        for index in range(low, high):
            self._runs[chr(self._status[index])] -= 1
        for _, piece in merged:
            self._runs[chr(piece)] = self._runs.get(chr(piece), 0) + 1
        self._starts[low:high] = array("Q", [start for start, _ in merged])
        self._status[low:high] = bytes(piece for _, piece in merged)
        self._changed()

    def _run_end(self, index: int) -> int:
        return self._starts[index + 1] if index + 1 < len(self._starts) else self.end

    def _count(self, status: str, size: int, runs: int) -> None:
        self._bytes[status] = self._bytes.get(status, 0) + size
        self._runs[status] = self._runs.get(status, 0) + runs


PAGE_RUNS = 1 << 16  # runs a page of the read map holds before it is split (at most twice)
PAGES_HELD = 4  # pages of the read map held in memory; the others wait in a temporary file


class ReadMap:
    """Runs of one status each covering the image from byte 0, adjacent runs of the same status
    merged: a GNU ddrescue map.

    Bounded in memory, whatever the device: the runs are kept in pages of at most
    2 x :data:`PAGE_RUNS` runs (9 bytes a run: its start as an 8-byte integer, its status as a
    byte), at most :data:`PAGES_HELD` of them in memory, the others in a temporary file without
    a name (positions and statuses only, no evidence), the least recently used written out
    first: a disk with millions of bad sectors no longer grows the process by 9 bytes each
    (the passes over the map go through it in order, a page at a time). Runs are merged across
    pages as they are read out, so the map is the same whatever its pages. The bytes and runs
    of each status are counted as they change, so that the progress bar's "N bad sectors" costs
    nothing on a disk with millions of them.
    """

    def __init__(self, page_runs: int = 0, held: int = 0) -> None:
        self._page_runs = page_runs or PAGE_RUNS
        self._held_most = max(held or PAGES_HELD, 2)
        self._bytes: dict[str, int] = {}
        self._pieces: dict[str, int] = {}  # runs within pages (a run across pages counts twice)
        self._pages = [_Runs(0, self._bytes, self._pieces)]
        self._page_starts = [0]
        self._held: dict[int, _Runs] = {id(self._pages[0]): self._pages[0]}  # oldest use first
        self._spill: IO[bytes] | None = None
        self._spill_end = 0
        self._recent = id(self._pages[0])  # the page last used (the last of _held)

    @property
    def end(self) -> int:
        """The first byte not yet in the map."""
        return self._pages[-1].end

    def __len__(self) -> int:
        return sum(self._pieces.values()) - sum(self._merged().values())

    # pages in memory and out of it

    def _hold(self, page: _Runs) -> _Runs:
        """*page*, its runs in memory (read back from the spill file if need be)."""
        key = id(page)
        if key == self._recent:
            return page
        self._recent = key
        if key in self._held:
            self._held[key] = self._held.pop(key)  # the most recently used, last
            return page
        if not page.held:
            assert self._spill is not None and page.slot is not None
            offset, _ = page.slot
            try:
                data = os.pread(self._spill.fileno(), 9 * page.length, offset)
            except OSError as exc:
                raise _spill_failed("read back", exc) from None
            if len(data) != 9 * page.length:
                raise OutputError("the temporary file holding the map of what was read was "
                                  "cut short while the capture was running",
                                  hint="nothing was saved; run the capture again")
            page.load(data)
        self._held[key] = page
        self._trim()
        return page

    def _trim(self) -> None:
        """Write out the least recently used pages beyond the number held (never the last
        two used: a page and the half just split from it)."""
        while len(self._held) > self._held_most:
            self._let_go(self._held.pop(next(iter(self._held))))

    def _let_go(self, page: _Runs) -> None:
        """Write *page*'s runs to the spill file (where they were, when they still fit)."""
        if not page.changed and page.slot is not None:
            page.dump()
            return
        data = page.dump()
        # (an OSError here must not reach the read engine, which takes OSError for the device's)
        try:
            if self._spill is None:
                self._spill = tempfile.TemporaryFile(prefix="evidencekit-map-")  # noqa: SIM115
            if page.slot is None or page.slot[1] < len(data):
                page.slot = (self._spill_end, 2 * len(data))  # room to grow before it moves
                self._spill_end += 2 * len(data)
            written = os.pwrite(self._spill.fileno(), data, page.slot[0])
        except OSError as exc:
            raise _spill_failed("written", exc) from None
        if written != len(data):  # (a disk filling up takes part of it without an error)
            raise _spill_failed("written", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        page.changed = False

    def _page_index(self, position: int) -> int:
        return max(bisect_right(self._page_starts, position) - 1, 0)

    def _merged(self) -> dict[str, int]:
        """Runs that continue across a page boundary, by status (counted twice in _pieces)."""
        merged: dict[str, int] = {}
        for before, after in zip(self._pages, self._pages[1:], strict=False):
            if before.length and after.length and before.edges[1] == after.edges[0]:
                status = chr(after.edges[0])
                merged[status] = merged.get(status, 0) + 1
        return merged

    # changes

    def add(self, position: int, size: int, status: str) -> None:
        """Append a run at the map's end (*position* must be :attr:`end`)."""
        if size <= 0:
            return
        last = self._hold(self._pages[-1])
        if len(last) >= self._page_runs and last.edges[1] != ord(status):
            last = self._hold(self._new_page(len(self._pages), last.end))
        last.add(position, size, status)

    def _new_page(self, index: int, start: int) -> _Runs:
        page = _Runs(start, self._bytes, self._pieces)
        self._pages.insert(index, page)
        self._page_starts.insert(index, start)
        return page

    def set(self, position: int, size: int, status: str) -> None:
        """Give *status* to ``[position, position + size)``, inside the map (what a later pass
        learned of a part it had skipped or failed on)."""
        end = min(position + size, self.end)
        index = self._page_index(position)
        while position < end:
            page = self._hold(self._pages[index])
            upto = min(end, page.end)
            page.set(position, upto - position, status)
            if len(page) > 2 * self._page_runs:
                rest = page.split(self._bytes, self._pieces)
                self._pages.insert(index + 1, rest)
                self._page_starts.insert(index + 1, rest.start)
                self._held[id(rest)] = rest
                self._trim()
                index += 1
            position = upto
            index += 1

    # reading it

    def runs(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, str]]:
        """(position, size, status) of every run, in order, clipped to ``[start, end)``."""
        end = self.end if end is None else min(end, self.end)
        pending: tuple[int, int, int] | None = None  # (start, end, code), maybe continued
        page_index = self._page_index(start)
        while page_index < len(self._pages) and self._page_starts[page_index] < end:
            page = self._pages[page_index]
            index = self._hold(page).index_at(start)
            while index < page.length:
                if not page.held:  # (the caller used other pages between two runs)
                    self._hold(page)
                run_start, run_end, code = page.run_at(index)
                if run_start >= end:
                    break
                run_start, run_end = max(run_start, start), min(run_end, end)
                if run_end > run_start:
                    if pending is not None and pending[2] == code and pending[1] == run_start:
                        pending = (pending[0], run_end, code)
                    else:
                        if pending is not None:
                            yield pending[0], pending[1] - pending[0], chr(pending[2])
                        pending = (run_start, run_end, code)
                index += 1
            page_index += 1
        if pending is not None:
            yield pending[0], pending[1] - pending[0], chr(pending[2])

    def ranges(self, status: str, start: int = 0, end: int | None = None
               ) -> Iterator[tuple[int, int]]:
        """(position, size) of every run with *status*."""
        return ((p, s) for p, s, st in self.runs(start, end) if st == status)

    def next_run(self, status: str, position: int) -> tuple[int, int] | None:
        """(position, size) of the first run with *status* at or after *position* (clipped to
        it), or None: a pass walks the map with it while changing it, holding no list."""
        code = ord(status)
        for page_index in range(self._page_index(position), len(self._pages)):
            page = self._hold(self._pages[page_index])
            index = page.index_at(position)
            while index < len(page):
                run_start, run_end, found = page.run_at(index)
                if found == code and run_end > position:
                    start = max(run_start, position)
                    return start, self._continued(page_index, run_end, code) - start
                index += 1
        return None

    def _continued(self, page_index: int, run_end: int, code: int) -> int:
        """Where a run ending at *run_end*, the end of page *page_index* or not, really ends:
        it may go on in the next pages."""
        while page_index + 1 < len(self._pages) and run_end == self._pages[page_index].end:
            page_index += 1
            page = self._pages[page_index]
            if not page.length or page.edges[0] != code:
                break
            run_end = self._hold(page).run_at(0)[1]
        return run_end

    def first(self, status: str) -> int | None:
        return next((p for p, _ in self.ranges(status)), None)

    def count(self, status: str) -> int:
        return self._bytes.get(status, 0)

    def range_count(self, status: str) -> int:
        return self._pieces.get(status, 0) - self._merged().get(status, 0)

    def overlap(self, statuses: str, start: int, end: int) -> int:
        """Bytes of ``[start, end)`` whose status is one of *statuses*."""
        return sum(s for _, s, st in self.runs(start, end) if st in statuses)

    def sectors(self, status: str, sector: int) -> int:
        """Sectors with *status*, a partial one counted whole: a device whose size is not a
        whole number of its logical sectors (a 4096-byte-sector loop device over a file of
        512-byte multiples) ends in one the kernel will not read. Every run starts on a sector,
        so only the image's last run may end in a partial one."""
        return -(-self.count(status) // sector)

    def mapfile(self, comments: list[str], phase: str | None = None,
                at: int | None = None) -> MapfileText:
        """The map as a GNU ddrescue mapfile (ddrescue's manual, "Mapfile structure"): comment
        lines, the status line (current position and what was being done: ``+`` finished,
        ``?`` copying, ``*`` trimming, ``/`` scraping, ``-`` retrying, as ddrescue leaves it when
        interrupted), then one line per run, positions and sizes in hex."""
        lines = [f"# {printable(line)}" for line in comments]
        lines.append("# current_pos  current_status  current_pass")
        unfinished = phase is not None and phase != READ
        position = self.end
        if unfinished:  # where it stopped, else the first byte a pass would still read
            position = at if at is not None else next(
                (p for p, _, st in self.runs() if st not in (READ, BAD)), self.end)
        lines.append(f"0x{position:08X}     {phase if unfinished else READ}               1")
        lines.append("#      pos        size  status")
        head = ("\n".join(lines) + "\n").encode("ascii")
        return MapfileText(head, self)


def _spill_failed(what: str, exc: OSError) -> OutputError:
    return OutputError(f"the temporary file holding the map of what was read (in "
                       f"{tempfile.gettempdir()}) could not be {what}: {exc.strerror or exc}",
                       hint="free some space there (or set TMPDIR to another folder); nothing "
                       "was saved")


class MapfileText:
    """A mapfile's text made as it is read, a line per run (a disk with millions of bad ranges
    makes a mapfile of tens of megabytes: it is never held whole)."""

    def __init__(self, head: bytes, runs: ReadMap) -> None:
        self._head = head
        self._map = runs
        self.size = len(head) + sum(len(_line(p, s, st)) for p, s, st in runs.runs())
        self._pending = memoryview(head)
        self._lines = runs.runs()

    def readinto(self, buffer: memoryview) -> int:
        while not self._pending:
            batch = b"".join(_line(p, s, st) for p, s, st in islice(self._lines, 4096))
            if not batch:
                return 0
            self._pending = memoryview(batch)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def changes(self) -> list[str]:
        return []

    def read(self) -> bytes:
        """All of it (for tests and small maps)."""
        return self._head + b"".join(_line(p, s, st) for p, s, st in self._map.runs())


def _line(position: int, size: int, status: str) -> bytes:
    return b"0x%08X  0x%08X  %s\n" % (position, size, status.encode("ascii"))


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
                 block: int = BLOCK, spool_folder: Path | None = None,
                 bundle_beside: bool = True, split_later: bool = False) -> None:
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
        # Where the rest of the image waits when a block fails (None: bad areas are split and
        # retried where they are found, as verify --against does)
        self._spool_folder = spool_folder
        self._bundle_beside = bundle_beside  # the bundle is written on the spool's disk too
        # A block that fails is left non-trimmed (zeros), not split, for the caller to come
        # back to once the rest is read (verify --against, by hash window)
        self._split_later = split_later
        self.spool: ImageSpool | None = None
        self.skip_ahead: dict[str, Any] = {"done": False, "from": None,
                                           "why": "no bad area" if spool_folder else
                                           "not asked for"}
        # what a pass was doing (ddrescue's current_status): "?" copying, then "*", "/", "-"
        # when reading past a bad area; "+" once done
        self.phase = UNTRIED
        self.tell: Callable[[str], None] | None = None  # progress while reading past bad areas
        self.stopping = False  # set by another thread: raise ReadingStopped at the next read
        self._reading: Blocks | None = None

    @property
    def block_size(self) -> int:
        """Bytes asked for in one read (before any split)."""
        return self._block

    def close(self) -> None:
        """Stop reading ahead and free the buffers; when a view of one is still held (reading
        was interrupted midway through a block), it is freed with the last view instead."""
        if self._reading is not None:
            self._reading.close()
        for buffer in (self._buffer, self._probe):
            with contextlib.suppress(BufferError):
                buffer.close()
        if self.spool is not None:
            self.spool.close()

    def blocks(self) -> Blocks:
        self._reading = Blocks(self)
        return self._reading

    def new_buffer(self) -> mmap.mmap:
        """Memory for one block, page-aligned as O_DIRECT needs."""
        return mmap.mmap(-1, self._block)

    def read_block(self, position: int, buffer: mmap.mmap | None = None) -> memoryview:
        """The next block from *position*: its bytes as stored (zeros where nothing read), a
        view of *buffer* (from :meth:`new_buffer`; by default the reader's own), to release
        before the buffer is read into again."""
        if self.stopping:
            raise ReadingStopped
        length = min(self._block, self.size - position)
        # With O_DIRECT every read is of whole sectors, so an image file's last partial sector
        # is asked for whole (the read stops at the file's end).
        whole = -(-length // self.sector) * self.sector if self.direct else length
        view = memoryview(self._buffer if buffer is None else buffer)[:whole]
        if self.spool is not None and position >= self.spool.start:
            self.spool.read(position, view[:length])
        elif self.vanished is not None:
            view[:] = bytes(whole)
            self._add(position, whole, UNTRIED)
        else:
            self._read_span(position, view, first=True)
        if position + length >= self.size and self.phase == UNTRIED and self.vanished is None:
            self.phase = READ
        block = view[:length]
        view.release()
        return block

    def _add(self, position: int, length: int, status: str) -> None:
        """Record a run, clipped to the image's end."""
        self.map.add(position, min(length, self.size - position), status)

    def _read_span(self, position: int, view: memoryview, first: bool = False) -> None:
        """Fill *view* from *position*: whole, or split where it fails (*first*: a block of the
        first pass, from which the rest of the disk may be read past the failure instead)."""
        length = len(view)
        if self.vanished is not None:  # gone while an earlier part of this block was read
            view[:] = bytes(length)
            self._add(position, length, UNTRIED)
            return
        try:
            got = self._pread(view, position)
        except OSError as exc:
            if self._stopped_answering(exc, position, view):
                return
            self.reads_failed += 1
            if first and self._read_past(position):
                assert self.spool is not None
                self.spool.read(position, view[:min(length, self.size - position)])
                return
            if first and self._split_later:
                view[:] = bytes(length)
                self._add(position, length, NON_TRIMMED)
                return
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

    def _read_past(self, position: int) -> bool:
        """Read the rest of the disk from *position* as ddrescue does (evidencekit.sources.rescue),
        into a spool, when there is room for it; whether that was done."""
        from evidencekit.sources.rescue import ImageSpool, Rescue, spool_room

        if self._spool_folder is None or self.skip_ahead["from"] is not None:
            return False  # (refused for want of room at the first bad area: not asked again)
        try:  # made first: whether it gives space back as it is read changes the room needed
            spool = ImageSpool(self._spool_folder, position, self.size)
        except OSError as exc:
            why: str | None = f"its folder {self._spool_folder} cannot be used: {exc.strerror}"
        else:
            why = spool_room(self._spool_folder, self.size - position,
                             bundle_beside=self._bundle_beside,
                             frees_as_read=spool.frees_as_read)
            if why is not None:
                spool.close()
        if why is not None:
            self.skip_ahead = {"done": False, "from": position, "why": why}
            return False
        self.spool = spool
        self.skip_ahead = {"done": True, "from": position, "why": None}
        Rescue(self, self.spool, self.tell).run()
        return True

    def attempt(self, position: int, length: int) -> memoryview | None:
        """One read of ``[position, position + length)`` (whole sectors), for the passes of
        evidencekit.sources.rescue: its bytes (a view of the reader's buffer, to release), or None
        when it failed; when the device is gone, :attr:`vanished` says so."""
        whole = -(-length // self.sector) * self.sector if self.direct else length
        view = memoryview(self._buffer)[:whole]
        try:
            got = self._pread(view, position)
        except OSError as exc:
            view.release()
            if self._gone(exc):
                self._went(position, f"the device stopped answering at byte {position} "
                           f"({exc.strerror or exc})")
                return None
            self.reads_failed += 1
            self._failed_in_a_row += 1
            if (self._good_sector is None and self._failed_in_a_row >= DEAD_AFTER
                    and not self._answers_further_on(position + length)):
                self._went(position, f"the device does not answer: none of the first "
                           f"{DEAD_AFTER} reads tried could be done, nor any of {PROBES} "
                           "sectors further on")
            return None
        if got < length and position + got < self.size:
            view.release()
            self._went(position + got, f"the device ended at byte {position + got}, before "
                       f"the {self.size} bytes it reported")
            return None
        if self._good_sector is None:
            self._good_sector = position
        self._last_good = position + (length - 1) // self.sector * self.sector
        self._failed_in_a_row = 0
        data = view[:length]
        view.release()
        return data

    def _went(self, position: int, how: str) -> None:
        if self.vanished is None:
            self.vanished = Vanished(position, how)

    def _retry_sector(self, position: int, view: memoryview) -> None:
        for _ in range(self.retries):
            try:
                if self._pread(view, position) == min(len(view), self.size - position):
                    self._add(position, len(view), READ)
                    self._failed_in_a_row = 0
                    return
            except OSError as exc:
                if self._stopped_answering(exc, position, view):
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
        if self.stopping:  # the capture was interrupted while a bad area was being read
            raise ReadingStopped
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

    def _stopped_answering(self, exc: OSError, position: int, view: memoryview) -> bool:
        """Whether the read of *view* at *position* failed because the device is gone (then
        it is recorded so, and *view* as untried) rather than because the span is bad."""
        if not self._gone(exc):
            return False
        self._vanish(position, view, f"the device stopped answering at byte {position} "
                     f"({exc.strerror or exc})")
        return True

    def _vanish(self, position: int, view: memoryview, how: str) -> None:
        view[:] = bytes(len(view))
        self._went(position, how)
        self._add(position, len(view), UNTRIED)


class ReadingStopped(Exception):
    """Reading was stopped from another thread (the capture was interrupted)."""


class Blocks:
    """The image as a stream for the sealing pipeline (``readinto``), block after block.

    The blocks are read on a thread of their own, up to :data:`AHEAD` blocks ahead: an O_DIRECT
    read has no read-ahead of its own, so without it the device would wait while a block is
    hashed and encrypted, and the pipeline while the next is read. ``on_block`` is called on
    that thread with each block as it is read (a view, to release when done with it), so what it
    does (the window hashes) overlaps the pipeline's work too."""

    AHEAD = 2

    def __init__(self, reader: SectorReader) -> None:
        self._reader = reader
        self._position = 0  # the next byte of the image to hand out
        self._block: memoryview | None = None  # the block being handed out, from _offset
        self._buffer: mmap.mmap | None = None  # the buffer it is in
        self._offset = 0
        self.on_block: Callable[[int, memoryview], None] | None = None
        self._free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self._ready: queue.Queue[tuple[mmap.mmap, memoryview] | BaseException | None] = \
            queue.Queue()
        self._thread: threading.Thread | None = None
        self._buffers: list[mmap.mmap] = []

    @property
    def exhausted(self) -> bool:
        """Every byte of the image was handed out."""
        return self._block is None and self._position >= self._reader.size

    def _start(self) -> None:
        self._buffers = [self._reader.new_buffer() for _ in range(self.AHEAD)]
        for buffer in self._buffers:
            self._free.put(buffer)
        self._thread = threading.Thread(target=self._read_ahead, daemon=True,
                                        name="evidencekit-device-read")
        self._thread.start()

    def _read_ahead(self) -> None:
        position = 0
        try:
            while position < self._reader.size:
                buffer = self._free.get()
                if self._reader.stopping:
                    return
                block = self._reader.read_block(position, buffer)
                if self.on_block is not None:
                    self.on_block(position, block[:])
                self._ready.put((buffer, block))
                position += len(block)
        except ReadingStopped:
            return
        except BaseException as exc:  # handed to the pipeline, in order
            self._ready.put(exc)
            return
        self._ready.put(None)

    def readinto(self, buffer: memoryview) -> int:
        if self._block is None:
            if self._position >= self._reader.size:
                return 0
            if self._thread is None:
                self._start()
            item = self._ready.get()
            if isinstance(item, BaseException):
                raise item
            assert item is not None
            self._buffer, self._block = item
            self._offset = 0
        count = min(len(buffer), len(self._block) - self._offset)
        buffer[:count] = self._block[self._offset:self._offset + count]
        self._offset += count
        if self._offset == len(self._block):
            self._position += len(self._block)
            self._block.release()
            self._block = None
            assert self._buffer is not None
            self._free.put(self._buffer)  # read into again
            self._buffer = None
        return count

    def close(self) -> None:
        """Stop the reading thread (also midway through a bad area: at its next read)."""
        if self._thread is None:
            return
        self._reader.stopping = True
        for buffer in self._buffers:
            self._free.put(buffer)  # a thread waiting for a buffer wakes up, and stops
        self._thread.join(timeout=30)
        while not self._ready.empty():
            item = self._ready.get_nowait()
            if isinstance(item, tuple):
                item[1].release()
        if self._block is not None:
            self._block.release()
            self._block = None
        if not self._thread.is_alive():
            for buffer in self._buffers:
                with contextlib.suppress(BufferError):
                    buffer.close()
        self._thread = None
