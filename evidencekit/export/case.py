"""CASE/UCO JSON-LD (CASE 1.5.0): the investigation, its custody and every file, for tools that
read the Cyber-investigation Analysis Standard Expression (https://caseontology.org).

What it states, all from the verified bundle:

- an ``investigation:Investigation`` named by the case id, with the case's description, and its
  ``investigation:Authorization`` (the legal basis given at capture, or a description saying
  that none was given);
- each custody event as an ``investigation:InvestigativeAction``: its action, time, performer
  (an ``identity:Identity`` per signing key, named as the signer calls itself, a claim; the key's
  fingerprint and standing in its description) and instrument (evidencekit; the capture's
  version when known);
- the capture's result, an ``investigation:ProvenanceRecord`` whose objects are the files;
- every file of the evidence as an ``observable:File`` with a ``FileFacet`` (name, original path,
  size, times) and, when its content was stored, a ``ContentDataFacet`` (size, MIME type) with
  its SHA-256 as a ``types:Hash`` (``hashMethod`` the plain string "SHA256").

Identifiers are UUIDv5 from the SHA-256 of ``seal.json`` and what each node is, so exporting the
same bundle again gives the same bytes, and a node keeps its identifier when custody events are
added later. Nodes are written one at a time: memory stays flat however many files there are.
"""

from __future__ import annotations

import json
import posixpath
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from evidencekit.export.registry import ExportContext, Format, NoContent, Written, register
from evidencekit.export.stored import evidence_files, original_path
from evidencekit.format.documents import CustodyEvent
from evidencekit.verify import Report

