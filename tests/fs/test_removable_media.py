"""Every command that writes works on the sticks people use: exFAT and FAT32 (no hard links, no
permissions, names folded to one case, FAT32 files below 4 GiB), on the real file-system code."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.mounts import mounted


def _evidence(root: Path) -> Path:
    evidence = root / "evidence"
    (evidence / "chats").mkdir(parents=True)
    (evidence / "chats" / "scam.txt").write_text("pay now\n")
    (evidence / "statement.csv").write_text("2026-11-16,-499.00,EUR\n")
    (evidence / "photo.bin").write_bytes(os.urandom(300_000))
    return evidence


def _left_over(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.endswith((".partial", ".tmp"))]


def test_every_writing_command_works_on_a_stick(stick: Path, tmp_path: Path,
                                               keys: dict[str, Path], home: Path) -> None:
    bundle = stick / "case.evidence"
    sign = ("--sign-key", keys["signer"])
    made = run_cli("capture", _evidence(tmp_path), "--case", "STICK-1", "-R", keys["recipient"],
                   *sign, "-o", bundle)
    assert made.code == 0, made.stderr
    added = run_cli("custody", "add", bundle, "--action", "transferred", "--to", "Police", *sign)
    assert added.code == 0, added.stderr
    noted = run_cli("note", bundle, "--text", "bank called", "--yes", *sign)
    assert noted.code == 0, noted.stderr
    recorded = run_cli("verify", bundle, "-i", keys["identity"], "--record", *sign)
    assert recorded.code == 0, recorded.stdout + recorded.stderr
    opened = run_cli("extract", bundle, "-i", keys["identity"], "-o", stick / "opened",
                     "--record", *sign)
    assert opened.code == 0, opened.stdout + opened.stderr
    assert (stick / "opened" / "data" / "evidence" / "chats" / "scam.txt").read_text() == "pay now\n"
    resealed = run_cli("reseal", bundle, "-i", keys["identity"], "-R", keys["recipient"], *sign,
                       "-o", stick / "resealed.evidence")
    assert resealed.code == 0, resealed.stderr
    report = run_cli("report", bundle, "-i", keys["identity"], "-o", stick / "report.html")
    assert report.code == 0, report.stderr
    receipt = run_cli("receipt", bundle, "-o", stick / "receipt.txt")
    assert receipt.code == 0, receipt.stderr
    key = run_cli("key", "generate", "-o", stick / "stick-key")
    assert key.code == 0, key.stderr
    assert (stick / "stick-key.pub").read_text().startswith("ssh-ed25519 ")

    shown = run_cli("custody", "show", bundle, "--json")
    assert [e["action"] for e in shown.json()["custody"]] == \
        ["captured", "transferred", "note", "verified", "accessed"]
    for checked in (bundle, stick / "resealed.evidence"):
        assert run_cli("verify", checked, "-i", keys["identity"],
                       "--receipt" if checked == bundle else "--json",
                       *([stick / "receipt.txt"] if checked == bundle else [])).code == 0
    assert _left_over(stick) == []


def test_names_differing_only_in_case_are_a_destination_problem(stick: Path, tmp_path: Path,
                                                                  keys: dict[str, Path],
                                                                  home: Path) -> None:
    evidence = tmp_path / "evidence"
    (evidence / "Mail").mkdir(parents=True)
    (evidence / "mail").mkdir()
    (evidence / "Mail" / "a.txt").write_text("upper folder\n")
    (evidence / "mail" / "b.txt").write_text("lower folder\n")
    (evidence / "note.txt").write_text("one\n")
    (evidence / "NOTE.TXT").write_text("two\n")
    bundle = tmp_path / "case.evidence"
    assert run_cli("capture", evidence, "-R", keys["recipient"], "--sign-key", keys["signer"],
                   "-o", bundle).code == 0
    result = run_cli("extract", bundle, "-i", keys["identity"], "-o", stick / "opened", "--json")
    assert result.code == 2, result.stdout + result.stderr
    error = result.json()["error"]
    assert "same name" in error["message"] and "upper and lower case" in error["message"]
    assert "VERIFICATION FAILED" not in result.stdout + result.stderr
    assert os.listdir(stick) == []  # nothing extracted, no staging folder left
    assert run_cli("verify", bundle, "-i", keys["identity"]).code == 0


def test_capture_refuses_a_bundle_fat32_cannot_hold_before_reading(tmp_path: Path,
                                                                    keys: dict[str, Path],
                                                                    home: Path) -> None:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    for name in ("disk-1.img", "disk-2.img"):
        with open(evidence / name, "wb") as f:
            f.truncate(5 << 29)  # sparse, 2.5 GiB each: 5 GiB to read, no disk used
    with mounted("fat32", tmp_path) as stick:
        started = time.monotonic()
        result = run_cli("capture", evidence, "-R", keys["recipient"], "--sign-key",
                         keys["signer"], "-o", stick / "case.evidence")
        took = time.monotonic() - started
        assert result.code == 2, result.stderr
        assert "FAT32" in result.stderr and "exFAT" in result.stderr
        assert "another folder" in result.stderr
        assert os.listdir(stick) == []
    assert took < 20  # refused from the sizes: reading and encrypting 5 GiB takes far longer


def test_reseal_refuses_a_bundle_fat32_cannot_hold(tmp_path: Path, keys: dict[str, Path],
                                                   home: Path) -> None:
    big = tmp_path / "big.evidence"
    with open(big, "wb") as f:
        f.truncate(5 << 30)  # only its size is looked at before refusing
    with mounted("fat32", tmp_path) as stick:
        result = run_cli("reseal", big, "-i", keys["identity"], "-R", keys["recipient"],
                         "--sign-key", keys["signer"], "-o", stick / "new.evidence")
        assert result.code == 2, result.stderr
        assert "FAT32" in result.stderr
        assert os.listdir(stick) == []


def test_fat32_is_told_from_the_mount_table(tmp_path: Path) -> None:
    from evidencekit import fs

    with mounted("fat32", tmp_path) as stick:
        assert fs.largest_file(stick) == fs.FAT32_LARGEST
    with mounted("exfat", _fresh(tmp_path)) as ex:
        assert fs.largest_file(ex) is None
    assert fs.largest_file(tmp_path) is None


def _fresh(tmp_path: Path) -> Path:
    folder = tmp_path / "second"
    folder.mkdir()
    return folder


def test_a_name_the_stick_does_not_allow_is_named_as_such(stick: Path, tmp_path: Path,
                                                          keys: dict[str, Path],
                                                          home: Path) -> None:
    """FAT and exFAT refuse " * : < > ? \\ | and control characters in names. That is said, of
    an output name (-o) and of an evidence file's name (extract): never a folder blamed for
    "No such file or directory" or "Operation not permitted", never the evidence."""
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "call 10:42.txt").write_text("bank called\n")
    (evidence / "ok.txt").write_text("fine\n")
    bundle = tmp_path / "case.evidence"
    made = run_cli("capture", evidence, "-R", keys["recipient"], "--sign-key", keys["signer"],
                   "-o", bundle)
    assert made.code == 0, made.stderr
    refused = run_cli("capture", evidence, "-R", keys["recipient"], "--sign-key",
                      keys["signer"], "-o", stick / "case 10:42.evidence")
    assert refused.code == 2, refused.stderr
    assert "does not allow the name 'case 10:42.evidence'" in refused.stderr, refused.stderr
    report = run_cli("report", bundle, "-i", keys["identity"], "-o", stick / "why?.html")
    assert report.code == 2 and "does not allow the name 'why?.html'" in report.stderr
    opened = run_cli("extract", bundle, "-i", keys["identity"], "-o", stick / "opened", "--json")
    assert opened.code == 2, opened.stdout + opened.stderr
    message = opened.json()["error"]["message"]
    assert "does not allow the name 'call 10:42.txt'" in message, message
    assert "not found faulty" in message
    assert os.listdir(stick) == []


@pytest.mark.slow  # captures 4 GiB (sparse: no disk used, about 20 s of encryption)
def test_extract_refuses_a_file_fat32_cannot_hold_before_writing_it(tmp_path: Path,
                                                                    keys: dict[str, Path],
                                                                    home: Path) -> None:
    """An evidence file of 4 GiB or more cannot go onto FAT32. Said at that file, before 4 GiB
    are written through the stick, in words about the destination: before, fusefat's error at
    the limit came out as 'does not allow the name' or 'Operation not permitted'."""
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    with open(evidence / "disk.img", "wb") as f:
        f.truncate((1 << 32) + 1)
    bundle = tmp_path / "case.evidence"
    made = run_cli("capture", evidence, "-R", keys["recipient"], "--sign-key", keys["signer"],
                   "-o", bundle)
    assert made.code == 0, made.stderr
    with mounted("fat32", tmp_path) as stick:
        started = time.monotonic()
        result = run_cli("extract", bundle, "-i", keys["identity"], "-o", stick / "opened")
        assert result.code == 2, result.stderr
        assert "FAT32" in result.stderr and "data/evidence/disk.img is 4.0 GiB" in result.stderr
        assert "does not allow the name" not in result.stderr
        assert os.listdir(stick) == []
    assert time.monotonic() - started < 60  # refused at the file, not after writing 4 GiB
