"""Fixtures for CLI tests: an isolated user (HOME, config folder, no EVIDENCEKIT_* variables),
an in-process runner (fast), keys, a small evidence tree, and the JSON Schemas of docs/schemas."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evidencekit.capture import CaptureRequest, CaseInfo, capture
from evidencekit.cli.main import cli
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "schemas"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout)


@pytest.fixture
def user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh user: HOME and XDG_CONFIG_HOME in tmp_path, no EVIDENCEKIT_* variables, cwd there."""
    home = tmp_path / "home"
    config = tmp_path / "config"
    home.mkdir()
    config.mkdir()
    for name in list(os.environ):
        if name.startswith("EVIDENCEKIT_") and name != "EVIDENCEKIT_REQUIRE_TOOLS":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.chdir(tmp_path)
    return home


def invoke(*args: object, env: dict[str, str] | None = None) -> Result:
    """Run the CLI in this process (no terminal, empty stdin)."""
    runner = CliRunner()
    outcome = runner.invoke(cli, [str(a) for a in args], env=env, input="",
                            catch_exceptions=False)
    return Result(outcome.exit_code, outcome.stdout, outcome.stderr)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Any]:
    folder = tmp_path / "keys"
    folder.mkdir()
    signer = SigningKey.generate("examiner@test")
    signer.save(folder / "signer")
    protected = SigningKey.generate("protected@test")
    protected.save(folder / "protected", b"key secret")
    identity = age.X25519Identity.generate()
    other = age.X25519Identity.generate()
    (folder / "identity.txt").write_text(f"{identity}\n")
    (folder / "other.txt").write_text(f"{other}\n")
    (folder / "recipient.txt").write_text(f"{identity.recipient()}\n")
    stranger = SigningKey.generate("stranger@test")
    stranger.save(folder / "stranger")
    (folder / "passphrase.txt").write_text("bundle secret\n")
    return {"signer": folder / "signer", "signer_pub": folder / "signer.pub",
            "protected": folder / "protected", "identity": folder / "identity.txt",
            "other": folder / "other.txt", "recipient": folder / "recipient.txt",
            "recipient_line": str(identity.recipient()), "stranger_pub": folder / "stranger.pub",
            "passphrase": folder / "passphrase.txt"}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "evidence"
    (src / "mail").mkdir(parents=True)
    (src / "mail" / "scam.eml").write_bytes(b"From: a@b\n\nPay now\n")
    (src / "notes.txt").write_text("what happened\n")
    return src


@pytest.fixture
def bundle(tmp_path: Path, user: Path, keys: dict[str, Any], tree: Path) -> Path:
    out = tmp_path / "case.evidence"
    result = invoke("capture", tree, "--case", "CASE-1", "-R", keys["recipient"],
                    "--sign-key", keys["signer"], "-o", out, "--json")
    assert result.code == 0, result.stderr
    return out


@pytest.fixture
def passphrase_bundle(tmp_path: Path, tree: Path) -> Path:
    """A bundle protected by a passphrase (low scrypt work factor: fast)."""
    out = tmp_path / "pass.evidence"
    capture(CaptureRequest([os.fsencode(tree)], out, CaseInfo("CASE-P", "tester"),
                           [age.ScryptRecipient(b"bundle secret", work_factor=10)],
                           SigningKey.generate("t@test"), command_line=["test"]))
    return out


def schema_validator(name: str) -> Any:
    """A validator for docs/schemas/NAME.schema.json, resolving references to the other files."""
    return _validator(json.loads((SCHEMAS / f"{name}.schema.json").read_text("utf-8")))


def _validator(schema: dict[str, Any]) -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    documents = [json.loads(p.read_text("utf-8")) for p in SCHEMAS.glob("*.schema.json")]
    registry: Registry = Registry().with_resources(
        (d["$id"], Resource.from_contents(d)) for d in documents)
    base = documents[0]["$id"].rsplit("/", 1)[0] + "/"
    return Draft202012Validator({"$id": base + "test.schema.json", **schema}, registry=registry)


def assert_valid(document: dict[str, Any], name: str) -> None:
    _assert_no_errors(schema_validator(name), document)


def assert_valid_definition(document: dict[str, Any], definition: str) -> None:
    """*document* against one of common.schema.json's $defs (e.g. error_document)."""
    _assert_no_errors(_validator({"$ref": f"common.schema.json#/$defs/{definition}"}), document)


def _assert_no_errors(validator: Any, document: dict[str, Any]) -> None:
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
