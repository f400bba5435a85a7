"""evidencekit store put|list|get against a real S3 server (SeaweedFS on 127.0.0.1, started once
per session by the ``s3_server`` fixture), and store put to a local file."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from evidencekit.verify import verify
from tests.support.cli import invoke
from tests.support.s3server import S3Server
from tests.support.schemas import assert_valid


def _put(bundle: Path, keys: dict[str, Any], server: S3Server, url: str, *options: object,
         secret: str | None = None) -> Any:
    return invoke("store", "put", bundle, url, "--endpoint", server.endpoint,
                  "--sign-key", keys["signer"], "--json", *options, env=server.env(secret))


def test_put_locks_the_bundle_and_records_it(bundle: Path, keys: dict[str, Any],
                                             s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    sent = hashlib.sha256(bundle.read_bytes()).hexdigest()
    size = str(bundle.stat().st_size)
    result = _put(bundle, keys, s3_server, f"s3://{bucket}/CASE-1/", "--retain-days", "2",
                  "--legal-hold")
    assert result.code == 0, result.stderr
    document = result.json()
    assert_valid(document, "store-put")
    details = document["details"]
    report = verify(bundle)
    assert report.findings.ok
    key = f"CASE-1/CASE-1/{report.events[0].host}/{report.payload_sha256}.evidence"
    assert details["key"] == key and document["location"] == f"s3://{bucket}/{key}"
    assert (details["sha256"], details["size"]) == (sent, size)
    assert details["retention_mode"] == "COMPLIANCE" and details["legal_hold"] == "on"
    until = datetime.fromisoformat(details["retain_until"].replace("Z", "+00:00"))
    assert timedelta(days=1, hours=23) < until - datetime.now(timezone.utc) <= timedelta(days=2)
    # the local bundle got the event, the store holds the bundle as it was before it
    event = report.events[-1]
    assert (event.sequence, event.action, event.details) == (2, "transferred", details)
    assert event.counterparty.startswith(f"S3 store s3://{bucket}/{key}")
    client = s3_server.client()
    head = client.head_object(Bucket=bucket, Key=key)
    assert head["VersionId"] == details["version_id"]
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockLegalHoldStatus"] == "ON"
    stored = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == sent

    # a retry finds it: no second object, no second event
    again = _put(bundle, keys, s3_server, f"s3://{bucket}/CASE-1/", "--retain-days", "2")
    assert again.code == 0, again.stderr
    assert again.json()["already_there"] is True
    assert again.json()["details"]["version_id"] == details["version_id"]
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
    assert len(client.list_object_versions(Bucket=bucket)["Versions"]) == 1


@pytest.fixture
def stored(bundle: Path, keys: dict[str, Any], s3_server: S3Server) -> tuple[str, str, str]:
    """(bucket, key, version id) of the bundle stored with 1 day of COMPLIANCE retention."""
    bucket = s3_server.new_bucket()
    result = _put(bundle, keys, s3_server, f"s3://{bucket}/", "--retain-days", "1")
    assert result.code == 0, result.stderr
    details = result.json()["details"]
    return bucket, details["key"], details["version_id"]


def _refused(call: Any, **arguments: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call(**arguments)
    return str(caught.value.response["Error"]["Code"])


def test_the_store_refuses_delete_overwrite_and_shorter_retention(
        stored: tuple[str, str, str], s3_server: S3Server) -> None:
    bucket, key, version = stored
    client = s3_server.client()
    assert _refused(client.delete_object, Bucket=bucket, Key=key, VersionId=version) in (
        "AccessDenied", "InvalidRequest")
    assert _refused(client.put_object, Bucket=bucket, Key=key, Body=b"forged",
                    IfNoneMatch="*") == "PreconditionFailed"
    sooner = datetime.now(timezone.utc) + timedelta(hours=1)
    assert _refused(client.put_object_retention, Bucket=bucket, Key=key, VersionId=version,
                    Retention={"Mode": "COMPLIANCE", "RetainUntilDate": sooner}) in (
        "AccessDenied", "InvalidRequest")
    head = client.head_object(Bucket=bucket, Key=key, VersionId=version)
    assert head["ObjectLockRetainUntilDate"] > sooner + timedelta(hours=20)


def test_list_and_get(stored: tuple[str, str, str], bundle: Path, tmp_path: Path,
                      s3_server: S3Server) -> None:
    bucket, key, version = stored
    listed = invoke("store", "list", f"s3://{bucket}/", "--endpoint", s3_server.endpoint,
                    "--json", env=s3_server.env())
    assert listed.code == 0, listed.stderr
    assert_valid(listed.json(), "store-list")
    [item] = listed.json()["objects"]
    assert (item["key"], item["version_id"], item["retention_mode"], item["versions"]) == (
        key, version, "COMPLIANCE", 1)
    report = verify(bundle)
    assert (item["case"], item["host"], item["written_by"], item["payload_sha256"]) == (
        "CASE-1", report.events[0].host, "store put", report.payload_sha256)
    out = tmp_path / "fetched.evidence"
    got = invoke("store", "get", f"s3://{bucket}/{key}", "-o", out, "--endpoint",
                 s3_server.endpoint, "--json", env=s3_server.env())
    assert got.code == 0, got.stderr
    assert_valid(got.json(), "store-get")
    assert got.json()["sha256_checked"] is True
    assert got.json()["sha256"] == item["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    fetched = verify(out)
    assert fetched.findings.ok and [e.action for e in fetched.events] == ["captured"]
    again = invoke("store", "get", f"s3://{bucket}/{key}", "-o", out, "--endpoint",
                   s3_server.endpoint, env=s3_server.env())
    assert again.code == 2 and "exists" in again.stderr


def test_wrong_credentials_are_refused_and_never_shown(bundle: Path, keys: dict[str, Any],
                                                       s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    before = bundle.read_bytes()
    wrong = "not-the-secret-0123456789abcdef"
    result = _put(bundle, keys, s3_server, f"s3://{bucket}/", "--retain-days", "1",
                  secret=wrong)
    assert result.code == 2
    error = result.json()["error"]
    assert "refused the credentials" in error["message"]
    assert wrong not in result.stdout + result.stderr
    assert s3_server.secret_key not in result.stdout + result.stderr
    assert bundle.read_bytes() == before  # no event recorded


def test_a_bucket_without_lock_is_refused_unless_no_lock(bundle: Path, keys: dict[str, Any],
                                                         s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket(lock=False)
    refused = _put(bundle, keys, s3_server, f"s3://{bucket}/", "--retain-days", "1")
    assert refused.code == 2
    assert "has no object lock" in refused.json()["error"]["message"]
    assert "Contents" not in s3_server.client().list_objects_v2(Bucket=bucket)
    taken = _put(bundle, keys, s3_server, f"s3://{bucket}/", "--no-lock")
    assert taken.code == 0, taken.stderr
    details = taken.json()["details"]
    assert details["object_lock"] == "not required (--no-lock)"
    assert details["retention_mode"] == "" and details["retain_until"] == ""
    assert verify(bundle).events[-1].details == details


def test_retention_must_be_asked_for(bundle: Path, keys: dict[str, Any]) -> None:
    for options, words in [((), "say how long"), (("--retain-until", "2001-01-01"), "passed"),
                           (("--no-lock", "--legal-hold"), "cannot be combined")]:
        result = invoke("store", "put", bundle, "s3://any-bucket/", "--sign-key",
                        keys["signer"], "--json", *options)
        assert result.code == 2 and words in result.json()["error"]["message"], options


def test_put_to_a_local_file(bundle: Path, keys: dict[str, Any], tmp_path: Path) -> None:
    copy = tmp_path / "copy.evidence"
    before = bundle.read_bytes()
    result = invoke("store", "put", bundle, copy, "--sign-key", keys["signer"], "--json")
    assert result.code == 0, result.stderr
    assert copy.read_bytes() == before
    event = verify(bundle).events[-1]
    assert event.action == "transferred" and event.details["path"] == str(copy)
    assert event.details["sha256"] == hashlib.sha256(before).hexdigest()
    # a retry finds the copy its log records (tests/cli/test_store_typed.py), another file not
    other = tmp_path / "other.evidence"
    other.write_bytes(b"not that copy")
    again = invoke("store", "put", bundle, other, "--sign-key", keys["signer"])
    assert again.code == 2 and "exists" in again.stderr


def test_a_copy_made_but_not_recorded_is_recorded_by_the_same_put_again(
        bundle: Path, keys: dict[str, Any], tmp_path: Path) -> None:
    """The copy was made, then the custody log could not record it (a full disk, a kill): the
    error said to run the same put again, which said 'exists; nothing was copied' (exit 2) and
    never recorded it."""
    copy = tmp_path / "copy.evidence"
    copy.write_bytes(bundle.read_bytes())  # what the interrupted put left
    result = invoke("store", "put", bundle, copy, "--sign-key", keys["signer"], "--json")
    assert result.code == 0, result.stderr
    assert result.json()["already_there"] is True and result.json()["custody_event"] == 2
    event = verify(bundle).events[-1]
    assert event.action == "transferred" and event.details["path"] == str(copy)
    assert event.details["sha256"] == hashlib.sha256(copy.read_bytes()).hexdigest()


def test_without_boto3_the_message_says_how_to_install(bundle: Path, keys: dict[str, Any],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    for name in ("boto3", "botocore"):  # botocore comes with boto3: both are missing then
        monkeypatch.setitem(sys.modules, name, None)
    result = invoke("store", "list", "s3://evidence/", "--json")
    assert result.code == 2
    assert "evidencekit[s3]" in result.json()["error"]["hint"]


def test_verify_reads_a_stored_bundle_in_place(stored: tuple[str, str, str], bundle: Path,
                                               keys: dict[str, Any], tmp_path: Path,
                                               s3_server: S3Server) -> None:
    bucket, key, _ = stored
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke("verify", f"s3://{bucket}/{key}", "-i", keys["identity"], "--endpoint",
                    s3_server.endpoint, "--json", env=s3_server.env())
    assert result.code == 0, result.stdout + result.stderr
    document = result.json()
    assert_valid(document, "verify")
    assert document["bundle"] == f"s3://{bucket}/{key}"
    assert document["decrypted"] is True and document["files_checked"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no local copy
    refused = invoke("verify", f"s3://{bucket}/{key}", "--record", "--endpoint",
                     s3_server.endpoint, "--json", env=s3_server.env())
    assert refused.code == 2 and "cannot change" in refused.json()["error"]["message"]


def test_verify_finds_a_changed_byte_in_a_stored_bundle(bundle: Path, keys: dict[str, Any],
                                                        s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket(lock=False)
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 1  # inside the payload
    s3_server.client().put_object(Bucket=bucket, Key="changed.evidence", Body=bytes(data))
    result = invoke("verify", f"s3://{bucket}/changed.evidence", "--endpoint",
                    s3_server.endpoint, "--json", env=s3_server.env())
    assert result.code == 1, result.stdout + result.stderr
    assert any(f["check"] == "payload-hash" or "payload" in f["problem"]
               for f in result.json()["findings"]), result.stdout


def test_capture_straight_to_the_store(tmp_path: Path, tree: Path, keys: dict[str, Any],
                                       user: Path, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    (tree / "big.bin").write_bytes(os.urandom(17 << 20))  # past the first (held) part
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke("capture", tree, "--case", "CASE-9", "-R", keys["recipient"], "--sign-key",
                    keys["signer"], "-o", f"s3://{bucket}/cases/", "--endpoint",
                    s3_server.endpoint, "--retain-days", "1", "--legal-hold", "--json",
                    env=s3_server.env())
    assert result.code == 0, result.stdout + result.stderr
    document = result.json()
    assert_valid(document, "capture")
    stored = document["store"]
    assert document["bundle"] == f"s3://{bucket}/{stored['key']}"
    assert stored["key"].startswith("cases/CASE-9/")
    assert (stored["retention_mode"], stored["legal_hold"]) == ("COMPLIANCE", "on")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing on local disk
    checked = invoke("verify", document["bundle"], "-i", keys["identity"], "--endpoint",
                     s3_server.endpoint, "--json", env=s3_server.env())
    assert checked.code == 0, checked.stdout
    assert checked.json()["files_checked"] == 3
    [event] = checked.json()["custody"]
    assert event["details"]["key"] == stored["key"]
    assert event["details"]["object_lock"] == "required"
    head = s3_server.client().head_object(Bucket=bucket, Key=stored["key"])
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ContentLength"] == int(
        stored["size"])
    # capture -o s3:// records no SHA-256 in the object's metadata: store get says so, without
    # sending the user to a 'verify' it has just made itself
    got = invoke("store", "get", document["bundle"], "-o", tmp_path / "got.evidence",
                 "--endpoint", s3_server.endpoint, env=s3_server.env())
    assert got.code == 0, got.stdout + got.stderr
    assert "warning" not in got.stderr and "evidencekit verify" not in got.stdout + got.stderr
    assert "no SHA-256 recorded at upload" in got.stdout


def test_capture_to_a_bucket_without_lock_is_refused_before_reading(
        tree: Path, keys: dict[str, Any], user: Path, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket(lock=False)
    result = invoke("capture", tree, "--case", "CASE-9", "-R", keys["recipient"], "--sign-key",
                    keys["signer"], "-o", f"s3://{bucket}/", "--endpoint", s3_server.endpoint,
                    "--retain-days", "1", "--json", env=s3_server.env())
    assert result.code == 2 and "has no object lock" in result.json()["error"]["message"]
    assert "Contents" not in s3_server.client().list_objects_v2(Bucket=bucket)
    refused = invoke("capture", tree, "-R", keys["recipient"], "--sign-key", keys["signer"],
                     "-o", f"s3://{bucket}/", "--no-lock", "--tsa", "http://127.0.0.1:9/",
                     "--json", env=s3_server.env())
    assert refused.code == 2 and "--tsa" in refused.json()["error"]["message"]


def test_a_custody_log_that_cannot_record_the_delivery_says_the_copy_exists(
        bundle: Path, keys: dict[str, Any], s3_server: S3Server,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Uploaded and locked, but the event could not be added (a full disk): the error says the
    copy exists and how to record it; the retry records it without storing anything twice."""
    import evidencekit.deliver as deliver  # cmd_store imports it when it stores
    from evidencekit.errors import OutputError

    def disk_full(*_: Any, **__: Any) -> None:
        raise OutputError(f"not enough free space next to {bundle} to add the custody event",
                          hint="free some space on that disk")

    bucket = s3_server.new_bucket()
    before = bundle.read_bytes()
    with monkeypatch.context() as patch:
        patch.setattr(deliver, "record_delivery", disk_full)
        failed = _put(bundle, keys, s3_server, f"s3://{bucket}/", "--retain-days", "1")
    assert failed.code == 2
    error = failed.json()["error"]
    [item] = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert f"is now at s3://{bucket}/{item['Key']}" in error["message"]
    assert "not enough free space" in error["message"]
    assert "run the same 'evidencekit store put' again" in error["hint"]
    assert bundle.read_bytes() == before
    again = _put(bundle, keys, s3_server, f"s3://{bucket}/", "--retain-days", "1")
    assert again.code == 0 and again.json()["already_there"] is True
    assert again.json()["custody_event"] == 2
    assert [e.action for e in verify(bundle).events] == ["captured", "transferred"]


