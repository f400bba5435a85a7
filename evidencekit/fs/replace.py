"""Changing a file that must never be seen half-changed: one writer at a time, copy on write.

A custody append adds a few kilobytes at the end of a bundle that may be many gigabytes. Writing
them in place cannot be made safe: a kill or a full disk between (or inside) the writes leaves a
bundle that never verifies again. So the change is made to a copy instead (a clone where the file
system can share blocks: Btrfs, XFS, APFS…), which is fsynced and renamed over the original in
one step: at every instant the name holds either the old file or the new one, both whole.
docs/decisions/atomic-publish.md says why, and what it costs.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from evidencekit.fs.commit import interruptible_wait
from evidencekit.fs.publish import staged

_FICLONE = 0x40049409  # Linux ioctl: share all blocks of a file (Btrfs, XFS, bcachefs …)
# copy_file_range refused: another file system, an old kernel, a file system without it.
_NO_COPY_RANGE = frozenset({errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP,
                            errno.ENOTSUP, errno.EBADF})
_MARGIN = 64 << 10  # room kept free besides the copy itself (folder entries, metadata)


class NotEnoughSpace(OSError):
    """The copy would not fit in the folder's free space (found before writing anything)."""

    def __init__(self, needed: int, free: int, folder: Path) -> None:
        super().__init__(errno.ENOSPC, "not enough free space", str(folder))
        self.needed = needed
        self.free = free


@contextmanager
def locked(path: Path, waiting: Callable[[], None] | None = None) -> Iterator[int]:
    """Hold an exclusive lock (flock) on the file *path* names; yields its descriptor.

    Another evidencekit command changing the same file waits here (*waiting* is called once,
    when it has to). As a writer replaces the file rather than changing it, the lock it held is
    on a file the name no longer names: after locking, the name is checked to still name the
    locked file, and if not, the new file is locked instead.
    """
    told = False
    while True:
        # O_NONBLOCK: a named pipe's open() would wait for a writer for ever; opened at once,
        # it is refused by the check that follows the lock, as every reader refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                with interruptible_wait():  # Ctrl-C may stop a wait, whatever was made before
                    if waiting is not None and not told:
                        waiting()
                        told = True
                    fcntl.flock(fd, fcntl.LOCK_EX)
            if still_names(path, fd):
                yield fd
                return
        finally:
            os.close(fd)  # also releases the lock


def still_names(path: Path, fd: int) -> bool:
    """Whether *path* names the file open as *fd* (a lock taken on a file that another process
    then replaced, or removed, is no lock on what the name names now)."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


def replace_end(path: Path, fd: int, keep: int, tail: bytes) -> None:
    """Replace the file *path* (open as *fd*, locked) by its first *keep* bytes followed by
    *tail*: a copy in the same folder, fsynced, then renamed over *path* and the folder fsynced.

    The copy keeps the original's mode (and owner, where allowed). On any failure, a full disk,
    Ctrl-C or a signal the CLI turns into it, the copy is removed and *path* is left untouched;
    NotEnoughSpace is raised before anything is written when the copy cannot fit.
    """
    info = os.fstat(fd)
    with staged(path, info.st_mode & 0o7777, replace=True) as stage:
        out = stage.file.fileno()
        with suppress(OSError):
            if (info.st_uid, info.st_gid) != (os.getuid(), os.getgid()):
                os.fchown(out, info.st_uid, info.st_gid)  # root appending to someone's bundle
        _copy_attributes(fd, out)
        if not _clone(fd, out, keep):
            _require_space(path.absolute().parent, keep + len(tail))
            _copy(fd, out, keep)
        stage.file.seek(keep)
        stage.file.write(tail)


def _copy_attributes(source: int, target: int) -> None:
    """The extended attributes, where POSIX ACLs (a bundle shared with a colleague), security
    labels and tags live: the copy must not take them away (best effort: a label the system
    does not let us set stays behind)."""
    if not hasattr(os, "listxattr"):  # pragma: no cover - not Linux
        return
    try:
        names = os.listxattr(source)
    except OSError:
        return  # the file system has none
    for name in names:
        with suppress(OSError):
            os.setxattr(target, name, os.getxattr(source, name))


def _clone(source: int, target: int, keep: int) -> bool:
    """Share the source's blocks where the file system can (no data written, no space used)."""
    try:
        fcntl.ioctl(target, _FICLONE, source)
    except OSError:
        return False
    os.ftruncate(target, keep)
    return True


def _require_space(folder: Path, needed: int) -> None:
    try:
        found = os.statvfs(folder)
    except OSError:
        return  # the copy will say so if it does not fit
    if found.f_blocks == 0:
        return  # the file system does not say (fusefat): the copy will say so if it does not fit
    free = found.f_bavail * found.f_frsize
    if free < needed + _MARGIN:
        raise NotEnoughSpace(needed + _MARGIN, free, folder)


def _copy(source: int, target: int, count: int) -> None:
    """The first *count* bytes of *source* into *target*, in the kernel where it can."""
    done = 0
    while done < count and hasattr(os, "copy_file_range"):  # Linux
        try:
            copied = os.copy_file_range(source, target, count - done, done, done)
        except OSError as exc:
            if exc.errno not in _NO_COPY_RANGE or done:
                raise
            break
        if copied == 0:  # the source ended early: it changed under the lock
            raise OSError(errno.EIO, "the file became shorter while it was copied")
        done += copied
    while done < count:
        data = os.pread(source, min(count - done, 1 << 20), done)
        if not data:
            raise OSError(errno.EIO, "the file became shorter while it was copied")
        view = memoryview(data)
        while view:  # a write may stop short (a signal, a nearly full disk)
            written = os.pwrite(target, view, done)
            done += written
            view = view[written:]
