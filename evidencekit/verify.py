"""Verification: numbered checks, cheapest first, every finding collected (docs/FORMAT.md §6).

 1. outer-structure   the outer tar parses strictly; members are exactly the prescribed ones
 2. seal              seal.json is canonical, of a known version, and well-typed
 3. seal-signature    seal.json.sig is a valid SSHSIG by the key the seal names
 4. readme            README.txt matches the hash in the seal
 5. member-times      outer header times equal the signed times
 6. custody           each event is well-formed, signed by its actor, chained, bound to the payload
 7. payload-hash      payload.age has the size and SHA-256 recorded in the seal
 --- with a decryption key ---
 8. payload-decrypt   the age payload decrypts and authenticates to its last chunk (format
                      version 4: and decompresses, within plaintext_limit, with zstd)
 9. bag               bagit.txt, manifest-sha256.txt (every file, no more, no less), tag manifest,
                      Payload-Oxum; the manifest's hash is the seal's root hash
10. manifest          evidencekit/manifest.json matches the seal and is signed by the sealer;
                      every file entry matches what was decrypted; evidencekit/incident.json,
                      if any, is the one manifest.json names and is a valid incident record
11. addenda           (format version 2) each addenda/NNNNNN.json after the bag is signed by its
                      author and is the one its "resealed" custody event names; none is missing
--- without a key too ---
12. timestamps        (format version 3) each timestamps/NNNNNN.tsr is an RFC 3161 response over
                      seal.json.sig; with --tsa-ca, signed by a TSA chaining to that root;
                      without, a signature its own certificate did not make is a warning
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from evidencekit import addenda, incident, timestamps
from evidencekit.addenda import FoundAddendum
from evidencekit.clock import parse_rfc3339
from evidencekit.crypto import age, sshsig
from evidencekit.crypto.keys import PublicKey
from evidencekit.errors import (
    BundleError,
    EvidenceKitError,
    InputError,
    Interrupted,
    NoMatchingKey,
)
from evidencekit.findings import Findings
from evidencekit.format import bag
from evidencekit.format.compression import ZSTD, Decompressing
from evidencekit.format.documents import (
    MANIFEST_TYPE,
    PAYLOAD,
    README,
    SEAL,
    SEAL_SIG,
    SUPPORTED_VERSIONS,
    CustodyEvent,
    Seal,
    custody_member,
)
from evidencekit.format.entries import EntryChecker
from evidencekit.format.manifest import Manifest
from evidencekit.format.manifest import read as read_manifest
from evidencekit.format.outer import MemberReader, drain, read_member
from evidencekit.format.reader import (
    OuterBundle,
    open_bundle,
    structure_problems,
    timestamp_names,
)
from evidencekit.format.tree import TreeComparison
from evidencekit.payload import (
    TAG_FILE_LIMIT,
    PayloadReaders,
    PayloadScan,
    StoredMember,
    scan_payload,
)
from evidencekit.pipeline import PieceReadAhead, ReadAheadStream, SupportsReadinto
from evidencekit.progress import NoProgress, Progress
from evidencekit.protection import Keys, RecipientInfo, keys_for_bundle, read_payload_header, recipients_in
from evidencekit.rawreader import RawReader


@dataclass
class PayloadExpectation:
    """Which payload the custody log says the bundle should hold now (resealing changes it)."""

    sha256: str
    size: int


# Where a signer stands (docs/FORMAT.md §7.1, step 6). With --trusted-key: trusted or untrusted.
# Without: the sealer's key (it made the bundle, whoever holds it) or unknown. Only trusted keys
# (or, without a list, the sealer's) speak for someone: what the others sign (notes, losses,
# custody events, encrypted additions) is shown by their key and not counted.
TRUSTED, UNTRUSTED, SEALER, UNKNOWN = "trusted", "untrusted", "sealer", "unknown"


def signer_label(standing: str, claimed: str) -> str:
    """Who signed, for people: a name in quotes is only the signer's claim; a key not trusted
    is named as such first (its fingerprint is shown next to it)."""
    if standing == TRUSTED:
        return f"{claimed} (trusted key)"
    if standing == UNTRUSTED:
        return f"NOT TRUSTED (claims \u201c{claimed}\u201d)"
    if standing == SEALER:
        return f"\u201c{claimed}\u201d (sealer)"
    return f"\u201c{claimed}\u201d (claimed)"


@dataclass
class Report:
    bundle: str
    findings: Findings = field(default_factory=Findings)
    seal: Seal | None = None
    events: list[CustodyEvent] = field(default_factory=list)
    signer: PublicKey | None = None
    trusted: bool | None = None  # None: no trusted keys were given
    decrypted: bool = False
    no_matching_key: str | None = None
    files_checked: int = 0
    manifest: Manifest | None = None
    tag_files: dict[str, bytes] | None = None
    payload: PayloadExpectation | None = None  # what the custody log says the payload is now
    payload_sha256: str | None = None  # what it actually is (computed in step 7)
    addenda: list[FoundAddendum] = field(default_factory=list)  # step 11: those that parsed
    # The payload's recipients, from its age header: read when a key was given (the advice when
    # none opens it names them); None when not read.
    recipients: list[RecipientInfo] | None = None
    trusted_keys: frozenset[str] | None = None  # fingerprints from --trusted-key; None: none given
    timestamps: list[timestamps.Checked] = field(default_factory=list)  # step 12

    @property
    def ok(self) -> bool:
        """Intact: no check failed and the key (if any) opened it. Untrusted signers are
        another matter (:attr:`untrusted_entries`)."""
        return self.findings.ok and self.no_matching_key is None

    def standing(self, fingerprint: str) -> str:
        """TRUSTED or UNTRUSTED with --trusted-key; else SEALER or UNKNOWN."""
        if self.trusted_keys is not None:
            return TRUSTED if fingerprint in self.trusted_keys else UNTRUSTED
        if self.seal is not None and fingerprint == self.seal.signer.fingerprint:
            return SEALER
        return UNKNOWN

    def speaks_for_someone(self, fingerprint: str) -> bool:
        """Whether what this key signed counts (in a report's totals, as someone's word)."""
        return self.standing(fingerprint) in (TRUSTED, SEALER)

    @property
    def untrusted_entries(self) -> list[str]:
        """With --trusted-key: the custody events and addenda signed by a key not listed (the
        members, in order); empty without --trusted-key (nothing was asked)."""
        if self.trusted_keys is None:
            return []
        found = [custody_member(e.sequence) for e in self.events
                 if e.actor.fingerprint not in self.trusted_keys]
        found += [a.name for a in self.addenda
                  if a.document and a.document.author.fingerprint not in self.trusted_keys]
        return found

    def signers(self) -> list[dict[str, Any]]:
        """Every key that signed something in the bundle, with its standing (for --json)."""
        rows: dict[str, dict[str, Any]] = {}

        def row(fingerprint: str, public_key: str, name: str) -> dict[str, Any]:
            entry = rows.setdefault(fingerprint, {
                "fingerprint": fingerprint, "public_key": public_key,
                "standing": self.standing(fingerprint), "sealer": False, "names": [],
                "events": [], "addenda": []})
            if name not in entry["names"]:
                entry["names"].append(name)
            return entry

        if self.seal is not None:
            row(self.seal.signer.fingerprint, self.seal.signer.public_key, "")["sealer"] = True
            rows[self.seal.signer.fingerprint]["names"].remove("")
        for event in self.events:
            row(event.actor.fingerprint, event.actor.public_key,
                event.actor_name)["events"].append(event.sequence)
        for addendum in self.addenda:
            if addendum.document is not None:
                author = addendum.document.author
                row(author.fingerprint, author.public_key,
                    addendum.document.author_name)["addenda"].append(addendum.sequence)
        return list(rows.values())


@dataclass(frozen=True)
class HashedRange:
    """The SHA-256 of bytes *offset* to *offset* + *size* of a bundle file, computed from the
    very bytes written to it as they were written (``store get`` hashes the payload while it
    downloads): step 7 takes it instead of reading the payload again, when it is exactly the
    payload member's range."""

    offset: int
    size: int
    sha256: str


