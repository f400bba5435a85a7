"""capture --remote against a host that lies: a compromised host runs what it likes in place of
evidencekit and answers what it likes. The real CLI against a real OpenSSH server on 127.0.0.1
(tests/support/sshd.py); the 'remote evidencekit' is a script there that changes what the real
one was asked, or what it sends back."""

from __future__ import annotations

import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evidencekit.crypto import age
from tests.support import sshd as sshd_support
from tests.support.cli import Result, run_cli


def _remote_script(server: sshd_support.Sshd, body: str) -> str:
    """A shell script on the host standing in for evidencekit; ``$EK`` runs the real one."""
    script = server.root / f"hostile-{os.urandom(4).hex()}.sh"
    script.write_text(f"#!/bin/bash\nEK={shlex.quote(server.evidencekit_command())}\n{body}\n")
    script.chmod(0o755)
    server.owned(script)
    return str(script)


def _replacing(server: sshd_support.Sshd, option: str, value: str) -> str:
    """The real evidencekit, with the value of *option* replaced by *value* (every time)."""
    return _remote_script(server, f"""args=(); swap=0
for a in "$@"; do
  if [ $swap = 1 ]; then args+=({shlex.quote(value)}); swap=0; continue; fi
  [ "$a" = {shlex.quote(option)} ] && swap=1
  args+=("$a")
done
exec $EK "${{args[@]}}\"""")


def _adding(server: sshd_support.Sshd, *more: str) -> str:
    """The real evidencekit, given *more* arguments first."""
    return _remote_script(server, f'exec $EK "$1" {shlex.join(more)} "${{@:2}}"')


def _capture(server: sshd_support.Sshd, keys: dict[str, Path], out: Path, command: str,
             *paths: object) -> Result:
    config = out.parent / "config"
    config.mkdir(exist_ok=True)
    return run_cli("capture", "--remote", server.remote, "--host-key", server.fingerprint,
                   "--ssh-identity", server.client_key, "--remote-command", command,
                   "-R", keys["recipient"], "--sign-key", keys["signer"], "--case", "IR-7",
                   "-o", out, "--json", *paths,
                   env={"XDG_CONFIG_HOME": str(config),
                        "PYTHONPATH": str(Path(__file__).parents[2])})


def _nothing_left(folder: Path, out: Path) -> None:
    assert not [n for n in os.listdir(folder) if out.name in n], os.listdir(folder)


