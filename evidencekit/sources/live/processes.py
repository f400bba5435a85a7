"""Item 4: the processes, each with its executable's SHA-256; a running executable whose file
was deleted is kept open here so that its bytes can be copied in full (:class:`DeletedExecutable`).

psutil gives what every system has (pid, parent, user, start time, command line); on Linux the
details are read from ``/proc`` directly: every descriptor (files, sockets, pipes), the whole
environment and ``maps`` as the kernel words them, and the executable through ``/proc/PID/exe``,
which reaches the file the process runs even after it was deleted or replaced.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

from evidencekit.clock import Clock, rfc3339
from evidencekit.fs.noatime import open_keeping_atime
from evidencekit.sources.live.common import IS_LINUX, Document, Gaps, envelope, reason, text

_DELETED = b" (deleted)"
_CHUNK = 1 << 20
_BASIC = ["pid", "ppid", "name", "create_time", "status", "num_threads"]
_DENIED = object()


@dataclass
class DeletedExecutable:
    """A running executable whose file is gone: held open (its bytes stay readable even if the
    process ends) until the source has copied it into the bag."""

    fd: int
    size: int
    name: str  # "PID-NAME", of the first process found running it
    pids: list[int]


@dataclass
class _Executables:
    """Executables hashed once each (by device, inode, size and times), deleted ones held."""

    hashes: dict[tuple[int, ...], str] = field(default_factory=dict)
    deleted: dict[tuple[int, ...], DeletedExecutable] = field(default_factory=dict)


@dataclass
class Snapshot:
    document: Document
    deleted: list[DeletedExecutable]


def collect(clock: Clock, *, details: bool = True) -> Snapshot:
    """Every process visible now. *details* False: the short form of the second snapshot
    (identity, parent, command line, executable path), for the differences."""
    started = clock()
    gaps = Gaps()
    executables = _Executables()
    users: dict[int, str | None] = {}
    own = os.getpid()
    found = []
    for process in psutil.process_iter():
        record = _process(process, users, executables if details else None, own)
        if record is not None:
            found.append(record)
    found.sort(key=lambda r: r["pid"])
    body = {"own_pid": own, "count": len(found), "processes": found}
    if not details:
        body["short_form"] = True
    return Snapshot(envelope("processes", clock, started, gaps, body),
                    sorted(executables.deleted.values(), key=lambda d: d.name))


def _process(process: psutil.Process, users: dict[int, str | None],
             executables: _Executables | None, own: int) -> dict[str, Any] | None:
    record: dict[str, Any] = {"pid": process.pid}
    gaps = Gaps()
    try:
        with process.oneshot():
            info = process.as_dict(_BASIC, ad_value=_DENIED)
    except psutil.NoSuchProcess:
        return None  # ended between the listing and the reading: it was not there to record
    for key, value in info.items():
        if value is _DENIED:  # as_dict's stand-in for a field the system refused
            gaps.items[key] = reason(psutil.AccessDenied(process.pid))
            info[key] = None
    record["ppid"] = info["ppid"]
    record["name"] = info["name"]
    record["status"] = info["status"]
    record["threads"] = info["num_threads"]
    created = info["create_time"]
    # psutil gives seconds as a float: rounded to the microsecond, the ticks the kernel counts
    record["start_time"] = None if created is None else rfc3339(round(created * 1e6) * 1000)
    record["user"] = _user(process, users, gaps)
    record["cmdline"] = gaps.attempt("cmdline", process.cmdline)
    record["evidencekit"] = process.pid == own
    if process.pid != own and info["ppid"] == own:
        record["started_by_evidencekit"] = True
    kernel_thread = IS_LINUX and record["cmdline"] == [] and 2 in (process.pid, info["ppid"])
    if kernel_thread:  # no executable, environment or maps of its own: nothing to read
        record.update(kernel_thread=True, exe=None, cwd=None, environment=None,
                      memory_maps=None, open_files=None)
    elif IS_LINUX:
        _linux_exe(process.pid, record, executables, gaps)
    else:
        _portable_exe(process, record, executables, gaps)
    if executables is not None and not kernel_thread:
        record["cwd"] = gaps.attempt("cwd", process.cwd)
        _details(process, record, gaps)
    record["not_collected"] = dict(sorted(gaps.items.items()))
    return record


def _user(process: psutil.Process, users: dict[int, str | None], gaps: Gaps) -> str | None:
    """The real user's name (looked up once per user id: the password database is slow)."""
    uids = gaps.attempt("user", process.uids) if hasattr(process, "uids") else None
    if uids is None:
        return gaps.attempt("user", process.username)
    if uids.real not in users:
        users[uids.real] = _name_of_user(uids.real)
    return users[uids.real] or str(uids.real)


