"""A store that stalls, or a link that is slow: evidencekit gives up on the first in bounded time
with one clear error and no object, and keeps going on the second. Real SeaweedFS (the session's
``s3_server``) behind a TCP proxy on 127.0.0.1 (tests.support.stalling_proxy), with the timeout
made short by EVIDENCEKIT_S3_TIMEOUT as a user would."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from evidencekit.deliver import s3
from evidencekit.deliver.s3 import Lock, ObjectWriter, Patience, make_client, read_back
from evidencekit.errors import UsageError
from tests.support.cli import invoke
from tests.support.s3server import S3Server
from tests.support.stalling_proxy import tcp_proxy, unreachable

SHORT = {"EVIDENCEKIT_S3_TIMEOUT": "1", "AWS_MAX_ATTEMPTS": "2"}


def _port(server: S3Server) -> int:
    port = urlsplit(server.endpoint).port
    assert port is not None
    return port


def test_patience_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVIDENCEKIT_S3_TIMEOUT", raising=False)
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    assert Patience.from_environment() == Patience(30.0, 10.0, 3)
    monkeypatch.setenv("EVIDENCEKIT_S3_TIMEOUT", "120")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "5")
    assert Patience.from_environment() == Patience(120.0, 10.0, 5)
    monkeypatch.setenv("EVIDENCEKIT_S3_TIMEOUT", "0.5")
    assert Patience.from_environment().stall == 0.5
    for bad in ("0", "-3", "soon", "1e9"):
        monkeypatch.setenv("EVIDENCEKIT_S3_TIMEOUT", bad)
        with pytest.raises(UsageError, match="EVIDENCEKIT_S3_TIMEOUT"):
            Patience.from_environment()


def test_a_store_that_never_answers_is_given_up_in_bounded_time(
        bundle: Path, keys: dict[str, Any], tmp_path: Path, s3_server: S3Server) -> None:
    """It accepts the connection and reads the request, then nothing: botocore's defaults
    waited 60 s per try, six tries, for each request."""
    before = bundle.read_bytes()
    with tcp_proxy(None, stall_after=0) as silent:
        env = {**s3_server.env(), **SHORT}
        for command in (("store", "list", "s3://evidence/"),
                        ("store", "put", bundle, "s3://evidence/", "--retain-days", "1",
                         "--sign-key", keys["signer"]),
                        ("verify", "s3://evidence/CASE-1/x.evidence"),
                        ("store", "get", "s3://evidence/CASE-1/x.evidence", "-o",
                         tmp_path / "got.evidence")):
            started = time.monotonic()
            result = invoke(*command, "--endpoint", silent.endpoint, "--json", env=env)
            took = time.monotonic() - started
            assert result.code == 2, result.stdout + result.stderr
            message = result.json()["error"]["message"]
            assert "stopped answering (nothing for 1 s, 2 tries)" in message, message
            assert "\n" not in message and "Traceback" not in result.stderr
            assert took < 15, (command, took)  # 2 tries of 1 s, and botocore's backoff
        assert silent.stalls >= 8
    assert bundle.read_bytes() == before  # no custody event: nothing was stored
    assert not (tmp_path / "got.evidence").exists()


def test_a_store_that_cannot_be_reached_is_given_up_in_bounded_time() -> None:
    """Connections that are never made (a firewall dropping packets) waited 60 s per try."""
    with unreachable() as endpoint:
        started = time.monotonic()
        result = invoke("store", "list", "s3://evidence/", "--endpoint", endpoint, "--json",
                        env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
                             "AWS_DEFAULT_REGION": "us-east-1",
                             "AWS_EC2_METADATA_DISABLED": "true", **SHORT})
        took = time.monotonic() - started
    assert result.code == 2, result.stdout + result.stderr
    message = result.json()["error"]["message"]
    assert message == "cannot reach s3://evidence/: no connection within 1 s (2 tries)"
    assert took < 15


def test_a_capture_whose_upload_stalls_aborts_it_and_leaves_no_object(
        tmp_path: Path, tree: Path, keys: dict[str, Any], user: Path,
        s3_server: S3Server) -> None:
    """The proxy stops forwarding a connection once it has carried 1 MiB: the requests that
    start the upload pass, its parts stall (every try), the abort (small) passes."""
    bucket = s3_server.new_bucket()
    (tree / "big.bin").write_bytes(os.urandom(6 << 20))  # the held first part and one more
    before = sorted(p.name for p in tmp_path.iterdir())
    with tcp_proxy(_port(s3_server), stall_after=1 << 20) as proxy:
        started = time.monotonic()
        result = invoke("capture", tree, "--case", "CASE-T", "-R", keys["recipient"],
                        "--sign-key", keys["signer"], "-o", f"s3://{bucket}/cases/",
                        "--endpoint", proxy.endpoint, "--retain-days", "1", "--json",
                        env={**s3_server.env(), **SHORT})
        took = time.monotonic() - started
        assert proxy.stalls >= 2  # a part, and its second try
    assert result.code == 2, result.stdout + result.stderr
    message = result.json()["error"]["message"]
    assert f"s3://{bucket}/cases/CASE-T/" in message and message.endswith("; nothing was stored")
    assert "broke or stalled" in message or "stopped answering" in message, message
    assert took < 30
    client = s3_server.client()
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")  # aborted
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing on local disk


def test_a_slow_link_that_keeps_moving_completes_a_16_mib_part(
        s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """4 MB/s with a 2 s timeout: the part takes about 4 s to send. A part given to botocore as
    one bytearray went out in one sendall, which the timeout bounded as a whole: it failed at
    2 s however steadily the bytes went."""
    monkeypatch.setenv("EVIDENCEKIT_S3_TIMEOUT", "2")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setattr(s3, "PART_SIZE", 16 << 20)  # one part, sent for longer than 2 s
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    bucket = s3_server.new_bucket()
    data = os.urandom((16 << 20) + 100)
    with tcp_proxy(_port(s3_server), rate=4_000_000) as proxy:
        client = make_client(proxy.endpoint)
        writer = ObjectWriter(client, bucket, "slow.evidence",
                              Lock(datetime.now(timezone.utc) + timedelta(days=1)))
        started = time.monotonic()
        writer.write(data)
        uploaded = writer.complete()
        assert time.monotonic() - started > 3  # it really was slow
        assert proxy.stalls == 0
    assert read_back(s3_server.client(), uploaded, bucket) == hashlib.sha256(data).hexdigest()


def test_a_completion_whose_answer_was_lost_is_recognised_as_done(
        tree: Path, keys: dict[str, Any], user: Path, s3_server: S3Server) -> None:
    """The store completes the upload but its answer never arrives: botocore tries again,
    and the store says the key is taken (by this very upload). The capture must not report
    a failure (exit 2) while its bundle sits in the store, locked: the object's checksum
    (the SHA-256 of the parts' SHA-256s, computed by the store) shows it is these bytes."""
    bucket = s3_server.new_bucket()
    with tcp_proxy(_port(s3_server), lose_first_answer_to=rb"^POST [^ ]*\?uploadId=") as proxy:
        result = invoke("capture", tree, "--case", "CASE-L", "-R", keys["recipient"],
                        "--sign-key", keys["signer"], "-o", f"s3://{bucket}/",
                        "--endpoint", proxy.endpoint, "--retain-days", "1", "--json",
                        env={**s3_server.env(), **SHORT})
        assert proxy.answers_lost == 1
    assert result.code == 0, result.stdout + result.stderr
    key = result.json()["store"]["key"]
    client = s3_server.client()
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
    assert result.json()["store"]["version_id"] == client.head_object(
        Bucket=bucket, Key=key)["VersionId"]
    checked = invoke("verify", f"s3://{bucket}/{key}", "-i", keys["identity"], "--endpoint",
                     s3_server.endpoint, "--json", env=s3_server.env())
    assert checked.code == 0, checked.stdout
