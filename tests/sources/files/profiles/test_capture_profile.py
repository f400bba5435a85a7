"""capture --profile: sources from the profile, filters applied per file, nothing dropped silently."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from evidencekit.crypto import age
from tests.support.cli import invoke
from tests.support.schemas import ROOT, assert_valid
from tests.support.tools import unprivileged_python


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
    document = result.json()
    error = document["error"]
    assert "found nothing to capture" in error["message"]
    assert "evidencekit profiles show chat-apps" in error["hint"]
    # What was looked for, as in a capture's document: scripts need not run 'profiles show'.
    looked_for = document["profile"]
    assert looked_for["name"] == "chat-apps" and looked_for["sources"] == []
    assert {m["target"] for m in looked_for["missing"]} >= {"signal", "telegram"}
    assert all(m["reason"] == "not found" for m in looked_for["missing"] if m["path"])
    assert_valid(document, "capture")
    unknown = invoke("capture", "--profile", "no-such", "-R", keys["recipient"])
    assert unknown.code == 2 and "known profiles: browser-history" in unknown.stderr


def test_a_profile_file_that_finds_nothing_is_shown_by_its_path(tmp_path: Path, user: Path,
                                                                keys):
    path = tmp_path / "my triage.yaml"
    path.write_text("description: x\ntargets:\n  - {name: t, linux: ['{home}/not-there']}\n")
    result = invoke("capture", "--profile", path, "-R", keys["recipient"], "--json")
    assert result.code == 2
    document = result.json()
    assert f"'evidencekit profiles show '{path}'' lists what it looks for" in \
        document["error"]["hint"]  # quoted for the shell: the name has a space
    assert document["profile"]["missing"] == [{"target": "t", "pattern": "{home}/not-there",
                                               "path": str(user / "not-there"),
                                               "reason": "not found"}]
    assert invoke("profiles", "show", str(path)).code == 0  # the hint works


def _refusing_lookup(monkeypatch, refused: str) -> None:
    """stat of *refused* fails as behind a folder nobody but its owner may search (as root,
    permission bits stop nothing: the failure is injected; for real: the test run as nobody)."""
    real = os.lstat

    def lstat(path, *args, **kwargs):
        if isinstance(path, (str, bytes, os.PathLike)) and os.fsdecode(path) == refused:
            raise PermissionError(errno.EACCES, "Permission denied", refused)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", lstat)


def test_a_path_that_cannot_be_reached_makes_the_capture_incomplete(tmp_path: Path, user: Path,
                                                                    keys, monkeypatch):
    """Not "absent" and exit 0: recorded in the manifest like an unreadable file, exit 3."""
    touch(user / "Downloads" / "invoice.pdf")
    locked = str(user / "private" / "notes.txt")
    profile = tmp_path / "reach.yaml"
    profile.write_text("description: x\ntargets:\n"
                       "  - {name: t, linux: ['{home}/Downloads', '{home}/private/notes.txt']}\n")
    out = tmp_path / "r.evidence"
    _refusing_lookup(monkeypatch, locked)
    result = invoke("capture", "--profile", profile, "-R", keys["recipient"], "--sign-key",
                    keys["signer"], "-o", out, "--json")
    monkeypatch.undo()
    assert result.code == 3, result.stderr
    document = result.json()
    assert_valid(document, "capture")
    problem = f"could not reach {locked}: Permission denied"
    assert document["problems"] == [{"path": "notes.txt", "problem": problem}]
    assert document["seal"]["complete"] is False and document["seal"]["counts"]["errors"] == 1
    assert document["profile"]["missing"] == []
    assert document["profile"]["unreachable"] == [
        {"target": "t", "pattern": "{home}/private/notes.txt", "path": locked,
         "problem": problem}]
    manifest = manifest_of(out, keys, tmp_path / "opened")
    assert [s["given"] for s in manifest["sources"]] == [str(user / "Downloads"), locked]
    entry = entries_by_path(manifest)["notes.txt"]
    assert (entry["kind"], entry["error"], entry["source"]) == ("unknown", problem, 1)
    assert invoke("verify", out, "-i", keys["identity"]).code == 0  # intact, and incomplete


def test_a_profile_that_reaches_nothing_still_records_what_was_refused(tmp_path: Path,
                                                                       user: Path, keys):
    """No injection: a link that loops fails with ELOOP even for root. Nothing was found, but
    something may be there: a bundle that says so (exit 3), not 'found nothing' (exit 2)."""
    (user / "loop").symlink_to(user / "loop")
    profile = tmp_path / "loop.yaml"
    profile.write_text("description: x\ntargets:\n  - {name: t, linux: ['{home}/loop/x']}\n")
    result = invoke("capture", "--profile", profile, "-R", keys["recipient"], "--sign-key",
                    keys["signer"], "-o", tmp_path / "l.evidence", "--json")
    assert result.code == 3, result.stderr
    document = result.json()
    assert document["problems"] == [{"path": "x", "problem": f"could not reach {user}/loop/x: "
                                     "Too many levels of symbolic links"}]
    assert document["seal"]["counts"]["files"] == 0


def test_the_manifest_records_which_profile_was_used(tmp_path: Path, user: Path, keys, tree):
    touch(user / "Downloads" / "invoice.pdf")
    out = tmp_path / "u.evidence"
    result = invoke("capture", "--profile", "user-files", "-R", keys["recipient"],
                    "--sign-key", keys["signer"], "-o", out, "--json")
    assert result.code == 0, result.stderr
    builtin = ROOT / "evidencekit/sources/files/profiles/builtin/user-files.yaml"
    digest = hashlib.sha256(builtin.read_bytes()).hexdigest()
    assert manifest_of(out, keys, tmp_path / "o1")["capture"]["profile"] == {
        "name": "user-files", "origin": "built-in", "sha256": digest}
    assert result.json()["profile"]["sha256"] == digest
    own = tmp_path / "Mine.yaml"
    own.write_bytes(b"description: mine\r\ntargets:\r\n  - {name: d, linux: ['{home}/Downloads']}"
                    b"\r\n")  # CRLF: hashed as the bytes of the file, as sha256sum does
    mine = invoke("capture", "--profile", own, "-R", keys["recipient"], "--sign-key",
                  keys["signer"], "-o", tmp_path / "m.evidence", "--json")
    assert mine.code == 0, mine.stderr
    assert manifest_of(tmp_path / "m.evidence", keys, tmp_path / "o2")["capture"]["profile"] == {
        "name": "mine", "origin": "file", "sha256": hashlib.sha256(own.read_bytes()).hexdigest()}
    plain = invoke("capture", tree, "-R", keys["recipient"], "--sign-key", keys["signer"],
                   "-o", tmp_path / "p.evidence", "--json")
    assert "profile" not in manifest_of(tmp_path / "p.evidence", keys, tmp_path / "o3")["capture"]
    assert plain.code == 0


def test_unreachable_paths_for_real_as_user_nobody(user, keys):
    """No injection: capture --profile run as user nobody, a home and a folder it may not
    search. Both are problems in the bundle, exit 3; the readable home is captured."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run as user nobody")
    nobody = unprivileged_python()
    base = Path(tempfile.mkdtemp(prefix="ek-nobody-profile-"))  # pytest's tmp_path is root's
    try:
        base.chmod(0o755)
        work = base / "work"
        work.mkdir()
        os.chown(work, 65534, 65534)
        alice = touch(base / "homes" / "alice" / ".bash_history", b"ls\n")
        touch(base / "homes" / "bob" / ".bash_history", b"secret\n")
        touch(base / "locked" / "notes.txt")
        for path in (base / "homes", base / "homes" / "alice"):
            path.chmod(0o755)
        alice.chmod(0o644)
        (base / "homes" / "bob").chmod(0o700)  # root's: nobody may not search it
        (base / "locked").chmod(0o700)
        profile = base / "homes.yaml"
        profile.write_text(f"description: x\ntargets:\n  - name: t\n    linux: "
                           f"['{base}/homes/*/.bash_history', '{base}/locked/notes.txt']\n")
        profile.chmod(0o644)
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCEKIT_")}
        env.update(HOME=str(work), XDG_CONFIG_HOME=str(work / ".config"))
        identity = age.X25519Identity.generate()
        proc = subprocess.run([*nobody, "-m", "evidencekit", "capture",
                               "--profile", profile, "-r", str(identity.recipient()),
                               "-o", work / "out.evidence", "--json"],
                              capture_output=True, text=True, env=env, cwd=work,
                              stdin=subprocess.DEVNULL, timeout=120)
        assert proc.returncode == 3, proc.stdout + proc.stderr
        document = json.loads(proc.stdout)
        bob, locked = f"{base}/homes/bob/.bash_history", f"{base}/locked/notes.txt"
        assert sorted(p["problem"] for p in document["problems"]) == [
            f"could not reach {bob}: Permission denied",
            f"could not reach {locked}: Permission denied"]
        assert document["profile"]["sources"] == [str(alice)]
        assert document["seal"]["counts"] == {**document["seal"]["counts"], "files": 1,
                                              "errors": 2}
        (work / "identity.txt").write_text(f"{identity}\n")
        assert invoke("verify", work / "out.evidence", "-i", work / "identity.txt").code == 0
    finally:
        shutil.rmtree(base)


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


