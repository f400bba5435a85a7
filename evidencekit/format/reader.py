"""Open a bundle's outer layer: members, seal and custody log, parsed and structurally checked."""

from __future__ import annotations

import os
import re
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from evidencekit.errors import BundleError, InputError
from evidencekit.format.documents import (
    CUSTODY_DIR,
    PAYLOAD,
    README,
    SEAL,
    SEAL_SIG,
    custody_member,
    timestamp_member,
)
from evidencekit.format.outer import BLOCK, Member, read_member, read_members

SMALL_MEMBER_LIMIT = 1 << 20  # README, seal, signatures, custody events
# Structure problems of one kind listed one by one; beyond, one line says how many more (a
# hostile bundle of 100,000 junk members gets a readable report, not 100,000 lines).
LISTED_PROBLEMS = 100
_EVENT_NAME = re.compile(re.escape(CUSTODY_DIR) + r"[0-9]{6}\.json")
_README = README.encode("ascii")
_README_PAX_NAME = b"PaxHeaders/" + _README  # the name in a bundle's very first header
_MEMBER_NAMES = tuple(name.encode("ascii") for name in (README, PAYLOAD, SEAL, SEAL_SIG))
_EVENT_MEMBER = re.compile(rb"custody/[0-9]{6}\.json(\.sig)?\Z")
_TIMESTAMP = re.compile(r"timestamps/[0-9]{6}\.tsr")


class NotABundle(InputError):
    """The file is not an evidencekit bundle at all (a receipt, a report, another archive): the
    wrong file was given, which says nothing about any evidence (exit 2, not 1)."""


@dataclass
class OuterBundle:
    path: Path
    file: BinaryIO
    members: list[Member]
    by_name: dict[str, Member] = field(default_factory=dict)

    def read_small(self, name: str) -> bytes:
        return read_member(self.file, self.by_name[name], SMALL_MEMBER_LIMIT)

    def custody_count(self) -> int:
        """How many custody events the members name (``custody/NNNNNN.json``, six digits):
        other names in custody/ are unexpected members, not events to look for."""
        return sum(1 for m in self.members if _EVENT_NAME.fullmatch(m.name))

    def close(self) -> None:
        self.file.close()


def open_bundle(path: Path) -> OuterBundle:
    """Open and strictly parse the outer tar; BundleError if it is not a well-formed bundle.

    InputError (exit 2) when *path* is missing, unreadable or not a regular file.
    """
    return open_stream(os.fdopen(_open_regular_file(path), "rb"), path)


def open_stream(f: BinaryIO, path: Path) -> OuterBundle:
    """Parse the outer tar of the seekable file *f* (a local file, or an object read by range
    from a store: evidencekit.deliver.s3.RemoteObject); *f* is closed when that fails."""
    try:
        _check_looks_like_a_bundle(f, path)
        members = read_members(f)
    except (BundleError, InputError):
        f.close()
        raise
    return OuterBundle(path, f, members, {m.name: m for m in members})


def _check_looks_like_a_bundle(f: BinaryIO, path: Path) -> None:
    """NotABundle unless the file starts as a bundle does (docs/FORMAT.md §2): its first member
    is README.txt (or another bundle member: members in another order are damage). Whatever is
    wrong further on is damage to a bundle (exit 1).

    The name is looked for in two headers, the pax header's (``PaxHeaders/README.txt``) and the
    member's own (block 3), so that a bundle with one damaged byte still counts as a bundle; a
    file shorter than that name counts when it is its beginning (a truncated copy).
    """
    head = f.read(3 * BLOCK)
    f.seek(0)
    why = _why_not_a_bundle(head)
    if why is not None:
        raise NotABundle(f"{path} is not an evidencekit bundle: {why}",
                         hint="give the .evidence file itself: a receipt, a report or a file "
                         "taken out of a bundle is not one")


def _why_not_a_bundle(head: bytes) -> str | None:
    if not head:
        return "the file is empty"
    if len(head) < len(_README_PAX_NAME):
        return None if _README_PAX_NAME.startswith(head) else "it is not a tar archive"
    first = head[:100].split(b"\0", 1)[0]
    if _names_a_member(first) or _names_a_member(head[2 * BLOCK : 2 * BLOCK + 100].split(b"\0", 1)[0]):
        return None
    if head[257:262] != b"ustar":
        return "it is not a tar archive"
    shown = first[:60].decode("ascii", "backslashreplace")
    return (f"it is a tar archive, but its first member is {shown!r}, not the bundle's "
            f"{README}")