def test_a_key_written_over_is_never_read_as_the_bundle(
        stored: tuple[str, str, str], bundle: Path, keys: dict[str, Any], tmp_path: Path,
        s3_server: S3Server) -> None:
    """Object lock keeps the stored version, but anyone allowed to PutObject can put a newer
    version on top, which a plain GET reads: verify, get and a retried put refuse (exit 1)."""
    bucket, key, version = stored
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key=key, Body=bundle.read_bytes())  # valid, but not it
    location = f"s3://{bucket}/{key}"
    before = bundle.read_bytes()
    out = tmp_path / "fetched.evidence"
    for command in (("verify", location), ("store", "get", location, "-o", out)):
        result = invoke(*command, "--endpoint", s3_server.endpoint, "--json",
                        env=s3_server.env())
        assert result.code == 1, result.stdout
        message = result.json()["error"]["message"]
        assert "was written over: it has 2 versions" in message and version in message
    assert not out.exists()
    again = _put(bundle, keys, s3_server, f"s3://{bucket}/", "--retain-days", "1")
    assert again.code == 1 and "written over" in again.json()["error"]["message"]
    assert bundle.read_bytes() == before  # nothing recorded about the newer version
    listed = invoke("store", "list", f"s3://{bucket}/", "--endpoint", s3_server.endpoint,
                    "--json", env=s3_server.env())
    assert_valid(listed.json(), "store-list")
    assert [o["versions"] for o in listed.json()["objects"]] == [2]
    said = invoke("store", "list", f"s3://{bucket}/", "--endpoint", s3_server.endpoint,
                  env=s3_server.env())
    assert "WRITTEN OVER (2 versions" in said.stdout
    client.delete_object(Bucket=bucket, Key=key)  # a delete marker: allowed under the lock
    hidden = invoke("verify", location, "--endpoint", s3_server.endpoint, "--json",
                    env=s3_server.env())
    assert hidden.code == 1 and "and 1 delete marker" in hidden.json()["error"]["message"]


