"""Fixtures for the victim-facing features: a scripted prompter, a victim's home folder, and one
bundle with an incident record, notes and hostile file names (made once per module that asks)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def victim_home(tmp_path: Path) -> Path:
    """A home folder with the usual places: screenshots, downloads (with an exported email)."""
    home_dir = tmp_path / "victim"
    (home_dir / "Pictures" / "Screenshots").mkdir(parents=True)
    (home_dir / "Pictures" / "Screenshots" / "chat.png").write_bytes(b"\x89PNG chat")
    (home_dir / "Downloads").mkdir()
    (home_dir / "Downloads" / "statement.csv").write_text("2026-11-15,-450.00,EUR\n")
    (home_dir / "Documents").mkdir()
    (home_dir / "Documents" / "seller.eml").write_text("From: bike.seller@example.net\n\nhi\n")
    return home_dir
