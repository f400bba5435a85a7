"""The hashdeep known-hash list, audited by the real hashdeep against an extracted bag."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.support.sealed import Sealed
from tests.support.tools import require_tool

pytestmark = pytest.mark.interop


def audit(listing: Path, folder: Path) -> subprocess.CompletedProcess[str]:
    hashdeep = require_tool("hashdeep")
    return subprocess.run([hashdeep, "-a", "-l", "-vv", "-k", str(listing), "-r", "."],
                          cwd=folder, capture_output=True, text=True, timeout=120)


def test_hashdeep_audits_the_extracted_bag_as_a_match(sealed: Sealed, tmp_path: Path) -> None:
    listing = tmp_path / "known.txt"
    done = sealed.export("hashdeep", listing, "--json")
    assert done.code == 0, done.stderr
    result = done.json()
    assert result["sha256"] == hashlib.sha256(listing.read_bytes()).hexdigest()
    assert result["left_out"] == []
    extracted = tmp_path / "extracted"
    assert sealed.cli("extract", sealed.bundle, "-i", sealed.identity, "--as-stored",
                      "-o", extracted).code == 0
    audited = audit(listing, extracted)
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert "Audit passed" in audited.stdout + audited.stderr
    text = listing.read_text(encoding="utf-8", errors="surrogateescape")
    # every stored file: 6 evidence files (the hard link too) and the bag's 6 tag files
    assert len([line for line in text.splitlines() if not line.startswith(("%", "#"))]) == 12
    assert "./data/evidence/statement-copy.csv" in text


def test_the_audit_fails_on_a_changed_file(sealed: Sealed, tmp_path: Path) -> None:
    listing = tmp_path / "known.txt"
    assert sealed.export("hashdeep", listing).code == 0
    extracted = tmp_path / "extracted"
    assert sealed.cli("extract", sealed.bundle, "-i", sealed.identity, "--as-stored",
                      "-o", extracted).code == 0
    changed = extracted / "data" / "evidence" / "mail" / "scam.eml"
    changed.chmod(0o644)
    changed.write_bytes(b"From: a@b\nSubject: pay\n\nPay later\n")
    audited = audit(listing, extracted)
    assert audited.returncode != 0
    assert "Audit failed" in audited.stdout + audited.stderr


def test_md5_is_of_the_decrypted_content(sealed: Sealed, tmp_path: Path) -> None:
    listing = tmp_path / "known.txt"
    assert sealed.export("hashdeep", listing).code == 0
    original = (sealed.evidence / "mail" / "scam.eml").read_bytes()
    row = next(line for line in listing.read_text().splitlines() if line.endswith("scam.eml"))
    size, md5, sha256, name = row.split(",", 3)
    assert (int(size), md5, sha256) == (len(original), hashlib.md5(original).hexdigest(),
                                       hashlib.sha256(original).hexdigest())
    assert name == "./data/evidence/mail/scam.eml"


def test_a_name_hashdeep_cannot_hold_is_left_out_and_said(tmp_path: Path) -> None:
    from tests.support.sealed import seal

    sealed = seal(tmp_path, odd_names=False)
    (sealed.evidence / "line\nbreak.txt").write_text("newline in name\n")
    again = tmp_path / "again.evidence"
    made = sealed.cli("capture", sealed.evidence, "-o", again, "--case", "CASE-25b",
                      "-R", sealed.identity.with_name("recipient.txt"), "--sign-key", sealed.signer)
    assert made.code == 0, made.stderr
    listing = tmp_path / "known.txt"
    done = sealed.cli("export", again, "-i", sealed.identity, "--format", "hashdeep",
                      "-o", listing, "--json")
    assert done.code == 3, done.stderr
    assert done.json()["left_out"] == ["data/evidence/line\nbreak.txt"]
    assert not any(line.endswith("break.txt") for line in listing.read_text().splitlines())
