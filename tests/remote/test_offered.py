"""remote.ssh.offered_through_ssh against a real sshd on 127.0.0.1: the key a host answers with,
asked through ssh itself (as for a host behind a bastion)."""

from __future__ import annotations

from pathlib import Path

from evidencekit.remote import ssh
from evidencekit.remote.ssh import Endpoint
from tests.support import sshd as sshd_support


def test_the_key_is_found_where_ssh_hashes_the_names_it_records(
        server: sshd_support.Sshd, tmp_path: Path) -> None:
    """Debian's /etc/ssh/ssh_config says HashKnownHosts yes (read when no --ssh-config is
    given): the key was recorded under a hashed name, not found, and every capture through a
    bastion (--jump, ProxyJump) ended in 'cannot reach an SSH server'."""
    config = tmp_path / "ssh_config"
    config.write_text("Host *\n  HashKnownHosts yes\n")
    offered = ssh.offered_through_ssh(Endpoint(server.user, "127.0.0.1", server.port), config,
                                      None, ["ssh-ed25519"], lambda key: True)
    assert [key.fingerprint for key in offered] == [server.fingerprint]


def test_a_host_with_no_other_key_is_told_from_one_not_reached_whatever_the_log_level(
        server: sshd_support.Sshd, tmp_path: Path) -> None:
    """ssh says 'no matching host key type' at LogLevel INFO: a configuration that says
    'LogLevel ERROR' (to hide 'Permanently added …') made a pin the host does not hold 'cannot
    reach an SSH server' (exit 2), not 'the host key … is not the one given' (exit 1)."""
    config = tmp_path / "ssh_config"
    config.write_text("Host *\n  LogLevel ERROR\n")
    offered = ssh.offered_through_ssh(Endpoint(server.user, "127.0.0.1", server.port), config,
                                      None, ["ssh-ed25519", "ecdsa-sha2-nistp256"],
                                      lambda key: False)
    assert [key.fingerprint for key in offered] == [server.fingerprint]
