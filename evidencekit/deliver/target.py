"""What capture writes to when a bundle goes straight to a destination instead of a local file
(deliver.s3.S3Capture): the sealing pipeline stays in capture.py, the destination is a writer."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol


class StreamTarget(Protocol):
    """A destination a capture writes its bundle to as it is sealed."""

    location: str  # where the bundle will be, for messages (s3://BUCKET/KEY)
    # how many blocks of 1 MiB capture may queue for it (capture.DISK_QUEUE for a file): a
    # target that holds what it is given in buffers of its own needs few
    queue_blocks: int

    def check(self) -> None:
        """Refuse now, before any evidence is read, a destination that cannot take it."""
        ...

    def public_details(self) -> dict[str, str]:
        """Details for the first custody event: where the bundle is written, and how."""
        ...

    def open(self) -> AbstractContextManager[BinaryIO]:
        """A file to write the bundle to; it may seek back only within its first 5 MiB. The
        bundle is committed when the block ends normally; on an exception nothing is left."""
        ...
