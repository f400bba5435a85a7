"""An endpoint's user name and password (https://KEY:SECRET@store/) are never shown or recorded:
not in error messages (botocore's quote the whole URL), --json, nor the command line a capture
records for good in its manifest."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from tests.support.cli import invoke, run_cli
from tests.support.s3server import S3Server

SECRET = "NotToBeSeen0123456789"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_endpoint_is_named_without_its_password(tmp_path: Path) -> None:
    endpoint = f"http://AKIAEXAMPLE:{SECRET}@127.0.0.1:{_closed_port()}"
    env = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION":
           "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "1"}
    for command in (("store", "list", "s3://evidence/", "--json"), ("verify", "s3://evidence/k")):
        result = invoke(*command, "--endpoint", endpoint, env=env)
        assert result.code == 2, result.stdout + result.stderr
        said = result.stdout + result.stderr
        assert "cannot reach" in said and "127.0.0.1" in said
        assert SECRET not in said and "AKIAEXAMPLE" not in said


def test_a_capture_records_its_command_line_without_the_endpoints_password(
        tmp_path: Path, tree: Path, keys: dict[str, Any], user: Path,
        s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket(lock=False)
    endpoint = s3_server.endpoint.replace("http://", f"http://AKIAEXAMPLE:{SECRET}@")
    result = run_cli("capture", tree, "--case", "CASE-S", "-R", keys["recipient"],
                    "--sign-key", keys["signer"], "-o", f"s3://{bucket}/", "--no-lock",
                    "--endpoint", endpoint, "--json", env=s3_server.env())
    assert result.code == 0, result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr
    local = tmp_path / "got.evidence"
    got = invoke("store", "get", result.json()["bundle"], "-o", local, "--endpoint",
                 s3_server.endpoint, env=s3_server.env())
    assert got.code == 0, got.stderr
    opened = invoke("extract", local, "-i", keys["identity"], "-o", tmp_path / "out")
    assert opened.code == 0, opened.stderr
    manifest = json.loads((tmp_path / "out" / "evidencekit" / "manifest.json").read_text())
    recorded = json.dumps(manifest["capture"]["command_line"])
    assert "--endpoint" in recorded and s3_server.endpoint in recorded
    assert SECRET not in recorded and "AKIAEXAMPLE" not in recorded