def test_a_bundle_encrypted_to_someone_else_is_refused(
        server: sshd_support.Sshd, notes: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    stranger = str(age.X25519Identity.generate().recipient())
    out = tmp_path / "x.evidence"
    done = _capture(server, keys, out, _adding(server, "-r", stranger), notes)  # one more
    assert done.code == 1, done.stderr
    assert "not encrypted to the recipients given" in done.stderr, done.stderr
    assert "X25519, X25519 instead of X25519" in done.stderr, done.stderr
    _nothing_left(tmp_path, out)


def test_a_bundle_encrypted_to_another_ssh_key_is_refused(
        server: sshd_support.Sshd, notes: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    """An ssh-ed25519 recipient's stanza names its key: another one is seen, as age1 cannot
    be (a swapped age1 key of the same count is found by verify -i, not here)."""
    sshkeys = tmp_path / "sshkeys"
    sshkeys.mkdir()
    for name in ("mine", "theirs"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(sshkeys / name)], check=True)
    mine = (sshkeys / "mine.pub").read_text().strip()
    theirs = (sshkeys / "theirs.pub").read_text().strip()
    out = tmp_path / "x.evidence"
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    done = run_cli("capture", "--remote", server.remote, "--host-key", server.fingerprint,
                   "--ssh-identity", server.client_key,
                   "--remote-command", _replacing(server, "-r", theirs),
                   "-r", mine, "--sign-key", keys["signer"], "--case", "IR-7", "-o", out,
                   "--json", notes, env={"XDG_CONFIG_HOME": str(config),
                                         "PYTHONPATH": str(Path(__file__).parents[2])})
    assert done.code == 1, done.stderr
    assert "not encrypted to the recipients given" in done.stderr, done.stderr
    _nothing_left(tmp_path, out)


def test_a_bundle_for_another_case_is_refused(
        server: sshd_support.Sshd, notes: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x.evidence"
    done = _capture(server, keys, out, _replacing(server, "--case", "OTHER-1"), notes)
    assert done.code == 1, done.stderr
    assert "case OTHER-1, not IR-7" in done.stderr, done.stderr
    _nothing_left(tmp_path, out)


@pytest.mark.parametrize(("option", "forged", "said"), [
    ("--description", "Collected with the owner's consent", "note (the public description)"),
    ("--examiner", "Someone Else", "names the examiner 'Someone Else'")])
def test_a_bundle_whose_public_description_or_examiner_was_swapped_is_refused(
        server: sshd_support.Sshd, notes: Path, keys: dict[str, Path], tmp_path: Path,
        option: str, forged: str, said: str) -> None:
    """The capture event's note and actor name are public, in the examiner's name, and the
    investigator's 'received' was signed after them: before, exit 0."""
    out = tmp_path / "x.evidence"
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    done = run_cli("capture", "--remote", server.remote, "--host-key", server.fingerprint,
                   "--ssh-identity", server.client_key,
                   "--remote-command", _replacing(server, option, forged),
                   "-R", keys["recipient"], "--sign-key", keys["signer"], "--case", "IR-7",
                   "--description", "Seized under warrant 42", "--examiner", "Jane Examiner",
                   "-o", out, "--json", notes,
                   env={"XDG_CONFIG_HOME": str(config),
                        "PYTHONPATH": str(Path(__file__).parents[2])})
    assert done.code == 1, done.stderr
    assert "not the one asked for" in done.stderr and said in done.stderr, done.stderr
    _nothing_left(tmp_path, out)


def _sender(server: sshd_support.Sshd, mode: str) -> str:
    """tests.support.hostile_sender in *mode*, run there with the interpreter and path that run
    evidencekit there (from / : the checkout may be in a folder the login user cannot enter)."""
    python = server.evidencekit_command().rsplit(" -m evidencekit", 1)[0]
    return _remote_script(server, f'cd / && exec {python} -m '
                                  f'tests.support.hostile_sender {mode} "$@"')


def test_a_bundle_with_a_custody_history_before_it_arrived_is_refused(
        server: sshd_support.Sshd, notes: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    """A fresh capture has one custody event; a host that adds one ('transferred', in the
    investigator's name, signed by a key of its own) must not get the investigator's
    'received' signed after it."""
    out = tmp_path / "x.evidence"
    done = _capture(server, keys, out, _sender(server, "forged-custody"), notes)
    assert done.code == 1, done.stdout + done.stderr
    assert "custody log of 2 events" in done.stderr, done.stderr
    _nothing_left(tmp_path, out)


def test_a_bundle_with_a_member_more_is_refused(
        server: sshd_support.Sshd, notes: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x.evidence"
    done = _capture(server, keys, out, _sender(server, "extra-member"), notes)
    assert done.code == 1, done.stdout + done.stderr
    assert "unexpected member zz-extra.txt" in done.stderr, done.stderr
    _nothing_left(tmp_path, out)


def test_a_damaged_bundle_is_said_where_it_is_damaged_not_where_it_was_read_from(
        server: sshd_support.Sshd, notes: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    """The received file has no name yet (/proc/self/fd/N): the message named that, and said
    'no custody event was added' besides 'nothing was kept'."""
    out = tmp_path / "x.evidence"
    done = _capture(server, keys, out, _sender(server, "damaged-header"), notes)
    assert done.code == 1, done.stdout + done.stderr
    assert "does not verify (damaged tar header for member 'README.txt' at byte 100); " \
        "nothing was kept" in done.stderr, done.stderr
    assert "/proc/self" not in done.stderr
    _nothing_left(tmp_path, out)


FLOOD = 40_000_000  # bytes the host writes on its error channel
FILE_SIZE_LIMIT = 16 << 20  # the local side may write no file larger (RLIMIT_FSIZE)


def _capture_limited(server: sshd_support.Sshd, keys: dict[str, Path], out: Path,
                     command: str, *paths: object) -> subprocess.CompletedProcess[str]:
    """capture --remote --json, no file written by it or its ssh larger than FILE_SIZE_LIMIT
    (beyond it the kernel stops the writer with SIGXFSZ)."""
    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))

    config = out.parent / "config"
    config.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "evidencekit", "capture", "--remote", server.remote,
         "--host-key", server.fingerprint, "--ssh-identity", str(server.client_key),
         "--remote-command", command, "-R", str(keys["recipient"]), "--sign-key",
         str(keys["signer"]), "--case", "IR-7", "-o", str(out), "--json",
         *map(str, paths)],
        env={**os.environ, "XDG_CONFIG_HOME": str(config),
             "PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True, text=True, errors="replace", timeout=300, preexec_fn=limited)


def test_a_flood_on_the_error_channel_is_neither_stored_nor_printed_whole(
        server: sshd_support.Sshd, notes: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    flood = f'head -c {FLOOD} /dev/zero | tr "\\0" A >&2'
    out = tmp_path / "x.evidence"
    done = _capture_limited(server, keys, out, _remote_script(server, f'{flood}\nexec $EK "$@"'),
                            notes)
    assert done.returncode == 0, done.stderr[-2000:]
    messages = json.loads(done.stdout)["remote"]["messages"]
    assert len(messages) < 20 << 20 and "not kept" in messages, len(messages)
    failing = tmp_path / "failing.evidence"  # one endless line, then a failure
    done = _capture_limited(server, keys, failing, _remote_script(server, f"{flood}\nexit 2"),
                            notes)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "failed (its exit code 2)" in done.stderr and len(done.stderr) < 2000, \
        len(done.stderr)
    _nothing_left(tmp_path, failing)


def test_the_sftp_fallback_reads_a_tree_deeper_than_pythons_stack(
        server: sshd_support.Sshd, keys: dict[str, Path], tmp_path: Path) -> None:
    """1,100 folders deep (a path of 2.3 kB, as a host may have: sftp-server serves up to 4 kB):
    a recursive walk ended in 'internal error: RecursionError' (exit 5)."""
    top = server.root / f"deep-{os.urandom(4).hex()}"
    subprocess.run(["sh", "-c", 'mkdir "$1" && cd "$1" && i=0 && while [ $i -lt 1100 ]; do '
                    'mkdir d && cd d && i=$((i + 1)); done && echo found > bottom.txt',
                    "sh", str(top)], check=True)
    try:  # (os.walk and shutil.rmtree recurse too: chown and rm do not)
        subprocess.run(["chown", "-R", server.user, str(top)], check=True)
        out = tmp_path / "deep.evidence"
        done = _capture(server, keys, out, "/nonexistent", "--sftp", top)
        assert done.code == 0, done.stderr[-3000:]
        assert done.json()["seal"]["counts"]["files"] == 2  # bottom.txt and the JSON document
    finally:
        subprocess.run(["rm", "-rf", str(top)], check=True)


def test_what_the_sftp_fallback_could_not_list_makes_an_incomplete_capture(
        server: sshd_support.Sshd, notes: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    """A folder that cannot be listed was only in the JSON document inside the payload: exit 0,
    'complete', no problem said. (A path missing there was too; it is now refused before
    anything is read: test_capture_remote.test_over_sftp_a_path_not_there_is_refused.)"""
    locked = notes.parent / "locked"
    locked.mkdir()
    server.owned(locked)
    locked.chmod(0)
    out = tmp_path / "x.evidence"
    done = _capture(server, keys, out, "/nonexistent", "--sftp", locked, notes)
    assert done.code == 3, done.stderr[-3000:]
    document = done.json()
    assert document["seal"]["complete"] is False
    problems = {p["path"].rsplit("\u2215", 1)[-1]: p["problem"] for p in document["problems"]}
    assert problems == {"locked": "its contents could not be listed: permission denied"}, problems
    checked = run_cli("verify", out, "-i", keys["identity"], env={
        "XDG_CONFIG_HOME": str(tmp_path / "config")})
    assert checked.code in (0, 6), checked.stdout + checked.stderr


def test_a_stream_left_open_after_its_end_is_not_waited_for_without_end(
        server: sshd_support.Sshd, notes: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    """The whole bundle and its end frame, then the channel held open, nothing written: the
    capture waited for ever."""
    out = tmp_path / "x.evidence"
    held = _remote_script(server, '$EK "$@"; sleep 120')
    started = time.monotonic()
    done = _capture(server, keys, out, held, notes)
    assert time.monotonic() - started < 100
    assert done.code == 2, done.stderr
    assert "was not closed within 20 seconds of its end" in done.stderr, done.stderr
    _nothing_left(tmp_path, out)


def test_a_slow_capture_that_keeps_moving_is_not_given_up(
        server: sshd_support.Sshd, notes: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    """Four pieces 2 s apart, 8 s in all: longer than --stall-timeout 5, never 5 s silent, and
    each piece more than protocol.STALL_LEAST (16 KiB) of a bundle holding 100 kB of noise."""
    noise = notes.parent / "noise.bin"
    noise.write_bytes(os.urandom(100_000))
    server.owned(noise)
    out = tmp_path / "x.evidence"
    done = _capture(server, keys, out, _sender(server, "slow"), "--stall-timeout", "5", notes,
                    noise)
    assert done.code == 0, done.stderr
    assert out.exists()


# Hosts that send a bundle too slowly, or without end, and what ending them says (exit 2,
# nothing kept). Each waited for ever, or until the disk was full, before its bound:
#  stalled: half a bundle, then the channel held open, nothing sent;
#  trickle: a byte a second, in frames that follow the protocol, never 5 s silent (before
#    protocol.STALL_LEAST it was received for as long as the host liked);
#  shell-trickle: the real evidencekit's stream let through a byte every 2 s by the command;
#  remote-timeout: moving enough for --stall-timeout, but not done by --remote-timeout (the
#    deadline a playbook can rely on, whatever the host sends);
#  endless: frames in order without end.
SHELL_TRICKLE = '$EK "$@" | { head -c 100; while dd bs=1 count=1 status=none; do sleep 2; done; }'
GIVEN_UP = {
    "stalled": ("stalled", ("--stall-timeout", "5"),
                ("stopped sending (", " 5 seconds", "--stall-timeout")),
    "trickle": ("trickle", ("--stall-timeout", "5"),
                ("arrived in 5 seconds; a moving capture sends at least 16,384",)),
    "shell-trickle": (None, ("--stall-timeout", "5"), ("stopped sending (only ",)),
    "remote-timeout": ("trickle", ("--stall-timeout", "600", "--remote-timeout", "6"),
                       ("did not finish within --remote-timeout (6 seconds)",)),
    "endless": ("endless", ("--max-size", "8MiB"), ("it grew past --max-size (8 MiB)",)),
}


@pytest.mark.parametrize("case", list(GIVEN_UP))
def test_a_host_sending_too_slowly_or_without_end_is_given_up(
        server: sshd_support.Sshd, notes: Path, keys: dict[str, Path], tmp_path: Path,
        case: str) -> None:
    mode, options, said = GIVEN_UP[case]
    command = _sender(server, mode) if mode else _remote_script(server, SHELL_TRICKLE)
    out = tmp_path / "x.evidence"
    started = time.monotonic()
    done = _capture(server, keys, out, command, *options, notes)
    assert time.monotonic() - started < 60
    assert done.code == 2, done.stderr
    for words in said:
        assert words in done.stderr, done.stderr
    _nothing_left(tmp_path, out)


def test_a_problem_list_unlike_the_seal_is_said_to_be_the_hosts_word(
        server: sshd_support.Sshd, notes: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    """The problem lines come on the host's standard error, which nothing signs: an invented
    one (here, a file the host claims it could not read) does not match the count in the seal
    it signed, and the investigator is told that only verify -i shows the manifest's list."""
    line = 'evidencekit-remote-problem {"path": "/etc/shadow", "problem": "permission denied"}'
    invent = _remote_script(server, f'$EK "$@"; code=$?\necho {shlex.quote(line)} >&2\n'
                            'exit $code')
    out = tmp_path / "x.evidence"
    done = _capture(server, keys, out, invent, notes)
    assert done.code == 0, done.stderr
    document = done.json()
    assert document["problems"] == [{"path": "/etc/shadow", "problem": "permission denied"}]
    assert len(document["warnings"]) == 1, document["warnings"]
    assert "seal it signed counts 0" in document["warnings"][0]
    assert "verify -i KEY" in document["warnings"][0]
    honest = tmp_path / "honest.evidence"
    done = _capture(server, keys, honest, server.evidencekit_command(), notes)
    assert done.code == 0 and done.json()["warnings"] == [], done.stderr


def test_a_bundle_captured_before_and_sent_again_is_refused(
        server: sshd_support.Sshd, notes: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    """The host keeps the stream of a capture made while it could be trusted and sends it again
    for every capture that follows: an intact bundle, of this case, examiner and recipients,
    signed by a key made for that earlier acquisition. It was received (exit 0) as new."""
    saved = server.root / f"saved-{os.urandom(4).hex()}.stream"
    replaying = _remote_script(server, f'if [ -s {saved} ]; then cat {saved}; '
                                       f'else $EK "$@" | tee {saved}; fi')
    first = _capture(server, keys, tmp_path / "first.evidence", replaying, notes)
    assert first.code == 0, first.stderr
    received = json.loads(first.stdout)
    out = tmp_path / "again.evidence"
    done = _capture(server, keys, out, replaying, notes)
    assert done.code == 1, done.stdout + done.stderr
    assert "does not carry the request made for this capture" in done.stderr, done.stderr
    _nothing_left(tmp_path, out)
    assert received["remote"]["received_event"] == 2  # the first was taken, as it should
