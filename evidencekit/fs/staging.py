"""A staging folder next to a new output folder (extract), locked while it is in use.

The folder, ``.OUT.XXXXXXXX.partial`` (0700), holds decrypted files before every check passed;
the command removes it whatever happens, except when it is killed outright (``kill -9``, a power
cut). Then the folder stays, and nothing in it says whether its process is still running. So it
holds a lock file, locked (flock) for as long as its process lives: the kernel releases the lock
when the process dies, however it dies. A later run for the same output removes each such
folder whose lock it can take (its process is gone), leaves one whose lock is held (another run
at work), and names one without a lock file (made by an evidencekit from before the lock, or
killed in the instant between making the folder and its lock) for the person to delete. A
folder with a file system mounted in it is never removed (that file system's files would go with
it), nor one that could not be removed whole: both are named for the person.
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

from evidencekit.fs.limits import keeps_modes

LOCK_NAME = ".evidencekit-staging.lock"  # in the staging folder, beside what is published
SUFFIX = ".partial"
_RANDOM = "[a-z0-9_]{8}"  # what tempfile.mkdtemp puts between prefix and suffix


def _prefix(final: Path) -> str:
    """``.NAME.``, NAME the output's name cut, where long, so that the staging folder's whole
    name fits in 255 bytes (NAME_MAX; an output's name may be that long)."""
    name = final.name
    while len(os.fsencode(name)) > 255 - len("..") - 8 - len(SUFFIX):
        name = name[:-1]
    return f".{name}."


class StagingFolder:
    """A new staging folder for *final* in its parent folder, locked until :meth:`remove`."""

    def __init__(self, final: Path) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=_prefix(final), suffix=SUFFIX,
                                          dir=final.absolute().parent))
        try:
            # made under another name and given its own once locked: a run looking for stale
            # folders in between would find a lock file free and take this folder for stale
            making = self.path / f"{LOCK_NAME}.new"
            self._lock = os.open(making, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                 0o600)
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: never blocks
            os.rename(making, self.path / LOCK_NAME)
        except BaseException:
            remove_tree(self.path)
            raise

    def remove(self) -> None:
        """Remove all the folder holds but the lock, release the lock, then remove the lock
        file and the folder (in that order: a run that sees the lock free finds nothing of this
        folder left to take for stale but an empty folder). Removing the lock file while it is
        open would leave the folder on FUSE file systems (exfat-fuse, fusefat: USB sticks),
        which keep a file removed while open as .fuse_hiddenNNNN until it is closed."""
        try:
            _remove_all_but_the_lock(self.path)
        finally:
            os.close(self._lock)
        remove_tree(self.path)


def _remove_all_but_the_lock(path: Path) -> None:
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        inner = path / name
        if name == LOCK_NAME:
            continue
        if inner.is_dir() and not inner.is_symlink():
            remove_tree(inner)
        else:
            with suppress(OSError):
                os.unlink(inner)


@dataclass
class StaleStaging:
    removed: list[Path] = field(default_factory=list)  # left by a run that died: removed
    unknown: list[Path] = field(default_factory=list)  # no lock to tell: for the person
    # left by a run that died, but not removed (or not all of it), and why: for the person
    kept: list[tuple[Path, str]] = field(default_factory=list)


def remove_stale(final: Path) -> StaleStaging:
    """Remove the staging folders of *final* that a run killed outright left behind (their lock
    is free); report those it cannot tell about. Folders in use, not ours (owner, mode, a link)
    or that cannot be read are left alone."""
    folder = final.absolute().parent
    pattern = re.compile(re.escape(_prefix(final)) + _RANDOM + re.escape(SUFFIX))
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
        if state == "busy":
            continue
        mounted = mount_points_in(path)
        if mounted:  # (never to remove, nor to advise 'rm -rf' for: rm crosses mount points)
            found.kept.append((path, f"{mounted[0]} inside it is a mount point: unmount it "
                                     "first, then delete the folder"))
        elif state == "stale":
            _remove_stale_folder(path, found)
        else:
            found.unknown.append(path)
    return found


def _remove_stale_folder(path: Path, found: StaleStaging) -> None:
    """Remove *path*, a staging folder whose run died (no file system mounted in it: removing
    would delete that file system's files, which are not ours)."""
    remove_tree(path)
    if not os.path.lexists(path):
        found.removed.append(path)
        return
    left = next((os.path.join(root, name) for root, _, files in os.walk(path)
                 for name in files), str(path))
    found.kept.append((path, f"{left} (and what else is left) could not be removed"))


def mount_points_in(path: Path) -> list[str]:
    """The mount points at or under *path*: those the kernel lists (bind mounts of the same file
    system included), and folders on another device than *path* (where there is no list)."""
    real = os.fsencode(os.path.realpath(path))
    points = {os.fsdecode(point) for point in _mount_table()
              if point == real or point.startswith(real.rstrip(b"/") + b"/")}
    try:
        device = os.lstat(path).st_dev
    except OSError:
        return sorted(points)
    for root, folders, _ in os.walk(path):
        for name in folders:
            inner = os.path.join(root, name)
            with suppress(OSError):
                if os.lstat(inner).st_dev != device:
                    points.add(inner)
    return sorted(points)


_MOUNTINFO_ESCAPE = re.compile(rb"\\([0-7]{3})")


def _mount_table() -> list[bytes]:
    """The mount points in /proc/self/mountinfo (Linux), unescaped; none elsewhere."""
    try:
        with open("/proc/self/mountinfo", "rb") as table:
            lines = table.read().splitlines()
    except OSError:
        return []
    return [_MOUNTINFO_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), line.split(b" ")[4])
            for line in lines if len(line.split(b" ")) > 4]


def _state(path: Path) -> str:
    """"stale" (ours, its lock free), "busy" (locked, or not ours to judge) or "unknown"
    (ours, but no lock file)."""
    try:
        info = os.lstat(path)
    except OSError:
        return "busy"
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or \
            (stat.S_IMODE(info.st_mode) != 0o700 and keeps_modes(path)):
        return "busy"  # not a folder this user's evidencekit made (FAT, exFAT: no modes)
    try:
        # (O_NONBLOCK: a FIFO put there would block the open until a writer came)
        lock = os.open(path / LOCK_NAME,
                       os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return "unknown"
    except OSError:
        return "busy"
    try:
        if not stat.S_ISREG(os.fstat(lock).st_mode):
            return "busy"  # not a lock file evidencekit made
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
    # fwalk, not walk: walk follows *path* itself when it is (or became, by another user's
    # rename in a shared folder) a link, and would make the folders it points to 0700
    for _, folders, _, folder in os.fwalk(path, follow_symlinks=False):
        for name in folders:  # (links to folders are among them)
            with suppress(OSError):
                if stat.S_ISDIR(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
                    os.chmod(name, 0o700, dir_fd=folder)
    shutil.rmtree(path, ignore_errors=True)
