"""capture --live end to end through the real command: with a folder and a fake memory tool in
one bundle, verified (also by FORMAT.md §7.2's procedure), extracted, shown by inspect (counts
only) and by the report, and found by hand with tar, age and sha256sum; a profile turns --live
on; misuse is refused before anything runs."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from tests.support import by_hand as procedure
from tests.support.piped import by_hand, capture, evidencekit, manifest
from tests.support.processes import children

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the fake memory tool is a POSIX shell script")


def test_live_state_files_and_memory_in_one_bundle(tmp_path: Path, keys: dict[str, Path],
                                                   home: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"a file as well\n")
    image = b"EMiL" + (1).to_bytes(4, "little") + bytes(16) + b"known bytes " * 1000
    (tmp_path / "image").write_bytes(image)
    tool = tmp_path / "memtool"
    tool.write_text(f'#!/bin/sh\ncat "{tmp_path / "image"}" > "$1"\n')
    tool.chmod(0o755)
    with children() as running:
        sleeper, program = running.sleeper(tmp_path, "ek-e2e-sleeper")
        done = capture(tmp_path, keys, "--live", "--memory-tool", tool, folder)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["seal"]["complete"]

    checked = evidencekit("verify", tmp_path / "out.evidence", "-i", keys["identity"], "--json")
    assert checked.returncode == 0 and json.loads(checked.stdout)["ok"], checked.stdout
    shown = evidencekit("inspect", tmp_path / "out.evidence")
    assert shown.returncode == 0 and b"Live state" in shown.stdout
    assert b"memory images 1" in shown.stdout and b"processes " in shown.stdout

    made = evidencekit("report", tmp_path / "out.evidence", "-i", keys["identity"],
                       "-o", tmp_path / "report.html")
    assert made.returncode == 0, made.stderr
    page = (tmp_path / "report.html").read_text()
    assert "Live state" in page and "memory images 1" in page and "in data/live.*" in page

    digest = hashlib.sha256(image).hexdigest()
    assert by_hand(tmp_path / "out.evidence", keys["identity"], tmp_path / "hand",
                   "data/live.02-memory.image") == digest
    found = manifest(tmp_path / "hand")
    assert [s.get("kind") for s in found["sources"]] == [None, "live"]
    assert found["sources"][1]["given"] == "--live" and found["sources"][1]["bag_name"] == "live"
    # the live state was read first (order of volatility), the folder after it
    assert found["entries"][0]["source"] == 1
    assert found["entries"][-1]["bag_path"] == "data/notes/a.txt"
    listed = json.loads((tmp_path / "hand/bag/data/live.04-processes.json").read_bytes())
    [mine] = [p for p in listed["processes"] if p["pid"] == sleeper.pid]
    assert mine["cmdline"] == [str(program), "600"]
    evidencekit_pids = [p["pid"] for p in listed["processes"] if p["evidencekit"]]
    assert evidencekit_pids == [listed["own_pid"]] and listed["own_pid"] != os.getpid()

    # FORMAT.md §7.2's procedure, standard tools only: the live files are plain files of the bag
    toolbox = procedure.toolbox_in(tmp_path / "toolbox")
    checked = procedure.by_hand(toolbox, tmp_path / "out.evidence", "-i", keys["identity"])
    assert checked.code == 0, checked.verdict


def test_a_profile_with_live_collects_the_live_state(tmp_path: Path, keys: dict[str, Path],
                                                     home: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "auth.log").write_bytes(b"sshd: accepted\n")
    profile = tmp_path / "triage.yaml"
    profile.write_text(f"name: triage\ndescription: test triage\nlive: true\ntargets:\n"
                       f"  - name: logs\n    linux: ['{logs}']\n")
    done = capture(tmp_path, keys, "--profile", profile)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["profile"]["name"] == "triage"
    extracted = evidencekit("extract", tmp_path / "out.evidence", "-i", keys["identity"],
                            "-o", tmp_path / "out")
    assert extracted.returncode == 0, extracted.stderr
    assert (tmp_path / "out/data/live.04-processes.json").is_file()
    assert (tmp_path / "out/data/logs/auth.log").read_bytes() == b"sshd: accepted\n"


def test_the_built_in_ir_triage_profile_pairs_live_with_logs_and_histories() -> None:
    from evidencekit.sources.files.profiles import find_profile

    triage = find_profile("ir-triage")
    assert triage.live and triage.origin == "built-in"
    linux = [p for t in triage.targets for p in t.paths.get("linux", ())]
    assert "/var/log/auth.log*" in linux and "/home/*/.bash_history" in linux


def test_a_memory_tool_without_live_or_not_a_program_is_refused(
        tmp_path: Path, keys: dict[str, Path], home: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    alone = capture(tmp_path, keys, "--memory-tool", "/bin/true", folder)
    assert alone.returncode == 2 and b"--live" in alone.stderr
    missing = capture(tmp_path, keys, "--live", "--memory-tool", tmp_path / "nothing")
    assert missing.returncode == 2 and b"not an executable file" in missing.stderr
    assert not (tmp_path / "out.evidence").exists()
