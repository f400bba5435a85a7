"""capture --remote when the disk here fills at the last step, and what it trusts: the real CLI
against a real OpenSSH server on 127.0.0.1 (tests/support/sshd.py)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support import sshd as sshd_support
from tests.support.ssh_splitter import splitter


def _capture(server: sshd_support.Sshd, keys: dict[str, Path], out: Path, *args: object,
             file_size_limit: int | None = None) -> subprocess.CompletedProcess[str]:
    """capture --remote --json; with *file_size_limit*, no file it writes may grow past that
    many bytes (RLIMIT_FSIZE: a write past it fails with EFBIG, as one on a full disk fails)."""
    def limited() -> None:
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    config = out.parent / "config"
    config.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "evidencekit", "capture", "--remote", server.remote,
         "--ssh-identity", str(server.client_key), "--remote-command", server.evidencekit_command(),
         "-R", str(keys["recipient"]), "--sign-key", str(keys["signer"]), "--case", "IR-7",
         "-o", str(out), "--json", *map(str, args)],
        env={**os.environ, "XDG_CONFIG_HOME": str(config),
             "PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True, text=True, timeout=300, preexec_fn=limited)


def _capture_through(port: int, other: sshd_support.Sshd, pinned: str, config: Path,
                     keys: dict[str, Path], out: Path, data: Path
                     ) -> subprocess.CompletedProcess[str]:
    """capture --remote --json of *data* on *other*, reached at *port* (a splitter), with
    *pinned* as --host-key and the ssh configuration *config*."""
    return subprocess.run(
        [sys.executable, "-m", "evidencekit", "capture", "--remote",
         f"{other.user}@127.0.0.1:{port}", "--host-key", pinned, "--ssh-config", str(config),
         "--ssh-identity", str(other.client_key), "--remote-command",
         other.evidencekit_command(), "-R", str(keys["recipient"]),
         "--sign-key", str(keys["signer"]), "--case", "IR-7", "-o", str(out), "--json",
         str(data)],
        env={**os.environ, "XDG_CONFIG_HOME": str(out.parent / "config"),
             "PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True, text=True, timeout=300)


def _refused_as_not_the_pinned_host(done: subprocess.CompletedProcess[str], out: Path) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    error = json.loads(done.stdout)["error"]["message"]
    assert "not the one pinned" in error and "nothing was captured" in error, error
    assert not out.exists()


def test_a_disk_that_fills_as_the_received_event_is_added_is_said_as_that(
        server: sshd_support.Sshd, notes: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    """The bundle arrives whole, then the 'received' event does not fit: the event's write was
    cut short unnoticed, and the capture was refused as a bundle that 'did not verify once its
    custody event was added' (exit 1, as for a tampered one)."""
    first = _capture(server, keys, tmp_path / "first.evidence", "--host-key",
                     server.fingerprint, notes)
    assert first.returncode == 0, first.stderr
    arrived = json.loads(first.stdout)["remote"]["bytes"]  # the same files make the same size
    out = tmp_path / "full.evidence"
    done = _capture(server, keys, out, "--host-key", server.fingerprint, notes,
                    file_size_limit=arrived)
    assert done.returncode == 2, done.stderr
    error = json.loads(done.stdout)["error"]["message"]
    assert "could not write" in error and "nothing was kept" in error, error
    assert not [n for n in os.listdir(tmp_path) if "full.evidence" in n]


def test_the_users_ssh_configuration_cannot_trust_a_key_beside_the_pinned_one(
        server: sshd_support.Sshd, keys: dict[str, Path], tmp_path: Path) -> None:
    """ssh also trusts keys from a KnownHostsCommand or (with VerifyHostKeyDNS) from DNS, when
    the user's ssh configuration says so: a host that showed the pinned key to the look-up and
    another one to ssh was captured, and the 'received' event named the pinned key."""
    with sshd_support.running() as other:  # the impostor, its own host key
        data = other.root / "notes.txt"
        data.write_text("what the impostor shows\n")
        other.owned(data)
        config = tmp_path / "ssh_config"
        config.write_text(f"KnownHostsCommand /bin/echo %H {other.host_key_line}\n"
                          "VerifyHostKeyDNS yes\n")
        with splitter(server.port, other.port) as port:
            out = tmp_path / "x.evidence"
            done = _capture_through(port, other, server.fingerprint, config, keys, out, data)
    _refused_as_not_the_pinned_host(done, out)


