"""One way to put a finished file under its name: never half-written, never over another file.

Every writing command (capture, reseal, report, receipt, extract's addenda, key generate) writes
into a temporary file in the destination's own folder, fsyncs it, and only then gives it its
name with :func:`publish`, which never replaces an existing file:

1. a hard link (atomic and exclusive everywhere it exists);
2. where hard links are refused (exFAT, FAT32, some network shares answer EPERM): an exclusive
   rename, ``renameat2(RENAME_NOREPLACE)`` on Linux or ``renamex_np(RENAME_EXCL)`` on macOS;
3. where that is refused too (FUSE file systems answer EINVAL): the name is reserved with an
   ``O_EXCL`` empty placeholder, then the temporary file is renamed over the placeholder. Only
   this step can leave something behind when killed at the wrong instant: an empty file under
   the final name, which nothing mistakes for a valid bundle, report or key.

The folder is fsynced afterwards so the new name survives a power cut.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from evidencekit.errors import OutputError
from evidencekit.fs import leftovers
from evidencekit.fs.commit import committing
from evidencekit.fs.limits import on_fuse
from evidencekit.libc import libc

# What a file system without hard links answers to link().
NO_HARD_LINKS = frozenset({errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP,
                           errno.ENOSYS})
# What a file system (or a kernel) without exclusive renames answers to renameat2/renamex_np.
_NO_EXCLUSIVE_RENAME = frozenset({errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP})
# What chmod answers on a file system that has no permissions (fusefat: ENOSYS).
NO_PERMISSIONS = frozenset({errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM})
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1  # Linux
_RENAME_EXCL = 0x4  # macOS


def require_new(output: Path, *, refusal: str = "evidencekit does not overwrite it",
                hint: str = "choose another name with -o") -> None:
    """Refuse (OutputError) an *output* that exists, even as a dangling link, or whose folder
    does not: asked before the work, since the work is only published under a new name."""
    if os.path.lexists(output):
        raise OutputError(f"{output} already exists; {refusal}", hint=hint)
    parent = output.absolute().parent
    if not parent.is_dir():
        raise OutputError(f"the folder {parent} does not exist")


def publish(temp: Path, final: Path) -> None:
    """Give the finished file *temp* (in *final*'s folder) the name *final*; *temp* is gone
    afterwards. Raises FileExistsError when *final* exists: nothing is ever replaced."""
    try:
        os.link(temp, final)
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS:
            raise
        if not _rename_exclusive(temp, final):
            _rename_onto_placeholder(temp, final)
    else:
        with suppress(FileNotFoundError):
            os.unlink(temp)
    sync_folder(final.absolute().parent)


def publish_folder(temp: Path, final: Path) -> None:
    """Give the finished folder *temp* the name *final*, never replacing anything:
    FileExistsError when *final* exists.

    Without an exclusive rename (FUSE file systems such as exfat-fuse and fusefat), *final* is
    made with mkdir (exclusive) and filled by renaming the files one by one, folders made anew:
    fusefat loses a folder's contents when the folder itself is renamed, and refuses renaming
    one over an empty placeholder. An error on the way removes *final* again, and signals wait
    until it is done (evidencekit.fs.commit): only a kill -9 in that moment can leave it
    incomplete (docs/decisions/atomic-publish.md).
    """
    with committing(final):
        if not _rename_exclusive(temp, final):
            os.mkdir(final, 0o700)
            try:
                _move_children(os.fsencode(temp), os.fsencode(final))
                _copy_folder_metadata(os.fsencode(temp), os.fsencode(final))
            except BaseException:
                shutil.rmtree(final, ignore_errors=True)
                raise
        sync_folder(final.absolute().parent)


def _move_children(source: bytes, target: bytes) -> None:
    for entry in os.scandir(source):
        moved = os.path.join(target, entry.name)
        if entry.is_dir(follow_symlinks=False):
            os.mkdir(moved, 0o700)
            _move_children(entry.path, moved)
            _copy_folder_metadata(entry.path, moved)
        else:
            os.rename(entry.path, moved)


def _copy_folder_metadata(source: bytes, target: bytes) -> None:
    """A folder made anew keeps the mode and times the old one was given (best effort)."""
    with suppress(OSError):
        info = os.stat(source, follow_symlinks=False)
        os.chmod(target, info.st_mode & 0o7777)
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))


def _rename_exclusive(temp: Path, final: Path) -> bool:
    """Rename *temp* to *final* unless *final* exists (FileExistsError); False where the system
    or file system cannot rename exclusively."""
    libc = _libc()
    if libc is None:
        return False
    if sys.platform == "darwin":
        function, flags = getattr(libc, "renamex_np", None), _RENAME_EXCL
        args: tuple[object, ...] = (os.fsencode(temp), os.fsencode(final), flags)
    else:
        function, flags = getattr(libc, "renameat2", None), _RENAME_NOREPLACE
        args = (_AT_FDCWD, os.fsencode(temp), _AT_FDCWD, os.fsencode(final), flags)
    if function is None:
        return False
    if function(*args) == 0:
        return True
    code = ctypes.get_errno()
    if code in _NO_EXCLUSIVE_RENAME:
        return False
    raise OSError(code, os.strerror(code), str(final))


def _rename_onto_placeholder(temp: Path, final: Path) -> None:
    """Reserve *final* with an exclusive empty file, then rename *temp* over it."""
    os.close(os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    try:
        os.replace(temp, final)
    except BaseException:
        with suppress(OSError):
            if os.stat(final, follow_symlinks=False).st_size == 0:
                os.unlink(final)  # our placeholder, still empty
        raise


def _libc() -> ctypes.CDLL | None:
    try:
        return libc()
    except OSError:  # pragma: no cover - no C library to speak of (Windows)
        return None


def sync_folder(folder: Path) -> None:
    """Make new names in *folder* durable (best effort: not every system can fsync a folder)."""
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def set_mode(fd: int, mode: int) -> None:
    """chmod, except where the file system has no permissions at all (FAT, exFAT)."""
    try:
        os.fchmod(fd, mode)
    except OSError as exc:
        if exc.errno not in NO_PERMISSIONS:
            raise


def umask_mode(mode: int = 0o666) -> int:
    """*mode* as the umask allows it (what open() would have given a new file)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mode & ~mask


class CannotCreate(OSError):
    """The temporary file could not be created: the folder is missing or not writable."""


# What a file system answers to a name it does not allow: exfat-fuse ENOENT, fusefat EPERM,
# the kernel's FAT and NTFS drivers EINVAL, some EILSEQ.
NAME_REFUSED = frozenset({errno.ENOENT, errno.EINVAL, errno.EPERM, errno.EILSEQ})
NAME_RULE = ("FAT and exFAT sticks, like Windows, refuse some names that Linux allows, such as "
             "those with \" * : < > ? \\ | or control characters")


def takes_new_files(folder_fd: int) -> bool:
    """Whether the open folder *folder_fd* takes a new file of a plain name: if so, a refused
    creation there was about the name, not about the folder."""
    probe = f".evidencekit-probe-{os.getpid()}.tmp"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600,
                         dir_fd=folder_fd))
    except OSError:
        return False
    with suppress(OSError):
        os.unlink(probe, dir_fd=folder_fd)
    return True


