"""Custody appends are atomic and exclusive (custody add, note, verify/extract --record): a full
disk or a kill at any instant leaves a bundle that verifies, with or without the new event; every
event reported as added is there; a second writer waits, then adds after the first."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.tools import require_tool, skip_or_fail

BIG_NOTE = "parcel 4411, " * 1000  # 13 KB: more than one write() of a buffered file


def _capture(folder: Path, keys: dict[str, Path], size: int, tmp_path: Path) -> Path:
    evidence = tmp_path / f"evidence-{size}"
    evidence.mkdir()
    with open(evidence / "photo.bin", "wb") as f:
        for _ in range(max(1, size >> 20)):
            f.write(os.urandom(min(size, 1 << 20)))
    bundle = folder / "case.evidence"
    made = run_cli("capture", evidence, "-R", keys["recipient"], "--sign-key", keys["signer"],
                   "-o", bundle)
    assert made.code == 0, made.stderr
    return bundle


def _events(bundle: Path) -> list[int]:
    shown = run_cli("custody", "show", bundle, "--json")
    return [e["sequence"] for e in shown.json()["custody"]]


def _verifies(bundle: Path) -> bool:
    return run_cli("verify", bundle).code == 0


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _add(bundle: Path, keys: dict[str, Path], *extra: object) -> list[str]:
    return [sys.executable, "-m", "evidencekit", "custody", "add", str(bundle), "--action",
            "transferred", "--to", "Police", "--note", BIG_NOTE, "--sign-key",
            str(keys["signer"]), *map(str, extra)]


def _temporaries(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.endswith(".partial")]


# ------------------------------------------------------------------------------- full disk
def test_a_full_disk_leaves_the_bundle_as_it_was(tmp_path: Path, keys: dict[str, Path],
                                                 home: Path) -> None:
    if os.geteuid() != 0:
        skip_or_fail("mounting a small tmpfs needs root")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)], check=True)
    try:
        bundle = _capture(small, keys, 1 << 20, tmp_path)
        before = _digest(bundle)
        with open(small / "filler", "wb", buffering=0) as filler:  # fill the disk to the brim
            for piece in (1 << 16, 4096, 1):
                try:
                    while True:
                        filler.write(b"\1" * piece)
                except OSError:
                    pass
        result = subprocess.run(_add(bundle, keys), capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert "not enough free space" in result.stderr and "left as it was" in result.stderr
        assert _digest(bundle) == before and _verifies(bundle)
        assert _temporaries(small) == []
        (small / "filler").unlink()
        again = subprocess.run(_add(bundle, keys), capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert _events(bundle) == [1, 2] and _verifies(bundle)
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


@pytest.mark.parametrize("syscall", ["copy_file_range", "write", "fsync"])
def test_a_disk_full_midway_leaves_the_bundle_as_it_was(tmp_path: Path, keys: dict[str, Path],
                                                        home: Path, syscall: str) -> None:
    """ENOSPC where the free-space check could not foresee it (another program filled the
    disk meanwhile), injected into the real system calls by strace."""
    strace = require_tool("strace")
    bundle = _capture(tmp_path, keys, 1 << 20, tmp_path)
    before = _digest(bundle)
    # The first call in the main thread (no -f), which writes the bundle: helpers it starts
    # (ldconfig) are left alone, and the error message can still be written.
    result = subprocess.run([strace, "-qq", "-o", os.devnull, "-e", f"trace={syscall}",
                             "-e", f"inject={syscall}:error=ENOSPC:when=1", *_add(bundle, keys)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert _digest(bundle) == before and _verifies(bundle)
    assert _temporaries(tmp_path) == []


# ----------------------------------------------------------------------------------- kills
@pytest.mark.parametrize("syscall", ["write", "copy_file_range", "fsync", "rename"])
def test_a_kill_at_any_write_leaves_a_bundle_that_verifies(tmp_path: Path,
                                                           keys: dict[str, Path], home: Path,
                                                           syscall: str) -> None:
    strace = require_tool("strace")
    bundle = _capture(tmp_path, keys, 1 << 20, tmp_path)
    expected = [1]
    for when in range(1, 80):
        run = subprocess.run([strace, "-qq", "-o", os.devnull, "-e", f"trace={syscall}",
                              "-e", f"inject={syscall}:signal=KILL:when={when}",
                              *_add(bundle, keys)], capture_output=True, text=True, timeout=120)
        assert _verifies(bundle), f"killed at {syscall} #{when}: the bundle no longer verifies"
        events = _events(bundle)
        assert events in (expected, [*expected, expected[-1] + 1]), events
        if run.returncode == 0:  # not killed: every call of that kind has been tried
            assert "Added custody event" in run.stdout
            assert events == [*expected, expected[-1] + 1]  # reported, so it is there
            break
        assert "Added custody event" not in run.stdout
        expected = events
        for name in _temporaries(tmp_path):  # what a kill -9 leaves: never the bundle's name
            (tmp_path / name).unlink()
    else:
        pytest.fail(f"still killed after 80 {syscall} calls")


# ----------------------------------------------------------------------- concurrent writers
def test_concurrent_writers_each_add_their_event(tmp_path: Path, keys: dict[str, Path],
                                                 home: Path) -> None:
    bundle = _capture(tmp_path, keys, 96 << 20, tmp_path)  # the check before adding takes a while
    writers = [subprocess.Popen(_add(bundle, keys), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(w.wait(timeout=300), *w.communicate()) for w in writers]
    assert all(code == 0 for code, _, _ in results), results
    assert _events(bundle) == [1, 2, 3, 4]
    assert _verifies(bundle)
    assert any("waiting" in err for _, _, err in results)  # they did meet


def test_a_waiting_writer_adds_after_the_other_one_replaced_the_bundle(
        tmp_path: Path, keys: dict[str, Path], home: Path) -> None:
    """The lock is on a file; the other writer replaces that file, so the waiting one must add
    to the new one (holding the other's event), not to the copy it first locked."""
    bundle = _capture(tmp_path, keys, 1 << 20, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with open(bundle, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # "another evidencekit command" at work
        waiter = subprocess.Popen(_add(bundle, keys), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        _wait_for_text(waiter, "waiting")
        shutil.copy(bundle, elsewhere / "case.evidence")
        assert run_cli("custody", "add", elsewhere / "case.evidence", "--action", "received",
                       "--from", "Victim", "--sign-key", keys["signer"]).code == 0
        os.replace(elsewhere / "case.evidence", bundle)  # what the other writer publishes
        time.sleep(0.3)
    _out, err = waiter.communicate(timeout=120)
    assert waiter.returncode == 0, err
    shown = run_cli("custody", "show", bundle, "--json").json()["custody"]
    assert [e["action"] for e in shown] == ["captured", "received", "transferred"]
    assert _verifies(bundle)


def _wait_for_text(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    line = ""
    while text not in line:
        assert time.monotonic() < deadline, "the second writer never said it waits"
        line = proc.stderr.readline()
        assert line or proc.poll() is None, "the second writer ended instead of waiting"


def test_a_read_only_bundle_is_not_replaced(tmp_path: Path, keys: dict[str, Path],
                                            home: Path) -> None:
    # Also as root (CI), whom the permission check let write it: it was replaced.
    bundle = _capture(tmp_path, keys, 1 << 16, tmp_path)
    bundle.chmod(0o444)
    before = bundle.read_bytes()
    result = subprocess.run(_add(bundle, keys), capture_output=True, text=True)
    assert result.returncode == 2 and "read-only" in result.stderr
    assert bundle.read_bytes() == before


def test_the_copy_keeps_mode_and_a_link_stays_a_link(tmp_path: Path, keys: dict[str, Path],
                                                     home: Path) -> None:
    bundle = _capture(tmp_path, keys, 1 << 16, tmp_path)
    bundle.chmod(0o640)
    link = tmp_path / "link.evidence"
    link.symlink_to(bundle.name)
    result = subprocess.run(_add(link, keys), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and _events(bundle) == [1, 2]
    assert bundle.stat().st_mode & 0o7777 == 0o640


def test_a_named_pipe_given_as_the_bundle_is_refused_not_waited_on(
        tmp_path: Path, keys: dict[str, Path], home: Path) -> None:
    """Taking the lock opens the file: a FIFO's open() waits for a writer that never comes (it
    hung for ever). It is refused as every reader refuses it."""
    pipe = tmp_path / "case.evidence"
    os.mkfifo(pipe)
    result = subprocess.run(_add(pipe, keys), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert "FIFO" in result.stderr and "not a bundle file" in result.stderr


def test_a_hard_link_keeps_the_old_bundle_and_that_is_said(tmp_path: Path,
                                                           keys: dict[str, Path],
                                                           home: Path) -> None:
    """An append replaces the bundle, so another name of it (a hard link, a backup made with
    cp -al) keeps the bundle as it was, whole: said, never silent."""
    bundle = _capture(tmp_path, keys, 1 << 16, tmp_path)
    other = tmp_path / "copy-for-police.evidence"
    os.link(bundle, other)
    result = subprocess.run(_add(bundle, keys), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "had another name (a hard link)" in result.stderr
    assert _events(bundle) == [1, 2] and _events(other) == [1]
    assert _verifies(other)


def test_the_copy_keeps_extended_attributes(tmp_path: Path, keys: dict[str, Path],
                                            home: Path) -> None:
    """Extended attributes (where POSIX ACLs, labels and tags live: a bundle shared with a
    colleague through an ACL) are carried over to the copy that replaces the bundle."""
    bundle = _capture(tmp_path, keys, 1 << 16, tmp_path)
    try:
        os.setxattr(bundle, "user.evidencekit-test", b"case 4411")
    except OSError:  # pragma: no cover - a file system without user attributes
        pytest.skip("this file system keeps no user extended attributes")
    result = subprocess.run(_add(bundle, keys), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert _events(bundle) == [1, 2]
    assert os.getxattr(bundle, "user.evidencekit-test") == b"case 4411"


@pytest.mark.slow  # strace holds reseal for 2 s
def test_a_reseal_while_an_event_is_added_reads_one_bundle(tmp_path: Path,
                                                            keys: dict[str, Path],
                                                            home: Path) -> None:
    """reseal read the members it carries over from one open of the bundle and verified a
    second open: an append replacing the bundle in between gave 'internal error: KeyError'
    (exit 5). strace holds reseal's second read of the bundle while the append runs."""
    strace = require_tool("strace")
    bundle = _capture(tmp_path, keys, 1 << 16, tmp_path)
    resealed = tmp_path / "resealed.evidence"
    reseal = subprocess.Popen(
        [strace, "-f", "-qq", "-o", os.devnull, "-P", str(bundle), "-e", "trace=read",
         "-e", "inject=read:delay_enter=2000000:when=2", sys.executable, "-m", "evidencekit",
         "reseal", str(bundle), "-i", str(keys["identity"]), "-R", str(keys["recipient"]),
         "--sign-key", str(keys["signer"]), "-o", str(resealed)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.2)  # reseal is held in its second read of the bundle
    added = subprocess.run(_add(bundle, keys), capture_output=True, text=True, timeout=120)
    assert added.returncode == 0, added.stderr
    _out, err = reseal.communicate(timeout=120)
    assert reseal.returncode == 0, err
    assert run_cli("verify", resealed, "-i", keys["identity"]).code == 0
    assert _events(bundle) == [1, 2] and _verifies(bundle)


def test_extract_record_that_cannot_add_its_event_says_the_folder_is_there(
        tmp_path: Path, keys: dict[str, Path], home: Path) -> None:
    """extract --record: the folder is made first, then the event added. When the event cannot
    be added (no room for the copy), the error must say that the folder was extracted: before,
    it named only the event, and a script saw exit 2 with a finished folder it knew nothing of."""
    if os.geteuid() != 0:
        skip_or_fail("mounting a small tmpfs needs root")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)], check=True)
    try:
        bundle = _capture(small, keys, 1 << 20, tmp_path)
        with open(small / "filler", "wb") as filler:  # room for less than a copy of the bundle
            filler.write(b"\1" * (os.statvfs(small).f_bavail * os.statvfs(small).f_frsize
                                  - (512 << 10)))
        opened = tmp_path / "opened"
        result = run_cli("extract", bundle, "-i", keys["identity"], "-o", opened, "--record",
                         "--sign-key", keys["signer"], "--json")
        assert result.code == 2, result.stderr
        message = result.json()["error"]["message"]
        assert f"{opened} was extracted (complete and verified), but no custody event was " \
               "added: not enough free space" in message, message
        assert (opened / "data" / f"evidence-{1 << 20}" / "photo.bin").stat().st_size == 1 << 20
        assert _events(bundle) == [1]
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