@pytest.mark.parametrize("where", ["read_back", "record"])
def test_an_interrupt_once_the_object_exists_says_where_it_is(
        bundle: Path, keys: dict[str, Any], s3_server: S3Server,
        monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Ctrl-C after the upload was completed (while it is read back, or recorded): the locked
    object exists, so the message names it instead of 'nothing was written'."""
    import evidencekit.deliver as deliver  # cmd_store imports it when it stores
    import evidencekit.deliver.s3 as s3

    def interrupt(*_: Any, **__: Any) -> None:
        raise KeyboardInterrupt

    bucket = s3_server.new_bucket()
    before = bundle.read_bytes()
    with monkeypatch.context() as patch:
        patch.setattr(*((s3, "read_back") if where == "read_back"
                        else (deliver, "record_delivery")), interrupt)
        cut = _put(bundle, keys, s3_server, f"s3://{bucket}/", "--retain-days", "1")
    assert cut.code == 130
    [item] = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    error = cut.json()["error"]
    assert f"stored at s3://{bucket}/{item['Key']}" in error["message"]
    assert "run the same 'evidencekit store put' again" in error["hint"]
    assert bundle.read_bytes() == before
    again = _put(bundle, keys, s3_server, f"s3://{bucket}/", "--retain-days", "1")
    assert again.code == 0 and again.json()["custody_event"] == 2


def test_an_endpoint_from_the_environment_is_recorded(bundle: Path, keys: dict[str, Any],
                                                      s3_server: S3Server) -> None:
    """AWS_ENDPOINT_URL instead of --endpoint: the event names that store, not AWS ('')."""
    bucket = s3_server.new_bucket()
    result = invoke("store", "put", bundle, f"s3://{bucket}/", "--retain-days", "1",
                    "--sign-key", keys["signer"], "--json",
                    env={**s3_server.env(), "AWS_ENDPOINT_URL": s3_server.endpoint})
    assert result.code == 0, result.stdout + result.stderr
    assert result.json()["details"]["endpoint"] == s3_server.endpoint
    assert verify(bundle).events[-1].details["endpoint"] == s3_server.endpoint


def _key_of(bundle: Path) -> str:
    """The key `store put BUNDLE s3://BUCKET/` takes."""
    from evidencekit.deliver import checked_facts
    from evidencekit.deliver.s3 import object_key

    return object_key("", checked_facts(bundle)[0])


@pytest.mark.parametrize("what", ["not a bundle", "another bundle", "a changed copy"])
def test_put_refuses_a_key_that_holds_something_else(
        what: str, bundle: Path, keys: dict[str, Any], tree: Path, tmp_path: Path,
        s3_server: S3Server) -> None:
    """An object at the bundle's key is taken as an earlier delivery only if it is this
    bundle: the metadata's SHA-256 (sha256) is whatever whoever put it there wrote."""
    bucket = s3_server.new_bucket()
    key = _key_of(bundle)
    if what == "not a bundle":
        body = b"not evidence"
    elif what == "a changed copy":  # its seal and custody log are this bundle's
        changed = bytearray(bundle.read_bytes())
        changed[len(changed) // 2] ^= 1  # inside the payload
        body = bytes(changed)
    else:
        other = tmp_path / "other.evidence"
        made = invoke("capture", tree, "--case", "CASE-1", "-R", keys["recipient"],
                      "--sign-key", keys["signer"], "-o", other)
        assert made.code == 0, made.stderr
        body = other.read_bytes()
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key=key, Body=body, Metadata={
        "sha256": hashlib.sha256(bundle.read_bytes()).hexdigest()})
    before = bundle.read_bytes()
    result = _put(bundle, keys, s3_server, f"s3://{bucket}/", "--retain-days", "1")
    assert result.code == 1, result.stdout + result.stderr
    message = result.json()["error"]["message"]
    assert f"s3://{bucket}/{key} exists and is not this bundle: " in message
    assert {"not a bundle": "it is not a bundle (", "another bundle": "another seal",
            "a changed copy": "it is not an intact bundle ("}[what] in message
    assert message.endswith("nothing was stored or recorded")
    assert bundle.read_bytes() == before
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert len(client.list_object_versions(Bucket=bucket)["Versions"]) == 1


def test_an_upload_whose_recording_was_lost_is_found_by_reading_it(
        bundle: Path, keys: dict[str, Any], tmp_path: Path, s3_server: S3Server) -> None:
    """The object holds this bundle as it was before a later custody event (the upload
    completed, its recording was lost, then the bundle was copied elsewhere): taken as the
    delivery. The reverse, a stored copy with an event this bundle lacks, is refused."""
    bucket = s3_server.new_bucket()
    key = _key_of(bundle)
    as_captured = bundle.read_bytes()
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key=key, Body=as_captured)
    copied = invoke("store", "put", bundle, tmp_path / "copy.evidence", "--sign-key",
                    keys["signer"])
    assert copied.code == 0, copied.stderr
    found = _put(bundle, keys, s3_server, f"s3://{bucket}/", "--retain-days", "1")
    assert found.code == 0, found.stdout + found.stderr
    assert found.json()["already_there"] is True and found.json()["custody_event"] == 3
    assert len(client.list_object_versions(Bucket=bucket)["Versions"]) == 1

    older = tmp_path / "older.evidence"
    older.write_bytes(as_captured)
    ahead = s3_server.new_bucket()
    client.put_object(Bucket=ahead, Key=key, Body=bundle.read_bytes())  # 3 events
    refused = _put(older, keys, s3_server, f"s3://{ahead}/", "--retain-days", "1")
    assert refused.code == 1, refused.stdout + refused.stderr
    assert "its custody log is not this bundle's" in refused.json()["error"]["message"]
    assert older.read_bytes() == as_captured


