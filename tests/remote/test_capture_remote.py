"""capture --remote against a real OpenSSH server on 127.0.0.1 (tests/support/sshd.py), logging in
a user that is not root, who runs this worktree's evidencekit there (--remote-command)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from evidencekit.crypto.keys import load_public_key_file
from evidencekit.format.documents import custody_member
from tests.support import sshd as sshd_support
from tests.support.bundles import contents
from tests.support.by_hand import by_hand, passed, toolbox_in
from tests.support.cli import run_cli
from tests.support.schemas import assert_valid
from tests.support.writing import writes_into


@pytest.fixture
def remote_tree(server: sshd_support.Sshd) -> Iterator[Path]:
    """Files on the 'remote host', owned by the login user."""
    folder = server.root / f"data-{os.urandom(4).hex()}"
    (folder / "logs").mkdir(parents=True)
    (folder / "logs" / "auth.log").write_bytes(b"Dec  7 sshd[1]: Accepted publickey\n" * 100)
    (folder / "notes.txt").write_text("what the admin saw\n")
    (folder / "big.bin").write_bytes(os.urandom(3 << 20))
    server.owned(folder)
    yield folder


def _env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    return {"XDG_CONFIG_HOME": str(config), "PYTHONPATH": str(Path(__file__).parents[2])}


def _capture(server: sshd_support.Sshd, keys: dict[str, Path], out: Path, *paths: object,
             host_key: str | None = None, command: str | None = None,
             extra: tuple[str, ...] = ()) -> object:
    return run_cli("capture", "--remote", server.remote, "--host-key",
                   host_key or server.fingerprint, "--ssh-identity", server.client_key,
                   "--remote-command", command or server.evidencekit_command(),
                   "-R", keys["recipient"], "--sign-key", keys["signer"], "--case", "IR-7",
                   "-o", out, "--json", *extra, *paths,
                   env=_env(out.parent))


def test_a_remote_capture_arrives_verified_with_a_received_event(
        server: sshd_support.Sshd, remote_tree: Path, keys: dict[str, Path],
        tmp_path: Path) -> None:
    out = tmp_path / "web-17.evidence"
    done = _capture(server, keys, out, remote_tree / "logs", remote_tree / "notes.txt",
                    remote_tree / "big.bin")
    assert done.code == 0, done.stderr
    document = done.json()
    assert_valid(document, "capture")
    remote = document["remote"]
    assert remote["host_key"] == server.fingerprint
    assert remote["received_event"] == 2
    assert document["seal"]["complete"] is True and document["problems"] == []
    # verified here, with the investigator's key, by the real command
    checked = run_cli("verify", out, "-i", keys["identity"], "--json", env=_env(tmp_path))
    assert checked.code in (0, 6), checked.stdout + checked.stderr  # 6: the remote's own key
    report = checked.json()
    assert report["ok"] is True
    members = dict((name, data) for name, data, _ in contents(out))
    event = members[custody_member(2)]
    received = json.loads(event)
    assert received["action"] == "received"
    assert received["details"]["host_key"] == server.fingerprint
    assert received["details"]["bytes"] == str(remote["bytes"])
    assert "serve-capture" in received["details"]["command"]
    assert "route" not in received["details"]  # a direct connection: no bastion named
    # signed here, by the investigator's key; the seal by a key made for this acquisition
    investigator = load_public_key_file(keys["signer_pub"]).fingerprint
    assert received["actor"]["fingerprint"] == investigator
    assert received["details"]["remote_signer"] != investigator
    assert received["details"]["remote_signer"] == remote["signer"]
    assert received["details"]["recipients_checked"] == remote["recipients_checked"]
    assert "1 age1 (X25519) not by key" in remote["recipients_checked"]  # said, not hidden
    # no plaintext of the evidence in the bundle
    assert b"what the admin saw" not in out.read_bytes()
    assert b"Accepted publickey" not in out.read_bytes()
    # extract gives the files back as they were
    extracted = tmp_path / "x"
    done = run_cli("extract", out, "-i", keys["identity"], "-o", extracted, env=_env(tmp_path))
    assert done.code in (0, 6), done.stderr
    report = tmp_path / "report.html"
    done = run_cli("report", out, "-i", keys["identity"], "-o", report, env=_env(tmp_path))
    assert done.code in (0, 6), done.stderr
    assert "received over SSH from the host key " + server.fingerprint in report.read_text()
    found = list(extracted.rglob("notes.txt"))
    assert found and found[0].read_text() == "what the admin saw\n"


def test_a_wrong_host_key_is_refused_before_anything(
        server: sshd_support.Sshd, remote_tree: Path, keys: dict[str, Path],
        tmp_path: Path) -> None:
    out = tmp_path / "x.evidence"
    wrong = "SHA256:" + "A" * 43
    done = _capture(server, keys, out, remote_tree / "notes.txt", host_key=wrong)
    assert done.code == 1, done.stderr
    assert "is not the one given" in done.stderr
    assert server.fingerprint in done.stderr  # what it offers, to compare by phone
    assert not list(tmp_path.glob("*.evidence*")) and not list(tmp_path.glob(".x.evidence*"))


def test_a_host_missing_from_known_hosts_is_refused(
        server: sshd_support.Sshd, remote_tree: Path, keys: dict[str, Path],
        tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{server.port} {_other_key_line(tmp_path)}\n")
    out = tmp_path / "x.evidence"
    done = run_cli("capture", "--remote", server.remote, "--known-hosts", known,
                   "--ssh-identity", server.client_key, "--remote-command", server.evidencekit_command(),
                   "-R", keys["recipient"], "--sign-key", keys["signer"], "-o", out,
                   remote_tree / "notes.txt", env=_env(tmp_path))
    assert done.code == 1, done.stderr
    assert "CHANGED" in done.stderr
    assert not out.exists()
    known.write_text(f"[127.0.0.1]:{server.port} {server.host_key_line}\n")
    done = run_cli("capture", "--remote", server.remote, "--known-hosts", known,
                   "--ssh-identity", server.client_key, "--remote-command", server.evidencekit_command(),
                   "-R", keys["recipient"], "--sign-key", keys["signer"], "-o", out,
                   remote_tree / "notes.txt", env=_env(tmp_path))
    assert done.code == 0, done.stderr
    assert out.exists()


def _other_key_line(tmp_path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(tmp_path / "other")], check=True)
    return " ".join((tmp_path / "other.pub").read_text().split()[:2])


# How the stream is cut 200 kB in (the remote command passes that much on, then):
CUTS = {
    # ... exits 0, as a remote end that stopped writing would: the end frame never comes
    "stream ends": ("", "did not arrive whole"),
    # ... the remote shell is killed (SIGKILL): ssh reports the remote command's death
    "remote command killed": ("; kill -9 $PPID; sleep 2", "could not capture over SSH"),
}
@pytest.mark.parametrize("how", sorted(CUTS))
def test_a_stream_cut_mid_way_leaves_nothing(
        how: str, server: sshd_support.Sshd, remote_tree: Path, keys: dict[str, Path],
        tmp_path: Path) -> None:
    then, said = CUTS[how]
    cut = server.root / f"cut-{os.urandom(4).hex()}.sh"
    cut.write_text(f"#!/bin/sh\n{server.evidencekit_command()} \"$@\" | {{ head -c 200000{then}; }}\n")
    cut.chmod(0o755)
    server.owned(cut)
    out = tmp_path / "cut.evidence"
    done = _capture(server, keys, out, remote_tree / "big.bin", command=str(cut))
    assert done.code == 2, done.stderr
    assert said in done.stderr and "nothing was kept" in done.stderr, done.stderr
    assert not [n for n in os.listdir(tmp_path) if "cut.evidence" in n]  # nor a temporary file


def test_a_remote_capture_that_fails_says_why_with_its_exit_code(
        server: sshd_support.Sshd, keys: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x.evidence"
    done = _capture(server, keys, out, "/no/such/place")
    assert done.code == 2, done.stderr
    assert "failed (its exit code 2)" in done.stderr
    assert "/no/such/place" in done.stderr  # the remote evidencekit's own message
    assert not out.exists()


def test_no_evidencekit_there_reads_the_files_over_sftp_labelled_remote_logical(
        server: sshd_support.Sshd, remote_tree: Path, keys: dict[str, Path],
        tmp_path: Path) -> None:
    out = tmp_path / "sftp.evidence"
    done = _capture(server, keys, out, remote_tree, command="/nonexistent/evidencekit")
    assert done.code == 0, done.stderr
    assert "reading the files over SFTP instead" in done.stderr
    document = done.json()
    assert_valid(document, "capture")
    assert document["remote_logical"]["host_key"] == server.fingerprint
    assert "ctime (change time)" in document["remote_logical"]["not_recorded"]
    assert b"what the admin saw" not in out.read_bytes()
    opened = tmp_path / "opened"
    done = run_cli("extract", out, "-i", keys["identity"], "-o", opened, "--as-stored",
                   env=_env(tmp_path))
    assert done.code in (0, 6), done.stderr
    data = next(opened.rglob("data"))
    names = sorted(p.name for p in data.iterdir())
    flat = "127.0.0.1." + str(remote_tree).strip("/").replace("/", "\u2215")
    assert f"{flat}\u2215notes.txt" in names and f"{flat}\u2215logs\u2215auth.log" in names
    assert all(p.is_file() for p in data.iterdir())  # flat: no folder the manifest lacks
    assert (data / f"{flat}\u2215big.bin").read_bytes() == (remote_tree / "big.bin").read_bytes()
    described = json.loads((data / "127.0.0.1.remote-logical.json").read_text())
    assert_valid(described, "remote-logical")
    kinds = {item["path"]: item["type"] for item in described["items"]}
    assert kinds[str(remote_tree / "logs")] == "directory"
    assert kinds[str(remote_tree / "notes.txt")] == "file"
    manifest = json.loads(next(opened.rglob("manifest.json")).read_text())
    assert [s["kind"] for s in manifest["sources"]] == ["remote-logical"]
    report = tmp_path / "report.html"
    done = run_cli("report", out, "-i", keys["identity"], "-o", report, env=_env(tmp_path))
    assert done.code in (0, 6), done.stderr
    assert "REMOTE-LOGICAL: files read over SFTP" in report.read_text()
    # the by-hand procedure of FORMAT.md §7.2 accepts it, and a bundle made there too
    toolbox = toolbox_in(tmp_path / "toolbox")
    passed(by_hand(toolbox, out, "-i", keys["identity"]))


def test_the_bundle_made_there_verifies_by_hand(
        server: sshd_support.Sshd, remote_tree: Path, keys: dict[str, Path],
        tmp_path: Path) -> None:
    profile = remote_tree / "logs.yaml"  # a profile on the remote host, read there
    profile.write_text("name: logs\ndescription: The logs\ntargets:\n  - name: logs\n"
                       f"    linux: ['{remote_tree}/logs']\n")
    server.owned(profile)
    out = tmp_path / "there.evidence"
    done = _capture(server, keys, out, remote_tree / "notes.txt", extra=("--profile", str(profile)))
    assert done.code == 0, done.stderr
    assert done.json()["seal"]["counts"]["files"] == 2  # notes.txt and logs/auth.log
    passed(by_hand(toolbox_in(tmp_path / "toolbox"), out, "-i", keys["identity"]))


def test_what_a_profile_does_not_find_there_is_said_here(
        server: sshd_support.Sshd, remote_tree: Path, keys: dict[str, Path],
        tmp_path: Path) -> None:
    """A local capture lists a profile's paths not present (stderr, profile.missing); a remote
    one said nothing of them, anywhere."""
    profile = remote_tree / "gone.yaml"
    profile.write_text("name: gone\ndescription: Logs, one gone\ntargets:\n  - name: logs\n"
                       f"    linux: ['{remote_tree}/logs', '{remote_tree}/no-such-log']\n")
    server.owned(profile)
    out = tmp_path / "gone.evidence"
    done = _capture(server, keys, out, extra=("--profile", str(profile)))
    assert done.code == 0, done.stderr
    said = " ".join(done.json()["remote"]["messages"].split())
    assert "1 not present here" in said and f"{remote_tree}/no-such-log" in said, said


@pytest.mark.parametrize("there", [(), ("notes.txt",)])
def test_over_sftp_a_path_not_there_is_refused(
        server: sshd_support.Sshd, remote_tree: Path, keys: dict[str, Path],
        tmp_path: Path, there: tuple[str, ...]) -> None:
    """Refused as a local capture and evidencekit there refuse it ('source not found'): all
    absent made a bundle holding nothing but the JSON document (exit 3), one absent among
    others was recorded and the capture went on (exit 3)."""
    out = tmp_path / "none.evidence"
    done = _capture(server, keys, out, *(remote_tree / name for name in there),
                    remote_tree / "gone", "/no/such/path", extra=("--sftp",))
    assert done.code == 2, done.stderr
    message = done.json()["error"]["message"]
    assert message == (f"not found on {server.remote}: {remote_tree}/gone, /no/such/path; "
                       "nothing was kept"), message
    assert not [n for n in os.listdir(tmp_path) if out.name in n]


def test_an_evidencekit_of_another_version_there_is_said_to_be_one(
        server: sshd_support.Sshd, remote_tree: Path, keys: dict[str, Path],
        tmp_path: Path) -> None:
    """Found in a walkthrough with a host installed a day earlier: 'the capture failed (its
    exit code 2): Error: No such option '--request'. Did you mean '--recipient'?', with the
    hint 'what follows the exit code is what evidencekit said there'."""
    older = server.root / f"older-{os.urandom(4).hex()}.sh"  # click's answer, as 0.1 gave it
    older.write_text("#!/bin/sh\necho \"Usage: evidencekit serve-capture [OPTIONS] [SOURCES]...\""
                     " >&2\necho \"Error: No such option '--request'. Did you mean "
                     "'--recipient'?\" >&2\nexit 2\n")
    older.chmod(0o755)
    server.owned(older)
    out = tmp_path / "skew.evidence"
    done = _capture(server, keys, out, remote_tree / "notes.txt", command=str(older))
    assert done.code == 2, done.stderr
    error = done.json()["error"]
    assert "does not understand this one's request" in error["message"], error
    assert "it is another version" in error["message"]
    assert "install the same evidencekit version there as here" in error["hint"]
    assert not [n for n in os.listdir(tmp_path) if out.name in n]


def test_a_host_named_by_an_alias_of_the_ssh_configuration_is_captured(
        server: sshd_support.Sshd, remote_tree: Path, keys: dict[str, Path],
        tmp_path: Path) -> None:
    """README: ssh logs in 'with your ~/.ssh/config (--ssh-config FILE)'; a Host alias was
    scanned for its key as 'web-17' port 22: 'cannot reach an SSH server at web-17 port 22'."""
    config = tmp_path / "ssh_config"
    config.write_text(f"Host web-17\n    HostName 127.0.0.1\n    Port {server.port}\n"
                      f"    IdentityFile {server.client_key}\n")
    for option in ((), ("--sftp",)):
        out = tmp_path / f"alias{len(option)}.evidence"
        done = run_cli("capture", "--remote", f"{server.user}@web-17", "--host-key",
                       server.fingerprint, "--ssh-config", config, "--remote-command",
                       server.evidencekit_command(), "-R", keys["recipient"], "--sign-key", keys["signer"],
                       "-o", out, "--json", *option, remote_tree / "notes.txt",
                       env=_env(tmp_path))
        assert done.code == 0, done.stderr
        if option:
            assert done.json()["remote_logical"]["host_key"] == server.fingerprint
        else:
            assert done.json()["remote"]["host_key"] == server.fingerprint


def test_the_fallback_to_sftp_is_said_once(server: sshd_support.Sshd, remote_tree: Path,
                                          keys: dict[str, Path], tmp_path: Path) -> None:
    """Said before the files were read, then again among the capture's warnings."""
    out = tmp_path / "sftp.evidence"
    done = run_cli("capture", "--remote", server.remote, "--host-key", server.fingerprint,
                   "--ssh-identity", server.client_key, "--remote-command",
                   "/nonexistent/evidencekit", "-R", keys["recipient"], "--sign-key",
                   keys["signer"], "-o", out, remote_tree / "notes.txt", env=_env(tmp_path))
    assert done.code == 0, done.stderr
    assert done.stderr.count("reading the files over SFTP instead") == 1, done.stderr
    # '0 folders, 0 symbolic links' counts the bag's entries: where the others are is said
    said = " ".join(done.stderr.split())
    assert "folders, symbolic links and other items are not counted above but recorded" in said
    assert "remote-logical.json" in said