def test_a_link_that_a_pattern_finds_is_recorded_not_followed(tmp_path: Path, user: Path, keys):
    """As root, `/home/*/.bash_history` also finds the link another user made to a file they may
    not read: the capture keeps the link, never what it points to."""
    secret = touch(tmp_path / "elsewhere" / "shadow", b"TOP SECRET")
    touch(user / "alice" / ".bash_history", b"ls\n")
    (user / "mallory").mkdir()
    (user / "mallory" / ".bash_history").symlink_to(secret)
    (tmp_path / "shells.yaml").write_text(
        f"description: shells\ntargets:\n  - name: t\n    linux: ['{user}/*/.bash_history']\n")
    out = tmp_path / "s.evidence"
    result = invoke("capture", "--profile", tmp_path / "shells.yaml", "-R", keys["recipient"],
                    "--sign-key", keys["signer"], "-o", out, "--json")
    assert result.code == 0, result.stderr
    assert result.json()["seal"]["counts"]["files"] == 1
    assert result.json()["seal"]["counts"]["symlinks"] == 1
    entries = list(entries_by_path(manifest_of(out, keys, tmp_path / "opened")).values())
    link = next(e for e in entries if e["kind"] == "symlink")
    assert link["target"] == str(secret) and "sha256" not in link
    stored = b"".join(p.read_bytes() for p in (tmp_path / "opened" / "data").rglob("*")
                      if p.is_file() and not p.is_symlink())
    assert b"TOP SECRET" not in stored


