"""evidencekit store put and capture -o s3:// against moto's server on 127.0.0.1: strict about
AWS's headers (checksums, conditional writes), and a store that ignores the object lock asked
for with a multipart upload, which evidencekit must notice and make good (or refuse)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evidencekit.verify import verify
from tests.support.cli import invoke
from tests.support.s3server import moto_s3
from tests.support.schemas import assert_valid


@pytest.fixture(scope="module")
def moto() -> Iterator[dict[str, str]]:
    with moto_s3() as server:
        yield {"endpoint": server.endpoint, **server.env()}


def _client(moto: dict[str, str]) -> Any:
    import boto3

    return boto3.session.Session().client(
        "s3", endpoint_url=moto["endpoint"], aws_access_key_id="moto",
        aws_secret_access_key="moto", region_name="us-east-1")


def _env(moto: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in moto.items() if k != "endpoint"}


def _put_unlocked(client: Any, bucket: str, bundle: Path, keys: dict[str, Any],
                  moto: dict[str, str]) -> dict[str, Any]:
    """*bundle* put by `store put --no-lock` into a new unlocked *bucket*: its details."""
    client.create_bucket(Bucket=bucket)
    result = invoke("store", "put", bundle, f"s3://{bucket}/cases/", "--endpoint",
                    moto["endpoint"], "--no-lock", "--sign-key", keys["signer"], "--json",
                    env=_env(moto))
    assert result.code == 0, result.stdout + result.stderr
    details: dict[str, Any] = result.json()["details"]
    return details


def test_put_to_a_strict_store_that_ignores_the_upload_lock(bundle: Path, keys: dict[str, Any],
                                                            moto: dict[str, str]) -> None:
    client = _client(moto)
    client.create_bucket(Bucket="strict-locked", ObjectLockEnabledForBucket=True)
    result = invoke("store", "put", bundle, "s3://strict-locked/cases/", "--endpoint",
                    moto["endpoint"], "--retain-days", "3", "--legal-hold", "--sign-key",
                    keys["signer"], "--json", env=_env(moto))
    assert result.code == 0, result.stdout + result.stderr
    details = result.json()["details"]
    # moto drops the lock headers of CreateMultipartUpload; the lock was then set on the version
    head = client.head_object(Bucket="strict-locked", Key=details["key"])
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockLegalHoldStatus"] == "ON"
    assert details["retention_mode"] == "COMPLIANCE" and details["legal_hold"] == "on"
    stored = client.get_object(Bucket="strict-locked", Key=details["key"])["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == details["sha256"]
    assert verify(bundle).events[-1].details == details
    # a newer version put on top (the lock does not stop that) is never read as the bundle
    client.put_object(Bucket="strict-locked", Key=details["key"], Body=b"not the bundle")
    over = invoke("verify", f"s3://strict-locked/{details['key']}", "--endpoint",
                  moto["endpoint"], "--json", env=_env(moto))
    assert over.code == 1 and details["version_id"] in over.json()["error"]["message"]


def test_capture_to_a_strict_store(tree: Path, keys: dict[str, Any], user: Path,
                                   moto: dict[str, str]) -> None:
    client = _client(moto)
    client.create_bucket(Bucket="strict-capture", ObjectLockEnabledForBucket=True)
    (tree / "big.bin").write_bytes(os.urandom(6 << 20))  # past the held first part
    result = invoke("capture", tree, "--case", "CASE-M", "-R", keys["recipient"], "--sign-key",
                    keys["signer"], "-o", "s3://strict-capture/", "--endpoint", moto["endpoint"],
                    "--retain-days", "1", "--json", env=_env(moto))
    assert result.code == 0, result.stdout + result.stderr
    stored = result.json()["store"]
    assert stored["retention_mode"] == "COMPLIANCE"
    checked = invoke("verify", result.json()["bundle"], "-i", keys["identity"], "--endpoint",
                     moto["endpoint"], "--json", env=_env(moto))
    assert checked.code == 0, checked.stdout
    assert checked.json()["files_checked"] == 3


def test_put_without_lock_to_a_bucket_never_versioned(bundle: Path, keys: dict[str, Any],
                                                      moto: dict[str, str]) -> None:
    # moto (and LocalStack, built on it) names the one version of such a bucket "null", and
    # refuses a HEAD that names it (400): that version is the object itself, named by none
    client = _client(moto)
    details = _put_unlocked(client, "plain-unlocked", bundle, keys, moto)
    assert details["version_id"] == "" and details["object_lock"] == "not required (--no-lock)"
    stored = client.get_object(Bucket="plain-unlocked", Key=details["key"])["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == details["sha256"]
    again = invoke("verify", f"s3://plain-unlocked/{details['key']}", "--endpoint",
                   moto["endpoint"], "--json", env=_env(moto))
    assert again.code == 0, again.stdout + again.stderr


def _another_bundle(tree: Path, keys: dict[str, Any], case: str = "CASE-1") -> Path:
    """A second bundle of the same case and host: what a writer to an unlocked bucket puts in
    place of the first."""
    (tree / "notes.txt").write_text("what happened, told otherwise\n")
    out = tree.parent / f"other-{os.urandom(4).hex()}.evidence"
    result = invoke("capture", tree, "--case", case, "-R", keys["recipient"], "--sign-key",
                    keys["signer"], "-o", out, "--json")
    assert result.code == 0, result.stderr
    return out


def test_a_bundle_put_in_place_of_the_one_its_name_says_is_found_out(
        bundle: Path, tree: Path, keys: dict[str, Any], moto: dict[str, str]) -> None:
    """Another bundle (signed, intact) stored under the first one's key, with its SHA-256 in
    the metadata: verify s3:// said VERIFIED (exit 0) and store get 'same SHA-256 as recorded
    when it was uploaded'."""
    client = _client(moto)
    key = _put_unlocked(client, "swapped-unlocked", bundle, keys, moto)["key"]
    other = _another_bundle(tree, keys).read_bytes()
    client.put_object(Bucket="swapped-unlocked", Key=key, Body=other,
                      Metadata={"sha256": hashlib.sha256(other).hexdigest()})
    location = f"s3://swapped-unlocked/{key}"
    checked = invoke("verify", location, "--endpoint", moto["endpoint"], "--json",
                     env=_env(moto))
    assert checked.code == 1, checked.stdout
    assert_valid(checked.json(), "verify")
    found = [f for f in checked.json()["findings"] if f["check"] == "store-name"]
    payload = key.rsplit("/", 1)[1].removesuffix(".evidence")
    assert found and found[0]["where"] == location and payload in found[0]["problem"], found
    out = bundle.parent / "got.evidence"
    got = invoke("store", "get", location, "-o", out, "--endpoint", moto["endpoint"], "--json",
                 env=_env(moto))
    assert got.code == 1, got.stdout
    assert "not the bundle its name says" in got.json()["error"]["message"]
    assert not out.exists()


