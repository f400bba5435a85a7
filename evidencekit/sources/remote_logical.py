"""Files read over SFTP from a host without evidencekit (``capture --remote``'s fallback), as a
source of kind ``remote-logical`` (docs/FORMAT.md §4.3).

The bundle is sealed here; the host only serves files. SFTP (version 3, what OpenSSH serves)
says less than the host's own file system would: no change time (ctime), no inode or device,
no extended attributes or ACLs, no birth time, times in whole seconds; reading a file may
update its access time there (SFTP cannot open a file without it). So every regular file is
stored flat under ``data/`` (``BAG.var∕log∕auth.log``: a path's ``/`` written ``∕``, U+2215, so
that ``data/`` holds no folder the manifest does not list) without stat fields, and what SFTP
did say about every item found (files, folders, links, others, and errors) is in one JSON
document, ``data/BAG.remote-logical.json`` (docs/schemas/remote-logical.schema.json), which
also names what is missing.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from evidencekit import canonical
from evidencekit.clock import Clock, rfc3339, system_clock
from evidencekit.errors import InputError
from evidencekit.remote.sftp import Attrs, RemoteFile, SftpError, SftpSession
from evidencekit.sources.base import BytesContent, Skip, SourceRecord, StreamEntry
from evidencekit.sources.files.kernel_files import READ_TO_END_LIMIT
from evidencekit.sources.files.walk import Entry, escape_name, unique_name
from evidencekit.sources.files.walk import Source as Root
from evidencekit.text import exact_size

KIND = "remote-logical"
DOCUMENT = "remote-logical.json"
DOCUMENT_TYPE = "evidencekit.remote-logical"
NOT_RECORDED = ["ctime (change time)", "inode and device numbers", "link counts",
                "extended attributes and ACLs", "birth time", "sub-second times",
                "owner and group names (numbers only)"]
ACCESS_TIME = ("reading a file over SFTP may have updated its access time on the remote host "
               "(the atime recorded here is from before it was read)")
_SEPARATOR = "\u2215"  # DIVISION SLASH: a path's "/" in a flat name
# A folder whose path is longer is not listed (recorded so, exit 3): Linux's sftp-server serves
# paths up to 4,096 bytes, and a server whose every folder holds another would be walked without
# end, its paths (all kept) growing memory as the square of the depth: at most 8,192 levels of
# "/d" here, some 64 MiB of paths.
MOST_PATH_BYTES = 16 << 10
# What one capture over SFTP records at most: every item found is held until the end (here its
# line of the JSON document, some 200 bytes and its path; the capture's manifest entry): 1.8 KB
# in all for a short path (100,000 files: 241 MiB at the peak, 68 MiB for 2,000), more for a
# long one (before the lines, 2.8 KB, and 115 KB per item of a 15 KB path). A server listing
# without end, or a wide folder deep down, filled memory; past either bound, a folder is
# recorded as not listed (exit 3), and what was listed before it is captured. A real tree this large is better
# captured by evidencekit installed there, or in several captures.
MOST_ITEMS = 250_000
MOST_PATH_TOTAL = 32 << 20  # bytes of all the paths recorded


@dataclass(frozen=True)
class RemoteHost:
    """Who was asked: for the source record and the JSON document."""

    given: str  # USER@HOST[:PORT] as typed
    host: str
    port: int
    user: str
    host_key: str  # SHA256:…
    host_key_type: str


@dataclass(slots=True)
class _Item:
    path: bytes
    kind: str
    attrs: Attrs | None
    stored_as: str | None = None
    link_target: bytes | None = None
    error: str | None = None
    changes: list[str] | None = None  # None, not a list of its own: one per item found

    def to_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {"path": escape_name(self.path), "type": self.kind,
                                "stored_as": self.stored_as, "error": self.error}
        item.update(self.attrs.to_json() if self.attrs else {
            "size": None, "uid": None, "gid": None, "mode": None, "atime": None,
            "mtime": None})
        if self.link_target is not None:
            item["link_target"] = escape_name(self.link_target)
        if self.changes:
            item["changes"] = self.changes
        return item


class RemoteLogicalSource:
    """The remote *paths* read over *session*, one source record of kind ``remote-logical``."""

    def __init__(self, session: SftpSession, host: RemoteHost, paths: list[bytes],
                 clock: Clock = system_clock) -> None:
        self._session = session
        self._host = host
        self._paths = paths
        self._clock = clock
        self._index = 0
        self._bag_name = _bag_candidate(host.host)
        self._taken: set[str] = set()
        # Every item found is in the JSON document, written at the end: each is kept as its
        # canonical JSON (some 200 bytes and its path), not as objects (some 1.4 KB). A file's
        # line is written once it has been read (its error, its changes): when the walk goes on.
        self._lines: list[bytes] = []
        self._reading: _Item | None = None
        self.recorded = 0  # items in the document
        self._files = 0
        self._errors = 0
        self._started = 0
        self._bytes = 0
        self._failed: list[_Item] = []
        self._held_items = 0  # items listed (recorded, or pending to be): MOST_ITEMS
        self._held_bytes = 0  # and the bytes of their paths: MOST_PATH_TOTAL

    def place(self, first_index: int, taken: set[str]) -> None:
        self._index = first_index
        candidate, number = _bag_candidate(self._host.host), 0
        while candidate in taken or f"{candidate}.{DOCUMENT}" in taken:
            number += 1
            candidate = f"{_bag_candidate(self._host.host)}~{number}"
        self._bag_name = candidate
        taken.update({candidate, f"{candidate}.{DOCUMENT}"})
        self._taken = taken

    def records(self) -> list[SourceRecord]:
        self._written()
        details = {"host": self._host.host, "host_key": self._host.host_key,
                   "files": self._files, "bytes": self._bytes,
                   "errors": self._errors,
                   "not_recorded": ", ".join(NOT_RECORDED)}
        return [SourceRecord(self._index, self._host.given.encode("utf-8"),
                             self._host.host.encode("utf-8"), self._bag_name, kind=KIND,
                             details=details)]

    def estimate(self, skip: Skip) -> tuple[int, int | None]:
        return len(self._paths), None

    def entries(self, skip: Skip) -> Iterator[Entry | StreamEntry]:
        self._started = self._clock()
        self._held_items = len(self._paths)
        self._held_bytes = sum(len(p) for p in self._paths)
        for path, looked in self._looked_up_all_there():
            yield from self._walk(path, looked)
        document = self._document(self._clock())
        yield StreamEntry(self._index, f"{self._bag_name}.{DOCUMENT}".encode(),
                          f"data/{self._bag_name}.{DOCUMENT}", BytesContent(document),
                          mtime_ns=self._clock())

    def _looked_up_all_there(self) -> list[tuple[bytes, Attrs | SftpError]]:
        """Each path given and its attributes (or why they could not be had), once every one
        is known to be there: one that is not is refused before anything is read, as a local
        capture and evidencekit there refuse it ('source not found'): a typo is not evidence
        that something is missing. (One absent among others was recorded and the capture went
        on, exit 3; all absent made a bundle holding only its JSON document.) A path there that
        cannot be looked at is recorded by the walk, as a local one is."""
        looked: list[tuple[bytes, Attrs | SftpError]] = []
        for path in self._paths:
            try:
                looked.append((path, self._session.lstat(path)))
            except SftpError as exc:
                looked.append((path, exc))
        absent = [path for path, found in looked
                  if isinstance(found, SftpError) and found.errno == errno.ENOENT]
        if absent:
            shown = ", ".join(escape_name(p) for p in absent)
            raise InputError(f"not found on {self._host.given}: {shown}; nothing was kept",
                             hint="check the paths on that host (they are its own, not yours)")
        return looked

    def _walk(self, top: bytes, looked: Attrs | SftpError) -> Iterator[Entry | StreamEntry]:
        """*top* and what it holds, depth first in name order, without recursion: a tree may
        be deeper than Python's stack (an SFTP path may be 4096 bytes long: 2,000 levels).
        What is pending is each open folder's path and the names (and attributes) it listed
        not yet visited, the last first: nothing of what was visited is held but its line.
        *looked*: *top*'s attributes, or why they could not be had."""
        yield from self._unread()
        if isinstance(looked, SftpError):
            self._record(_Item(top, "missing", None, error=looked.strerror or str(looked)))
            yield from self._unread()
            return
        pending: list[tuple[bytes, list[tuple[bytes, Attrs]]]] = []
        yield from self._visit(top, looked, pending)
        while pending:
            folder, children = pending[-1]
            if not children:
                pending.pop()
                continue
            name, attrs = children.pop()
            yield from self._visit(folder.rstrip(b"/") + b"/" + name, attrs, pending)
        yield from self._unread()

    def _visit(self, path: bytes, attrs: Attrs,
               pending: list[tuple[bytes, list[tuple[bytes, Attrs]]]]
               ) -> Iterator[Entry | StreamEntry]:
        """*path* as READDIR (or, for a path given, LSTAT) described it. Not LSTAT'ed again:
        that narrowed, never closed, the time in which it may be replaced before it is read
        (SFTP has no inode to check, nor an open that follows no link); a file is checked by
        FSTAT once read instead (_SftpContent.changes, docs/decisions/remote-capture.md)."""
        self._written()
        yield from self._unread()
        mode = attrs.mode
        if mode is None:  # a server listing without a type: asked (OpenSSH lists lstat's)
            try:
                attrs = self._session.lstat(path)
            except SftpError as exc:
                self._record(_Item(path, "missing", None, error=exc.strerror or str(exc)))
                return
            mode = attrs.mode or 0
        if stat.S_ISDIR(mode):
            children = self._directory(path, attrs)
            children.reverse()  # popped from the end: the first name first
            pending.append((path, children))
        elif stat.S_ISREG(mode):
            yield from self._file(path, attrs)
        elif stat.S_ISLNK(mode):
            item = _Item(path, "symlink", attrs)
            try:
                item.link_target = self._session.readlink(path)
            except SftpError as exc:
                item.error = f"its target could not be read: {exc.strerror or exc}"
            self._record(item)
        else:
            self._record(_Item(path, "other", attrs))

    def _written(self) -> None:
        """The file last yielded, read by now (or never to be), in the document."""
        if self._reading is not None:
            item, self._reading = self._reading, None
            self._write(item)

    def _write(self, item: _Item) -> None:
        self._lines.append(canonical.dumps_typed(item.to_json()))
        self.recorded += 1
        self._errors += item.error is not None

    def _record(self, item: _Item) -> None:
        """*item* in the JSON document; if it could not be read, in the manifest too, as an
        entry of kind ``unknown`` with its error: the capture is then incomplete, said in the
        report and the exit code (nothing silent)."""
        self._write(item)
        if item.error:
            self._failed.append(item)

    def _unread(self) -> Iterator[Entry]:
        while self._failed:
            item = self._failed.pop(0)
            flat = escape_name(item.path.strip(b"/")).replace("/", _SEPARATOR)
            name = unique_name(f"{self._bag_name}.{flat}", self._taken)
            self._taken.add(name)
            root = Root(self._index, self._host.given.encode("utf-8"), item.path,
                        self._bag_name, False)
            yield Entry(root, name.encode("utf-8"), f"data/{name}", "unknown", None, -1,
                        item.path, error=item.error)

    def _directory(self, path: bytes, attrs: Attrs) -> list[tuple[bytes, Attrs]]:
        """The folder recorded; the names it holds, in name order, with what READDIR said of
        each. A name no file system gives (empty,
        or with a "/") is the server's invention: recorded as such, never followed (an empty
        one would name the folder itself again, without end)."""
        item = _Item(path, "directory", attrs)
        if len(path) > MOST_PATH_BYTES:
            item.error = (f"its path is longer than {MOST_PATH_BYTES} bytes, which no file "
                          "system gives; its contents were not listed")
            self._record(item)
            return []
        room = MOST_ITEMS - self._held_items
        room_bytes = MOST_PATH_TOTAL - self._held_bytes
        try:
            children = self._session.listdir(path, room, room_bytes)
        except SftpError as exc:
            item.error = f"its contents could not be listed: {exc.strerror or exc}"
            if "not listed further" in str(exc):
                item.error += (f" (one capture over SFTP records at most {MOST_ITEMS:,} items "
                               f"and {exact_size(MOST_PATH_TOTAL)} of paths: capture this "
                               "folder separately, or with evidencekit installed there)")
            self._record(item)
            return []
        self._held_items += len(children)
        self._held_bytes += sum(len(path.rstrip(b"/")) + 1 + len(n) for n, _ in children)
        self._write(item)
        inside = []
        for name, child in children:
            if not name or b"/" in name:
                self._record(_Item(path.rstrip(b"/") + b"/" + name, "other", child, error=(
                    f"the server listed {escape_name(name)!r} in this folder, which is not a "
                    "file name; not read")))
            else:
                inside.append((name, child))
        return inside

    def _file(self, path: bytes, attrs: Attrs) -> Iterator[StreamEntry | Entry]:
        """The file, opened before it is given to the capture: one the server will not open
        (its user may not read it) is recorded unread, as a local capture records it, not
        stored as a file of zeros its listed size (the tar member's size is written before
        its first byte is read)."""
        try:
            opened = self._session.open(path, attrs.size or None)
        except SftpError as exc:
            yield from self._unopened(path, attrs, exc)
            return
        flat = escape_name(path.strip(b"/")).replace("/", _SEPARATOR)
        name = unique_name(f"{self._bag_name}.{flat}", self._taken)
        self._taken.add(name)
        item = _Item(path, "file", attrs, stored_as=f"data/{name}")
        self._reading = item
        self._files += 1
        self._bytes += attrs.size or 0
        mtime = attrs.mtime * 1_000_000_000 if attrs.mtime is not None else self._clock()
        yield StreamEntry(self._index, name.encode("utf-8"), f"data/{name}",
                          _SftpContent(self._session, path, attrs, item, opened),
                          mtime_ns=mtime)

    def _unopened(self, path: bytes, attrs: Attrs, exc: SftpError) -> Iterator[Entry]:
        self._record(_Item(path, "file", attrs,
                           error=f"could not open: {exc.strerror or exc}"))
        yield from self._unread()

    def _document(self, finished: int) -> bytes:
        """The JSON document, its items the lines kept (canonical JSON is the same bytes
        whether an item is encoded alone or inside the document)."""
        self._written()
        host = self._host
        mark = os.urandom(16).hex()  # where the items go: in no path, nor anything else here
        document = canonical.dumps({
            "type": DOCUMENT_TYPE, "version": 1,
            "remote": {"given": host.given, "host": host.host, "port": host.port,
                       "user": host.user, "host_key": host.host_key,
                       "host_key_type": host.host_key_type},
            "protocol": f"SFTP version {self._session.version}, over the system's OpenSSH "
                        "client (ssh -s HOST sftp)",
            "collected_started": rfc3339(self._started), "collected_finished": rfc3339(finished),
            "paths_given": [escape_name(p) for p in self._paths],
            "items": [mark],
            "not_recorded": NOT_RECORDED, "access_time": ACCESS_TIME,
        })
        before, after = document.split(f'"items":["{mark}"]'.encode(), 1)
        lines, self._lines = self._lines, []
        return b"".join((before, b'"items":[', b",".join(lines), b"]", after))