# Fixed for this export format (uuid5 of the URL namespace and
# "https://evidencekit.invalid/export/case"): never change it, or every identifier changes.
NAMESPACE = uuid.UUID("35aadba8-6959-5d4b-9373-885b73d67c91")
KB = "urn:evidencekit:"
CONTEXT = {
    "kb": KB,
    "case-investigation": "https://ontology.caseontology.org/case/investigation/",
    "uco-action": "https://ontology.unifiedcyberontology.org/uco/action/",
    "uco-core": "https://ontology.unifiedcyberontology.org/uco/core/",
    "uco-identity": "https://ontology.unifiedcyberontology.org/uco/identity/",
    "uco-observable": "https://ontology.unifiedcyberontology.org/uco/observable/",
    "uco-tool": "https://ontology.unifiedcyberontology.org/uco/tool/",
    "uco-types": "https://ontology.unifiedcyberontology.org/uco/types/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}
Node = dict[str, Any]


def _time(value: str) -> Node:
    return {"@type": "xsd:dateTime", "@value": value}


def _ref(iri: str) -> Node:
    return {"@id": iri}


class Identifiers:
    """kb:KIND-UUIDv5, the UUID from this bundle's seal and what the node is."""

    def __init__(self, seal_sha256: str) -> None:
        self.seal_sha256 = seal_sha256

    def __call__(self, kind: str, key: str = "") -> str:
        return f"kb:{kind}-{uuid.uuid5(NAMESPACE, f'{self.seal_sha256}/{kind}/{key}')}"


class CaseJob(NoContent):
    def __init__(self, context: ExportContext) -> None:
        self.context = context

    def finish(self, checked: Report, out: BinaryIO, staged: Path | None) -> Written:
        out.write(b'{\n"@context": ' + json.dumps(CONTEXT, sort_keys=True).encode() +
                  b',\n"@graph": [\n')
        first = True
        for node in graph(checked, self.context.bundle_name):
            if not first:
                out.write(b",\n")
            out.write(json.dumps(node, sort_keys=True, ensure_ascii=False).encode("utf-8"))
            first = False
        out.write(b"\n]\n}\n")
        return Written()


def graph(report: Report, bundle_name: str) -> Iterator[Node]:
    """Every node of the export, in a fixed order."""
    assert report.seal is not None and report.manifest is not None and report.events
    ids = Identifiers(report.events[0].previous_sha256)  # event 1 chains to seal.json
    case = report.manifest.get("case", {})
    capture = report.manifest.get("capture", {})
    events = report.events
    yield from _investigation(ids, report, case, events)
    yield from _people(ids, report, events)
    yield from _tools(ids, capture)
    yield {"@id": ids("bundle"), "@type": "uco-observable:File",
           "uco-core:description": "The evidencekit bundle (signed, encrypted) that holds the "
           f"evidence; its sealed payload has SHA-256 {report.seal.payload_sha256}.",
           "uco-core:hasFacet": [_ref(ids("bundle-file"))]}
    yield {"@id": ids("bundle-file"), "@type": "uco-observable:FileFacet",
           "uco-observable:fileName": bundle_name}
    for event in events:
        yield _action(ids, event, capture)
    yield _provenance(ids, report)
    for stored in evidence_files(report):
        yield from _file(ids, stored.entry or {})
    yield from _unstored_files(ids, report)


def _investigation(ids: Identifiers, report: Report, case: dict[str, Any],
                   events: list[CustodyEvent]) -> Iterator[Node]:
    assert report.seal is not None
    objects = [_ref(ids("provenance-record"))] + \
        [_ref(ids("action", str(e.sequence))) for e in events]
    investigation: Node = {
        "@id": ids("investigation"), "@type": "case-investigation:Investigation",
        "uco-core:name": report.seal.case_id,
        "case-investigation:relevantAuthorization": [_ref(ids("authorization"))],
        "uco-core:object": objects}
    if case.get("description"):
        investigation["uco-core:description"] = str(case["description"])
    if case.get("organisation"):
        investigation["case-investigation:focus"] = f"Evidence captured by {case['organisation']}"
    yield investigation
    legal_basis = str(case.get("legal_basis") or "")
    authorization: Node = {"@id": ids("authorization"),
                           "@type": "case-investigation:Authorization",
                           "case-investigation:authorizationType": "legal basis"}
    if legal_basis:
        authorization["case-investigation:authorizationIdentifier"] = [legal_basis]
    else:
        authorization["uco-core:description"] = "No legal basis was recorded at capture."
    yield authorization


def _people(ids: Identifiers, report: Report, events: list[CustodyEvent]) -> Iterator[Node]:
    """One identity per signing key; the name is the one the key first used (a claim)."""
    seen: dict[str, list[str]] = {}
    for event in events:
        names = seen.setdefault(event.actor.fingerprint, [])
        if event.actor_name not in names:
            names.append(event.actor_name)
    for fingerprint, names in seen.items():
        yield {"@id": ids("identity", fingerprint), "@type": "uco-identity:Identity",
               "uco-core:name": names[0],
               "uco-core:description": f"Holder of the SSH signing key {fingerprint} "
               f"({report.standing(fingerprint)} key, as verified); the names it signed "
               f"custody events with: {', '.join(names)} (each one a claim of the key's holder)."}


def _tools(ids: Identifiers, capture: dict[str, Any]) -> Iterator[Node]:
    tools = capture.get("tools", {}) if isinstance(capture.get("tools"), dict) else {}
    sealed_with: Node = {"@id": ids("tool", "capture"), "@type": "uco-tool:Tool",
                         "uco-core:name": "evidencekit", "uco-tool:toolType": "evidence capture"}
    if isinstance(tools.get("evidencekit"), str):
        sealed_with["uco-tool:version"] = tools["evidencekit"]
    yield sealed_with
    yield {"@id": ids("tool", "custody"), "@type": "uco-tool:Tool", "uco-core:name": "evidencekit",
           "uco-tool:toolType": "chain of custody",
           "uco-core:description": "The version that signed a custody event after capture is "
           "not recorded."}


def _action(ids: Identifiers, event: CustodyEvent, capture: dict[str, Any]) -> Node:
    captured = event.action == "captured"
    node: Node = {"@id": ids("action", str(event.sequence)),
                  "@type": "case-investigation:InvestigativeAction",
                  "uco-core:name": event.action,
                  "uco-action:performer": _ref(ids("identity", event.actor.fingerprint)),
                  "uco-action:instrument": [_ref(ids("tool", "capture" if captured
                                                      else "custody"))]}
    if captured and isinstance(capture.get("started"), str) and \
            isinstance(capture.get("finished"), str):
        node["uco-action:startTime"] = _time(capture["started"])
        node["uco-action:endTime"] = _time(capture["finished"])
        node["uco-action:result"] = [_ref(ids("provenance-record")), _ref(ids("bundle"))]
    else:
        node["uco-action:startTime"] = _time(event.time)
        node["uco-action:object"] = [_ref(ids("bundle"))]
    words = [f"Custody event #{event.sequence} ({event.action}), signed by "
             f"{event.actor.fingerprint} on host {event.host}."]
    if event.counterparty:
        words.append(f"Counterparty: {event.counterparty}.")
    if event.note:
        words.append(f"Note: {event.note}")
    words += [f"{key}: {value}" for key, value in sorted(event.details.items())]
    node["uco-core:description"] = " ".join(words)
    return node


def _provenance(ids: Identifiers, report: Report) -> Node:
    assert report.seal is not None
    files = [_ref(ids("file", stored.path)) for stored in evidence_files(report)]
    files += [_ref(ids("file", path)) for path, _ in _unstored(report)]
    return {"@id": ids("provenance-record"), "@type": "case-investigation:ProvenanceRecord",
            "case-investigation:exhibitNumber": report.seal.case_id,
            "uco-core:description": f"The files captured into the evidence bundle, sealed "
            f"{report.seal.created}; each stored file's SHA-256 is verified.",
            "uco-core:object": files}


def _file(ids: Identifiers, entry: dict[str, Any]) -> Iterator[Node]:
    bag_path = entry["bag_path"]
    facets = [_ref(ids("file-facet", bag_path))]
    stored = isinstance(entry.get("sha256"), str)
    if stored:
        facets.append(_ref(ids("content-facet", bag_path)))
    node: Node = {"@id": ids("file", bag_path), "@type": "uco-observable:File",
                  "uco-core:hasFacet": facets}
    if entry.get("error"):
        node["uco-core:description"] = f"Not read completely at capture: {entry['error']}"
    yield node
    yield _file_facet(ids, entry)
    if stored:
        yield {"@id": ids("content-facet", bag_path), "@type": "uco-observable:ContentDataFacet",
               "uco-observable:sizeInBytes": entry["size"],
               "uco-observable:mimeType": [str(entry.get("mime") or "application/octet-stream")],
               "uco-observable:hash": [_ref(ids("hash", bag_path))]}
        yield {"@id": ids("hash", bag_path), "@type": "uco-types:Hash",
               "uco-types:hashMethod": "SHA256",
               "uco-types:hashValue": {"@type": "xsd:hexBinary", "@value": entry["sha256"]}}


def _file_facet(ids: Identifiers, entry: dict[str, Any]) -> Node:
    path = original_path(entry)
    facet: Node = {"@id": ids("file-facet", entry["bag_path"]),
                   "@type": "uco-observable:FileFacet",
                   "uco-observable:fileName": [posixpath.basename(path)],
                   "uco-observable:filePath": [path],
                   "uco-observable:isDirectory": [False]}
    if isinstance(entry.get("size"), int):
        facet["uco-observable:sizeInBytes"] = entry["size"]
    extension = posixpath.splitext(posixpath.basename(path))[1]
    if extension:
        facet["uco-observable:extension"] = extension[1:]
    for key, term in (("mtime", "modifiedTime"), ("atime", "accessedTime"),
                      ("ctime", "metadataChangeTime"), ("birthtime", "observableCreatedTime")):
        if isinstance(entry.get(key), str):
            facet[f"uco-observable:{term}"] = _time(entry[key])
    return facet


def _unstored(report: Report) -> Iterator[tuple[str, dict[str, Any]]]:
    """Files the manifest lists without stored content (could not be opened or read)."""
    if report.manifest is None:
        return
    for entry in report.manifest.entries():
        if isinstance(entry, dict) and entry.get("kind") == "file" and \
                not isinstance(entry.get("sha256"), str) and isinstance(entry.get("bag_path"), str):
            yield entry["bag_path"], entry


def _unstored_files(ids: Identifiers, report: Report) -> Iterator[Node]:
    for _, entry in _unstored(report):
        yield from _file(ids, entry)


FORMAT = register(Format("case", "CASE/UCO 1.5.0 JSON-LD (investigation, custody, files)",
                         ".jsonld", CaseJob))