def verify(path: Path, identities: Keys = (),
           trusted_keys: Sequence[PublicKey] = (), *,
           progress: Progress | None = None, check_payload_hash: bool = True,
           opened: OuterBundle | None = None,
           tsa_roots: Sequence[timestamps.Certificate] | None = None,
           readers: PayloadReaders | None = None,
           payload_hashed: HashedRange | None = None) -> Report:
    """Run every check that the given keys allow; never stop at the first problem.

    *readers* take the decrypted payload as it is checked (extract, reseal, the report and the
    exports: payload.PayloadReaders); what they were given is trustworthy only if the returned
    report is ok. ``check_payload_hash=False`` skips
    step 7 (reading the whole payload) for a quick look at the custody log. *opened*: the
    bundle at *path* already open (reseal carries members of the very file it verified, not of
    one that a custody append put under that name meanwhile); it is left open. *tsa_roots*
    (``--tsa-ca``): the roots timestamps are checked against; without them a timestamp's
    imprint is checked but it is reported as not checked against a trusted root.
    *payload_hashed*: the payload's hash, already computed (:class:`HashedRange`; not used
    with keys, which read the payload anyway). *identities*: the keys, or a
    protection.KeySource asked for them with the payload's header as soon as the bundle is
    open (before any check and before *progress* starts).
    """
    report = Report(str(path))
    progress = progress or NoProgress()
    try:
        bundle = open_bundle(path) if opened is None else opened
    except BundleError as exc:
        report.findings.error("outer-structure", str(path), exc.message)
        return report
    try:
        keys = keys_for_bundle(identities, bundle)
        try:
            _verify_open(bundle, report, keys, trusted_keys, readers or PayloadReaders(),
                         progress, check_payload_hash, tsa_roots, payload_hashed)
        except KeyboardInterrupt:
            # Said here, not by the CLI's generic "nothing was written / the source was not
            # changed" (capture's words): what a reader of bundles was doing, and that the
            # bundle is intact.
            raise Interrupted("interrupted while checking the bundle; verification did not "
                              "finish", hint=f"{path} was not changed; run the command again "
                              "to check it") from None
    finally:
        if opened is None:
            bundle.close()
    return report