def test_a_retried_capture_is_a_second_bundle_that_store_list_names_by_case_and_host(
        tree: Path, keys: dict[str, Any], user: Path, s3_server: S3Server) -> None:
    """A capture's key cannot carry its payload's hash (docs/decisions/s3-store.md), and a
    retried capture is another bundle anyway (new encryption key, new times): store list
    --json gives each object's case, host and writer, so a playbook finds a host that
    delivered twice."""
    bucket = s3_server.new_bucket()
    keys_stored = []
    for _ in range(2):
        result = invoke("capture", tree, "--case", "CASE 9/é", "-R", keys["recipient"],
                        "--sign-key", keys["signer"], "-o", f"s3://{bucket}/cases/",
                        "--endpoint", s3_server.endpoint, "--retain-days", "1", "--json",
                        env=s3_server.env())
        assert result.code == 0, result.stdout + result.stderr
        keys_stored.append(result.json()["store"]["key"])
    listed = invoke("store", "list", f"s3://{bucket}/", "--endpoint", s3_server.endpoint,
                    "--json", env=s3_server.env())
    assert listed.code == 0, listed.stderr
    assert_valid(listed.json(), "store-list")
    objects = listed.json()["objects"]
    assert sorted(o["key"] for o in objects) == sorted(keys_stored)
    assert len({o["key"] for o in objects}) == 2
    assert {(o["case"], o["host"], o["written_by"], o["payload_sha256"]) for o in objects} == {
        ("CASE 9/é", objects[0]["host"], "capture", "")}
    assert objects[0]["host"]


