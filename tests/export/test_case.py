"""CASE/UCO JSON-LD export: validated by case_validate (PyPI case-utils, CASE 1.5.0)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.sealed import Sealed
from tests.support.tools import require_python_tool

pytestmark = pytest.mark.interop


def case_validate(document: Path) -> subprocess.CompletedProcess[str]:
    tool = require_python_tool("case_validate", "case-utils")
    return subprocess.run([tool, str(document)], capture_output=True, text=True,
                          timeout=300)


def nodes(document: Path) -> dict[str, dict[str, Any]]:
    return {node["@id"]: node for node in json.loads(document.read_text("utf-8"))["@graph"]}


def of_type(graph: dict[str, dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [node for node in graph.values() if node["@type"] == kind]


def test_case_export_validates_and_says_what_the_bundle_holds(sealed: Sealed,
                                                              tmp_path: Path) -> None:
    document = tmp_path / "case.jsonld"
    done = sealed.export("case", document)
    assert done.code == 0, done.stderr
    checked = case_validate(document)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Conforms: True" in checked.stdout
    graph = nodes(document)
    [investigation] = of_type(graph, "case-investigation:Investigation")
    assert investigation["uco-core:name"] == "CASE-25"
    [authorization] = of_type(graph, "case-investigation:Authorization")
    assert authorization["case-investigation:authorizationIdentifier"] == ["Warrant 12/2026"]
    [captured] = of_type(graph, "case-investigation:InvestigativeAction")
    assert captured["uco-core:name"] == "captured"
    performer = graph[captured["uco-action:performer"]["@id"]]
    assert performer["uco-core:name"] == "Det. Example"
    assert graph[captured["uco-action:instrument"][0]["@id"]]["uco-core:name"] == "evidencekit"
    [record] = of_type(graph, "case-investigation:ProvenanceRecord")
    files = [graph[ref["@id"]] for ref in record["uco-core:object"]]
    assert len(files) == 6  # the hard link's second name too
    scam = (sealed.evidence / "mail" / "scam.eml").read_bytes()
    hashes = {}
    for file in files:
        facets = [graph[ref["@id"]] for ref in file["uco-core:hasFacet"]]
        kinds = {facet["@type"]: facet for facet in facets}
        name = kinds["uco-observable:FileFacet"]["uco-observable:filePath"][0]
        content = kinds["uco-observable:ContentDataFacet"]
        [digest] = [graph[ref["@id"]] for ref in content["uco-observable:hash"]]
        assert digest["uco-types:hashMethod"] == "SHA256"
        hashes[name] = digest["uco-types:hashValue"]["@value"]
    assert hashes["evidence/mail/scam.eml"] == hashlib.sha256(scam).hexdigest()
    assert "evidence/latin1-\\xe9t\\xe9.txt" in hashes


def test_the_export_is_reproducible_and_keeps_identifiers(sealed: Sealed,
                                                          tmp_path: Path) -> None:
    bundle = tmp_path / "copy.evidence"
    shutil.copyfile(sealed.bundle, bundle)
    first, second, later = tmp_path / "1.jsonld", tmp_path / "2.jsonld", tmp_path / "3.jsonld"
    for output in (first, second):
        assert sealed.cli("export", bundle, "-i", sealed.identity, "--format", "case",
                          "-o", output).code == 0
    assert first.read_bytes() == second.read_bytes()
    added = sealed.cli("custody", "add", bundle, "--action", "transferred", "--to", "Det. B",
                       "--sign-key", sealed.signer)
    assert added.code == 0, added.stderr
    assert sealed.cli("export", bundle, "-i", sealed.identity, "--format", "case",
                      "-o", later).code == 0
    before, after = nodes(first), nodes(later)
    assert set(before) < set(after)
    actions = of_type(after, "case-investigation:InvestigativeAction")
    assert [a["uco-core:name"] for a in actions] == ["captured", "transferred"]


def test_case_validate_refuses_a_broken_hash(sealed: Sealed, tmp_path: Path) -> None:
    """The validation above can fail: the same export with one hash value that is not hex."""
    document = tmp_path / "case.jsonld"
    assert sealed.export("case", document).code == 0
    data = json.loads(document.read_text("utf-8"))
    for node in data["@graph"]:
        if node["@type"] == "uco-types:Hash":
            node["uco-types:hashValue"]["@value"] = "not-hex"
            break
    broken = tmp_path / "broken.jsonld"
    broken.write_text(json.dumps(data), encoding="utf-8")
    checked = case_validate(broken)
    assert checked.returncode != 0
    assert "Conforms: False" in checked.stdout
    assert os.path.getsize(broken) > 0


def test_a_bundle_whose_name_is_not_utf8_is_exported(sealed: Sealed, tmp_path: Path) -> None:
    # A bundle copied from another system: the CASE export ended in an internal error (exit 5).
    bundle = Path(os.fsdecode(os.fsencode(tmp_path) + b"/case-\xff.evidence"))
    bundle.write_bytes(sealed.bundle.read_bytes())
    document = tmp_path / "case.jsonld"
    done = sealed.cli("export", bundle, "-i", sealed.identity, "--format", "case", "-o", document)
    assert done.code == 0, done.stderr
    names = [n.get("uco-observable:fileName") for n in nodes(document).values()]
    assert "case-\\xff.evidence" in names
    dfxml = tmp_path / "files.xml"
    done = sealed.cli("export", bundle, "-i", sealed.identity, "--format", "dfxml", "-o", dfxml)
    assert done.code == 0, done.stderr
    assert "<image_filename>case-\\xff.evidence</image_filename>" in dfxml.read_text("utf-8")