def test_a_link_named_on_the_command_line_is_still_followed(tmp_path: Path, user: Path, keys):
    target = touch(tmp_path / "real" / "note.txt", b"mine")
    (tmp_path / "shortcut").symlink_to(target.parent)
    out = tmp_path / "n.evidence"
    result = invoke("capture", tmp_path / "shortcut", "-R", keys["recipient"],
                    "--sign-key", keys["signer"], "-o", out, "--json")
    assert result.code == 0, result.stderr
    assert result.json()["seal"]["counts"]["files"] == 1


def test_no_link_is_followed_on_the_way_below_a_wildcard(tmp_path: Path, user: Path, keys):
    """As root, `/home/*/.local/share/fish/fish_history`: another user's `.local` made a link
    to someone else's folder must not bring that folder's history in under their name."""
    secret = touch(tmp_path / "elsewhere" / ".local" / "share" / "fish" / "fish_history",
                   b"TOP SECRET")
    touch(user / "alice" / ".local" / "share" / "fish" / "fish_history", b"ls\n")
    (user / "mallory").mkdir()
    (user / "mallory" / ".local").symlink_to(secret.parents[2])
    (tmp_path / "fish.yaml").write_text(
        "description: fish\ntargets:\n  - name: t\n"
        f"    linux: ['{user}/*/.local/share/fish/fish_history']\n")
    out = tmp_path / "f.evidence"
    result = invoke("capture", "--profile", tmp_path / "fish.yaml", "-R", keys["recipient"],
                    "--sign-key", keys["signer"], "-o", out, "--json")
    assert result.code == 0, result.stderr
    assert result.json()["profile"]["sources"] == [
        str(user / "alice" / ".local" / "share" / "fish" / "fish_history")]
    manifest_of(out, keys, tmp_path / "opened")
    stored = b"".join(p.read_bytes() for p in (tmp_path / "opened" / "data").rglob("*")
                      if p.is_file() and not p.is_symlink())
    assert b"TOP SECRET" not in stored and b"ls\n" in stored