def refuses_name(folder: Path, error: OSError) -> bool:
    """Whether creating a file in *folder* failed with *error* because of the file's name."""
    if error.errno not in NAME_REFUSED:
        return False
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return takes_new_files(fd)
    finally:
        os.close(fd)


class NameNotAllowed(CannotCreate):
    """The folder takes new files, but not one of this name (FAT, exFAT: ``:``, ``?`` …)."""

    def __init__(self, final: Path, error: OSError) -> None:
        super().__init__(error.errno, f"its file system does not allow the name {final.name!r} "
                         f"({NAME_RULE})", str(final.absolute().parent))
        self.final = final


class Staged:
    """A temporary file for the destination: :attr:`file` to write; :attr:`path` a name it can
    be opened by again while it is written (``/proc/self/fd/N`` for a file without a name)."""

    def __init__(self, file: BinaryIO, path: Path) -> None:
        self.file = file
        self.path = path


@contextmanager
def staged(final: Path, mode: int = 0o600, *, replace: bool = False, result: bool = True,
           named: bool = False) -> Iterator[Staged]:
    """Write a new file for *final*: yields a :class:`Staged` temporary file (mode 0600 while it
    is written, whatever it holds). When the block ends normally, the file is flushed, fsynced,
    given *mode* and published under *final* (never replacing a file, FileExistsError; with
    *replace*, atomically renamed over *final* instead). On any exception, including Ctrl-C and
    the signals the CLI turns into it, the temporary file is removed and *final* is untouched.
    Once named, a *result* is no longer undone by a signal (evidencekit.fs.commit).

    The temporary file has no name where the file system allows it (O_TMPFILE, see
    evidencekit.fs.leftovers): a kill -9 then leaves nothing. Elsewhere, or when another program
    must rename a file over it (*named*), it is a hidden file beside *final* that a kill -9
    leaves, and that the next command writing there removes.
    """
    folder = final.absolute().parent
    leftovers.clean(final)
    fd = None if named else _nameless_in(folder)
    if fd is not None:
        with os.fdopen(fd, "w+b") as out:
            yield Staged(out, Path(f"/proc/self/fd/{fd}"))
            _finish(out, mode)
            with committing(final, result):
                _name_nameless(out, final, replace)
        return
    try:
        fd, name = tempfile.mkstemp(prefix=leftovers.prefix_for(final),
                                    suffix=leftovers.SUFFIX, dir=folder)
    except OSError as exc:
        if refuses_name(folder, exc):  # the temporary name holds the final one
            raise NameNotAllowed(final, exc) from None
        raise CannotCreate(exc.errno, exc.strerror, str(folder)) from None
    temp = Path(name)
    try:
        leftovers.hold(fd)
        with os.fdopen(fd, "w+b") as out:
            yield Staged(out, temp)
            _finish(out, mode)
        with committing(final, result):
            _name_temporary(temp, final, replace)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(temp)