def _verify_open(bundle: OuterBundle, report: Report, identities: Sequence[age.Identity],
                 trusted_keys: Sequence[PublicKey], readers: PayloadReaders,
                 progress: Progress, check_payload_hash: bool = True,
                 tsa_roots: Sequence[timestamps.Certificate] | None = None,
                 payload_hashed: HashedRange | None = None) -> None:
    findings = report.findings
    for problem in structure_problems(bundle):  # step 1
        findings.error("outer-structure", bundle.path.name, problem)
    seal_json = _check_seal(bundle, report)  # steps 2-3
    if report.seal is None or seal_json is None:
        return
    seal = report.seal
    if trusted_keys:
        report.trusted_keys = frozenset(k.fingerprint for k in trusted_keys)
        report.trusted = any(k == report.signer for k in trusted_keys)
        if not report.trusted:
            findings.error("seal-signature", SEAL, "the bundle was sealed by a key you did not "
                           "list as trusted", expected=", ".join(k.fingerprint for k in trusted_keys),
                           found=seal.signer.fingerprint)
    _check_readme(bundle, seal, findings)  # step 4
    _check_member_times(bundle, seal, findings)  # step 5
    report.payload = PayloadExpectation(seal.payload_sha256, seal.payload_size)
    report.events = check_custody(bundle, seal, hashlib.sha256(seal_json).hexdigest(), findings,
                                  report.payload)
    report.timestamps = _check_timestamps(bundle, seal, findings, tsa_roots)  # step 12
    if check_payload_hash or identities:
        _check_payload(bundle, report, identities, readers, progress,  # steps 7-10
                       payload_hashed)
    _check_resealers(report, trusted_keys)
    _check_other_signers(report)


def _check_resealers(report: Report, trusted_keys: Sequence[PublicKey]) -> None:
    """Whoever resealed the payload decided what the bundle holds now: weigh them like the sealer.

    With a key, the content is proven against the sealer's signed manifest whoever resealed it,
    so an unknown resealer is a warning; without one, only a trusted resealer vouches for it.
    """
    trusted = {key.fingerprint for key in trusted_keys}
    for event in report.events:
        if event.action != "resealed" or event.actor.fingerprint in trusted:
            continue
        where = custody_member(event.sequence)
        who = (f"the key {event.actor.fingerprint} (it calls itself "
               f"\u201c{event.actor_name[:100]}\u201d)")
        if trusted and not report.decrypted:
            report.findings.error("custody", where, f"the payload was resealed by {who}, a key you "
                                  "did not list as trusted; give -i KEY to check the evidence "
                                  "itself against the sealer's signature")
        elif not report.decrypted:
            report.findings.warning("custody", where, f"the payload was resealed by {who}: without "
                                    "--trusted-key or -i KEY nothing shows that this payload holds "
                                    "the sealed evidence")
        else:
            report.findings.warning("custody", where, f"the payload was resealed by {who}; the "
                                    "decrypted evidence matches the sealer's signed manifest")


def _check_other_signers(report: Report) -> None:
    """With --trusted-key, every event and addendum signed by a key not listed is said (a
    warning each, and verify's exit code 6): a stranger holding the file can add a note, a loss
    or an event in anyone's name, and only a trusted key speaks for someone. The sealer's own
    events are judged with the seal (step 3); resealers by _check_resealers."""
    if report.trusted_keys is None or report.seal is None:
        return
    sealer = report.seal.signer.fingerprint
    for event in report.events:
        fingerprint = event.actor.fingerprint
        if fingerprint in report.trusted_keys or event.action == "resealed" or \
                fingerprint == sealer:
            continue
        report.findings.warning("custody", custody_member(event.sequence),
                                f"'{event.action}' event signed by the key {fingerprint}, which "
                                "you did not list as trusted (it calls itself "
                                f"\u201c{event.actor_name[:100]}\u201d): it is not counted as "
                                "anyone's word")
    for addendum in report.addenda:
        document = addendum.document
        if document is None or document.author.fingerprint in report.trusted_keys:
            continue
        report.findings.warning(addenda.CHECK, addendum.name,
                                f"encrypted addition signed by the key "
                                f"{document.author.fingerprint}, which you did not list as "
                                f"trusted (it calls itself \u201c{document.author_name[:100]}"
                                "\u201d): it is not counted as anyone's word")


def _check_seal(bundle: OuterBundle, report: Report) -> bytes | None:
    findings = report.findings
    if SEAL not in bundle.by_name:
        return None
    try:
        seal_json = bundle.read_small(SEAL)
        report.seal = Seal.from_json(seal_json)
    except BundleError as exc:
        findings.error("seal", SEAL, exc.message)
        return None
    if SEAL_SIG not in bundle.by_name:
        return seal_json
    try:
        report.signer = sshsig.verify(bundle.read_small(SEAL_SIG), seal_json)
    except BundleError as exc:
        findings.error("seal-signature", SEAL_SIG, exc.message)
        return seal_json
    if report.signer.fingerprint != report.seal.signer.fingerprint or \
            not report.signer.is_named_by(report.seal.signer.public_key):
        findings.error("seal-signature", SEAL_SIG, "the seal was signed by a different key than "
                       "the one it names", expected=report.seal.signer.fingerprint,
                       found=report.signer.fingerprint)
    return seal_json


def _check_readme(bundle: OuterBundle, seal: Seal, findings: Findings) -> None:
    if README not in bundle.by_name:
        return
    try:
        digest = hashlib.sha256(bundle.read_small(README)).hexdigest()
    except BundleError as exc:
        findings.error("readme", README, exc.message)
        return
    if digest != seal.readme_sha256:
        findings.error("readme", README, "README.txt was changed", seal.readme_sha256, digest)


