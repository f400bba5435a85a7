"""The rarely used options and commands, each run by the real command in a fresh interpreter.

Since start-up became lazy (a mail, web or device source, a store, the guided session, a TSA's
certificates are imported only when an option asks), a missing import on one of these paths
shows only as 'internal error' (exit 5) in a real run: in-process tests (CliRunner) hide it
once another test imported the module. Each path here ends in its own plain outcome, and none
in a traceback. Servers are down on purpose (a closed port on 127.0.0.1): what is checked is
that the path loads and says what happened, not the protocol (tests/sources, tests/remote do).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.cli import Result, run_cli
from tests.support.keys import BUNDLE_PASSPHRASE, KeyFiles


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (one just released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def plain(result: Result, code: int, words: str) -> None:
    both = result.stdout + result.stderr
    assert "Traceback" not in both and "internal error" not in both, both
    assert result.code == code, both
    assert words in both, both


@pytest.fixture
def sealed(tmp_path: Path, user: Path, keys: KeyFiles, tree: Path) -> Path:
    out = tmp_path / "fresh.evidence"
    plain(run_cli("capture", tree, "-R", keys["recipient"], "--sign-key", keys["signer"],
                  "-o", out, "--progress", "none"), 0, "Sealed")
    return out


def test_a_mailbox_that_does_not_answer(tmp_path: Path, user: Path, keys: KeyFiles) -> None:
    result = run_cli("capture", "--imap", f"imaps://jane@127.0.0.1:{closed_port()}",
                     "--since", "2026-11-01", "--folder", "INBOX", "-R", keys["recipient"],
                     "--sign-key", keys["signer"], "-o", tmp_path / "m.evidence",
                     env={"EVIDENCEKIT_IMAP_PASSWORD": "x"})
    plain(result, 2, "cannot connect to 127.0.0.1")


def test_a_web_page_that_does_not_answer(tmp_path: Path, user: Path, keys: KeyFiles) -> None:
    result = run_cli("capture", "--url", f"http://127.0.0.1:{closed_port()}/", "--url-timeout",
                     "2", "--url-max-size", "2048", "--user-agent", "UA", "-R",
                     keys["recipient"], "--sign-key", keys["signer"], "-o",
                     tmp_path / "w.evidence")
    plain(result, 3, "was not captured whole")


def test_a_disk_image_its_check_against_it_and_its_e01(tmp_path: Path, user: Path,
                                                        keys: KeyFiles) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(range(256)) * 4096)
    out = tmp_path / "d.evidence"
    plain(run_cli("capture", "--device", image, "--hash", "md5,sha1", "--retries", "0", "-R",
                  keys["recipient"], "--sign-key", keys["signer"], "-o", out), 0, "Sealed")
    plain(run_cli("verify", out, "-i", keys["identity"], "--against", image), 0, "VERIFIED")
    plain(run_cli("export", out, "-i", keys["identity"], "--format", "e01", "-o",
                  tmp_path / "d.E01"), 0, "exported e01")


def test_a_tsa_that_does_not_answer(tmp_path: Path, sealed: Path, keys: KeyFiles,
                                    tree: Path) -> None:
    tsa = f"http://127.0.0.1:{closed_port()}/"
    plain(run_cli("timestamp", sealed, "--tsa", tsa), 7, "could not reach the TSA")
    plain(run_cli("capture", tree, "--tsa", tsa, "-R", keys["recipient"], "--sign-key",
                  keys["signer"], "-o", tmp_path / "t.evidence"), 7, "evidencekit timestamp")


def test_a_remote_host_not_pinned(tmp_path: Path, user: Path, keys: KeyFiles) -> None:
    (tmp_path / "known_hosts").write_text("")  # a known_hosts that does not name the host
    result = run_cli("capture", "/etc/hostname", "--remote", f"root@127.0.0.1:{closed_port()}",
                     "--known-hosts", tmp_path / "known_hosts", "--remote-timeout", "5",
                     "-R", keys["recipient"], "--sign-key", keys["signer"], "-o",
                     tmp_path / "r.evidence")
    plain(result, 1, "nothing was captured")


def test_a_store_that_does_not_answer(sealed: Path, keys: KeyFiles) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION":
           "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "1"}
    plain(run_cli("store", "list", "s3://bucket/", "--endpoint", endpoint, env=env), 2,
          "error")
    plain(run_cli("verify", "s3://bucket/x.evidence", "--endpoint", endpoint, env=env), 2,
          "error")


def test_custody_notes_receipt_reseal_and_reports(tmp_path: Path, sealed: Path,
                                                   keys: KeyFiles) -> None:
    signer = ("--sign-key", keys["signer"])
    plain(run_cli("custody", "add", sealed, "--action", "transferred", "--to", "Alice",
                  *signer), 0, "transferred")
    plain(run_cli("custody", "show", sealed, "--json"), 0, "events")
    plain(run_cli("note", sealed, "--kind", "loss", "--amount", "35.50", "--currency", "GBP",
                  "--yes", *signer), 0, "note")
    plain(run_cli("receipt", sealed, "-o", tmp_path / "receipt.pdf"), 0, "receipt")
    plain(run_cli("verify", sealed, "--receipt", tmp_path / "receipt.pdf"), 0, "VERIFIED")
    plain(run_cli("report", sealed, "-i", keys["identity"], "-o", tmp_path / "r.pdf"), 0,
          "report")
    for kind in ("case", "dfxml", "hashdeep", "html"):
        plain(run_cli("export", sealed, "-i", keys["identity"], "--format", kind, "-o",
                      tmp_path / f"x.{kind}"), 0, f"exported {kind}")
    plain(run_cli("reseal", sealed, "-i", keys["identity"], "-R", keys["recipient"], "-o",
                  tmp_path / "again.evidence", *signer), 0, "Resealed")


def test_a_passphrase_bundle_opened_from_a_file_and_the_environment(
        tmp_path: Path, user: Path, passphrase_bundle: Path, keys: KeyFiles) -> None:
    secret = tmp_path / "passphrase.txt"
    secret.write_text(BUNDLE_PASSPHRASE + "\n")
    plain(run_cli("verify", passphrase_bundle, "--passphrase-file", secret), 0, "decrypted")
    plain(run_cli("report", passphrase_bundle, "-o", tmp_path / "r.html",
                  env={"EVIDENCEKIT_PASSPHRASE": BUNDLE_PASSPHRASE}), 0, "report")
    plain(run_cli("export", passphrase_bundle, "-i", keys["identity"], "--passphrase-file",
                  secret, "--format", "pdf", "-o", tmp_path / "r.pdf"), 0, "exported pdf")
    plain(run_cli("verify", passphrase_bundle, "-p"), 2, "--passphrase-file")


def test_profiles_live_state_and_keys(tmp_path: Path, user: Path, keys: KeyFiles) -> None:
    plain(run_cli("profiles", "list", "--json"), 0, "browser-history")
    plain(run_cli("profiles", "show", "browser-history"), 0, "browser-history")
    plain(run_cli("key", "generate", "-o", tmp_path / "new_key"), 0, "SHA256:")
    plain(run_cli("capture", "--live", "-R", keys["recipient"], "--sign-key", keys["signer"],
                  "-o", tmp_path / "live.evidence"), 0, "Sealed")
