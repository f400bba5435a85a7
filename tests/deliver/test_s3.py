"""deliver.s3: names, lock options, and the multipart writer against a real S3 server
(SeaweedFS on 127.0.0.1, the session's ``s3_server``)."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from evidencekit.capture import CaptureRequest, CaseInfo, capture
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.deliver import BundleFacts, checked_facts, s3
from evidencekit.deliver.s3 import (
    MIN_PART,
    PART_SIZE,
    Lock,
    ObjectExists,
    ObjectWriter,
    PayloadWatch,
    S3Capture,
    S3Store,
    S3Url,
    object_key,
    part_size,
    read_back,
)
from evidencekit.errors import BundleError, Interrupted, StoreError, UsageError
from evidencekit.format.documents import PAYLOAD
from evidencekit.format.reader import open_bundle
from evidencekit.progress import NoProgress
from evidencekit.verify import HashedRange, verify
from tests.support.s3server import S3Server
from tests.support.streams import OneStream, Pieces

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_object_key_from_case_host_and_payload() -> None:
    facts = BundleFacts("CASE 7/../x", "web-17.example", "ab" * 32)
    assert object_key("evidence/", facts) == f"evidence/CASE_7_.._x/web-17.example/{'ab' * 32}.evidence"
    assert object_key("", BundleFacts("..", "", "cd" * 32)) == f"_/_/{'cd' * 32}.evidence"


def test_an_endpoint_is_recorded_without_a_password() -> None:
    store = S3Store(S3Url("evidence", ""), Lock(None, False, False),
                    "https://user:secret@store.example:9000/", client=object())
    assert store.endpoint == "https://store.example:9000/"


def test_urls() -> None:
    assert S3Url.parse("s3://evidence/CASE-1").prefix == "CASE-1/"
    assert S3Url.parse("s3://evidence").prefix == ""
    with pytest.raises(UsageError):
        S3Url.parse("s3://Bad_Bucket/x")
    assert S3Url.parse("s3://evidence/a.b/..c/é/").prefix == "a.b/..c/é/"


@pytest.mark.parametrize("url", ["s3://evidence/../other/", "s3://evidence/a/../",
                                 "s3://evidence/a//b/", "s3://evidence//a", "s3://evidence/./",
                                 "s3://evidence/a/.", "s3://evidence//"])
def test_a_prefix_that_different_stores_read_differently_is_refused(url: str) -> None:
    """SeaweedFS stored s3://B/a//b/ as a/b/ while the custody event named a//b/, and answered
    '..' and '.' with a bare 400; AWS would take them literally."""
    with pytest.raises(UsageError, match="an empty, '\\.' or"):
        S3Url.parse(url)


def test_retain_days_past_the_year_9999_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="past the year 9999"):
        Lock.from_options(None, 99_999_999, False, False, NOW)
    with pytest.raises(UsageError, match="past the year 9999"):
        Lock.from_options(None, 10**12, False, False, NOW)


def test_lock_options() -> None:
    assert Lock.from_options(None, 10, True, False, NOW) == Lock(NOW + timedelta(days=10), True)
    assert Lock.from_options("2030-05-01", None, False, False, NOW).retain_until == datetime(
        2030, 5, 1, tzinfo=timezone.utc)
    assert Lock.from_options(None, None, False, True, NOW).upload_arguments() == {}
    for args in [("2030-05-01", 3, False, False), ("yesterday", None, False, False),
                 (None, 0, False, False), (None, None, False, False)]:
        with pytest.raises(UsageError):
            Lock.from_options(*args, NOW)


def test_parts_grow_so_10000_hold_820_gib() -> None:
    assert part_size(1) == part_size(500) == PART_SIZE == 8 << 20 >= MIN_PART
    assert part_size(501) == 2 * PART_SIZE
    assert sum(part_size(n) for n in range(1, 10_001)) == 105_000 * PART_SIZE  # 820 GiB


class _SlowStore:
    """Takes parts more slowly than they are written, and keeps none of them."""

    def create_multipart_upload(self, **_: Any) -> dict[str, Any]:
        return {"UploadId": "u"}

    def upload_part(self, **arguments: Any) -> dict[str, Any]:
        time.sleep(0.05)
        arguments["Body"].read()
        return {"ETag": f"e{arguments['PartNumber']}"}

    def complete_multipart_upload(self, **_: Any) -> dict[str, Any]:
        return {}


def test_at_most_three_parts_are_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two on their way and one filling: a buffer made for the next part while the writer
    waited for a free thread was a fourth (69 MiB of parts in a capture -o s3://)."""
    live = {"now": 0, "most": 0}

    class Counted(bytearray):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            if len(self) >= MIN_PART:
                live["now"] += 1
                live["most"] = max(live["most"], live["now"])

        def __del__(self) -> None:
            if len(self) >= MIN_PART:
                live["now"] -= 1

    monkeypatch.setattr(s3, "bytearray", Counted, raising=False)
    monkeypatch.setattr(s3, "PART_SIZE", MIN_PART)
    writer = ObjectWriter(_SlowStore(), "b", "k", _lock())
    block = bytes(1 << 20)
    for _ in range(10 * MIN_PART // len(block)):
        writer.write(block)
    uploaded = writer.complete()
    assert len(uploaded.parts) == 10
    assert live["most"] == 3


def _lock() -> Lock:
    return Lock(datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=1))


