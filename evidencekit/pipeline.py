"""Overlap work on several cores: stages connected by bounded queues of reusable blocks.

Capture runs three stages: the caller reads and hashes the evidence, one ``BackgroundWriter``
thread encrypts (age), a second one hashes the ciphertext and writes it to disk. Verify runs
three too: a ``ReadAheadStream`` thread reads and hashes the ciphertext, a ``PieceReadAhead``
thread decrypts it, the caller parses the tar and hashes every file. hashlib and cryptography
release the GIL on large buffers, so the stages really run in parallel; the queues are bounded and
the blocks reused, so memory stays flat whatever the size of the evidence.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, Generic, Protocol, TypeVar, cast

from evidencekit.rawreader import RawReader

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


class BufferWritable(Protocol):
    def write(self, data: memoryview, /) -> object: ...


class SupportsReadinto(Protocol):
    def readinto(self, buffer: bytearray, /) -> int | None: ...


BLOCK_SIZE = 1 << 20


class BackgroundWriter:
    """Writes to *out* on a background thread, in order, in blocks of *block_size* bytes.

    Writes are copied into one of *depth* reusable blocks, so the caller may reuse its buffer at
    once and memory stays flat (about depth x block_size, whatever the file sizes). A full block is
    queued to the writer thread, which passes it to ``out.write`` and then hands the block back:
    a thousand small writes (tar headers, small files) cost one hand-off between threads, not a
    thousand. The caller can also read straight into a block: :meth:`reserve` gives a writable
    view of free space in the current block, :meth:`commit` says how much of it was filled.

    ``out.write`` must be done with the data when it returns (AgeWriter and files are). A failure
    on the writer thread is raised to the caller at its next call, or at :meth:`close`.
    """

    def __init__(self, out: BufferWritable, depth: int = 8, block_size: int = BLOCK_SIZE,
                 name: str = "evidencekit-writer") -> None:
        if depth < 1 or block_size < 1:
            raise ValueError("depth and block_size must be positive")
        self._out = out
        self._block_size = block_size
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        for _ in range(depth):
            self._free.put(bytearray(block_size))
        self._queue: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
        self._block: bytearray | None = None
        self._filled = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            block, size = item
            if self._error is None:
                try:
                    self._out.write(memoryview(block)[:size])
                except BaseException as exc:  # reported to the producer on its next call
                    self._error = exc
            self._free.put(block)

    def write(self, data: ReadableBuffer) -> int:
        """Copy *data* into the stream (queued for writing once a block is full)."""
        self._raise_if_failed()
        block = self._block
        if block is not None and type(data) is bytes:  # a tar header: once per small file
            end = self._filled + len(data)
            if end < self._block_size:
                block[self._filled : end] = data
                self._filled = end
                return len(data)
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        size = len(view)
        position = 0
        while position < size:
            block = self._block if self._block is not None else self._next_block()
            count = min(self._block_size - self._filled, size - position)
            block[self._filled : self._filled + count] = view[position : position + count]
            position += count
            self._filled += count
            if self._filled == self._block_size:
                self._send()
        return size

    def reserve(self, size: int) -> memoryview:
        """A writable view of up to *size* bytes (at least one) of free space; see commit()."""
        self._raise_if_failed()
        block = self._block if self._block is not None else self._next_block()
        end = min(self._block_size, self._filled + size)
        return memoryview(block)[self._filled : end]

    def commit(self, count: int) -> None:
        """Count *count* bytes written into the view from reserve() as written (in order)."""
        self._filled += count
        if self._filled >= self._block_size:
            self._send()

    def flush(self) -> None:
        """Hand what has been written so far to the writer thread (without waiting for it)."""
        if self._block is not None and self._filled:
            self._send()

    def _next_block(self) -> bytearray:
        while True:
            try:
                block = self._free.get(timeout=0.5)
                break
            except queue.Empty:  # every block is in flight: wait for the writer (or its end)
                self._raise_if_failed()
                if not self._thread.is_alive():
                    raise RuntimeError("the writer thread has stopped") from None
        self._block, self._filled = block, 0
        return block

    def _send(self) -> None:
        assert self._block is not None
        self._queue.put((self._block, self._filled))
        self._block, self._filled = None, 0

    def close(self) -> None:
        """Write what is left, wait until everything is written; re-raise a writer failure."""
        if self._block is not None and self._filled:
            self._send()
        self._queue.put(None)
        self._thread.join()
        self._raise_if_failed()

    def abort(self) -> None:
        """Stop without waiting for the queued data to matter (used when capture fails)."""
        self._error = self._error or RuntimeError("aborted")
        self._block = None
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error


T = TypeVar("T")


class ReadAhead(Generic[T]):
    """Runs *produce* on a background thread, up to *depth* results ahead of the consumer.

    ``produce()`` returns the next item, or None at the end. Items come out of :meth:`get` in
    order; an exception raised by ``produce`` comes out after every item produced before it.
    :meth:`close` stops the thread (also early, when the consumer gives up).
    """

    def __init__(self, produce: Callable[[], T | None], depth: int = 4,
                 name: str = "evidencekit-reader") -> None:
        self._produce = produce
        self._queue: queue.Queue[tuple[T | None, BaseException | None]] = queue.Queue(depth)
        self._stopping = False
        self._done = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping:
            try:
                item = self._produce()
            except BaseException as exc:  # handed to the consumer in order
                self._queue.put((None, exc))
                return
            self._queue.put((item, None))
            if item is None:
                return

    def get(self) -> T | None:
        """The next item; None at the end (and ever after)."""
        if self._done:
            return None
        item, error = self._queue.get()
        if error is not None or item is None:
            self._done = True
        if error is not None:
            raise error
        return item

    def close(self) -> None:
        """Stop the producer after its current item and wait for it."""
        self._stopping = True
        while self._thread.is_alive():
            try:  # make room, so that a producer blocked on a full queue can finish
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)
        try:  # what the producer queued last, before it saw it should stop
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._done = True


class ReadAheadStream(RawReader):
    """A raw stream read ahead on a background thread, in reusable blocks of *block_size*.

    The thread calls ``source.readinto`` (so whatever the source does per read, such as hashing
    the data, happens there); memory stays at about depth + 2 blocks.
    """

    def __init__(self, source: SupportsReadinto | BinaryIO, depth: int = 4,
                 block_size: int = BLOCK_SIZE) -> None:
        super().__init__()
        self._view = memoryview(b"")
        self._blocks = PieceReadAhead(cast(SupportsReadinto, source),  # BinaryIO lacks it in typing
                                      block_size, depth=depth, name="evidencekit-read-ahead")

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        view = self.read_view(len(target))
        target[: len(view)] = view
        return len(view)

    def read_view(self, size: int) -> memoryview:
        """Up to *size* bytes (fewer at the end of a block), lent without a copy: the view is
        valid until the next read. An empty view at the end."""
        if not self._view:
            self._view = memoryview(self._blocks.read_piece())
            if not self._view:
                return self._view
        view = self._view[:size]
        self._view = self._view[size:]
        return view

    def close(self) -> None:
        """Stop reading ahead (the source stays open, positioned after what was read)."""
        if not self.closed:
            self._blocks.close()
            self._view = memoryview(b"")
        super().close()


class PieceReadAhead:
    """Plaintext from *source* (e.g. an AgeReader), read ahead on a background thread.

    The thread fills reusable blocks of *block_size* with ``source.readinto`` (for an AgeReader:
    authenticated chunks, decrypted there) and passes each block's bytes to *tee* if given.
    :meth:`read_piece` returns them in order, as memoryviews valid until the next call (the block
    is then reused), b"" at the end, and raises the source's error where it occurred, after all
    the data before it. Large blocks mean few hand-offs between threads.
    """

    def __init__(self, source: SupportsReadinto, block_size: int = BLOCK_SIZE,
                 tee: Writable | None = None, depth: int = 4,
                 name: str = "evidencekit-decrypt") -> None:
        self._readinto = source.readinto
        self._block_size = block_size
        self._tee = tee
        self._spare: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._lent: bytearray | None = None
        self._ahead = ReadAhead(self._fill, depth, name)

    def _fill(self) -> tuple[bytearray, int] | None:
        try:
            block = self._spare.get_nowait()
        except queue.Empty:
            block = bytearray(self._block_size)
        count = self._readinto(block) or 0  # a failure after good data comes on the next call
        if not count:
            return None
        if self._tee is not None:
            self._tee.write(bytes(block[:count]))
        return block, count

    def read_piece(self) -> memoryview | bytes:
        if self._lent is not None:
            self._spare.put(self._lent)
            self._lent = None
        item = self._ahead.get()
        if item is None:
            return b""
        self._lent, count = item
        return memoryview(self._lent)[:count]

    def close(self) -> None:
        """Stop reading ahead and let the blocks go (verify checks the manifest after the
        payload's last block, with its plaintext reader still in scope: the 10 MB or so of
        blocks would otherwise stay held at its peak). A view lent out keeps its own block."""
        self._ahead.close()
        self._lent = None
        self._spare = queue.SimpleQueue()