def _check_timestamps(bundle: OuterBundle, seal: Seal, findings: Findings,
                      roots: Sequence[timestamps.Certificate] | None) -> list[timestamps.Checked]:
    """Step 12: every timestamp is a response over the exact bytes of seal.json.sig, its tar
    header time is its genTime; with *roots*, it verifies against them at its own time. The
    trusted time far from the signer's claimed ``created`` is a warning."""
    names = timestamp_names(bundle)
    if not names or SEAL_SIG not in bundle.by_name:
        return []
    if len(names) > timestamps.MAX_TIMESTAMPS:  # each is parsed: a bound on the work
        findings.error("timestamps", names[timestamps.MAX_TIMESTAMPS],
                       f"{len(names)} timestamps, more than the {timestamps.MAX_TIMESTAMPS} "
                       "allowed; only the first ones were checked")
        names = names[: timestamps.MAX_TIMESTAMPS]
    signature = bundle.read_small(SEAL_SIG)
    claimed = parse_rfc3339(seal.created) // 1_000_000_000
    results = []
    for name in names:
        try:
            data = read_member(bundle.file, bundle.by_name[name], timestamps.MAX_TOKEN)
            result = timestamps.examine(name, data, signature, roots)
        except BundleError as exc:
            findings.error("timestamps", name, exc.message)
            continue
        results.append(result)
        if result.problem is not None:
            findings.error("timestamps", name, result.problem)
            continue
        if result.unsigned is not None:  # (with --tsa-ca, problem says it, as an error)
            findings.warning("timestamps", name, f"{result.unsigned}: this timestamp proves "
                             "nothing about when the bundle existed (give --tsa-ca ROOT.pem to "
                             "check it against its authority)")
        if bundle.by_name[name].mtime != result.seconds:
            findings.error("member-times", name, "tar header time differs from the time the "
                           "timestamp gives", result.seconds, bundle.by_name[name].mtime)
        apart = result.seconds - claimed
        if abs(apart) > timestamps.CLOCK_TOLERANCE_SECONDS:
            meaning = ("it shows the seal existed by then, not that it was made at the claimed "
                       "time" if apart > 0 else "the signer's clock was ahead, or the seal time "
                       "is not what it claims")
            findings.warning("timestamps", name, f"the trusted time {result.time} is "
                             f"{timestamps.describe_gap(apart)} the signer's claimed seal time "
                             f"{seal.created}: {meaning}")
    return results


def _check_member_times(bundle: OuterBundle, seal: Seal, findings: Findings) -> None:
    expected = {README: seal.capture_started, PAYLOAD: seal.capture_started, SEAL: seal.created,
                SEAL_SIG: seal.created}
    for name, stamp in expected.items():
        member = bundle.by_name.get(name)
        seconds = parse_rfc3339(stamp) // 1_000_000_000
        if member is not None and member.mtime != seconds:
            findings.error("member-times", name, "tar header time differs from the signed time",
                           seconds, member.mtime)


def check_custody(bundle: OuterBundle, seal: Seal, seal_sha256: str, findings: Findings,
                  expected: PayloadExpectation | None = None) -> list[CustodyEvent]:
    """Step 6: parse, authenticate and chain every custody event.

    *expected* starts as the sealed payload and follows every "resealed" event, so that afterwards
    it names the payload the bundle must hold now (checked in step 7).
    """
    current = expected or PayloadExpectation(seal.payload_sha256, seal.payload_size)
    events: list[CustodyEvent] = []
    previous = seal_sha256
    previous_time: str | None = None
    for sequence in range(1, bundle.custody_count() + 1):
        name = custody_member(sequence)
        if name not in bundle.by_name or name + ".sig" not in bundle.by_name:
            findings.error("custody", name, "custody event or its signature is missing")
            return events
        try:
            data = bundle.read_small(name)
            event = CustodyEvent.from_json(data, name)
        except BundleError as exc:
            findings.error("custody", name, exc.message)
            return events
        _check_event(bundle, event, data, name, sequence, previous, seal, findings)
        _follow_payload(event, name, current, findings)
        addenda.check_event(event, name, findings)
        if previous_time and parse_rfc3339(event.time) < parse_rfc3339(previous_time):
            findings.warning("custody", name, f"time goes backwards: this event is dated "
                             f"{event.time}, the one before {previous_time}")
        for member_name in (name, name + ".sig"):
            if bundle.by_name[member_name].mtime != parse_rfc3339(event.time) // 1_000_000_000:
                findings.error("member-times", member_name, "tar header time differs from the "
                               "event time")
        previous, previous_time = hashlib.sha256(data).hexdigest(), event.time
        events.append(event)
    if not events:
        findings.error("custody", "custody/", "the custody log is empty")
    elif events[0].action != "captured":
        findings.error("custody", custody_member(1), "the first custody event is not 'captured'")
    elif any(e.action == "captured" for e in events[1:]):
        findings.error("custody", "custody/", "only the first event may be 'captured'")
    return events


def _follow_payload(event: CustodyEvent, name: str, current: PayloadExpectation,
                    findings: Findings) -> None:
    """Each event concerns the current payload; a "resealed" event replaces it by a new one."""
    if event.action != "resealed":
        if event.payload_sha256 != current.sha256:
            findings.error("custody", name, "event concerns another payload than the one the "
                           "bundle held at that point", current.sha256, event.payload_sha256)
        return
    old = event.details.get("old_payload_sha256")
    new = event.details.get("new_payload_sha256")
    size = event.details.get("new_payload_size", "")
    if old != current.sha256:
        findings.error("custody", name, "resealed event does not start from the payload the "
                       "bundle held before", current.sha256, old)
    if new != event.payload_sha256 or not size.isdigit():
        findings.error("custody", name, "resealed event does not name its new payload properly")
        return
    if new == old:
        findings.error("custody", name, "resealed event claims a new payload identical to the old "
                       "one (a real reseal always changes the encrypted payload)")
    current.sha256, current.size = new, int(size)


