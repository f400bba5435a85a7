"""Hold content of unknown length until its end, without ever writing it to disk in clear.

A tar header names a member's size before its content, so a stream whose length is not known in
advance (standard input) is read to its end before it is stored. The first ``memory_limit`` bytes
stay in memory; the rest goes to an unnamed temporary file, encrypted in blocks with
ChaCha20-Poly1305 under a random key that exists only in this process (the block's number is
its nonce: each is used once). Reading it back checks every block, and that none is missing, so
the spool gives back exactly what was written or raises. The file has no name (O_TMPFILE where
the system offers it, else unlinked at once): nothing is left behind, even after a crash.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from evidencekit.errors import OutputError

BLOCK = 1 << 20
MEMORY_LIMIT = 16 << 20
_TAG = 16


class Spool:
    """Bytes written in order, read back once with :meth:`blocks`; a context manager."""

    def __init__(self, folder: Path, memory_limit: int = MEMORY_LIMIT,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        self._folder = folder
        self._memory_limit = memory_limit
        self._random = random
        self._in_memory: list[bytes] = []
        self._tail = bytearray()  # less than a block, not yet placed
        self._file: IO[bytes] | None = None
        self._cipher: ChaCha20Poly1305 | None = None
        self._on_disk = 0  # blocks written to the file
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self._tail += data
        self.size += len(data)
        while len(self._tail) >= BLOCK:
            block = bytes(self._tail[:BLOCK])
            del self._tail[:BLOCK]
            self._place(block)

    def _place(self, block: bytes) -> None:
        if (len(self._in_memory) + 1) * BLOCK <= self._memory_limit:
            self._in_memory.append(block)
            return
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(dir=self._folder)  # noqa: SIM115 (see close)
                self._cipher = ChaCha20Poly1305(self._random(32))
            assert self._cipher is not None
            self._file.write(self._cipher.encrypt(_nonce(self._on_disk), block, None))
        except OSError as exc:
            # said here: the bundle's own name (a store's key, when it goes to one) is not
            # where this failed
            raise OutputError(
                f"cannot hold the stream in {self._folder} ({self.size} bytes so far, "
                f"encrypted): {exc.strerror or exc}; nothing was saved",
                hint="the stream waits there until its end: run the capture from a folder "
                "with room for it (twice its size when the bundle is written there too)"
                ) from None
        self._on_disk += 1

    def blocks(self) -> Iterator[bytes]:
        """Everything written, in order, in pieces of at most BLOCK bytes."""
        yield from self._in_memory
        if self._file is not None:
            assert self._cipher is not None
            self._file.flush()
            self._file.seek(0)
            for number in range(self._on_disk):
                sealed = self._file.read(BLOCK + _TAG)
                try:
                    yield self._cipher.decrypt(_nonce(number), sealed, None)
                except InvalidTag:
                    raise OutputError(
                        f"the encrypted temporary copy in {self._folder} was changed or cut "
                        f"short (at block {number}) while the capture was running",
                        hint="nothing was saved; run the capture again") from None
        if self._tail:
            yield bytes(self._tail)

    def close(self) -> None:
        self._in_memory.clear()
        self._tail = bytearray()
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def _nonce(number: int) -> bytes:
    return number.to_bytes(12, "big")
