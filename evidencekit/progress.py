"""Progress reporting as a small protocol: the library reports, the CLI decides how to show it."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
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


class Throttled:
    """Passes *inner* the sum of the advance() calls at most every *interval* seconds.

    Capture reports every block and every file; a progress bar redrawn 40,000 times for a folder
    of 20,000 small files would cost more than reading them. Totals are exact at finish().
    """

    def __init__(self, inner: Progress, interval: float = 0.05) -> None:
        self._inner = inner
        self._interval = interval
        self._files = 0
        self._bytes = 0
        self._next = 0.0
        self._counter: threading.Thread | None = None
        self._counted: list[tuple[int, int | None]] = []
        self._label = ""
        self._status: str | None = None  # said before the bar started: shown once it has
        self.wants_totals = getattr(inner, "wants_totals", False)

    def start(self, label: str, total_files: int | None, total_bytes: int | None) -> None:
        self._inner.start(label, total_files, total_bytes)
        self._next = time.monotonic() + self._interval

    def start_counting(self, label: str, count: Callable[[], tuple[int, int | None]]) -> None:
        """Start once ``count()`` (run on its own thread, while the work goes on) returns the
        totals (files, bytes; bytes None when unknown); what is reported meanwhile is passed on
        then."""
        self._label = label
        self._counter = threading.Thread(target=self._count, args=(count,),
                                         name="evidencekit-count", daemon=True)
        self._counter.start()

    def _count(self, count: Callable[[], tuple[int, int | None]]) -> None:
        with contextlib.suppress(Exception):  # if counting fails, the bar shows no ETA
            self._counted.append(count())

    def _started(self) -> bool:
        if self._counter is None:
            return True
        if self._counter.is_alive():
            return False
        self._counter = None
        files, nbytes = self._counted[0] if self._counted else (None, None)
        self.start(self._label, files, nbytes)
        if self._status is not None:
            show_status(self._inner, self._status)
        return True

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        self._files += files
        self._bytes += nbytes
        now = time.monotonic()
        if now >= self._next and self._started():
            self._next = now + self._interval
            self._flush()

    def _flush(self) -> None:
        if self._files or self._bytes:
            files, nbytes, self._files, self._bytes = self._files, self._bytes, 0, 0
            self._inner.advance(files=files, nbytes=nbytes)

    def status(self, text: str) -> None:
        """Shown at once, but never before the bar has started (a device read past a bad area
        says what it does long before the first byte is stored: the bar starts then, so that
        its label and time are there)."""
        self._status = text
        waiting = self._counter is not None
        if self._started() and not waiting:  # (if it starts now, it shows the status itself)
            show_status(self._inner, text)

    def finish(self) -> None:
        if self._counter is not None:
            self._counter.join()
            self._started()
        self._flush()
        self._inner.finish()


def throttled(progress: Progress) -> Progress:
    """*progress* behind a Throttled (NoProgress stays as it is: it costs nothing)."""
    return progress if isinstance(progress, (NoProgress, Throttled)) else Throttled(progress)


def show_status(progress: object, text: str) -> None:
    """Tell *progress* (if it can show one) a short status beside the bar: what went wrong so
    far, e.g. "2 bad sectors". Shown at once, not throttled: a source says it rarely."""
    status = getattr(progress, "status", None)
    if status is not None:
        status(text)
