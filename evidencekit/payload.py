"""Read the decrypted payload tar in one streaming pass, hashing every file as it goes by.

Shared by verify (hash only) and extract (hash and write). Anything but regular files and folders
under ``bag/``, and any unsafe name, is a finding, never followed.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Protocol

from evidencekit.findings import Findings
from evidencekit.format.bag import BAG_ROOT

READ_SIZE = 1 << 20
TAG_FILE_LIMIT = 1 << 30  # a manifest for millions of files; more is refused, never allocated


class Visitor(Protocol):
    def directory(self, name: str, member: tarfile.TarInfo) -> None: ...

    def file(self, name: str, member: tarfile.TarInfo, chunks: Iterator[bytes]) -> None: ...


@dataclass
class PayloadScan:
    data_files: dict[str, tuple[str, int]] = field(default_factory=dict)  # data/... → sha256, size
    tag_files: dict[str, bytes] = field(default_factory=dict)
    tag_hashes: dict[str, str] = field(default_factory=dict)
    directories: set[str] = field(default_factory=set)
    order: list[str] = field(default_factory=list)


def safe_name(raw: str) -> str | None:
    """The member's name inside bag/, or None when it is unsafe or outside bag/."""
    name = raw.rstrip("/")
    if not name.startswith(BAG_ROOT + "/"):
        return None
    inner = name[len(BAG_ROOT) + 1 :]
    parts = inner.split("/")
    if not inner or any(p in ("", ".", "..") for p in parts) or "\0" in inner:
        return None
    return inner


def scan_payload(stream: IO[bytes], findings: Findings, visitor: Visitor | None = None) -> PayloadScan:
    scan = PayloadScan()
    with tarfile.open(fileobj=stream, mode="r|", bufsize=READ_SIZE) as tar:
        for member in tar:
            name = safe_name(member.name)
            if name is None:
                findings.error("payload-structure", member.name,
                               "unsafe or unexpected member name in the payload (not extracted)")
                continue
            if name in scan.order:
                findings.error("payload-structure", name, "member appears twice in the payload")
                continue
            scan.order.append(name)
            if member.isdir():
                scan.directories.add(name)
                if visitor:
                    visitor.directory(name, member)
            elif member.isreg():
                _scan_file(tar, member, name, scan, findings, visitor)
            else:
                findings.error("payload-structure", name, "payload member is a link or special "
                               "file; evidencekit never stores those (not extracted)")
    return scan


def _chunks(reader: IO[bytes], digest: hashlib._Hash) -> Iterator[bytes]:
    while chunk := reader.read(READ_SIZE):
        digest.update(chunk)
        yield chunk


def _scan_file(tar: tarfile.TarFile, member: tarfile.TarInfo, name: str, scan: PayloadScan,
               findings: Findings, visitor: Visitor | None) -> None:
    reader = tar.extractfile(member)
    assert reader is not None
    digest = hashlib.sha256()
    if name.startswith("data/"):
        chunks = _chunks(reader, digest)
        if visitor:
            visitor.file(name, member, chunks)
        for _ in chunks:  # whatever the visitor left unread
            pass
        scan.data_files[name] = (digest.hexdigest(), member.size)
        return
    if member.size > TAG_FILE_LIMIT:
        findings.error("payload-structure", name, f"tag file is {member.size} bytes, more than "
                       f"the {TAG_FILE_LIMIT} allowed")
        return
    data = b"".join(_chunks(reader, digest))
    scan.tag_files[name] = data
    scan.tag_hashes[name] = digest.hexdigest()
