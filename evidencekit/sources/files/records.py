"""Manifest records of what the file walk finds: the fields of a `ManifestEntry`
(evidencekit.format.entries) read from the file system (stat, owner names, xattrs, link targets)."""

from __future__ import annotations

import base64
import grp
import os
import pwd
import stat
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from evidencekit.clock import rfc3339
from evidencekit.format.entries import ManifestEntry, StatFields
from evidencekit.sources.files.birthtime import birth_time_ns
from evidencekit.sources.files.walk import Entry


def bytes_from_field(record: dict[str, Any], key: str) -> bytes:
    if f"{key}_b64" in record:
        return base64.b64decode(record[f"{key}_b64"], validate=True)
    value = record[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} is not a string")
    return value.encode("utf-8")


def _names(lookup: Callable[[int], Sequence[Any]]) -> Callable[[int], str | None]:
    """A cached lookup of the name of a user or group number (the first field of what *lookup*
    returns: ``pw_name``, ``gr_name``); None for a number the system does not know."""

    @lru_cache(maxsize=1024)
    def name(number: int) -> str | None:
        try:
            return str(lookup(number)[0])
        except KeyError:
            return None

    return name


owner_name = _names(pwd.getpwuid)
group_name = _names(grp.getgrgid)


def stat_fields(info: os.stat_result, entry: Entry) -> StatFields:
    birth = birth_time_ns(entry.dir_fd, entry.name, info)
    return StatFields(
        mode=stat.S_IMODE(info.st_mode),
        uid=info.st_uid,
        gid=info.st_gid,
        owner=owner_name(info.st_uid),
        group=group_name(info.st_gid),
        mtime=rfc3339(info.st_mtime_ns),
        atime=rfc3339(info.st_atime_ns),
        ctime=rfc3339(info.st_ctime_ns),
        birthtime=rfc3339(birth) if birth is not None else None,
        inode=info.st_ino,
        device=info.st_dev,
        nlink=info.st_nlink,
    )


def allocated_bytes(info: os.stat_result) -> int | None:
    """``allocated_bytes`` for a file that occupies less disk than its size (sparse, with holes;
    or compressed or inlined by the file system): recorded so the manifest says so, although
    the bag stores the logical content, holes as zeros (docs/FORMAT.md §4.3). None for a file
    fully allocated, or where the OS reports no block count."""
    blocks = getattr(info, "st_blocks", None)
    if blocks is None or blocks * 512 >= info.st_size:  # st_blocks counts 512-byte units
        return None
    return int(blocks * 512)


def read_xattrs(entry: Entry, fd: int | None = None) -> dict[str, str] | None:
    """Extended attributes as {name: base64 value}; None where the OS or file system has none."""
    if not hasattr(os, "listxattr"):
        return None
    target: int | str = fd if fd is not None else _proc_path(entry)
    follow = fd is not None
    try:
        names = os.listxattr(target, follow_symlinks=follow)
        return {
            name: base64.b64encode(os.getxattr(target, name, follow_symlinks=follow)).decode()
            for name in sorted(names)
        }
    except OSError:
        return None


def _proc_path(entry: Entry) -> str:
    # Reach the entry through its directory's descriptor, so no symlink on the way is followed.
    return os.fsdecode(b"/proc/self/fd/%d/" % entry.dir_fd + entry.name)


def base_record(entry: Entry, with_stat: bool = True) -> ManifestEntry:
    """The fields every entry has; *with_stat* False leaves out those from ``lstat`` (capture
    fills them from ``fstat`` of the opened file instead, or with :func:`add_listing`)."""
    record = ManifestEntry(entry.source.index, entry.bag_path, entry.kind, entry.path,
                           entry.error)
    if with_stat:
        add_listing(record, entry)
    return record


def add_listing(record: ManifestEntry, entry: Entry) -> None:
    """The ``lstat`` fields of *entry* (and its size), as base_record records them."""
    if entry.lstat is not None:
        record.stat = stat_fields(entry.lstat, entry)
        record.size = entry.lstat.st_size


def special_record(entry: Entry) -> ManifestEntry:
    """Record for anything whose content is not captured: folder, symlink, FIFO, socket, device,
    a file not read, an error."""
    record = base_record(entry)
    if entry.lstat is None:
        return record
    if entry.kind == "symlink":
        try:
            record.target = os.readlink(entry.name, dir_fd=entry.dir_fd)
        except OSError as exc:
            record.error = f"could not read the link: {exc.strerror}"
    elif entry.kind in ("char-device", "block-device"):
        record.rdev = (os.major(entry.lstat.st_rdev), os.minor(entry.lstat.st_rdev))
    if entry.kind != "unknown":
        record.xattrs = read_xattrs(entry)
    return record
