"""Progress reporting as a small protocol: the library reports, the CLI decides how to show it."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, label: str, total_files: int | None, total_bytes: int | None) -> None: ...

    def advance(self, files: int = 0, nbytes: int = 0) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    """Reports nothing (no terminal, --json, or tests)."""

    wants_totals = False

    def start(self, label: str, total_files: int | None, total_bytes: int | None) -> None:
        pass

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        pass

    def finish(self) -> None:
        pass
