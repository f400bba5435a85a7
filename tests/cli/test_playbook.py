"""examples/playbook.sh runs end to end in a temporary HOME with a fake home tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evidencekit.crypto import age
from tests.support.schemas import ROOT

PLAYBOOK = ROOT / "examples" / "playbook.sh"


@pytest.fixture
def host(tmp_path: Path) -> dict[str, str]:
    """A fake user with a home tree and a configuration naming the investigator's key."""
    home = tmp_path / "home"
    (home / "Downloads").mkdir(parents=True)
    (home / "Downloads" / "invoice.pdf").write_bytes(b"%PDF-1.4 fake invoice\n")
    (home / "Desktop").mkdir()
    (home / "Desktop" / "Screenshot 2026-01-17.png").write_bytes(b"\x89PNG fake\n")
    config = tmp_path / "config"
    (config / "evidencekit").mkdir(parents=True)
    investigator = age.X25519Identity.generate()
    (tmp_path / "investigator.txt").write_text(f"{investigator}\n")
    (config / "evidencekit" / "config.yaml").write_text(
        f"examiner: IR Team\norganisation: Example CERT\nrecipients:\n"
        f"  - {investigator.recipient()}\n")
    wrapper = tmp_path / "bin" / "evidencekit"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m evidencekit "$@"\n')
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCEKIT_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(config), CASE_ID="IR-TEST-1",
               PATH=f"{wrapper.parent}{os.pathsep}{env.get('PATH', '')}",
               PYTHONPATH=str(ROOT))
    return env


def playbook(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(PLAYBOOK), *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=120)


@pytest.mark.parametrize("reader", ["jq", "python"])
def test_playbook_captures_verifies_and_reports(tmp_path: Path, host, reader):
    if reader == "jq" and shutil.which("jq") is None:
        pytest.skip("jq is not installed (the python3 reader is tested)")
    if reader == "python":
        host["PLAYBOOK_JSON"] = "python"
    result = playbook(tmp_path, host, "user-files", "handover")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "handover"
    assert {p.name for p in out.iterdir()} >= {"IR-TEST-1.evidence", "capture.json",
                                               "verify.json", "receipt.txt", "capture.log"}
    captured = json.loads((out / "capture.json").read_text())
    assert captured["ok"] and captured["seal"]["counts"]["files"] == 2
    assert captured["case"]["examiner"] == "IR Team"
    verified = json.loads((out / "verify.json").read_text())
    assert verified["ok"] and verified["signer"]["trusted"] is True
    assert "playbook: verified: root hash " + captured["seal"]["manifest_root"] in result.stderr
    assert "2 file(s)" in result.stderr
    progress = [json.loads(line) for line in (out / "capture.log").read_text().splitlines()
                if line.startswith("{")]
    assert progress[0]["event"] == "start" and progress[-1]["event"] == "finish"


def test_playbook_stops_with_the_capture_exit_code(tmp_path: Path, host):
    host["PLAYBOOK_JSON"] = "python"
    result = playbook(tmp_path, host, "chat-apps", "nothing")
    assert result.returncode == 2
    assert "found nothing to capture" in result.stderr
    assert "FAILED: capture exited with 2: the profile chat-apps found nothing" in result.stderr
    # with evidencekit's hint, so the reader knows what to do; the exit code not in the text
    assert result.stderr.rstrip().endswith(
        "looked for) ('evidencekit profiles show chat-apps' lists what it looks for)"), \
        result.stderr
    again = playbook(tmp_path, host, "user-files", "nothing")
    assert again.returncode == 2
    assert again.stderr.splitlines()[-1] == \
        "playbook: FAILED: nothing already exists; choose a new folder"
