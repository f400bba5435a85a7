"""``-o -``: standard output for the exports a pipe can take, a clear refusal everywhere else
(before, every command wrote a file literally named ``-``)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.bundles import contents, rebuild
from tests.support.cli import run_cli
from tests.support.sealed import Sealed
from tests.support.terminal import on_a_terminal


def export_to_stdout(sealed: Sealed, bundle: Path, fmt: str, cwd: Path,
                     *more: str) -> subprocess.CompletedProcess[bytes]:
    """The real command, its standard output a pipe, read as bytes."""
    return subprocess.run([sys.executable, "-m", "evidencekit", "export", str(bundle), "-i",
                           str(sealed.identity), "--format", fmt, "-o", "-", *more],
                          capture_output=True, env={**os.environ, **sealed.env}, cwd=cwd,
                          timeout=120)


def said_sha256(stderr: bytes) -> str:
    found = re.search(r"SHA-256 ([0-9a-f]{64})", stderr.decode())
    assert found, stderr
    return found.group(1)


@pytest.mark.parametrize("fmt", ["hashdeep", "html"])
def test_a_text_export_goes_to_standard_output(sealed: Sealed, tmp_path: Path, fmt: str) -> None:
    done = export_to_stdout(sealed, sealed.bundle, fmt, tmp_path)
    assert done.returncode == 0, done.stderr
    assert said_sha256(done.stderr) == hashlib.sha256(done.stdout).hexdigest()
    assert b"standard output" in done.stderr  # what is said about it is not mixed into it
    assert b"scam.eml" in done.stdout
    assert list(tmp_path.iterdir()) == []  # no file named '-', nothing staged left


def test_a_pdf_goes_to_a_pipe(sealed: Sealed, tmp_path: Path) -> None:
    done = export_to_stdout(sealed, sealed.bundle, "pdf", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"%PDF-")
    assert said_sha256(done.stderr) == hashlib.sha256(done.stdout).hexdigest()
    assert list(tmp_path.iterdir()) == []


def test_a_pdf_is_not_written_to_a_terminal(sealed: Sealed, tmp_path: Path) -> None:
    code, shown = on_a_terminal([sys.executable, "-m", "evidencekit", "export",
                                 str(sealed.bundle), "-i", str(sealed.identity), "--format",
                                 "pdf", "-o", "-"], [], cwd=tmp_path,
                                env={**os.environ, **sealed.env})
    assert code == 2, shown
    assert "binary" in shown and "terminal" in shown
    assert "%PDF" not in shown
    assert list(tmp_path.iterdir()) == []


def test_an_e01_is_never_written_to_standard_output(sealed: Sealed, tmp_path: Path) -> None:
    done = export_to_stdout(sealed, sealed.bundle, "e01", tmp_path)
    assert done.returncode == 2, done.stderr
    assert b"written as a file" in done.stderr and done.stdout == b""
    assert list(tmp_path.iterdir()) == []


def test_json_and_standard_output_are_refused_together(sealed: Sealed, tmp_path: Path) -> None:
    done = export_to_stdout(sealed, sealed.bundle, "hashdeep", tmp_path, "--json")
    assert done.returncode == 2
    assert b"--json and -o -" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_nothing_reaches_standard_output_from_a_bundle_that_fails(sealed: Sealed,
                                                                 tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.evidence"
    edited = [(name, data.replace(b"evidence", b"evidencE", 1) if name == "README.txt" else data,
               mtime) for name, data, mtime in contents(sealed.bundle)]
    rebuild(damaged, edited)
    done = export_to_stdout(sealed, damaged, "hashdeep", tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stdout == b""
    assert list(tmp_path.iterdir()) == [damaged]


def test_record_names_what_went_to_standard_output(sealed: Sealed, tmp_path: Path) -> None:
    bundle = tmp_path / "copy.evidence"
    bundle.write_bytes(sealed.bundle.read_bytes())
    done = export_to_stdout(sealed, bundle, "dfxml", tmp_path, "--record", "--sign-key",
                            str(sealed.signer))
    assert done.returncode == 0, done.stderr
    shown = sealed.cli("custody", "show", bundle, "--json")
    event = shown.json()["custody"][-1]
    assert event["action"] == "exported"
    assert event["details"]["sha256"] == hashlib.sha256(done.stdout).hexdigest()
    assert event["details"]["size"] == str(len(done.stdout))


@pytest.mark.parametrize(("command", "what"), [
    (["capture", "EVIDENCE", "-o", "-"], "a bundle"),
    (["extract", "BUNDLE", "-i", "IDENTITY", "-o", "-"], "a folder"),
    (["reseal", "BUNDLE", "-i", "IDENTITY", "-r", "age1qqqq", "-o", "-"], "a bundle"),
    (["report", "BUNDLE", "-i", "IDENTITY", "--format", "html", "-o", "-"], "export --format"),
    (["key", "generate", "-o", "-"], "a key pair"),
    (["store", "get", "s3://bucket/key", "-o", "-"], "a bundle"),
])
def test_commands_that_write_files_refuse_standard_output(sealed: Sealed, tmp_path: Path,
                                                          command: list[str], what: str) -> None:
    named = {"EVIDENCE": str(sealed.evidence), "BUNDLE": str(sealed.bundle),
             "IDENTITY": str(sealed.identity)}
    done = run_cli(*[named.get(word, word) for word in command], env=sealed.env, cwd=tmp_path)
    assert done.code == 2, done.stderr
    assert "-o - means standard output" in done.stderr and what in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_receipt_to_standard_output_is_printed(sealed: Sealed, tmp_path: Path) -> None:
    done = run_cli("receipt", sealed.bundle, "-o", "-", env=sealed.env, cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert done.stdout == run_cli("receipt", sealed.bundle, env=sealed.env).stdout
    assert list(tmp_path.iterdir()) == []


def run_with_standard_output_closed(sealed: Sealed, cwd: Path, *args: str
                                    ) -> subprocess.CompletedProcess[str]:
    """The real command started as a daemon or ``>&-`` starts it: no file number 1 at all."""
    return subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", sys.executable, "-m",
                           "evidencekit", *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, env={**os.environ, **sealed.env},
                          cwd=cwd, timeout=120)


def test_an_export_to_a_closed_standard_output_is_refused(sealed: Sealed, tmp_path: Path
                                                          ) -> None:
    # it ended in "internal error: AttributeError: 'NoneType' object has no attribute
    # 'isatty'" (exit 5)
    bundle = tmp_path / "copy.evidence"
    bundle.write_bytes(sealed.bundle.read_bytes())
    done = run_with_standard_output_closed(
        sealed, tmp_path, "export", str(bundle), "-i", str(sealed.identity), "--format",
        "hashdeep", "-o", "-", "--record", "--sign-key", str(sealed.signer))
    assert done.returncode == 2, done.stderr
    assert "standard output, and it is closed" in done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr
    assert sorted(tmp_path.iterdir()) == [bundle]
    shown = sealed.cli("custody", "show", bundle, "--json")
    assert [e["action"] for e in shown.json()["custody"]][-1] != "exported"


def test_json_with_standard_output_closed_is_no_traceback(sealed: Sealed, tmp_path: Path
                                                        ) -> None:
    done = run_with_standard_output_closed(sealed, tmp_path, "verify", str(sealed.bundle),
                                           "-i", str(sealed.identity), "--json")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def test_an_export_to_standard_output_killed_leaves_nothing_on_disk(sealed: Sealed,
                                                                    tmp_path: Path) -> None:
    # the export waited for standard output in a private folder of the temporary directory,
    # named: kill -9 (or a power cut) left it there for good, in clear
    import fcntl
    import select
    import signal

    temporary = tmp_path / "tmp"
    temporary.mkdir()
    reading, writing = os.pipe()
    fcntl.fcntl(writing, 1031, 4096)  # F_SETPIPE_SZ: the export cannot be written out whole
    proc = subprocess.Popen([sys.executable, "-m", "evidencekit", "export", str(sealed.bundle),
                             "-i", str(sealed.identity), "--format", "html", "-o", "-"],
                            stdout=writing, stderr=subprocess.DEVNULL, cwd=tmp_path,
                            env={**os.environ, **sealed.env, "TMPDIR": str(temporary)})
    os.close(writing)
    try:
        assert select.select([reading], [], [], 60)[0]  # copying it out: checked, made
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        os.close(reading)
    assert list(temporary.iterdir()) == []