def _no_object(client: Any, bucket: str, key: str) -> None:
    with pytest.raises(ClientError) as caught:
        client.head_object(Bucket=bucket, Key=key)
    assert caught.value.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound")
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads") or []
    assert [u for u in uploads if u["Key"] == key] == []


def test_an_interrupted_upload_leaves_no_object(s3_server: S3Server) -> None:
    client = s3_server.client()
    bucket = s3_server.new_bucket()
    writer = ObjectWriter(client, bucket, "cut/short.evidence", _lock())
    writer.write(os.urandom(PART_SIZE + 1000))  # one part sent, the next begun
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads") or []
    assert [u["Key"] for u in uploads] == ["cut/short.evidence"]  # what _no_object looks for
    writer.abort()
    _no_object(client, bucket, "cut/short.evidence")


def test_a_failing_part_aborts_and_leaves_no_object(s3_server: S3Server) -> None:
    client = s3_server.client()
    bucket = s3_server.new_bucket()
    sent = {"parts": 0}
    real = client.upload_part

    def fails_second(**arguments: Any) -> Any:
        sent["parts"] += 1
        if arguments["PartNumber"] == 2:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "disk"}}, "UploadPart")
        return real(**arguments)

    client.upload_part = fails_second
    writer = ObjectWriter(client, bucket, "fails.evidence", _lock())
    with pytest.raises(StoreError):
        writer.write(os.urandom(2 * PART_SIZE + 10))
        writer.complete()
    writer.abort()
    _no_object(s3_server.client(), bucket, "fails.evidence")