def test_a_captured_bundle_put_in_place_of_another_is_found_out_not_one_copied_elsewhere(
        tree: Path, keys: dict[str, Any], user: Path, moto: dict[str, str]) -> None:
    client = _client(moto)
    client.create_bucket(Bucket="captured-unlocked")
    stored = []
    for _ in range(2):
        result = invoke("capture", tree, "--case", "CASE-M", "-R", keys["recipient"],
                        "--sign-key", keys["signer"], "-o", "s3://captured-unlocked/in/",
                        "--endpoint", moto["endpoint"], "--no-lock", "--json", env=_env(moto))
        assert result.code == 0, result.stdout + result.stderr
        stored.append(result.json()["store"]["key"])
    first, second = stored
    source = {"Bucket": "captured-unlocked", "Key": second}
    copied = "archive/2027/" + first.removeprefix("in/")  # the same bundle under a new prefix
    client.copy_object(Bucket="captured-unlocked", Key=copied,
                       CopySource={"Bucket": "captured-unlocked", "Key": first})
    client.copy_object(Bucket="captured-unlocked", Key=first, CopySource=source)
    swapped = invoke("verify", f"s3://captured-unlocked/{first}", "--endpoint",
                     moto["endpoint"], "--json", env=_env(moto))
    assert swapped.code == 1, swapped.stdout
    problems = [f["problem"] for f in swapped.json()["findings"] if f["check"] == "store-name"]
    assert problems and second in problems[0], problems
    moved = invoke("verify", f"s3://captured-unlocked/{copied}", "--endpoint",
                   moto["endpoint"], "--json", env=_env(moto))
    assert moved.code == 0, moved.stdout


def test_a_bundle_altered_in_the_store_with_its_metadata_is_not_kept_by_store_get(
        bundle: Path, keys: dict[str, Any], moto: dict[str, str]) -> None:
    """One bit of the payload flipped, and the metadata's SHA-256 made to match: store get
    wrote it and said 'same SHA-256 as recorded when it was uploaded' (exit 0)."""
    client = _client(moto)
    key = _put_unlocked(client, "altered-unlocked", bundle, keys, moto)["key"]
    altered = bytearray(client.get_object(Bucket="altered-unlocked", Key=key)["Body"].read())
    altered[altered.index(b"age-encryption.org/v1") + 40] ^= 1  # in payload.age
    client.put_object(Bucket="altered-unlocked", Key=key, Body=bytes(altered),
                      Metadata={"sha256": hashlib.sha256(altered).hexdigest()})
    out = bundle.parent / "got.evidence"
    got = invoke("store", "get", f"s3://altered-unlocked/{key}", "-o", out, "--endpoint",
                 moto["endpoint"], "--json", env=_env(moto))
    assert got.code == 1, got.stdout
    assert "payload SHA-256 differs" in got.json()["error"]["message"], got.stdout
    assert not out.exists()


def test_a_bundle_whose_custody_log_cannot_be_written_is_not_stored(
        bundle: Path, keys: dict[str, Any], moto: dict[str, str]) -> None:
    """A read-only bundle was uploaded (and locked for the retention asked), then its custody
    log could not record it: refused now before anything is stored."""
    client = _client(moto)
    client.create_bucket(Bucket="read-only-bundle", ObjectLockEnabledForBucket=True)
    before = bundle.read_bytes()
    bundle.chmod(0o444)
    result = invoke("store", "put", bundle, "s3://read-only-bundle/cases/", "--endpoint",
                    moto["endpoint"], "--retain-days", "1", "--sign-key", keys["signer"],
                    "--json", env=_env(moto))
    assert result.code == 2, result.stdout + result.stderr
    assert "read-only; nothing was stored" in result.json()["error"]["message"]
    assert "Contents" not in client.list_objects_v2(Bucket="read-only-bundle")
    assert not client.list_multipart_uploads(Bucket="read-only-bundle").get("Uploads")
    assert bundle.read_bytes() == before
