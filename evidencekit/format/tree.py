"""The payload tar against manifest.json: exactly the tree the sealer signed (docs/FORMAT.md §4.2).

What the sealer signs is ``manifest.json``; what ``tar -x`` (and ``evidencekit extract``) makes
of the payload is whatever its tar holds. Whoever can decrypt can re-encrypt another tar under a
``resealed`` event (signed by an untrusted key, that is only a warning), so the file hashes alone
are not enough: a forged payload could add folders, drop an empty one, or store a folder where
the sealer recorded a symbolic link, and every file would still match. So, with a key, every
member of ``bag/data/`` is held against its entry, and every entry against its member, the way
capture writes them (evidencekit.capture):

* a ``file`` entry with a ``sha256`` is stored: a regular member, or a hard link member when it
  has ``link_to``; a file without one (it could not be opened) is not;
* a ``directory`` entry whose ``lstat`` worked (it has a ``mode``) is stored as a folder member,
  unless it was skipped (``error`` ``skipped: …``); an ``error`` about its content (could not
  list it) does not change that;
* nothing else is stored: symbolic links, FIFOs, sockets, devices and what could not be read are
  in manifest.json only;
* a stored member carries the entry's ``mode`` (a folder's with the owner's rwx added), ``uid``,
  ``gid`` and ``mtime`` (to the nanosecond); an entry without stat fields (a stream, ``capture
  --stdin``) is a member with mode 0600 and owner 0; the members come in the manifest's order.

Files missing or extra, and their content, are the hash comparison's (evidencekit.verify); this
module reports folders, kinds, metadata and order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evidencekit.clock import parse_rfc3339, rfc3339

if TYPE_CHECKING:  # capture imports this module for STREAM_MODE, and reads no payload
    from evidencekit.payload import StoredMember

Problem = tuple[str, str, object, object]  # where, what, expected, found

DIRECTORY = "directory"
_FOLDER_OWNER_BITS = 0o700  # added to a folder's mode so that tar -x can fill it
STREAM_MODE = 0o600  # the member of an entry without stat fields (evidencekit.sources)
_KIND_WORDS = {"file": "a file", "hard link": "a hard link to another file",
               DIRECTORY: "a folder", "symlink": "a symbolic link", "fifo": "a FIFO",
               "socket": "a socket", "char-device": "a character device",
               "block-device": "a block device", "unknown": "something that could not be read"}


def stored_as(entry: dict[str, Any]) -> str | None:
    """How capture stores *entry* in the payload tar: "file", "hard link", "directory", or None
    when it is in manifest.json only."""
    kind = entry.get("kind")
    if kind == "file":
        if not isinstance(entry.get("sha256"), str):
            return None
        return "hard link" if "link_to" in entry else "file"
    if kind == DIRECTORY:
        error = entry.get("error")
        mode = entry.get("mode")
        if not isinstance(mode, int) or isinstance(mode, bool) or \
                (isinstance(error, str) and error.startswith("skipped")):
            return None
        return DIRECTORY
    return None


def _words(kind: object) -> str:
    return _KIND_WORDS.get(kind, f"an entry of kind {kind!r}") if isinstance(kind, str) \
        else "an entry of unknown kind"


class TreeComparison:
    """Fed every sane manifest entry in order (:meth:`check`), then :meth:`problems`."""

    def __init__(self, members: dict[str, StoredMember], order: list[str]) -> None:
        self._members = members
        self._order = order  # data/ members in the order the tar holds them
        self._matched: set[str] = set()  # folders only: only they are looked for afterwards
        self._expected_order: list[str] = []
        self._problems: list[Problem] = []

    def check(self, entry: dict[str, Any], path: str) -> None:
        """*entry* is a dict whose ``bag_path`` is *path*, seen for the first time."""
        stored = stored_as(entry)
        member = self._members.get(path)
        if member is not None and member.kind == DIRECTORY:
            self._matched.add(path)
        if stored is None:
            if member is not None:
                self._problems.append((path, f"the payload holds {_words(member.kind)} where "
                                       f"manifest.json records {_words(entry.get('kind'))} "
                                       "that is not stored in the tar", None, member.kind))
            return
        self._expected_order.append(path)
        if member is None:
            if stored == DIRECTORY:  # a missing file is the hash comparison's finding
                self._problems.append((path, "folder recorded in manifest.json is not in the "
                                       "payload", None, None))
            return
        if (stored == DIRECTORY) != (member.kind == DIRECTORY):
            # file against hard link: the hash comparison names the link it should be
            self._problems.append((path, f"manifest.json records {_words(stored)} here, the "
                                   f"payload holds {_words(member.kind)}", stored, member.kind))
            return
        self._compare_metadata(entry, path, member)

    def _compare_metadata(self, entry: dict[str, Any], path: str, member: StoredMember) -> None:
        if _same_metadata(entry, member):
            return  # nearly always: no field to put in words
        if "mode" not in entry:
            # A stream (capture --stdin) has no stat fields: its member has mode 0600, owner 0
            # and the time reading began, which the manifest does not record (FORMAT.md §4.3).
            fields = [("mode", _octal(STREAM_MODE), _octal(member.mode)),
                      ("uid", 0, member.uid), ("gid", 0, member.gid)]
        else:
            mode = entry.get("mode")
            if isinstance(mode, int) and member.kind == DIRECTORY:
                mode |= _FOLDER_OWNER_BITS
            fields = [("mode", _octal(mode), _octal(member.mode)),
                      ("uid", entry.get("uid"), member.uid),
                      ("gid", entry.get("gid"), member.gid),
                      ("mtime", entry.get("mtime"), _time(_closest(member, entry.get("mtime"))))]
        expected: list[str] = []
        found: list[str] = []
        for field, wanted, actual in fields:
            if wanted != actual:
                expected.append(f"{field} {wanted}")
                found.append(f"{field} {actual}")
        if expected:
            self._problems.append((path, "the payload's tar header differs from manifest.json "
                                   f"({', '.join(f.split()[0] for f in found)})",
                                   ", ".join(expected), ", ".join(found)))

    def problems(self, check_order: bool = True) -> list[Problem]:
        """What :meth:`check` found, then folders no entry accounts for, then the order (only
        when every member matched and *check_order*: else the order says nothing new)."""
        problems = list(self._problems)
        for path, member in self._members.items():
            if member.kind == DIRECTORY and path.startswith("data/") and \
                    path not in self._matched:
                problems.append((path, "folder in the payload is not in manifest.json", None,
                                 None))
        if check_order and not problems and self._expected_order != self._order:
            where = next((found for wanted, found in zip(self._expected_order, self._order,
                                                         strict=False) if wanted != found),
                         "data/")
            problems.append((where, "payload members are not in the order manifest.json lists "
                             "them", None, None))
        return problems


def _same_metadata(entry: dict[str, Any], member: StoredMember) -> bool:
    """True when the member's header agrees with *entry* on every field (what
    :meth:`TreeComparison._compare_metadata` compares, compared as values: it formats them
    only to report a difference). False when anything differs, or may."""
    mode = entry.get("mode")
    if type(mode) is not int or member.legacy_mtime_ns is not None:
        return False  # a stream, a malformed mode, or a time with two readings: the long way
    if member.kind == DIRECTORY:
        mode |= _FOLDER_OWNER_BITS
    return (mode == member.mode and entry.get("uid") == member.uid
            and entry.get("gid") == member.gid and entry.get("mtime") == _time(member.mtime_ns))


def _octal(mode: object) -> object:
    return f"{mode:04o}" if isinstance(mode, int) and not isinstance(mode, bool) else mode


def _closest(member: StoredMember, recorded: object) -> int:
    """The member's time as the manifest records it when its header says so, in the encoding
    of now or of an older writer (before 1970, payload.StoredMember.legacy_mtime_ns); else as
    read now."""
    if member.legacy_mtime_ns is None:  # nearly always: one reading only, nothing to parse
        return member.mtime_ns
    try:
        wanted = parse_rfc3339(recorded) if isinstance(recorded, str) else None
    except ValueError:
        wanted = None
    return wanted if wanted is not None and member.has_time(wanted) else member.mtime_ns


def _time(ns: int) -> str:
    try:
        return rfc3339(ns)
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"

