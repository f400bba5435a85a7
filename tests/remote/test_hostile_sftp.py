"""capture --remote --sftp against an SFTP server that lies (tests/support/hostile_sftp.py),
run by a real OpenSSH server on 127.0.0.1 as its SFTP subsystem: the real CLI, nothing mocked."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import sshd as sshd_support
from tests.support.cli import run_cli
from tests.support.hostile_sftp import CONTENT

WORKTREE = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[sshd_support.Sshd, Path]]:
    """The server, and the file its SFTP subsystem reads its mode from."""
    folder = Path(tempfile.mkdtemp(prefix="evidencekit-hostile-sftp-"))
    os.chmod(folder, 0o755)
    mode = folder / "mode"
    mode.write_text("empty-name")
    os.chmod(mode, 0o644)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if os.geteuid() == 0:  # the login user is another: it may not read a private checkout
        packages, python = sshd_support.readable_python_path(), f"/usr/bin/{version}"
    else:
        packages, python = sshd_support.tests_python_path(), os.path.realpath(sys.executable)
    command = (f"env PYTHONPATH={shlex.quote(packages)} {python} -m "
               f"tests.support.hostile_sftp $(cat {mode})")
    script = folder / "sftp.sh"
    script.write_text(f"#!/bin/sh\ncd / && exec {command}\n")
    os.chmod(script, 0o755)
    try:
        with sshd_support.running(sftp=f"/bin/sh {script}") as server:
            yield server, mode
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _capture(server: sshd_support.Sshd, keys: dict[str, Path], out: Path,
             *extra: str) -> object:
    config = out.parent / "config"
    config.mkdir(exist_ok=True)
    return run_cli("capture", "--remote", server.remote, "--host-key", server.fingerprint,
                   "--ssh-identity", server.client_key, "--sftp", "-R", keys["recipient"],
                   "--sign-key", keys["signer"], "--case", "IR-7", "-o", out, "--json", *extra, "/x",
                   env={"XDG_CONFIG_HOME": str(config), "PYTHONPATH": str(WORKTREE)})


def test_an_entry_with_an_empty_name_is_recorded_not_followed(
        served: tuple[sshd_support.Sshd, Path], keys: dict[str, Path], tmp_path: Path) -> None:
    """'/x' + '/' + '' is '/x' again: followed, it was listed again without end (before, a
    RecursionError: 'internal error', exit 5)."""
    server, mode = served
    mode.write_text("empty-name")
    out = tmp_path / "x.evidence"
    done = _capture(server, keys, out)
    assert done.code == 3, done.stderr[-3000:]  # type: ignore[attr-defined]
    problems = done.json()["problems"]  # type: ignore[attr-defined]
    assert any("which is not a file name" in p["problem"] for p in problems), problems
    assert done.json()["seal"]["counts"]["files"] == 2  # type: ignore[attr-defined]


def test_answers_out_of_order_leave_no_traceback(
        served: tuple[sshd_support.Sshd, Path], keys: dict[str, Path], tmp_path: Path) -> None:
    server, mode = served
    mode.write_text("reordered")
    out = tmp_path / "x.evidence"
    done = _capture(server, keys, out)
    assert done.code in (0, 2, 3), done.stderr[-3000:]  # type: ignore[attr-defined]
    assert "internal error" not in done.stderr  # type: ignore[attr-defined]


def _capture_served(served: tuple[sshd_support.Sshd, Path], behaviour: str,
                    keys: dict[str, Path], out: Path) -> object:
    """capture --sftp of /x from the server of *served* behaving as *behaviour*."""
    server, mode = served
    mode.write_text(behaviour)
    return _capture(server, keys, out)


def _recorded_of_f(done: object) -> str:
    """What an incomplete capture (exit 3) recorded of the served file f.txt."""
    assert done.code == 3, done.stderr[-3000:]  # type: ignore[attr-defined]
    return _problems(done)["f.txt"]


def _problems(done: object) -> dict[str, str]:
    found = done.json()["problems"]  # type: ignore[attr-defined]
    return {p["path"].rsplit("\u2215", 1)[-1]: p["problem"] for p in found}


def test_an_answer_longer_than_the_read_asked_is_refused(
        served: tuple[sshd_support.Sshd, Path], keys: dict[str, Path], tmp_path: Path) -> None:
    """Taken, the 100 bytes more shifted every byte after them: a file silently not the one
    served, exit 0."""
    out = tmp_path / "x.evidence"
    done = _capture_served(served, "long-read", keys, out)
    problem = _recorded_of_f(done)
    assert "answered a READ of 65536 bytes at byte 0 with 65636 bytes" in problem, problem


def test_data_past_the_size_listed_is_recorded_and_not_stored(
        served: tuple[sshd_support.Sshd, Path], keys: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x.evidence"
    done = _capture_served(served, "past-eof", keys, out)
    problem = _recorded_of_f(done)
    assert "sent data past the 200192 bytes it listed" in problem, problem
    folder = tmp_path / "extracted"
    extracted = run_cli("extract", out, "-i", keys["identity"], "-o", folder, env={
        "XDG_CONFIG_HOME": str(tmp_path / "config")})
    assert extracted.code in (0, 3, 6), extracted.stdout + extracted.stderr
    stored = [f for f in folder.rglob("*f.txt") if f.is_file()]
    assert len(stored) == 1 and stored[0].read_bytes() == CONTENT


# A server too slow to answer, and what giving it up says (exit 2, nothing kept):
#  stalled: nothing arrives;
#  trickled: a READ answered a byte a second, never 5 s silent, so it was waited for as long
#    as the server liked (64 KiB: 18 hours).
SLOW_SERVERS = {
    "stalled": "stopped answering (nothing arrived for 5 seconds)",
    "trickled": "arrived in 5 seconds; an answer comes whole",
}


@pytest.mark.parametrize("behaviour", list(SLOW_SERVERS))
def test_a_server_too_slow_to_answer_is_given_up(
        served: tuple[sshd_support.Sshd, Path], keys: dict[str, Path], tmp_path: Path,
        behaviour: str) -> None:
    server, mode = served
    mode.write_text(behaviour)
    out = tmp_path / "x.evidence"
    started = time.monotonic()
    done = _capture(server, keys, out, "--stall-timeout", "5")
    assert time.monotonic() - started < 60
    assert done.code == 2, done.stderr[-3000:]  # type: ignore[attr-defined]
    message = done.json()["error"]["message"]  # type: ignore[attr-defined]
    assert SLOW_SERVERS[behaviour] in message, message
    assert not [n for n in os.listdir(tmp_path) if out.name in n]


def test_a_wide_folder_deep_down_is_recorded_not_held_in_memory(
        served: tuple[sshd_support.Sshd, Path], keys: dict[str, Path], tmp_path: Path) -> None:
    """20,000 names in a folder 60 levels of 250 bytes down: each item costs several times its
    15 KB path until the end, 2,000 of them took 304 MB, these would take some 3 GB. Past the
    walk's budget (remote_logical.MOST_PATH_TOTAL) the folder is recorded as not listed
    (exit 3), and the capture's peak memory, measured around it, stays small."""
    server, mode = served
    mode.write_text("wide-deep")
    out = tmp_path / "x.evidence"
    config = tmp_path / "config"
    config.mkdir()
    measure = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)"
               "; sys.exit(done.returncode)")
    done = subprocess.run(
        [sys.executable, "-c", measure, sys.executable, "-m", "evidencekit", "capture",
         "--remote", server.remote, "--host-key", server.fingerprint, "--ssh-identity",
         str(server.client_key), "--sftp", "-R", str(keys["recipient"]), "--sign-key",
         str(keys["signer"]), "--case", "IR-7", "-o", str(out), "--json", "/x"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "XDG_CONFIG_HOME": str(config), "PYTHONPATH": str(WORKTREE)})
    assert done.returncode == 3, done.stderr[-3000:]
    problems = [p["problem"] for p in json.loads(done.stdout)["problems"]]
    assert any("of paths in it; not listed further" in p and "32 MiB of paths" in p
               for p in problems), problems
    peak_kib = int(done.stderr.strip().splitlines()[-1])
    assert peak_kib < 150 << 10, f"peak {peak_kib >> 10} MiB"


