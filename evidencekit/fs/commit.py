"""What this process has made for good, so that an interrupt never denies it.

Until a command gives its work its name (a bundle published, a bundle replaced by one holding a
new custody event, an extracted folder), an ending signal (Ctrl-C, SIGTERM, SIGHUP …) undoes
everything and "nothing was written" is true. From that instant on it is not: the CLI then lets
the command finish and say what it did, with its true exit code, instead of reporting an
interrupt (a script that retries on "interrupted" would otherwise add the same custody event
twice). The one wait that may follow, extract --record waiting for another writer's lock, stays
interruptible, and the message then names what was made.

While the name is being given (:func:`committing`) a signal is held back too, so none can fall
between the rename and the record of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_made: list[Path] = []
_busy = [0]  # inside committing(): the rename and its record
_waits = [0]  # inside interruptible_wait()
_held = [False]  # an ending signal came when it could not stop the work


@contextmanager
def committing(final: Path, result: bool = True) -> Iterator[None]:
    """Around the step that gives *final* its name; *final* counts as made once it ends. A file
    that is not the command's *result* (the personal signing key a capture makes first) is
    only held from signals while it is named: the work that follows stays interruptible."""
    _busy[0] += 1
    try:
        yield
        if result:
            _made.append(final)
    finally:
        _busy[0] -= 1


def made() -> tuple[Path, ...]:
    """What this process has published or replaced for good, in order."""
    return tuple(_made)


def interruptible_now() -> bool:
    """Whether an ending signal may stop the work now: nothing is being or has been made, or
    a wait is under way that the user must be able to stop (:func:`interruptible_wait`)."""
    if _busy[0]:
        return False
    return not _made or _waits[0] > 0


def hold() -> None:
    """An ending signal came while it could not stop the work: a wait that follows ends at
    once (:func:`interruptible_wait`), the rest of the command goes on."""
    _held[0] = True


@contextmanager
def interruptible_wait() -> Iterator[None]:
    """A wait for someone else (another writer's lock), which Ctrl-C may always stop, also when
    it was pressed just before the wait began."""
    if _held[0]:
        raise KeyboardInterrupt
    _waits[0] += 1
    try:
        yield
    finally:
        _waits[0] -= 1


def begin() -> None:
    """A new command starts: nothing made by it yet (one process may run several, in tests)."""
    _made.clear()
    _held[0] = False
