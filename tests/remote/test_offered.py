"""remote.ssh.offered_through_ssh against a real sshd on 127.0.0.1: the key a host answers with,
asked through ssh itself (as for a host behind a bastion)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evidencekit.remote import ssh
from evidencekit.remote.ssh import Endpoint
from tests.support import sshd as sshd_support


@pytest.mark.parametrize("setting", [
    # Debian's /etc/ssh/ssh_config (read when no --ssh-config is given): the key was recorded
    # under a hashed name, not found, and every capture through a bastion (--jump, ProxyJump)
    # ended in 'cannot reach an SSH server'
    "HashKnownHosts yes",
    # ssh says 'no matching host key type' at INFO: a pin the host does not hold was 'cannot
    # reach an SSH server' (exit 2), not 'the host key … is not the one given' (exit 1)
    "LogLevel ERROR",
    # 'Cannot execute command-line and remote command': ssh refused before connecting
    "RemoteCommand echo hello",
])
def test_the_keys_are_asked_whatever_the_ssh_configuration_says(
        server: sshd_support.Sshd, tmp_path: Path, setting: str) -> None:
    """The host's key is found, and the next run, offering a type it has no key of, is told
    from one that did not reach it."""
    config = tmp_path / "ssh_config"
    config.write_text(f"Host *\n  {setting}\n")
    offered = ssh.offered_through_ssh(Endpoint(server.user, "127.0.0.1", server.port), config,
                                      None, ["ssh-ed25519", "ecdsa-sha2-nistp256"],
                                      lambda key: False)
    assert [key.fingerprint for key in offered] == [server.fingerprint]
