"""extract's library API: a bundle that verifies becomes a new folder, with its files, names and
hard links as captured; anything else leaves no folder, or, when asked, only OUTPUT.UNTRUSTED."""

from __future__ import annotations

from pathlib import Path

import pytest

from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.errors import OutputError
from evidencekit.extract import extract
from tests.support.sealed import sealed_by_library


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, age.X25519Identity]:
    return sealed_by_library(tmp_path_factory.mktemp("extract"), "X-1", 70_000)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_a_bundle_that_verifies_becomes_the_folder_with_its_tree(
        sealed: tuple[Path, age.X25519Identity], tmp_path: Path) -> None:
    bundle, identity = sealed
    out = tmp_path / "out"
    result = extract(bundle, out, [identity])
    assert result.report.ok and result.output == out and result.files == 3
    data = out / "data" / "evidence"
    assert (data / "a.txt").read_bytes() == b"first file\n"
    assert (data / "sub" / "another-name.txt").samefile(data / "a.txt")  # restored as a link
    assert {"bagit.txt", "manifest-sha256.txt", "bag-info.txt"} <= {p.name for p in out.iterdir()}


def test_a_wrong_key_leaves_no_folder_even_when_untrusted_output_is_asked(
        sealed: tuple[Path, age.X25519Identity], tmp_path: Path) -> None:
    bundle, _ = sealed
    result = extract(bundle, tmp_path / "out", [age.X25519Identity.generate()],
                     keep_untrusted=True)
    assert result.output is None and result.untrusted is None  # nothing was decrypted
    assert result.report.no_matching_key and not result.report.decrypted
    assert list(tmp_path.iterdir()) == []


def test_a_bundle_that_fails_verification_is_kept_only_as_untrusted_when_asked(
        sealed: tuple[Path, age.X25519Identity], tmp_path: Path) -> None:
    bundle, identity = sealed
    someone_else = SigningKey.generate().public  # the seal's signer is not the one trusted
    refused = extract(bundle, tmp_path / "refused", [identity], [someone_else])
    assert not refused.report.ok and refused.report.decrypted and refused.output is None
    assert list(tmp_path.iterdir()) == []
    result = extract(bundle, tmp_path / "out", [identity], [someone_else], keep_untrusted=True)
    assert result.output is None and not (tmp_path / "out").exists()
    assert result.untrusted == tmp_path / "out.UNTRUSTED"
    assert _files(result.untrusted / "data")["evidence/a.txt"] == b"first file\n"


def test_an_existing_output_is_refused_before_anything_is_read(
        sealed: tuple[Path, age.X25519Identity], tmp_path: Path) -> None:
    bundle, identity = sealed
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputError, match="already exists"):
        extract(bundle, tmp_path / "out", [identity])
    assert list((tmp_path / "out").iterdir()) == []