def _check_event(bundle: OuterBundle, event: CustodyEvent, data: bytes, name: str, sequence: int,
                 previous: str, seal: Seal, findings: Findings) -> None:
    if event.sequence != sequence:
        findings.error("custody", name, "event sequence number is wrong", sequence, event.sequence)
    if event.previous_sha256 != previous:
        findings.error("custody", name, "event is not chained to the one before it (edited, "
                       "removed, inserted or reordered events)", previous, event.previous_sha256)
    if event.case_id != seal.case_id:
        findings.error("custody", name, "event names another case", seal.case_id, event.case_id)
    if sequence == 1 and event.actor.fingerprint != seal.signer.fingerprint:
        findings.error("custody", name, "the 'captured' event was not made by the sealer",
                       seal.signer.fingerprint, event.actor.fingerprint)
    try:
        signer = sshsig.verify(bundle.read_small(name + ".sig"), data)
    except BundleError as exc:
        findings.error("custody", name + ".sig", exc.message)
        return
    if not signer.is_named_by(event.actor.public_key) or signer.fingerprint != \
            event.actor.fingerprint:
        findings.error("custody", name + ".sig", "event is signed by a key other than the one it "
                       "names", event.actor.fingerprint, signer.fingerprint)


def _check_payload(bundle: OuterBundle, report: Report, identities: Sequence[age.Identity],
                   readers: PayloadReaders, progress: Progress,
                   hashed: HashedRange | None = None) -> None:
    member = bundle.by_name.get(PAYLOAD)
    seal = report.seal
    if member is None or seal is None:
        return
    if not identities and hashed is not None and (hashed.offset, hashed.size) == (
            member.offset, member.size):
        _compare_payload(report, seal, member.size, hashed.sha256)
        return
    if identities:
        report.recipients = _recipients(bundle)
    progress.start("Decrypting and checking" if identities else "Checking payload", None,
                   member.size)
    reader = MemberReader(bundle.file, member, lambda n: progress.advance(nbytes=n))
    stream = io.BufferedReader(_BundleReads(reader, bundle.path), buffer_size=1 << 20)
    try:
        if identities:
            _decrypt_and_check(stream, report, identities, readers)
        drain(stream)
    finally:
        progress.finish()
    _compare_payload(report, seal, member.size, reader.hexdigest())


def _compare_payload(report: Report, seal: Seal, size: int, sha256: str) -> None:
    """Step 7: the payload's size and SHA-256 against the seal and the custody log."""
    expected = report.payload or PayloadExpectation(seal.payload_sha256, seal.payload_size)
    if size != expected.size:
        report.findings.error("payload-hash", PAYLOAD, "payload size differs from the seal "
                              "and custody log", expected.size, size)
    report.payload_sha256 = sha256
    if report.payload_sha256 != expected.sha256:
        report.findings.error("payload-hash", PAYLOAD, "payload SHA-256 differs from the seal "
                              "and custody log (the encrypted evidence was changed)",
                              expected.sha256, report.payload_sha256)


def _recipients(bundle: OuterBundle) -> list[RecipientInfo] | None:
    """The payload's recipients, from its header alone; None when it cannot be read (the
    decryption that follows says why)."""
    try:
        header = read_payload_header(bundle)
    except EvidenceKitError:
        return None
    return None if header is None else recipients_in(header.stanzas)


class _BundleReads(RawReader):
    """The payload member as read from disk. A read error there (EIO from a damaged disk) is
    the input's fault: exit 2 naming the file, neither a damaged bundle nor a bug. Output errors
    of extract's writer stay OSError (extract reports those itself)."""

    def __init__(self, raw: MemberReader, path: Path) -> None:
        super().__init__()
        self._raw = raw
        self._path = path

    def readinto(self, buffer: Any) -> int:
        try:
            return self._raw.readinto(buffer)
        except OSError as exc:
            raise InputError(f"cannot read {self._path}: {exc.strerror or exc}") from None


def _decrypt_and_check(reader: BinaryIO, report: Report, identities: Sequence[age.Identity],
                       readers: PayloadReaders) -> None:
    findings = report.findings
    # Three stages (evidencekit.pipeline): one thread reads and hashes the ciphertext, one decrypts
    # it (and feeds readers.plaintext), this one parses the tar and hashes every file. Every plaintext chunk
    # is authenticated before it is handed on; the verdict is reached only at the end.
    # Blocks larger than the stream's own 1 MiB buffer: BufferedReader then reads straight into
    # them (one copy fewer).
    ciphertext = ReadAheadStream(reader, depth=3, block_size=2 << 20)
    plaintext: PieceReadAhead | None = None
    try:
        decrypted = age.AgeReader(cast(BinaryIO, ciphertext), identities)
        tar: SupportsReadinto = decrypted
        assert report.seal is not None
        if report.seal.payload_compression == ZSTD:  # format version 4
            tar = Decompressing(decrypted, plaintext_limit(report.seal, len(report.events)))
        plaintext = PieceReadAhead(tar, tee=readers.plaintext)
        # Reads the age stream to its authenticated end, so truncation and anything hidden after
        # the tar are caught too.
        scan = scan_payload(plaintext, findings, readers.files)
    except NoMatchingKey as exc:
        report.no_matching_key = exc.message
        return
    except BundleError as exc:
        # The only way damage shows: the age reader raises AgeError, the tar reader
        # TarFormatError (format/tarstream.py). Anything else (MemoryError, IndexError …) is a
        # bug and must reach the CLI as one (exit 5), not pass for a damaged bundle: otherwise
        # the fuzzers and the memory-bound tests could never catch it.
        findings.error("payload-decrypt", PAYLOAD, exc.message)
        return
    finally:
        if plaintext is not None:
            plaintext.close()
        ciphertext.close()  # the caller reads (and hashes) the rest of the member
    report.decrypted = True
    report.tag_files = scan.tag_files
    assert report.seal is not None
    _check_bag(scan, report.seal, findings)
    report.manifest = _check_manifest(scan, report, findings)
    report.files_checked = len(scan.data_files)
    report.addenda = addenda.check_addenda(scan.addenda, report.events, report.seal, findings)
    if readers.plaintext is not None and scan.end_offset is not None:
        readers.plaintext.tar_ended(scan.end_offset)