def test_an_object_found_at_the_key_is_recorded_with_the_sha256_of_its_bytes(
        bundle: Path, keys: dict[str, Any], s3_server: S3Server) -> None:
    """This bundle put at its key by someone else (or by an upload whose recording was lost),
    with metadata whose sha256 is not its bytes': the signed transferred event records the
    SHA-256 of what was read, never the metadata's word."""
    bucket = s3_server.new_bucket()
    key = _key_of(bundle)
    body = bundle.read_bytes()
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"sha256": "0" * 64})
    found = _put(bundle, keys, s3_server, f"s3://{bucket}/", "--retain-days", "1")
    assert found.code == 0, found.stdout + found.stderr
    assert found.json()["already_there"] is True
    details = found.json()["details"]
    assert details["sha256"] == hashlib.sha256(body).hexdigest()
    assert verify(bundle).events[-1].details == details


def test_verify_streams_a_stored_version_4_bundle(keys: dict[str, Any], tmp_path: Path,
                                                  s3_server: S3Server) -> None:
    """A disk image's bundle (format version 4, zstd under age) read from the store in place:
    the decompressor sits on the streamed payload as on a local file's."""
    assets = Path(__file__).parents[1] / "assets"
    bundle = tmp_path / "v4.evidence"
    bundle.write_bytes((assets / "format-v4.evidence").read_bytes())
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("evidencekit format v4 test vector\n")
    bucket = s3_server.new_bucket()
    put = _put(bundle, keys, s3_server, f"s3://{bucket}/V4/", "--retain-days", "1")
    assert put.code == 0, put.stderr
    location = put.json()["location"]
    result = invoke("verify", location, "--passphrase-file", passphrase, "--endpoint",
                    s3_server.endpoint, "--json", env=s3_server.env())
    assert result.code == 0, result.stdout + result.stderr
    document = result.json()
    assert document["decrypted"] is True and document["files_checked"] == 4


