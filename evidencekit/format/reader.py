"""Open a bundle's outer layer: members, seal and custody log, parsed and structurally checked."""

from __future__ import annotations

import os
import stat
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
)
from evidencekit.format.outer import Member, read_member, read_members

SMALL_MEMBER_LIMIT = 1 << 20  # README, seal, signatures, custody events


@dataclass
class OuterBundle:
    path: Path
    file: BinaryIO
    members: list[Member]
    by_name: dict[str, Member] = field(default_factory=dict)

    def read_small(self, name: str) -> bytes:
        return read_member(self.file, self.by_name[name], SMALL_MEMBER_LIMIT)

    def custody_count(self) -> int:
        return sum(1 for m in self.members if m.name.startswith(CUSTODY_DIR) and
                   m.name.endswith(".json"))

    def close(self) -> None:
        self.file.close()


def open_bundle(path: Path) -> OuterBundle:
    """Open and strictly parse the outer tar; BundleError if it is not a well-formed bundle.

    InputError (exit 2) when *path* is missing, unreadable or not a regular file.
    """
    f = os.fdopen(_open_regular_file(path), "rb")
    try:
        members = read_members(f)
    except BundleError:
        f.close()
        raise
    bundle = OuterBundle(path, f, members, {m.name: m for m in members})
    return bundle


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


def structure_problems(bundle: OuterBundle) -> list[str]:
    """Every way the member list differs from what the format prescribes."""
    names = [m.name for m in bundle.members]
    problems = []
    duplicates = sorted({n for n in names if names.count(n) > 1})
    for name in duplicates:
        problems.append(f"member {name} appears {names.count(name)} times")
    expected = expected_names(bundle.custody_count())
    for name in expected:
        if name not in names:
            problems.append(f"member {name} is missing")
    for name in names:
        if name not in expected:
            problems.append(f"unexpected member {name}")
    if not problems and names != expected:
        problems.append("members are not in the prescribed order: " + ", ".join(names))
    return problems
