"""capture --remote of a host reached only through a bastion (ProxyJump / ProxyCommand in the ssh
configuration, or --jump), against three real OpenSSH servers on 127.0.0.1: the host, the
bastion (which may forward to the host and to the third), and an impostor with another host key
that a bastion turned hostile delivers in the host's place."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from evidencekit.format.documents import custody_member
from tests.support import sshd as sshd_support
from tests.support.bundles import contents
from tests.support.cli import run_cli


@dataclass
class Hosts:
    target: sshd_support.Sshd
    bastion: sshd_support.Sshd
    impostor: sshd_support.Sshd
    command: str  # how the target's login user runs this worktree's evidencekit
    tree: Path  # files on the target
    ecdsa: str  # the fingerprint of the target's second host key, ECDSA


@pytest.fixture(scope="module")
def hosts() -> Iterator[Hosts]:
    # the target's second host key, where its sshd (not root, in CI) may read it: sshd refuses
    # a key file of its own that others may read, and reads one of root's that it may
    with tempfile.TemporaryDirectory(prefix="evidencekit-hostkey-") as folder:
        os.chmod(folder, 0o755)
        second = Path(folder) / "ecdsa"
        subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", str(second)],
                       check=True)
        os.chmod(second, 0o644 if os.geteuid() == 0 else 0o600)
        yield from _hosts(second)


def _hosts(second: Path) -> Iterator[Hosts]:
    with sshd_support.running(config=f"HostKey {second}\n") as target, \
            sshd_support.running() as impostor, \
            sshd_support.running(config=f"PermitOpen 127.0.0.1:{target.port} "
                                 f"127.0.0.1:{impostor.port}\n") as bastion:
        tree = target.root / "data"
        (tree / "logs").mkdir(parents=True)
        (tree / "logs" / "auth.log").write_bytes(b"Dec  7 sshd[1]: Accepted publickey\n" * 50)
        (tree / "notes.txt").write_text("what the admin saw\n")
        target.owned(tree)
        yield Hosts(target, bastion, impostor, target.evidencekit_command(), tree,
                    sshd_support.fingerprint_of(second.with_suffix(".pub").read_text()))


def _config(hosts: Hosts, folder: Path, bastion_known: bool = True) -> Path:
    """The investigator's ssh configuration: the bastion with its own key pinned (its known_hosts,
    strict), 'web-17' through it (ProxyJump), and 'web-17-swapped', the same host name and port
    asked of a bastion that connects to the impostor instead (a ProxyCommand)."""
    bastion, target = hosts.bastion, hosts.target
    known = folder / "bastion_known_hosts"
    known.write_text(f"[127.0.0.1]:{bastion.port} {bastion.host_key_line}\n"
                     if bastion_known else "")
    config = folder / "ssh_config"
    config.write_text(
        f"Host bastion\n  HostName 127.0.0.1\n  Port {bastion.port}\n  User {bastion.user}\n"
        f"  IdentityFile {bastion.client_key}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {known}\n  StrictHostKeyChecking yes\n"
        f"Host web-17\n  HostName 127.0.0.1\n  Port {target.port}\n  ProxyJump bastion\n"
        f"Host web-17-swapped\n  HostName 127.0.0.1\n  Port {target.port}\n"
        f"  ProxyCommand ssh -F {config} -W 127.0.0.1:{hosts.impostor.port} bastion\n"
        # honest when asked for the key, the impostor for the capture that follows
        f"Host web-17-switching\n  HostName 127.0.0.1\n  Port {target.port}\n"
        f"  ProxyCommand sh -c 'if [ -e {folder}/asked ]; then exec ssh -F {config} -W "
        f"127.0.0.1:{hosts.impostor.port} bastion; fi; touch {folder}/asked; exec ssh -F "
        f"{config} -W 127.0.0.1:{target.port} bastion'\n"
        # --jump 127.0.0.1:PORT: the bastion's login key and known_hosts (the host's own
        # known_hosts is the one evidencekit writes, given on the command line, which wins)
        f"Host 127.0.0.1\n  IdentityFile {bastion.client_key}\n  UserKnownHostsFile {known}\n")
    return config


def _capture(hosts: Hosts, keys: dict[str, Path], out: Path, host: str, *options: object,
             config: Path | None = None) -> object:
    config = config or _config(hosts, out.parent)
    home = out.parent / "home"
    home.mkdir(exist_ok=True)
    return run_cli("capture", "--remote", f"{hosts.target.user}@{host}", "--ssh-config", config,
                   "--ssh-identity", hosts.target.client_key, "--remote-command", hosts.command,
                   "-R", keys["recipient"], "--sign-key", keys["signer"], "--case", "IR-7",
                   "-o", out, "--json", *options, hosts.tree / "logs", hosts.tree / "notes.txt",
                   env={"XDG_CONFIG_HOME": str(home),
                        "PYTHONPATH": str(Path(__file__).parents[2])})


def _web_17(hosts: Hosts, keys: dict[str, Path], tmp_path: Path,
            *options: object) -> tuple[Path, Any]:
    """The bundle's path, and capture --remote of web-17 (behind the bastion) into it."""
    out = tmp_path / "web-17.evidence"
    return out, _capture(hosts, keys, out, "web-17", *options)


