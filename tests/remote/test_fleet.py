"""docs/playbooks.md's Ansible playbook, run as written: ``ansible-playbook`` (ansible-core from
PyPI) against two SSH "hosts" (two sshd on two loopback ports, tests/support/sshd.py), their host
keys pinned in a known_hosts file, each capturing with a profile and ``-o s3://…`` into one store
(SeaweedFS on 127.0.0.1); then ``store list --json`` and ``verify`` show that every bundle arrived
and verifies. The playbook is read from the page, so the page and the test cannot drift apart."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from tests.support import sshd as sshd_support
from tests.support.cli import run_cli
from tests.support.s3server import S3Server
from tests.support.schemas import assert_valid
from tests.support.tools import require_python_tool

PLAYBOOKS = Path(__file__).resolve().parents[2] / "docs" / "playbooks.md"

PROFILE = """\
name: fleet-logs
description: The test's logs on every host
case:
  description: fleet collection
targets:
  - name: logs
    linux: ['{root}/var-log']
"""


def playbook_from_the_page() -> str:
    """The YAML block of docs/playbooks.md that starts with ``# collect.yml``."""
    found = re.findall(r"```yaml\n(# collect\.yml:.*?)```", PLAYBOOKS.read_text(), re.DOTALL)
    assert len(found) == 1, "docs/playbooks.md must show the collect.yml playbook once"
    return str(found[0])


def ansible_playbook() -> str:
    return require_python_tool("ansible-playbook", "ansible-core")


def _host(server: sshd_support.Sshd, name: str, keys: dict[str, Any]) -> dict[str, Any]:
    """A host as an administrator would have prepared it (evidencekit, a profile, the
    investigator's public key, a signing key of its own), and its inventory entry."""
    root = server.root / "host"
    (root / "var-log").mkdir(parents=True)
    (root / "var-log" / "auth.log").write_text(f"{name}: Accepted publickey for admin\n")
    (root / "fleet-logs.yaml").write_text(PROFILE.replace("{root}", str(root)))
    (root / "investigator.pub").write_text(Path(keys["recipient"]).read_text())
    shutil.copy(keys["signer"], root / "host_key")
    (root / "bin").mkdir()
    # where evidencekit is on this "host": this checkout, run by a Python its user may run
    (root / "bin" / "evidencekit").write_text(
        f'#!/bin/sh\nexec {server.evidencekit_command()} "$@"\n')
    os.chmod(root / "bin" / "evidencekit", 0o755)
    server.owned(root)
    os.chmod(root / "host_key", 0o600)
    return {"ansible_host": "127.0.0.1", "ansible_port": server.port,
            "ansible_user": server.user, "ansible_ssh_private_key_file": str(server.client_key),
            "evidencekit": str(root / "bin" / "evidencekit"),
            "profile": str(root / "fleet-logs.yaml"),
            "investigator": str(root / "investigator.pub"), "sign_key": str(root / "host_key")}


def _run_playbook(work: Path, inventory: dict[str, Any], case: str,
                  store: str) -> subprocess.CompletedProcess[str]:
    (work / "collect.yml").write_text(playbook_from_the_page())
    (work / "inventory.yml").write_text(json.dumps(inventory))  # JSON is YAML
    (work / "ansible.cfg").write_text("")
    (work / "results").mkdir()
    environment = {
        "PATH": os.environ["PATH"], "HOME": str(work), "LC_ALL": "C.UTF-8",
        "ANSIBLE_CONFIG": str(work / "ansible.cfg"), "ANSIBLE_HOME": str(work / "ansible"),
        "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"), "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PIPELINING": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0",
        # no master connection left running after the play (ControlPersist's default)
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=no -o ControlPath=none",
    }
    return subprocess.run([ansible_playbook(), "-i", "inventory.yml", "collect.yml",
                           "-e", f"case={case}", "-e", f"store={store}"],
                          cwd=work, env=environment, capture_output=True, text=True,
                          timeout=300, check=False)


def _recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP's counts per host: ``web-17 : ok=2 changed=1 unreachable=0 failed=0 …``."""
    recap = output.split("PLAY RECAP", 1)[1]
    return {line.split()[0]: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
            for line in recap.splitlines() if " : " in line}


def test_the_playbook_captures_every_host_into_the_store_and_every_bundle_verifies(
        s3_server: S3Server, keys: dict[str, Any], tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()
    until = (datetime.now(timezone.utc) + timedelta(days=2)).strftime("%Y-%m-%d")
    with sshd_support.running() as web, sshd_support.running() as db:
        hosts = {"web-17": _host(web, "web-17", keys), "db-3": _host(db, "db-3", keys)}
        # an entry whose pinned key is not the key its server answers with: db's port, web's key
        hosts["impostor"] = {**hosts["db-3"]}
        (tmp_path / "known_hosts").write_text(
            f"[127.0.0.1]:{web.port} {web.host_key_line}\n"
            f"[127.0.0.1]:{db.port} {db.host_key_line}\n")
        (tmp_path / "impostor_known_hosts").write_text(
            f"[127.0.0.1]:{db.port} {web.host_key_line}\n")
        pinned = "-o StrictHostKeyChecking=yes -o UserKnownHostsFile="
        hosts["impostor"]["ansible_ssh_common_args"] = pinned + str(
            tmp_path / "impostor_known_hosts")
        inventory = {"incident": {"hosts": hosts, "vars": {
            "ansible_ssh_common_args": pinned + str(tmp_path / "known_hosts"),
            "ansible_become": False,  # the test hosts log in a user without sudo
            "ansible_python_interpreter": "/usr/bin/python3",
            "retain_until": until,
            "store_environment": {**s3_server.env(),
                                  "AWS_ENDPOINT_URL_S3": s3_server.endpoint}}}}
        played = _run_playbook(tmp_path, inventory, "IR-42", f"s3://{bucket}/IR-42/")
    output = played.stdout + played.stderr
    recap = _recap(played.stdout)
    for name in ("web-17", "db-3"):
        assert recap[name]["failed"] == 0 and recap[name]["unreachable"] == 0, output
        assert recap[name]["changed"] == 2, output  # the capture, and its answer kept
    assert recap["impostor"]["unreachable"] == 1, output
    assert "Host key verification failed" in output
    assert played.returncode == 4, output  # ansible-playbook: some host unreachable
    said = {name: json.loads((tmp_path / "results" / f"{name}.json").read_text())
            for name in ("web-17", "db-3")}
    assert not (tmp_path / "results" / "impostor.json").exists()

    listed = run_cli("store", "list", f"s3://{bucket}/IR-42/", "--endpoint",
                     s3_server.endpoint, "--json", env=s3_server.env())
    assert listed.code == 0, listed.stderr
    document = listed.json()
    assert_valid(document, "store-list")
    objects = document["objects"]
    assert sorted(o["key"] for o in objects) == sorted(s["store"]["key"] for s in said.values())
    assert all(o["retention_mode"] == "COMPLIANCE" and o["retain_until"].startswith(until)
               for o in objects)
    for stored in objects:
        checked = run_cli("verify", f"s3://{bucket}/{stored['key']}", "-i", keys["identity"],
                          "--endpoint", s3_server.endpoint, "--json", env=s3_server.env())
        assert checked.code == 0, checked.stdout + checked.stderr
        assert checked.json()["ok"] is True and checked.json()["files_checked"] == 1
