"""MD5 of every stored file, taken from the decrypted payload as verify reads it.

Investigators' tools (hashdeep, DFXML consumers) expect MD5 beside SHA-256; the bundle records
only SHA-256, so the exports that list MD5 compute it here, in the same single read of the
payload that verifies it. SHA-256 and sizes come from the signed manifest, which verify has
checked against the same bytes.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator


class Md5Visitor:
    """A payload visitor that keeps the MD5 (16 bytes) of each ``data/`` file by bag path."""

    def __init__(self) -> None:
        self.md5: dict[str, bytes] = {}

    def directory(self, name: str, member: tarfile.TarInfo) -> None:
        return None

    def file(self, name: str, member: tarfile.TarInfo, chunks: Iterator[bytes]) -> None:
        digest = hashlib.md5(usedforsecurity=False)
        for chunk in chunks:
            digest.update(chunk)
        self.md5[name] = digest.digest()

    def hard_link(self, name: str, member: tarfile.TarInfo, target: str) -> None:
        if target in self.md5:
            self.md5[name] = self.md5[target]

    def hexdigest(self, bag_path: str) -> str | None:
        found = self.md5.get(bag_path)
        return None if found is None else found.hex()
