"""capture --live through the library: the running system sealed, verified and extracted, with
child processes the test knows (command lines, a deleted executable, a listening socket on
127.0.0.1) and fake memory tools (one that works, one that fails, one that hangs)."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from evidencekit.capture import CaptureRequest, CaptureResult, CaseInfo, capture
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.extract import extract
from evidencekit.sources.live import LiveSource
from evidencekit.verify import verify
from tests.support.processes import children
from tests.support.schemas import assert_valid

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the /proc details and the deleted executable are Linux's")

LIME_HEADER = b"EMiL" + (1).to_bytes(4, "little") + (0x1000).to_bytes(8, "little") + \
    (0x1FFFF).to_bytes(8, "little") + bytes(8)
KNOWN = bytes(range(256)) * 400


def sealed(tmp_path: Path, source: LiveSource) -> tuple[CaptureResult, Path, dict[str, Any]]:
    identity = age.X25519Identity.generate()
    output = tmp_path / "live.evidence"
    result = capture(CaptureRequest([], output, CaseInfo("LIVE-1", "Jane"),
                                    [identity.recipient()], SigningKey.generate(), ["test"],
                                    more_sources=[source]))
    report = verify(output, [identity])
    assert report.ok, report.findings.items
    extract(output, tmp_path / "out", [identity])
    assert report.manifest is not None
    entries = {e["bag_path"]: e for e in report.manifest.entries()}
    return result, tmp_path / "out" / "data", entries


def document(folder: Path, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((folder / f"live.{name}").read_bytes())
    assert_valid(found, "live")
    return found


def tool(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "memtool"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return script


def test_the_running_system_is_in_the_bundle(tmp_path: Path) -> None:
    with children() as running:
        known, known_program = running.sleeper(tmp_path, "ek-known", "7")
        ghost, ghost_program = running.sleeper(tmp_path, "ek-ghost")
        ghost_bytes = ghost_program.read_bytes()
        os.unlink(ghost_program)  # still running, from a file that is gone
        listener, port = running.listener()
        result, folder, entries = sealed(tmp_path, LiveSource())

    assert result.seal.complete
    processes = {p["pid"]: p for p in document(folder, "04-processes.json")["processes"]}
    me = pwd.getpwuid(os.getuid()).pw_name

    found = processes[known.pid]
    assert found["cmdline"] == [str(known_program), "600", "7"]
    assert found["exe"] == str(known_program) and found["exe_deleted"] is False
    assert found["exe_sha256"] == hashlib.sha256(known_program.read_bytes()).hexdigest()
    assert found["ppid"] == os.getpid() and found["user"] == me
    assert found["cwd"] == os.getcwd() and found["memory_maps"]
    assert any("PYTEST_CURRENT_TEST=" in e for e in found["environment"])
    assert processes[os.getpid()]["evidencekit"] is True and found["evidencekit"] is False
    assert found["started_by_evidencekit"] is True  # the test is evidencekit's process here

    gone = processes[ghost.pid]
    assert gone["exe_deleted"] is True and gone["exe"] == str(ghost_program)
    assert gone["exe_sha256"] == hashlib.sha256(ghost_bytes).hexdigest()
    assert gone["exe_copy"] == f"live.04-executable.{ghost.pid}-ek-ghost"
    copy = folder / gone["exe_copy"]
    assert copy.read_bytes() == ghost_bytes  # byte for byte, from /proc/PID/exe
    assert entries[f"data/{gone['exe_copy']}"]["sha256"] == gone["exe_sha256"]
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == []  # no folder of its own

    network = document(folder, "03-network.json")
    [socket] = [c for c in network["connections"] if c["local"] == f"127.0.0.1:{port}"]
    assert socket["status"] == "LISTEN" and socket["protocol"] == "tcp"
    assert socket["pid"] == listener.pid and socket["process"] == processes[listener.pid]["name"]
    assert network["interfaces"] and network["routes_ipv4"] is not None
    assert "ipv6_neighbours" in network["not_collected"]  # said, not silently absent

    clock = document(folder, "01-clock.json")
    assert clock["uptime_seconds"] > 0 and clock["clock_source"]
    system = document(folder, "05-system.json")
    assert any(m["mount_point"] == "/" for m in system["mounts"])
    second = document(folder, "06-second-snapshot.json")
    assert {p["pid"] for p in second["processes"]} >= {known.pid, ghost.pid, listener.pid}
    collection = document(folder, "07-collection.json")
    assert collection["own_pid"] == os.getpid() and collection["disturbs"]
    assert collection["counts"]["processes"] == len(processes)
    # collected in the order of volatility: each document begins after the one before
    times = [document(folder, name)["collected_started"] for name in
             ("01-clock.json", "03-network.json", "04-processes.json", "05-system.json",
              "06-second-snapshot.json")]
    assert times == sorted(times)


def test_a_process_named_with_bytes_that_are_not_utf8_is_recorded(tmp_path: Path) -> None:
    # Any local user can start one: it made the whole live capture fail (UnicodeEncodeError).
    name = os.fsdecode(b"ek-\xff\nodd")
    with children() as running:
        odd, _ = running.sleeper(tmp_path, name)
        result, folder, _ = sealed(tmp_path, LiveSource())
    assert result.seal.complete
    processes = {p["pid"]: p for p in document(folder, "04-processes.json")["processes"]}
    found = processes[odd.pid]
    assert found["cmdline"] == [str(tmp_path) + "/ek-\\xff\nodd", "600"]
    assert found["exe"] == str(tmp_path) + "/ek-\\xff\nodd"
    assert found["name"] == "ek-\\xff\nodd"


def test_a_closed_connection_is_not_said_to_be_hidden_by_permissions() -> None:
    # Every socket without an owner was recorded as "another user's: permission denied",
    # TIME_WAIT ones (owned by no process at all) too, and as root.
    import socket

    from evidencekit.clock import system_clock
    from evidencekit.sources.live import network

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        port = client.getsockname()[1]
        client.close()  # closed first: this side waits in TIME_WAIT, with no owner
        accepted.close()
        found = network.collect(system_clock, {})
    [waiting] = [c for c in found["connections"] if c["local"] == f"127.0.0.1:{port}"]
    assert waiting["status"] == "TIME_WAIT" and waiting["pid"] is None
    assert "permission" not in waiting["not_collected"]["pid"]
    assert "closed" in waiting["not_collected"]["pid"]


def test_the_second_snapshot_records_what_started_and_ended(tmp_path: Path) -> None:
    from evidencekit.clock import system_clock
    from evidencekit.sources.live import changes, processes

    with children() as running:
        first = processes.collect(system_clock).document
        ended = {"pid": 4_000_000, "ppid": 1, "name": "gone", "start_time": None,
                 "cmdline": ["gone"], "exe": None, "user": "x"}
        first["processes"].append(ended)
        late, _ = running.sleeper(tmp_path, "ek-late")
        second = changes.collect(system_clock, first, [])
    assert_valid(second, "live")
    assert late.pid in {p["pid"] for p in second["processes_started"]}
    assert ended in second["processes_ended"]  # (others may end too: the machine is shared)


def test_a_memory_tool_streams_its_image_into_the_bundle(tmp_path: Path) -> None:
    expected = LIME_HEADER + KNOWN
    (tmp_path / "expected").write_bytes(expected)
    script = tool(tmp_path, f'cat "{tmp_path / "expected"}" > "$1"\necho acquired >&2\n')
    result, folder, entries = sealed(tmp_path, LiveSource(script, memory_idle_timeout=5))
    assert result.seal.complete
    assert (folder / "live.02-memory.image").read_bytes() == expected
    memory = document(folder, "02-memory.json")
    digest = hashlib.sha256(expected).hexdigest()
    assert memory["image_sha256"] == digest == entries["data/live.02-memory.image"]["sha256"]
    assert memory["tool_sha256"] == hashlib.sha256(script.read_bytes()).hexdigest()
    assert memory["exit_status"] == 0 and memory["problem"] is None
    assert memory["image_format"] == "lime" and memory["image_bytes"] == len(expected)
    assert memory["command_line"][0] == str(script) and "acquired" in memory["tool_output"]
    assert not Path(memory["command_line"][1]).exists()  # the private pipe is gone


def test_a_failing_memory_tool_is_recorded_and_the_capture_incomplete(tmp_path: Path) -> None:
    script = tool(tmp_path, 'printf EMiL > "$1"\necho "cannot read /dev/crash" >&2\nexit 3\n')
    result, folder, entries = sealed(tmp_path, LiveSource(script, memory_idle_timeout=5))
    assert not result.seal.complete and result.seal.counts["errors"] == 1
    assert "exited with status 3" in entries["data/live.02-memory.image"]["error"]
    memory = document(folder, "02-memory.json")
    assert memory["exit_status"] == 3 and "status 3" in memory["problem"]
    assert "cannot read /dev/crash" in memory["tool_output"]
    assert (folder / "live.02-memory.image").read_bytes() == b"EMiL"  # what it wrote is kept
    # the public count (inspect) claimed a memory image all the same
    assert document(folder, "07-collection.json")["counts"]["memory images"] == 0
    assert (folder / "live.04-processes.json").is_file()  # the rest is collected all the same


def test_a_memory_tool_that_writes_nothing_leaves_the_capture_incomplete(tmp_path: Path) -> None:
    # It exited 0 and the capture said complete (exit 0): no memory image, and nothing said.
    script = tool(tmp_path, "exit 0\n")
    result, folder, entries = sealed(tmp_path, LiveSource(script, memory_idle_timeout=5))
    assert not result.seal.complete
    assert "wrote nothing" in entries["data/live.02-memory.image"]["error"]
    memory = document(folder, "02-memory.json")
    assert memory["exit_status"] == 0 and memory["image_bytes"] == 0
    assert "wrote nothing" in memory["problem"]


def test_a_hanging_memory_tool_is_stopped_and_recorded(tmp_path: Path) -> None:
    script = tool(tmp_path, 'printf EMiL > "$1" &\nsleep 600\n')
    started = time.monotonic()
    result, folder, entries = sealed(tmp_path, LiveSource(script, memory_idle_timeout=1))
    assert time.monotonic() - started < 30
    assert not result.seal.complete
    assert "wrote nothing for 1 s" in entries["data/live.02-memory.image"]["error"]
    memory = document(folder, "02-memory.json")
    assert memory["signal"] == "SIGTERM" and memory["exit_status"] is None
    assert not psutil.pid_exists(memory["pid"])  # stopped, with what it started
    assert not any(p.info["cmdline"] == ["sleep", "600"] and p.info["ppid"] == memory["pid"]
                   for p in psutil.process_iter(["cmdline", "ppid"]))


def test_a_memory_tool_that_leaves_its_output_open_behind_it_is_bounded(tmp_path: Path) -> None:
    # It exits at once, but what it started holds the pipe and writes nothing: the capture
    # waited for ever (the idle time counted only while the tool itself ran), and a capture
    # interrupted then left that process running.
    script = tool(tmp_path, 'printf EMiL > "$1"\n(sleep 614) > "$1" &\nexit 0\n')
    started = time.monotonic()
    result, folder, entries = sealed(tmp_path, LiveSource(script, memory_idle_timeout=1))
    assert time.monotonic() - started < 30
    assert not result.seal.complete
    assert "kept its output open" in entries["data/live.02-memory.image"]["error"]
    memory = document(folder, "02-memory.json")
    assert memory["exit_status"] == 0 and "kept its output open" in memory["problem"]
    assert (folder / "live.02-memory.image").read_bytes() == b"EMiL"
    assert not any(p.info["cmdline"] == ["sleep", "614"]
                   for p in psutil.process_iter(["cmdline"]))


def test_a_memory_tool_that_cannot_start_leaves_an_error(tmp_path: Path) -> None:
    script = tmp_path / "not-a-program"
    script.write_bytes(b"\x00\x01garbage")
    script.chmod(0o755)
    result, folder, entries = sealed(tmp_path, LiveSource(script, memory_idle_timeout=1))
    assert not result.seal.complete
    assert "could not be started" in entries["data/live.02-memory.image"]["error"]
    assert "could not be started" in document(folder, "02-memory.json")["problem"]


def test_its_names_stay_free_beside_the_other_sources() -> None:
    taken = {"notes", "live.03-network.json"}  # e.g. a file source of that name
    source = LiveSource()
    source.place(1, taken)
    [record] = source.records()
    assert record.bag_name == "live~1" and record.kind == "live" and record.index == 1
    assert {"live~1", "live~1.01-clock.json", "live~1.07-collection.json"} <= taken


def test_beside_a_file_of_its_name_every_path_is_its_own(tmp_path: Path) -> None:
    # A file source named live.01-clock.json made the live state live~1, but its entries kept
    # the path live.NAME: two entries had the path live.01-clock.json, and extract (which
    # gives files back their path's name when free) split the live state between live~1.* and
    # live.*, the process records' exe_copy naming files that were no longer there.
    theirs = tmp_path / "evidence" / "live.01-clock.json"
    theirs.parent.mkdir()
    theirs.write_bytes(b"the person's own file\n")
    identity = age.X25519Identity.generate()
    output = tmp_path / "both.evidence"
    capture(CaptureRequest([os.fsencode(theirs)], output, CaseInfo("LIVE-2", "Jane"), [identity.recipient()],
                           SigningKey.generate(), ["test"], more_sources=[LiveSource()]))
    report = verify(output, [identity])
    assert report.ok, report.findings.items
    assert report.manifest is not None
    entries = list(report.manifest.entries())
    live = [e for e in entries if e["source"] == 1]
    assert live and all(e["path"] == e["bag_path"].removeprefix("data/") for e in live)
    assert all(e["path"].startswith("live~1.") for e in live)
    paths = [e["path"] for e in entries]
    assert len(paths) == len(set(paths))
    extract(output, tmp_path / "out", [identity])
    folder = tmp_path / "out" / "data"
    assert (folder / "live.01-clock.json").read_bytes() == b"the person's own file\n"
    names = sorted(p.name for p in folder.iterdir() if p.name != "live.01-clock.json")
    assert names and all(name.startswith("live~1.") for name in names), names


def test_a_memory_tool_abandoned_by_a_capture_that_ends_is_stopped(tmp_path: Path) -> None:
    """The capture fails or is interrupted before the image was read: when evidencekit's
    process ends, the tool (and what it started) is stopped and its pipe's folder removed."""
    import subprocess

    script = tool(tmp_path, "sleep 613\n")  # a number no other test sleeps for
    program = ("import sys\nfrom pathlib import Path\nfrom evidencekit.clock import system_clock\n"
               "from evidencekit.sources.live.memory import MemoryImage\n"
               "image = MemoryImage(Path(sys.argv[1]), system_clock, 1)\n"
               "print(image.document()['pid'], image._folder, flush=True)\n")
    done = subprocess.run([sys.executable, "-c", program, str(script)], capture_output=True,
                          timeout=60, check=True, text=True)
    pid, folder = done.stdout.split()
    assert not psutil.pid_exists(int(pid)) and not Path(folder).exists()
    assert not any(p.info["cmdline"] == ["sleep", "613"]
                   for p in psutil.process_iter(["cmdline"]))


