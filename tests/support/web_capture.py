"""capture --url run as the real command in a child process, and what it made checked: verified
and extracted, the capture document against its JSON Schema (the web suites share these)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.cli import Result, run_cli
from tests.support.schemas import SCHEMAS


def capture(tmp_path: Path, keys: dict[str, Path], *args: object,
            env: dict[str, str] | None = None) -> Result:
    return run_cli("capture", "--case", "WEB-1", "-R", keys["recipient"], "--sign-key",
                   keys["signer"], "-o", tmp_path / "out.evidence", "--json",
                   "--url-timeout", "2", *args, env=env)


def extracted(tmp_path: Path, keys: dict[str, Path]) -> Path:
    checked = run_cli("verify", tmp_path / "out.evidence", "-i", keys["identity"], "--json")
    assert checked.code == 0 and json.loads(checked.stdout)["ok"], checked.stdout
    done = run_cli("extract", tmp_path / "out.evidence", "-i", keys["identity"],
                   "-o", tmp_path / "out")
    assert done.code == 0, done.stderr
    return tmp_path / "out" / "data"


def valid_capture_document(path: Path) -> dict[str, Any]:
    from jsonschema import Draft202012Validator
    schema = json.loads((SCHEMAS / "web-capture.schema.json").read_text())
    document: dict[str, Any] = json.loads(path.read_bytes())
    errors = list(Draft202012Validator(schema).iter_errors(document))
    assert not errors, [e.message for e in errors]
    return document