def test_links_in_the_folders_a_pattern_names_are_followed(tmp_path: Path, user: Path, keys):
    """~/Documents may be a link the user made: the pattern names it, so it is followed."""
    touch(tmp_path / "disk" / "docs" / "statement.pdf", b"%PDF-1.4 mine")
    (user / "Documents").symlink_to(tmp_path / "disk" / "docs")
    (tmp_path / "docs.yaml").write_text(
        "description: docs\ntargets:\n  - name: t\n    linux: ['{home}/Documents/*.pdf']\n")
    out = tmp_path / "d.evidence"
    result = invoke("capture", "--profile", tmp_path / "docs.yaml", "-R", keys["recipient"],
                    "--sign-key", keys["signer"], "-o", out, "--json")
    assert result.code == 0, result.stderr
    assert result.json()["seal"]["counts"]["files"] == 1


def test_a_pattern_that_finds_its_own_named_folder_follows_its_links(tmp_path: Path, user: Path,
                                                                     keys):
    """`/var/log/**` finds /var/log itself; on macOS /var is a link to /private/var."""
    touch(tmp_path / "private" / "var" / "log" / "system.log", b"boot\n")
    touch(tmp_path / "private" / "var" / "log" / "old" / "system.log.1", b"older\n")
    (tmp_path / "var").symlink_to(tmp_path / "private" / "var")
    (tmp_path / "logs.yaml").write_text(
        f"description: logs\ntargets:\n  - name: t\n    linux: ['{tmp_path}/var/log/**']\n")
    out = tmp_path / "l.evidence"
    result = invoke("capture", "--profile", tmp_path / "logs.yaml", "-R", keys["recipient"],
                    "--sign-key", keys["signer"], "-o", out, "--json")
    assert result.code == 0, result.stdout + result.stderr
    assert result.json()["seal"]["counts"]["files"] == 2


def _capture_with(tmp_path: Path, keys, patterns: list[str], name: str):
    (tmp_path / f"{name}.yaml").write_text(
        f"description: {name}\ntargets:\n  - name: t\n    linux: {patterns!r}\n")
    out = tmp_path / f"{name}.evidence"
    result = invoke("capture", "--profile", tmp_path / f"{name}.yaml", "-R", keys["recipient"],
                    "--sign-key", keys["signer"], "-o", out, "--json")
    assert result.code == 0, result.stdout + result.stderr
    return result, out


@pytest.mark.parametrize("pattern", ["{home}/Downloads", "{home}/Downloads/**"])
def test_a_folder_the_pattern_names_in_full_is_followed_if_a_link(tmp_path: Path, user: Path,
                                                                   keys, pattern: str):
    """Downloads moved to a second disk and linked back: user-files must capture what is in it,
    not the link alone, and the manifest says the source was reached through a link."""
    touch(tmp_path / "disk" / "dl" / "invoice.pdf", b"%PDF-1.4 fake invoice")
    touch(tmp_path / "disk" / "dl" / "sub" / "receipt.txt", b"paid")
    (user / "Downloads").symlink_to(tmp_path / "disk" / "dl")
    result, out = _capture_with(tmp_path, keys, [pattern], "dl")
    assert result.json()["seal"]["counts"]["files"] == 2
    assert result.json()["seal"]["counts"]["symlinks"] == 0
    manifest = manifest_of(out, keys, tmp_path / "opened")
    [source] = manifest["sources"]
    assert source["given"] == str(user / "Downloads") and source["via_symlink"] is True
    assert source["path"] == str(tmp_path / "disk" / "dl")
    shown = invoke("profiles", "show", tmp_path / "dl.yaml").stdout
    assert f"{user / 'Downloads'} (a link to {tmp_path / 'disk' / 'dl'}: captured through it)" \
        in shown


