"""capture --remote --sftp against an SFTP server that lies (tests/support/hostile_sftp.py),
run by a real OpenSSH server on 127.0.0.1 as its SFTP subsystem: the real CLI, nothing mocked."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import sshd as sshd_support
from tests.support.cli import run_cli

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


def _capture(server: sshd_support.Sshd, keys: dict[str, Path], out: Path) -> object:
    config = out.parent / "config"
    config.mkdir(exist_ok=True)
    return run_cli("capture", "--remote", server.remote, "--host-key", server.fingerprint,
                   "--ssh-identity", server.client_key, "--sftp", "-R", keys["recipient"],
                   "--sign-key", keys["signer"], "--case", "IR-7", "-o", out, "--json", "/x",
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
