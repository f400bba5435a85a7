"""Whether a command under test has started writing its output into a folder: a new entry there
(a staging folder, a hidden .partial file), or a file without a name there (O_TMPFILE, what
evidencekit.fs.staged makes where it can) that the process holds open."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import Any

import pytest


def being_written(pid: int, folder: Path) -> list[str]:
    """What process *pid* writes into *folder*: the entries in it, and the files without a name
    there that *pid* holds open, as /proc/PID/fd/N (their link reads "FOLDER/#INODE
    (deleted)"); each can be stat()ed."""
    found = [str(folder / name) for name in os.listdir(folder)]
    with contextlib.suppress(OSError):  # (the process may have ended)
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(f"{folder}/#"):
                    found.append(f"/proc/{pid}/fd/{fd}")
    return found


def writes_into(pid: int, folder: Path, *, nonempty: bool = False) -> bool:
    """Whether process *pid* writes into *folder* (:func:`being_written`); with *nonempty*,
    into a file (a .partial one, or one without a name) that already holds bytes."""
    for path in being_written(pid, folder):
        if not nonempty:
            return True
        with contextlib.suppress(OSError):  # gone: the command ended
            if (path.endswith(".partial") or path.startswith("/proc/")) and \
                    os.stat(path).st_size > 0:
                return True
    return False


def refuse_o_direct_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.pwrite refuses (EINVAL) every write to a file opened O_DIRECT, as a file system that
    opens such a file but refuses its writes, for the length of the test (or until
    ``monkeypatch.undo()``)."""
    pwrite = os.pwrite

    def refused(fd: int, data: Any, offset: int) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", refused)
