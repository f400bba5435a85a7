"""What a user types wrong for a store (found in a walkthrough): an endpoint without its
scheme, an s3:// location missing a slash. Refused before anything is read or sent: no server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Result, invoke

SECRET = "wJalrXUtnFEMI-walkthrough-secret"


def _put_here(bundle: Path, destination: str, keys: dict[str, Any], code: int) -> Result:
    """store put --json of *bundle* to *destination* (relative to the current folder), ended
    with exit *code*."""
    result = invoke("store", "put", bundle, destination, "--sign-key", keys["signer"], "--json")
    assert result.code == code, result.stdout + result.stderr
    return result


@pytest.mark.parametrize("endpoint", ["127.0.0.1:9000", "ftp://127.0.0.1:9000",
                                      "http://", "http://127.0.0.1:port",
                                      f"AKIDWALK:{SECRET}@127.0.0.1:9000"])
def test_an_endpoint_that_is_no_address_is_a_usage_error_not_an_internal_one(
        endpoint: str) -> None:
    """Without a scheme, boto3's ValueError reached the CLI: 'internal error:
    ValueError: Invalid endpoint: 127.0.0.1:9000', exit 5."""
    result = invoke("store", "list", "s3://evidence/", "--endpoint", endpoint, "--json")
    assert result.code == 2, result.stdout + result.stderr
    error = result.json()["error"]
    assert error["kind"] == "UsageError" and "is not the address of a store" in error["message"]
    assert "http://" in error["hint"]
    assert SECRET not in result.stdout + result.stderr


