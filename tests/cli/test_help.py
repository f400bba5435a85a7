"""--help as people read it: no description cut short, the guided session and the exit codes
named at the top, and what the key command is for."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest

from evidencekit.cli.main import cli
from evidencekit.errors import ExitCode
from tests.support.cli import commands_of, invoke
from tests.support.schemas import assert_valid


def help_of(*path: str, columns: int = 80) -> str:
    result = invoke(*path, "--help", env={"COLUMNS": str(columns)})
    assert result.code == 0, result.stderr
    return result.stdout


def groups(group: click.Group = cli, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, command in commands_of(group).items():
        if isinstance(command, click.Group):
            found += groups(command, (*path, name))
    return found


def commands_section(text: str) -> str:
    return text.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]


@pytest.mark.parametrize("path", groups(), ids=lambda p: " ".join(p) or "evidencekit")
def test_no_command_description_is_cut_short(path: tuple[str, ...], user: Path) -> None:
    listed = commands_section(help_of(*path))
    assert "..." not in listed and "…" not in listed, listed
    for line in listed.splitlines():
        assert len(line) <= 80, line


def test_every_command_has_a_sentence_in_the_list(user: Path) -> None:
    listed = commands_section(help_of())
    names = {line.split()[0] for line in listed.splitlines() if line.startswith("  ")
             and not line.startswith("   ")}
    assert names == {name for name, command in commands_of().items() if not command.hidden}
    for line in listed.splitlines():
        assert line.rstrip().endswith((".", ")")), line


def test_the_top_level_help_names_the_guided_session_and_every_exit_code(user: Path) -> None:
    text = help_of()
    assert "evidencekit capture           guided session for victims (no arguments," in text
    table = text.split("Exit codes:", 1)[1]
    listed = {int(code) for code in re.findall(r"^    (\d+) ", table, re.M)}
    assert listed == {v for k, v in vars(ExitCode).items() if k.isupper()}


def test_key_is_for_opening_bundles_too(user: Path) -> None:
    listed = commands_section(help_of())
    assert "Create key pairs: to sign, and to open bundles made for you." in listed
    text = " ".join(help_of("key").split())
    assert "opens bundles made for you (-i KEY)" in text and "-R" in text
    assert "Create signing keys" not in text
    generate = " ".join(help_of("key", "generate").split())
    assert "open bundles made for it (-i OUTPUT)" in generate


# ------------------------------------------------------------------------ verify --receipt
@pytest.fixture
def receipt(tmp_path: Path, bundle: Path) -> Path:
    out = tmp_path / "receipt.txt"
    assert invoke("receipt", bundle, "-o", out).code == 0
    return out


def test_a_matching_receipt_is_said_to_match(bundle: Path, receipt: Path,
                                             keys: dict[str, Any]) -> None:
    result = invoke("verify", bundle, "--receipt", receipt)
    assert result.code == 0, result.stderr
    assert (f"Receipt  matches {receipt}: the same bundle; the receipt's newest custody event "
            "is #1, and none was added since") in result.stdout
    added = invoke("custody", "add", bundle, "--action", "transferred", "--to", "Bob",
                   "--sign-key", keys["signer"])
    assert added.code == 0, added.stderr
    document = invoke("verify", bundle, "--receipt", receipt, "--json").json()
    assert_valid(document, "verify")
    assert document["ok"] is True
    assert document["receipt"] == {"file": str(receipt), "matches": True, "newest_event": 1,
                                   "events_since": 1}
    assert "and 1 was added since" in invoke("verify", bundle, "--receipt", receipt).stdout


def test_a_receipt_of_another_bundle_does_not_match(tmp_path: Path, bundle: Path,
                                                    receipt: Path, keys: dict[str, Any],
                                                    tree: Path) -> None:
    other = tmp_path / "other.evidence"
    made = invoke("capture", tree, "--case", "CASE-1", "-R", keys["recipient"], "--sign-key",
                  keys["signer"], "-o", other)
    assert made.code == 0, made.stderr
    result = invoke("verify", other, "--receipt", receipt)
    assert result.code == ExitCode.EVIDENCE_PROBLEM
    assert f"Receipt  does NOT match {receipt} (the differences are listed below)" in result.stdout
    document = invoke("verify", other, "--receipt", receipt, "--json").json()
    assert_valid(document, "verify")
    assert document["receipt"]["matches"] is False


def test_without_a_receipt_the_field_is_null(bundle: Path) -> None:
    document = invoke("verify", bundle, "--json").json()
    assert_valid(document, "verify")
    assert document["receipt"] is None