# What a version 4 payload may decompress to at most, beyond the evidence's bytes: per entry of
# the manifest (its tar headers, its lines in manifest.json and manifest-sha256.txt, with a
# long path escaped: far more than any writes), per custody event (an addendum, its signature and
# their headers), and once (incident.json, at most a tag file's limit, and the other tag files).
PER_ENTRY = 128 << 10
PER_EVENT = addenda.ADDENDUM_LIMIT + addenda.SIGNATURE_LIMIT + (8 << 10)
FIXED = TAG_FILE_LIMIT + (16 << 20)


def plaintext_limit(seal: Seal, events: int) -> int:
    """The most a compressed payload may expand to (docs/FORMAT.md §4.1): derived from what the
    signed seal declares, so a crafted frame of a few kilobytes cannot make a verifier read
    petabytes, while any tar a writer makes for those counts fits, whatever its names."""
    entries = sum(seal.counts.values())
    return seal.total_bytes + PER_ENTRY * entries + PER_EVENT * events + FIXED


def _check_bag(scan: PayloadScan, seal: Seal, findings: Findings) -> None:
    """Step 9: the bag is a valid BagIt bag and its manifest is the one the seal names."""
    if scan.tag_files.get(bag.BAGIT) != bag.BAGIT_TXT:
        findings.error("bag", bag.BAGIT, "bagit.txt is missing or not BagIt 1.0 / UTF-8")
    manifest_data = scan.tag_files.get(bag.MANIFEST)
    if manifest_data is None:
        findings.error("bag", bag.MANIFEST, "the payload manifest is missing")
        return
    root = hashlib.sha256(manifest_data).hexdigest()
    if root != seal.manifest_root:
        findings.error("bag", bag.MANIFEST, "the manifest's hash is not the root hash in the seal",
                       seal.manifest_root, root)
    try:
        problems = _compare_files(manifest_data, scan)
    except BundleError as exc:
        findings.error("bag", bag.MANIFEST, exc.message)
        return
    for where, problem, expected, found in problems:
        findings.error("bag", where, problem, expected, found)
    _check_tag_manifest(scan, findings)
    _check_tag_order(scan, findings)
    oxum = f"{sum(size for _, size in scan.data_files.values())}.{len(scan.data_files)}"
    info = scan.tag_files.get(bag.BAG_INFO, b"").decode("utf-8", "replace")
    if f"Payload-Oxum: {oxum}\n" not in info:
        findings.error("bag", bag.BAG_INFO, "Payload-Oxum does not match the payload", found=oxum)


def _compare_files(manifest_data: bytes, scan: PayloadScan) -> list[tuple[str, str, str | None,
                                                                          str | None]]:
    """Every line of manifest-sha256.txt against the payload, read line by line (a line per
    file); the problems are returned only once the whole manifest proved well formed."""
    problems: list[tuple[str, str, str | None, str | None]] = []
    listed: set[str] = set()
    for path, expected in bag.iter_manifest(manifest_data, bag.MANIFEST, seen=listed):
        found = scan.data_files.get(path)
        if found is None:
            problems.append((path, "file listed in the manifest is missing from the payload",
                             None, None))
        elif found[0] != expected:
            problems.append((path, "file content does not match its hash", expected, found[0]))
    for path in scan.data_files:
        if path not in listed:
            problems.append((path, "file in the payload is not listed in the manifest", None, None))
    return problems


# The tag files around bag/data/, in the order capture writes them (docs/FORMAT.md §4.2).
_TAGS_AFTER_DATA = (bag.MANIFEST, bag.BAG_INFO, bag.EK_INCIDENT, bag.EK_MANIFEST,
                    bag.EK_MANIFEST_SIG, bag.TAGMANIFEST)


def _check_tag_order(scan: PayloadScan, findings: Findings) -> None:
    """Step 9: the tag files come in the writer's order, and tagmanifest-sha256.txt lists them
    in that order, as capture writes it. Nothing signs either: a resealer could reorder them or
    the tag manifest's lines (the same files, other bytes, unseen); found by an independent
    review. Only said when the tag files are otherwise right (else that is the finding)."""
    if not findings.ok or any(name not in bag.TAG_FILES for name in scan.tag_files):
        return
    data = [name for name in scan.order if name.startswith("data/")]
    expected = [bag.BAGIT, *data, *(n for n in _TAGS_AFTER_DATA if n in scan.tag_files)]
    if scan.order != expected:
        where = next((found for wanted, found in zip(expected, scan.order, strict=False)
                      if wanted != found), bag.TAGMANIFEST)
        findings.error("bag", where, "the payload's tag files are not in the order evidencekit "
                       "writes them (bagit.txt, the data, manifest-sha256.txt, bag-info.txt, "
                       "incident.json, manifest.json and its signature, tagmanifest-sha256.txt)")
        return
    listed = b"".join(bag.manifest_line(scan.tag_hashes[name], name) for name in expected
                      if not name.startswith("data/") and name != bag.TAGMANIFEST)
    if scan.tag_files.get(bag.TAGMANIFEST) != listed:
        findings.error("bag", bag.TAGMANIFEST, "tagmanifest-sha256.txt is not the one "
                       "evidencekit writes (its lines reordered or rewritten)")


