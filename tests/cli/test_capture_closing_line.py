"""The line a capture ends with names the command that checks the bundle's files too, not only
its seal: 'evidencekit verify BUNDLE' alone cannot decrypt a passphrase bundle (nor one made
for a key), and said nothing of it."""

from __future__ import annotations

import shlex
from pathlib import Path

from tests.support.cli import invoke
from tests.support.keys import BUNDLE_PASSPHRASE, make_keys


def advised(stdout: str) -> list[str]:
    """The command the closing line advises, as words (the bundle's path has no spaces)."""
    [line] = [line for line in stdout.splitlines() if line.startswith("Keep this bundle")]
    command = line.split(" with: ", 1)[1].split(" (", 1)[0]
    return shlex.split(command)


def test_a_passphrase_bundle_is_checked_with_its_passphrase(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    (tmp_path / "note.txt").write_text("evidence\n")
    bundle = tmp_path / "p.evidence"
    done = invoke("capture", tmp_path / "note.txt", "--passphrase-file", keys["passphrase"],
                  "--sign-key", keys["signer"], "-o", bundle)
    assert done.code == 0, done.stderr
    words = advised(done.stdout)
    assert words == ["evidencekit", "verify", "-p", str(bundle)]
    checked = invoke(*words[1:], "--json", env={"EVIDENCEKIT_PASSPHRASE": BUNDLE_PASSPHRASE})
    assert checked.code == 0 and checked.json()["decrypted"] is True
    assert checked.json()["files_checked"] == 1


def test_a_key_bundle_is_checked_with_a_recipients_key(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    (tmp_path / "note.txt").write_text("evidence\n")
    bundle = tmp_path / "k.evidence"
    done = invoke("capture", tmp_path / "note.txt", "-R", keys["recipient"],
                  "--sign-key", keys["signer"], "-o", bundle)
    assert done.code == 0, done.stderr
    words = advised(done.stdout)
    assert words == ["evidencekit", "verify", "-i", "KEYFILE", str(bundle)]
    assert "KEYFILE: the private key of one of its recipients" in done.stdout
    words[words.index("KEYFILE")] = str(keys["identity"])
    checked = invoke(*words[1:], "--json")
    assert checked.code == 0 and checked.json()["files_checked"] == 1
