"""capture --profile: sources from the profile, filters applied per file, nothing dropped silently."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import invoke


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def manifest_of(bundle: Path, keys, out: Path) -> dict:
    result = invoke("extract", bundle, "-i", keys["identity"], "-o", out, "--as-stored")
    assert result.code == 0, result.stderr
    return json.loads((out / "evidencekit" / "manifest.json").read_text())


def entries_by_path(manifest: dict) -> dict[str, dict]:
    return {e["path"]: e for e in manifest["entries"]}


PROFILE = """\
description: Test triage
case:
  description: From the profile
  organisation: Profile Org
include: ['*.db', 'History', 'big.bin', 'more-*.bin']
exclude: [Cache]
limits:
  max_file_size: 1KB
  max_total: 1500
targets:
  - name: app
    linux: ['{home}/app']
  - name: missing
    linux: ['{home}/not-there', '{home}/none-*.db']
"""


def test_filters_record_skipped_files_with_the_reason(tmp_path: Path, user: Path, keys):
    app = user / "app"
    touch(app / "Default" / "History", b"h" * 10)
    touch(app / "Default" / "Cache" / "index.db", b"c" * 10)
    touch(app / "Default" / "notes.txt", b"n" * 10)
    touch(app / "big.bin", b"b" * 1001)
    touch(app / "store.db", b"s" * 900)
    touch(app / "zz" / "more-1.bin", b"m" * 700)  # 10 + 900 + 700 > max_total 1500
    (tmp_path / "triage.yaml").write_text(PROFILE)
    out = tmp_path / "t.evidence"
    result = invoke("capture", "--profile", tmp_path / "triage.yaml", "-R", keys["recipient"],
                    "--sign-key", keys["signer"], "-o", out, "--json", "--examiner", "Flag Name")
    assert result.code == 0, result.stderr  # skipped by rule is not "incomplete"
    document = result.json()
    assert document["case"]["examiner"] == "Flag Name"  # flag beats profile
    assert document["case"]["description"] == "From the profile"
    assert document["case"]["organisation"] == "Profile Org"
    assert document["profile"]["sources"] == [str(app)]
    assert [(m["target"], m["reason"]) for m in document["profile"]["missing"]] == [
        ("missing", "not found"), ("missing", "no match")]
    assert document["seal"]["counts"]["files"] == 2
    assert document["seal"]["counts"]["skipped"] == 4
    assert document["seal"]["complete"] is True
    problems = {p["path"]: p["problem"] for p in document["problems"]}
    assert problems == {
        "app/Default/Cache/index.db": "skipped: excluded by profile rule (exclude 'Cache')",
        "app/Default/notes.txt": "skipped: excluded by profile rule (matches no include pattern)",
        "app/big.bin": "skipped: larger than the profile's limit (1001 bytes; max_file_size is "
                       "1000 bytes)",
        "app/zz/more-1.bin": "skipped: larger than the profile's limit (700 bytes would take the "
                             "capture past max_total of 1500 bytes)",
    }
    manifest = manifest_of(out, keys, tmp_path / "opened")
    entries = entries_by_path(manifest)
    assert entries["app/Default/History"]["sha256"] and entries["app/store.db"]["sha256"]
    skipped = entries["app/big.bin"]
    assert skipped["error"].startswith("skipped: larger than the profile's limit")
    assert skipped["size"] == 1001 and skipped.get("sha256") is None
    assert manifest["summary"]["counts"]["skipped"] == 4
    stored = tmp_path / "opened" / "data" / "app"
    assert (stored / "Default" / "History").read_bytes() == b"h" * 10
    assert not (stored / "big.bin").exists() and not (stored / "Default" / "notes.txt").exists()
    assert invoke("verify", out, "-i", keys["identity"]).code == 0


def test_text_mode_reports_missing_paths_and_skips(tmp_path: Path, user: Path, keys):
    touch(user / "app" / "Default" / "notes.txt")
    touch(user / "app" / "History")
    (tmp_path / "triage.yaml").write_text(PROFILE)
    result = invoke("capture", "--profile", tmp_path / "triage.yaml", "-R", keys["recipient"],
                    "--sign-key", keys["signer"], "-o", tmp_path / "t.evidence")
    assert result.code == 0, result.stderr
    assert "1 path(s) to capture, 2 not present here" in result.stderr
    assert f"{user}/not-there: not found" in result.stderr
    assert "1 file(s) not read, by the profile's rules" in result.stderr
    assert "could not be captured completely" not in result.stderr


def test_profile_and_explicit_sources_together(tmp_path: Path, user: Path, keys, tree):
    touch(user / "Downloads" / "invoice.pdf")
    result = invoke("capture", tree, "--profile", "user-files", "-R", keys["recipient"],
                    "--sign-key", keys["signer"], "-o", tmp_path / "u.evidence", "--json")
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["seal"]["counts"]["files"] == 3
    assert document["case"]["description"] == "Downloads, Desktop and screenshots"


def test_a_profile_that_finds_nothing_is_a_usage_error(tmp_path: Path, user: Path, keys):
    result = invoke("capture", "--profile", "chat-apps", "-R", keys["recipient"], "--json")
    assert result.code == 2
    error = result.json()["error"]
    assert "found nothing to capture" in error["message"]
    assert "evidencekit profiles show chat-apps" in error["hint"]
    unknown = invoke("capture", "--profile", "no-such", "-R", keys["recipient"])
    assert unknown.code == 2 and "known profiles: browser-history" in unknown.stderr


def test_profile_rules_of_another_system(tmp_path: Path, user: Path, keys, monkeypatch):
    windows_home = tmp_path / "mnt" / "Users" / "jane"
    touch(windows_home / "Downloads" / "invoice.pdf")
    monkeypatch.setenv("USERPROFILE", str(windows_home))
    result = invoke("capture", "--profile", "user-files", "--profile-os", "windows",
                    "-R", keys["recipient"], "--sign-key", keys["signer"],
                    "-o", tmp_path / "w.evidence", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["profile"]["os"] == "windows"
    assert result.json()["profile"]["sources"] == [str(windows_home / "Downloads")]
