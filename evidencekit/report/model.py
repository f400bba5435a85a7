"""What a report says, gathered once from a verified bundle; the HTML and PDF writers only lay it out.

Everything shown comes from signed parts of the bundle: the seal, the signed manifest, the incident
record it names, the signed custody log (where "note" events add to the incident record) and the
signed addenda inside the payload (encrypted additions, FORMAT.md §4.6).
Text from the bundle is hostile input: :func:`visible` makes invisible and direction-changing
characters visible, and each writer escapes for its own markup.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from evidencekit import __version__
from evidencekit import incident as inc
from evidencekit.errors import BundleError
from evidencekit.format import bag
from evidencekit.format.documents import SEAL_SIG, CustodyEvent, Seal, custody_member
from evidencekit.protection import protection_of, wrong_key
from evidencekit.report.previews import (
    EMAIL_HEAD_BYTES,
    FEW_EMAILS,
    MAX_FULL_HEADERS,
    Email,
    FullHeaders,
    Picture,
    PreviewCollector,
    Previews,
    matching,
)
from evidencekit.sources.files.records import bytes_from_field
from evidencekit.text import plural, size_text, visible
from evidencekit.timestamps import Checked
from evidencekit.verify import SEALER, TRUSTED, UNKNOWN, UNTRUSTED, Report, signer_label


def utc_human(stamp: str | None) -> str:
    """'2026-11-16T13:05:07.123456789Z' → '2026-11-16 13:05:07 UTC'."""
    if not stamp:
        return ""
    return f"{stamp[:10]} {stamp[11:19]} UTC" if len(stamp) >= 19 else stamp


def short_fingerprint(fingerprint: str) -> str:
    return fingerprint[:19] + "…" if len(fingerprint) > 20 else fingerprint


@dataclass
class EvidenceItem:
    number: int
    path: str  # for display (visible(); undecodable bytes as \xNN)
    kind: str
    mime: str
    size: int | None
    modified: str
    created: str
    sha256: str
    remarks: str
    bag_path: str = ""  # where the payload holds it (data/…): what previews are matched by


@dataclass
class TimelineRow:
    utc: str  # for sorting (a date given without a time: that date)
    when: str  # as entered, for people
    what: str
    source: str


@dataclass
class LossRow:
    loss: inc.Loss
    source: str
    counted: bool = True  # False: signed by a key that does not speak for anyone here

    @property
    def amount_text(self) -> str:
        return self.loss.amount if self.counted else f"{self.loss.amount} (not counted)"


@dataclass
class IdentifierRow:
    identifier: inc.Identifier
    source: str


@dataclass
class SignerRow:
    name: str  # as the report shows it: a claim unless the key is trusted (verify.signer_label)
    role: str
    fingerprint: str
    public_key: str
    standing: str = UNKNOWN  # verify.TRUSTED, UNTRUSTED, SEALER or UNKNOWN


@dataclass
class TimestampRow:
    """A trusted (RFC 3161) timestamp of the seal, as verify checked it (step 12)."""

    time: str  # the TSA's time, RFC 3339 (UTC)
    authority: str  # the TSA as its certificate names it
    policy: str
    serial: str
    checked: str  # in words: whether it was checked against a root the reader trusts


@dataclass
class ReportData:
    bundle_name: str
    generated: str
    verified: bool
    decrypted: bool
    trusted: bool | None
    problems: list[str]
    warnings: list[str]  # technical, for the details section
    seal: Seal
    payload_sha256: str
    newest_event_sha256: str
    case: dict[str, str] = field(default_factory=dict)
    capture: dict[str, Any] = field(default_factory=dict)
    incident: inc.Incident | None = None
    incident_sha256: str | None = None
    incident_problem: str | None = None
    incident_sealed: bool = True  # False: the record shown is not the one the signed manifest names
    timeline: list[TimelineRow] = field(default_factory=list)
    losses: list[LossRow] = field(default_factory=list)
    totals: dict[str, str] = field(default_factory=dict)
    identifiers: list[IdentifierRow] = field(default_factory=list)
    items: list[EvidenceItem] = field(default_factory=list)
    custody: list[CustodyEvent] = field(default_factory=list)
    signers: list[SignerRow] = field(default_factory=list)
    actor_labels: dict[int, str] = field(default_factory=dict)  # event sequence → who signed
    not_counted: int = 0  # notes, losses … signed by keys that do not speak for anyone here
    untrusted_losses: int = 0  # losses among them, shown but left out of the totals
    tool_version: str = __version__
    previews: Previews = field(default_factory=Previews)  # only from files that verified
    notices: list[str] = field(default_factory=list)  # the warnings in plain words, for the banner
    live: str = ""  # capture --live: what was collected, in counts ("" when not collected)
    devices: list[str] = field(default_factory=list)  # capture --device: one line per image
    web_pages: list[str] = field(default_factory=list)  # capture --url: one line per page
    remote: list[str] = field(default_factory=list)  # capture --remote: how it came, per host
    timestamps: list[TimestampRow] = field(default_factory=list)  # those that passed step 12

    def actor_label(self, event: CustodyEvent) -> str:
        """Who signed *event*, as the report names them (a claim unless trusted)."""
        return self.actor_labels.get(event.sequence, event.actor_name)

    @property
    def money_lost(self) -> str:
        """The summary's "Money lost": the counted totals, and how many losses were not."""
        text = ", ".join(f"{v} {c}" for c, v in self.totals.items()) or "none recorded"
        count = self.untrusted_losses
        if count:
            text += (f" (not counted: {count} more {'loss' if count == 1 else 'losses'} signed "
                     "by keys that do not speak for the victim; see section 3)")
        return text

    @property
    def title(self) -> str:
        return f"Evidence report — case {self.seal.case_id}"


