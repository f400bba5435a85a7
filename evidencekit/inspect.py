"""Inspect: show what a bundle says about itself, without a key and without judging it.

``verify`` is the command that judges; inspect only reads the public parts (and says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from evidencekit.errors import BundleError
from evidencekit.format.documents import SEAL, CustodyEvent, Seal, custody_member
from evidencekit.format.outer import Member
from evidencekit.format.reader import open_bundle
from evidencekit.protection import RecipientInfo, read_payload_header, recipients_in


@dataclass
class Inspection:
    path: Path
    members: list[Member]
    seal: Seal
    events: list[CustodyEvent] = field(default_factory=list)
    recipient_types: list[str] = field(default_factory=list)
    recipients: list[RecipientInfo] = field(default_factory=list)  # one per stanza, in order


def inspect_bundle(path: Path) -> Inspection:
    bundle = open_bundle(path)
    try:
        if SEAL not in bundle.by_name:
            raise BundleError(f"{path} has no seal.json: it is not an evidencekit bundle")
        seal = Seal.from_json(bundle.read_small(SEAL))
        events = [CustodyEvent.from_json(bundle.read_small(custody_member(n)), custody_member(n))
                  for n in range(1, bundle.custody_count() + 1)
                  if custody_member(n) in bundle.by_name]
        header = read_payload_header(bundle)
        recipients = [] if header is None else recipients_in(header.stanzas)
        return Inspection(path, bundle.members, seal, events, [r.type for r in recipients],
                          recipients)
    finally:
        bundle.close()
