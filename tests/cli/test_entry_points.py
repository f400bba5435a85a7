"""python -m evidencekit, --version, shell completion, and the JSON Lines progress reporter."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from evidencekit import __version__
from evidencekit.cli.render import JsonLinesProgress, progress_for
from evidencekit.progress import NoProgress
from tests.support.schemas import assert_valid


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evidencekit", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_python_dash_m_and_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"evidencekit, version {__version__}"
    assert run("--help").stdout.startswith("Usage: evidencekit ")


def test_bash_completion_script_and_profile_names(tmp_path: Path):
    script = run(env={"_EVIDENCEKIT_COMPLETE": "bash_source"})
    assert script.returncode == 0
    assert "_evidencekit_completion" in script.stdout and "complete " in script.stdout
    env = {"_EVIDENCEKIT_COMPLETE": "bash_complete", "XDG_CONFIG_HOME": str(tmp_path)}
    commands = run(env={**env, "COMP_WORDS": "evidencekit ", "COMP_CWORD": "1"})
    assert {"plain,capture", "plain,profiles", "plain,verify"} <= set(commands.stdout.split())
    names = run(env={**env, "COMP_WORDS": "evidencekit capture --profile br", "COMP_CWORD": "3"})
    assert names.stdout.split() == ["plain,browser-history"]
    shown = run(env={**env, "COMP_WORDS": "evidencekit profiles show s", "COMP_CWORD": "3"})
    assert set(shown.stdout.split()) == {"plain,shell-history", "plain,system-logs"}


def test_json_progress_is_throttled_and_complete():
    now = [0.0]
    stream = io.StringIO()
    progress = JsonLinesProgress(stream, interval=0.1, clock=lambda: now[0])
    progress.start("Capturing", 1000, 10_000)
    for _ in range(1000):
        now[0] += 0.001  # 1000 advances in one second
        progress.advance(files=1, nbytes=10)
    progress.finish()
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert events[0] == {"event": "start", "label": "Capturing", "files": 0, "bytes": 0,
                         "total_files": 1000, "total_bytes": 10_000, "time": 0.0}
    assert events[-1]["event"] == "finish"
    assert (events[-1]["files"], events[-1]["bytes"]) == (1000, 10_000)
    assert events[-1]["time"] == 1.0
    advances = [e for e in events if e["event"] == "advance"]
    assert 8 <= len(advances) <= 10  # at most 10 a second
    assert [e["files"] for e in advances] == sorted(e["files"] for e in advances)
    for event in events:
        assert_valid(event, "progress")


def test_progress_modes():
    assert isinstance(progress_for(False, "json"), JsonLinesProgress)
    assert isinstance(progress_for(True, "json"), JsonLinesProgress)  # --json and events
    assert isinstance(progress_for(False, "none"), NoProgress)
    assert isinstance(progress_for(False, "auto"), NoProgress)  # stderr is not a terminal here


def test_python_dash_m_does_not_import_from_the_working_folder(tmp_path: Path):
    """`cd ~/Downloads && python3 -m evidencekit capture .`: the working folder is the evidence,
    and Python puts it first on the import path; a `click.py` or `yaml.py` there must not run."""
    ran = tmp_path / "it-ran"
    for module in ("click", "rich", "yaml", "magic"):
        (tmp_path / f"{module}.py").write_text(f"open({str(ran)!r}, 'a').write('{module}')\n")
    result = subprocess.run([sys.executable, "-m", "evidencekit", "--version"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert not ran.exists(), ran.read_text()
