"""A fleet collected into one S3 store with plain ssh (issue 26, docs/playbooks.md "Many hosts,
one store"): each "host" (an sshd on 127.0.0.1, logging in a user that is not root) runs
evidencekit capture -o s3://…; then store list --json shows every bundle arrived, locked, and
verify s3://… checks each where it lies. An orchestrator (Ansible) runs the same command."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import invoke
from tests.support import sshd as sshd_support
from tests.support.s3server import S3Server


@pytest.fixture(scope="module")
def hosts() -> Iterator[list[sshd_support.Sshd]]:
    with sshd_support.running() as first, sshd_support.running() as second:
        yield [first, second]


def _collect(host: sshd_support.Sshd, s3_server: S3Server, bucket: str, keys: dict[str, Any],
             number: int) -> dict[str, Any]:
    """What the playbook's task runs on one host: capture its logs straight into the store."""
    folder = host.root / f"logs-{number}"
    folder.mkdir()
    (folder / "auth.log").write_text(f"host {number}: Accepted publickey\n" * 50)
    (folder / "recipient.txt").write_text(Path(keys["recipient"]).read_text())
    (folder / "signer").write_bytes(Path(keys["signer"]).read_bytes())
    host.owned(folder)
    os.chmod(folder / "signer", 0o600)
    command = shlex.join([
        "env", *(f"{name}={value}" for name, value in s3_server.env().items()),
        f"XDG_CONFIG_HOME={folder / 'config'}",
        *shlex.split(host.evidencekit_command())[1:],
        "capture", str(folder / "auth.log"), "--case", "IR-FLEET", "-R",
        str(folder / "recipient.txt"), "--sign-key", str(folder / "signer"), "-o",
        f"s3://{bucket}/fleet/", "--endpoint", s3_server.endpoint, "--retain-days", "1",
        "--json"])
    done = host.ssh(command)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    return dict(json.loads(done.stdout))


def test_every_host_lands_in_one_store_and_verifies(hosts: list[sshd_support.Sshd],
                                                    s3_server: S3Server,
                                                    keys: dict[str, Any]) -> None:
    bucket = s3_server.new_bucket()
    captured = [_collect(host, s3_server, bucket, keys, n) for n, host in enumerate(hosts)]
    listed = invoke("store", "list", f"s3://{bucket}/fleet/", "--endpoint", s3_server.endpoint,
                    "--json", env=s3_server.env())
    assert listed.code == 0, listed.stderr
    objects = listed.json()["objects"]
    assert sorted(o["key"] for o in objects) == sorted(c["store"]["key"] for c in captured)
    assert all(o["retention_mode"] == "COMPLIANCE" for o in objects)
    for item in objects:
        checked = invoke("verify", f"s3://{bucket}/{item['key']}", "-i", keys["identity"],
                         "--endpoint", s3_server.endpoint, "--json", env=s3_server.env())
        assert checked.code == 0, checked.stdout
        assert checked.json()["files_checked"] == 1