def _name_of_user(uid: int) -> str | None:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return None


def _linux_exe(pid: int, record: dict[str, Any], executables: _Executables | None,
               gaps: Gaps) -> None:
    link = gaps.attempt("exe", lambda: os.readlink(f"/proc/{pid}/exe".encode()))
    if link is None:
        record["exe"] = None
        return
    deleted = link.endswith(_DELETED)
    record["exe"] = text(link[: -len(_DELETED)] if deleted else link)
    record["exe_deleted"] = deleted
    if executables is None:
        return
    _hash_exe(record, executables, gaps, lambda: os.open(f"/proc/{pid}/exe", os.O_RDONLY |
                                                         os.O_CLOEXEC), deleted)


def _portable_exe(process: psutil.Process, record: dict[str, Any],
                  executables: _Executables | None, gaps: Gaps) -> None:
    path = gaps.attempt("exe", process.exe)
    record["exe"] = path or None
    record["exe_deleted"] = False
    if path and executables is not None:
        _hash_exe(record, executables, gaps,
                  lambda: open_keeping_atime(path, os.O_RDONLY | getattr(os, "O_BINARY", 0)),
                  False)


def _hash_exe(record: dict[str, Any], executables: _Executables, gaps: Gaps,
              opener: Callable[[], int], deleted: bool) -> None:
    fd = gaps.attempt("exe_sha256", opener)
    if fd is None:
        record["exe_sha256"] = None
        return
    keep = False
    try:
        info = os.fstat(fd)
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        if key not in executables.hashes:
            digest = gaps.attempt("exe_sha256", lambda: _sha256_of(fd))
            if digest is None:
                record["exe_sha256"] = None
                return
            executables.hashes[key] = digest
        record["exe_sha256"] = executables.hashes[key]
        if deleted and stat.S_ISREG(info.st_mode):
            held = executables.deleted.get(key)
            if held is None:
                name = f"{record['pid']}-{_safe(record['name'])}"
                held = executables.deleted[key] = DeletedExecutable(fd, info.st_size, name, [])
                keep = True
            held.pids.append(record["pid"])  # its copy's name is the source's (exe_copy)
    finally:
        if not keep:
            os.close(fd)


def _sha256_of(fd: int) -> str:
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, _CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def _safe(name: Any) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(name or "process"))
    return cleaned[:64] or "process"


def _details(process: psutil.Process, record: dict[str, Any], gaps: Gaps) -> None:
    if IS_LINUX:
        base = f"/proc/{process.pid}"
        record["open_files"] = gaps.attempt("open_files", lambda: _descriptors(base))
        record["environment"] = gaps.attempt("environment", lambda: _environment(base))
        record["memory_maps"] = gaps.attempt("memory_maps", lambda: _maps(base))
        return
    record["open_files"] = gaps.attempt("open_files", lambda: [
        {"fd": f.fd, "target": f.path} for f in process.open_files()])
    record["environment"] = gaps.attempt("environment", lambda: [
        f"{key}={value}" for key, value in sorted(process.environ().items())])
    record["memory_maps"] = gaps.attempt("memory_maps", lambda: [
        f"{m.addr} {m.perms} {m.path}" for m in process.memory_maps(grouped=False)])


def _descriptors(base: str) -> list[dict[str, Any]]:
    """Every open descriptor and what it reaches (a file, ``socket:[inode]``, ``pipe:[…]``)."""
    found: list[tuple[int, str]] = []
    folder = f"{base}/fd"
    for name in os.listdir(folder):
        try:
            found.append((int(name), text(os.readlink(f"{folder}/{name}".encode()))))
        except FileNotFoundError:
            continue  # closed since the listing
    return [{"fd": fd, "target": target} for fd, target in sorted(found)]


def _environment(base: str) -> list[str]:
    with open(f"{base}/environ", "rb") as file:
        return [text(item) for item in file.read().split(b"\0") if item]


def _maps(base: str) -> list[str]:
    with open(f"{base}/maps", "rb") as file:
        return [text(line) for line in file.read().splitlines()]
