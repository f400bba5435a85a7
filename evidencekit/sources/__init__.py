"""Kinds of evidence, each behind one small interface (base.Source) that the sealing pipeline
(evidencekit.capture) takes in: files and folders (files.py), standard input (stdin.py)."""

from evidencekit.sources.base import (
    BytesContent,
    Content,
    PartlyRead,
    Skip,
    Source,
    SourceRecord,
    StreamEntry,
    WholeOrNothing,
)
from evidencekit.sources.files.source import FileSource
from evidencekit.sources.stdin import StdinSource

__all__ = ["BytesContent", "Content", "FileSource", "PartlyRead", "Skip", "Source", "SourceRecord",
           "StdinSource", "StreamEntry", "WholeOrNothing"]