def _check_tag_manifest(scan: PayloadScan, findings: Findings) -> None:
    data = scan.tag_files.get(bag.TAGMANIFEST)
    if data is None:
        findings.error("bag", bag.TAGMANIFEST, "the tag manifest is missing")
        return
    try:
        listed = bag.parse_manifest(data, bag.TAGMANIFEST)
    except BundleError as exc:
        findings.error("bag", bag.TAGMANIFEST, exc.message)
        return
    for name in scan.tag_files:
        if name not in bag.TAG_FILES:
            # Tag files are not signed (only manifest.json and incident.json are, through the
            # sealer's signature): anything else could be slipped in by whoever re-encrypts.
            findings.error("bag", name, "tag file evidencekit never writes (no signature "
                           "covers it)")
        elif name != bag.TAGMANIFEST and name not in listed:
            findings.error("bag", name, "tag file is not listed in the tag manifest")
    for name, expected in listed.items():
        found = scan.tag_hashes.get(name)
        if found != expected:
            findings.error("bag", name, "tag file is missing or changed", expected, found)


def _check_manifest(scan: PayloadScan, report: Report, findings: Findings) -> Manifest | None:
    """Step 10: the signed evidencekit manifest agrees with the seal and with the files."""
    seal = report.seal
    assert seal is not None
    data = scan.tag_files.get(bag.EK_MANIFEST)
    signature = scan.tag_files.get(bag.EK_MANIFEST_SIG)
    if data is None or signature is None:
        findings.error("manifest", bag.EK_MANIFEST, "the evidencekit manifest or its signature "
                       "is missing")
        return None
    digest = hashlib.sha256(data).hexdigest()
    if digest != seal.manifest_sha256:
        findings.error("manifest", bag.EK_MANIFEST, "manifest differs from the one the seal names",
                       seal.manifest_sha256, digest)
    try:
        signer = sshsig.verify(signature, data)
        if signer.fingerprint != seal.signer.fingerprint:
            findings.error("manifest", bag.EK_MANIFEST_SIG, "manifest signed by another key than "
                           "the seal", seal.signer.fingerprint, signer.fingerprint)
        # Entry problems are only reported once the whole document proved canonical: a broken
        # manifest is one finding, not one per entry before the break.
        entries = _EntryComparison(scan)
        manifest = read_manifest(data, bag.EK_MANIFEST, entries.check)
        _check_manifest_fields(manifest, scan, seal, findings)
        entries.report(findings)
        _check_tag_headers(manifest, scan, findings)
        _check_bag_info(manifest, scan, findings)
        check_incident(manifest, scan, findings)
    except BundleError as exc:
        findings.error("manifest", bag.EK_MANIFEST, exc.message)
        return None
    return manifest


TAG_MODE = 0o644


def _check_bag_info(manifest: Manifest, scan: PayloadScan, findings: Findings) -> None:
    """Step 10: bag-info.txt is exactly what capture derived from the signed manifest. Nothing
    signs bag-info.txt, and BagIt tools show it as the bag's description: a resealer who could
    change it (and the tag manifest with it) could plant text in the sealer's name."""
    found = scan.tag_files.get(bag.BAG_INFO)
    if found is None:
        return  # step 9 reports a missing tag file
    try:
        case, capture, summary = (manifest.fields[key] for key in ("case", "capture", "summary"))
        expected = bag.evidencekit_bag_info(
            tool_version=capture["tools"]["evidencekit"], bagging_date=capture["started"][:10],
            case_id=case["case_id"], examiner=case["examiner"],
            organisation=case.get("organisation") or "", description=case.get("description") or "",
            total_bytes=summary["total_bytes"], files=summary["counts"]["files"])
    except (KeyError, TypeError, AttributeError):
        findings.error("manifest", bag.EK_MANIFEST, "manifest.json lacks the fields bag-info.txt "
                       "is made from")
        return
    if found != expected:
        number, wanted, there = _first_different_line(expected, found)
        findings.error("manifest", bag.BAG_INFO, f"bag-info.txt differs at line {number} from "
                       "the one capture wrote from the signed manifest.json (someone changed the "
                       "bag's description)", wanted, there)


def _first_different_line(expected: bytes, found: bytes) -> tuple[int, str, str]:
    """The first line where *found* differs from *expected*: its number and both versions."""
    wanted = expected.decode("utf-8", "replace").split("\n")
    there = found.decode("utf-8", "replace").split("\n")
    for number in range(max(len(wanted), len(there))):
        one = wanted[number] if number < len(wanted) else "(nothing)"
        other = there[number] if number < len(there) else "(nothing)"
        if one != other:
            return number + 1, one[:200], other[:200]
    return 1, "", ""  # unreachable: the bytes differ


def _check_tag_headers(manifest: Manifest, scan: PayloadScan, findings: Findings) -> None:
    """Step 10: the tag files' tar headers are the writer's (mode 0644, owner 0:0, the capture's
    start as mtime): nothing signs them, so anything else was put there by someone else, and
    ``tar -x`` would give the files that mode and owner."""
    capture = manifest.get("capture")
    started = capture.get("started") if isinstance(capture, dict) else None
    for name, member in scan.members.items():
        if name.startswith("data/") or member.kind == "directory":
            continue  # data/: the tree comparison; a folder outside data/: the scan
        if (member.mode, member.uid, member.gid) != (TAG_MODE, 0, 0) or \
                not _same_time(started, member):
            findings.error("bag", name, "tag file's tar header is not the one evidencekit writes "
                           "(mode 0644, owner 0:0, mtime the capture's start)",
                           f"mode 0644, uid 0, gid 0, mtime {started}", _described(member))


