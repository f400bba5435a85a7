"""Evidence trees for tests: :func:`make_tree`, the realistic one (odd names, links, a FIFO, a
big file) that end-to-end and interop tests capture."""

from __future__ import annotations

import os
from pathlib import Path


def make_tree(root: Path, big: int = 50 * 1024 * 1024) -> Path:
    """The realistic tree the core issue asks for."""
    src = root / "evidence"
    (src / "mail" / "inbox").mkdir(parents=True)
    (src / "empty-folder").mkdir()
    (src / "mail" / "inbox" / "scam.eml").write_bytes(b"From: a@b\n\nPay now\n")
    (src / "empty.txt").write_bytes(b"")
    (src / "Überweisung €.txt").write_text("unicode name\n", encoding="utf-8")
    (src / "line\nbreak.txt").write_text("newline in name\n")
    (src / "100% sure.txt").write_text("percent\n")
    with open(os.fsencode(src) + b"/latin1-\xe9t\xe9.txt", "wb") as f:
        f.write(b"not utf-8 name\n")
    os.symlink("mail/inbox/scam.eml", src / "link-to-scam")
    os.symlink("/etc/passwd", src / "link-outside")
    os.mkfifo(src / "a-fifo")
    with open(src / "big.bin", "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(big >> 20):
            f.write(block)
        f.write(b"tail")
    return src