def collect(report: Report, bundle_name: str, generated: str,
            seen: PreviewCollector | None = None) -> ReportData:
    """Gather the report from a finished ``verify`` (ideally one that decrypted and passed);
    *seen*: the preview collector that verify was given as its visitor, if any."""
    if report.seal is None:
        raise BundleError("the bundle's seal cannot be read, so there is nothing to report",
                          hint="run 'evidencekit verify' to see what is wrong")
    seal = report.seal
    events = report.events
    data = ReportData(
        bundle_name=bundle_name, generated=generated, verified=report.ok and report.decrypted,
        decrypted=report.decrypted, trusted=report.trusted,
        problems=[finding_line(f) for f in report.findings.errors],
        warnings=[finding_line(f) for f in report.findings.items if f.severity != "error"],
        seal=seal, payload_sha256=report.payload_sha256 or "",
        newest_event_sha256=hashlib.sha256(events[-1].to_json()).hexdigest() if events else "",
        custody=list(events))
    data.notices = _notices([f for f in report.findings.items if f.severity != "error"], events,
                            report)
    if report.no_matching_key:  # in plain words; the age message names stanza types
        advice = wrong_key(protection_of(report.recipients, report.bundle))
        data.problems.append(f"the bundle could not be opened: {advice.message}")
    manifest = report.manifest
    fields = manifest.fields if manifest is not None else {}
    data.case = {k: str(v) for k, v in (fields.get("case") or {}).items()} or _case_outside(
        seal, events)
    data.capture = dict(fields.get("capture") or {})
    data.items = _items(manifest.entries() if manifest is not None else iter(()))
    data.live = _live(events, fields)
    data.devices = _devices(fields)
    data.web_pages = web_pages(fields)
    data.remote = remote_hosts(fields, events)
    _incident(report, fields, data)
    _merge_notes(data, events, [a.document.note() for a in report.addenda if a.document],
                 report)
    data.signers = _signers(seal, events, report)
    data.timestamps = [_timestamp_row(t) for t in report.timestamps if t.problem is None]
    data.actor_labels = {e.sequence: signer_label(report.standing(e.actor.fingerprint),
                                                  e.actor_name) for e in events}
    if data.not_counted:  # said first in the banner, in plain words
        data.notices.insert(0, _not_counted_warning(data, report))
    if seen is not None and data.verified:  # a bundle that fails shows none of its content
        data.previews = matching(seen.finish(), {i.bag_path: (i.sha256, i.size) for i in data.items
                                              if i.kind == "file" and i.bag_path})
    return data


