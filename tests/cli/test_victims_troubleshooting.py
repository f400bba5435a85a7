"""docs/victims.md, "When something goes wrong": every message the table quotes is one the tool
really prints. Each row is provoked for real through the CLI and its quoted words (the parts
between "…") looked for in what was printed; the two that need a terminal or a tampered incident
record, produced by their own tests, are looked for in the code instead."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from evidencekit.crypto.keys import SigningKey
from tests.support.cli import Result, invoke
from tests.support.schemas import ROOT

DOC = ROOT / "docs" / "victims.md"
CODE = ROOT / "evidencekit"


def quoted_messages() -> list[str]:
    """The first `…` of the first cell of each row of the table."""
    section = DOC.read_text("utf-8").split("## When something goes wrong", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert len(rows) >= 10, "the troubleshooting table was not found"
    return [re.match(r"\| `([^`]+)`", row).group(1) for row in rows]  # type: ignore[union-attr]


@dataclass
class Case:
    tmp_path: Path
    keys: dict[str, Any]
    tree: Path
    bundle: Path
    passphrase_bundle: Path
    monkeypatch: pytest.MonkeyPatch

    def wrong_passphrase(self) -> Path:
        wrong = self.tmp_path / "wrong.txt"
        wrong.write_text("not it\n")
        return wrong

    def ssh_bundle(self) -> Path:
        investigator = SigningKey.generate("investigator@test")
        investigator.save(self.tmp_path / "investigator")
        out = self.tmp_path / "ssh.evidence"
        made = invoke("capture", self.tree, "-R", self.tmp_path / "investigator.pub",
                      "--sign-key", self.keys["signer"], "-o", out)
        assert made.code == 0, made.stderr
        return out

    def tampered(self) -> Path:
        data = bytearray(self.bundle.read_bytes())
        data[len(data) // 2] ^= 0xFF  # inside the payload
        self.bundle.write_bytes(bytes(data))
        return self.bundle

    def interrupted(self) -> Result:
        def stop(request: object) -> None:
            raise KeyboardInterrupt

        self.monkeypatch.setattr("evidencekit.cli.capture_mail.capture", stop)
        return invoke("capture", self.tree, "-R", self.keys["recipient"], "--sign-key",
                      self.keys["signer"], "-o", self.tmp_path / "c.evidence")


IN_CODE = "in the code"  # needs a terminal or a tampered incident record: see the test named
SCENARIOS: dict[str, Callable[[Case], Result] | str] = {
    "That passphrase does not open this bundle.": IN_CODE,  # test_passphrase_retry_pty.py
    "the passphrase does not open this bundle": lambda c: invoke(
        "report", c.passphrase_bundle, "--passphrase-file", c.wrong_passphrase(), "-o",
        c.tmp_path / "r.html"),
    "this bundle is protected by a passphrase, not a key": lambda c: invoke(
        "report", c.passphrase_bundle, "-i", c.keys["identity"], "-o", c.tmp_path / "r.html"),
    "this bundle is protected by a key, not a passphrase": lambda c: invoke(
        "report", c.bundle, "--passphrase-file", c.keys["passphrase"], "-o",
        c.tmp_path / "r.html"),
    "… and none of the keys given (-i) opens it": lambda c: invoke(
        "verify", c.bundle, "-i", c.keys["other"]),
    "it opens with the SSH key whose fingerprint starts SHA256:…": lambda c: invoke(
        "verify", c.ssh_bundle(), "-i", c.keys["identity"]),
    "it opens with an age key (age1…), the bundle does not reveal which": lambda c: invoke(
        "extract", c.bundle, "-i", c.keys["other"], "-o", c.tmp_path / "out"),
    # test_forced_report_marks_an_edited_incident_record_as_not_sealed (tests/victim)
    "NOT the sealed record — it fails verification": IN_CODE,
    "nothing to capture": lambda c: invoke("capture"),
    "… already exists": lambda c: invoke(
        "report", c.bundle, "-i", c.keys["identity"], "-o", c.keys["passphrase"], "--format",
        "html"),
    "the bundle did not pass verification (…), so no report was made": lambda c: invoke(
        "report", c.tampered(), "-i", c.keys["identity"], "-o", c.tmp_path / "r.html"),
    "interrupted; nothing was written": Case.interrupted,
    "a note is public …": lambda c: invoke("note", c.bundle, "--text", "the bank called"),
    "… is a file, not a public key": lambda c: invoke(
        "capture", c.tree, "-r", c.keys["recipient"], "-o", c.tmp_path / "x.evidence"),
    "… is a private key; encrypting needs the public key": lambda c: invoke(
        "capture", c.tree, "-R", c.keys["signer"], "-o", c.tmp_path / "x.evidence"),
}


def fragments(message: str) -> list[str]:
    return [part.strip() for part in message.split("…") if part.strip()]


def test_every_scenario_is_in_the_table() -> None:
    assert set(SCENARIOS) <= set(quoted_messages()), "a scenario for a row no longer there"


@pytest.mark.parametrize("message", quoted_messages())
def test_the_tool_prints_what_the_table_quotes(message: str, tmp_path: Path, user: Path,
                                               keys: dict[str, Any], tree: Path, bundle: Path,
                                               passphrase_bundle: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert message in SCENARIOS, f"add a scenario that makes evidencekit print {message!r}"
    scenario = SCENARIOS[message]
    if scenario == IN_CODE:
        code = "\n".join(p.read_text("utf-8") for p in sorted(CODE.rglob("*.py")))
        for part in fragments(message):
            assert part in code, part
        return
    assert callable(scenario)
    result = scenario(Case(tmp_path, keys, tree, bundle, passphrase_bundle, monkeypatch))
    assert result.code != 0, result.stdout
    printed = " ".join((result.stdout + result.stderr).split())
    for part in fragments(message):
        assert part in printed, (part, printed)
