"""Receipts: a short, printable summary that proves later which bundle was handed over, and
checking a bundle against one (verify --receipt).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from evidencekit.errors import UsageError
from evidencekit.findings import Findings
from evidencekit.verify import Report

RECEIPT_TITLE = "EVIDENCEKIT RECEIPT"
RECEIPT_FIELDS = ("Case", "Sealed at", "Files", "Bytes", "Root hash", "Payload SHA-256",
                  "Sealed by", "Custody events", "Newest event SHA-256", "Newest event")


def receipt_fields(report: Report) -> dict[str, str]:
    assert report.seal is not None and report.events
    seal, last = report.seal, report.events[-1]
    return {
        "Case": seal.case_id,
        "Sealed at": seal.created,
        "Files": str(seal.counts["files"]),
        "Bytes": str(seal.total_bytes),
        "Root hash": seal.manifest_root,
        "Payload SHA-256": report.payload_sha256 or "",
        "Sealed by": seal.signer.fingerprint,
        "Custody events": str(len(report.events)),
        "Newest event SHA-256": hashlib.sha256(last.to_json()).hexdigest(),
        "Newest event": f"#{last.sequence} {last.action} by {last.actor_name} at {last.time}",
    }


def receipt_text(report: Report, bundle_name: str) -> str:
    """A short, printable summary that proves later which bundle was handed over."""
    fields = receipt_fields(report)
    width = max(map(len, fields))
    lines = [RECEIPT_TITLE, "=" * len(RECEIPT_TITLE), f"Bundle file: {bundle_name}", ""]
    lines += [f"{key + ':':<{width + 1}} {_printable(value)}" for key, value in fields.items()]
    lines += ["", "Keep this receipt. It identifies the evidence (root hash), the encrypted bundle",
              "(payload SHA-256), who sealed it, and the newest custody event at hand-over. Check",
              "a bundle against it with:  evidencekit verify BUNDLE --receipt THIS-FILE", ""]
    return "\n".join(lines)


def _printable(value: str) -> str:
    """One line, whatever the value holds: a name with a newline must not forge a receipt field."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in value)


def parse_receipt(text: str) -> dict[str, str]:
    if not text.startswith(RECEIPT_TITLE):
        raise UsageError("this is not an evidencekit receipt")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in RECEIPT_FIELDS:
            if key.strip() in fields:
                raise UsageError(f"the receipt names '{key.strip()}' twice; it was altered")
            fields[key.strip()] = value.strip()
    missing = [k for k in RECEIPT_FIELDS if k not in fields]
    if missing:
        raise UsageError(f"the receipt is incomplete: missing {', '.join(missing)}")
    return fields


@dataclass(frozen=True)
class ReceiptCheck:
    """What checking a bundle against a receipt found: *matches* is None when the bundle could
    not be read far enough to tell; *newest_event* is the sequence number of the receipt's
    newest event in this bundle's log, *events_since* how many were added after it."""

    matches: bool | None
    newest_event: int | None = None
    events_since: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"matches": self.matches, "newest_event": self.newest_event,
                "events_since": self.events_since}


def check_receipt(report: Report, receipt: dict[str, str], findings: Findings) -> ReceiptCheck:
    """The bundle is the one the receipt describes, with its custody log at least as long.
    Each difference is an error in *findings*; the outcome says whether all matched."""
    if report.seal is None:
        return ReceiptCheck(None)
    before = len(findings.errors)
    actual = receipt_fields(report) if report.events else {}
    for key in ("Case", "Sealed at", "Files", "Bytes", "Root hash", "Sealed by"):
        if actual.get(key) != receipt[key]:
            findings.error("receipt", key, "differs from the receipt", receipt[key],
                           actual.get(key))
    hashes = [hashlib.sha256(e.to_json()).hexdigest() for e in report.events]
    newest = receipt["Newest event SHA-256"]
    if newest not in hashes:
        findings.error("receipt", "custody", "the custody event named on the receipt is not in "
                       "the bundle's log (events were removed or the log was replaced)", newest)
        return ReceiptCheck(False)
    position = hashes.index(newest)
    payloads = {e.payload_sha256 for e in report.events[: position + 1]}
    if receipt["Payload SHA-256"] not in payloads:
        findings.error("receipt", "payload", "the payload on the receipt is not one this bundle's "
                       "log knows", receipt["Payload SHA-256"], report.payload_sha256)
    return ReceiptCheck(len(findings.errors) == before, report.events[position].sequence,
                        len(report.events) - position - 1)
