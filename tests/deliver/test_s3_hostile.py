"""A store that lies (tests/support/lying_store.py, a proxy in front of moto's server on
127.0.0.1), through the real commands: store list, verify s3://, store get say plainly what the
store did, never blame the bundle for it, and never take more than the object holds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import invoke
from tests.support.keys import KeyFiles, make_keys
from tests.support.lying_store import GHOST_KEY, LyingStore, lying_store
from tests.support.s3server import S3Server, moto_s3
from tests.support.schemas import assert_valid


@dataclass
class Stored:
    store: S3Server
    proxy: LyingStore
    key: str  # the bundle's, stored by 'store put'
    size: int
    keys: KeyFiles


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    folder = tmp_path_factory.mktemp("lying-store")
    keys = make_keys(folder)
    tree = folder / "evidence"
    tree.mkdir()
    (tree / "notes.txt").write_text("what happened\n")
    bundle = folder / "case.evidence"
    assert invoke("capture", tree, "--case", "CASE-1", "-R", keys["recipient"], "--sign-key",
                  keys["signer"], "-o", bundle, "--json").code == 0
    with moto_s3() as store:
        store.client().create_bucket(Bucket="hostile", ObjectLockEnabledForBucket=True)
        put = invoke("store", "put", bundle, "s3://hostile/cases/", "--endpoint",
                     store.endpoint, "--retain-days", "1", "--sign-key", keys["signer"],
                     "--json", env=store.env())
        assert put.code == 0, put.stdout + put.stderr
        with lying_store(store.endpoint) as proxy:
            yield Stored(store, proxy, put.json()["details"]["key"],
                         int(put.json()["details"]["size"]), keys)


@pytest.fixture
def proxy(stored: Stored) -> Iterator[LyingStore]:
    stored.proxy.sent = 0
    yield stored.proxy
    stored.proxy.mode = ""


def test_a_key_listed_but_not_there_is_said_and_the_rest_listed(stored: Stored,
                                                                 proxy: LyingStore) -> None:
    """Before: the whole listing failed, exit 2, 's3://hostile/cases/: there is no such
    object' (the prefix named as the missing object)."""
    proxy.mode = "ghost-key"
    listed = invoke("store", "list", "s3://hostile/cases/", "--endpoint", proxy.endpoint,
                    "--json", env=stored.store.env())
    assert listed.code == 0, listed.stdout + listed.stderr
    assert_valid(listed.json(), "store-list")
    objects = {o["key"]: o for o in listed.json()["objects"]}
    assert "not found when asked for" in objects[GHOST_KEY]["problem"]
    assert objects[GHOST_KEY]["retention_mode"] == ""
    assert objects[stored.key]["problem"] == ""
    assert objects[stored.key]["retention_mode"] == "COMPLIANCE"
    shown = invoke("store", "list", "s3://hostile/cases/", "--endpoint", proxy.endpoint,
                   env=stored.store.env())
    assert "not found when asked for" in shown.stdout


def test_a_size_the_listing_lies_about_is_said(stored: Stored, proxy: LyingStore) -> None:
    """Before: '1 bytes', as the listing said, for the object a download gets whole."""
    proxy.mode = "lying-size"
    listed = invoke("store", "list", "s3://hostile/cases/", "--endpoint", proxy.endpoint,
                    "--json", env=stored.store.env())
    found = {o["key"]: o for o in listed.json()["objects"]}[stored.key]
    assert found["size"] == stored.size
    assert found["problem"] == f"the listing says 1 byte, the object holds {stored.size:,} bytes"


def test_a_lock_whose_date_has_passed_is_not_called_locked(stored: Stored,
                                                          proxy: LyingStore) -> None:
    """Before: 'locked until 2020-01-01T00:00:00Z' (the store still reports the mode)."""
    proxy.mode = "expired-lock"
    shown = invoke("store", "list", "s3://hostile/cases/", "--endpoint", proxy.endpoint,
                   env=stored.store.env())
    assert "lock expired on 2020-01-01T00:00:00Z: it can be deleted" in shown.stdout
    assert "locked until" not in shown.stdout


def test_a_store_that_ignores_byte_ranges_is_not_taken_for_a_damaged_bundle(
        stored: Stored, proxy: LyingStore) -> None:
    """Before: 'non-zero padding after member README.txt', exit 1 (verification failed) for a
    bundle that is whole."""
    proxy.mode = "ignore-range"
    checked = invoke("verify", f"s3://hostile/{stored.key}", "--endpoint", proxy.endpoint,
                     "-i", stored.keys["identity"], "--json", env=stored.store.env())
    assert checked.code == 2, checked.stdout + checked.stderr
    message = checked.json()["error"]["message"]
    assert "does not serve byte ranges" in message and "nothing was found wrong" in message
    proxy.mode = ""
    assert invoke("verify", f"s3://hostile/{stored.key}", "--endpoint", proxy.endpoint, "-i",
                  stored.keys["identity"], env=stored.store.env()).code == 0


def test_a_download_that_does_not_end_is_stopped_at_the_objects_size(
        stored: Stored, proxy: LyingStore, tmp_path: Path) -> None:
    """Before: written to disk as long as the store sent (428 MB for an object of 3 MB until a
    file size limit stopped it; without one, until the disk was full)."""
    proxy.mode = "endless"
    got = invoke("store", "get", f"s3://hostile/{stored.key}", "--endpoint", proxy.endpoint,
                 "-o", tmp_path / "copy.evidence", "--json", env=stored.store.env())
    assert got.code == 2, got.stdout + got.stderr
    assert "sent more than the" in got.json()["error"]["message"]
    assert not (tmp_path / "copy.evidence").exists()
    assert proxy.sent < 32 << 20
