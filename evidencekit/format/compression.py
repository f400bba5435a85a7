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
# The largest window a frame may declare: 8 MiB, what RFC 8878 (§3.1.1.1.2) asks every decoder
# to support and no encoder to exceed. A decoder holds the window in memory, so zstd's own
# default (128 MiB) would let a crafted frame take that much of a verifier's; level 1 uses 512 KiB.
WINDOW_LOG_MAX = 23
_SKIPPABLE = range(0x184D2A50, 0x184D2A60)  # magic numbers of skippable frames


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

    It reads the one frame evidencekit writes and nothing else: a skippable frame, a second
    frame or any byte after the frame (which no reader would show, or each of which would cost a
    decoder's set-up), a frame cut short at the end, a window beyond 8 MiB, or more than *limit*
    bytes of output is damage (BundleError), said before the excess is handed on. Each call
    returns at most the caller's buffer, so memory stays flat whatever a frame expands to.
    """

    def __init__(self, source: Readable, limit: int) -> None:
        self._zstd = _binding()
        self._source = source
        self._limit = limit
        self._produced = 0
        self._frame = self._zstd.ZstdDecompressor(
            options={self._zstd.DecompressionParameter.window_log_max: WINDOW_LOG_MAX})
        self._in_frame = False  # input given to the frame, whose end was not seen yet

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
            if self._frame.eof:
                self._refuse_what_follows()
                return b""
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

    def _refuse_what_follows(self) -> None:
        """The frame ended: the stream must end with it."""
        rest = self._frame.unused_data or self._source.read(READ_SIZE)
        if rest:
            raise BundleError("the payload is not the zstd data its seal says: more follows "
                              "after its zstd frame (evidencekit writes one frame and nothing "
                              "after it, which no reader would show)")

    def _decompress(self, compressed: bytes, size: int) -> bytes:
        if compressed and not self._in_frame:
            self._in_frame = True
            if int.from_bytes(compressed[:4].ljust(4, b"\0"), "little") in _SKIPPABLE:
                raise BundleError("the payload is not the zstd data its seal says: it starts "
                                  "with a zstd skippable frame (bytes no reader shows, which "
                                  "evidencekit never writes)")
        try:
            data: bytes = self._frame.decompress(compressed, size)
        except self._zstd.ZstdError as exc:
            raise BundleError(f"the payload is not the zstd data its seal says ({exc}"
                              f"{_WINDOW_NOTE if 'memory' in str(exc) else ''})") from None
        return data


_WINDOW_NOTE = (": its zstd window is larger than the 8 MiB a reader allows, RFC 8878's limit"
                " for interoperability")
