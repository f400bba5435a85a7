"""docs/playbooks.md's collection from many hosts, with plain ssh instead of Ansible: two SSH
"hosts" (two sshd on two loopback ports, tests/support/sshd.py), each running evidencekit with a
profile and ``-o s3://…`` into one store (SeaweedFS on 127.0.0.1); then ``store list --json``
and ``verify`` show that every bundle arrived and verifies."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from tests.support import sshd as sshd_support
from tests.support.cli import run_cli
from tests.support.s3server import S3Server
from tests.support.schemas import assert_valid

PROFILE = """\
name: fleet-logs
description: The test's logs on every host
case:
  description: fleet collection
targets:
  - name: logs
    linux: ['{root}/var-log']
"""


def _host(server: sshd_support.Sshd, name: str) -> Path:
    """A host's files and the profile, as an administrator would have deployed them."""
    root = server.root / "host"
    (root / "var-log").mkdir(parents=True)
    (root / "var-log" / "auth.log").write_text(f"{name}: Accepted publickey for admin\n")
    (root / "fleet-logs.yaml").write_text(PROFILE.replace("{root}", str(root)))
    server.owned(root)
    return root


def test_two_hosts_each_capture_into_the_store_and_every_bundle_verifies(
        s3_server: S3Server, keys: dict[str, Any], tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()
    recipient = keys["recipient"].read_text().split()[-1]
    with sshd_support.running() as web, sshd_support.running() as db:
        for name, server in (("web-17", web), ("db-3", db)):
            root = _host(server, name)
            command = server.evidencekit_command()
            environment = {**s3_server.env(), "XDG_CONFIG_HOME": str(root / "config")}
            credentials = " ".join(f"{k}={shlex.quote(v)}" for k, v in environment.items())
            capture = (f"env {credentials} {command} capture --profile "
                       f"{shlex.quote(str(root / 'fleet-logs.yaml'))} --case IR-42 -r {recipient} "
                       f"-o s3://{bucket}/IR-42/ --endpoint {s3_server.endpoint} "
                       "--retain-days 1 --json")
            done = server.ssh(capture)
            assert done.returncode == 0, done.stderr.decode(errors="replace")
    listed = run_cli("store", "list", f"s3://{bucket}/IR-42/", "--endpoint",
                     s3_server.endpoint, "--json", env=s3_server.env())
    assert listed.code == 0, listed.stderr
    document = listed.json()
    assert_valid(document, "store-list")
    objects = document["objects"]
    assert len(objects) == 2
    assert all(o["retention_mode"] == "COMPLIANCE" for o in objects)
    for stored in objects:
        checked = run_cli("verify", f"s3://{bucket}/{stored['key']}", "-i", keys["identity"],
                          "--endpoint", s3_server.endpoint, "--json", env=s3_server.env())
        assert checked.code in (0, 6), checked.stdout + checked.stderr
        assert checked.json()["ok"] is True and checked.json()["files_checked"] >= 1