def _names_a_member(name: bytes) -> bool:
    """True for the name of a bundle member, or of its pax header (``PaxHeaders/…``, or any
    prefix another tar writes when it re-packs a bundle): members in another order, or
    re-packed, are a damaged bundle, not another file."""
    return name.endswith(_MEMBER_NAMES) or _EVENT_MEMBER.search(name) is not None


def _open_regular_file(path: Path) -> int:
    """A descriptor of *path*, only if it is a regular file.

    Opened with O_NONBLOCK so that a FIFO without a writer cannot make the open hang, then
    checked with fstat (of what was opened, not of the name: no race): a FIFO, device or socket
    would hang or never end (``verify /dev/zero``), and has no size to check the tar against.
    O_NONBLOCK is cleared again before reading: it means nothing for a regular file, but the
    file object should not carry it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError(f"bundle not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InputError(_not_a_file(path, mode))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _not_a_file(path: Path, mode: int) -> str:
    if stat.S_ISDIR(mode):
        return f"{path} is a folder, not a bundle file"
    kinds = {stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISCHR: "a character device",
             stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}
    kind = next((name for test, name in kinds.items() if test(mode)),
                "something other than a regular file")
    return f"{path} is {kind}, not a bundle file (only regular files are read)"


def expected_names(custody_events: int) -> list[str]:
    names = [README, PAYLOAD, SEAL, SEAL_SIG]
    for sequence in range(1, custody_events + 1):
        names += [custody_member(sequence), custody_member(sequence) + ".sig"]
    return names


def timestamp_names(bundle: OuterBundle) -> list[str]:
    """The ``timestamps/NNNNNN.tsr`` members (format version 3), in the order they appear."""
    return [m.name for m in bundle.members if _TIMESTAMP.fullmatch(m.name)]


def structure_problems(bundle: OuterBundle) -> list[str]:
    """Every way the member list differs from what the format prescribes.

    Linear in the number of members (counted once, looked up in sets): a hostile bundle of
    100,000 junk members is refused in about a second (docs/hostile-input.md)."""
    everything = [m.name for m in bundle.members]
    names = [name for name in everything if not _TIMESTAMP.fullmatch(name)]
    problems = _timestamp_problems(everything)
    counts = Counter(names)
    expected = expected_names(bundle.custody_count())
    allowed = set(expected)
    problems += _listed([f"member {name} appears {count} times"
                        for name, count in sorted(counts.items()) if count > 1],
                       "members appear more than once")
    problems += _listed([f"member {name} is missing" for name in expected if name not in counts],
                        "members are missing")
    problems += _listed([f"unexpected member {name}" for name in names if name not in allowed],
                        "unexpected members")
    if not problems and names != expected:
        problems.append("members are not in the prescribed order: " + ", ".join(names))
    return problems


def _timestamp_problems(names: list[str]) -> list[str]:
    """Timestamps (docs/FORMAT.md §1) are numbered 1, 2, … in the order they appear, and each
    comes after seal.json.sig and not between a custody event and its signature (the member
    before it is seal.json.sig, an event's signature or another timestamp)."""
    problems: list[str] = []
    expected = 1
    for index, name in enumerate(names):
        if not _TIMESTAMP.fullmatch(name):
            continue
        if name != timestamp_member(expected):
            problems.append(f"timestamp {name} is out of sequence: expected "
                            f"{timestamp_member(expected)} here")
        expected += 1
        before = names[index - 1] if index else ""
        if not (before == SEAL_SIG or (before.endswith(".sig") and before.startswith(CUSTODY_DIR))
                or _TIMESTAMP.fullmatch(before)):
            problems.append(f"timestamp {name} is not where timestamps may be (after "
                            f"{SEAL_SIG}, and never between a custody event and its signature)")
    return _listed(problems, "timestamp problems")


def _listed(problems: list[str], what: str) -> list[str]:
    if len(problems) <= LISTED_PROBLEMS:
        return problems
    return [*problems[:LISTED_PROBLEMS],
            f"{len(problems) - LISTED_PROBLEMS} more {what} (not listed one by one)"]
