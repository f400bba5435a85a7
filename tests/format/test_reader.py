"""The outer reader against hostile and wrong files: linear cost (issue 19, item 6) and the
difference between a damaged bundle (exit 1) and a file that is no bundle at all (exit 2, item 10).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from evidencekit.format.outer import OuterWriter, read_members
from evidencekit.format.reader import LISTED_PROBLEMS, NotABundle, open_bundle
from tests.support import craft
from tests.support.cli import run_cli

JUNK = 100_000


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, craft.Keys]:
    folder = tmp_path_factory.mktemp("reader")
    keys = craft.Keys.create(folder / "keys")
    return craft.write_bundle(folder / "base.evidence", keys, craft.build_bag(keys)), keys


def _members(path: Path) -> list[tuple[str, bytes, int]]:
    with open(path, "rb") as f:
        members = read_members(f)
        result = []
        for m in members:
            f.seek(m.offset)
            result.append((m.name, f.read(m.size), m.mtime))
        return result


def test_a_hundred_thousand_junk_custody_members_are_refused_in_seconds(
        crafted: tuple[Path, craft.Keys], tmp_path: Path) -> None:
    """A third unexpected names, a third event names holding junk, a third one name repeated:
    every check of the member list is linear (names.count and list membership made 20,000
    members take 25 s and 40,000 three minutes), and the report lists a hundred problems of a
    kind, then says how many more."""
    base, _ = crafted
    bundle = tmp_path / "junk.evidence"
    third = JUNK // 3
    with open(bundle, "wb") as f:
        writer = OuterWriter(f)
        for name, data, mtime in _members(base):
            writer.add_bytes(name, data, mtime)
        for i in range(third):
            writer.add_bytes(f"custody/junk{i:06d}.json", b"", 0)
            writer.add_bytes(f"custody/{i + 2:06d}.json", b"{}", 0)
        for _ in range(JUNK - 2 * third):
            writer.add_bytes("custody/000001.json.sig", b"", 0)
        writer.finish()
    started = time.monotonic()
    result = run_cli("verify", bundle, "--json")
    elapsed = time.monotonic() - started
    assert result.code == 1, result.stderr
    problems = [f["problem"] for f in result.json()["findings"]
                if f["check"] == "outer-structure"]
    assert f"{third - LISTED_PROBLEMS} more unexpected members (not listed one by one)" in problems
    assert f"{third - LISTED_PROBLEMS} more members are missing (not listed one by one)" in problems
    assert f"member custody/000001.json.sig appears {JUNK - 2 * third + 1} times" in problems
    assert len(problems) < 4 * LISTED_PROBLEMS
    assert elapsed < 30, f"{JUNK} junk members took {elapsed:.1f} s"


# ------------------------------------------------------------------------- wrong files


def _receipt(tmp_path: Path, base: Path) -> Path:
    receipt = tmp_path / "receipt.txt"
    made = run_cli("receipt", base, "-o", receipt)
    assert made.code == 0, made.stderr
    return receipt


def _other_tar(tmp_path: Path, base: Path) -> Path:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("not evidence\n")
    archive = tmp_path / "notes.tar"
    subprocess.run(["tar", "-cf", archive, "-C", tmp_path, "folder"], check=True)
    return archive


WRONG_FILES = {
    "receipt": (_receipt, "it is not a tar archive"),
    "report-pdf": (lambda t, b: _write(t / "report.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" +
                                       os.urandom(3000)), "it is not a tar archive"),
    "another-tar": (_other_tar, "it is a tar archive, but its first member is 'folder/', not the "
                    "bundle's README.txt"),
    "empty": (lambda t, b: _write(t / "empty.evidence", b""), "the file is empty"),
    "short-text": (lambda t, b: _write(t / "x.evidence", b"hello\n"), "it is not a tar archive"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", list(WRONG_FILES))
def test_a_file_that_is_no_bundle_is_exit_2_not_an_evidencekit_bundle(
        crafted: tuple[Path, craft.Keys], tmp_path: Path, kind: str) -> None:
    """verify receipt.txt / report.pdf: the wrong file was given, which says nothing about any
    evidence: exit 2 and "not an evidencekit bundle", never exit 1 "truncated or damaged"."""
    base, keys = crafted
    make, why = WRONG_FILES[kind]
    path = make(tmp_path, base)
    for command in (("verify", path, "--json"),
                    ("verify", path, "--json", "-i", keys.identity_file),
                    ("custody", "show", path, "--json")):
        result = run_cli(*command)
        assert result.code == 2, f"{command}: exit {result.code}: {result.stdout}{result.stderr}"
        document = result.json()
        assert document["ok"] is False and document["exit_code"] == 2
        message = document["error"]["message"]
        assert message == f"{path} is not an evidencekit bundle: {why}", message
        assert "Traceback" not in result.stderr
    plain = run_cli("verify", path)
    assert plain.code == 2 and "not an evidencekit bundle" in plain.stderr, plain.stderr


def _flipped(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1:]


DAMAGED = {
    "cut-to-10-bytes": lambda d: d[:10],
    "cut-to-700-bytes": lambda d: d[:700],
    "cut-in-the-payload": lambda d: d[:5000],
    "cut-before-the-end-marker": lambda d: d[:-1024],
    "first-byte-flipped": lambda d: _flipped(d, 0),
    "first-member-name-flipped": lambda d: _flipped(d, 1024),
    "checksum-flipped": lambda d: _flipped(d, 150),
}


@pytest.mark.parametrize("kind", list(DAMAGED))
def test_a_damaged_or_truncated_bundle_stays_exit_1(crafted: tuple[Path, craft.Keys],
                                                    tmp_path: Path, kind: str) -> None:
    base, _ = crafted
    path = _write(tmp_path / "case.evidence", DAMAGED[kind](base.read_bytes()))
    result = run_cli("verify", path, "--json")
    assert result.code == 1, f"exit {result.code}: {result.stdout}{result.stderr}"
    findings = result.json()["findings"]
    assert any(f["check"] == "outer-structure" for f in findings), findings


def test_open_bundle_raises_not_a_bundle_for_the_library_too(tmp_path: Path) -> None:
    path = _write(tmp_path / "receipt.txt", b"evidencekit receipt\ncase: X\n")
    with pytest.raises(NotABundle, match="is not an evidencekit bundle: it is not a tar archive"):
        open_bundle(path)