def test_one_file_received_is_one_file(server: sshd_support.Sshd, remote_tree: Path,
                                       keys: dict[str, Path], tmp_path: Path) -> None:
    """It said '1 files; sealed there…'."""
    out = tmp_path / "one.evidence"
    done = run_cli("capture", "--remote", server.remote, "--host-key", server.fingerprint,
                   "--ssh-identity", server.client_key, "--remote-command", server.evidencekit_command(),
                   "-R", keys["recipient"], "--sign-key", keys["signer"], "-o", out,
                   remote_tree / "notes.txt", env=_env(tmp_path))
    assert done.code == 0, done.stderr
    assert "  1 file; sealed there" in done.stdout, done.stdout


def test_what_sftp_cannot_read_makes_an_incomplete_capture(
        server: sshd_support.Sshd, remote_tree: Path, keys: dict[str, Path],
        tmp_path: Path) -> None:
    (remote_tree / "secret").write_text("root only")
    (remote_tree / "secret").chmod(0)
    out = tmp_path / "part.evidence"
    done = _capture(server, keys, out, remote_tree / "secret", remote_tree / "notes.txt",
                    extra=("--sftp",))
    assert done.code == 3, done.stderr
    problems = done.json()["problems"]
    assert any("secret" in p["path"] and "permission denied" in p["problem"]
               for p in problems), problems


