"""Writing a bundle's bulk once, straight to disk (O_DIRECT where it can be): the payload of a
capture (evidencekit.capture, on its writer thread), a bundle received from a remote capture
(evidencekit.remote.protocol). Either is fsynced before it gets its name, so its bytes need not
pass through the page cache.
"""

from __future__ import annotations

import ctypes
import errno
import io
import mmap
import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from typing import Any, BinaryIO

from evidencekit.fs.limits import on_fuse
from evidencekit.libc import libc


class DiskWriter:
    """Writes bytes to the end of the bundle file, in order; :meth:`finish` at the end (or
    before writing anywhere else in the file through *out*).

    On Linux, for a plain file, the payload goes to disk with O_DIRECT, through a second
    descriptor on the same file: the bundle is written once and fsynced at the end, so passing it
    through the page cache would only cost CPU (copying gigabytes into fresh cache pages is the
    most expensive step of a capture on some virtual machines) and push the evidence being read
    out of the cache. The bytes before the first 4 KiB boundary and after the last one go through
    the file object as usual. Where O_DIRECT is refused (tmpfs before Linux 6.6, some network
    file systems; at open, or at the first write), the payload is written normally and every
    32 MiB the kernel is asked to start writing it back
    (sync_file_range, which does not wait), so the final fsync finds little left to do.

    An O_DIRECT write waits for the disk: once the first has gone through, each full stage is
    written by a thread of its own while the next one fills (two stages), so that the writer
    thread's other work (the SHA-256 of the ciphertext) is not added to the disk's time.
    """

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._position = -1  # file offset of the next payload byte (-1: nothing written yet)
        self._head = 0  # bytes still to write normally before the direct part is aligned
        self._direct: int | None = None
        self._stage: mmap.mmap | None = None  # page-aligned, as O_DIRECT wants
        self._spare: mmap.mmap | None = None  # the other stage, while one is being written
        self._staged = 0
        self._direct_works = False  # a direct write went through (none falls back after it)
        self._writes: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None  # the stage being written
        self._written = 0  # normally written, for sync_file_range
        self._flushed = 0
        self._a_file = type(out) is io.BufferedRandom  # not a stream to a store (stream_to)

    def write(self, data: memoryview) -> None:
        if self._position < 0:
            self._start()
        if self._head:
            count = min(self._head, len(data))
            self._normal(data[:count])
            self._head -= count
            data = data[count:]
            if not self._head:
                self._out.flush()
        if self._direct is None:
            if data:
                self._normal(data)
            return
        while data:
            if self._direct is None:  # O_DIRECT refused at the first stage: the rest as usual
                self._normal(data)  # (staged, it was left there, never written)
                return
            assert self._stage is not None
            count = min(len(data), _STAGE - self._staged)
            self._stage[self._staged : self._staged + count] = data[:count]
            self._staged += count
            data = data[count:]
            if self._staged == _STAGE:
                self._full_stage()

    def _start(self) -> None:
        self._out.flush()
        self._position = self._out.tell()
        if not _O_DIRECT or type(self._out) is not io.BufferedRandom:
            return  # e.g. a wrapped file object in tests: everything goes through it
        if on_fuse(self._out.fileno()):
            return  # USB sticks through exfat-fuse or fusefat: see fs.on_fuse
        try:
            self._direct = os.open(f"/proc/self/fd/{self._out.fileno()}",
                                   os.O_WRONLY | os.O_CLOEXEC | _O_DIRECT)
        except OSError:
            return
        self._stage = mmap.mmap(-1, _STAGE)
        self._spare = mmap.mmap(-1, _STAGE)
        self._head = -self._position % _ALIGN

    def _full_stage(self) -> None:
        """Write a full stage: here the first time (O_DIRECT refused then falls back to normal
        writes), then on the writing thread, while the other stage fills."""
        if not self._direct_works:
            self._write_stage(_STAGE)
            self._direct_works = self._direct is not None
            return
        self._wait()
        assert self._stage is not None and self._spare is not None
        full, self._stage, self._spare = self._stage, self._spare, self._stage
        position, self._position, self._staged = self._position, self._position + _STAGE, 0
        if self._writes is None:
            self._writes = ThreadPoolExecutor(1, thread_name_prefix="evidencekit-direct")
        self._pending = self._writes.submit(self._write_all, full, position)

    def _write_all(self, stage: mmap.mmap, position: int) -> None:
        assert self._direct is not None
        with memoryview(stage) as view:
            done = 0
            while done < len(view):
                done += os.pwrite(self._direct, view[done:], position + done)

    def _wait(self) -> None:
        """Wait for the stage being written; raise its failure (a full disk: OSError)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _normal(self, data: memoryview) -> None:
        self._out.write(data)
        self._position += len(data)
        self._written += len(data)
        if (self._written - self._flushed >= _WRITEBACK_STEP and _sync_file_range is not None
                and self._a_file):
            self._out.flush()
            _sync_file_range(self._out.fileno(), self._position - (self._written - self._flushed),
                             self._written - self._flushed, _SYNC_FILE_RANGE_WRITE)  # a hint
            self._flushed = self._written

    def _write_stage(self, count: int) -> None:
        """Write the first *count* (aligned) staged bytes directly; keep the rest staged."""
        assert self._stage is not None and self._direct is not None
        with memoryview(self._stage) as stage:
            done = 0
            try:
                while done < count:
                    done += os.pwrite(self._direct, stage[done:count], self._position + done)
            except OSError as exc:
                if exc.errno != errno.EINVAL or done or self._position % _ALIGN:
                    raise
                self._fall_back()  # O_DIRECT refused at the first write: write normally
                return
            self._position += count
            rest = self._staged - count
            stage[:rest] = stage[count : self._staged]
            self._staged = rest

    def _fall_back(self) -> None:
        assert self._stage is not None and self._direct is not None
        os.close(self._direct)
        self._direct = None
        self._out.seek(self._position)
        staged, self._staged = self._stage[: self._staged], 0
        self._normal(memoryview(staged))

    def finish(self) -> None:
        """Write what is staged; leave the file object positioned after the payload."""
        self._wait()
        if self._direct is not None:
            aligned = self._staged - self._staged % _ALIGN
            if aligned:
                self._write_stage(aligned)
        if self._direct is not None:
            assert self._stage is not None
            self._out.seek(self._position)
            self._normal(memoryview(self._stage[: self._staged]))
            self._staged = 0
        self.close()

    def close(self) -> None:
        if self._writes is not None:  # (a failure was raised already, or is not the first)
            with suppress(OSError):
                self._wait()
            self._writes.shutdown()
            self._writes = None
        if self._direct is not None:
            os.close(self._direct)
            self._direct = None
        for stage in (self._stage, self._spare):
            if stage is not None:
                stage.close()
        self._stage = self._spare = None


def _load_sync_file_range() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = libc().sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_sync_file_range = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2
_WRITEBACK_STEP = 32 << 20
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_ALIGN = 4096  # O_DIRECT wants offsets, lengths and memory aligned to the device's block size
_STAGE = 1 << 20