def test_the_held_first_part_is_patched_and_sent_last(s3_server: S3Server) -> None:
    client = s3_server.client()
    bucket = s3_server.new_bucket()
    data = bytearray(os.urandom(PART_SIZE + MIN_PART // 2))
    writer = ObjectWriter(client, bucket, "held.evidence", _lock(), hold_first=True)
    writer.write(data)

    def patch(first: bytearray) -> None:
        first[10:14] = b"SIZE"

    uploaded = writer.complete(patch)
    data[10:14] = b"SIZE"
    stored = client.get_object(Bucket=bucket, Key="held.evidence")["Body"].read()
    assert stored == data
    assert read_back(client, uploaded, bucket) == hashlib.sha256(data).hexdigest()
    head = client.head_object(Bucket=bucket, Key="held.evidence")
    assert head["ObjectLockMode"] == "COMPLIANCE"


def test_parts_are_signed_by_their_checksum_not_hashed_twice(s3_server: S3Server) -> None:
    """Over plain http botocore would SHA-256 every part's body for the signature, on top of
    the checksum the store checks: the parts go as UNSIGNED-PAYLOAD, with the checksum header
    among the signed headers, and the store still refuses a body that does not match it."""
    client = s3_server.client()
    bucket = s3_server.new_bucket()
    seen: list[tuple[str, str, str]] = []

    def note(request: Any, **_: Any) -> None:
        if "uploadId=" in request.url and "partNumber=" in request.url:
            headers = {k.lower(): (v.decode() if isinstance(v, bytes) else str(v))
                       for k, v in request.headers.items()}
            seen.append((headers["x-amz-content-sha256"], headers["x-amz-checksum-sha256"],
                         headers["authorization"]))

    client.meta.events.register("before-send.s3", note)
    data = os.urandom(PART_SIZE + 1000)
    writer = ObjectWriter(client, bucket, "unsigned.evidence", _lock())
    writer.write(data)
    writer.complete()
    assert len(seen) == 2
    for content, _checksum, authorization in seen:
        assert content == "UNSIGNED-PAYLOAD"
        assert "x-amz-checksum-sha256" in authorization.split("SignedHeaders=")[1]
    assert seen[0][1] in {_b64(data[:PART_SIZE]), _b64(data[PART_SIZE:])}
    assert client.get_object(Bucket=bucket, Key="unsigned.evidence")["Body"].read() == data
    # the body is protected by the checksum: one that does not match is refused
    upload = client.create_multipart_upload(Bucket=bucket, Key="bad.evidence",
                                            ChecksumAlgorithm="SHA256")
    with pytest.raises(ClientError):
        client.upload_part(Bucket=bucket, Key="bad.evidence", UploadId=upload["UploadId"],
                           PartNumber=1, Body=b"x" * 100, ChecksumAlgorithm="SHA256",
                           ChecksumSHA256=_b64(b"y" * 100))


def _b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def test_completion_never_replaces_an_object(s3_server: S3Server) -> None:
    client = s3_server.client()
    bucket = s3_server.new_bucket()
    client.put_object(Bucket=bucket, Key="taken.evidence", Body=b"first")
    writer = ObjectWriter(client, bucket, "taken.evidence", _lock())
    writer.write(b"second")
    with pytest.raises(ObjectExists):
        writer.complete()
    assert client.get_object(Bucket=bucket, Key="taken.evidence")["Body"].read() == b"first"
    assert len(client.list_object_versions(Bucket=bucket)["Versions"]) == 1


class _CutShort(Pieces):
    """40 MiB of content (two parts sent), then Ctrl-C (as the CLI turns SIGINT and SIGTERM into)."""

    def __init__(self) -> None:
        super().__init__([os.urandom(1 << 20) for _ in range(40)], 80 << 20)

    def readinto(self, buffer: memoryview) -> int:
        count = super().readinto(buffer)
        if not count:
            raise KeyboardInterrupt
        return count


def test_an_interrupted_capture_to_the_store_leaves_no_object(tmp_path: Any,
                                                              s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    store = S3Store(S3Url(bucket, "cut/"), _lock(), s3_server.endpoint, s3_server.client())
    target = S3Capture(store, "CASE-1", "host", datetime.now(timezone.utc), "0123abcd")
    request = CaptureRequest([], tmp_path / "never.evidence", CaseInfo("CASE-1", "tester"),
                             [age.X25519Identity.generate().recipient()],
                             SigningKey.generate("t@test"), command_line=["test"],
                             more_sources=[OneStream("stdin", _CutShort())], stream_to=target)
    with pytest.raises(KeyboardInterrupt):
        capture(request)
    _no_object(s3_server.client(), bucket, target.key)
    assert list(tmp_path.iterdir()) == []


def test_a_capture_to_the_store_refuses_no_file_for_want_of_local_room(
        tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle streamed to a store takes no room on this disk: the local free space (here
    none at all, for any file) refuses no file, as it does when the bundle is a local file."""
    from evidencekit import capture as capture_module

    monkeypatch.setattr(capture_module._OutputRoom, "refusal",
                        lambda self, info: "not read: does not fit")
    evidence = tmp_path / "big.log"
    evidence.write_bytes(os.urandom(100_000))
    bucket = s3_server.new_bucket()
    store = S3Store(S3Url(bucket, "room/"), _lock(), s3_server.endpoint, s3_server.client())
    target = S3Capture(store, "CASE-1", "host", datetime.now(timezone.utc), "0123abcd")

    def request(**where: Any) -> CaptureRequest:
        return CaptureRequest([os.fsencode(evidence)], tmp_path / "CASE-1.evidence",
                              CaseInfo("CASE-1", "tester"),
                              [age.X25519Identity.generate().recipient()],
                              SigningKey.generate("t@test"), command_line=["test"], **where)

    assert capture(request(stream_to=target)).problems == []
    assert capture(request()).problems[0].problem == "not read: does not fit"  # a local file


class _Recorder:
    """A client that accepts every part (the part-count limit is the writer's own rule)."""

    def create_multipart_upload(self, **arguments: Any) -> dict[str, str]:
        return {"UploadId": "upload"}

    def upload_part(self, **arguments: Any) -> dict[str, str]:
        return {"ETag": f"part{arguments['PartNumber']}"}

    def abort_multipart_upload(self, **arguments: Any) -> None:
        pass


def test_more_parts_than_s3_allows_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from evidencekit.deliver import s3

    monkeypatch.setattr(s3, "MAX_PARTS", 2)
    monkeypatch.setattr(s3, "PART_SIZE", MIN_PART)
    writer = ObjectWriter(_Recorder(), "b", "k", Lock(None, False, False))
    writer.write(bytes(2 * MIN_PART))
    with pytest.raises(StoreError, match="more than an S3 object can hold"):
        writer.write(bytes(MIN_PART))
    writer.abort()


class _WritesToTheBundle(NoProgress):
    """Progress that, as the upload starts (the bundle hashed, not yet read), changes the
    bundle: another program writing to it while store put reads it."""

    def __init__(self, bundle: Path) -> None:
        self.bundle = bundle

    def start(self, label: str, total_files: int | None, total_bytes: int | None) -> None:
        with self.bundle.open("r+b") as f:
            f.seek(-10, os.SEEK_END)
            f.write(b"X" * 10)


def test_a_bundle_changed_during_the_upload_leaves_no_object(bundle: Path,
                                                              s3_server: S3Server) -> None:
    """What is stored is what was hashed (and verified): a change while uploading aborts the
    upload, instead of completing a locked object that every retry takes as the bundle."""
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    facts, _ = checked_facts(bundle)
    store = S3Store(S3Url(bucket, "p/"), _lock(), s3_server.endpoint, client)
    with pytest.raises(BundleError, match="changed while it was being verified or uploaded"):
        store.deliver(bundle, facts, _WritesToTheBundle(bundle))
    _no_object(client, bucket, object_key("p/", facts))


def test_a_bundle_changed_after_it_was_verified_is_not_stored(bundle: Path,
                                                               s3_server: S3Server) -> None:
    """Changed between the verification and the upload: what would be stored is not what was
    verified."""
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    facts, _ = checked_facts(bundle)
    with bundle.open("r+b") as f:
        f.seek(-10, os.SEEK_END)
        f.write(b"X" * 10)
    store = S3Store(S3Url(bucket, "v/"), _lock(), s3_server.endpoint, client)
    with pytest.raises(BundleError, match="changed while it was being verified or uploaded"):
        store.deliver(bundle, facts, NoProgress())
    _no_object(client, bucket, object_key("v/", facts))


def test_an_interrupt_after_a_capture_was_stored_names_the_object(
        s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the finished object's size and lock are checked: it exists (locked), so
    the interrupt says where, not 'nothing was written'."""
    bucket = s3_server.new_bucket()
    store = S3Store(S3Url(bucket, "late/"), _lock(), s3_server.endpoint, s3_server.client())
    target = S3Capture(store, "CASE-1", "host", datetime.now(timezone.utc), "0123abcd")

    def interrupt(*_: Any, **__: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "head", interrupt)
    with pytest.raises(Interrupted, match=f"stored at {target.location}"), target.open() as out:
        out.write(b"x" * 1000)
    monkeypatch.undo()
    assert store.head(target.key) is not None


def _watched(data: bytes, block: int) -> PayloadWatch:
    watch = PayloadWatch()
    watch.begin(len(data))
    for at in range(0, len(data), block):
        watch.feed(data[at : at + block])
    return watch


def test_store_get_hashes_the_payload_as_it_downloads(bundle: Path) -> None:
    """The payload's range is found from the headers before it, in blocks of any size, and
    its hash is the one verify computes reading the file."""
    data = bundle.read_bytes()
    report = verify(bundle)
    payload = open_bundle(bundle).by_name[PAYLOAD]
    for block in (1, 511, 1536, 4096, 1 << 20):
        hashed = _watched(data, block).hashed()
        assert hashed == HashedRange(payload.offset, payload.size, report.payload_sha256)


def test_verify_takes_the_payload_hash_given_for_the_payload_only(bundle: Path) -> None:
    payload = open_bundle(bundle).by_name[PAYLOAD]
    wrong = HashedRange(payload.offset, payload.size, "0" * 64)
    report = verify(bundle, payload_hashed=wrong)  # not read again: the hash given is judged
    assert [f.check for f in report.findings.errors] == ["payload-hash"]
    elsewhere = HashedRange(payload.offset + 512, payload.size, "0" * 64)
    assert verify(bundle, payload_hashed=elsewhere).ok  # another range: the payload is read


def test_no_payload_hash_from_a_stream_cut_short_or_not_a_bundle(bundle: Path) -> None:
    data = bundle.read_bytes()
    cut = PayloadWatch()
    cut.begin(len(data))
    cut.feed(data[: len(data) // 2])
    assert cut.hashed() is None
    assert _watched(b"x" * len(data), 4096).hashed() is None
    damaged = bytearray(data)
    damaged[10] ^= 1  # README.txt's header
    assert _watched(bytes(damaged), 4096).hashed() is None
