"""The entries of ``manifest.json``: `ManifestEntry` as capture writes one, and the checks of an
entry read from a bundle, untrusted until every field is checked.

A bundle from a stranger is signed by the stranger, so a signature that verifies says nothing about
whether the manifest is sane. ``entry_problems`` checks each entry against docs/FORMAT.md §4.3
before anything acts on it: ``extract`` uses ``bag_path``, ``path``, ``kind``, ``target``, ``mode``
and the times to create links, rename and restore metadata, so each must be of the right type and
every path must stay inside the bag.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from evidencekit.clock import parse_rfc3339

KINDS = ("file", "directory", "symlink", "fifo", "socket", "char-device", "block-device",
         "unknown")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIMES = ("mtime", "atime", "ctime", "birthtime")
_INTEGERS = ("source", "mode", "uid", "gid", "size", "inode", "device", "nlink", "rdev_major",
             "rdev_minor", "allocated_bytes", "reported_size")


def bytes_field(key: str, value: bytes) -> dict[str, str]:
    """``{key: text}`` when *value* is UTF-8, else ``{key_b64: base64}``: byte-exact either way."""
    try:
        return {key: value.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{key}_b64": base64.b64encode(value).decode("ascii")}


class NotRead(enum.Enum):
    """``xattrs`` never asked for: the field is left out (None says they were asked for and the
    OS or file system has none to give)."""

    NOT_READ = "not read"


NOT_READ: Literal[NotRead.NOT_READ] = NotRead.NOT_READ


@dataclass(frozen=True, slots=True)
class StatFields:
    """What ``lstat`` (or ``fstat`` of the opened file) said of an entry: all present, or none."""

    mode: int  # permission bits only
    uid: int
    gid: int
    owner: str | None  # None: the uid has no name here
    group: str | None
    mtime: str  # RFC 3339, nanoseconds
    atime: str
    ctime: str
    birthtime: str | None  # None: the system does not tell
    inode: int
    device: int
    nlink: int

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "uid": self.uid, "gid": self.gid, "owner": self.owner,
                "group": self.group, "mtime": self.mtime, "atime": self.atime,
                "ctime": self.ctime, "birthtime": self.birthtime, "inode": self.inode,
                "device": self.device, "nlink": self.nlink}


@dataclass(frozen=True, slots=True)
class Stored:
    """A file whose content is in the bag: its hash and what reading it found changed."""

    sha256: str
    changes: tuple[str, ...] = ()  # a sentence each; ``changed_during_read`` when any


_LEFT_OUT_WHEN_NONE = ("size", "allocated_bytes", "reported_size", "link_to", "mime")


@dataclass(slots=True)
class ManifestEntry:
    """One entry of manifest.json as capture writes it (docs/FORMAT.md §4.3); a field that is
    None (``xattrs``: NOT_READ) is left out, except ``error``, always there (null: no error).

    Built in steps while the entry is captured; `to_json` is its canonical JSON value."""

    source: int  # the index of its ``sources`` record
    bag_path: str
    kind: str  # one of KINDS
    path: bytes
    error: str | None = None
    stat: StatFields | None = None
    size: int | None = None  # what is stored (a file), or what lstat said
    allocated_bytes: int | None = None  # a sparse file: what it occupies on disk
    reported_size: int | None = None  # what fstat said, when reading to the end gave another size
    xattrs: dict[str, str] | Literal[NotRead.NOT_READ] | None = NOT_READ  # name: base64 value
    target: bytes | None = None  # a symbolic link's
    rdev: tuple[int, int] | None = None  # a device's (major, minor)
    link_to: str | None = None  # another name of a file stored once: the first name's bag_path
    mime: str | None = None
    stored: Stored | None = None

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"source": self.source, "bag_path": self.bag_path,
                                  "kind": self.kind, "error": self.error}
        record.update(bytes_field("path", self.path))
        if self.stat is not None:
            record.update(self.stat.to_json())
        for key in _LEFT_OUT_WHEN_NONE:
            value = getattr(self, key)
            if value is not None:
                record[key] = value
        if self.xattrs is not NOT_READ:
            record["xattrs"] = self.xattrs
        if self.target is not None:
            record.update(bytes_field("target", self.target))
        if self.rdev is not None:
            record["rdev_major"], record["rdev_minor"] = self.rdev
        if self.stored is not None:
            record.update(sha256=self.stored.sha256, changed_during_read=bool(self.stored.changes),
                          changes=list(self.stored.changes))
        return record

    def shown_path(self) -> str:
        """The path for people: bytes that are not UTF-8 as backslash escapes."""
        return self.path.decode("utf-8", "backslashreplace")


def safe_relative(parts: list[str] | list[bytes]) -> bool:
    """True when every component is a real name: not empty, ``.``, ``..``, and without NUL."""
    return bool(parts) and all(
        part not in ("", ".", "..", b"", b".", b"..") and ("\0" not in part if isinstance(
            part, str) else b"\0" not in part) for part in parts)


def safe_bag_path(value: object) -> bool:
    """A ``bag_path``: ``data/…``, relative, without ``.``/``..`` or empty components."""
    return isinstance(value, str) and value.startswith("data/") and safe_relative(value.split("/"))


def raw_field(entry: dict[str, Any], key: str) -> bytes | None:
    """The bytes of ``key`` or ``key_b64``; None when absent, ValueError when malformed."""
    if f"{key}_b64" in entry:
        value = entry[f"{key}_b64"]
        if not isinstance(value, str):
            raise ValueError(f"{key}_b64 is not a string")
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ValueError(f"{key}_b64 is not valid base64") from None
    if key not in entry:
        return None
    value = entry[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} is not a string")
    return value.encode("utf-8", "surrogateescape")


def entry_problems(entries: object) -> Iterator[tuple[str, str]]:
    """(where, problem) for every entry that breaks §4.3; nothing for a sane list."""
    if not isinstance(entries, list):
        yield "entries", "manifest.json: 'entries' is not a list"
        return
    checker = EntryChecker()
    for entry in entries:
        yield from checker.problems(entry)


class EntryChecker:
    """`entry_problems` one entry at a time, for a manifest read as a stream: what it keeps
    between entries is the set of bag paths seen, to catch one listed twice (`seen` lets a
    caller ask, rather than keep a set of 100,000 paths of its own)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()  # every string bag_path, unsafe ones too
        self._number = 0

    def seen(self, bag_path: str) -> bool:
        """Whether an entry checked before this one had *bag_path*."""
        return bag_path in self._seen

    def problems(self, entry: object) -> Iterator[tuple[str, str]]:
        where = f"entries[{self._number}]"
        self._number += 1
        if not isinstance(entry, dict):
            yield where, "manifest entry is not an object"
            return
        bag_path = entry.get("bag_path")
        repeated = isinstance(bag_path, str) and bag_path in self._seen
        if isinstance(bag_path, str):
            self._seen.add(bag_path)
        if not safe_bag_path(bag_path):
            yield where, f"manifest entry has an unsafe or malformed bag_path {bag_path!r}"
            return
        assert isinstance(bag_path, str)
        if repeated:
            yield bag_path, "manifest lists this bag_path twice"
        for problem in _field_problems(entry):
            yield bag_path, f"manifest entry: {problem}"