def _known_hosts(server: sshd_support.Sshd, tmp_path: Path, *lines: str) -> Path:
    known = tmp_path / "known_hosts"
    known.write_text("".join(f"{line}\n" for line in lines))
    return known


def test_a_host_key_marked_revoked_in_known_hosts_is_refused(
        server: sshd_support.Sshd, notes: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    """ssh refuses a key that known_hosts marks @revoked; evidencekit pins in a known_hosts of
    its own, where that mark is not: a withdrawn key that another line (or --host-key) still
    named was trusted."""
    name = f"[127.0.0.1]:{server.port}"
    known = _known_hosts(server, tmp_path, f"@revoked * {server.host_key_line}",
                         f"{name} {server.host_key_line}")
    for pinned in (("--known-hosts", known),
                   ("--known-hosts", known, "--host-key", server.fingerprint)):
        out = tmp_path / "x.evidence"
        done = _capture(server, keys, out, *pinned, notes)
        assert done.returncode == 1, done.stdout + done.stderr
        error = json.loads(done.stdout)["error"]["message"]
        assert f"({server.fingerprint}) is marked @revoked in {known}" in error, error
        assert not out.exists()


def test_a_hashed_known_hosts_entry_pins_the_host(
        server: sshd_support.Sshd, notes: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    known = _known_hosts(server, tmp_path, f"[127.0.0.1]:{server.port} {server.host_key_line}")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, capture_output=True)
    assert str(server.port) not in known.read_text()  # hashed
    out = tmp_path / "x.evidence"
    done = _capture(server, keys, out, "--known-hosts", known, notes)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["remote"]["host_key"] == server.fingerprint


def test_the_known_hosts_files_are_those_ssh_is_configured_with(
        server: sshd_support.Sshd, notes: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    """Without --known-hosts, the files ssh itself checks: a UserKnownHostsFile named in the
    ssh configuration was not read (the host 'not in known_hosts', exit 1), nor a key marked
    @revoked there."""
    known = _known_hosts(server, tmp_path, f"[127.0.0.1]:{server.port} {server.host_key_line}")
    config = tmp_path / "ssh_config"
    config.write_text(f"UserKnownHostsFile {known}\nGlobalKnownHostsFile /dev/null\n")
    done = _capture(server, keys, tmp_path / "x.evidence", "--ssh-config", config, notes)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["remote"]["host_key"] == server.fingerprint
    with known.open("a") as more:
        more.write(f"@revoked * {server.host_key_line}\n")
    out = tmp_path / "y.evidence"
    for pinned in ((), ("--host-key", server.fingerprint)):
        done = _capture(server, keys, out, "--ssh-config", config, *pinned, notes)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "is marked @revoked in" in json.loads(done.stdout)["error"]["message"]
        assert not out.exists()


def test_a_shared_ssh_connection_opened_before_is_not_used(
        server: sshd_support.Sshd, keys: dict[str, Path], tmp_path: Path) -> None:
    """With ControlMaster in the user's ssh configuration, ssh runs a command over a connection
    already open to the host (opened earlier, its key accepted then) without checking any host
    key: a connection to an impostor, opened before, carried a capture pinned to the real
    host's key, and the 'received' event named that key."""
    with sshd_support.running() as other:  # the impostor, its own host key
        data = other.root / "notes.txt"
        data.write_text("what the impostor shows\n")
        other.owned(data)
        sockets = Path(tempfile.mkdtemp(prefix="ek-mux-"))  # short: a socket path is < 108 bytes
        config = tmp_path / "ssh_config"
        config.write_text(f"ControlMaster auto\nControlPath {sockets}/%C\nControlPersist 60\n")
        with splitter(server.port, other.port) as port:
            master = subprocess.run(  # opened earlier, the impostor's key accepted then
                ["ssh", "-F", str(config), "-i", str(other.client_key), "-p", str(port),
                 "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                 "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                 f"{other.user}@127.0.0.1", "true"], capture_output=True, timeout=60)
            try:
                assert master.returncode == 0, master.stderr
                out = tmp_path / "x.evidence"
                done = _capture_through(port, other, server.fingerprint, config, keys, out, data)
            finally:
                subprocess.run(["ssh", "-F", str(config), "-p", str(port), "-O", "exit",
                                f"{other.user}@127.0.0.1"], capture_output=True, timeout=30)
                shutil.rmtree(sockets, ignore_errors=True)
    _refused_as_not_the_pinned_host(done, out)
