"""A staging folder next to a new output folder (extract), locked while it is in use.

The folder, ``.OUT.XXXXXXXX.partial`` (0700), holds decrypted files before every check passed;
the command removes it whatever happens, except when it is killed outright (``kill -9``, a power
cut). Then the folder stays, and nothing in it says whether its process is still running. So it
holds a lock file, locked (flock) for as long as its process lives: the kernel releases the lock
when the process dies, however it dies. A later run for the same output removes each such
folder whose lock it can take (its process is gone), leaves one whose lock is held (another run
at work), and names one without a lock file (made by an evidencekit from before the lock, or
killed in the instant between making the folder and its lock) for the person to delete.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import stat
import tempfile
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

LOCK_NAME = ".evidencekit-staging.lock"  # in the staging folder, beside what is published
SUFFIX = ".partial"
_RANDOM = "[a-z0-9_]{8}"  # what tempfile.mkdtemp puts between prefix and suffix


class StagingFolder:
    """A new staging folder for *final* in its parent folder, locked until :meth:`remove`."""

    def __init__(self, final: Path) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=SUFFIX,
                                          dir=final.absolute().parent))
        try:
            self._lock = os.open(self.path / LOCK_NAME,
                                 os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: never blocks
        except BaseException:
            remove_tree(self.path)
            raise

    def remove(self) -> None:
        """Remove the folder and all it holds, then release the lock (in that order: a run
        that sees the lock free finds nothing of this folder left to take for stale)."""
        try:
            remove_tree(self.path)
        finally:
            os.close(self._lock)


@dataclass
class StaleStaging:
    removed: list[Path] = field(default_factory=list)  # left by a run that died: removed
    unknown: list[Path] = field(default_factory=list)  # no lock to tell: for the person


def remove_stale(final: Path) -> StaleStaging:
    """Remove the staging folders of *final* that a run killed outright left behind (their lock
    is free); report those it cannot tell about. Folders in use, not ours (owner, mode, a link)
    or that cannot be read are left alone."""
    folder = final.absolute().parent
    pattern = re.compile(re.escape(f".{final.name}.") + _RANDOM + re.escape(SUFFIX))
    found = StaleStaging()
    try:
        names = os.listdir(folder)
    except OSError:
        return found
    for name in sorted(names):
        if not pattern.fullmatch(name):
            continue
        path = folder / name
        state = _state(path)
        if state == "stale":
            remove_tree(path)
            if not os.path.lexists(path):
                found.removed.append(path)
        elif state == "unknown":
            found.unknown.append(path)
    return found


def _state(path: Path) -> str:
    """"stale" (ours, its lock free), "busy" (locked, or not ours to judge) or "unknown"
    (ours, but no lock file)."""
    try:
        info = os.lstat(path)
    except OSError:
        return "busy"
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or \
            stat.S_IMODE(info.st_mode) != 0o700:
        return "busy"  # not a folder this user's evidencekit made
    try:
        lock = os.open(path / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return "unknown"
    except OSError:
        return "busy"
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return "busy"  # EWOULDBLOCK: its run is at work
    finally:
        os.close(lock)  # releases the lock taken: the folder goes next
    return "stale"


def remove_tree(path: Path) -> None:
    """Remove *path* and all it holds, best effort, never following a symbolic link. Folders
    given back their original modes (extract restores them last) may be read-only: each is
    made 0700 first, or its files could not be removed."""
    for root, folders, _ in os.walk(path):
        for name in folders:
            inner = os.path.join(root, name)
            if not os.path.islink(inner):
                with suppress(OSError):
                    os.chmod(inner, 0o700)
    shutil.rmtree(path, ignore_errors=True)
