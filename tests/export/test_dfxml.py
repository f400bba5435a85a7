"""DFXML export: well-formed for the real xmllint, the schema's element order, every item.

Validation against dfxml.xsd itself is not run here: the schema is in no package this project
can install (PyPI, Debian, npm); see docs/decisions/dfxml-schema.md.
"""

from __future__ import annotations

import hashlib
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.sealed import Sealed, seal
from tests.support.tools import require_tool

pytestmark = pytest.mark.interop
NS = "{http://www.forensicswiki.org/wiki/Category:Digital_Forensics_XML}"
# fileobject's children in the order dfxml.xsd's sequence gives them (those evidencekit writes)
ORDER = ["filename", "id", "name_type", "filesize", "inode", "mode", "nlink", "uid", "gid",
         "mtime", "ctime", "atime", "crtime", "link_target", "libmagic", "hashdigest"]


def well_formed(document: Path) -> None:
    xmllint = require_tool("xmllint")
    done = subprocess.run([xmllint, "--noout", str(document)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def objects(document: Path) -> dict[str, ET.Element]:
    root = ET.parse(document).getroot()
    assert root.tag == f"{NS}dfxml"
    assert [child.tag for child in root][:3] == [f"{NS}metadata", f"{NS}creator", f"{NS}source"]
    found = {}
    for item in root.iter(f"{NS}fileobject"):
        tags = [child.tag.removeprefix(NS) for child in item]
        assert tags == sorted(tags, key=ORDER.index), tags
        found[item.findtext(f"{NS}filename") or ""] = item
    return found


def test_dfxml_lists_every_item_with_hashes(sealed: Sealed, tmp_path: Path) -> None:
    document = tmp_path / "files.xml"
    done = sealed.export("dfxml", document)
    assert done.code == 0, done.stderr
    well_formed(document)
    found = objects(document)
    scam = (sealed.evidence / "mail" / "scam.eml").read_bytes()
    item = found["evidence/mail/scam.eml"]
    assert item.findtext(f"{NS}name_type") == "r"
    assert item.findtext(f"{NS}filesize") == str(len(scam))
    digests = {d.get("type"): d.text for d in item.iter(f"{NS}hashdigest")}
    assert digests == {"md5": hashlib.md5(scam).hexdigest(),
                       "sha256": hashlib.sha256(scam).hexdigest()}
    copy = {d.get("type"): d.text for d in
            found["evidence/statement-copy.csv"].iter(f"{NS}hashdigest")}
    original = (sealed.evidence / "statement.csv").read_bytes()
    assert copy["md5"] == hashlib.md5(original).hexdigest()  # a hard link: its first name's
    link = found["evidence/link-to-scam"]
    assert (link.findtext(f"{NS}name_type"), link.findtext(f"{NS}link_target")) == \
        ("l", "mail/scam.eml")
    assert found["evidence/empty-folder"].findtext(f"{NS}name_type") == "d"
    assert "evidence/latin1-\\xe9t\\xe9.txt" in found


def test_a_name_xml_cannot_carry_is_escaped_and_said(tmp_path: Path) -> None:
    sealed = seal(tmp_path, odd_names=False)
    (sealed.evidence / "bell\x07.txt").write_text("ding\n")
    again = tmp_path / "again.evidence"
    assert sealed.cli("capture", sealed.evidence, "-o", again, "--case", "CASE-25c", "-R",
                      sealed.identity.with_name("recipient.txt"), "--sign-key",
                      sealed.signer).code == 0
    document = tmp_path / "files.xml"
    done = sealed.cli("export", again, "-i", sealed.identity, "--format", "dfxml",
                      "-o", document, "--json")
    assert done.code == 0, done.stderr
    assert "XML cannot carry" in done.json()["notices"][0]
    well_formed(document)
    assert "evidence/bell\\x07.txt" in objects(document)


@pytest.mark.parametrize("error", ["cannot read a--b", "cannot read a---b", "x----", "-"])
def test_an_error_text_with_dashes_stays_a_well_formed_comment(error: str,
                                                                tmp_path: Path) -> None:
    # The comment before an item that could not be read: "a---b" (a file's name, in the error
    # text) became "a- --b", and xmllint refused the whole export.
    from evidencekit.export.dfxml import DfxmlJob
    from evidencekit.export.registry import ExportContext

    job = DfxmlJob(ExportContext(tmp_path / "b.evidence", "2026-01-01T00:00:00Z", "evidencekit 1"))
    entry = {"kind": "file", "path": "a---b", "bag_path": "data/a---b", "error": error}
    document = tmp_path / "files.xml"
    document.write_text(f"<dfxml>\n{job._fileobject(1, entry)}</dfxml>\n", "utf-8")
    well_formed(document)
