"""What capture --remote accepts as a host and a host key, and the ssh it runs
(evidencekit.remote.ssh), without a server."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from evidencekit.errors import UsageError
from evidencekit.remote import ssh
from evidencekit.remote.ssh import Endpoint, HostKey, check_fingerprint, connection


@pytest.mark.parametrize(("text", "expected"), [
    ("admin@web-17.example", Endpoint("admin", "web-17.example", 22)),
    ("admin@web-17.example:2222", Endpoint("admin", "web-17.example", 2222)),
    ("root@192.0.2.7:22", Endpoint("root", "192.0.2.7", 22)),
    ("ops@[2001:db8::1]:2200", Endpoint("ops", "2001:db8::1", 2200)),
    ("CORP\\alice@winhost", Endpoint("CORP\\alice", "winhost", 22)),  # Windows' OpenSSH
])
def test_a_remote_is_user_at_host_and_an_optional_port(text: str, expected: Endpoint) -> None:
    assert Endpoint.parse(text) == expected
    assert Endpoint.parse(str(expected)) == expected


@pytest.mark.parametrize("text", ["web-17", "@host", "admin@", "-oProxyCommand=x@host",
                                  "admin@-oProxyCommand=x", "admin@host:0", "admin@host:70000",
                                  "admin@host:port", "a b@host"])
def test_anything_else_is_refused_before_ssh_sees_it(text: str) -> None:
    with pytest.raises(UsageError):
        Endpoint.parse(text)


@pytest.mark.parametrize("text", ["admin@x$(touch${IFS}f)", "admin@x`id`", "admin@a;id",
                                  "admin@a|id", "admin@a&id", "admin@host*", "u$(id)@host",
                                  "u'x@host", "u;id@host", "admin@a\x1b[2Kb",
                                  "alice\\@host"])
def test_a_name_a_shell_would_read_is_refused(text: str) -> None:
    """--jump's ProxyCommand holds the host unquoted (-W [%h]:%p): an OpenSSH older than 9.6
    hands a host such as 'x$(touch f)' to the shell as it is."""
    with pytest.raises(UsageError, match="a shell would read them"):
        Endpoint.parse(text)


def test_a_host_key_is_a_sha256_fingerprint() -> None:
    good = "SHA256:" + "A" * 43
    assert check_fingerprint(good) == good
    assert check_fingerprint(good + "=") == good
    for bad in ("MD5:aa:bb", "SHA256:short", "ssh-ed25519 AAAA", "",
                f"{good} SHA256:{'B' * 43}"):
        with pytest.raises(UsageError):
            check_fingerprint(bad)


def test_a_host_key_may_be_given_as_people_read_it_out() -> None:
    """'sha256:' in any case, or the whole line ssh-keygen -lf prints, were refused (exit 2)."""
    good = "SHA256:" + "Ab" * 21 + "c"
    assert check_fingerprint("sha256:" + good[7:]) == good
    assert check_fingerprint(f"256 {good} root@web-17 (ED25519)") == good
    with pytest.raises(UsageError, match="MD5 fingerprint does not pin"):
        check_fingerprint("MD5:0b:3a:ea:c6:c7:81:3a:3b:7e:9d:65:5c:da:0c:7f:7d")


def test_the_fingerprint_is_the_one_ssh_keygen_shows() -> None:
    blob = base64.b64encode(b"\0\0\0\x0bssh-ed25519\0\0\0\x20" + bytes(range(32))).decode()
    expected = "SHA256:" + base64.b64encode(
        hashlib.sha256(base64.b64decode(blob)).digest()).decode().rstrip("=")
    assert HostKey("ssh-ed25519", blob).fingerprint == expected


def test_ssh_checks_exactly_the_pinned_key_and_asks_nothing(tmp_path: Path) -> None:
    key = HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIOfake")
    with connection(Endpoint("admin", "web-17.example", 2222), key) as conn:
        argv = conn.ssh_argv()
        known = conn.known_hosts.read_text()
        folder = conn.known_hosts.parent
    assert known == "evidencekit-pinned-host ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOfake\n"
    assert not folder.exists()  # the one-line known_hosts lives as long as the connection
    options = " ".join(argv)
    for wanted in ("BatchMode=yes", "StrictHostKeyChecking=yes", "HostKeyAlgorithms=ssh-ed25519",
                   "GlobalKnownHostsFile=/dev/null", "UpdateHostKeys=no",
                   "VerifyHostKeyDNS=no", "KnownHostsCommand=none", "ControlPath=none",
                   "GSSAPIKeyExchange=no"):  # (Debian's OpenSSH, as on CI, knows it)
        assert wanted in options
    assert argv[-2:] == ["--", "web-17.example"] and "-a" in argv and "-x" in argv


@pytest.mark.parametrize("name", ["case 42", "a%hb", "quote'd", "back\\slash"])
def test_a_temporary_folder_ssh_would_read_otherwise_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """ssh splits UserKnownHostsFile at spaces and expands %-tokens: under TMPDIR '/tmp/case 42'
    it read '/tmp/case' (any local user may make it) for the pinned key's file, and trusted an
    impostor's key written there (seen against a real sshd behind a man in the middle)."""
    odd = tmp_path / name
    odd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(odd))
    key = HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIOfake")
    with pytest.raises(UsageError, match="ssh would read"), \
            connection(Endpoint("admin", "web-17.example"), key):
        pass
    with pytest.raises(UsageError, match="ssh would read"):
        ssh.offered_through_ssh(Endpoint("admin", "web-17.example"), None, None,
                                ["ssh-ed25519"], lambda key: True)
    assert list(odd.iterdir()) == []  # no folder left there
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # a plain one is taken
    with connection(Endpoint("admin", "web-17.example"), key) as conn:
        assert conn.known_hosts.parent.parent == tmp_path


