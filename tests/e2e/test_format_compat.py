"""Bundles of every released format version must keep verifying and opening (docs/FORMAT.md)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from evidencekit.crypto import age
from evidencekit.extract import extract
from evidencekit.verify import verify

ASSETS = Path(__file__).resolve().parents[1] / "assets"
V1_PASSPHRASE = b"evidencekit format v1 test vector"  # public; see tests/assets/make_v1_bundle.py


def test_format_v1_bundle_verifies_without_a_key():
    report = verify(ASSETS / "format-v1.evidence")
    assert report.ok, report.findings.items
    assert report.seal is not None and report.seal.format_version == 1
    assert report.seal.case_id == "COMPAT-V1"


def test_format_v1_bundle_decrypts_and_extracts(tmp_path: Path):
    identities = [age.ScryptIdentity(V1_PASSPHRASE)]
    report = verify(ASSETS / "format-v1.evidence", identities)
    assert report.ok and report.decrypted and report.files_checked == 5
    result = extract(ASSETS / "format-v1.evidence", tmp_path / "out", identities)
    assert result.output is not None
    data = os.fsencode(tmp_path / "out" / "data" / "evidence")
    assert sorted(os.listdir(data)) == sorted([b"empty-folder", b"empty.txt", b"latin1-\xe9.txt",
                                               b"line\nbreak.txt", b"link", b"mail",
                                               "Überweisung 100%.txt".encode()])
    with open(data + b"/latin1-\xe9.txt", "rb") as restored:
        assert restored.read() == b"not utf-8\n"


V2_PASSPHRASE = b"evidencekit format v2 test vector"  # public; see tests/assets/make_v2_bundle.py


def test_format_v2_bundle_verifies_without_a_key():
    report = verify(ASSETS / "format-v2.evidence")
    assert report.ok, report.findings.items
    assert report.seal is not None and report.seal.format_version == 2
    assert report.seal.case_id == "COMPAT-V2"
    assert [e.action for e in report.events] == ["captured", "resealed"]


def test_format_v2_bundle_keeps_its_hard_links_and_its_encrypted_addendum(tmp_path: Path):
    identities = [age.ScryptIdentity(V2_PASSPHRASE)]
    report = verify(ASSETS / "format-v2.evidence", identities)
    assert report.ok and report.decrypted and report.files_checked == 5, report.findings.items
    [addendum] = report.addenda
    assert addendum.document is not None and addendum.sequence == 2
    assert addendum.document.text == "the second charge was refunded on 2026-12-01"
    result = extract(ASSETS / "format-v2.evidence", tmp_path / "out", identities)
    assert result.output is not None
    data = tmp_path / "out" / "data" / "evidence"
    names = [data / "mail" / "phish.eml", data / "phish-copy.eml", data / "zz-third-name.eml"]
    assert len({os.stat(n).st_ino for n in names}) == 1  # one file, three names, as captured
    assert names[1].read_bytes().startswith(b"From: bank@examp1e.com")
    with open(os.fsencode(data) + b"/latin1-\xe9.txt", "rb") as restored:
        assert restored.read() == b"not utf-8\n"


@pytest.mark.parametrize(("name", "passphrase"), [("format-v1.evidence", V1_PASSPHRASE),
                                                  ("format-v2.evidence", V2_PASSPHRASE)])
def test_old_bundles_take_a_trusted_timestamp_and_still_verify(tmp_path: Path, name: str,
                                                                passphrase: bytes):
    """Format version 3 adds timestamp members to a bundle of any version (FORMAT.md §9)."""
    from evidencekit import timestamps
    from evidencekit.stamping import add_timestamps
    from tests.support.tsa_server import running_tsa

    bundle = tmp_path / name
    shutil.copyfile(ASSETS / name, bundle)
    os.chmod(bundle, 0o644)
    with running_tsa(tmp_path / "pki") as tsa:
        stamped = add_timestamps(bundle, [tsa.url])
        roots = timestamps.load_roots(str(tsa.root))
    assert not stamped.failed and len(stamped.added) == 1
    report = verify(bundle, [age.ScryptIdentity(passphrase)], tsa_roots=roots)
    assert report.ok and report.decrypted, report.findings.items
    assert [t.trusted for t in report.timestamps] == [True]
    assert report.seal is not None and report.seal.format_version == int(name[8])


V3_PASSPHRASE = b"evidencekit format v3 test vector"  # public; see tests/assets/make_v3_bundle.py


def test_format_v3_bundle_verifies_its_timestamp_against_its_root():
    from evidencekit import timestamps

    roots = timestamps.load_roots(str(ASSETS / "format-v3-tsa-root.pem"))
    report = verify(ASSETS / "format-v3.evidence", tsa_roots=roots)
    assert report.ok, report.findings.items
    assert report.seal is not None and report.seal.case_id == "COMPAT-V3"
    assert [e.action for e in report.events] == ["captured", "transferred"]
    [stamp] = report.timestamps
    assert (stamp.name, stamp.trusted, stamp.problem, stamp.tsa) == \
        ("timestamps/000001.tsr", True, None, "CN=Test TSA")


def test_format_v3_bundle_decrypts_and_extracts(tmp_path: Path):
    identities = [age.ScryptIdentity(V3_PASSPHRASE)]
    report = verify(ASSETS / "format-v3.evidence", identities)
    assert report.ok and report.decrypted and report.files_checked == 4, report.findings.items
    assert [t.trusted for t in report.timestamps] == [None]  # no root given: imprint only
    result = extract(ASSETS / "format-v3.evidence", tmp_path / "out", identities)
    assert result.output is not None
    data = tmp_path / "out" / "data" / "evidence"
    assert (data / "phish-copy.eml").read_bytes().startswith(b"From: bank@examp1e.com")
    assert os.stat(data / "phish-copy.eml").st_ino == os.stat(data / "mail" / "phish.eml").st_ino


PRE1970_PASSPHRASE = b"evidencekit pre-1970 times test vector"  # make_pre1970_bundle.py
PRE1970_NS = {"old/minus-1.5s.txt": -1_500_000_000, "old/minus-1ns.txt": -1,
              "old/minus-2s.txt": -2_000_000_000, "old/1960.txt": -315_619_199_750_000_000,
              "old": -250_000_000}


def test_times_before_1970_in_the_old_pax_encoding_verify_and_extract(tmp_path: Path):
    """Written before the pax mtime records of such times were corrected (FORMAT.md §4.2):
    -1.5 s as -2.500000000. The reader takes that encoding for what the manifest says."""
    bundle = ASSETS / "format-v3-pre1970.evidence"
    identities = [age.ScryptIdentity(PRE1970_PASSPHRASE)]
    report = verify(bundle, identities)
    assert report.ok and report.decrypted and report.files_checked == 4, report.findings.items
    result = extract(bundle, tmp_path / "out", identities)
    assert result.output is not None
    data = tmp_path / "out" / "data" / "evidence"
    assert {name: os.stat(data / name).st_mtime_ns for name in PRE1970_NS} == PRE1970_NS


V4_PASSPHRASE = b"evidencekit format v4 test vector"  # public; see tests/assets/make_v4_bundle.py


def test_format_v4_bundle_verifies_without_a_key():
    report = verify(ASSETS / "format-v4.evidence")
    assert report.ok, report.findings.items
    assert report.seal is not None and report.seal.format_version == 4
    assert report.seal.payload_compression == "zstd" and report.seal.case_id == "COMPAT-V4"
    assert [e.action for e in report.events] == ["captured", "transferred"]


def test_format_v4_bundle_decompresses_and_extracts_its_image(tmp_path: Path):
    identities = [age.ScryptIdentity(V4_PASSPHRASE)]
    report = verify(ASSETS / "format-v4.evidence", identities)
    assert report.ok and report.decrypted and report.files_checked == 4, report.findings.items
    assert report.manifest is not None and report.manifest.get("format_version") == 2
    [source] = report.manifest.get("sources")
    assert source["kind"] == "device"
    result = extract(ASSETS / "format-v4.evidence", tmp_path / "out", identities)
    assert result.output is not None
    image = (tmp_path / "out" / "data" / "stick.img").read_bytes()
    assert len(image) == 4 << 20 and image[510:512] == b"\x55\xaa"
    assert image[(1 << 20) + 4096:].startswith(b"From: bank@examp1e.com")
    assert (ASSETS / "format-v4.evidence").stat().st_size < 64 << 10  # 4 MiB of mostly zeros


@pytest.mark.parametrize(("name", "passphrase"), [
    ("format-v1.evidence", V1_PASSPHRASE), ("format-v2.evidence", V2_PASSPHRASE),
    ("format-v3.evidence", V3_PASSPHRASE), ("format-v4.evidence", V4_PASSPHRASE)])
def test_every_format_version_verifies_with_its_key(name: str, passphrase: bytes):
    report = verify(ASSETS / name, [age.ScryptIdentity(passphrase)])
    assert report.ok and report.decrypted, report.findings.items


def test_a_reader_of_version_3_refuses_a_version_4_seal_clearly(monkeypatch: pytest.MonkeyPatch):
    """What an older evidencekit says of a version 4 bundle: it reads seals of versions 1 and 2
    only (format/documents.py before version 4), so the seal is refused with its version named."""
    from evidencekit.format import documents

    monkeypatch.setattr(documents, "SEAL_VERSIONS", documents.SUPPORTED_VERSIONS)
    report = verify(ASSETS / "format-v4.evidence")
    assert not report.ok
    assert any("has format version 4, which this evidencekit does not know" in f.problem
               for f in report.findings.errors), report.findings.items