def test_an_endpoint_in_the_environment_that_is_no_address_is_a_usage_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    result = invoke("store", "list", "s3://evidence/", "--json",
                    env={"AWS_ENDPOINT_URL": f"AKIDWALK:{SECRET}@127.0.0.1:9000",
                         "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"})
    assert result.code == 2, result.stdout + result.stderr
    error = result.json()["error"]
    assert "address is not usable" in error["message"] and "http://" in error["hint"]
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("location", ["s3:/evidence/CASE-1/", "S3:evidence/CASE-1/"])
def test_store_put_to_a_mistyped_location_names_it(location: str, bundle: Path,
                                                   keys: dict[str, Any], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Taken for a local path: 'could not copy … to s3:/evidence/CASE-1: No such file or
    directory', or with --retain-days, '--retain-until, … are for an s3:// store'."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for options in ((), ("--retain-days", "5")):
        result = invoke("store", "put", bundle, location, "--sign-key", keys["signer"],
                        "--json", *options)
        assert result.code == 2, result.stdout + result.stderr
        error = result.json()["error"]
        assert error["message"] == f"DESTINATION {location!r} is not an S3 location: one " \
                                   "starts with s3://", error
        assert "s3://BUCKET/PREFIX/" in error["hint"]
    assert list(work.iterdir()) == []


def test_capture_to_a_mistyped_location_names_it(tmp_path: Path, keys: dict[str, Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    source = work / "a.txt"
    source.write_text("a")
    result = invoke("capture", source, "-R", keys["recipient"], "--sign-key", keys["signer"],
                    "-o", "s3:/evidence/CASE-1/", "--retain-days", "5", "--json")
    assert result.code == 2, result.stdout + result.stderr
    error = result.json()["error"]
    assert "'s3:/evidence/CASE-1' is not an S3 location" in error["message"], error
    assert sorted(p.name for p in work.iterdir()) == ["a.txt"]


def test_store_put_of_a_bundle_that_is_not_there_says_so(tmp_path: Path, keys: dict[str, Any],
                                                         user: Path) -> None:
    """'internal error: FileNotFoundError' (exit 5), for a bundle's name typed wrong."""
    for destination, options in (("s3://evidence/CASE-1/", ("--retain-days", "1")),
                                 (str(tmp_path / "copy.evidence"), ())):
        result = invoke("store", "put", tmp_path / "typo.evidence", destination, "--sign-key",
                        keys["signer"], "--json", *options)
        assert result.code == 2, result.stdout + result.stderr
        assert result.json()["error"]["message"] == f"bundle not found: {tmp_path}/typo.evidence"
    assert not (tmp_path / "copy.evidence").exists()


def test_store_put_from_a_store_says_to_get_it_first(keys: dict[str, Any], user: Path) -> None:
    result = invoke("store", "put", "s3://evidence/CASE-1/x.evidence", "s3://evidence/B/",
                    "--retain-days", "1", "--sign-key", keys["signer"], "--json")
    assert result.code == 2, result.stdout + result.stderr
    error = result.json()["error"]
    assert "store put sends a bundle on this machine" in error["message"]
    assert "store get s3://BUCKET/KEY -o FILE" in error["hint"]


def test_store_put_into_a_folder_that_is_not_there_copies_nothing(
        bundle: Path, keys: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    """'copies/' (a folder, by its slash) that did not exist: a file named 'copies' was made."""
    monkeypatch.chdir(tmp_path)
    result = _put_here(bundle, "copies/", keys, 2)
    assert result.json()["error"]["message"] == \
        "the folder copies/ does not exist; nothing was copied"
    assert not (tmp_path / "copies").exists()


def test_store_put_records_where_the_copy_is_whatever_the_folder_it_ran_in(
        bundle: Path, keys: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    """The event said 'a copy at copies/case.evidence': relative to a folder nobody knows."""
    (tmp_path / "copies").mkdir()
    monkeypatch.chdir(tmp_path)
    result = _put_here(bundle, "copies/", keys, 0)
    copy = tmp_path / "copies" / bundle.name
    assert result.json()["details"]["path"] == str(copy) and copy.is_file()


def test_store_put_to_a_local_file_again_finds_the_copy_recorded(
        bundle: Path, keys: dict[str, Any], tmp_path: Path) -> None:
    """As a store's retry does; it was refused ('exists; nothing was copied', exit 2), so a
    playbook that retried a put that had succeeded failed."""
    copy = tmp_path / "copy.evidence"
    first = invoke("store", "put", bundle, copy, "--sign-key", keys["signer"], "--json")
    assert first.code == 0, first.stdout + first.stderr
    again = invoke("store", "put", bundle, copy, "--sign-key", keys["signer"], "--json")
    assert again.code == 0, again.stdout + again.stderr
    document = again.json()
    assert document["already_there"] is True and document["custody_event"] is None
    assert document["details"] == first.json()["details"]
    # a file there that is not that copy is still refused
    os.chmod(copy, 0o600)
    copy.write_bytes(copy.read_bytes() + b"x")
    refused = invoke("store", "put", bundle, copy, "--sign-key", keys["signer"], "--json")
    message = refused.json()["error"]["message"]
    assert refused.code == 2 and "exists and is not a copy of this bundle" in message, message


@pytest.mark.parametrize("destination", ["itself", "its-folder", "a-hard-link"])
def test_store_put_to_the_bundle_itself_is_no_copy(
        destination: str, bundle: Path, keys: dict[str, Any], tmp_path: Path) -> None:
    """'store put B B', 'store put B ./' run in B's folder, a hard link of B: the file found
    there verified as this bundle and was taken for an earlier copy, and a 'transferred' event
    recorded 'a copy at' the bundle itself (exit 0; again at each run): a copy that does not
    exist, in the custody log. It is the bundle, not a copy: refused, nothing recorded."""
    before = bundle.read_bytes()
    target = {"itself": bundle, "its-folder": Path(f"{bundle.parent}/"),
              "a-hard-link": tmp_path / "linked" / bundle.name}[destination]
    if destination == "a-hard-link":
        target.parent.mkdir()
        os.link(bundle, target)
    result = invoke("store", "put", bundle, f"{target}/" if destination == "its-folder"
                    else target, "--sign-key", keys["signer"], "--json")
    assert result.code == 2, result.stdout + result.stderr
    assert "is the bundle itself, not a copy" in result.json()["error"]["message"]
    assert bundle.read_bytes() == before


@pytest.mark.parametrize("slash", ["", "/"])
def test_store_put_to_a_path_that_cannot_be_looked_at_is_said(
        slash: str, bundle: Path, keys: dict[str, Any]) -> None:
    """A name too long (or a folder not the user's to enter) was 'internal error: OSError'
    (exit 5)."""
    result = invoke("store", "put", bundle, "k" * 300 + slash, "--sign-key", keys["signer"],
                    "--json")
    assert result.code == 2, result.stdout + result.stderr
    assert result.json()["error"]["message"] == \
        f"cannot use {'k' * 300}: File name too long; nothing was copied"


def test_store_put_of_a_bundle_that_cannot_be_looked_at_is_said(
        tmp_path: Path, keys: dict[str, Any], user: Path) -> None:
    result = invoke("store", "put", "k" * 300, tmp_path / "copy.evidence", "--sign-key",
                    keys["signer"], "--json")
    assert result.code == 2, result.stdout + result.stderr
    assert result.json()["error"]["message"] == f"cannot read {'k' * 300}: File name too long"


def test_capture_to_a_path_that_cannot_be_looked_at_is_said(
        tmp_path: Path, keys: dict[str, Any], user: Path, tree: Path) -> None:
    result = invoke("capture", tree, "-R", keys["recipient"], "--sign-key", keys["signer"],
                    "-o", "k" * 300, "--json")
    assert result.code == 2, result.stdout + result.stderr
    assert result.json()["error"]["message"] == f"cannot use {'k' * 300}: File name too long"


def test_store_put_to_a_file_named_with_a_blank_copies_there(
        bundle: Path, keys: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    """Only "" is refused (an unset variable); ' ' is a file name like any other."""
    monkeypatch.chdir(tmp_path)
    _put_here(bundle, " ", keys, 0)
    assert (tmp_path / " ").is_file()


def test_store_put_again_where_the_recorded_copy_was_replaced_by_a_pipe_does_not_hang(
        bundle: Path, keys: dict[str, Any], tmp_path: Path) -> None:
    """The retry that finds the recorded copy opened whatever was there to hash it: a named
    pipe in its place (no writer) held store put forever. Not a file: refused, as any other."""
    import threading

    copy = tmp_path / "copy.evidence"
    first = invoke("store", "put", bundle, copy, "--sign-key", keys["signer"], "--json")
    assert first.code == 0, first.stdout + first.stderr
    copy.chmod(0o600)
    copy.unlink()
    os.mkfifo(copy)
    results: list[Any] = []
    again = threading.Thread(target=lambda: results.append(invoke(
        "store", "put", bundle, copy, "--sign-key", keys["signer"], "--json")))
    again.start()
    again.join(10)
    hung = again.is_alive()
    if hung:  # let it go: a writer that writes nothing
        os.close(os.open(copy, os.O_WRONLY | os.O_NONBLOCK))
        again.join(10)
    assert not hung
    [result] = results
    assert result.code == 2, result.stdout + result.stderr
    assert "exists and is not a copy of this bundle (it is not a file)" in \
        result.json()["error"]["message"]