def test_a_device_captured_to_the_store_reads_past_a_bad_area_with_room_for_the_spool_alone(
        tmp_path: Path, keys: dict[str, Any], user: Path, s3_server: S3Server,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """capture --device -o s3://: the rest of the image waits in $TMPDIR while a bad area is
    read past; the bundle goes to the store. A $TMPDIR with room for the spool, not for the
    image twice (16 MiB + 16 MiB + the margin), was refused: bad areas read where found."""
    import tempfile

    import evidencekit.sources.rescue as rescue
    from tests.support.badfs import Faults, bad_disk
    from tests.support.mounts import tmpfs

    monkeypatch.setattr(rescue, "MARGIN", 4 << 20)
    monkeypatch.setattr(rescue, "LOOK_EVERY", 1 << 20)
    content = bytes(range(256)) * (16 << 12)  # 16 MiB
    bucket = s3_server.new_bucket()
    with tmpfs(tmp_path, size_mib=24) as small, \
            bad_disk(tmp_path, content, Faults(bad=[(512, 1024)])) as device:
        monkeypatch.setattr(tempfile, "tempdir", str(small))
        result = invoke("capture", "--device", device, "--no-write-block", "--case", "DEV-2",
                        "-R", keys["recipient"], "--sign-key", keys["signer"], "-o",
                        f"s3://{bucket}/", "--endpoint", s3_server.endpoint, "--retain-days",
                        "1", "--json", env=s3_server.env())
        assert result.code == 3, result.stdout + result.stderr  # one bad sector
        assert list(small.iterdir()) == []
    out = tmp_path / "got.evidence"
    got = invoke("store", "get", result.json()["bundle"], "-o", out, "--endpoint",
                 s3_server.endpoint, "--json", env=s3_server.env())
    assert got.code == 0, got.stdout + got.stderr
    extracted = invoke("extract", out, "-i", keys["identity"], "-o", tmp_path / "x")
    assert extracted.code in (0, 3), extracted.stdout + extracted.stderr
    [found] = (tmp_path / "x").rglob("*.device.json")
    skip = json.loads(found.read_text())["read"]["skip_ahead"]
    assert skip["done"] is True, skip