def _logins(server: sshd_support.Sshd) -> int:
    return (server.root / "sshd.log").read_text(errors="replace").count("Accepted publickey")


def _nothing_left(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if ".evidence" in p.name]


def test_a_host_behind_a_bastion_is_captured_with_its_own_key_pinned(
        hosts: Hosts, keys: dict[str, Path], tmp_path: Path) -> None:
    through_bastion = _logins(hosts.bastion)
    out, done = _web_17(hosts, keys, tmp_path, "--host-key", hosts.target.fingerprint)
    assert done.code == 0, done.stderr
    assert done.json()["remote"]["host_key"] == hosts.target.fingerprint
    received = json.loads(dict((n, d) for n, d, _ in contents(out))[custody_member(2)])
    assert received["action"] == "received"
    assert received["details"]["host_key"] == hosts.target.fingerprint  # the host's, not the
    assert hosts.bastion.fingerprint != hosts.target.fingerprint  # bastion's
    assert received["details"]["route"] == "ProxyJump bastion (ssh configuration)"
    # the bastion carried both connections: the key asked for, then the capture
    assert _logins(hosts.bastion) == through_bastion + 2
    checked = run_cli("verify", out, "-i", keys["identity"], "--json")
    assert checked.json()["ok"] is True, checked.stdout