def _bag_candidate(host: str) -> str:
    return host.replace(":", "_") or "remote"


class _SftpContent:
    """A remote file, opened before it is given to capture (one the server will not open is
    recorded unread: RemoteLogicalSource._file); its size is what LSTAT said."""

    def __init__(self, session: SftpSession, path: bytes, attrs: Attrs, item: _Item,
                 opened: RemoteFile | None = None) -> None:
        self._session = session
        self._path = path
        self._attrs = attrs
        self._item = item
        self._file: RemoteFile | None = opened
        self._left = memoryview(b"")
        self._read = 0
        self._unread: str | None = None

    @property
    def size(self) -> int | None:
        """The size listed; None (read to its end) when none was, or 0, which says nothing (a
        file in /proc, one written since it was listed), as for a local file (kernel_files)."""
        return self._attrs.size or None

    def readinto(self, buffer: memoryview) -> int:
        if self.size is None:  # read to its end, which a server may never send
            buffer = buffer[:max(0, READ_TO_END_LIMIT - self._read)]
            if not buffer:
                self._beyond_the_limit()
                return 0
        try:
            if self._file is None:
                self._file = self._session.open(self._path, self.size)
            if not self._left:
                self._left = memoryview(self._file.read())
        except SftpError as exc:
            self._item.error = exc.strerror or str(exc)
            raise
        count = min(len(buffer), len(self._left))
        buffer[:count] = self._left[:count]
        self._left = self._left[count:]
        self._read += count
        return count

    def _beyond_the_limit(self) -> None:
        """A file listed without a size (the free-space watch has nothing to go by) is read
        as a kernel file is, at most READ_TO_END_LIMIT bytes: what more it gives is said."""
        if self._unread is not None:
            return
        try:
            more = bool(self._left) or (self._file is not None and bool(self._file.read()))
        except SftpError as exc:
            more, self._unread = False, (f"not read past {exact_size(READ_TO_END_LIMIT)}: the "
                                         f"server listed {self._listed()} for it, and asked "
                                         f"for more, it answered {exc.strerror or exc}")
        if more:
            self._unread = (f"not read to its end: the server listed {self._listed()} for "
                            f"it, and it still gave more after {exact_size(READ_TO_END_LIMIT)}; the first "
                            f"{READ_TO_END_LIMIT} bytes are stored")
        self._item.error = self._unread

    def _listed(self) -> str:
        return "no size" if self._attrs.size is None else "0 bytes"

    def unread(self) -> str | None:
        """What was not read (evidencekit.sources.base.PartlyRead): the manifest entry's
        error, and the capture incomplete."""
        return self._unread

    def changes(self) -> list[str]:
        if self._file is None:
            return []
        found = []
        try:
            after = self._file.fstat()
            self._file.close()
        except SftpError as exc:
            return [f"it could not be checked after reading: {exc.strerror or exc}"]
        if self._file.past_size:
            found.append(f"the server sent data past the {self._attrs.size} bytes it listed "
                         f"(the file grew, or the server is not to be trusted); the first "
                         f"{self._attrs.size} bytes are stored")
        if after.size != self._attrs.size:
            found.append(f"its size changed while it was read (from {self._attrs.size} to "
                         f"{after.size} bytes)")
        if after.mtime != self._attrs.mtime and after.mtime is not None:
            found.append("it was modified while it was read (mtime "
                         f"{self._attrs.mtime} → {after.mtime})")
        found.extend(_replaced(self._attrs, after))
        self._item.changes = found
        return found


def _replaced(listed: Attrs, opened: Attrs) -> list[str]:
    """What says the file read is not the one listed (replaced, or its type or owner changed
    since READDIR): the walk does not LSTAT it again, and SFTP has no inode to compare, so the
    attributes of the open file are compared with those listed (the record keeps the listed
    ones, and says this)."""
    found = []
    for what, before, now in (("type and permissions", listed.mode, opened.mode),
                              ("owner (uid)", listed.uid, opened.uid),
                              ("group (gid)", listed.gid, opened.gid)):
        if before is not None and now is not None and before != now:
            shown = (f"{before:o} → {now:o}" if what.startswith("type") else
                     f"{before} → {now}")
            found.append(f"its {what} changed between being listed and read ({shown}): it "
                         "may have been replaced; what is stored is what was read")
    return found


def remote_paths(paths: list[str]) -> list[bytes]:
    return [os.fsencode(p) for p in paths]
