"""How --remote-command reaches the remote shell: run here by a real /bin/sh, as sshd runs the
command there, with HOME a temporary folder holding a stand-in 'evidencekit' that prints the
arguments it was given."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from evidencekit.remote.receive import shell_command

ARGUMENTS = ["serve-capture", "--case", "IR 7; rm -rf ~", "--", "/var/log", "~/notes $(id)"]


def _run_there(line: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "-c", line], env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, check=False, timeout=30)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    tool = tmp_path / ".local" / "bin" / "evidence kit"
    tool.parent.mkdir(parents=True)
    tool.write_text('#!/bin/sh\nprintf "%s\\n" "$0" "$@"\n')
    os.chmod(tool, 0o755)
    return tmp_path


@pytest.mark.parametrize("command", ["'~/.local/bin/evidence kit'",
                                     "env LC_ALL=C '~/.local/bin/evidence kit'"])
def test_a_command_under_the_remote_home_is_found_there(command: str, home: Path) -> None:
    """pipx installs evidencekit in ~/.local/bin, not on the PATH of a command run over SSH;
    '~/.local/bin/evidencekit' was sent quoted ('~/…'), not found (exit 127), and the capture
    fell back to SFTP."""
    done = _run_there(shell_command(command, ARGUMENTS), home)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == str(home / ".local" / "bin" / "evidence kit")
    assert lines[1:] == ARGUMENTS  # the arguments stay words: no tilde, no expansion


def test_another_users_home_is_expanded_and_nothing_else_is(home: Path) -> None:
    line = shell_command("~root/x ~nobody~ a~/b", ["~"])
    assert line == "~root/x '~nobody~' 'a~/b' '~'"