def test_a_file_the_pattern_names_in_full_is_followed_if_a_link(tmp_path: Path, user: Path, keys):
    """A history kept in a dotfiles folder and linked into home (GNU stow and the like)."""
    touch(tmp_path / "dotfiles" / "zsh_history", b": 1764806400:0;curl evil.example\n")
    (user / ".zsh_history").symlink_to(tmp_path / "dotfiles" / "zsh_history")
    result, out = _capture_with(tmp_path, keys, ["{home}/.zsh_history"], "zsh")
    assert result.json()["seal"]["counts"]["files"] == 1
    assert manifest_of(out, keys, tmp_path / "opened")["sources"][0]["via_symlink"] is True


def test_a_broken_link_the_pattern_names_in_full_is_recorded(tmp_path: Path, user: Path, keys):
    """Nothing to follow: the link is evidence of its own (a history pointed away), not an
    error that stops the capture."""
    (user / ".bash_history").symlink_to(tmp_path / "gone")
    result, out = _capture_with(tmp_path, keys, ["{home}/.bash_history"], "broken")
    assert result.json()["seal"]["counts"]["symlinks"] == 1
    link = next(e for e in manifest_of(out, keys, tmp_path / "opened")["entries"]
                if e["kind"] == "symlink")
    assert link["target"] == str(tmp_path / "gone")


def test_a_link_a_wildcard_matched_at_the_end_is_still_recorded(tmp_path: Path, user: Path, keys):
    """`{home}/Pictures/Screenshot*`: the wildcard chose the name, so a link it matched is kept
    as the link (the rule for `/home/*/.bash_history`)."""
    touch(tmp_path / "elsewhere" / "shot.png", b"\x89PNG fake")
    (user / "Pictures").mkdir()
    (user / "Pictures" / "Screenshots").symlink_to(tmp_path / "elsewhere")
    result, _ = _capture_with(tmp_path, keys, ["{home}/Pictures/Screenshot*"], "shots")
    assert result.json()["seal"]["counts"]["files"] == 0
    assert result.json()["seal"]["counts"]["symlinks"] == 1
    shown = invoke("profiles", "show", tmp_path / "shots.yaml").stdout
    assert "Screenshots (a symbolic link: recorded as the link, not followed)" in shown


def test_a_link_named_in_full_is_followed_though_a_wildcard_matched_it_too(
        tmp_path: Path, user: Path, keys):
    """user-files has both `{home}/Pictures/Screenshots` and `{home}/Pictures/Screenshot*`."""
    touch(tmp_path / "elsewhere" / "shot.png", b"\x89PNG fake")
    (user / "Pictures").mkdir()
    (user / "Pictures" / "Screenshots").symlink_to(tmp_path / "elsewhere")
    result, _ = _capture_with(tmp_path, keys, ["{home}/Pictures/Screenshot*",
                                               "{home}/Pictures/Screenshots"], "both")
    assert result.json()["seal"]["counts"]["files"] == 1


def test_names_found_are_shown_without_their_control_characters(tmp_path: Path, user: Path):
    """A folder name can carry terminal escapes: `profiles show` must not print them raw."""
    (user / "Pictures" / "Screenshots\x1b[2J\rfake").mkdir(parents=True)
    (tmp_path / "esc.yaml").write_text(
        "description: esc\ntargets:\n  - name: t\n    linux: ['{home}/Pictures/Screenshot*']\n")
    shown = invoke("profiles", "show", tmp_path / "esc.yaml").stdout
    assert "\x1b" not in shown and "Screenshots[U+001B]" in shown