def test_a_remote_capture_of_something_unreadable_is_incomplete(
        server: sshd_support.Sshd, remote_tree: Path, keys: dict[str, Path],
        tmp_path: Path) -> None:
    (remote_tree / "secret").write_text("root only")
    (remote_tree / "secret").chmod(0)
    out = tmp_path / "part.evidence"
    done = _capture(server, keys, out, remote_tree / "secret", remote_tree / "notes.txt")
    assert done.code == 3, done.stderr
    problems = done.json()["problems"]
    assert any(p["path"].endswith("secret") for p in problems), problems
    assert done.json()["warnings"] == []  # the host's list matches the count in its seal
    assert out.exists()


def test_the_live_state_is_collected_there(
        server: sshd_support.Sshd, remote_tree: Path, keys: dict[str, Path],
        tmp_path: Path) -> None:
    out = tmp_path / "live.evidence"
    done = _capture(server, keys, out, remote_tree / "notes.txt", extra=("--live",))
    assert done.code == 0, done.stderr
    opened = tmp_path / "opened"
    done = run_cli("extract", out, "-i", keys["identity"], "-o", opened, "--as-stored",
                   env=_env(tmp_path))
    assert done.code in (0, 6), done.stderr
    data = next(opened.rglob("data"))
    processes = json.loads((data / "live.04-processes.json").read_text())
    # the processes of the remote host's session, among them the capture itself
    assert any("serve-capture" in " ".join(p.get("cmdline") or []) for p in
               processes["processes"]), "the remote capture's own process is missing"


