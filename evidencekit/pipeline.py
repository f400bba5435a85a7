"""Overlap work on two cores: the caller hashes while a background thread encrypts and writes.

``BackgroundWriter`` takes buffers from the reading thread through a bounded queue (so memory stays
flat: at most ``depth`` buffers in flight) and writes them to the underlying stream on its own
thread. hashlib and cryptography release the GIL on large buffers, so SHA-256 of the plaintext on
one core and ChaCha20-Poly1305 + SHA-256 of the ciphertext on the other really run in parallel.
"""

from __future__ import annotations

import queue
import threading
from typing import Protocol


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


_STOP = object()


class BackgroundWriter:
    def __init__(self, out: Writable, depth: int = 16) -> None:
        self._out = out
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="evidencekit-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is None:
                try:
                    self._out.write(item)  # type: ignore[arg-type]
                except BaseException as exc:  # reported to the producer on its next call
                    self._error = exc

    def write(self, data: bytes) -> int:
        """Queue *data* (which must not be modified afterwards) for writing."""
        self._raise_if_failed()
        if data:
            self._queue.put(bytes(data) if not isinstance(data, bytes) else data)
        return len(data)

    def close(self) -> None:
        """Wait until everything queued is written; re-raise a failure from the writer thread."""
        self._queue.put(_STOP)
        self._thread.join()
        self._raise_if_failed()

    def abort(self) -> None:
        """Stop without waiting for the queued data to matter (used when capture fails)."""
        self._error = self._error or RuntimeError("aborted")
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._queue.put(_STOP)
        self._thread.join(timeout=10)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error