def test_a_hashed_known_hosts_entry_is_found_whatever_the_case_of_the_host_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ssh looks a host up in lower case; a hashed entry (a hash of the lower-case name) was
    not found for --remote admin@Web-17.Example, and the capture refused as for a host never
    seen ('is not in known_hosts')."""
    blob = base64.b64encode(b"\0\0\0\x0bssh-ed25519\0\0\0\x20" + bytes(32)).decode()
    known = tmp_path / "known_hosts"
    known.write_text(f"[web-17.example]:2222 ssh-ed25519 {blob}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, capture_output=True)
    assert "web-17" not in known.read_text()
    monkeypatch.setattr(ssh, "host_keys", lambda endpoint: [HostKey("ssh-ed25519", blob)])
    pinned = ssh.pin_from_known_hosts(Endpoint.parse("admin@Web-17.Example:2222"), known)
    assert pinned == HostKey("ssh-ed25519", blob)


def test_a_host_named_by_an_alias_is_reached_where_the_ssh_configuration_says(
        tmp_path: Path) -> None:
    """ssh-keyscan reads no configuration: a Host alias was scanned as 'web-17' port 22 ('cannot
    reach an SSH server'), and ssh was given -p 22 over the configured Port. ssh -G says where
    ssh will go (no connection made); a port typed in --remote wins, as -p does."""
    config = tmp_path / "config"
    config.write_text("Host web-17\n    HostName 192.0.2.17\n    Port 2222\n")
    assert ssh.as_configured(Endpoint.parse("admin@web-17"), config) == \
        Endpoint("admin", "192.0.2.17", 2222)
    assert ssh.as_configured(Endpoint.parse("admin@web-17:2200"), config) == \
        Endpoint("admin", "192.0.2.17", 2200)
    assert ssh.as_configured(Endpoint.parse("admin@192.0.2.9"), config) == \
        Endpoint("admin", "192.0.2.9", 22)
    key = HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIOfake")
    with connection(Endpoint.parse("admin@web-17"), key, config=config) as conn:
        assert "-p" not in conn.ssh_argv()  # the configured Port applies
    with connection(Endpoint.parse("admin@web-17:2200"), key, config=config) as conn:
        argv = conn.ssh_argv()
        assert argv[argv.index("-p") + 1] == "2200"


def test_jump_is_a_proxy_command_that_checks_the_bastion_strictly(tmp_path: Path) -> None:
    """--jump: ssh -J's own ssh gets neither BatchMode nor strict checking (an unknown bastion
    was asked about on the terminal); this one gets both, and what it is given is quoted for
    the shell and kept from ssh's %-expansion."""
    config = tmp_path / "my 100% config"
    command = ssh.proxy_command(Endpoint.parse("ops@bastion.example:2200"), config)
    assert "BatchMode=yes" in command and "StrictHostKeyChecking=yes" in command
    assert f"-F '{tmp_path}/my 100%% config'" in command
    assert command.endswith("-p 2200 -W [%h]:%p -- bastion.example")
    key = HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIOfake")
    with connection(Endpoint.parse("admin@10.0.0.17"), key,
                    jump=Endpoint.parse("ops@bastion.example")) as conn:
        argv = conn.ssh_argv()
    assert "ProxyCommand=" + ssh.proxy_command(Endpoint.parse("ops@bastion.example"),
                                               None) in argv
    assert "StrictHostKeyChecking=yes" in argv


def test_a_host_behind_a_proxy_in_the_ssh_configuration_is_seen_as_such(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host web-17\n  ProxyJump bastion\nHost db-3\n  ProxyCommand nc %h %p\n")
    assert ssh.proxied(Endpoint.parse("admin@web-17"), config)
    assert ssh.proxied(Endpoint.parse("admin@db-3"), config)
    assert not ssh.proxied(Endpoint.parse("admin@mail-1"), config)


def test_a_proxy_that_stalls_is_ended_with_the_run_that_asks_for_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bastion's route that sends a banner, then nothing: the run asking for the host's key
    is stopped (its timeout), and its ProxyCommand with it (ssh killed outright left it
    running: an ssh -W to the bastion, for as long as the bastion held it)."""
    monkeypatch.setattr(ssh, "_ASK_TIMEOUT", 1)
    pid_file = tmp_path / "proxy.pid"
    config = tmp_path / "ssh_config"
    config.write_text(f"Host stalled\n  HostName 127.0.0.1\n  ProxyCommand sh -c 'echo $$ > "
                      f"{pid_file}; printf \"SSH-2.0-OpenSSH_9.2\\r\\n\"; exec sleep 30'\n")
    with pytest.raises(ssh.RemoteError, match="did not answer"):
        ssh.offered_through_ssh(Endpoint("admin", "stalled"), config, None, ["ssh-ed25519"],
                                lambda key: True)
    proxy = int(pid_file.read_text())
    for _ in range(50):
        if not Path(f"/proc/{proxy}").exists() or \
                Path(f"/proc/{proxy}/stat").read_text().split()[2] == "Z":
            break
        time.sleep(0.05)
    else:
        os.kill(proxy, signal.SIGKILL)
        pytest.fail("the ProxyCommand was left running")
