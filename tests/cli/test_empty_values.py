"""An empty value ("", as an unset variable in a script gives) is refused, naming the option
(exit 2), before anything is read or written. Before: ``capture --remote ""`` made a LOCAL
capture, silently (and ``--imap ""`` one without the mailbox, ``--profile ""`` one without the
profile); ``-o ""`` said ". already exists", ``--sign-key ""`` "cannot read the signing key .";
``capture ""`` captured the current folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import invoke, run_cli
from tests.support.keys import KeyFiles

CAPTURE_OPTIONS = [
    ("--remote", ""), ("--remote", "  "), ("-o", ""), ("--case", ""), ("--examiner", ""),
    ("--imap", ""), ("--folder", ""), ("--profile", ""), ("--sign-key", ""), ("-R", ""),
    ("-r", ""), ("--device", ""), ("--endpoint", ""), ("--host-key", ""),
    ("--remote-command", ""), ("--max-size", ""), ("--imap-fingerprint", ""),
    ("--user-agent", ""), ("--passphrase-file", ""), ("--config", ""),
]


@pytest.mark.parametrize(("option", "value"), CAPTURE_OPTIONS,
                         ids=[f"{o}={v!r}" for o, v in CAPTURE_OPTIONS])
def test_capture_refuses_an_empty_value_naming_the_option(
        option: str, value: str, tmp_path: Path, user: Path, keys: KeyFiles,
        tree: Path) -> None:
    out = tmp_path / "files.evidence"
    args = ["capture", tree, "-R", keys["recipient"], "--sign-key", keys["signer"]]
    if option != "-o":
        args += ["-o", out]
    if option in ("--config",):  # a group option: before the command
        args = [option, value, *args]
    else:
        args += [option, value]
    result = invoke(*args)
    assert result.code == 2, result.stdout + result.stderr
    [message] = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert message.startswith("Error: Invalid value for ") and f"'{option}'" in message
    assert message.endswith("it is empty: give a value, or leave the option out"), message
    assert not out.exists() and not list(tmp_path.rglob("*.evidence"))


def test_capture_refuses_an_empty_source(tmp_path: Path, user: Path, keys: KeyFiles,
                                         tree: Path) -> None:
    """'' was taken for the current folder."""
    result = run_cli("capture", tree, "", "-R", keys["recipient"], "--sign-key",
                     keys["signer"], "-o", tmp_path / "files.evidence", "--json")
    assert result.code == 2, result.stdout + result.stderr
    assert result.json()["error"]["message"] == (
        "Invalid value for '[SOURCES]...': one of them is empty (\"\"): name a file or folder")


@pytest.mark.parametrize("args", [
    ["verify", "BUNDLE", "--trusted-key", ""],
    ["verify", "BUNDLE", "-i", ""],
    ["verify", "BUNDLE", "--against", ""],
    ["verify", ""],
    ["extract", "BUNDLE", "-o", ""],
    ["custody", "add", "BUNDLE", "--action", "transferred", "--to", ""],
    ["custody", "add", "BUNDLE", "--action", "received", "--from", ""],
    ["custody", "add", "BUNDLE", "--action", "received", "--actor", "", "--from", "Bob"],
    ["store", "list", "s3://bucket/prefix/", "--endpoint", ""],
    # a copy into the current folder, recorded as a 'transferred' event (exit 0)
    ["store", "put", "BUNDLE", ""],
    ["store", "put", "BUNDLE", "s3://bucket/prefix/", "--retain-until", ""],
    ["capture", "BUNDLE", "-o", "OUT", "--retain-until", ""],  # ignored, as if not given
], ids=lambda args: " ".join(a or "''" for a in args))
def test_other_commands_refuse_an_empty_value(args: list[str], tmp_path: Path, user: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    here = tmp_path / "here"  # "" taken for the current folder would write here
    here.mkdir()
    monkeypatch.chdir(here)
    bundle = tmp_path / "case.evidence"
    bundle.write_bytes(b"not read: the value is refused first")
    result = invoke(*[str(bundle) if a == "BUNDLE" else str(tmp_path / "out.evidence")
                      if a == "OUT" else a for a in args])
    assert result.code == 2, result.stdout + result.stderr
    assert "is empty" in result.stderr, result.stderr
    assert bundle.read_bytes() == b"not read: the value is refused first"
    assert list(tmp_path.rglob("*.evidence")) == [bundle] and not list(here.iterdir())


def test_a_name_of_blanks_is_still_a_name(tmp_path: Path, user: Path, keys: KeyFiles,
                                          tree: Path) -> None:
    """Only "" is refused for a file: ' ' is a file name like any other."""
    (tree / " ").write_text("a file named with a blank\n")
    result = invoke("capture", tree / " ", "-R", keys["recipient"], "--sign-key",
                    keys["signer"], "-o", tmp_path / "blank.evidence", "--json")
    assert result.code == 0, result.stdout + result.stderr
