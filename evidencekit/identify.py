"""File types with libmagic, from bytes already read (never a second open of the evidence)."""

from __future__ import annotations

import threading
from typing import Any

MAGIC_BYTES = 1 << 20  # libmagic's own default read size

_lock = threading.Lock()
_magic: Any = None
_unavailable: str | None = None


def _load() -> Any:
    global _magic, _unavailable
    if _magic is None and _unavailable is None:
        try:
            import magic

            _magic = magic.Magic(mime=True)
        except (ImportError, OSError) as exc:  # libmagic missing: degrade, say so once
            _unavailable = f"libmagic is not available ({exc})"
    return _magic


def unavailable_reason() -> str | None:
    _load()
    return _unavailable


def mime_type(first_block: bytes) -> str:
    """The MIME type of a file whose first bytes are *first_block*; ``""`` for an empty file."""
    if not first_block:
        return "inode/x-empty"
    with _lock:  # one libmagic handle is not safe to share between threads
        handle = _load()
        if handle is None:
            return "application/octet-stream"
        try:
            return str(handle.from_buffer(first_block[:MAGIC_BYTES]))
        except Exception:  # a libmagic failure on odd input must not stop a capture
            return "application/octet-stream"
