"""Opening what may be evidence without touching its access time (O_NOATIME where allowed):
the files a person hands to evidencekit (keys, recipient lists, passphrases, profiles, incident
records) and the folders listed before or during a capture."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOATIME = getattr(os, "O_NOATIME", 0)


def open_keeping_atime(name: str | bytes | os.PathLike[str], flags: int,
                       dir_fd: int | None = None) -> int:
    """``os.open`` with O_NOATIME where allowed, so that reading leaves the access time as it was.

    O_NOATIME is refused for what we do not own: that is opened plainly (its atime may then
    change; recorded as a limitation in docs/FORMAT.md)."""
    try:
        return os.open(name, flags | _NOATIME, dir_fd=dir_fd)
    except PermissionError:
        if not _NOATIME:
            raise
        return os.open(name, flags, dir_fd=dir_fd)


def open_directory(name: bytes, dir_fd: int | None = None, *, follow: bool = False) -> int:
    """Open a folder for listing without following a link (unless *follow*: a folder the user
    named may be one) and, where allowed, keeping its atime."""
    return open_keeping_atime(name, _DIR_FLAGS if not follow else _DIR_FLAGS & ~os.O_NOFOLLOW,
                              dir_fd)


def read_user_file(path: str | os.PathLike[str], limit: int = -1) -> bytes:
    """A file the user hands to evidencekit (a key, a recipient list, a passphrase, a profile, an
    incident record), read keeping its access time where allowed: it may lie in a folder being
    captured (``investigator.pub`` in Downloads), and it is read before the walk records it."""
    fd = open_keeping_atime(path, os.O_RDONLY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as stream:
        return stream.read(limit)  # at most *limit* bytes (all of it when negative)


@contextmanager
def scan_directory(path: str | bytes | os.PathLike[str],
                   *, follow: bool = False) -> Iterator[Iterator[os.DirEntry[str]]]:
    """``os.scandir`` for a folder that may hold evidence, keeping its access time.

    Listing a folder by its path updates its atime (with relatime, whenever the atime is older
    than the last change): anything that looks at the user's folders before or during a capture
    (the progress bar's count, profile patterns, the guided session's suggestions) lists them
    through a descriptor opened with O_NOATIME instead. The entries' ``path`` is their bare name;
    their ``stat()`` and ``is_dir()`` work only inside the ``with`` block.
    """
    fd = open_directory(os.fsencode(path), follow=follow)
    try:
        with os.scandir(fd) as entries:
            yield entries
    finally:
        os.close(fd)