@pytest.mark.parametrize("root", [True, False])
def test_permission_denied_says_what_to_do_only_when_not_root(
        root: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Root was refused a process's details (a security policy, a protected process) and the
    # record said "run as administrator/root to collect it"; the person was told nothing at all
    # of what a capture as an ordinary user misses.
    from evidencekit.cli import live as cli_live
    from evidencekit.sources.live import common

    monkeypatch.setattr(os, "geteuid", lambda: 0 if root else 1000)
    said = common.reason(PermissionError(13, "Permission denied"))
    assert "permission denied" in said
    assert ("run as administrator/root" in said) is not root
    source = LiveSource()
    source.counts, source.withheld = {"processes": 120}, {"processes": 56, "connections": 93}
    cli_live.say_done((source,))
    told = " ".join(capsys.readouterr().err.split())
    assert "permission denied for details of 56 of 120 processes and the owners of 93" in told
    assert ("run as administrator/root" in told) is not root


def test_what_the_system_refused_is_counted() -> None:
    from evidencekit.sources.live import withheld_counts

    denied = {"exe": "permission denied (run as administrator/root to collect it)"}
    processes = {"processes": [{"not_collected": denied}, {"not_collected": {}},
                               {"not_collected": {"exe": "not found"}}]}
    connections = [{"pid": None, "not_collected": {"pid": "the owning process could not be "
                                                   "seen (another user's: permission denied)"}},
                   {"pid": 7}, {"pid": None, "not_collected": {"pid": "no process owns it"}}]
    assert withheld_counts(processes, connections) == {"processes": 1, "connections": 1}