def _field_problems(entry: dict[str, Any]) -> Iterator[str]:
    kind = entry.get("kind")
    if kind not in KINDS:
        yield f"unknown kind {kind!r}"
    try:
        path = raw_field(entry, "path")
        target = raw_field(entry, "target")
    except ValueError as exc:
        yield str(exc)
        return
    if path is None or path.startswith(b"/") or not safe_relative(path.split(b"/")):
        yield "path is missing, absolute, or has empty, '.' or '..' components"
    if target is not None and b"\0" in target:
        yield "link target holds a NUL byte"
    error = entry.get("error")
    if error is not None and not isinstance(error, str):
        yield "error is neither null nor a string"
    for key in _INTEGERS:
        value = entry.get(key)
        if key in entry and value is not None and (not isinstance(value, int) or
                                                   isinstance(value, bool)):
            yield f"{key} is not an integer"
    for key in ("allocated_bytes", "reported_size"):
        value = entry.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            yield f"{key} is negative"
    for key in _TIMES:
        value = entry.get(key)
        if value is None:
            continue
        try:
            parse_rfc3339(value)
        except (TypeError, ValueError, AttributeError):
            yield f"{key} is not a UTC timestamp"
    link_to = entry.get("link_to")
    if "link_to" in entry and (kind != "file" or not safe_bag_path(link_to) or
                               link_to == entry.get("bag_path")):
        yield "link_to is not the bag_path of another file"
    sha256 = entry.get("sha256")
    if sha256 is not None and not (isinstance(sha256, str) and _HEX64.fullmatch(sha256)):
        yield "sha256 is not a SHA-256 hex digest"
