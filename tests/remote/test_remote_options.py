"""capture --remote's options, refused before anything is asked of a host (no server needed:
the port given is never connected to)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evidencekit.cli.keyring import default_signing_key_path
from tests.support.cli import invoke

REMOTE = ("capture", "--remote", "admin@127.0.0.1:9", "--host-key", "SHA256:" + "A" * 43,
          "-r", "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq", "/var/log")


@pytest.mark.parametrize(("extra", "said"), [
    (("--passphrase-file", "/dev/null"), "encrypted to public keys, not a passphrase"),
    (("--stdin", "x.txt"), "--stdin cannot be used with --remote"),
    (("--narrative", "they called"), "--incident cannot be used with --remote"),
    (("--tsa", "http://127.0.0.1:9/"), "--tsa cannot be used with --remote"),
    (("--imap", "imaps://jane@127.0.0.1:9"), "--imap cannot be used with --remote"),
])
def test_what_only_a_local_capture_can_do_is_refused(extra: tuple[str, ...], said: str,
                                                     user: object) -> None:
    result = invoke(*REMOTE, *extra, "--json")
    assert result.code == 2, result.stdout + result.stderr
    assert said in result.json()["error"]["message"]


@pytest.mark.parametrize(("args", "said"), [
    (("capture", "--host-key", "SHA256:" + "A" * 43, "/etc"), "--host-key is for a remote"),
    (("capture", "--sftp", "/etc"), "--sftp is for a remote"),
    (("capture", "--remote", "web-17", "/etc"), "expected USER@HOST"),
    (("capture", "--remote", "a@b", "--host-key", "MD5:00:11", "/etc"), "not a SHA-256"),
    (("capture", "--stall-timeout", "60", "/etc"), "--stall-timeout is for a remote"),
    (("capture", "--max-size", "1GB", "/etc"), "--max-size is for a remote"),
    (("capture", "--remote-timeout", "600", "/etc"), "--remote-timeout is for a remote"),
    (("capture", "--remote-command", "sudo evidencekit", "/etc"),
     "--remote-command is for a remote"),
    (("capture", "--remote-command", "evidencekit", "/etc"),
     "--remote-command is for a remote"),  # given, though its default
    (("capture", "--ssh-config", "/dev/null", "--known-hosts", "/dev/null", "/etc"),
     "--known-hosts is for a remote"),  # the first of them in --help's order
    ((*REMOTE, "--max-size", "lots"), "--max-size 'lots' is not a size"),
    ((*REMOTE, "--max-size", "0"), "--max-size must be more than 0"),
    (("capture", "--jump", "ops@bastion", "/etc"), "--jump is for a remote"),
    ((*REMOTE, "--jump", "-oProxyCommand=x@bastion"), "expected USER@BASTION"),
    ((*REMOTE, "--jump", "bastion"), "expected USER@BASTION"),
    ((*REMOTE, "--max-size", "1GB", "--sftp"), "not files read with --sftp"),
])
def test_remote_options_are_checked_first(args: tuple[str, ...], said: str,
                                          user: object) -> None:
    result = invoke(*args, "--json")
    assert result.code == 2, result.stdout + result.stderr
    assert said in result.json()["error"]["message"]


def test_a_host_not_in_known_hosts_is_refused_not_learned(user: object, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("[192.0.2.1]:22 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOfake\n")
    result = invoke("capture", "--remote", "admin@127.0.0.1:9", "--known-hosts", known,
                    "-r", REMOTE[6], "/var/log", "--json")
    assert result.code == 1, result.stdout + result.stderr
    assert "[127.0.0.1]:9 is not in known_hosts" in result.json()["error"]["message"]
    # nothing made for a capture that did not happen: not the user's own signing key either
    assert not default_signing_key_path().exists()
    assert "signing key" not in result.stderr
    assert known.read_text().count("\n") == 1  # nothing was added to it


def test_a_stall_timeout_too_short_to_mean_anything_is_refused(user: object) -> None:
    result = invoke(*REMOTE, "--stall-timeout", "1")
    assert result.code == 2, result.stdout + result.stderr
    assert "1 is not in the range 5<=x<=86400" in result.stderr


def test_a_store_as_output_says_how_to_get_there(user: object) -> None:
    """Its hint said 'a remote capture collects paths (and --live) on the remote host; capture
    the rest separately', which says nothing of how to store a remote capture."""
    result = invoke(*REMOTE, "-o", "s3://evidence/CASE-1/", "--retain-days", "1", "--json")
    assert result.code == 2, result.stdout + result.stderr
    error = result.json()["error"]
    assert error["message"] == "-o s3://… cannot be used with --remote"
    assert "-o FILE" in error["hint"] and "store put FILE s3://" in error["hint"], error


def test_nothing_to_capture_there_is_refused_before_connecting(user: object,
                                                                tmp_path: Path) -> None:
    """Over SFTP (evidencekit not installed there) it made a bundle holding nothing, exit 0."""
    result = invoke(*REMOTE[:-1], "-o", tmp_path / "x.evidence", "--json")
    assert result.code == 2, result.stdout + result.stderr
    assert "nothing to capture on admin@127.0.0.1:9" in result.json()["error"]["message"]
    assert not (tmp_path / "x.evidence").exists()


@pytest.mark.parametrize("option", ["--ssh-identity", "--known-hosts", "--ssh-config"])
def test_a_file_for_ssh_that_is_not_there_is_named(option: str, user: object,
                                                   tmp_path: Path) -> None:
    """ssh went on without it: 'Permission denied (publickey)', 'not in known_hosts'."""
    missing = tmp_path / "no-such-file"
    result = invoke(*REMOTE, option, missing, "--json")
    assert result.code == 2, result.stdout + result.stderr
    assert result.json()["error"]["message"] == f"{option} {missing}: no such file"


def test_ssh_config_dev_null_is_taken(user: object, tmp_path: Path) -> None:
    """--ssh-config /dev/null (ssh -F /dev/null: none of the user's ssh configuration) was
    refused as 'not a file' by the check that names a file that is not there; ssh reads it."""
    result = invoke(*REMOTE, "--ssh-config", "/dev/null", "-o", tmp_path / "x.evidence",
                    "--json")
    assert "not a file" not in result.stdout + result.stderr
    assert result.json()["error"]["message"] == "cannot reach an SSH server at 127.0.0.1 port 9", \
        result.stdout
    assert invoke(*REMOTE, "--ssh-config", tmp_path, "--json").code == 2  # a folder is not


@pytest.mark.parametrize("option", ["--ssh-identity", "--known-hosts", "--ssh-config"])
def test_a_file_for_ssh_that_cannot_be_looked_at_is_named(option: str, user: object) -> None:
    """A name too long (or, for another user, a folder not theirs to enter: EACCES) ended the
    check that the file is there in 'internal error: OSError' (exit 5)."""
    result = invoke(*REMOTE, option, "k" * 300, "--json")
    assert result.code == 2, result.stdout + result.stderr
    assert result.json()["error"]["message"] == f"{option} {'k' * 300}: File name too long"


def test_no_recipient_names_the_options_a_remote_capture_takes(user: object) -> None:
    """A remote capture takes public keys only: the hint must not send the user to
    --passphrase, which the next run would refuse."""
    without_keys = tuple(a for a in REMOTE if a != "-r" and not a.startswith("age1"))
    result = invoke(*without_keys, "--json")
    assert result.code == 2, result.stdout + result.stderr
    error = result.json()["error"]
    assert "public key" in error["message"]
    assert "--recipient-file" in error["hint"] and "passphrase" not in error["hint"]
