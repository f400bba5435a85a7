"""Chain of custody: append signed events, reseal for a new holder, and receipts.

Appending never decrypts or rewrites the payload and needs no decryption key: the two new members
replace the outer tar's end-of-archive blocks, and nothing before them changes. Resealing writes a
new bundle whose payload is the same plaintext re-encrypted in one streaming pass; the seal and the
custody log are carried over byte for byte and a signed "resealed" event links the old payload
hash to the new one (docs/FORMAT.md §6). A reseal may also add an addendum: a signed note written
into the new payload after the bag, which the "resealed" event names (§4.6, evidencekit.addenda).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from evidencekit import addenda, fs, publictext
from evidencekit.clock import Clock, clock_source, rfc3339, system_clock
from evidencekit.crypto import age, sshsig
from evidencekit.crypto.keys import SigningKey
from evidencekit.errors import BundleError, EvidenceKitError, InputError, OutputError, UsageError
from evidencekit.findings import Findings
from evidencekit.format.documents import (
    ACTIONS,
    PAYLOAD,
    README,
    SEAL,
    CustodyEvent,
    Signer,
    custody_member,
)
from evidencekit.format.outer import END_OF_ARCHIVE, OuterWriter, read_member
from evidencekit.format.reader import SMALL_MEMBER_LIMIT, OuterBundle, open_bundle
from evidencekit.hostinfo import host_name
from evidencekit.payload import PayloadReaders
from evidencekit.progress import Progress
from evidencekit.text import human_size
from evidencekit.verify import Report, verify

APPENDABLE = tuple(a for a in ACTIONS if a not in ("captured", "resealed"))


@dataclass(frozen=True)
class EventRequest:
    """A custody event to sign. Its texts are checked when it is made, before any bundle is
    read: what a reader could not read back is never written (evidencekit.publictext)."""

    action: str
    actor_name: str
    signing_key: SigningKey
    note: str = ""
    counterparty: str = ""
    details: dict[str, str] = field(default_factory=dict)
    clock: Clock = system_clock

    def __post_init__(self) -> None:
        publictext.check_line(self.actor_name, "--actor")
        publictext.check_text(self.note, "--note")
        publictext.check_line(self.counterparty, COUNTERPARTY_OPTION.get(self.action, "--to"))


# Who else took part (FORMAT.md §6, ``counterparty``): to whom a bundle was handed, from whom
# it was received. Only these two actions have one, and each needs it.
COUNTERPARTY_OPTION = {"transferred": "--to", "received": "--from"}


def counterparty_for(action: str, to_party: str | None, from_party: str | None) -> str:
    """The ``counterparty`` of a new event: --to for 'transferred', --from for 'received' (each
    required there), neither for any other action."""
    wanted = COUNTERPARTY_OPTION.get(action)
    given = {"--to": to_party, "--from": from_party}
    for option, value in given.items():
        if value and option != wanted:
            where = f"for '{action}' give {wanted}" if wanted else \
                "put who else took part into --note"
            raise UsageError(f"{option} cannot be used with --action {action}; {where}",
                             hint="--to is whom a bundle was handed to (transferred); --from "
                             "is who handed it over (received)")
    if wanted is None:
        return ""
    value = given[wanted]
    if not value or not value.strip():
        whom = "to whom the bundle was handed" if action == "transferred" else \
            "who handed the bundle over"
        raise UsageError(f"--action {action} needs {wanted}: {whom}",
                         hint=f'e.g. {wanted} "Det. A. Smith, Cyber Unit"')
    return value


def counterparty_text(event: CustodyEvent) -> str:
    """'to Det. Smith', 'from J. Doe': the counterparty as people read it."""
    if not event.counterparty:
        return ""
    word = {"transferred": "to", "received": "from"}.get(event.action)
    return f"{word} {event.counterparty}" if word else event.counterparty


def signer_of(key: SigningKey) -> Signer:
    public = key.public
    return Signer(" ".join(public.openssh_line().split()[:2]), public.fingerprint)


def require_intact(report: Report) -> None:
    """Refuse to add to a bundle whose public parts do not verify: the event would vouch for it."""
    if not report.findings.ok or report.seal is None or report.payload_sha256 is None:
        first = report.findings.errors[0] if report.findings.errors else None
        where = f" ({first.where}: {first.problem})" if first else ""
        raise BundleError(f"the bundle does not verify{where}; no custody event was added",
                          hint="run 'evidencekit verify' to see every problem")


def checked_for_note(bundle: Path) -> Report:
    """*bundle* verified (its payload's hash too, no key needed) before a person is asked to
    confirm a public note: a note would vouch for it. append_event checks again under the
    lock; this check comes first so that nobody confirms a note that cannot be added."""
    checked = verify(bundle, check_payload_hash=True)
    if not checked.ok:
        first = checked.findings.errors[0] if checked.findings.errors else None
        raise BundleError("the bundle does not verify, so no note was added"
                          + (f" ({first.where}: {first.problem})" if first else ""),
                          hint="run 'evidencekit verify' to see every problem")
    return checked


def build_event(report: Report, request: EventRequest, *, action: str | None = None,
                payload_sha256: str | None = None) -> CustodyEvent:
    """The next event for a verified bundle (report from ``verify``)."""
    assert report.seal is not None and report.events
    last = report.events[-1]
    previous_json = last.to_json()
    return CustodyEvent(
        case_id=report.seal.case_id, sequence=last.sequence + 1, action=action or request.action,
        time=rfc3339(request.clock()), clock_source=clock_source(),
        actor_name=request.actor_name, actor=signer_of(request.signing_key), host=host_name(),
        note=request.note, payload_sha256=payload_sha256 or report.payload_sha256 or "",
        previous_sha256=hashlib.sha256(previous_json).hexdigest(),
        counterparty=request.counterparty, details=dict(request.details),
    )


def append_event(bundle: Path, request: EventRequest, report: Report | None = None,
                 waiting: Callable[[], None] | None = None,
                 linked: Callable[[int], None] | None = None) -> CustodyEvent:
    """Verify the public parts of *bundle*, then append a signed event, atomically: the bundle
    is replaced by a copy that holds the event (evidencekit.fs.replace_end), so a kill or a full
    disk at any instant leaves it whole, with or without the event.

    One writer at a time: another evidencekit command appending to the same bundle is waited
    for (*waiting* is called when that happens), and the bundle is checked again once it is
    ours, so the event follows whatever that command added. A *report* from a verify that just
    ran (``verify --record``) must describe the same payload as the bundle found then.

    The bundle is replaced, so another name it had (a hard link) keeps the bundle as it was:
    *linked* is then told how many such names there were, to say so.
    """
    if request.action not in APPENDABLE:
        raise UsageError(f"action must be one of: {', '.join(APPENDABLE)}")
    target = appendable(bundle)
    try:
        with fs.locked(target, waiting) as fd:
            current = verify(target)
            require_intact(current)
            if report is not None and report.payload_sha256 != current.payload_sha256:
                raise BundleError("the bundle changed while it was being checked; no custody "
                                  "event was added", hint="run the command again")
            event = build_event(current, request)
            publictext.check_readable(event.to_json(), custody_member(event.sequence))
            others = os.fstat(fd).st_nlink - 1
            _append_members(target, fd, event, request.signing_key)
    except OSError as exc:
        raise append_failed(bundle, "the custody event", exc,
                            "free some space on that disk, or copy the bundle to a disk with "
                            "more room and add the event there") from None
    if others > 0 and linked is not None:
        linked(others)
    return event


def check_appendable(bundle: Path) -> None:
    """Refuse now (OutputError) a bundle that a custody event could not be added to later
    (read-only, in a folder that cannot be written): asked before a long extract --record."""
    appendable(bundle)


def appendable(bundle: Path) -> Path:
    """The file to replace: a symbolic link's target (the link stays a link), and one that may
    be written (a bundle made read-only on purpose is not changed behind its owner's back)."""
    target = Path(os.path.realpath(bundle))
    # No write bit at all is read-only on purpose, also for root, whom os.access lets write
    # anything (a 0444 bundle was replaced by 'export --record' run as root).
    if target.exists() and (not os.access(target, os.W_OK) or
                            not target.stat().st_mode & 0o222):
        raise OutputError(f"cannot write to {bundle}: it is read-only",
                          hint="custody events are added to the bundle file itself")
    if target.exists() and not os.access(target.parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to the folder {target.parent}",
                          hint="custody events are added by replacing the bundle with a copy "
                          "that holds them, in the same folder")
    return target


def append_failed(bundle: Path, what: str, exc: OSError, space_hint: str) -> EvidenceKitError:
    """What to tell people when adding *what* ("the custody event", "the timestamp") to
    *bundle* failed on the disk (evidencekit.fs.replace_end): the bundle is as it was."""
    if isinstance(exc, fs.NotEnoughSpace):
        return OutputError(f"not enough free space next to {bundle} to add {what}: it needs "
                           f"{human_size(exc.needed)} (a copy of the bundle), "
                           f"{human_size(exc.free)} are free; the bundle was left as it was",
                           hint=space_hint)
    if isinstance(exc, FileNotFoundError):
        return InputError(f"cannot read {bundle}: it does not exist")
    return OutputError(f"could not add {what} to {bundle}: {exc.strerror or exc}; the bundle "
                       "was left as it was", hint="check free space and permissions")


def _append_members(bundle: Path, fd: int, event: CustodyEvent, key: SigningKey) -> None:
    """The bundle with the event's two members appended (docs/FORMAT.md §6)."""
    data = event.to_json()
    mtime = _seconds(event.time)
    name = custody_member(event.sequence)
    append_outer_members(bundle, fd, [(name, data, mtime),
                                      (name + ".sig", sshsig.sign(key, data), mtime)])


def append_outer_members(bundle: Path, fd: int, members: list[tuple[str, bytes, int]]) -> None:
    """The bundle (open as *fd*, under the lock) with its end-of-archive blocks replaced by
    *members* (name, data, header mtime in seconds) and a new end: every byte before the old
    end stays as it was; the whole file is replaced at once (evidencekit.fs.replace_end)."""
    end = os.fstat(fd).st_size
    if end < len(END_OF_ARCHIVE) or \
            os.pread(fd, len(END_OF_ARCHIVE), end - len(END_OF_ARCHIVE)) != END_OF_ARCHIVE:
        raise BundleError("the bundle does not end with a tar end-of-archive marker")
    encoded = io.BytesIO()
    writer = OuterWriter(encoded)
    for name, data, mtime in members:
        writer.add_bytes(name, data, mtime)
    writer.finish()
    fs.replace_end(bundle, fd, end - len(END_OF_ARCHIVE), encoded.getvalue())


def _seconds(stamp: str) -> int:
    from evidencekit.clock import parse_rfc3339

    return parse_rfc3339(stamp) // 1_000_000_000


# ------------------------------------------------------------------------------------- reseal
class _Tee:
    """Plaintext passes through to the new age stream as the verifier reads it, except its
    final run of zero bytes, which is only counted (it holds the tar's end-of-archive blocks).

    It is verify's ``PayloadReaders.plaintext``. Where the payload tar ends is known only once
    the verifier has read it (:meth:`tar_ended`), and an addendum is written just there, before
    two new zero blocks (docs/FORMAT.md §4.6): :meth:`finish` writes the withheld zeros up to
    that point, the addendum members, and the end. Nothing is buffered, so memory stays flat
    whatever the size of the evidence.
    """

    ZEROS = bytes(1 << 16)

    def __init__(self, sink: age.AgeWriter) -> None:
        self.sink = sink
        self.size = 0  # plaintext bytes seen
        self.withheld = 0  # zero bytes at the end of what was seen, not written yet
        self.end: int | None = None  # where the tar's end-of-archive blocks start, once known

    def write(self, data: bytes) -> int:
        self.size += len(data)
        kept = data.rstrip(b"\0")
        if not kept:
            self.withheld += len(data)
            return len(data)
        self._zeros(self.withheld)
        self.sink.write(kept)
        self.withheld = len(data) - len(kept)
        return len(data)

    def _zeros(self, count: int) -> None:
        while count:
            piece = min(count, len(self.ZEROS))
            self.sink.write(self.ZEROS[:piece])
            count -= piece

    def tar_ended(self, offset: int) -> None:
        self.end = offset

    def finish(self, members: bytes = b"") -> None:
        """The rest of the plaintext: as it was; or, with *members*, the tar up to its end (the
        offset the verifier found), *members*, and two zero blocks."""
        if not members:
            self._zeros(self.withheld)
            return
        written = self.size - self.withheld
        end = self.end
        if end is None or not written <= end <= self.size:  # verify would have said so
            raise BundleError("the payload tar's end could not be found; nothing was resealed")
        self._zeros(end - written)
        self.sink.write(members)
        self.sink.write(END_OF_ARCHIVE)


@dataclass
class ResealResult:
    output: Path
    report: Report
    event: CustodyEvent
    addendum: addenda.Addendum | None = None  # the encrypted addition made by this reseal


def reseal(bundle: Path, output: Path, identities: Sequence[age.Identity],
           recipients: Sequence[age.Recipient], request: EventRequest,
           random: age.RandomSource = os.urandom, progress: Progress | None = None,
           addendum: addenda.NoteContent | None = None) -> ResealResult:
    """Re-encrypt *bundle*'s payload for *recipients* into a new bundle at *output*.

    The old payload is decrypted, fully verified and re-encrypted in one pass; the new bundle is
    published only if every check passed. With *addendum*, the new payload also holds it as an
    addendum signed by the resealer (docs/FORMAT.md §4.6), and the "resealed" event names it.
    """
    if output.exists() or output.is_symlink():
        raise OutputError(f"{output} already exists; evidencekit never overwrites a bundle")
    _refuse_too_big_for_destination(bundle, output)
    try:
        with fs.staged(output) as stage:
            result = _write_resealed(bundle, stage.file, identities, recipients, request, random,
                                     progress, addendum)
        result.output = output
        return result
    except fs.NameNotAllowed as exc:
        raise OutputError(f"cannot write the new bundle {output}: {exc.strerror}; nothing was "
                          "written", hint="choose another name with -o") from None
    except fs.CannotCreate as exc:
        raise OutputError(f"cannot write the new bundle {output}: {exc.strerror or exc}",
                          hint="check that the folder exists and that you can write to it") from None
    except FileExistsError:
        raise OutputError(f"{output} appeared while resealing; nothing was written") from None
    except OSError as exc:
        raise OutputError(f"could not write the new bundle {output}: {exc.strerror or exc}; "
                          "nothing was left behind", hint="check free space and permissions; a "
                          "FAT32 stick cannot hold a file of 4 GiB or more") from None


def _refuse_too_big_for_destination(bundle: Path, output: Path) -> None:
    """The new bundle is about as large as the old one (the same plaintext, a few more small
    members): refuse a FAT32 destination that cannot hold it before decrypting anything."""
    largest = fs.largest_file(output.absolute().parent)
    try:
        estimate = os.stat(bundle).st_size + (1 << 20)
    except OSError:
        return  # verify says why the bundle cannot be read
    if largest is not None and estimate > largest:
        from evidencekit.capture import too_big_message

        raise OutputError(too_big_message(output, estimate, largest),
                          hint="save it on a stick formatted as exFAT or NTFS, or in another "
                          "folder, with -o")


def _write_resealed(bundle: Path, out: BinaryIO, identities: Sequence[age.Identity],
                    recipients: Sequence[age.Recipient], request: EventRequest,
                    random: age.RandomSource, progress: Progress | None = None,
                    content: addenda.NoteContent | None = None) -> ResealResult:
    # One open of the bundle for the members carried over and for the verify: a custody append
    # may put a new file under that name meanwhile (it replaces the bundle), whose log holds
    # an event the members read before do not.
    source = open_bundle(bundle)
    try:
        return _reseal_open(source, bundle, out, identities, recipients, request, random,
                            progress, content)
    finally:
        source.close()


def _reseal_open(source: OuterBundle, bundle: Path, out: BinaryIO,
                 identities: Sequence[age.Identity], recipients: Sequence[age.Recipient],
                 request: EventRequest, random: age.RandomSource, progress: Progress | None,
                 content: addenda.NoteContent | None) -> ResealResult:
    carried = {m.name: read_member(source.file, m, SMALL_MEMBER_LIMIT)
               for m in source.members if m.name != PAYLOAD}
    times = {m.name: m.mtime for m in source.members}
    order = [m.name for m in source.members]
    added: addenda.Addendum | None = None
    writer = OuterWriter(out)
    writer.add_bytes(README, carried[README], times[README])
    with writer.add_stream(PAYLOAD, times[PAYLOAD]) as sink:
        encryptor = age.AgeWriter(cast(BinaryIO, sink), recipients, random=random)
        tee = _Tee(encryptor)
        report = verify(bundle, identities, progress=progress, opened=source,
                        readers=PayloadReaders(plaintext=tee))
        if not report.ok or not report.decrypted:
            encryptor.abort()
            _raise_failed(report)
        now = request.clock()  # the time of the "resealed" event and of its addendum
        request = dataclasses.replace(request, clock=lambda: now)
        try:
            if content is None:
                tee.finish()
            else:
                added, members = _addendum_members(report, request, content, now)
                tee.finish(members)
        except BaseException:
            encryptor.abort()
            raise
        encryptor.close()
    # The seal, the custody log and any timestamps (format version 3, which countersign the
    # seal's signature and so stay valid), byte for byte and in their order.
    for name in order[order.index(SEAL):]:
        writer.add_bytes(name, carried[name], times[name])
    details = {"old_payload_sha256": report.payload_sha256 or "",
               "new_payload_sha256": sink.hexdigest(), "new_payload_size": str(sink.size),
               "recipients": ", ".join(_describe(r) for r in recipients)}
    if added is not None:
        details[addenda.DETAIL] = hashlib.sha256(added.to_json()).hexdigest()
    event = build_event(report, dataclasses.replace(request, details=details),
                        action="resealed", payload_sha256=sink.hexdigest())
    data = event.to_json()
    member = custody_member(event.sequence)
    publictext.check_readable(data, member)
    writer.add_bytes(member, data, _seconds(event.time))
    writer.add_bytes(member + ".sig", sshsig.sign(request.signing_key, data), _seconds(event.time))
    writer.finish()
    return ResealResult(Path(), report, event, added)


def _addendum_members(report: Report, request: EventRequest, content: addenda.NoteContent,
                      now: int) -> tuple[addenda.Addendum, bytes]:
    """The addendum of the coming "resealed" event, signed, as plaintext tar members."""
    assert report.seal is not None and report.events
    if len(report.addenda) >= addenda.MAX_ADDENDA:
        raise UsageError(f"the bundle already holds {len(report.addenda)} addenda, the most a "
                         "bundle may hold; nothing was resealed",
                         hint="make a new bundle whose incident record holds the note")
    sequence = report.events[-1].sequence + 1
    document = addenda.new_addendum(report.seal.case_id, sequence, rfc3339(now),
                                    request.actor_name, signer_of(request.signing_key), content)
    data = document.to_json()
    signature = sshsig.sign(request.signing_key, data)
    return document, addenda.tar_members(sequence, data, signature, now // 1_000_000_000)


def _describe(recipient: age.Recipient) -> str:
    text = str(recipient)
    return "passphrase" if isinstance(recipient, age.ScryptRecipient) else text


def _raise_failed(report: Report) -> None:
    from evidencekit.errors import NoMatchingKey

    if report.no_matching_key:
        raise NoMatchingKey(report.no_matching_key)
    first = report.findings.errors[0] if report.findings.errors else None
    detail = f": {first.where}: {first.problem}" if first else ""
    raise BundleError(f"the bundle does not verify{detail}; it was not resealed",
                      hint="run 'evidencekit verify -i KEY' to see every problem")


# ------------------------------------------------------------------------------------ receipts
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


def event_summary(event: CustodyEvent) -> dict[str, Any]:
    return {"sequence": event.sequence, "action": event.action, "time": event.time,
            "actor": event.actor_name, "fingerprint": event.actor.fingerprint,
            "host": event.host, "counterparty": event.counterparty, "note": event.note,
            "details": event.details, "clock_source": event.clock_source,
            "payload_sha256": event.payload_sha256,
            "event_sha256": hashlib.sha256(event.to_json()).hexdigest()}
