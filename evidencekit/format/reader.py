"""Open a bundle's outer layer: members, seal and custody log, parsed and structurally checked."""

from __future__ import annotations

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
    """Open and strictly parse the outer tar; BundleError if it is not a well-formed bundle."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - owned by the returned object
    except FileNotFoundError:
        raise InputError(f"bundle not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a bundle file") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    try:
        members = read_members(f)
    except BundleError:
        f.close()
        raise
    bundle = OuterBundle(path, f, members, {m.name: m for m in members})
    return bundle


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
