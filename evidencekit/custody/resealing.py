"""Resealing (docs/FORMAT.md §6): a new bundle whose payload is the same plaintext
re-encrypted for new recipients in one streaming pass; the seal and the custody log are carried
over byte for byte and a signed "resealed" event links the old payload hash to the new one. A
reseal may also add an addendum: a signed note written into the new payload after the bag,
which the "resealed" event names (§4.6, evidencekit.addenda).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from evidencekit import addenda, fs, publictext
from evidencekit.clock import rfc3339
from evidencekit.crypto import age, sshsig
from evidencekit.custody.events import EventRequest, build_event, member_time, signer_of
from evidencekit.errors import BundleError, OutputError, UsageError
from evidencekit.format.compression import ZSTD, Writable
from evidencekit.format.documents import PAYLOAD, README, SEAL, CustodyEvent, Seal, custody_member
from evidencekit.format.layers import PayloadLayers
from evidencekit.format.outer import END_OF_ARCHIVE, OuterWriter, read_member
from evidencekit.format.reader import SMALL_MEMBER_LIMIT, OuterBundle, open_bundle
from evidencekit.incident import NoteContent
from evidencekit.payload import PayloadReaders
from evidencekit.progress import Progress
from evidencekit.protection import Keys, keys_for_bundle
from evidencekit.verify import Report, verify


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

    def __init__(self, sink: Writable) -> None:
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


# Who can open the new payload: recipients, or a function of the keys that opened the old one
# (note --private: a bundle opened with a passphrase is given a passphrase again).
NewRecipients = Sequence[age.Recipient] | Callable[[Sequence[age.Identity]], Sequence[age.Recipient]]


def reseal(bundle: Path, output: Path, identities: Keys, recipients: NewRecipients,
           request: EventRequest,
           random: age.RandomSource = os.urandom, progress: Progress | None = None,
           addendum: NoteContent | None = None) -> ResealResult:
    """Re-encrypt *bundle*'s payload for *recipients* into a new bundle at *output*.

    *identities*: the keys, or a protection.KeySource asked with the payload's header once the
    bundle is open (it is opened once); *recipients* may depend on the keys given then.

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


def _write_resealed(bundle: Path, out: BinaryIO, identities: Keys,
                    recipients: NewRecipients, request: EventRequest,
                    random: age.RandomSource, progress: Progress | None = None,
                    content: NoteContent | None = None) -> ResealResult:
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
                 identities: Keys, new_recipients: NewRecipients,
                 request: EventRequest, random: age.RandomSource, progress: Progress | None,
                 content: NoteContent | None) -> ResealResult:
    keys = keys_for_bundle(identities, source)  # before any work: a passphrase may be asked
    recipients = new_recipients if isinstance(new_recipients, Sequence) else new_recipients(keys)
    carried = {m.name: read_member(source.file, m, SMALL_MEMBER_LIMIT)
               for m in source.members if m.name != PAYLOAD}
    times = {m.name: m.mtime for m in source.members}
    order = [m.name for m in source.members]
    added: addenda.Addendum | None = None
    writer = OuterWriter(out)
    writer.add_bytes(README, carried[README], times[README])
    with writer.add_stream(PAYLOAD, times[PAYLOAD]) as sink:
        # A version 4 payload is compressed again as it was (the seal, carried over, says so).
        layers = PayloadLayers(cast(BinaryIO, sink), recipients, random,
                               compressed=_compressed(carried.get(SEAL, b"")))
        tee = _Tee(layers.top)
        report = verify(bundle, keys, progress=progress, opened=source,
                        readers=PayloadReaders(plaintext=tee))
        if not report.ok or not report.decrypted:
            layers.abort()
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
            layers.abort()
            raise
        layers.close()
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
    writer.add_bytes(member, data, member_time(event.time))
    writer.add_bytes(member + ".sig", sshsig.sign(request.signing_key, data), member_time(event.time))
    writer.finish()
    return ResealResult(Path(), report, event, added)


def _compressed(seal_json: bytes) -> bool:
    """Whether the seal says the payload is compressed (format version 4). A seal that does not
    parse is not: verify then fails, and nothing is resealed."""
    try:
        return Seal.from_json(seal_json).payload_compression == ZSTD
    except BundleError:
        return False


def _addendum_members(report: Report, request: EventRequest, content: NoteContent,
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
