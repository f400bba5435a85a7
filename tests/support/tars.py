"""Tars made for tests: with tarfile (PAX, as evidencekit's reader accepts), or member by member
with the header evidencekit writes (format/inner.py)."""

from __future__ import annotations

import io
import tarfile
from typing import Any

from evidencekit.format.inner import member_header

END = bytes(1024)  # the two zero blocks that end a tar


def tar_of(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar of *members* (see tar_member) as tarfile writes it in format *fmt*."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def tar_member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, **extra: Any
               ) -> tuple[tarfile.TarInfo, bytes]:
    """A member as evidencekit writes it: tarfile's PAX format with a pax mtime record (the
    reader accepts only those headers, format/tarstream.py)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mtime = 1_780_000_000
    info.pax_headers = {"mtime": "1780000000.000000000"}
    for key, value in extra.items():
        setattr(info, key, value)
    return info, data


def canonical_member(name: str, data: bytes, size: int | None = None) -> bytes:
    """A member with the header evidencekit writes (format/inner.py)."""
    header = member_header(name, tarfile.REGTYPE, len(data) if size is None else size, 0o644,
                           1_780_000_000 * 10**9, 0, 0)
    assert header is not None
    return header + data + bytes(-len(data) % 512)
