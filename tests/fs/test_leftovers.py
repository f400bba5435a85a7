"""What a writer killed outright (kill -9) leaves beside its output (evidencekit.fs.leftovers):
nothing where files without a name can be made (tmpfs, ext4); on FAT and exFAT sticks a hidden
``.NAME.PID.XXXXXXXX.evidencekit.partial`` that the next command writing there removes, never
one whose writer still runs, nor a file only named like one. Real SIGKILLs, injected into real
write() calls by strace."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from evidencekit import fs
from evidencekit.fs.leftovers import Leftover, clean
from tests.support.cli import run_cli
from tests.support.mounts import KINDS, mounted, tmpfs
from tests.support.tools import require_tool

OURS = re.compile(r"\.case\.evidence\.[0-9]+\.[a-z0-9_]{8}\.evidencekit\.partial")


def _evidence(tmp_path: Path, photo: int = 2 << 20) -> Path:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "photo.bin").write_bytes(os.urandom(photo))
    (evidence / "chat.txt").write_text("pay now\n")
    return evidence


def _capture(evidence: Path, keys: dict[str, Path], output: Path) -> list[str]:
    return [sys.executable, "-m", "evidencekit", "capture", str(evidence), "-R",
            str(keys["recipient"]), "--sign-key", str(keys["signer"]), "-o", str(output)]


def _add(bundle: Path, keys: dict[str, Path]) -> list[str]:
    return [sys.executable, "-m", "evidencekit", "custody", "add", str(bundle), "--action",
            "transferred", "--to", "Police", "--note", "x" * 20000, "--sign-key",
            str(keys["signer"])]


def _killed_at_write(command: list[str], when: int, syscall: str = "pwrite64") -> None:
    """Run *command*, killed with SIGKILL at the *when*-th *syscall* of one of its threads
    (strace counts each thread's calls apart): capture writes the bundle's payload with
    pwrite64 from more than one thread (the O_DIRECT stages have a thread of their own)."""
    strace = require_tool("strace")
    done = subprocess.run([strace, "-f", "-qq", "-o", os.devnull, "-e", f"trace={syscall}",
                           "-e", f"inject={syscall}:signal=KILL:when={when}", *command],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, (done.returncode, done.stderr)


@pytest.mark.parametrize("where", ["tmpfs", "disk"])
def test_a_capture_killed_mid_write_leaves_nothing(tmp_path: Path, keys: dict[str, Path],
                                                  home: Path, where: str) -> None:
    # 6 MiB: enough that one thread writes the payload more than once (2 MiB, written by
    # three threads once each, ended the capture before any second write: nothing was killed)
    evidence = _evidence(tmp_path, 6 << 20)
    if where == "tmpfs":
        with tmpfs(tmp_path) as ram:
            _killed_at_write(_capture(evidence, keys, ram / "case.evidence"), 2)
            assert os.listdir(ram) == []
    else:
        folder = tmp_path / "out"
        folder.mkdir()
        _killed_at_write(_capture(evidence, keys, folder / "case.evidence"), 2)
        assert os.listdir(folder) == []


def test_a_custody_add_killed_mid_write_leaves_nothing(tmp_path: Path, keys: dict[str, Path],
                                                      home: Path) -> None:
    with tmpfs(tmp_path) as ram:
        bundle = ram / "case.evidence"
        assert run_cli(*_capture(_evidence(tmp_path), keys, bundle)[3:]).code == 0
        before = bundle.read_bytes()
        _killed_at_write(_add(bundle, keys), 1, "fsync")
        assert os.listdir(ram) == ["case.evidence"] and bundle.read_bytes() == before


@pytest.mark.parametrize("kind", KINDS)
def test_a_capture_killed_on_a_stick_leaves_a_file_the_next_run_removes(
        tmp_path: Path, keys: dict[str, Path], home: Path, kind: str) -> None:
    evidence = _evidence(tmp_path)
    with mounted(kind, tmp_path) as stick:
        bundle = stick / "case.evidence"
        _killed_at_write(_capture(evidence, keys, bundle), 1, "fsync")  # written whole
        left = os.listdir(stick)
        assert len(left) == 1 and OURS.fullmatch(left[0]), left  # hidden, never the name
        again = run_cli(*_capture(evidence, keys, bundle)[3:])
        assert again.code == 0, again.stderr
        assert f"Removed {stick / left[0]}" in " ".join(again.stderr.split())
        assert os.listdir(stick) == ["case.evidence"]
        assert run_cli("verify", bundle).code == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_custody_add_killed_on_a_stick_keeps_the_bundle_and_is_cleaned_up(
        tmp_path: Path, keys: dict[str, Path], home: Path, kind: str) -> None:
    with mounted(kind, tmp_path) as stick:
        bundle = stick / "case.evidence"
        assert run_cli(*_capture(_evidence(tmp_path), keys, bundle)[3:]).code == 0
        before = bundle.read_bytes()
        _killed_at_write(_add(bundle, keys), 1, "fsync")
        assert bundle.read_bytes() == before and run_cli("verify", bundle).code == 0
        left = [name for name in os.listdir(stick) if name != "case.evidence"]
        assert len(left) == 1 and OURS.fullmatch(left[0]), left
        added = run_cli(*_add(bundle, keys)[3:])
        assert added.code == 0, added.stderr
        assert "Removed" in added.stderr
        assert os.listdir(stick) == ["case.evidence"]


def test_a_file_being_written_has_no_name(tmp_path: Path) -> None:
    final = tmp_path / "report.html"
    with fs.staged(final, 0o640) as stage:
        stage.file.write(b"<p>case</p>")
        stage.file.flush()
        assert os.listdir(tmp_path) == [] and str(stage.path).startswith("/proc/self/fd/")
        with open(stage.path, "rb") as again:  # readable by its name while written (export)
            assert again.read() == b"<p>case</p>"
    assert final.read_bytes() == b"<p>case</p>"
    assert final.stat().st_mode & 0o777 == 0o640 and os.listdir(tmp_path) == ["report.html"]


def test_a_file_replaced_through_a_file_without_a_name(tmp_path: Path) -> None:
    final = tmp_path / "case.evidence"
    final.write_bytes(b"old")
    with fs.staged(final, 0o600, replace=True) as stage:
        stage.file.write(b"new")
        assert os.listdir(tmp_path) == ["case.evidence"]
    assert final.read_bytes() == b"new" and os.listdir(tmp_path) == ["case.evidence"]


def test_a_file_being_written_is_never_published_over_another(tmp_path: Path) -> None:
    final = tmp_path / "key"
    with pytest.raises(FileExistsError), fs.staged(final) as stage:
        stage.file.write(b"mine")
        final.write_bytes(b"someone else's")
    assert final.read_bytes() == b"someone else's" and os.listdir(tmp_path) == ["key"]


_WRITER = ("import sys, time\nfrom pathlib import Path\nfrom evidencekit import fs\n"
           "with fs.staged(Path(sys.argv[1]), named=True) as stage:\n"
           "    print(stage.path, flush=True)\n    time.sleep(60)\n")


def test_only_a_leftover_whose_writer_is_dead_is_removed(tmp_path: Path) -> None:
    final = tmp_path / "case.evidence"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(final)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        temporary = Path(writer.stdout.readline().strip())
        assert OURS.fullmatch(temporary.name) and str(writer.pid) in temporary.name
        assert clean(final) == [] and temporary.exists()  # its writer is at work
    finally:
        writer.kill()
        writer.wait()
    told: list[Leftover] = []
    fs.leftovers.listen(told.append)
    try:
        assert clean(final) == [Leftover(temporary, removed=True)] == told
    finally:
        fs.leftovers.listen(None)
    assert os.listdir(tmp_path) == []


def test_a_leftover_of_an_older_evidencekit_is_named_not_removed(tmp_path: Path) -> None:
    older = tmp_path / ".case.evidence.k2j9x_aq.partial"
    older.write_bytes(b"half a bundle")
    (tmp_path / ".other.evidence.k2j9x_aq.partial").write_bytes(b"another output's")
    assert clean(tmp_path / "case.evidence") == [Leftover(older, removed=False)]
    assert older.exists()


def test_a_folder_or_another_users_file_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / ".case.evidence.999999999.abcdefgh.partial").mkdir()  # (extract's are folders)
    assert clean(tmp_path / "case.evidence") == []
    assert (tmp_path / ".case.evidence.999999999.abcdefgh.partial").is_dir()


def _no_such_process() -> int:
    """A process id that no process has now."""
    pid = 4_000_000  # above pid_max's default (4,194,304 at most): checked, not assumed
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


@pytest.mark.parametrize("name", [".notes.{pid}.december.partial",  # a person's own file
                                  ".case.{pid}.k2j9x_aq.partial"])  # an older evidencekit's,
def test_a_file_only_named_like_a_leftover_is_never_removed(tmp_path: Path, name: str) -> None:
    """Only what evidencekit itself names as its unfinished file is removed: a person's hidden
    file whose name happens to read as NAME.NUMBER.EIGHT-LETTERS.partial, or the leftover of an
    evidencekit from before the process id for an output named "case.NUMBER" (which cannot be
    judged), stays where it is, whatever output is written beside it."""
    mine = tmp_path / name.format(pid=_no_such_process())
    mine.write_bytes(b"my own notes")
    clean(tmp_path / "case.evidence")
    clean(tmp_path / mine.name.split(".")[1])
    assert mine.read_bytes() == b"my own notes"


_E01_WRITER = ("import os, signal, sys\nfrom pathlib import Path\n"
               "from evidencekit.fs import leftovers\n"
               "output = Path(sys.argv[1])\n"
               "folder = output.parent / (leftovers.prefix_for(output) + 'a1b2c3d4e5f6'"
               " + leftovers.E01_SUFFIX)\n"
               "os.mkdir(folder, 0o700)\n(folder / 'image.E01').write_bytes(b'decrypted')\n"
               "print(folder, flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n")


def test_the_folder_of_an_e01_export_killed_outright_is_removed(tmp_path: Path) -> None:
    output = tmp_path / "stick.E01"
    done = subprocess.run([sys.executable, "-c", _E01_WRITER, str(output)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == -9, done.stderr
    left = Path(done.stdout.strip())
    assert left.is_dir()
    mine = tmp_path / f"{fs.leftovers.prefix_for(output)}0123456789ab{fs.leftovers.E01_SUFFIX}"
    mine.mkdir(mode=0o700)  # this process's: at work
    assert clean(output) == [Leftover(left, removed=True)]
    assert not left.exists() and mine.is_dir()


def _writers(bundle: Path, keys: dict[str, Path], folder: Path) -> dict[str, list[str]]:
    """The other commands that write a file beside the bundle, each with its own output."""
    ek = [sys.executable, "-m", "evidencekit"]
    opened = ["-i", str(keys["identity"])]
    return {
        "export": [*ek, "export", str(bundle), *opened, "--format", "dfxml", "-o",
                   str(folder / "files.xml")],
        "report": [*ek, "report", str(bundle), *opened, "-o", str(folder / "report.html")],
        "reseal": [*ek, "reseal", str(bundle), *opened, "-R", str(keys["recipient"]),
                   "--sign-key", str(keys["signer"]), "-o", str(folder / "again.evidence")],
        "receipt": [*ek, "receipt", str(bundle), "-o", str(folder / "receipt.txt")],
    }


@pytest.mark.parametrize("command", ["export", "report", "reseal", "receipt"])
def test_every_writer_killed_before_naming_its_file_leaves_nothing(
        tmp_path: Path, keys: dict[str, Path], home: Path, command: str) -> None:
    with tmpfs(tmp_path) as ram:
        bundle = ram / "case.evidence"
        assert run_cli(*_capture(_evidence(tmp_path), keys, bundle)[3:]).code == 0
        _killed_at_write(_writers(bundle, keys, ram)[command], 1, "fsync")
        assert os.listdir(ram) == ["case.evidence"]


@pytest.mark.parametrize("command", ["export", "report", "reseal", "receipt"])
def test_every_writer_killed_on_a_stick_is_cleaned_up_by_its_next_run(
        tmp_path: Path, keys: dict[str, Path], home: Path, command: str) -> None:
    with mounted("exfat", tmp_path) as stick:
        bundle = stick / "case.evidence"
        assert run_cli(*_capture(_evidence(tmp_path), keys, bundle)[3:]).code == 0
        argv = _writers(bundle, keys, stick)[command]
        _killed_at_write(argv, 1, "fsync")
        left = [name for name in os.listdir(stick) if name != "case.evidence"]
        assert len(left) == 1 and left[0].endswith(".partial"), left
        again = run_cli(*argv[3:])
        assert again.code == 0, again.stderr
        assert f"Removed {stick / left[0]}" in " ".join(again.stderr.split())
        assert left[0] not in os.listdir(stick)


_WORKER = ("import os, signal\nfrom pathlib import Path\nfrom evidencekit.fs import leftovers\n"
           "folder = Path(leftovers.working_folder('ek-test'))\n"
           "(folder / 'page.png').write_bytes(b'a render of the evidence')\n"
           "print(folder, flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n")


def test_a_working_folder_left_by_a_killed_run_goes_with_the_next_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a web capture's browser profile and renders, a memory capture's pipe: in the system's
    # temporary folder, where nothing removed them after a kill -9
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    done = subprocess.run([sys.executable, "-c", _WORKER], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == -9, done.stderr
    left = Path(done.stdout.strip())
    assert left.parent == tmp_path and left.name.startswith("ek-test-") and left.is_dir()
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)  # (computed again from TMPDIR)
    mine = Path(fs.leftovers.working_folder("ek-test"))
    assert not left.exists() and mine.is_dir() and str(os.getpid()) in mine.name
    assert mine.stat().st_mode & 0o777 == 0o700
    other = Path(fs.leftovers.working_folder("ek-test"))  # this process's own: kept
    assert mine.is_dir() and other.is_dir()


@pytest.mark.parametrize("replace", [False, True])
def test_an_output_with_a_long_name_gets_a_temporary_name_that_fits(tmp_path: Path,
                                                                    replace: bool) -> None:
    """A name of 250 bytes is allowed (NAME_MAX is 255); its temporary name adds up to 45, so
    the name's part of it is cut: a custody event could not be added in place to a bundle
    named with more than 214 bytes ("File name too long"), nor could a named temporary
    file be made for it (FAT and exFAT sticks)."""
    final = tmp_path / ("é" * 60 + "c" * 121 + ".evidence")
    assert len(os.fsencode(final.name)) == 250
    if replace:
        final.write_bytes(b"old")
    with fs.staged(final, replace=replace, named=not replace) as stage:
        stage.file.write(b"new")
    assert final.read_bytes() == b"new"
    assert os.listdir(tmp_path) == [final.name]
    temporary = fs.leftovers.prefix_for(final) + "abcdefgh" + fs.leftovers.SUFFIX
    assert len(os.fsencode(temporary)) <= 255
    assert fs.leftovers._OURS.fullmatch(temporary)


def test_a_finished_output_whose_naming_was_cut_short_is_kept_and_named(tmp_path: Path) -> None:
    """On FUSE sticks the name is reserved with an empty file and the finished temporary renamed
    over it: a kill -9 between the two must not cost the only copy of a capture."""
    final = tmp_path / "case.evidence"
    final.touch()  # the placeholder
    finished = tmp_path / ".case.evidence.999999999.k2j9x_aq.evidencekit.partial"
    finished.write_bytes(b"a whole bundle")
    assert clean(final) == [Leftover(finished, removed=False, finished_for=final)]
    assert finished.read_bytes() == b"a whole bundle"
    final.write_bytes(b"something else")  # not a placeholder: the temporary is only unfinished
    assert clean(final) == [Leftover(finished, removed=True)]


def test_a_finished_output_left_unnamed_is_told_with_the_command_that_names_it(
        tmp_path: Path, keys: dict[str, Path], home: Path) -> None:
    evidence = _evidence(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "case.evidence").touch()
    finished = out / ".case.evidence.999999999.k2j9x_aq.evidencekit.partial"
    finished.write_bytes(b"a whole bundle")
    done = subprocess.run(_capture(evidence, keys, out / "other.evidence"), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "holds a finished output" in done.stderr and "mv -f" in done.stderr, done.stderr
    assert finished.read_bytes() == b"a whole bundle"
