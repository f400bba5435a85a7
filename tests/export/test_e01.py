"""E01 export of a disk image, written by the real ewfacquirestream and checked by ewfverify."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.sealed import Sealed, seal
from tests.support.tools import require_tool

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def imaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Sealed, Path, Path]:
    require_tool("ewfacquirestream")
    root = tmp_path_factory.mktemp("imaged")
    sealed = seal(root, odd_names=False)
    image = root / "stick.img"
    image.write_bytes(os.urandom(1 << 20) + bytes(1 << 19))  # 1.5 MiB: data, then empty sectors
    bundle = root / "stick.evidence"
    done = sealed.cli("capture", "--device", image, "-o", bundle, "--case", "CASE-25-E01",
                      "--description", "USB stick from the desk", "-R",
                      sealed.identity.with_name("recipient.txt"), "--sign-key", sealed.signer)
    assert done.code == 0, done.stderr
    return sealed, bundle, image


def test_e01_of_a_device_image_passes_ewfverify_with_the_case_fields(
        imaged: tuple[Sealed, Path, Path], tmp_path: Path) -> None:
    sealed, bundle, image = imaged
    output = tmp_path / "stick.E01"
    done = sealed.cli("export", bundle, "-i", sealed.identity, "--format", "e01", "-o", output,
                      "--json")
    assert done.code == 0, done.stderr
    assert done.json()["sha256"] == hashlib.sha256(output.read_bytes()).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stick.E01"]  # nothing else left
    assert output.stat().st_mode & 0o777 == 0o600  # it holds the evidence itself
    checked = subprocess.run([require_tool("ewfverify"), "-q", str(output)], capture_output=True,
                             text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ewfverify: SUCCESS" in checked.stdout
    content = image.read_bytes()
    info = subprocess.run([require_tool("ewfinfo"), str(output)], capture_output=True, text=True,
                          timeout=60).stdout
    assert "EnCase 6" in info
    assert "CASE-25-E01" in info and "USB stick from the desk" in info
    assert "Det. Example" in info and "data/stick.img" in info
    assert hashlib.md5(content).hexdigest() in info
    assert hashlib.sha1(content).hexdigest() in checked.stdout + info


def test_a_bundle_of_ordinary_files_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    require_tool("ewfacquirestream")
    (tmp_path / "files").mkdir()
    sealed = seal(tmp_path / "files", odd_names=False)
    out = tmp_path / "out"
    out.mkdir()
    done = sealed.export("e01", out / "files.E01")
    assert done.code == 2, done.stderr
    assert "no E01 was made" in done.stderr
    assert list(out.iterdir()) == []


def test_the_image_being_written_is_readable_by_no_one_else(
        imaged: tuple[Sealed, Path, Path], tmp_path: Path) -> None:
    # ewfacquirestream wrote the decrypted image 0644 beside the output (any local user could
    # read it while it was written), and a kill -9 left it there as an E01 ewfverify passes.
    import tarfile
    import time

    from evidencekit.export.e01 import E01Job
    from evidencekit.export.registry import ExportContext

    _, bundle, image = imaged
    job = E01Job(ExportContext(bundle, "2026-01-01T00:00:00Z", "evidencekit 1",
                               tmp_path / "stick.E01"))
    seen: list[tuple[str, int, int]] = []

    def chunks() -> Iterator[bytes]:
        data = image.read_bytes()
        yield data[:65536]
        deadline = time.monotonic() + 30
        while not job.segment.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        [(folder)] = [p for p in tmp_path.iterdir()]
        seen.append((folder.name, folder.stat().st_mode & 0o777,
                     job.segment.stat().st_mode & 0o077))
        yield data[65536:]

    member = tarfile.TarInfo("data/stick.img")
    member.size = image.stat().st_size
    try:
        job.file("data/stick.img", member, chunks())
    finally:
        job.abandon()
    [(name, folder_mode, others)] = seen
    assert name.startswith(".stick.E01.") and name.endswith(".partial-e01")
    assert folder_mode == 0o700 and others == 0
    assert list(tmp_path.iterdir()) == []  # abandoned: nothing left


def test_a_device_captured_with_notes_is_exported(imaged: tuple[Sealed, Path, Path],
                                                  tmp_path: Path) -> None:
    # The notes' files come first in the payload: the first (a few bytes) was refused as "not a
    # whole number of sectors", so a device captured with its notes could never become an E01.
    sealed, _, image = imaged
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "seized.txt").write_text("seized at the desk, 09:12\n")
    bundle = tmp_path / "with-notes.evidence"
    assert sealed.cli("capture", notes, "--device", image, "-o", bundle, "--case", "CASE-25-N",
                      "-R", sealed.identity.with_name("recipient.txt"), "--sign-key",
                      sealed.signer).code == 0
    output = tmp_path / "stick.E01"
    done = sealed.cli("export", bundle, "-i", sealed.identity, "--format", "e01", "-o", output)
    assert done.code == 0, done.stderr
    info = subprocess.run([require_tool("ewfinfo"), str(output)], capture_output=True, text=True,
                          timeout=60).stdout
    assert hashlib.md5(image.read_bytes()).hexdigest() in info


KILLED_MIDWAY = """
import sys, tarfile, time
from pathlib import Path
from evidencekit.export.e01 import E01Job
from evidencekit.export.registry import ExportContext

bundle, image, output = map(Path, sys.argv[1:])
job = E01Job(ExportContext(bundle, "2026-01-01T00:00:00Z", "evidencekit 1", output))

def chunks():
    data = image.read_bytes()
    yield data[:65536]
    while not job.segment.exists():
        time.sleep(0.05)
    print(job.process.pid, job.segment, flush=True)
    time.sleep(600)  # killed here, the image half fed
    yield data[65536:]

member = tarfile.TarInfo("data/stick.img")
member.size = image.stat().st_size
job.file("data/stick.img", member, chunks())
"""


def test_an_export_killed_outright_leaves_no_e01_that_verifies(
        imaged: tuple[Sealed, Path, Path], tmp_path: Path) -> None:
    # ewfacquirestream outlived evidencekit's kill -9, read the end of its input and finished
    # an E01 of the part of the image it had: ewfverify said SUCCESS
    import signal
    import sys
    import time

    _, bundle, image = imaged
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MIDWAY, str(bundle), str(image),
                             str(tmp_path / "stick.E01")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    pid, segment = proc.stdout.readline().split()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as stat:  # a zombie until its parent (init) reaps it
            if stat.read().split(") ")[1].startswith("Z"):
                break
        time.sleep(0.1)
    checked = subprocess.run([require_tool("ewfverify"), "-q", segment], capture_output=True,
                             text=True, timeout=120)
    assert checked.returncode != 0, checked.stdout
    assert "SUCCESS" not in checked.stdout
