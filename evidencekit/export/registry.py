"""The one registry of export formats, and what a format implements.

An export is made from a bundle that verifies, while it is decrypted: a format may watch the
decrypted files go by (a :class:`evidencekit.payload.Visitor`), and is then handed the verify
report to write its output. It writes only into the staged file it is given (or, for a format
written by an outside program, next to it): nothing of the plaintext reaches the disk but the
export itself, and nothing is published unless every check passed (evidencekit.export.run).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import BinaryIO, Protocol

from evidencekit.errors import UsageError
from evidencekit.payload import Visitor
from evidencekit.verify import Report


@dataclass(frozen=True)
class ExportContext:
    """What every format may use besides the verify report."""

    bundle: Path  # the bundle's path as given
    generated: str  # RFC 3339 time of the export (a parameter, so tests can fix it)
    tool: str  # "evidencekit X.Y.Z"
    output: Path | None = None  # where the export will be published (a format written by another
    # program, E01, puts its file next to it before it takes the staged file's place); None:
    # standard output (-o -)

    @property
    def bundle_name(self) -> str:
        """The bundle's file name as text, bytes that are not UTF-8 as \\xNN (as in bag paths):
        a name made on another system made the CASE export fail (it cannot be UTF-8 encoded)."""
        return os.fsencode(self.bundle.name).decode("utf-8", "backslashreplace")


@dataclass
class Written:
    """What a format reports once its output is complete (before it is published)."""

    notices: list[str] = field(default_factory=list)  # plain sentences for the person
    left_out: list[str] = field(default_factory=list)  # items the format could not hold (exit 3)


class Job(Protocol):
    """One export in progress: made before the payload is decrypted."""

    def visitor(self) -> Visitor | None:
        """Sees each decrypted file as verify reads it; None when the format needs no content."""

    def finish(self, checked: Report, out: BinaryIO, staged: Path | None) -> Written:
        """Write the export into *out* (the staged file at *staged*; None, a file without a
        name, for standard output) from a verified report."""

    def abandon(self) -> None:
        """Remove whatever the job made besides the staged file (the export failed)."""


class Stdout(Enum):
    """Whether a format may be written to standard output (``-o -``, for playbooks' pipes)."""

    TEXT = "text"  # yes, even to a terminal
    BINARY = "binary"  # to a pipe or a file, never to a terminal (bytes that garble it)
    NEVER = "never"  # a file written by another program (E01), as large as the evidence


@dataclass(frozen=True)
class Format:
    name: str  # what --format takes
    title: str  # a few words for --help and messages
    suffix: str  # the usual ending of the output's name
    start: Callable[[ExportContext], Job]
    stdout: Stdout = Stdout.TEXT


_FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    if fmt.name in _FORMATS:
        raise ValueError(f"export format {fmt.name!r} registered twice")
    _FORMATS[fmt.name] = fmt
    return fmt


def names() -> list[str]:
    return list(_FORMATS)


def get(name: str) -> Format:
    try:
        return _FORMATS[name]
    except KeyError:
        raise UsageError(f"unknown export format {name!r}",
                         hint=f"one of: {', '.join(_FORMATS)}") from None


class NoContent:
    """Base for jobs made from the verified report alone."""

    def visitor(self) -> Visitor | None:
        return None

    def abandon(self) -> None:
        return None