def _finish(out: BinaryIO, mode: int) -> None:
    out.flush()
    os.fsync(out.fileno())
    set_mode(out.fileno(), mode)


def _name_temporary(temp: Path, final: Path, replace: bool) -> None:
    if replace:
        os.replace(temp, final)
        sync_folder(final.absolute().parent)
    else:
        publish(temp, final)


# What open(O_TMPFILE) answers where files without a name cannot be made: the file system
# (EOPNOTSUPP), a kernel from before 3.11 (EISDIR), or the flags (EINVAL).
_NO_NAMELESS = frozenset({errno.EOPNOTSUPP, errno.ENOTSUP, errno.EISDIR, errno.EINVAL,
                          errno.ENOSYS})


def _nameless_in(folder: Path) -> int | None:
    """A new file without a name in *folder* (O_TMPFILE, Linux), 0600; None where it cannot be
    made, or could not be named afterwards. On FUSE file systems it is never tried: the file
    system may make it, then refuse to link it (exfat-fuse has no links)."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or not os.path.isdir("/proc/self/fd"):  # named through /proc/self/fd
        return None
    try:
        fd = os.open(folder, flag | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno in _NO_NAMELESS:
            return None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.EROFS):
            raise CannotCreate(exc.errno, exc.strerror, str(folder)) from None
        return None
    if on_fuse(fd):
        os.close(fd)
        return None
    return fd


def _name_nameless(out: BinaryIO, final: Path, replace: bool) -> None:
    """Give the finished file without a name its name *final*: linked (exclusive) in one step;
    with *replace*, linked under a temporary name then renamed over *final*. Where the link is
    refused, a named copy is published instead."""
    source = f"/proc/self/fd/{out.fileno()}"
    target = final
    if replace:
        target = final.absolute().parent / (
            f"{leftovers.prefix_for(final)}{secrets.token_hex(4)}{leftovers.SUFFIX}")
    try:
        _link_following(source, target)
    except FileExistsError:
        raise
    except OSError:
        _publish_a_copy(out, final, replace)
        return
    if replace:
        try:
            os.replace(target, final)
        except BaseException:
            with suppress(OSError):
                os.unlink(target)
            raise
    sync_folder(final.absolute().parent)


def _link_following(source: str, target: Path) -> None:
    """linkat(AT_SYMLINK_FOLLOW): *source*, a /proc/self/fd link, names the file it leads to
    (os.link calls plain link(), which would link the /proc entry itself, unless a folder
    descriptor is given; *target* is absolute, so which folder does not matter)."""
    folder = os.open(target.absolute().parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(source, target.absolute(), dst_dir_fd=folder, follow_symlinks=True)
    finally:
        os.close(folder)


def _publish_a_copy(out: BinaryIO, final: Path, replace: bool) -> None:
    """Publish a named copy of *out* (the file system made a file without a name but refused
    to link it)."""
    fd, name = tempfile.mkstemp(prefix=leftovers.prefix_for(final), suffix=leftovers.SUFFIX,
                                dir=final.absolute().parent)
    temp = Path(name)
    try:
        leftovers.hold(fd)
        with os.fdopen(fd, "w+b") as copy:
            out.seek(0)
            shutil.copyfileobj(out, copy, 1 << 20)
            _finish(copy, os.fstat(out.fileno()).st_mode & 0o7777)
        _name_temporary(temp, final, replace)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(temp)