def test_over_sftp_behind_a_bastion_the_key_known_hosts_records_is_pinned(
        hosts: Hosts, keys: dict[str, Path], tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"  # the name ssh records it by: its HostName and Port
    known.write_text(f"[127.0.0.1]:{hosts.target.port} {hosts.target.host_key_line}\n")
    _, done = _web_17(hosts, keys, tmp_path, "--known-hosts", known, "--sftp")
    assert done.code == 0, done.stderr
    assert done.json()["remote_logical"]["host_key"] == hosts.target.fingerprint


def test_a_wrong_pin_behind_a_bastion_is_refused(
        hosts: Hosts, keys: dict[str, Path], tmp_path: Path) -> None:
    logins = _logins(hosts.target)
    out, done = _web_17(hosts, keys, tmp_path, "--host-key", hosts.impostor.fingerprint)
    assert done.code == 1, done.stderr
    assert "is not the one given" in done.stderr
    assert hosts.target.fingerprint in done.stderr  # what it offers, to compare by phone
    assert _logins(hosts.target) == logins  # nobody logged in there
    # the right pin, but a known_hosts file marks that key revoked: refused as well
    revoked = tmp_path / "known_hosts"
    revoked.write_text(f"@revoked [127.0.0.1]:{hosts.target.port} {hosts.target.host_key_line}\n")
    done = _capture(hosts, keys, out, "web-17", "--host-key", hosts.target.fingerprint,
                    "--known-hosts", revoked)
    assert done.code == 1, done.stderr
    assert "@revoked" in done.stderr
    assert _logins(hosts.target) == logins
    assert _nothing_left(tmp_path)


def test_a_bastion_that_delivers_another_host_is_refused(
        hosts: Hosts, keys: dict[str, Path], tmp_path: Path) -> None:
    """Asked for the host, the bastion connects to the impostor (same name and port, another
    key): refused, pinned by fingerprint or by known_hosts, and no login is tried there."""
    out = tmp_path / "web-17.evidence"
    done = _capture(hosts, keys, out, "web-17-swapped", "--host-key", hosts.target.fingerprint)
    assert done.code == 1, done.stderr
    assert "is not the one given" in done.stderr
    assert hosts.impostor.fingerprint in done.stderr
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{hosts.target.port} {hosts.target.host_key_line}\n")
    done = _capture(hosts, keys, out, "web-17-swapped", "--known-hosts", known, "--sftp")
    assert done.code == 1, done.stderr
    assert "CHANGED" in done.stderr
    assert _logins(hosts.impostor) == 0 and "Failed publickey" not in \
        (hosts.impostor.root / "sshd.log").read_text(errors="replace")
    assert _nothing_left(tmp_path)


def test_jump_goes_through_a_bastion_whose_own_key_is_known(
        hosts: Hosts, keys: dict[str, Path], tmp_path: Path) -> None:
    """Pinned here: the host's second key (ECDSA). Asked through the bastion, the host answers
    with its Ed25519 key first, then, Ed25519 no longer offered, with the ECDSA key; the capture
    is made with that key alone."""
    jump = f"{hosts.bastion.user}@127.0.0.1:{hosts.bastion.port}"
    target = f"127.0.0.1:{hosts.target.port}"
    out = tmp_path / "web-17.evidence"
    through_bastion = _logins(hosts.bastion)
    done = _capture(hosts, keys, out, target, "--host-key", hosts.ecdsa, "--jump", jump)
    assert done.code == 0, done.stderr
    assert done.json()["remote"]["host_key"] == hosts.ecdsa
    assert _logins(hosts.bastion) == through_bastion + 3  # two keys asked, one capture
    # a bastion whose key the investigator's known_hosts does not hold: refused, not asked
    os.remove(out)
    config = _config(hosts, tmp_path, bastion_known=False)
    done = _capture(hosts, keys, out, target, "--host-key", hosts.target.fingerprint,
                    "--jump", jump, config=config)
    assert done.code == 1, done.stderr
    assert "(--jump " in done.stderr and "bastion's host key" in done.stderr
    # where to add it: not the --known-hosts given for the host
    assert "--known-hosts pins the host only" in done.json()["error"]["hint"]
    assert _nothing_left(tmp_path)


def test_a_bastion_that_refuses_the_login_is_named_with_the_key_it_wants(
        hosts: Hosts, keys: dict[str, Path], tmp_path: Path) -> None:
    """--ssh-identity is the host's key: ssh logs in to the bastion with the agent, the default
    keys and the configuration. A bastion refusing them was 'cannot reach an SSH server …
    check that ssh reaches the bastion', which sent a new user looking at the network."""
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                   check=True)
    config = _config(hosts, tmp_path)
    config.write_text(config.read_text().replace(str(hosts.bastion.client_key), str(stranger)))
    out = tmp_path / "web-17.evidence"
    done = _capture(hosts, keys, out, "web-17", "--host-key", hosts.target.fingerprint,
                    config=config)
    assert done.code == 2, done.stderr
    error = json.loads(done.stdout)["error"]
    assert "the bastion refused the login" in error["message"]
    assert "Permission denied" in error["message"]
    assert "--ssh-identity" in error["hint"] and "--ssh-config" in error["hint"]
    assert _nothing_left(tmp_path)


@pytest.mark.parametrize("sftp", [False, True])
def test_a_bastion_honest_when_the_key_is_asked_then_swapping_the_host_is_refused(
        hosts: Hosts, keys: dict[str, Path], tmp_path: Path, sftp: bool) -> None:
    """The key learnt through the bastion is only a candidate: the capture's own connection,
    with it pinned, is what proves the host holds it. A bastion that lets the key question
    through to the host and then delivers the impostor for the capture gets nothing."""
    out = tmp_path / "web-17.evidence"
    done = _capture(hosts, keys, out, "web-17-switching", "--host-key",
                    hosts.target.fingerprint, *(("--sftp",) if sftp else ()))
    assert (tmp_path / "asked").exists()  # the key was asked of the real host
    assert done.code == 1, done.stderr
    assert f"the host key is not the one pinned ({hosts.target.fingerprint})" in done.stderr
    assert _logins(hosts.impostor) == 0
    assert _nothing_left(tmp_path)