def test_json_stays_valid_utf8_with_a_name_that_is_not(tmp_path: Path, user: Path, keys):
    """A folder named with Latin-1 bytes (an old archive, a USB stick from another system) found
    by a wildcard: the --json documents of `profiles show` and `capture` must still parse, each
    undecodable byte written as the text \\xNN (the bag's rule for names). Run as a real process:
    the in-process runner would hide invalid bytes behind replacement characters."""
    odd = os.fsencode(user / "Pictures") + b"/Screenshots-d\xe9c"
    os.makedirs(odd)
    touch(Path(os.fsdecode(odd)) / "shot.png", b"\x89PNG fake")
    (tmp_path / "odd.yaml").write_text(
        "description: odd\ntargets:\n  - name: t\n    linux: ['{home}/Pictures/Screenshot*']\n")

    def run_json(*args: object) -> dict:
        done = subprocess.run([sys.executable, "-m", "evidencekit", *map(str, args), "--json"],
                              capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.decode("utf-8"))  # strict: invalid UTF-8 raises

    shown = run_json("profiles", "show", tmp_path / "odd.yaml")
    expected = str(user / "Pictures") + "/Screenshots-d\\xe9c"
    assert shown["resolved"]["sources"] == [expected]
    captured = run_json("capture", "--profile", tmp_path / "odd.yaml", "-R", keys["recipient"],
                        "--sign-key", keys["signer"], "-o", tmp_path / "odd.evidence")
    assert captured["profile"]["sources"] == [expected]
    assert captured["seal"]["counts"]["files"] == 1


def test_another_users_link_the_pattern_names_in_full_is_recorded_not_followed(
        tmp_path: Path, user: Path, keys, plant):
    """A member of the group that may write /var/log runs `ln -s /etc/shadow
    /var/log/pacman.log`; root's capture with a profile naming that log must not take
    /etc/shadow: the link is recorded, and both capture and `profiles show` say why."""
    touch(tmp_path / "secret", b"root:$6$hash")
    (tmp_path / "logs").mkdir()
    link = plant(tmp_path / "logs" / "pacman.log", tmp_path / "secret")
    result, out = _capture_with(tmp_path, keys, [str(link)], "planted")
    counts = result.json()["seal"]["counts"]
    assert (counts["files"], counts["symlinks"]) == (0, 1)
    [noted] = result.json()["profile"]["links"]
    assert "made by another user" in noted["reason"] and noted["followed"] is False
    [source] = manifest_of(out, keys, tmp_path / "opened")["sources"]
    assert source["via_symlink"] is False
    shown = invoke("profiles", "show", tmp_path / "planted.yaml")
    assert "made by another user" in shown.stdout and "recorded as the link" in shown.stdout
    [listed] = invoke("profiles", "show", tmp_path / "planted.yaml", "--json").json()[
        "resolved"]["links"]
    assert listed["source"] == str(link) and listed["followed"] is False


def test_a_link_planted_after_the_profile_was_expanded_is_not_followed(
        tmp_path: Path, user: Path, keys, plant):
    """The owner is checked again when the capture opens its sources (walk.resolve_sources)."""
    from evidencekit.sources.files.walk import resolve_sources
    touch(tmp_path / "secret", b"root:$6$hash")
    (tmp_path / "logs").mkdir()
    link = os.fsencode(plant(tmp_path / "logs" / "pacman.log", tmp_path / "secret"))
    [source] = resolve_sources([link], {link: link})
    assert (source.path, source.via_symlink) == (link, False)


def test_a_named_link_inside_another_source_is_captured_through(tmp_path: Path, user: Path,
                                                                 keys):
    """user-files has `{home}/Pictures/**` and `{home}/Pictures/Screenshots`; Screenshots linked
    to another disk: its files are captured (as a source of their own), and Pictures' walk
    records the link."""
    touch(user / "Pictures" / "cat.jpg", b"\xff\xd8 cat")
    touch(tmp_path / "disk" / "shots" / "shot.png", b"\x89PNG fake")
    (user / "Pictures" / "Screenshots").symlink_to(tmp_path / "disk" / "shots")
    result, out = _capture_with(tmp_path, keys, ["{home}/Pictures/**",
                                                 "{home}/Pictures/Screenshots"], "nested")
    counts = result.json()["seal"]["counts"]
    assert (counts["files"], counts["symlinks"]) == (2, 1)
    paths = set(entries_by_path(manifest_of(out, keys, tmp_path / "opened")))
    assert {"Pictures/cat.jpg", "Pictures/Screenshots", "Screenshots/shot.png"} <= paths


