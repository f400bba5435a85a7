"""payload.scan_payload, the one pass over the decrypted payload's tar that verify makes: every
file hashed, unsafe names and hard links reported (never followed), what no evidencekit writes
refused, hidden bytes after the tar counted; a visitor sees each file as it goes by."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator

import pytest

from evidencekit.errors import BundleError
from evidencekit.findings import Findings
from evidencekit.payload import scan_payload
from tests.support.tars import END, canonical_member, tar_member, tar_of


class Recorder:
    def __init__(self, read: int | None = None) -> None:
        self.files: dict[str, bytes] = {}
        self.directories: list[str] = []
        self.read = read

    def directory(self, name: str, member: tarfile.TarInfo) -> None:
        self.directories.append(name)

    def file(self, name: str, member: tarfile.TarInfo, chunks: Iterator[bytes]) -> None:
        parts = []
        for chunk in chunks:
            assert isinstance(chunk, bytes)
            parts.append(chunk)
            if self.read is not None:
                break  # a visitor may stop early: the rest is still hashed
        self.files[name] = b"".join(parts)

    def hard_link(self, name: str, member: tarfile.TarInfo, target: str) -> None:
        self.files[name] = self.files[target]


def test_scan_payload_hashes_files_and_reports_every_unsafe_member():
    big = os.urandom(200_000)
    members = [
        tar_member("bag/data", kind=tarfile.DIRTYPE),
        tar_member("bag/data/big", big),
        tar_member("bag/manifest-sha256.txt", b"tag\n"),
        tar_member("../escape", b"x"),
        tar_member("/tmp/absolute", b"x"),
        tar_member("bag/data/../../up", b"x"),
        tar_member("bag/data/hard", kind=tarfile.LNKTYPE, linkname="/etc/passwd"),
        tar_member("bag/data/big", b"again"),
    ]
    findings = Findings()
    visitor = Recorder(read=1)
    scan = scan_payload(io.BytesIO(tar_of(members)), findings, visitor)
    assert scan.data_files["data/big"] == (hashlib.sha256(big).hexdigest(), len(big))
    assert scan.tag_files == {"manifest-sha256.txt": b"tag\n"}
    assert visitor.directories == ["data"] and big.startswith(visitor.files["data/big"])
    problems = [(f.where, f.problem) for f in findings.items]
    assert sum("unsafe" in p for _, p in problems) == 3
    assert ("data/hard", "payload member is a hard link to '/etc/passwd', which is not a file "
            "stored before it in data/ (not extracted)") in problems
    assert ("data/big", "member appears twice in the payload") in problems


def test_scan_payload_takes_a_hard_link_only_to_a_file_stored_before_it_in_data():
    members = [
        tar_member("bag/data/a", b"content"),
        tar_member("bag/data/b", kind=tarfile.LNKTYPE, linkname="bag/data/a"),
        tar_member("bag/data/before", kind=tarfile.LNKTYPE, linkname="bag/data/later"),
        tar_member("bag/data/later", b"x"),
        tar_member("bag/data/up", kind=tarfile.LNKTYPE, linkname="bag/data/../data/a"),
        tar_member("bag/data/tag", kind=tarfile.LNKTYPE, linkname="bag/bagit.txt"),
        tar_member("bag/data/chain", kind=tarfile.LNKTYPE, linkname="bag/data/b"),
        tar_member("bag/bagit.txt", b"tag"),
        tar_member("bag/outside", kind=tarfile.LNKTYPE, linkname="bag/data/a"),
    ]
    findings = Findings()
    visitor = Recorder()
    scan = scan_payload(io.BytesIO(tar_of(members)), findings, visitor)
    assert scan.hard_links == {"data/b": "data/a"}
    assert scan.data_files["data/b"] == scan.data_files["data/a"]
    assert visitor.files["data/b"] == b"content"
    refused = sorted(f.where for f in findings.items if "hard link" in f.problem)
    assert refused == ["data/before", "data/chain", "data/tag", "data/up", "outside"]


def test_scan_payload_stops_at_links_and_special_files():
    for kind in (tarfile.SYMTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE):
        data = tar_of([tar_member("bag/data/a", b"x"), tar_member("bag/data/odd", kind=kind)])
        with pytest.raises(BundleError, match="holds a tar header evidencekit never writes"):
            scan_payload(io.BytesIO(data), Findings())


def test_scan_payload_reports_hidden_bytes_after_the_tar():
    findings = Findings()
    scan_payload(io.BytesIO(canonical_member("bag/data/x", b"x") + END + b"hidden!"), findings)
    assert [f.problem for f in findings.items] == ["7 non-zero bytes follow the end of the "
                                                    "payload tar"]


def test_scan_payload_with_a_truncated_tar_raises_a_bundle_error():
    data = tar_of([tar_member("bag/data/a", os.urandom(3000))])
    with pytest.raises(BundleError, match="unexpected end of data"):
        scan_payload(io.BytesIO(data[:1536]), Findings())
