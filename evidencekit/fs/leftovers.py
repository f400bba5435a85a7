"""Unfinished files a writer killed outright left beside its output, and how the next run deals
with them.

Where the file system allows it (ext4, XFS, Btrfs, tmpfs …) an output is written into a file
without a name (O_TMPFILE) and only named when finished: a kill -9 or a power cut leaves nothing
to see. Elsewhere (FAT and exFAT sticks through FUSE, network shares) it is written into a hidden
file beside the output, ``.NAME.PID.XXXXXXXX.evidencekit.partial``, which a kill -9 leaves behind. Its writer
holds a lock on it (flock) for as long as it lives, and its name holds the writer's process id:
the next evidencekit command that writes into the same folder removes each such file whose lock
is free and whose process is gone, and leaves those of a writer at work. Files of the older
patterns ``.NAME.XXXXXXXX.partial`` and ``.NAME.PID.XXXXXXXX.partial`` (an evidencekit from
before; a person's own file may have such a name too) cannot be judged: they are named to the
person, for the same output only, never removed. The private folder an E01 export writes
in, ``.NAME.PID.XXXXXXXXXXXX.partial-e01`` (a decrypted image), is removed once its process is
gone (ewfacquirestream, its child, ends with its input). Private working folders in the system's
temporary folder (a web capture's browser profile and renders, a memory capture's pipe) are named
``PREFIX-PID-XXXXXXXX`` the same way (:func:`working_folder`): the next one made removes those of
its kind whose process is gone.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
import tempfile
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from evidencekit.fs.limits import keeps_modes
from evidencekit.fs.staging import remove_tree

# Marked as evidencekit's: a person's own hidden file may well read ".notes.2024.december.partial"
# (NAME.NUMBER.EIGHT-LETTERS.partial), and only what is surely ours may be removed.
SUFFIX = ".evidencekit.partial"
_OLDER_SUFFIX = ".partial"  # before the mark: named for the person, never removed
E01_SUFFIX = ".partial-e01"  # the private folder ewfacquirestream writes into (export.e01)
_RANDOM = "[a-z0-9_]{8}"  # what tempfile.mkstemp puts between prefix and suffix
# .NAME.PID.XXXXXXXX.evidencekit.partial, NAME anything (a bundle's name holds dots)
_OURS = re.compile(r"\.(.+)\.([1-9][0-9]{0,9})\." + _RANDOM + re.escape(SUFFIX), re.DOTALL)
# .NAME.PID.XXXXXXXXXXXX.partial-e01: a folder holding a decrypted image
_E01 = re.compile(r"\..+\.([1-9][0-9]{0,9})\.[0-9a-f]{12}" + re.escape(E01_SUFFIX), re.DOTALL)


@dataclass(frozen=True)
class Leftover:
    """An unfinished file found beside an output: *removed*, or named for the person."""

    path: Path
    removed: bool
    # kept because it is a finished output whose naming was cut short: *path* holds it, this
    # name (left empty, the placeholder of fs.publish on FUSE) was to be its name
    finished_for: Path | None = None


_listeners: list[Callable[[Leftover], None]] = []


def listen(listener: Callable[[Leftover], None] | None) -> None:
    """Have *listener* told of every leftover found from now on (the CLI says it); None: nobody."""
    _listeners.clear()
    if listener is not None:
        _listeners.append(listener)


# What a temporary name adds to the output's: ".", ".PID." (up to 10 digits), 12 random
# characters at most (an E01 folder's) and the longer suffix; NAME_MAX is 255 bytes (ext4, XFS …).
_ADDED = 1 + 12 + 12 + max(len(SUFFIX), len(E01_SUFFIX))
_NAME_ROOM = 255 - _ADDED


def prefix_for(final: Path) -> str:
    """The start of the name of this process's temporary file for *final*: the output's name
    cut, where long, so that the whole fits in 255 bytes (a name of up to 255 is allowed)."""
    name = final.name
    while len(os.fsencode(name)) > _NAME_ROOM:
        name = name[:-1]
    return f".{name}.{os.getpid()}."


def hold(fd: int) -> None:
    """Lock the temporary file *fd* for as long as this process lives (best effort: a file
    system without locks still has the process id to tell)."""
    with suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def clean(final: Path) -> list[Leftover]:
    """Remove from *final*'s folder the unfinished files whose writer is dead; name the files of
    the older pattern for *final*. Each is told to the listener and returned."""
    folder = final.absolute().parent
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    older = re.compile(re.escape(f".{final.name}.") + r"(?:[1-9][0-9]{0,9}\.)?" + _RANDOM +
                       re.escape(_OLDER_SUFFIX))
    found: list[Leftover] = []
    for name in sorted(names):
        ours = _OURS.fullmatch(name)
        e01 = _E01.fullmatch(name)
        if ours is not None and _left_by_a_dead_writer(folder / name, int(ours.group(2))):
            found.append(_finished_or_removed(folder / name, folder / ours.group(1)))
        elif e01 is not None and _own_folder(folder / name) and \
                not _running(int(e01.group(1))):
            remove_tree(folder / name)
            found.append(Leftover(folder / name, removed=not os.path.lexists(folder / name)))
        elif ours is None and older.fullmatch(name) and _own_file(folder / name):
            found.append(Leftover(folder / name, removed=False))
    for leftover in found:
        for listener in _listeners:
            listener(leftover)
    return found


def _finished_or_removed(temporary: Path, named: Path) -> Leftover:
    """Remove a dead writer's *temporary*, unless it is finished: on a file system without
    exclusive renames (FUSE) publish reserves the name with an empty file and renames the
    finished temporary over it, and a kill -9 between the two leaves the output whole in
    *temporary* beside an empty *named*. A capture of a failing disk may not be repeatable:
    that one is kept and named, never removed."""
    with suppress(OSError):  # either may go meanwhile (another command cleaning up)
        if _own_file(named) and os.lstat(named).st_size == 0 and \
                os.lstat(temporary).st_size > 0:
            return Leftover(temporary, removed=False, finished_for=named)
    with suppress(FileNotFoundError):
        os.unlink(temporary)
    return Leftover(temporary, removed=not os.path.lexists(temporary))


def _own_file(path: Path) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid()


def _own_folder(path: Path) -> bool:
    """A folder of this user's, private where the file system keeps modes (a link is not)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and \
        (stat.S_IMODE(info.st_mode) == 0o700 or not keeps_modes(path))