def test_a_broken_link_named_in_full_is_shown_as_recorded(tmp_path: Path, user: Path):
    (user / ".bash_history").symlink_to(tmp_path / "gone")
    (tmp_path / "b.yaml").write_text(
        "description: b\ntargets:\n  - name: t\n    linux: ['{home}/.bash_history']\n")
    shown = invoke("profiles", "show", tmp_path / "b.yaml").stdout
    assert "(a broken link: recorded as the link)" in shown
    [listed] = invoke("profiles", "show", tmp_path / "b.yaml", "--json").json()[
        "resolved"]["links"]
    assert listed == {"source": str(user / ".bash_history"), "target": str(tmp_path / "gone"),
                      "followed": False, "reason": "a broken link: recorded as the link"}


def test_a_named_folder_swapped_for_a_strangers_link_during_the_capture_is_not_followed(
        tmp_path: Path, plant):
    """The owner is checked as the folder is opened, not only when the capture starts: one of
    the group that may write /var/log swaps `apt` for a link to /root/.ssh while the capture
    walks earlier sources."""
    from evidencekit.sources.files.walk import resolve_sources, walk
    touch(tmp_path / "log" / "apt" / "id_rsa", b"decoy")
    touch(tmp_path / "root" / ".ssh" / "id_rsa", b"ROOT-PRIVATE-KEY")
    wanted = os.fsencode(tmp_path / "log" / "apt" / "id_rsa")
    [source] = resolve_sources([wanted], {wanted: os.fsencode(tmp_path / "log" / "apt")})
    os.rename(tmp_path / "log" / "apt", tmp_path / "log" / "apt.old")
    plant(tmp_path / "log" / "apt", tmp_path / "root" / ".ssh")
    (entry,) = walk([source])
    assert entry.lstat is None and entry.error is not None
    assert entry.error.startswith("not captured: a folder on its path is a symbolic link")


def test_a_link_named_in_full_is_opened_checking_its_target_again(tmp_path: Path, plant):
    """Downloads (the user's link) leads to disk/dl; disk swapped for a stranger's link after
    the capture resolved the target: not followed."""
    from evidencekit.sources.files.walk import resolve_sources, walk
    touch(tmp_path / "disk" / "dl" / "invoice.pdf", b"%PDF")
    touch(tmp_path / "secret" / "dl" / "key", b"SECRET")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "Downloads").symlink_to(tmp_path / "disk" / "dl")
    given = os.fsencode(tmp_path / "home" / "Downloads")
    [source] = resolve_sources([given], {given: given})
    assert source.via_symlink
    os.rename(tmp_path / "disk", tmp_path / "disk.old")
    plant(tmp_path / "disk", tmp_path / "secret")
    (entry,) = walk([source])
    assert entry.lstat is None and entry.error is not None


def test_a_folder_typed_that_the_profile_also_finds_is_captured_once(tmp_path: Path, user: Path,
                                                                     keys):
    """`capture ~/Downloads --profile user-files`: the folder is stored once, not again as
    Downloads~1, and the user is told why only one copy is there."""
    touch(user / "Downloads" / "invoice.pdf")
    out = tmp_path / "u.evidence"
    result = invoke("capture", user / "Downloads", "--profile", "user-files",
                    "-R", keys["recipient"], "--sign-key", keys["signer"], "-o", out, "--json")
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["seal"]["counts"]["files"] == 1
    assert document["warnings"] == [f"{user / 'Downloads'}: named more than once: captured once"]
    manifest = manifest_of(out, keys, tmp_path / "opened")
    assert [s["bag_name"] for s in manifest["sources"]] == ["Downloads"]
