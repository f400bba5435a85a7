"""The payload's layers below the tar, as capture and reseal write them: zstd when the bundle is
format version 4 (``compression.Compressing``), then age. One way to end them, and one way to
give them up, for both writers.

``payload.age`` = age(zstd(tar)) or age(tar) (docs/FORMAT.md §4.1): the tar's bytes go into
:attr:`PayloadLayers.top`, the age stream's into the sink given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO

from evidencekit.crypto import age
from evidencekit.format.compression import Compressing


class PayloadLayers:
    """age over *sink* for *recipients*, under zstd when *compressed*."""

    def __init__(self, sink: BinaryIO, recipients: Sequence[age.Recipient],
                 random: age.RandomSource, compressed: bool) -> None:
        self._encryptor = age.AgeWriter(sink, recipients, random=random)
        self._compressing = Compressing(self._encryptor) if compressed else None

    @property
    def top(self) -> Compressing | age.AgeWriter:
        """Where the payload tar is written."""
        return self._compressing or self._encryptor

    def close(self) -> None:
        """End the zstd frame, then the age stream with its final chunk: the payload is whole.
        If the frame cannot be ended, the age stream is given up (:meth:`abort`)."""
        if self._compressing is not None:
            try:
                self._compressing.close()
            except BaseException:
                self.abort()
                raise
        self._encryptor.close()

    def abort(self) -> None:
        """Give up: the age stream gets no final chunk, so it reads as truncated, never as a
        whole payload."""
        self._encryptor.abort()
