"""verify's payload-reading API (payload.PayloadReaders): extract, reseal, the report and the
exports take the decrypted payload from the one pass verify makes, and the bundle is opened once."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from evidencekit import protection
from evidencekit import verify as verify_module
from evidencekit.crypto import age
from evidencekit.format import reader
from evidencekit.payload import PayloadReaders
from evidencekit.verify import verify
from tests.support.sealed import sealed_by_library


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, age.X25519Identity]:
    return sealed_by_library(tmp_path_factory.mktemp("verify"), "V-1", 300_000)


class Files:
    """A payload.Visitor keeping what it is shown."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.directories: list[str] = []
        self.links: dict[str, str] = {}

    def directory(self, name: str, member: tarfile.TarInfo) -> None:
        self.directories.append(name)

    def file(self, name: str, member: tarfile.TarInfo, chunks: Iterator[bytes]) -> None:
        digest = hashlib.sha256()
        for chunk in chunks:
            digest.update(chunk)
        self.files[name] = digest.hexdigest()

    def hard_link(self, name: str, member: tarfile.TarInfo, target: str) -> None:
        self.links[name] = target


class Copy(io.BytesIO):
    """A payload.PlaintextCopy keeping every byte and where the tar ended."""

    ended: int | None = None

    def tar_ended(self, offset: int) -> None:
        self.ended = offset


def _manifest_hashes(report: verify_module.Report) -> dict[str, str]:
    assert report.manifest is not None
    return {e["bag_path"]: e["sha256"] for e in report.manifest.entries()
            if e["kind"] == "file" and "link_to" not in e}


def test_files_are_shown_to_the_visitor_as_verify_checks_them(sealed):
    bundle, identity = sealed
    files = Files()
    report = verify(bundle, [identity], readers=PayloadReaders(files=files))
    assert report.ok and report.decrypted
    assert files.files == _manifest_hashes(report)  # each file of data/, once
    assert files.links == {"data/evidence/sub/another-name.txt": "data/evidence/a.txt"}
    assert "data/evidence/sub" in files.directories


def test_the_plaintext_copy_is_the_whole_payload_tar_and_learns_where_it_ends(sealed):
    bundle, identity = sealed
    copy = Copy()
    report = verify(bundle, [identity], readers=PayloadReaders(plaintext=copy))
    assert report.ok
    data = copy.getvalue()
    assert copy.ended is not None and copy.ended % 512 == 0
    assert len(data) - copy.ended >= 1024 and not data[copy.ended:].strip(b"\0")
    with tarfile.open(fileobj=io.BytesIO(data[:copy.ended])) as tar:
        names = tar.getnames()
        extracted = tar.extractfile("bag/data/evidence/sub/b.bin")
        assert extracted is not None
        content = extracted.read()
    assert hashlib.sha256(content).hexdigest() == \
        _manifest_hashes(report)["data/evidence/sub/b.bin"]
    assert "bag/evidencekit/manifest.json" in names


def test_without_a_key_no_reader_is_called_and_no_header_is_read(sealed):
    bundle, _ = sealed
    files, copy = Files(), Copy()
    report = verify(bundle, readers=PayloadReaders(files, copy))
    assert report.ok and not report.decrypted and report.payload_sha256
    assert not files.files and not copy.getvalue() and copy.ended is None
    assert report.recipients is None


def test_a_wrong_key_is_explained_from_one_open_of_the_bundle(sealed, monkeypatch):
    bundle, _ = sealed
    opened: list[Path] = []
    real = reader.open_bundle

    def counting(path: Path) -> reader.OuterBundle:
        opened.append(path)
        return real(path)

    monkeypatch.setattr(verify_module, "open_bundle", counting)
    monkeypatch.setattr(protection, "open_bundle", counting)
    wrong = age.X25519Identity.generate()
    report = verify(bundle, [wrong])
    assert report.no_matching_key and not report.decrypted
    assert report.recipients is not None and [r.type for r in report.recipients] == ["X25519"]
    kinds = protection.protection_of(report.recipients, bundle)
    advice = protection.wrong_key_for(bundle, [wrong], report.recipients)
    assert kinds == {"X25519"} and "none of the keys given (-i) opens it" in advice.summary
    assert opened == [bundle]  # the advice came from the report, not from reading it again
