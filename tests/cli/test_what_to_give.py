"""The next step a message names is an option of the command that printed it, for the bundle
at hand: a passphrase bundle is opened with -p, not -i KEY; reseal's and note's --passphrase is
the passphrase of the bundle read, so the new bundle's is --new-passphrase-file."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import invoke
from tests.support.keys import KeyFiles


def test_verify_without_a_key_names_what_opens_the_bundle(bundle: Path,
                                                          passphrase_bundle: Path) -> None:
    by_passphrase = invoke("verify", passphrase_bundle, "--progress", "none")
    assert by_passphrase.code == 0, by_passphrase.stderr
    assert "give its passphrase with -p to check every file too" in by_passphrase.stdout
    by_key = invoke("verify", bundle, "--progress", "none")
    assert by_key.code == 0, by_key.stderr
    assert "give -i KEY to check every file too" in by_key.stdout


def test_reseal_and_a_private_note_without_a_new_holder_name_the_new_passphrase_option(
        tmp_path: Path, bundle: Path, keys: KeyFiles) -> None:
    for argv in (("reseal", bundle, "-i", keys["identity"], "-o", tmp_path / "new.evidence"),
                 ("note", bundle, "--private", "--text", "t", "-i", keys["identity"], "-o",
                  tmp_path / "noted.evidence")):
        result = invoke(*argv, "--sign-key", keys["signer"])
        assert result.code == 2, result.stderr
        assert "no way to encrypt the bundle was given" in result.stderr
        assert "--new-passphrase-file FILE" in result.stderr
        assert "or --passphrase\n" not in result.stderr
        assert not (tmp_path / "new.evidence").exists()
        assert not (tmp_path / "noted.evidence").exists()


def test_one_file_is_said_in_the_singular(tmp_path: Path, user: Path, keys: KeyFiles) -> None:
    one = tmp_path / "one.txt"
    one.write_text("alone\n")
    out = tmp_path / "one.evidence"
    assert invoke("capture", one, "-R", keys["recipient"], "--sign-key", keys["signer"], "-o",
                  out).code == 0
    result = invoke("verify", out, "-i", keys["identity"], "--progress", "none")
    assert result.code == 0, result.stderr
    assert "VERIFIED: its 1 file decrypted and matches its hash" in " ".join(result.stdout.split())
