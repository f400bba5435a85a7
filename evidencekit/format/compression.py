"""Format version 4: the payload tar compressed with zstd (RFC 8878) before age encrypts it.

``payload.age`` = age(zstd(tar)) when the seal says ``payload_compression: "zstd"``
(docs/FORMAT.md §4.1, docs/decisions/device-image-size.md); by hand, ``age -d | zstd -d | tar -x``.
Both directions stream with constant memory: the compressor is given the tar in blocks, the
decompressor returns at most what its caller asks for (a frame of a few kilobytes can hold
terabytes of zeros) and never more in all than the limit it was given.

The binding is the standard library's ``compression.zstd`` (Python 3.14) or, before it, its
backport ``backports.zstd`` (the same code and API; docs/decisions/dependencies.md).
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

from evidencekit.errors import BundleError
from evidencekit.text import exact_size

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

ZSTD = "zstd"  # the only value of the seal's payload_compression
# zstd's level 1 (`zstd -1`): a 64 GiB stick of zeros becomes kilobytes, and blocks that do not
# compress (random data, encrypted volumes) are detected and stored as they are at several GB/s,
# well above SHA-256, so imaging stays at hashing speed (docs/performance.md).
LEVEL = 1
READ_SIZE = 1 << 18  # compressed bytes taken from the decrypted stream at a time


def _binding() -> ModuleType:
    """Imported on first use: only device captures and version 4 bundles need it."""
    if sys.version_info >= (3, 14):
        from compression import zstd
    else:
        from backports import zstd
    return zstd


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class Compressing:
    """Compresses everything written into one zstd frame written to *out*; :meth:`close` ends
    the frame (*out* stays open). Memory: zstd's window at this level, whatever the size."""

    def __init__(self, out: Writable, level: int = LEVEL) -> None:
        self._zstd = _binding()
        self._out = out
        self._compressor = self._zstd.ZstdCompressor(level=level)

    def write(self, data: ReadableBuffer) -> int:
        view = memoryview(data)
        compressed = self._compressor.compress(view)
        if compressed:
            self._out.write(compressed)
        return len(view)

    def close(self) -> None:
        self._out.write(self._compressor.flush(self._zstd.ZstdCompressor.FLUSH_FRAME))


class Decompressing:
    """The plaintext of the zstd stream read from *source*, through :meth:`readinto`.

    It reads what ``zstd -d`` reads, no more: one frame or several in a row (skippable frames
    are skipped); anything else, a frame cut short at the end, or more than *limit* bytes of
    output is damage (BundleError), said before the excess is handed on. Each call returns at
    most the caller's buffer, so memory stays flat whatever a frame expands to.
    """

    def __init__(self, source: Readable, limit: int) -> None:
        self._zstd = _binding()
        self._source = source
        self._limit = limit
        self._produced = 0
        self._frame = self._zstd.ZstdDecompressor()
        self._in_frame = False  # input given to the current frame, whose end was not seen yet

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._next(len(view))
        self._produced += len(data)
        if self._produced > self._limit:
            raise BundleError(f"the payload decompresses to more than the {exact_size(self._limit)}"
                              " that its seal allows (a decompression bomb, or a damaged bundle);"
                              " it was not read further")
        view[: len(data)] = data
        return len(data)

    def _next(self, size: int) -> bytes:
        """Up to *size* bytes of output; b"" only at the end of the input."""
        while True:
            if self._frame.eof:  # a frame ended: what follows must be another one
                rest = self._frame.unused_data
                self._frame = self._zstd.ZstdDecompressor()
                self._in_frame = False
                if rest:
                    data = self._decompress(rest, size)
                    if data:
                        return data
                continue
            if not self._frame.needs_input:  # output left from the input already given
                data = self._decompress(b"", size)
                if data:
                    return data
                continue
            compressed = self._source.read(READ_SIZE)
            if not compressed:
                if self._in_frame:
                    raise BundleError("the compressed payload ends in the middle of a zstd frame "
                                      "(it was cut short before it was encrypted)")
                return b""
            data = self._decompress(compressed, size)
            if data:
                return data

    def _decompress(self, compressed: bytes, size: int) -> bytes:
        if compressed:
            self._in_frame = True
        try:
            data: bytes = self._frame.decompress(compressed, size)
        except self._zstd.ZstdError as exc:
            raise BundleError(f"the payload is not the zstd data its seal says ({exc})") from None
        return data
