"""tests/support/sshd.py leaves no account behind: tests write nothing outside their temporary
folders, and /etc/passwd is outside. As root only (elsewhere the server logs in the user running
the tests and no account is made)."""

from __future__ import annotations

import os
import pwd
import subprocess

import psutil
import pytest

from tests.support import sshd as sshd_support

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="accounts are made only as root")


def _accounts() -> set[str]:
    return {e.pw_name for e in pwd.getpwall() if e.pw_name.startswith(sshd_support.ACCOUNT_PREFIX)}


def test_the_account_made_for_the_server_is_removed_with_it() -> None:
    """Its own account, by name: other test runs on the machine (several worktrees at once)
    make and remove theirs meanwhile, and a difference of all the accounts failed on them."""
    before = _accounts()
    with sshd_support.running() as server:
        made = server.user
        assert made in _accounts() - before
        assert server.ssh("true").returncode == 0
        # a process the session leaves running (its shell killed) goes with the account
        server.ssh("nohup sleep 300 >/dev/null 2>&1 &")
    assert made not in _accounts()
    with pytest.raises(KeyError):
        pwd.getpwnam(made)


def test_an_account_left_by_a_killed_run_is_removed_by_the_next() -> None:
    dead = 1
    while psutil.pid_exists(dead):
        dead += 7919
    left = f"{sshd_support.ACCOUNT_PREFIX}-{dead}-1"
    subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", left],
                   check=True, capture_output=True)
    try:
        with sshd_support.running():
            assert left not in _accounts()
    finally:
        subprocess.run(["userdel", left], check=False, capture_output=True)