def _live(events: list[CustodyEvent], manifest: dict[str, Any]) -> str:
    """The live state's summary: the counts the sealer signed in the first custody event
    (FORMAT.md §6), where it is in the bag and from which host (the manifest's source record)."""
    if not events or events[0].action != "captured" or "live" not in events[0].details:
        return ""
    counts = visible(events[0].details["live"])
    sources = manifest.get("sources")
    record = next((s for s in sources if isinstance(s, dict) and s.get("kind") == "live"), None) \
        if isinstance(sources, list) else None
    if record is None:
        return counts
    host = visible(str(record.get("path", "?")))
    return f"{counts} (collected on {host}; in data/{visible(str(record.get('bag_name', '')))}.*)"


def _source_records(manifest: dict[str, Any], kind: str
                    ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """The manifest's source records of *kind*, each with its ``details`` ({} when it has
    none, or they are not an object: the report shows what it can)."""
    sources = manifest.get("sources")
    for record in sources if isinstance(sources, list) else []:
        if isinstance(record, dict) and record.get("kind") == kind:
            given = record.get("details")
            yield record, given if isinstance(given, dict) else {}


def web_pages(manifest: dict[str, Any]) -> list[str]:
    """Each captured web page in a line, from its signed source record (FORMAT.md §4.3, kind
    ``web``): the address asked for and where it led, when, from which IP address, under which
    certificate, and whether it is whole."""
    found = []
    for record, details in _source_records(manifest, "web"):
        asked, reached = visible(str(record.get("given", "?"))), visible(str(record.get("path")))
        said = [asked + (f" → {reached}" if reached != asked else "")]
        if isinstance(details.get("started"), str):
            said.append(f"fetched {utc_human(details['started'])}")
        status, address = details.get("status"), details.get("address")
        said.append((f"HTTP {status}" if isinstance(status, int) else "no answer")
                    + (f" from {visible(str(address))}" if address else ""))
        fingerprint = details.get("certificate_sha256")
        if isinstance(fingerprint, str):
            trust = ("trusted" if details.get("certificate_verified") is True else
                     f"not trusted: {visible(str(details.get('certificate_error')))}")
            said.append(f"certificate SHA-256 {visible(fingerprint)} ({trust})")
        pictures = [name for name, key in (("screenshot", "screenshot"), ("PDF", "pdf"))
                    if details.get(key) is True]
        said.append(" and ".join(pictures) + " made from the capture" if pictures
                    else "no screenshot")
        if details.get("complete") is False:
            said.append("NOT CAPTURED WHOLE (see remarks)")
        said.append(f"stored as data/{visible(str(record.get('bag_name', '?')))}.*")
        found.append("; ".join(said))
    return found


def remote_hosts(manifest: dict[str, Any], events: list[CustodyEvent]) -> list[str]:
    """How evidence came from another host (capture --remote): files read over SFTP and sealed
    here, labelled remote-logical with what SFTP cannot tell (FORMAT.md §4.3); or a bundle made
    there and received over SSH (its signed 'received' event, FORMAT.md §6)."""
    found = []
    for record, details in _source_records(manifest, "remote-logical"):
        bag = visible(str(record.get("bag_name", "?")))
        found.append(f"REMOTE-LOGICAL: files read over SFTP from {visible(str(record.get('given')))}"
                     f" (host key {visible(str(details.get('host_key', '?')))}) and sealed by the "
                     f"machine that read them; not recorded: "
                     f"{visible(str(details.get('not_recorded', '?')))}; reading may have "
                     f"changed access times there; every item in data/{bag}.remote-logical.json")
    for event in events:
        d = event.details
        if event.action == "received" and d.get("via") == "ssh":
            found.append(f"captured on {visible(d.get('remote', '?'))} by evidencekit there, "
                         f"sealed by a key made for that acquisition "
                         f"({visible(d.get('remote_signer', '?'))}), received over SSH from "
                         f"the host key {visible(d.get('host_key', '?'))}: "
                         f"{visible(d.get('bytes', '?'))} bytes, "
                         f"{utc_human(d.get('started', ''))} to {utc_human(d.get('finished', ''))}"
                         f" (custody event {event.sequence})")
    return found


def _devices(manifest: dict[str, Any]) -> list[str]:
    """Each imaged device in a line, from its signed source record (FORMAT.md §4.3, kind
    ``device``): where from, model and serial, size, and what could not be read."""
    found = []
    for record, details in _source_records(manifest, "device"):
        name = visible(str(record.get("bag_name", "?")))
        said = [f"data/{name} imaged from {visible(str(record.get('path', '?')))}"]
        known = [f"{label} {visible(str(details[key]))}" for key, label in
                 (("model", "model"), ("serial", "serial"))
                 if details.get(key) not in (None, "unknown")]
        if known:
            said.append(", ".join(known))
        if isinstance(details.get("size"), int):
            said.append(f"{size_text(details['size'])} bytes")
        bad = details.get("bad_sectors")
        if isinstance(bad, int) and bad:
            said.append(f"{plural(bad, 'bad sector')} stored as zeros, the first at byte "
                        f"{visible(str(details.get('first_bad_byte')))} (every range in "
                        f"data/{name}.mapfile)")
        elif bad == 0:
            said.append("every sector read")
        if details.get("vanished"):
            unread = sum(details.get(key) or 0 for key in
                         ("untried_bytes", "non_trimmed_bytes", "non_scraped_bytes"))
            said.append(f"the device stopped answering: {unread} bytes never read")
        said.append(f"SHA-256 of every 16 MiB in data/{name}.windows, identity in "
                    f"data/{name}.device.json")
        found.append("; ".join(said))
    return found


def _timestamp_row(stamp: Checked) -> TimestampRow:
    if stamp.signature_valid is False:
        checked = ("its signature does not check with the TSA's own certificate: it proves "
                   "nothing about when the bundle existed")
    elif stamp.trusted:
        checked = "checked against the trusted root given (--tsa-ca)"
    else:
        checked = ("its signature matches the seal, but it was not checked against a root you "
                   "trust: give the TSA's root certificate with --tsa-ca")
    return TimestampRow(stamp.time, stamp.tsa or "unnamed authority", stamp.policy,
                        str(stamp.serial), checked)


def _not_counted_warning(data: ReportData, report: Report) -> str:
    who = ("keys not listed as trusted" if report.trusted_keys is not None else
           "keys other than the sealer's (no trusted keys were given)")
    return (f"{plural(data.not_counted, 'entry')} (notes, losses, contacts, timeline entries) "
            f"{'is' if data.not_counted == 1 else 'are'} signed by {who}: shown by key "
            f"fingerprint, marked {UNTRUSTED_MARK}, and left out of the totals.")


def _case_outside(seal: Seal, events: list[CustodyEvent]) -> dict[str, str]:
    """What the unencrypted part of the bundle says about the case when the manifest could not
    be read: its id (the seal), and who captured it (the first custody event's actor, who is the
    manifest's examiner)."""
    case = {"case_id": seal.case_id}
    if events and events[0].action == "captured":
        case["examiner"] = events[0].actor_name
    return case


# The verification steps (docs/FORMAT.md §7.1, and the custody receipt), named for the people who
# read a report; a check not listed here is shown by its own name.
CHECK_LABELS = {
    "outer-structure": "Bundle file structure",
    "seal": "Seal",
    "seal-signature": "Seal signature",
    "readme": "README file",
    "member-times": "File times in the bundle",
    "custody": "Chain of custody",
    "payload-hash": "Encrypted evidence (fingerprint)",
    "payload-decrypt": "Decryption",
    "payload-structure": "Contents of the encrypted evidence",
    "bag": "Evidence files and their fingerprints",
    "manifest": "Signed list of the evidence",
    "addenda": "Encrypted additions",
    "receipt": "Custody receipt",
}


def check_label(check: str) -> str:
    """'custody' → 'Chain of custody': a verification step as a report names it."""
    return CHECK_LABELS.get(check, check)


def finding_line(finding: Any) -> str:
    line = f"{check_label(finding.check)} — {finding.where}: {finding.problem}"
    if finding.expected is not None or finding.found is not None:
        line += f" (expected {finding.expected}, found {finding.found})"
    return visible(line)


def _notices(warnings: list[Any], events: list[CustodyEvent],
             report: Report | None = None) -> list[str]:
    """What the verification's warnings mean, in words for a bank clerk (each once); the
    warnings themselves, with file names and fingerprints, are in the details section."""
    by_file = {custody_member(e.sequence): e for e in events}
    notices: list[str] = []
    for warning in warnings:
        event = by_file.get(warning.where)
        if "resealed by" in warning.problem and "matches the sealer's signed manifest" in \
                warning.problem and event is not None:
            # the name is only the resealer's claim unless their key is trusted
            who = signer_label(report.standing(event.actor.fingerprint), event.actor_name) \
                if report is not None else event.actor_name
            text = (f"The evidence was re-encrypted on {utc_human(event.time)[:10]} by "
                    f"{visible(who) or 'someone'} (for example to hand it to someone else). "
                    "The files inside were checked against the original seal: they are exactly "
                    "those that were sealed.")
        elif "not counted as anyone's word" in warning.problem:
            text = ("Some entries are signed by keys the reader did not name as trusted: each "
                    "is shown with its key, marked, and not counted as anyone's word.")
        elif "time goes backwards" in warning.problem:
            text = ("One entry in the chain of custody is dated earlier than the entry before "
                    "it: a computer's clock was probably wrong. The entries are intact.")
        else:
            text = (f"The check \"{check_label(warning.check)}\" noted something that does not "
                    "make the bundle fail; see \"Notes from the checks\" in the technical "
                    "details.")
        if text not in notices:
            notices.append(text)
    return notices


def _items(entries: Iterator[Any]) -> list[EvidenceItem]:
    items = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            continue  # reported by verify; a report made with --force shows the rest
        try:
            raw = bytes_from_field(entry, "path")
            path = visible(raw.decode("utf-8", "backslashreplace"))
        except (ValueError, KeyError, TypeError):
            path = "(unreadable name)"
        remarks = []
        if entry.get("error"):
            remarks.append(str(entry["error"]))
        remarks.extend(str(c) for c in entry.get("changes") or [])
        if isinstance(entry.get("reported_size"), int):
            remarks.append(f"the system reported {entry['reported_size']} bytes; what it gave when "
                           "read to its end is stored (a file made as it is read, as in /proc)")
        if entry.get("kind") == "symlink":
            try:
                target = bytes_from_field(entry, "target").decode("utf-8", "backslashreplace")
                remarks.append(f"link to {visible(target)} (not followed)")
            except (ValueError, KeyError, TypeError):
                pass
        size = entry.get("size")
        items.append(EvidenceItem(
            number=number, path=path, kind=str(entry.get("kind", "")),
            mime=str(entry.get("mime") or ""), size=size if isinstance(size, int) else None,
            modified=utc_human(entry.get("mtime")), created=utc_human(entry.get("birthtime")),
            sha256=str(entry.get("sha256") or ""), remarks=visible("; ".join(remarks)),
            bag_path=str(entry.get("bag_path") or "")))
    return items


def _incident(report: Report, manifest: dict[str, Any], data: ReportData) -> None:
    raw = (report.tag_files or {}).get(bag.EK_INCIDENT)
    data.incident_sha256 = manifest.get("incident_sha256") if manifest else None
    if raw is None:
        return
    try:
        data.incident = inc.from_json(raw, bag.EK_INCIDENT)
    except BundleError as exc:
        data.incident_problem = exc.message
        return
    record = data.incident
    data.incident_sealed = incident_is_sealed(report)
    sealer = (f"incident record (sealed by {data.case.get('examiner') or 'the sealer'})"
              if data.incident_sealed else f"incident record — {NOT_SEALED}")
    for label, moment in (("It started", record.started), ("It was noticed", record.noticed)):
        if moment is not None:
            data.timeline.append(TimelineRow(moment.sort_key, inc.human_time(moment), label,
                                             sealer))
    for entry in record.timeline:
        data.timeline.append(TimelineRow(entry.moment.sort_key, inc.human_time(entry.moment),
                                         entry.description, sealer))
    data.losses.extend(LossRow(loss, sealer) for loss in record.losses)
    data.identifiers.extend(IdentifierRow(i, sealer) for i in record.identifiers)


NOT_SEALED = "NOT the sealed record — it fails verification"
TIMELINE_NOTE = ("Times as entered (with their UTC offset), in order; a date alone where no time "
                 "was given. Entries added after sealing are signed custody notes (public: "
                 "outside the encryption) or encrypted additions (inside it, added by a reseal).")
ENCRYPTED_ADDITION = "encrypted addition"
NOT_GATHERED = ("Pictures and e-mails were not looked for when this report was made; the "
                "evidence list below names every file.")
PREVIEWS_NOTE = ("Small copies of the pictures (screenshots, photos) and the sender, recipients, "
                 "date and subject of the e-mails among the evidence, made from the decrypted "
                 "files after each one's SHA-256 matched the signed list of the evidence. The "
                 "files themselves are in the bundle; # is their number in the evidence list.")
UNTRUSTED_MARK = "UNTRUSTED SIGNER"  # an entry whose key does not speak for anyone here

# Where a verification error means the incident record shown may not be the one that was sealed:
# the record itself, the signed manifest that names it, or the seal's signature that names the
# manifest. (A sealer missing from --trusted-key is not one: the record is still the sealed one.)
_INCIDENT_TRUST = {bag.EK_INCIDENT, bag.EK_MANIFEST, bag.EK_MANIFEST_SIG, SEAL_SIG}


def incident_is_sealed(report: Report) -> bool:
    """True when verification ties the incident record to the signed manifest and seal."""
    if not report.decrypted or report.manifest is None or report.signer is None:
        return False
    return not any(f.where in _INCIDENT_TRUST or f.check == "seal"
                   for f in report.findings.errors)


def _merge_notes(data: ReportData, events: list[CustodyEvent],
                 encrypted: list[inc.Note] | None = None, report: Report | None = None) -> None:
    """The public custody notes and the encrypted additions (addenda), each where it belongs,
    each with who signed it and when; an addendum says that it is one. Anyone holding the file
    can add a note in anyone's name: one signed by a key that does not speak for anyone here
    (not trusted; without --trusted-key, not the sealer's) is shown by its key, marked, and its
    loss left out of the totals."""
    data.timeline.append(TimelineRow(data.seal.capture_started,
                                     utc_human(data.seal.capture_started),
                                     "Evidence captured and sealed (this bundle)",
                                     f"seal, signed {short_fingerprint(data.seal.signer.fingerprint)}"))
    notes = [(n, "note") for n in inc.notes_from_events(events)]
    notes += [(n, ENCRYPTED_ADDITION) for n in encrypted or []]
    for note, label in notes:
        standing = report.standing(note.fingerprint) if report is not None else SEALER
        counted = standing in (TRUSTED, SEALER)
        if counted:
            source = (f"{label} #{note.sequence} by {note.actor} "
                      f"({short_fingerprint(note.fingerprint)}), signed {utc_human(note.time)}")
        else:
            data.not_counted += 1
            source = (f"{UNTRUSTED_MARK} — {label} #{note.sequence} signed {utc_human(note.time)} by "
                      f"the key {note.fingerprint}, "
                      + ("NOT trusted" if standing == UNTRUSTED else "not the sealer's")
                      + f" (it calls itself \u201c{note.actor}\u201d)")
        if note.moment is not None:
            data.timeline.append(TimelineRow(note.moment.sort_key, inc.human_time(note.moment),
                                             note.text, source))
        elif note.loss is not None:
            data.losses.append(LossRow(note.loss, source, counted))
            data.untrusted_losses += not counted
        elif note.identifier is not None:
            data.identifiers.append(IdentifierRow(note.identifier, source))
        else:
            text = note.text + (f" (details not readable: {note.problem})" if note.problem else "")
            data.timeline.append(TimelineRow(note.time, utc_human(note.time),
                                             f"Note added: {text}", source))
    data.timeline.sort(key=lambda row: row.utc)
    data.totals = inc.totals(row.loss for row in data.losses if row.counted)


def _signers(seal: Seal, events: list[CustodyEvent], report: Report | None = None
             ) -> list[SignerRow]:
    def standing(fingerprint: str) -> str:
        return report.standing(fingerprint) if report is not None else UNKNOWN

    sealer = seal.signer.fingerprint
    rows: dict[str, SignerRow] = {sealer: SignerRow(
        signer_label(standing(sealer), events[0].actor_name if events else ""),
        "sealed the evidence", sealer, seal.signer.public_key, standing(sealer))}
    for event in events:
        row = rows.get(event.actor.fingerprint)
        if row is None:
            fingerprint = event.actor.fingerprint
            rows[fingerprint] = SignerRow(signer_label(standing(fingerprint), event.actor_name),
                                          f"custody: {event.action}", fingerprint,
                                          event.actor.public_key, standing(fingerprint))
        elif event.action not in row.role and event.action != "captured":
            row.role += f", {event.action}"
    return list(rows.values())


def previewed(data: ReportData) -> tuple[list[tuple[EvidenceItem, Picture]],
                                          list[tuple[EvidenceItem, Email]]]:
    """The previews with the evidence item each was made from (its number and name)."""
    items = {item.bag_path: item for item in data.items if item.bag_path}
    return ([(items[p.bag_path], p) for p in data.previews.pictures if p.bag_path in items],
            [(items[e.bag_path], e) for e in data.previews.emails if e.bag_path in items])


def full_headers(data: ReportData) -> list[tuple[EvidenceItem, FullHeaders]]:
    """The e-mails whose whole header block is shown, with their evidence items."""
    items = {item.bag_path: item for item in data.items if item.bag_path}
    return [(items[h.bag_path], h) for h in data.previews.headers if h.bag_path in items]


def emails_left_out_text(found: Previews) -> str:
    """Where the e-mails the list does not show are: never a silent cut."""
    return (f"{plural(found.emails_left_out, 'more e-mail')} not listed here (the first "
            f"{found.email_limit:,} are). The evidence list (section 6) names every one with its "
            "SHA-256; 'evidencekit report --all-emails' lists them all here.")


def full_headers_texts(data: ReportData) -> tuple[str, list[str]]:
    """The introduction of the full headers, and the notes after them (plain text)."""
    found = data.previews
    marked = ", ".join(repr(m) for m in found.marks)
    if found.marks:
        intro = (f"The whole header block of the e-mails asked for ({marked}): the route each "
                 "message took (Received), the sender's authentication (DKIM, SPF), its "
                 "identifiers.")
    else:
        intro = (f"The whole header block of every e-mail (shown for all of them when there are "
                 f"at most {FEW_EMAILS}): the route each message took (Received), the sender's "
                 "authentication (DKIM, SPF), its identifiers.")
    intro += (" Exactly as stored, from the file whose SHA-256 is given; tabs are shown as "
              "spaces and bytes that are not UTF-8 as \\xNN.")
    notes = [f"Nothing matched {m!r}: no e-mail in the evidence has that name."
             for m in found.marks_unmatched]
    if found.headers_left_out:
        notes.append(f"{plural(found.headers_left_out, 'more e-mail')} asked for not shown here "
                     f"(at most {MAX_FULL_HEADERS} in one report): ask for fewer at a time; "
                     "each file in the bundle holds its own headers.")
    if not found.marks and found.emails_seen > FEW_EMAILS:
        notes.append("The full headers of chosen e-mails are shown by 'evidencekit report "
                     "--full-headers NAME' (a name in the File column; * stands for any "
                     "characters, e.g. '*.INBOX.42.eml'; repeatable).")
    return intro, notes


def header_cut_text() -> str:
    return (f"The header block goes on past the first {EMAIL_HEAD_BYTES >> 10} KiB of the file; "
            "only those are shown.")


def shown_in_previews(data: ReportData) -> str:
    """'; 2 pictures and 1 e-mail shown in section 5' for the summary, or ''."""
    pictures, emails = previewed(data)
    pictures = [(item, p) for item, p in pictures if p.thumbnail is not None]
    shown = [plural(len(pictures), "picture")] if pictures else []
    shown += [plural(len(emails), "e-mail")] if emails else []
    return f"; {' and '.join(shown)} shown in section 5" if shown else ""


def how_to_verify(data: ReportData) -> list[tuple[str, str]]:
    """(explanation, command) pairs for the "How to verify this bundle" section."""
    name = data.bundle_name
    return [
        ("Get evidencekit, free and open source, on Linux, macOS or Windows (it needs Python "
         "3.10 or newer): from its release files, install the wheel by typing this in a "
         "terminal, in the folder that holds it. (Or, on Linux, run the single file "
         "evidencekit.pyz without installing: type python3 evidencekit.pyz wherever evidencekit "
         "is written below.)", f"pipx install ./evidencekit-{__version__}-py3-none-any.whl"),
        ("Anyone can check that the bundle is complete and unchanged, without any key. It "
         "checks the seal, every signature and the custody log, and that the encrypted payload "
         "has the SHA-256 shown in this report.", f"evidencekit verify {name}"),
        ("Check who sealed it: ask the person who made the bundle for their key's fingerprint "
         f"(by phone or in person) and compare it with {data.seal.signer.fingerprint}, or give "
         "their public key file.", f"evidencekit verify {name} --trusted-key their_key.pub"),
        ("With the decryption key or passphrase, every file is decrypted and checked against "
         "the SHA-256 listed in this report.", f"evidencekit verify {name} -i KEY   (or -p)"),
        ("Open it into a new folder; nothing is kept unless every check passes.",
         f"evidencekit extract {name} -i KEY -o opened"),
    ]


VERIFY_INTRO = ("You need not do any of this to rely on this report: it was made by running these "
                "checks (see the box at the top of page 1). To have the bundle checked "
                "independently, give the bundle file and this report to an IT expert or to the "
                "police's digital forensics team; these are the steps for them.")
BY_HAND_INTRO = ("Without evidencekit, with standard tools only (tar, ssh-keygen, sha256sum and "
                 "age, free on Linux, macOS and Windows), an expert can check the essentials "
                 "like this, in a terminal, in an empty folder holding the bundle:")
_BY_HAND_MORE = ("The chain of custody (the custody folder, each entry signed like the seal) "
                 "and the rest are checked the same way. evidencekit's documentation comes with "
                 "a script that makes every check with these tools only, the procedure "
                 "\"Verifying by hand\" of the bundle format: sh verify-by-hand.sh -i KEY "
                 "{bundle} (the file docs/verify-by-hand.sh).")


def by_hand_more(data: ReportData) -> str:
    """The closing words of the steps by hand: where the complete procedure is."""
    return _BY_HAND_MORE.format(bundle=data.bundle_name)


def verify_by_hand(data: ReportData) -> list[tuple[str, str]]:
    """(explanation, command) pairs: the essentials of checking the bundle with standard tools
    only, in plain words (tests/report runs these commands on real bundles)."""
    name = data.bundle_name
    return [
        ("Unpack the bundle (it is a tar archive) into a folder named outer.",
         f"mkdir outer && tar -xf {name} -C outer"),
        ("Check the seal's signature. It must say Good \"evidencekit\" signature, with the key "
         f"{data.seal.signer.fingerprint} (the sealer's, as in this report).",
         "ssh-keygen -Y check-novalidate -n evidencekit -s outer/seal.json.sig < outer/seal.json"),
        ("Check the encrypted evidence: the number printed must be the payload SHA-256 in this "
         f"report, {data.payload_sha256 or '(see the technical details)'}, which is "
         "payload.sha256 in seal.json or, if the evidence was re-encrypted later, "
         "new_payload_sha256 in the last \"resealed\" entry of the custody folder.",
         "sha256sum outer/payload.age"),
        ("Decrypt it into a folder named opened, with the decryption key (KEY: the key file). "
         "For a passphrase, leave out -i KEY: age asks for it.",
         "mkdir opened && age -d -i KEY outer/payload.age | tar -x -C opened"),
        ("Check every file: each line must end in OK.",
         "(cd opened/bag && sha256sum -c manifest-sha256.txt)"),
        ("Check that this list of files is the sealed one: the number printed must be the root "
         f"hash in this report, {data.seal.manifest_root}, which is manifest_root in seal.json.",
         "sha256sum opened/bag/manifest-sha256.txt"),
    ]