def test_a_file_listed_without_a_size_and_without_end_is_cut_and_recorded(
        served: tuple[sshd_support.Sshd, Path], keys: dict[str, Path], tmp_path: Path) -> None:
    """It was spooled next to the bundle without end, until the disk was full."""
    out = tmp_path / "x.evidence"
    done = _capture_served(served, "sizeless", keys, out)
    problem = _recorded_of_f(done)
    assert "the server listed no size for it, and it still gave more after 16 MiB" in problem, \
        problem
    assert out.stat().st_size < 20 << 20


def test_a_session_that_ends_mid_file_ends_the_capture_and_keeps_nothing(
        served: tuple[sshd_support.Sshd, Path], keys: dict[str, Path], tmp_path: Path) -> None:
    """The connection gone mid-file (found in a walkthrough by killing the session's sshd):
    the rest of the file was stored as zeros, 'read error at byte N: None', every file after
    it unreadable, and a bundle that looked valid kept with exit 3."""
    server, mode = served
    mode.write_text("hangup")
    out = tmp_path / "x.evidence"
    done = _capture(server, keys, out)
    assert done.code == 2, done.stderr[-3000:]  # type: ignore[attr-defined]
    message = done.json()["error"]["message"]  # type: ignore[attr-defined]
    assert "SFTP session with" in message and "ended before the capture was done" in message
    assert "nothing was kept" in message and "None" not in message, message
    assert not [n for n in os.listdir(tmp_path) if out.name in n]


def test_a_file_the_server_will_not_open_is_recorded_unread_not_stored_as_zeros(
        served: tuple[sshd_support.Sshd, Path], keys: dict[str, Path], tmp_path: Path) -> None:
    """A file its user may not read (/etc/shadow for a login user): it was stored as a file of
    zeros its listed size ('read error at byte 0: permission denied; the remaining 200192
    bytes are stored as zeros'), where a local capture says 'could not open' and stores
    nothing."""
    out = tmp_path / "x.evidence"
    done = _capture_served(served, "denied", keys, out)
    problem = _recorded_of_f(done)
    assert problem == "could not open: permission denied", problem
    assert done.json()["seal"]["total_bytes"] < len(CONTENT)  # type: ignore[attr-defined]
    folder = tmp_path / "extracted"
    extracted = run_cli("extract", out, "-i", keys["identity"], "-o", folder, env={
        "XDG_CONFIG_HOME": str(tmp_path / "config")})
    assert extracted.code in (0, 3, 6), extracted.stdout + extracted.stderr
    assert not [f for f in folder.rglob("*f.txt") if f.is_file()]
