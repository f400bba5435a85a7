"""What the store's commands say in text (found in a walkthrough), against a real S3 server
(SeaweedFS on 127.0.0.1, the session's ``s3_server``)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from tests.support.cli import invoke
from tests.support.s3server import S3Server


def test_the_command_a_capture_to_a_store_gives_to_check_it_works(
        tree: Path, keys: dict[str, Any], user: Path, s3_server: S3Server) -> None:
    """It said 'evidencekit verify -i KEYFILE s3://…' without --endpoint: typed as given, verify
    asked AWS for a bucket that is on another store."""
    bucket = s3_server.new_bucket()
    result = invoke("capture", tree, "--case", "CASE-9", "-R", keys["recipient"], "--sign-key",
                    keys["signer"], "-o", f"s3://{bucket}/cases/", "--endpoint",
                    s3_server.endpoint, "--retain-days", "1", env=s3_server.env())
    assert result.code == 0, result.stdout + result.stderr
    said = re.search(r"with: evidencekit (verify -i KEYFILE s3://\S+ --endpoint \S+) ",
                     " ".join(result.stdout.split()))
    assert said, result.stdout
    words = [str(keys["identity"]) if w == "KEYFILE" else w for w in shlex.split(said[1])]
    checked = invoke(*words, env=s3_server.env())
    assert checked.code == 0, checked.stdout + checked.stderr
    assert "Evidence 2 files" in checked.stdout


def test_a_bucket_without_versions_is_said_so_not_an_empty_version(
        bundle: Path, keys: dict[str, Any], s3_server: S3Server) -> None:
    """It said 'stored as s3://…, version , not locked'."""
    bucket = s3_server.new_bucket(lock=False)
    result = invoke("store", "put", bundle, f"s3://{bucket}/", "--no-lock", "--endpoint",
                    s3_server.endpoint, "--sign-key", keys["signer"], env=s3_server.env())
    assert result.code == 0, result.stdout + result.stderr
    text = " ".join(result.stdout.split())
    assert "version ," not in text and "no version (the bucket keeps none), not locked" in text


def test_one_file_is_one_file(tmp_path: Path, keys: dict[str, Any], user: Path) -> None:
    """verify said 'Evidence 1 files'."""
    source = tmp_path / "one.txt"
    source.write_text("one")
    out = tmp_path / "one.evidence"
    made = invoke("capture", source, "-R", keys["recipient"], "--sign-key", keys["signer"],
                  "-o", out)
    assert made.code == 0, made.stderr
    checked = invoke("verify", out)
    assert checked.code == 0, checked.stdout + checked.stderr
    assert "Evidence 1 file," in checked.stdout
