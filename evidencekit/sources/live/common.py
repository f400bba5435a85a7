"""What every live collector shares: the document envelope, times, and how a failure to collect
something becomes a recorded reason rather than a silent gap (docs/FORMAT.md §4.3, live)."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import psutil

from evidencekit import canonical
from evidencekit.clock import Clock, rfc3339

T = TypeVar("T")
Document = dict[str, Any]
DOCUMENT_TYPE = "evidencekit.live."  # + the item kind: "evidencekit.live.processes"
DOCUMENT_VERSION = 1
IS_LINUX = sys.platform.startswith("linux")


PERMISSION_DENIED = "permission denied (run as administrator/root to collect it)"
# Root refused too: telling root to run as root was no explanation.
PERMISSION_DENIED_TO_ROOT = ("permission denied, even to root (a security policy, or a process "
                             "the system protects)")


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def reason(exc: BaseException) -> str:
    """Why something could not be collected, in plain words (recorded in ``not_collected``)."""
    if isinstance(exc, psutil.ZombieProcess):
        return "the process is a zombie (ended, not yet reaped): nothing left to read"
    if isinstance(exc, psutil.NoSuchProcess):
        return "the process ended while it was being read"
    if isinstance(exc, psutil.AccessDenied | PermissionError):
        return PERMISSION_DENIED_TO_ROOT if is_root() else PERMISSION_DENIED
    if isinstance(exc, NotImplementedError | AttributeError):
        return f"not available on this system ({sys.platform})"
    if isinstance(exc, FileNotFoundError):
        return "not found (the process ended, or this system does not provide it)"
    if isinstance(exc, OSError) and exc.errno == errno.ESRCH:
        return "the process ended while it was being read"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return f"{type(exc).__name__}: {exc}"


class Gaps:
    """The items (or fields) that could not be collected, each with its reason."""

    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    def attempt(self, item: str, read: Callable[[], T]) -> T | None:
        """*read()*, or None with the reason recorded under *item*."""
        try:
            return read()
        except Exception as exc:  # any failure of one item must not lose the others
            self.items[item] = reason(exc)
            return None

    def unavailable(self, item: str, why: str) -> None:
        self.items[item] = why


def text(raw: bytes) -> str:
    """Bytes from the system as JSON text: undecodable bytes shown as \\xNN escapes."""
    return raw.decode("utf-8", "backslashreplace")


def envelope(kind: str, clock: Clock, started: int, gaps: Gaps, body: Document) -> Document:
    """A live document: its type, when it was collected (UTC, by the host clock) and what could
    not be, around *body*."""
    document: Document = {"type": DOCUMENT_TYPE + kind, "version": DOCUMENT_VERSION,
                          "collected_started": rfc3339(started),
                          "collected_finished": rfc3339(clock()),
                          "not_collected": dict(sorted(gaps.items.items()))}
    document.update(body)
    return document


def encoded(document: Document) -> bytes:
    try:
        return canonical.dumps(document)
    except UnicodeEncodeError:  # a string from psutil holding bytes that are not UTF-8
        return canonical.dumps(_as_text(document))


def from_system(value: str) -> str:
    """A string psutil made from the system's bytes (undecodable ones kept as lone surrogates,
    Python's "surrogateescape"), as JSON text: those bytes as \\xNN escapes, like :func:`text`.
    A process's name, command line, user or a session's host are whatever bytes a local user
    chose: unencodable, they made the whole capture fail."""
    try:
        return text(value.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:  # a surrogate that is not an escaped byte
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _as_text(value: Any) -> Any:
    """*value* with every string (and key) made encodable by :func:`from_system`."""
    if isinstance(value, str):
        return from_system(value)
    if isinstance(value, dict):
        return {_as_text(key): _as_text(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_text(item) for item in value]
    return value


def own_pid() -> int:
    return os.getpid()