def _same_time(text: object, member: StoredMember) -> bool:
    try:
        return isinstance(text, str) and member.has_time(parse_rfc3339(text))
    except ValueError:
        return False


def _described(member: StoredMember) -> str:
    return (f"mode {member.mode:04o}, uid {member.uid}, gid {member.gid}, mtime "
            f"{member.mtime_ns} ns")


def check_incident(manifest: Manifest, scan: PayloadScan, findings: Findings) -> None:
    """Step 10: incident.json is the one manifest.json names (null or absent: none) and parses."""
    expected = manifest.get("incident_sha256")
    data = scan.tag_files.get(bag.EK_INCIDENT)
    if expected is not None and not (isinstance(expected, str) and len(expected) == 64):
        findings.error("manifest", bag.EK_MANIFEST, "incident_sha256 is not a SHA-256")
    elif data is None:
        if expected is not None:
            findings.error("manifest", bag.EK_INCIDENT, "the incident record named in "
                           "manifest.json is missing from the payload")
    elif expected is None:
        findings.error("manifest", bag.EK_INCIDENT, "the payload holds an incident record that "
                       "manifest.json does not name (it was added after sealing)")
    elif hashlib.sha256(data).hexdigest() != expected:
        findings.error("manifest", bag.EK_INCIDENT, "the incident record differs from the one "
                       "manifest.json names", expected, hashlib.sha256(data).hexdigest())
    else:
        try:
            incident.from_json(data, bag.EK_INCIDENT)
        except BundleError as exc:
            findings.error("manifest", bag.EK_INCIDENT, exc.message)


def _check_manifest_fields(manifest: Manifest, scan: PayloadScan, seal: Seal,
                           findings: Findings) -> None:
    if manifest.get("type") != MANIFEST_TYPE or manifest.get("format_version") not in SUPPORTED_VERSIONS:
        raise BundleError("manifest.json is not an evidencekit manifest of a known version")
    try:
        case_id = manifest.fields["case"]["case_id"]
        summary = manifest.fields["summary"]
    except (KeyError, TypeError):
        raise BundleError("manifest.json is missing required fields") from None
    if not isinstance(summary, dict):
        raise BundleError("manifest.json: 'summary' is not an object")
    sizes = [size for _, size in scan.data_files.values()]
    if seal.total_bytes != sum(sizes) or seal.counts["files"] != len(sizes):
        findings.error("manifest", SEAL, "the seal's file count or total size differs from the "
                       "payload", f"{seal.counts['files']} files, {seal.total_bytes} bytes",
                       f"{len(sizes)} files, {sum(sizes)} bytes")
    if case_id != seal.case_id:
        findings.error("manifest", bag.EK_MANIFEST, "manifest names another case", seal.case_id,
                       case_id)
    if summary.get("counts") != seal.counts or summary.get("total_bytes") != seal.total_bytes:
        findings.error("manifest", bag.EK_MANIFEST, "manifest counts differ from the seal")
    if summary.get("manifest_root") != seal.manifest_root:
        findings.error("manifest", bag.EK_MANIFEST, "manifest root hash differs from the seal")
    if manifest.get("format_version") == 1:
        for path in scan.hard_links:  # version 1 stores every name as a copy (FORMAT.md §8)
            findings.error("manifest", path, "a format version 1 bundle holds a hard link")


class _EntryComparison:
    """Each manifest entry checked as it is read (format/entries.py) and against the file the
    payload holds; only the problems and the paths seen but not matched to a file are kept (the
    paths seen are the sanity check's: one set of 100,000 paths, not one per check)."""

    def __init__(self, scan: PayloadScan) -> None:
        self._files = scan.data_files
        self._hard_links = scan.hard_links
        self._sane = EntryChecker()
        self._unmatched: set[str] = set()  # seen first in an entry that is no stored file
        self._tree = TreeComparison(scan.members, scan.data_order)
        self._problems: list[tuple[str, str, object, object]] = []

    def check(self, entry: Any) -> None:
        path = entry.get("bag_path") if isinstance(entry, dict) else None
        first = isinstance(path, str) and not self._sane.seen(path)
        for where, problem in self._sane.problems(entry):
            self._problems.append((where, problem, None, None))
        if not first:
            return  # not a path, or listed twice: reported by the sanity check
        assert isinstance(entry, dict) and isinstance(path, str)
        self._tree.check(entry, path)
        if not (entry.get("kind") == "file" and isinstance(entry.get("sha256"), str)):
            self._unmatched.add(path)
            return
        found = self._files.get(path)
        if found is None:
            self._problems.append((path, "file recorded in manifest.json is not in the payload",
                                   None, None))
        elif found[0] != entry["sha256"]:
            self._problems.append((path, "file content does not match manifest.json",
                                   entry["sha256"], found[0]))
        elif entry.get("size") != found[1]:
            self._problems.append((path, "file size does not match manifest.json",
                                   entry.get("size"), found[1]))
        if entry.get("link_to") != self._hard_links.get(path):
            self._problems.append((path, "manifest.json and the payload disagree on which file "
                                   "this one is a hard link to", entry.get("link_to"),
                                   self._hard_links.get(path)))

    def report(self, findings: Findings) -> None:
        unlisted = [path for path in self._files
                     if not self._sane.seen(path) or path in self._unmatched]
        tree = self._tree.problems(check_order=not (self._problems or unlisted))
        for where, problem, expected, found in [*self._problems, *tree]:
            findings.error("manifest", where, problem, expected, found)
        for path in unlisted:
            findings.error("manifest", path, "file in the payload is not in manifest.json")
