"""What a verified bundle holds, file by file, as the exports list it.

Every file that ``evidencekit extract --as-stored`` writes (and a by-hand ``age -d | tar -x``
finds under ``bag/``): the evidence files of ``data/`` with the SHA-256 and size the signed
manifest gives (verify checked them against the decrypted bytes), then the bag's tag files and
the verified addenda, hashed here from the bytes verify read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from evidencekit.format.entries import safe_bag_path
from evidencekit.verify import Report


@dataclass(frozen=True)
class StoredFile:
    path: str  # relative to the bag (data/..., bagit.txt, evidencekit/manifest.json, addenda/...)
    sha256: str
    size: int
    entry: dict[str, Any] | None = None  # the manifest entry (evidence files only)
    content: bytes | None = None  # tag files and addenda: their bytes (small, held by verify)

    @property
    def evidence(self) -> bool:
        return self.entry is not None


def evidence_files(report: Report) -> Iterator[StoredFile]:
    """The stored evidence files, in manifest (walk) order, one manifest entry at a time."""
    if report.manifest is None:
        return
    for entry in report.manifest.entries():
        if isinstance(entry, dict) and entry.get("kind") == "file" and \
                isinstance(entry.get("sha256"), str) and isinstance(entry.get("size"), int) and \
                safe_bag_path(entry.get("bag_path")):
            yield StoredFile(entry["bag_path"], entry["sha256"], entry["size"], entry=entry)


def other_files(report: Report) -> Iterator[StoredFile]:
    """The tag files (bag order) and the verified addenda with their signatures."""
    for name, data in (report.tag_files or {}).items():
        yield _small(name, data)
    for addendum in report.addenda:
        if addendum.document is None:
            continue
        yield _small(addendum.name, addendum.data)
        if addendum.signature is not None:
            yield _small(addendum.name + ".sig", addendum.signature)


def all_files(report: Report) -> Iterator[StoredFile]:
    yield from evidence_files(report)
    yield from other_files(report)


def _small(name: str, data: bytes) -> StoredFile:
    return StoredFile(name, hashlib.sha256(data).hexdigest(), len(data), content=data)


def original_path(entry: dict[str, Any]) -> str:
    """The path as captured; bytes that are not UTF-8 written as \\xNN (as in bag paths)."""
    if isinstance(entry.get("path"), str):
        return str(entry["path"])
    try:
        raw = base64.b64decode(str(entry.get("path_b64", "")), validate=True)
    except binascii.Error:
        return str(entry["bag_path"])
    return raw.decode("utf-8", "backslashreplace")
