"""Addenda (format version 2): signed additions to the incident record, kept inside the encryption.

A public custody "note" (``evidencekit note``) is readable by anyone who has the bundle. An
addendum says the same things (a note, a timeline entry, an identifier, a loss) but is written into
the encrypted payload by a reseal: members ``addenda/NNNNNN.json`` and ``addenda/NNNNNN.json.sig``
after every ``bag/`` member of the plaintext tar, where NNNNNN is the sequence number of the
``resealed`` custody event that added it and whose ``details`` name its SHA-256
(``addendum_sha256``). The bag itself, and so the sealer's signed manifest, is not touched
(docs/FORMAT.md §4.6).

This module holds the document (parse = validate, like evidencekit.format.documents), what the
payload reader collects (:class:`FoundAddendum`), the checks of verification step ``addenda``,
and the tar members a reseal writes.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

from evidencekit import incident as inc
from evidencekit.crypto import sshsig
from evidencekit.errors import BundleError
from evidencekit.findings import Findings
from evidencekit.format.documents import (
    CustodyEvent,
    Seal,
    Signer,
    document_json,
    open_document,
)

CHECK = "addenda"  # the verification step (docs/FORMAT.md §7.1)
ADDENDA_DIR = "addenda/"
ADDENDUM_TYPE = "evidencekit.addendum"
FIRST_VERSION = 2  # addenda exist from format version 2 on
DETAIL = "addendum_sha256"  # in the details of the "resealed" event that added one
ADDENDUM_LIMIT = 1 << 20  # bytes of addenda/NNNNNN.json: a note of 100,000 characters fits
SIGNATURE_LIMIT = 1 << 14  # bytes of its .sig: an Ed25519 SSHSIG is about 300
MAX_ADDENDA = 1000  # in one payload: what verify holds is bounded (1000 x 1 MiB at most)
MEMBER_MODE = 0o644
RESEAL_NOTE = "resealed to add a private note"  # the public text of its "resealed" event

_NAME = re.compile(r"^addenda/([0-9]{6})\.json(\.sig)?$")
_KEYS = {"type", "format_version", "case_id", "sequence", "time", "author", "details", "text"}


def addendum_member(sequence: int) -> str:
    return f"{ADDENDA_DIR}{sequence:06d}.json"


# ------------------------------------------------------------------------------- the document
@dataclass(frozen=True)
class Addendum:
    """``addenda/NNNNNN.json``: canonical JSON, signed by its author (docs/FORMAT.md §4.6)."""

    case_id: str
    sequence: int  # that of the "resealed" custody event that added it
    time: str  # when it was written (UTC), the time of that event
    author_name: str
    author: Signer  # who resealed, and signs this document
    details: dict[str, str]  # exactly a custody "note" event's details (§6): kind and its fields
    text: str  # the note's text (a "note" event's ``note``)
    format_version: int = FIRST_VERSION

    def to_json(self) -> bytes:
        return document_json(ADDENDUM_TYPE, self.format_version, self.case_id, {
            "sequence": self.sequence,
            "time": self.time,
            "author": self.author.person_json(self.author_name),
            "details": self.details,
            "text": self.text,
        })

    @classmethod
    def from_json(cls, data: bytes, what: str) -> Addendum:
        f, version = open_document(data, what, ADDENDUM_TYPE)
        if version < FIRST_VERSION:
            raise BundleError(f"{what} says format version {version}; addenda exist from "
                              f"version {FIRST_VERSION} on")
        f.exact_keys(_KEYS)
        author = f.person("author")
        sequence = f.sequence()
        details = f.text_map("details")
        return cls(
            case_id=f.text("case_id"), sequence=sequence, time=f.time("time"),
            author_name=f.text("name", author),
            author=f.signer(author),
            details=details, text=f.text("text"), format_version=version)

    def note(self) -> inc.Note:
        """What it says, as the report shows notes (evidencekit.incident)."""
        return inc.note_from_details(self.details, self.text, sequence=self.sequence,
                                     time=self.time, actor=self.author_name,
                                     fingerprint=self.author.fingerprint)


# ------------------------------------------------------------------------ read from the payload
@dataclass
class FoundAddendum:
    """An ``addenda/`` pair as the payload reader found it (evidencekit.payload)."""

    sequence: int  # from the member name
    data: bytes
    signature: bytes | None = None  # None: no .sig followed the .json
    document: Addendum | None = None  # set by check_addenda when it parses

    @property
    def name(self) -> str:
        return addendum_member(self.sequence)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class _Data(Protocol):
    def data(self) -> Iterator[memoryview]: ...


def scan_member(tar: _Data, member: tarfile.TarInfo, found: list[FoundAddendum],
                findings: Findings) -> None:
    """One payload member whose name starts with ``addenda/``: kept in *found* when it is where
    and what it must be, a finding otherwise (its data is then skipped by the tar reader)."""
    name = member.name
    match = _NAME.match(name)
    if match is None or int(match[1]) < 1:
        findings.error(CHECK, name, "unexpected member in addenda/ (only addenda/NNNNNN.json "
                       "and addenda/NNNNNN.json.sig are allowed)")
        return
    if not member.isreg():
        findings.error(CHECK, name, "addendum member is not a regular file")
        return
    if member.pax_headers or member.mode != MEMBER_MODE or member.uid or member.gid:
        # Nothing signs the header; tar -x would give the file that mode and owner.
        findings.error(CHECK, name, "addendum member's tar header is not the one evidencekit "
                       "writes (ustar, mode 0644, owner 0:0)")
        return
    sequence, is_signature = int(match[1]), match[2] is not None
    limit = SIGNATURE_LIMIT if is_signature else ADDENDUM_LIMIT
    if member.size > limit:  # refused before anything is read
        findings.error(CHECK, name, f"addendum member is {member.size} bytes, more than the "
                       f"{limit} allowed")
        return
    if not is_signature and len(found) >= MAX_ADDENDA:
        findings.error(CHECK, name, f"the payload holds more than the {MAX_ADDENDA} addenda "
                       "allowed (not read)")
        return
    last = found[-1] if found else None
    if is_signature:
        if last is None or last.sequence != sequence or last.signature is not None:
            findings.error(CHECK, name, "addendum signature does not follow its addendum "
                           f"{addendum_member(sequence)}")
            return
        last.signature = _read(tar)
        return
    if last is not None and sequence <= last.sequence:
        findings.error(CHECK, name, "addenda are not in increasing order of their sequence "
                       f"numbers (after {last.name})")
        return
    found.append(FoundAddendum(sequence, _read(tar)))


def _read(tar: _Data) -> bytes:
    buffer = io.BytesIO()
    for piece in tar.data():
        buffer.write(piece)
    return buffer.getvalue()


# ------------------------------------------------------------------------------ verification
def check_event(event: CustodyEvent, where: str, findings: Findings) -> None:
    """Step 6, without a key: an ``addendum_sha256`` detail is well formed and where it may be."""
    digest = event.details.get(DETAIL)
    if digest is None:
        return
    if event.action != "resealed":
        findings.error("custody", where, f"only a 'resealed' event can add an addendum "
                       f"({DETAIL} in a '{event.action}' event)")
    elif not re.fullmatch(r"[0-9a-f]{64}", digest):
        findings.error("custody", where, f"{DETAIL} is not a SHA-256", found=digest[:80])
    elif event.format_version < FIRST_VERSION:
        findings.error("custody", where, f"a format version {event.format_version} event "
                       f"cannot add an addendum (addenda exist from version {FIRST_VERSION} on)")


def check_addenda(found: Sequence[FoundAddendum], events: Sequence[CustodyEvent], seal: Seal,
                  findings: Findings) -> list[FoundAddendum]:
    """Step ``addenda``: each addendum in the payload parses, is signed by its author, names the
    seal's case and is the one its "resealed" event names (sequence, SHA-256, actor); every such
    event has its addendum. Returns those that parsed (each with ``document``)."""
    named = {e.sequence: e for e in events if e.action == "resealed" and DETAIL in e.details}
    by_sequence = {e.sequence: e for e in events}
    parsed = []
    for addendum in found:
        where = addendum.name
        if addendum.signature is None:
            findings.error(CHECK, where, "addendum has no signature (addenda/NNNNNN.json.sig "
                           "must follow it)")
        try:
            document = Addendum.from_json(addendum.data, where)
        except BundleError as exc:
            findings.error(CHECK, where, exc.message)
            continue
        addendum.document = document
        parsed.append(addendum)
        if addendum.signature is not None:
            _check_signature(addendum.signature, addendum.data, document, where, findings)
        if document.sequence != addendum.sequence:
            findings.error(CHECK, where, "addendum names another sequence number than its "
                           "member name", addendum.sequence, document.sequence)
        if document.case_id != seal.case_id:
            findings.error(CHECK, where, "addendum names another case", seal.case_id,
                           document.case_id)
        _check_against_event(addendum, document, named.get(addendum.sequence),
                             by_sequence.get(addendum.sequence), findings)
        try:
            inc.check_note(document.details, document.text)
        except inc.IncidentError as exc:
            findings.error(CHECK, where, f"the addition it holds is not valid: {exc.message}")
    present = {a.sequence for a in found}
    for sequence, event in named.items():
        if sequence not in present:
            findings.error(CHECK, addendum_member(sequence), f"custody event #{sequence} "
                           "(resealed) names an addendum that is not in the payload (it was "
                           "removed or never written)", event.details[DETAIL], None)
    return parsed


def _check_signature(signature: bytes, data: bytes, document: Addendum, where: str,
                     findings: Findings) -> None:
    try:
        signer = sshsig.verify(signature, data)
    except BundleError as exc:
        findings.error(CHECK, where + ".sig", exc.message)
        return
    if not signer.is_named_by(document.author.public_key) or \
            signer.fingerprint != document.author.fingerprint:
        findings.error(CHECK, where + ".sig", "addendum is signed by a key other than its "
                       "author's", document.author.fingerprint, signer.fingerprint)


def _check_against_event(addendum: FoundAddendum, document: Addendum,
                         event: CustodyEvent | None, any_event: CustodyEvent | None,
                         findings: Findings) -> None:
    where = addendum.name
    if event is None:
        what = (f"custody event #{addendum.sequence} is a '{any_event.action}' event that names "
                "no addendum" if any_event is not None else
                f"the custody log has no event #{addendum.sequence}")
        findings.error(CHECK, where, f"no 'resealed' custody event added this addendum ({what})")
        return
    if event.details[DETAIL] != addendum.sha256:
        findings.error(CHECK, where, f"addendum differs from the one custody event "
                       f"#{event.sequence} names (it was changed or replaced)",
                       event.details[DETAIL], addendum.sha256)
    if (event.actor.fingerprint, event.actor.public_key) != (document.author.fingerprint,
                                                             document.author.public_key):
        findings.error(CHECK, where, f"addendum's author is not who resealed in custody event "
                       f"#{event.sequence}", event.actor.fingerprint, document.author.fingerprint)


# ----------------------------------------------------------------------------------- writing
def new_addendum(case_id: str, sequence: int, time: str, author_name: str, author: Signer,
                 content: inc.NoteContent) -> Addendum:
    return Addendum(case_id, sequence, time, author_name, author, dict(content.details),
                    content.text)


def tar_members(sequence: int, data: bytes, signature: bytes, mtime: int) -> bytes:
    """The plaintext tar members of one addendum: ``addenda/NNNNNN.json`` and its ``.sig``
    (ustar headers; the names are short ASCII, so no pax records are needed)."""
    out = bytearray()
    for name, content in ((addendum_member(sequence), data),
                          (addendum_member(sequence) + ".sig", signature)):
        member = tarfile.TarInfo(name)
        member.size, member.mode, member.mtime = len(content), MEMBER_MODE, mtime
        out += member.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
        out += content + bytes(-len(content) % tarfile.BLOCKSIZE)
    return bytes(out)


# ----------------------------------------------------------------------------------- extract
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class _Folders(Protocol):
    def parent(self, relative: str, create: bool = False) -> tuple[int, bytes] | None: ...


def write_files(tree: _Folders, addenda: Sequence[FoundAddendum]) -> None:
    """Write each verified addendum and its signature as ``addenda/NNNNNN.json(.sig)`` into the
    extracted folder, next to the bag's files (evidencekit.extract's staging tree)."""
    for addendum in addenda:
        for name, data in ((addendum.name, addendum.data),
                           (addendum.name + ".sig", addendum.signature or b"")):
            where = tree.parent(name, create=True)
            if where is None:
                raise BundleError(f"{name} lies under a file of the bag")
            try:
                fd = os.open(where[1], _CREATE, MEMBER_MODE, dir_fd=where[0])
            except FileExistsError:
                raise BundleError(f"{name} collides with a file of the bag") from None
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            with suppress(OSError):  # the folder was made private (0700) while extracting
                os.fchmod(where[0], 0o755)


# ------------------------------------------------------------------------------------ display
def summary(addendum: FoundAddendum) -> dict[str, Any]:
    """For --json: one addendum, as verified."""
    document = addendum.document
    assert document is not None
    return {"sequence": document.sequence, "time": document.time,
            "author": document.author_name, "fingerprint": document.author.fingerprint,
            "details": document.details, "text": document.text, "sha256": addendum.sha256}


def describe(addendum: FoundAddendum, shown: Callable[[str], str] = str,
             author: str | None = None) -> str:
    """One line for people: '#5 2026-11-17T… by Jane (SHA256:…): loss (amount: 35.50, …): text'.
    *author*: how to name the author (by default, the name the addendum claims)."""
    document = addendum.document
    assert document is not None
    details = ", ".join(f"{k}: {v}" for k, v in document.details.items() if k != "kind" and v)
    return shown(f"#{document.sequence} {document.time} by {author or document.author_name} "
                 f"({document.author.fingerprint}): {document.details.get('kind', 'note')}"
                 + (f" ({details})" if details else "") + (f": {document.text}"
                                                             if document.text else ""))
