"""Property-based tests (hypothesis): the two invariants that hold for every input.

1. capture → verify → extract succeeds on an untouched bundle of any small tree, whatever the names
   (any bytes but ``/`` and NUL: not UTF-8, newlines, ``%``, backslashes …), and restores every
   name and byte exactly.
2. verify fails with exit code 1 (never raises, never exit 5) on any changed bundle: bits flipped,
   bytes inserted or deleted, the file cut short, at any offset.

Examples are kept few (the suite must stay fast); ``EVIDENCEKIT_PROPERTY_EXAMPLES=1000`` runs
more.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from evidencekit.capture import CaptureRequest, CaseInfo, capture
from evidencekit.cli.render import exit_code_for
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.errors import EvidenceKitError, ExitCode
from evidencekit.extract import extract
from evidencekit.verify import verify
from tests.support.hostile import file_hashes

EXAMPLES = int(os.environ.get("EVIDENCEKIT_PROPERTY_EXAMPLES", "30"))
BOUNDED = settings(max_examples=EXAMPLES, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow,
                                          HealthCheck.function_scoped_fixture])

IDENTITY = age.X25519Identity.generate()
SIGNER = SigningKey.generate("property tests")

names = st.binary(min_size=1, max_size=40).filter(
    lambda n: b"/" not in n and b"\0" not in n and n not in (b".", b".."))
contents = st.binary(max_size=3000)
# A tree: {name: bytes (a file) or a nested tree (a folder)}, at most three levels deep.
trees = st.recursive(st.dictionaries(names, contents, max_size=4),
                     lambda children: st.dictionaries(names, st.one_of(contents, children),
                                                      max_size=4),
                     max_leaves=12)


def _build(folder: bytes, tree: dict) -> None:
    for name, value in tree.items():
        path = folder + b"/" + name
        if isinstance(value, dict):
            os.mkdir(path)
            _build(path, value)
        else:
            with open(path, "wb") as f:
                f.write(value)


def _capture(source: Path, output: Path) -> None:
    capture(CaptureRequest([os.fsencode(source)], output, CaseInfo("PROPERTY-1", "hypothesis"),
                           [IDENTITY.recipient()], SIGNER, ["property"]))


# Further names for files of the tree: (which file, which folder, the new name), as indices.
links = st.lists(st.tuples(st.integers(0, 99), st.integers(0, 99), names), max_size=3)


def _link(source: bytes, wanted: list[tuple[int, int, bytes]]) -> None:
    """Give some files of the tree another name (a hard link), anywhere in it."""
    files, folders = [], [source]
    for folder, subfolders, names_here in os.walk(source):
        folders += [os.path.join(folder, d) for d in subfolders]
        files += [os.path.join(folder, n) for n in names_here]
    for file_index, folder_index, name in wanted:
        target = os.path.join(folders[folder_index % len(folders)], name)
        if files and not os.path.lexists(target):
            os.link(files[file_index % len(files)], target)


def _inode_groups(folder: Path) -> set[frozenset[bytes]]:
    """The names of each file with more than one, relative to *folder*."""
    groups: dict[int, set[bytes]] = {}
    base = os.fsencode(folder)
    for where, _, names_here in os.walk(base):
        for name in names_here:
            path = os.path.join(where, name)
            if os.lstat(path).st_nlink > 1:
                groups.setdefault(os.lstat(path).st_ino, set()).add(os.path.relpath(path, base))
    return {frozenset(g) for g in groups.values()}


@BOUNDED
@given(tree=trees, extra_names=links)
def test_any_small_tree_round_trips(tree: dict, extra_names: list[tuple[int, int, bytes]]
                                    ) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source, bundle = Path(tmp) / "src", Path(tmp) / "case.evidence"
        os.mkdir(source)
        _build(os.fsencode(source), tree)
        _link(os.fsencode(source), extra_names)
        _capture(source, bundle)
        report = verify(bundle, [IDENTITY])
        assert report.ok, report.findings.items
        assert exit_code_for(report) == ExitCode.OK
        result = extract(bundle, Path(tmp) / "out", [IDENTITY])
        assert result.output is not None, result.report.findings.items
        assert file_hashes(result.output / "data" / "src") == file_hashes(source)
        # hard links come back as hard links, between the same names
        assert _inode_groups(result.output / "data" / "src") == _inode_groups(source)


@dataclass(frozen=True)
class Original:
    path: Path
    data: bytes


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Original:
    folder = tmp_path_factory.mktemp("original")
    source = folder / "src"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "a.txt").write_bytes(b"some evidence\n" * 50)
    with open(os.fsencode(source) + b"/b\xe9.bin", "wb") as f:  # not UTF-8
        f.write(os.urandom(70_000))
    bundle = folder / "case.evidence"
    _capture(source, bundle)
    return Original(bundle, bundle.read_bytes())


@st.composite
def corruptions(draw: st.DrawFn, size: int) -> list[tuple[str, int, bytes]]:
    """One to three edits: ("flip", offset, bit), ("insert", offset, data), ("delete", offset,
    length), ("truncate", offset)."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        offset = draw(st.integers(0, size - 1))
        if kind == "flip":
            edits.append((kind, offset, bytes([1 << draw(st.integers(0, 7))])))
        elif kind == "insert":
            edits.append((kind, offset, draw(st.binary(min_size=1, max_size=600))))
        elif kind == "delete":
            edits.append((kind, offset, bytes(draw(st.integers(1, 600)).to_bytes(2, "big"))))
        else:
            edits.append((kind, offset, b""))
    return edits


def _apply(data: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    buffer = bytearray(data)
    for kind, offset, value in edits:
        offset = min(offset, max(len(buffer) - 1, 0))
        if kind == "flip" and buffer:
            buffer[offset] ^= value[0]
        elif kind == "insert":
            buffer[offset:offset] = value
        elif kind == "delete":
            del buffer[offset : offset + int.from_bytes(value, "big")]
        elif kind == "truncate":
            del buffer[offset:]
    return bytes(buffer)


@BOUNDED
@given(data=st.data())
def test_any_change_fails_verification_and_never_crashes(original: Original,
                                                         data: st.DataObject) -> None:
    edits = data.draw(corruptions(len(original.data)))
    changed = _apply(original.data, edits)
    assume(changed != original.data)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "changed.evidence"
        path.write_bytes(changed)
        try:
            report = verify(path, [IDENTITY])
        except EvidenceKitError as exc:  # only an input error is acceptable, never a crash
            assert exc.exit_code in (ExitCode.EVIDENCE_PROBLEM, ExitCode.USAGE)
            return
        assert not report.ok, edits
        assert exit_code_for(report) == ExitCode.EVIDENCE_PROBLEM, edits
        assert all("\n" not in f.problem for f in report.findings.items)