def _left_by_a_dead_writer(path: Path, pid: int) -> bool:
    """Whether *path* is a file of this user's whose writer is gone: its process does not run
    and nobody holds its lock (a process id reused since, or a writer on another computer
    sharing the folder, keeps it: better left than taken from a writer at work)."""
    if pid == os.getpid() or _running(pid) or not _own_file(path):
        return False
    try:
        # (O_NONBLOCK: a FIFO put there would block the open until a writer came)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN)  # no locks here: pid says
    finally:
        os.close(fd)
    return True


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process (EPERM): running
    return True


def working_folder(kind: str) -> str:
    """A new private folder (0700) in the system's temporary folder for this process's work of
    *kind* ("ek-web"), named ``KIND-PID-XXXXXXXX``; first, the folders of that kind left by
    processes that are gone (killed outright: nothing removed them) are removed."""
    root = tempfile.gettempdir()
    pattern = re.compile(re.escape(kind) + r"-([1-9][0-9]{0,9})-" + _RANDOM)
    with suppress(OSError):
        for name in os.listdir(root):
            found = pattern.fullmatch(name)
            path = Path(root) / name
            if found is not None and int(found.group(1)) != os.getpid() and \
                    not _running(int(found.group(1))) and _own_folder(path):
                remove_tree(path)
    return tempfile.mkdtemp(prefix=f"{kind}-{os.getpid()}-")