def _capture_stalled_mid_stream(server: sshd_support.Sshd, remote_tree: Path,
                                keys: dict[str, Path], out: Path,
                                *extra: str) -> subprocess.Popen[str]:
    """A capture into *out* whose host sends 1.5 MB (more than the 1 MiB the receiver gathers
    before its first write straight to disk, fs.direct), then nothing for 10 s; returned once
    bytes are in the file."""
    stall = server.root / f"stall-{os.urandom(4).hex()}.sh"
    stall.write_text(f"#!/bin/sh\n{server.evidencekit_command()} \"$@\" | "
                     "{ head -c 1500000; sleep 10; cat; }\n")
    stall.chmod(0o755)
    server.owned(stall)
    process = subprocess.Popen(
        [sys.executable, "-m", "evidencekit", "capture", "--remote", server.remote, "--host-key",
         server.fingerprint, "--ssh-identity", str(server.client_key), "--remote-command",
         str(stall), "-R", str(keys["recipient"]), "--sign-key", str(keys["signer"]), "-o",
         str(out), *extra, str(remote_tree / "big.bin")],
        env={**os.environ, **_env(out.parent)}, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not writes_into(process.pid, out.parent, nonempty=True):  # bytes arrive
        assert process.poll() is None and time.monotonic() < deadline, "nothing arrived"
        time.sleep(0.05)
    return process


# A ProxyCommand: the bytes of ssh's standard input to HOST PORT, and back (one process)
RELAY = """import os, socket, sys, threading
link = socket.create_connection((sys.argv[1], int(sys.argv[2])))
def up():
    while data := os.read(0, 1 << 16):
        link.sendall(data)
    link.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
while data := link.recv(1 << 16):
    os.write(1, data)
"""


@pytest.mark.parametrize("proxied", [False, True])
def test_an_interrupt_mid_stream_leaves_nothing_and_stops_ssh(
        server: sshd_support.Sshd, remote_tree: Path, keys: dict[str, Path],
        tmp_path: Path, proxied: bool) -> None:
    """ssh, and what it started: a ProxyCommand (an ``ssh -W`` to a bastion, here a relay of
    bash's) outlived an ssh stopped alone."""
    extra: tuple[str, ...] = ()
    if proxied:
        relay = tmp_path / "relay.py"
        relay.write_text(RELAY)
        config = tmp_path / "ssh_config"
        config.write_text(f"Host 127.0.0.1\n    ProxyCommand {sys.executable} {relay} %h %p\n")
        extra = ("--ssh-config", str(config))
    out = tmp_path / "stopped.evidence"
    process = _capture_stalled_mid_stream(server, remote_tree, keys, out, *extra)
    started = psutil.Process(process.pid).children(recursive=True)
    assert any(p.name() == "ssh" for p in started), started
    assert not proxied or any("relay.py" in " ".join(p.cmdline()) for p in started), started
    process.send_signal(signal.SIGINT)
    _, said = process.communicate(timeout=20)
    assert process.returncode == 130, said
    assert "interrupted; nothing was written" in said
    assert not [n for n in os.listdir(tmp_path) if "stopped.evidence" in n]
    _, alive = psutil.wait_procs(started, timeout=5)
    assert not alive, f"left running: {alive}"


def test_an_interrupt_while_a_proxy_command_stalls_stops_it_too(
        server: sshd_support.Sshd, remote_tree: Path, keys: dict[str, Path],
        tmp_path: Path) -> None:
    """The host key asked through the ProxyCommand, then the capture's own connection stalled
    in it (a bastion that stops answering) and Ctrl-C: ssh, stopped before it logged in, died
    alone and the ProxyCommand ran on."""
    relay = tmp_path / "relay.py"
    stalled = tmp_path / "stalled"
    relay.write_text(f"import os, sys, time\nif os.path.exists({str(tmp_path / 'asked')!r}):\n"
                     f"    open({str(stalled)!r}, 'w').close()\n    time.sleep(300)\n"
                     f"open({str(tmp_path / 'asked')!r}, 'w').close()\n{RELAY}")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host 127.0.0.1\n    ProxyCommand {sys.executable} {relay} %h %p\n")
    out = tmp_path / "stopped.evidence"
    process = subprocess.Popen(
        [sys.executable, "-m", "evidencekit", "capture", "--remote", server.remote, "--host-key",
         server.fingerprint, "--ssh-identity", str(server.client_key), "--ssh-config",
         str(config), "--remote-command", server.evidencekit_command(), "-R",
         str(keys["recipient"]), "--sign-key", str(keys["signer"]), "-o", str(out),
         str(remote_tree / "notes.txt")],
        env={**os.environ, **_env(tmp_path)}, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not stalled.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr
        time.sleep(0.05)
    started = psutil.Process(process.pid).children(recursive=True)
    assert any("relay.py" in " ".join(p.cmdline()) for p in started), started
    process.send_signal(signal.SIGINT)
    _, said = process.communicate(timeout=30)
    assert process.returncode == 130, said
    _, alive = psutil.wait_procs(started, timeout=5)
    assert not alive, f"left running: {alive}"


def test_a_connection_dropped_mid_stream_leaves_nothing(
        server: sshd_support.Sshd, remote_tree: Path, keys: dict[str, Path],
        tmp_path: Path) -> None:
    out = tmp_path / "dropped.evidence"
    before = set(psutil.Process(server.process.pid).children(recursive=True))
    process = _capture_stalled_mid_stream(server, remote_tree, keys, out)
    # the server's processes for this connection die, its TCP socket with them: the link is gone
    for started in set(psutil.Process(server.process.pid).children(recursive=True)) - before:
        with contextlib.suppress(psutil.NoSuchProcess):
            started.kill()
    _, said = process.communicate(timeout=60)
    assert process.returncode == 2, said
    assert "could not capture over SSH" in said and "nothing was kept" in said, said
    assert not [n for n in os.listdir(tmp_path) if "dropped.evidence" in n]
