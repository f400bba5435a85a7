"""capture → inspect → verify → extract through the real CLI, on a realistic tree."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from evidencekit.sources.files.birthtime import birth_time_ns
from tests.support.cli import run_cli
from tests.support.trees import make_tree


def file_digests(root: Path) -> dict[bytes, tuple[str, int, int]]:
    """Regular files under *root* (relative raw path → sha256, mode, mtime_ns)."""
    found = {}
    base = os.fsencode(root)
    for folder, _dirs, files in os.walk(base):
        for name in files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                found[os.path.relpath(path, base)] = (digest, stat.S_IMODE(info.st_mode),
                                                      info.st_mtime_ns)
    return found


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


def capture(tmp_path: Path, keys: dict[str, Path], tree: Path, *extra: object) -> Path:
    out = tmp_path / "case.evidence"
    result = run_cli("capture", tree, "--case", "FRAUD-2026-0117", "--examiner", "Jane Doe",
                     "--description", "Fake bank site", "-R", keys["recipient"],
                     "--sign-key", keys["signer"], "-o", out, "--json", *extra)
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["ok"] and document["seal"]["complete"]
    return out


def test_full_round_trip_restores_bytes_names_and_metadata(tmp_path, home, keys, tree):
    before = file_digests(tree)
    atimes = {p: os.lstat(os.path.join(os.fsencode(tree), p)).st_atime_ns for p in before}
    bundle = capture(tmp_path, keys, tree)

    # The source is untouched: content, and access times.
    assert file_digests(tree) == before
    assert {p: os.lstat(os.path.join(os.fsencode(tree), p)).st_atime_ns for p in before} == atimes

    inspected = run_cli("inspect", bundle, "--json")
    assert inspected.code == 0
    assert inspected.json()["seal"]["case_id"] == "FRAUD-2026-0117"
    assert inspected.json()["recipients"] == ["X25519"]

    public = run_cli("verify", bundle, "--json", "--trusted-key", keys["signer_pub"])
    assert public.code == 0, public.stdout
    assert public.json()["signer"]["trusted"] is True
    assert public.json()["decrypted"] is False

    full = run_cli("verify", bundle, "-i", keys["identity"], "--json")
    assert full.code == 0, full.stdout
    assert full.json()["decrypted"] is True
    assert full.json()["files_checked"] == len(before)

    out = tmp_path / "opened"
    extracted = run_cli("extract", bundle, "-i", keys["identity"], "-o", out, "--json")
    assert extracted.code == 0, extracted.stdout
    restored = file_digests(out / "data" / "evidence")
    assert restored == before  # same bytes, same (raw, non-UTF-8 too) names, modes, mtimes
    assert os.readlink(out / "data" / "evidence" / "link-to-scam") == "mail/inbox/scam.eml"
    assert not os.path.lexists(out / "data" / "evidence" / "link-outside")
    assert extracted.json()["skipped_links"]
    assert (out / "data" / "evidence" / "empty-folder").is_dir()
    assert (out / "bagit.txt").exists() and (out / "evidencekit" / "manifest.json").exists()


def test_manifest_records_everything(tmp_path, home, keys, tree):
    import json

    bundle = capture(tmp_path, keys, tree)
    out = tmp_path / "opened"
    assert run_cli("extract", bundle, "-i", keys["identity"], "-o", out).code == 0
    manifest = json.loads((out / "evidencekit" / "manifest.json").read_bytes())
    by_kind: dict[str, list] = {}
    for entry in manifest["entries"]:
        by_kind.setdefault(entry["kind"], []).append(entry)
    assert len(by_kind["fifo"]) == 1 and len(by_kind["symlink"]) == 2
    assert {e["target"] for e in by_kind["symlink"]} == {"mail/inbox/scam.eml", "/etc/passwd"}
    non_utf8 = [e for e in by_kind["file"] if "path_b64" in e]
    assert len(non_utf8) == 1
    big = next(e for e in by_kind["file"] if e.get("path") == "evidence/big.bin")
    assert big["sha256"] == hashlib.sha256((tree / "big.bin").read_bytes()).hexdigest()
    assert big["mime"] == "application/octet-stream"
    parent_fd = os.open(tree, os.O_RDONLY)
    try:
        if birth_time_ns(parent_fd, b"big.bin", os.stat(tree / "big.bin")) is not None:
            assert big["birthtime"].endswith("Z")
    finally:
        os.close(parent_fd)
    eml = next(e for e in by_kind["file"] if e.get("path", "").endswith("scam.eml"))
    assert eml["mime"].startswith(("message/", "text/"))
    for entry in by_kind["file"]:
        assert entry["changed_during_read"] is False and entry["error"] is None
        assert entry["mtime"].endswith("Z") and len(entry["sha256"]) == 64
    capture_info = manifest["capture"]
    assert capture_info["started"].endswith("Z") and capture_info["tools"]["cryptography"]
    assert manifest["case"]["examiner"] == "Jane Doe"


def test_ssh_key_recipient_and_same_key_decrypts(tmp_path, home, keys, tree):
    out = tmp_path / "ssh.evidence"
    pub = keys["signer_pub"].read_text().strip()
    result = run_cli("capture", tree / "mail", "-r", pub, "--sign-key", keys["signer"], "-o", out)
    assert result.code == 0, result.stderr
    assert run_cli("verify", out, "-i", keys["signer"]).code == 0


def test_passphrase_from_file_and_environment(tmp_path, home, keys, tree):
    secret = tmp_path / "pass.txt"
    secret.write_text("correct horse battery staple\n")
    out = tmp_path / "p.evidence"
    result = run_cli("capture", tree / "mail", "--passphrase-file", secret, "--sign-key",
                     keys["signer"], "-o", out)
    assert result.code == 0, result.stderr
    assert run_cli("verify", out, "--passphrase-file", secret).code == 0
    env_run = run_cli("verify", out, "--json", env={"EVIDENCEKIT_PASSPHRASE":
                                                    "correct horse battery staple"})
    assert env_run.code == 0 and env_run.json()["decrypted"] is True
    wrong = run_cli("verify", out, "--json", env={"EVIDENCEKIT_PASSPHRASE": "wrong"})
    assert wrong.code == 4
    # extract without a terminal and without the passphrase: exit 2 naming the flag, no prompt
    no_secret = run_cli("extract", out, "-o", tmp_path / "x")
    assert no_secret.code == 2 and "--passphrase-file" in no_secret.stderr
    assert not (tmp_path / "x").exists()


def test_no_recipient_is_an_error_and_writes_nothing(tmp_path, home, keys, tree):
    out = tmp_path / "none.evidence"
    result = run_cli("capture", tree / "mail", "--sign-key", keys["signer"], "-o", out, "--json")
    assert result.code == 2
    assert result.json()["error"]["kind"] == "UsageError"
    assert not out.exists() and list(tmp_path.glob(".none.evidence*")) == []


def test_existing_output_is_never_overwritten(tmp_path, home, keys, tree):
    out = tmp_path / "exists.evidence"
    out.write_bytes(b"precious")
    result = run_cli("capture", tree / "mail", "-R", keys["recipient"], "--sign-key",
                     keys["signer"], "-o", out)
    assert result.code == 2 and out.read_bytes() == b"precious"


def test_default_signing_key_is_created_once(tmp_path, home, keys, tree):
    out1, out2 = tmp_path / "1.evidence", tmp_path / "2.evidence"
    first = run_cli("capture", tree / "mail", "-R", keys["recipient"], "-o", out1)
    assert first.code == 0 and "fingerprint" in first.stderr
    key_file = home / "evidencekit" / "id_ed25519"
    assert key_file.exists() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    second = run_cli("capture", tree / "mail", "-R", keys["recipient"], "-o", out2, "--json")
    assert second.code == 0
    fingerprint = second.json()["seal"]["signer"]["fingerprint"]
    assert run_cli("inspect", out1, "--json").json()["seal"]["signer"]["fingerprint"] == fingerprint


def _times(*folders: Path) -> list[tuple[int, int]]:
    return [(os.lstat(f).st_mtime_ns, os.lstat(f).st_ctime_ns) for f in folders]


def test_capturing_the_current_folder_asks_for_another_place_for_the_bundle(tmp_path, home,
                                                                            keys, tree):
    before = (sorted(os.listdir(tree)), _times(tree))
    result = run_cli("capture", ".", "-R", keys["recipient"], "--sign-key", keys["signer"],
                     "--case", "C-1", cwd=tree)
    assert result.code == 2, result.stderr
    said = " ".join(result.stderr.split())
    assert f"saved in the current folder, {tree}, a folder being captured: saving it there " \
        "would change the evidence" in said
    assert "-o /path/to/the/stick/C-1.evidence" in said and "Traceback" not in said
    assert (sorted(os.listdir(tree)), _times(tree)) == before
    # from a folder outside the source, the default place is fine
    outside = run_cli("capture", tree / "mail", "-R", keys["recipient"], "--sign-key",
                      keys["signer"], "--case", "C-1", cwd=tmp_path)
    assert outside.code == 0, outside.stderr
    assert (tmp_path / "C-1.evidence").exists()


def test_a_new_signing_key_is_never_created_inside_a_source(tmp_path, home, keys):
    (home / "notes.txt").write_text("my notes\n")
    key = home / "evidencekit" / "id_ed25519"
    out = tmp_path / "home.evidence"
    before = (sorted(os.listdir(home)), _times(home))
    refused = run_cli("capture", home, "-R", keys["recipient"], "-o", out, "--json")
    assert refused.code == 2, refused.stderr
    error = refused.json()["error"]
    assert error["kind"] == "OutputError" and "signing key" in error["message"]
    assert "would change the evidence" in error["message"]
    assert f"evidencekit key generate -o {key}" in error["hint"]
    assert (sorted(os.listdir(home)), _times(home)) == before and not out.exists()
    # as the hint says: make the key first, then capture; the private key is left out
    assert run_cli("key", "generate", "-o", key).code == 0
    done = run_cli("capture", home, "-R", keys["recipient"], "-o", out, "--json")
    assert done.code == 0, done.stderr
    inspected = run_cli("extract", out, "-i", keys["identity"], "-o", tmp_path / "x", "--json")
    assert inspected.code == 0, inspected.stderr
    manifest = json.loads((tmp_path / "x" / "evidencekit" / "manifest.json").read_bytes())
    private = [e for e in manifest["entries"] if e.get("path", "").endswith("id_ed25519")]
    assert len(private) == 1 and private[0]["error"].startswith("skipped: evidencekit's own")
    # a key that exists already is only read: capturing a folder holding it works as before
    assert (tmp_path / "x" / "data" / "config" / "evidencekit" / "id_ed25519.pub").exists()


def test_wrong_key_gives_exit_4_and_untrusted_signer_fails(tmp_path, home, keys, tree):
    from evidencekit.crypto import age
    from evidencekit.crypto.keys import SigningKey

    bundle = capture(tmp_path, keys, tree / "mail")
    other = tmp_path / "other.txt"
    other.write_text(str(age.X25519Identity.generate()) + "\n")
    wrong = run_cli("verify", bundle, "-i", other, "--json")
    assert wrong.code == 4 and wrong.json()["no_matching_key"]
    stranger = SigningKey.generate()
    untrusted = run_cli("verify", bundle, "--trusted-key", stranger.public.openssh_line())
    assert untrusted.code == 1


def test_usage_errors_are_one_line_not_tracebacks(tmp_path, home):
    for args in (["capture"], ["verify", tmp_path / "missing.evidence"],
                 ["extract", tmp_path / "missing.evidence", "-o", tmp_path / "o", "-i",
                  tmp_path / "nokey"]):
        result = run_cli(*args)
        assert result.code == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and "error" in result.stderr


def test_json_mode_prints_only_json(tmp_path, home, keys, tree):
    bundle = capture(tmp_path, keys, tree / "mail")
    result = run_cli("verify", bundle, "--json")
    result.json()  # parses: nothing but one document on stdout


def test_signing_key_inside_a_source_is_never_captured(tmp_path, home, keys):
    import json

    source = keys["signer"].parent  # holds the private signing key itself
    out = tmp_path / "keys.evidence"
    result = run_cli("capture", source, "-R", keys["recipient"], "--sign-key", keys["signer"],
                     "-o", out, "--json")
    assert result.code == 0, result.stderr
    assert result.json()["seal"]["counts"]["skipped"] == 1
    opened = tmp_path / "opened"
    assert run_cli("extract", out, "-i", keys["identity"], "-o", opened).code == 0
    assert not (opened / "data" / "keys" / "signer").exists()
    assert (opened / "data" / "keys" / "signer.pub").exists()
    manifest = json.loads((opened / "evidencekit" / "manifest.json").read_bytes())
    skipped = [e for e in manifest["entries"] if e.get("path") == "keys/signer"]
    assert skipped and skipped[0]["error"].startswith("skipped: evidencekit's own file")
