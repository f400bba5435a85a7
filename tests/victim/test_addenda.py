"""Encrypted additions to the incident record: addenda (docs/FORMAT.md §4.6).

A reseal may add a signed note inside the encrypted payload, after the bag. These tests reseal
with an addendum and check that verify, the report and extract show it; that a second reseal keeps
it; that each kind of tampering is a finding named after its defect; that the standard tools
(age, tar, ssh-keygen, sha256sum) decrypt, unpack and check it as FORMAT.md §7.2 says; and
``evidencekit note --private`` end to end, including the command the public-note warning offers.

One bundle is captured in-process per module; tampered bundles are rebuilt with evidencekit's own
writers (the payload re-encrypted, the last "resealed" event re-signed by the resealer), so they
are structurally perfect and only the addenda checks can object.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import shlex
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from evidencekit import addenda
from evidencekit import incident as inc
from evidencekit.addenda import Addendum, addendum_member
from evidencekit.capture import CaptureRequest, CaseInfo, capture
from evidencekit.crypto import age, sshsig
from evidencekit.crypto.keys import SigningKey
from evidencekit.custody import events, resealing
from evidencekit.custody.events import EventRequest, signer_of
from evidencekit.custody.resealing import reseal
from evidencekit.errors import BundleError, UsageError
from evidencekit.extract import extract
from evidencekit.findings import Finding
from evidencekit.format import bag
from evidencekit.format.documents import CustodyEvent, custody_member
from evidencekit.format.outer import OuterWriter, read_member, read_members
from evidencekit.incident import NoteContent
from evidencekit.report import collect
from evidencekit.report.html import render_html
from evidencekit.verify import Report, verify
from tests.support.cli import run_cli
from tests.support.schemas import assert_valid
from tests.support.terminal import evidencekit_on_a_pty
from tests.support.tools import require_tool
from tests.support.victim import INCIDENT_YAML, PASSPHRASE

CASE = "FRAUD-2026-0117"
LOSS = NoteContent(inc.note_details("loss", amount="35,50", currency="gbp",
                                    institution="PayPal", reference="PP-1"),
                   "a second payment, to the same seller")
TIMELINE = NoteContent(inc.note_details("timeline", time="2026-11-17 09:00 +01:00"),
                       "The bank called: the recall was refused")
FIRST, SECOND = addendum_member(2), addendum_member(3)


@dataclass(frozen=True)
class Case:
    folder: Path
    sealed: Path  # captured: event 1
    resealed: Path  # event 2: resealed by the officer with the LOSS addendum
    sealer: SigningKey
    officer: SigningKey
    stranger: SigningKey
    identity: age.X25519Identity

    def keys(self) -> list[age.Identity]:
        return [self.identity]

    def reseal(self, source: Path, name: str, content: NoteContent | None = None,
               key: SigningKey | None = None, actor: str = "Det. A. Smith") -> resealing.ResealResult:
        return reseal(source, self.folder / name, self.keys(), [self.identity.recipient()],
                      EventRequest("resealed", actor, key or self.officer), addendum=content)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    folder = tmp_path_factory.mktemp("addenda")
    tree = folder / "evidence"
    tree.mkdir()
    (tree / "chat.png").write_bytes(b"\x89PNG fake screenshot")
    (tree / "statement.csv").write_text("2026-11-15,-450.00,EUR\n")
    sealer, officer, stranger = (SigningKey.generate(n) for n in ("victim", "officer", "x"))
    identity = age.X25519Identity.generate()
    sealed = folder / "case.evidence"
    capture(CaptureRequest([os.fsencode(tree)], sealed, CaseInfo(CASE, "Jane Victim"),
                           [identity.recipient()], sealer, command_line=["evidencekit", "capture"],
                           incident=inc.load_yaml(INCIDENT_YAML).to_json()))
    made = Case(folder, sealed, folder / "resealed.evidence", sealer, officer, stranger, identity)
    made.reseal(sealed, "resealed.evidence", LOSS)
    for path in (sealed, made.resealed):
        os.chmod(path, 0o444)
    return made


# ------------------------------------------------------------------------------------ helpers
def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def outer_members(bundle: Path) -> dict[str, bytes]:
    with open(bundle, "rb") as f:
        return {m.name: read_member(f, m, 1 << 30) for m in read_members(f)}


def plaintext_of(bundle: Path, identity: age.Identity) -> bytes:
    return age.AgeReader(io.BytesIO(outer_members(bundle)["payload.age"]), [identity]).read()


def tar_names(plaintext: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(plaintext)) as tar:
        return [m.name for m in tar.getmembers()]


Members = list[tuple[tarfile.TarInfo, bytes | None]]


def members_of(plaintext: bytes) -> Members:
    with tarfile.open(fileobj=io.BytesIO(plaintext)) as tar:
        found: Members = []
        for member in tar.getmembers():
            data = tar.extractfile(member)
            found.append((member, data.read() if data is not None else None))
        return found


def tar_of(members: Members) -> bytes:
    """A pax tar as tarfile writes it (padded to a full 10 KiB record: not evidencekit's layout,
    which verify accepts all the same)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in members:
            if "mtime" in member.pax_headers:
                # tarfile read the pax mtime as a float and would round it into the ustar
                # field; evidencekit writes its whole seconds (the header must be canonical)
                member.mtime = int(member.pax_headers["mtime"].split(".")[0])
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def replaced(members: Members, name: str, data: bytes) -> Members:
    result: Members = []
    for member, content in members:
        if member.name == name:
            member.size = len(data)
            content = data
        result.append((member, content))
    return result


def rebuild(case: Case, bundle: Path, out: Path, plaintext: bytes,
            details: dict[str, str | None] | None = None) -> Path:
    """*bundle*, whose last event is "resealed" by the officer, with *plaintext* re-encrypted as
    its payload and that event re-signed by the officer naming it (and *details* merged into its
    details; None removes one): a bundle only the payload checks can fault."""
    with open(bundle, "rb") as f:
        members = read_members(f)
        data = {m.name: read_member(f, m, 1 << 30) for m in members}
    buffer = io.BytesIO()
    writer = age.AgeWriter(buffer, [case.identity.recipient()])
    writer.write(plaintext)
    writer.close()
    payload = buffer.getvalue()
    last = [m.name for m in members if m.name.startswith("custody/") and
            m.name.endswith(".json")][-1]
    event = CustodyEvent.from_json(data[last], last)
    assert event.action == "resealed" and event.actor.fingerprint == case.officer.public.fingerprint
    merged = {**event.details, "new_payload_sha256": sha(payload),
              "new_payload_size": str(len(payload)), **(details or {})}
    event = dataclasses.replace(event, payload_sha256=sha(payload),
                                details={k: v for k, v in merged.items() if v is not None})
    data[last] = event.to_json()
    data[last + ".sig"] = sshsig.sign(case.officer, data[last])
    data["payload.age"] = payload
    with open(out, "wb") as f:
        outer = OuterWriter(f)
        for member in members:
            outer.add_bytes(member.name, data[member.name], member.mtime)
        outer.finish()
    return out


def signed_addendum(case: Case, key: SigningKey, **changes: object) -> tuple[bytes, bytes]:
    """The addendum of ``case.resealed`` with *changes*, and its signature by *key*."""
    original = Addendum.from_json(stored(case, FIRST), FIRST)
    document = dataclasses.replace(original, **changes)  # type: ignore[arg-type]
    data = document.to_json()
    return data, sshsig.sign(key, data)


def stored(case: Case, name: str) -> bytes:
    """The member *name* of ``case.resealed``'s plaintext."""
    return next(content for member, content in members_of(plaintext_of(case.resealed,
                                                                       case.identity))
                if member.name == name and content is not None)


def errors(report: Report) -> list[Finding]:
    return report.findings.errors


def assert_only(report: Report, check: str, where: str, words: str) -> None:
    found = [(f.check, f.where, f.problem) for f in errors(report)]
    assert len(found) == 1, found
    assert found[0][:2] == (check, where) and words in found[0][2], found


# ----------------------------------------------------------------------- a reseal that adds one
def test_reseal_with_an_addendum_verifies_and_its_event_names_it(case: Case) -> None:
    report = verify(case.resealed, case.keys())
    assert report.ok and report.decrypted, errors(report)
    assert [a.name for a in report.addenda] == [FIRST]
    found = report.addenda[0]
    document = found.document
    assert document is not None
    assert (document.sequence, document.case_id, document.author_name) == (2, CASE, "Det. A. Smith")
    assert document.author == signer_of(case.officer)
    assert document.details == {"kind": "loss", "amount": "35.50", "currency": "GBP", "date": "",
                                "institution": "PayPal", "reference": "PP-1"}
    assert document.text == LOSS.text and document.format_version == 2
    event = report.events[-1]
    assert event.action == "resealed" and event.format_version == 2
    assert event.details[addenda.DETAIL] == found.sha256 == sha(found.data)
    assert document.time == event.time  # written in the same moment
    assert sshsig.verify(found.signature or b"", found.data) == case.officer.public
    # The bag is untouched: the sealer's manifest still verifies, the root hash is the sealed one.
    assert report.manifest is not None and report.seal is not None
    assert report.files_checked == 2


def test_the_addendum_comes_after_the_bag_then_exactly_two_zero_blocks(case: Case) -> None:
    plaintext = plaintext_of(case.resealed, case.identity)
    names = tar_names(plaintext)
    assert names[-2:] == [FIRST, FIRST + ".sig"]
    assert all(n.startswith("bag/") for n in names[:-2])
    assert plaintext.endswith(bytes(1024)) and plaintext[-1025 - 511:-1024] != bytes(512)
    original = plaintext_of(case.sealed, case.identity)
    assert plaintext.startswith(original[:-1024])  # the old plaintext, then the addendum


def test_without_a_key_the_addendum_is_only_a_hash_in_the_public_log(case: Case) -> None:
    report = verify(case.resealed)
    assert report.ok and not report.addenda
    public = b"".join(data for name, data in outer_members(case.resealed).items()
                      if name != "payload.age")
    assert b"PayPal" not in public and b"second payment" not in public
    assert addenda.DETAIL.encode() in public


def test_report_shows_the_addendum_as_an_encrypted_addition(case: Case) -> None:
    # Without trusted keys only the sealer's word counts: the officer's loss is shown, by key,
    # and left out of the totals (issue 19.4).
    unknown = collect(verify(case.resealed, case.keys()), case.resealed.name,
                      "2030-01-01T00:00:00.000000000Z")
    row, = [r for r in unknown.losses if r.loss.institution == "PayPal"]
    assert not row.counted and "GBP" not in unknown.totals and unknown.not_counted == 1
    assert row.source.startswith("UNTRUSTED SIGNER — encrypted addition #2 signed")
    assert case.officer.public.fingerprint in row.source
    report = verify(case.resealed, case.keys(), [case.sealer.public, case.officer.public])
    data = collect(report, case.resealed.name, "2030-01-01T00:00:00.000000000Z")
    rows = [r for r in data.losses if r.loss.institution == "PayPal"]
    assert len(rows) == 1 and rows[0].loss.amount == "35.50"
    assert rows[0].source.startswith("encrypted addition #2 by Det. A. Smith (SHA256:")
    assert data.totals["GBP"] == "35.50"
    page = render_html(data)
    assert "encrypted addition #2 by Det. A. Smith" in page
    assert "a second payment, to the same seller" in page


def test_extract_writes_the_addendum_next_to_the_bag(case: Case, tmp_path: Path) -> None:
    result = extract(case.resealed, tmp_path / "out", case.keys())
    assert result.output is not None, errors(result.report)
    found = result.report.addenda[0]
    assert (tmp_path / "out" / FIRST).read_bytes() == found.data
    assert (tmp_path / "out" / (FIRST + ".sig")).read_bytes() == found.signature
    assert stat.S_IMODE(os.stat(tmp_path / "out" / "addenda").st_mode) == 0o755
    assert (tmp_path / "out" / bag.EK_MANIFEST).is_file()  # the bag's files are all there
    assert sorted(os.listdir(tmp_path / "out" / "addenda")) == ["000002.json", "000002.json.sig"]


def test_a_second_reseal_keeps_the_first_addendum_and_adds_another(case: Case) -> None:
    second = case.reseal(case.resealed, "twice.evidence", TIMELINE, key=case.sealer,
                         actor="Jane Victim")
    assert second.addendum is not None and second.addendum.sequence == 3
    report = verify(second.output, case.keys())
    assert report.ok, errors(report)
    assert [a.name for a in report.addenda] == [FIRST, SECOND]
    first_before = verify(case.resealed, case.keys()).addenda[0]
    assert report.addenda[0].data == first_before.data  # copied, byte for byte
    assert report.addenda[1].document is not None
    assert report.addenda[1].document.author_name == "Jane Victim"
    assert tar_names(plaintext_of(second.output, case.identity))[-4:] == [
        FIRST, FIRST + ".sig", SECOND, SECOND + ".sig"]
    data = collect(report, "twice.evidence", "2030-01-01T00:00:00.000000000Z")
    timeline = [r for r in data.timeline if r.what == TIMELINE.text]
    assert timeline and timeline[0].source.startswith("encrypted addition #3 by Jane Victim")


def test_a_reseal_without_an_addendum_keeps_the_plaintext_byte_for_byte(case: Case) -> None:
    plain = case.reseal(case.resealed, "plain.evidence")
    assert plain.addendum is None and addenda.DETAIL not in plain.event.details
    assert plaintext_of(plain.output, case.identity) == plaintext_of(case.resealed,
                                                                    case.identity)
    report = verify(plain.output, case.keys())
    assert report.ok and [a.name for a in report.addenda] == [FIRST]


def test_a_payload_padded_to_a_full_tar_record_gets_the_addendum_before_its_end(
        case: Case, tmp_path: Path) -> None:
    """tarfile pads to 10 KiB: the reseal finds where the tar really ends, not 1024 bytes back."""
    resealed = case.reseal(case.sealed, "again.evidence")
    padded = tar_of(members_of(plaintext_of(resealed.output, case.identity)))
    assert len(padded) % 10240 == 0 and not padded.endswith(b"\0" * 1024 + b"x")
    bundle = rebuild(case, resealed.output, tmp_path / "padded.evidence", padded)
    assert verify(bundle, case.keys()).ok
    result = case.reseal(bundle, "padded-with-note.evidence", TIMELINE)
    report = verify(result.output, case.keys())
    assert report.ok, errors(report)
    assert [a.sequence for a in report.addenda] == [3]


def test_a_format_version_4_bundle_is_resealed_compressed_with_its_addendum(
        tmp_path: Path) -> None:
    """The seal, carried over, says zstd: the new payload is compressed the same way, and holds
    the addendum after the bag; the real tools open it (age -d | zstd -d | tar)."""
    asset = Path(__file__).resolve().parents[1] / "assets" / "format-v4.evidence"
    keys = [age.ScryptIdentity(b"evidencekit format v4 test vector")]
    identity = age.X25519Identity.generate()
    result = reseal(asset, tmp_path / "v4-note.evidence", keys, [identity.recipient()],
                    EventRequest("resealed", "Officer", SigningKey.generate("officer")),
                    addendum=LOSS)
    report = verify(result.output, [identity])
    assert report.ok, errors(report)
    assert report.seal is not None and report.seal.format_version == 4
    assert len(report.addenda) == 1 and report.files_checked == 4
    with tarfile.open(result.output) as bundle:
        payload = bundle.extractfile("payload.age").read()  # type: ignore[union-attr]
    compressed = age.decrypt(payload, [identity])
    assert compressed.startswith(b"\x28\xb5\x2f\xfd")  # zstd's magic number
    require_tool("zstd")
    tar = subprocess.run(["zstd", "-d", "-c"], input=compressed, capture_output=True,
                         check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as inner:
        names = inner.getnames()
    assert "bag/data/stick.img" in names and names[-2:] == ["addenda/000003.json",
                                                            "addenda/000003.json.sig"]


def test_a_format_version_1_bundle_takes_an_addendum(tmp_path: Path) -> None:
    """The bag stays version 1 (its manifest is the sealer's); the addendum and its event are 2."""
    asset = Path(__file__).resolve().parents[1] / "assets" / "format-v1.evidence"
    keys = [age.ScryptIdentity(b"evidencekit format v1 test vector")]
    key = SigningKey.generate("officer")
    result = reseal(asset, tmp_path / "v1-note.evidence", keys,
                    [age.ScryptRecipient(b"new", work_factor=10)],
                    EventRequest("resealed", "Officer", key), addendum=LOSS)
    report = verify(result.output, [age.ScryptIdentity(b"new")])
    assert report.ok, errors(report)
    assert report.seal is not None and report.seal.format_version == 1
    assert report.manifest is not None and report.manifest.get("format_version") == 1
    assert report.events[-1].format_version == 2 and len(report.addenda) == 1


def test_reseal_refuses_a_note_when_the_bundle_does_not_verify(case: Case, tmp_path: Path) -> None:
    broken = tmp_path / "broken.evidence"
    data = bytearray(case.resealed.read_bytes())
    data[3000] ^= 1  # inside payload.age
    broken.write_bytes(bytes(data))
    with pytest.raises(BundleError):
        reseal(broken, tmp_path / "out.evidence", case.keys(), [case.identity.recipient()],
               EventRequest("resealed", "X", case.officer), addendum=LOSS)
    assert not (tmp_path / "out.evidence").exists()


# ------------------------------------------------------------------------- the tee, as a unit
class _Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


@pytest.mark.parametrize("pieces", [
    [b"abc", b"\0\0", b"d\0", b"\0" * 1024],
    [b"\0" * 70000, b"x", b"\0" * 200000],
    [b"", b"\0", b"", b"y"],
    [b"only text"],
])
def test_the_tee_passes_everything_through_when_nothing_is_added(pieces: list[bytes]) -> None:
    sink = _Sink()
    tee = resealing._Tee(sink)  # type: ignore[arg-type]
    for piece in pieces:
        tee.write(piece)
    tee.finish()
    assert bytes(sink.data) == b"".join(pieces)


def test_the_tee_writes_the_addendum_where_the_tar_ends() -> None:
    sink = _Sink()
    tee = resealing._Tee(sink)  # type: ignore[arg-type]
    body = b"header" + bytes(506) + b"data\0\0"  # member data may end in zeros
    for piece in (body[:300], body[300:], bytes(3000)):
        tee.write(piece)
    tee.tar_ended(len(body) + 2)  # as verify tells it (PayloadReaders.plaintext)
    tee.finish(b"ADDED")
    assert bytes(sink.data) == body + b"\0\0" + b"ADDED" + bytes(1024)
    with pytest.raises(BundleError):  # verify never said where the tar ends
        resealing._Tee(_Sink()).finish(b"ADDED")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- tampering
Tamper = Callable[[Case, Path], Path]


def _removed(case: Case, tmp_path: Path) -> Path:
    """A later reseal that leaves the addendum out (the event that added it still names it)."""
    later = case.reseal(case.resealed, f"later-{tmp_path.name}.evidence")
    kept = [(m, d) for m, d in members_of(plaintext_of(later.output, case.identity))
            if not m.name.startswith("addenda/")]
    return rebuild(case, later.output, tmp_path / "t.evidence", tar_of(kept))


def _hash_differs(case: Case, tmp_path: Path) -> Path:
    data, signature = signed_addendum(case, case.officer, text="a different story")
    members = members_of(plaintext_of(case.resealed, case.identity))
    members = replaced(replaced(members, FIRST, data), FIRST + ".sig", signature)
    return rebuild(case, case.resealed, tmp_path / "t.evidence", tar_of(members))


def _other_key(case: Case, tmp_path: Path) -> Path:
    members = members_of(plaintext_of(case.resealed, case.identity))
    signature = sshsig.sign(case.stranger, stored(case, FIRST))
    return rebuild(case, case.resealed, tmp_path / "t.evidence",
                   tar_of(replaced(members, FIRST + ".sig", signature)))


def _wrong_sequence(case: Case, tmp_path: Path) -> Path:
    """Signed by its author and named by its event, but saying it belongs to event #1."""
    data, signature = signed_addendum(case, case.officer, sequence=1)
    members = members_of(plaintext_of(case.resealed, case.identity))
    members = replaced(replaced(members, FIRST, data), FIRST + ".sig", signature)
    return rebuild(case, case.resealed, tmp_path / "t.evidence", tar_of(members),
                   {addenda.DETAIL: sha(data)})


def _before_a_bag_member(case: Case, tmp_path: Path) -> Path:
    members = members_of(plaintext_of(case.resealed, case.identity))
    moved = [m for m in members if m[0].name.startswith("addenda/")]
    rest = [m for m in members if not m[0].name.startswith("addenda/")]
    return rebuild(case, case.resealed, tmp_path / "t.evidence", tar_of(rest[:-1] + moved
                                                                         + rest[-1:]))


def _named_but_absent(case: Case, tmp_path: Path) -> Path:
    """A reseal without an addendum whose event claims one."""
    plain = case.reseal(case.sealed, f"plain-{tmp_path.name}.evidence")
    return rebuild(case, plain.output, tmp_path / "t.evidence",
                   plaintext_of(plain.output, case.identity), {addenda.DETAIL: "ab" * 32})


def _another_case(case: Case, tmp_path: Path) -> Path:
    data, signature = signed_addendum(case, case.officer, case_id="OTHER-CASE")
    members = members_of(plaintext_of(case.resealed, case.identity))
    members = replaced(replaced(members, FIRST, data), FIRST + ".sig", signature)
    return rebuild(case, case.resealed, tmp_path / "t.evidence", tar_of(members),
                   {addenda.DETAIL: sha(data)})


def _not_the_resealer(case: Case, tmp_path: Path) -> Path:
    data, signature = signed_addendum(case, case.stranger, author=signer_of(case.stranger))
    members = members_of(plaintext_of(case.resealed, case.identity))
    members = replaced(replaced(members, FIRST, data), FIRST + ".sig", signature)
    return rebuild(case, case.resealed, tmp_path / "t.evidence", tar_of(members),
                   {addenda.DETAIL: sha(data)})


def _without_signature(case: Case, tmp_path: Path) -> Path:
    kept = [m for m in members_of(plaintext_of(case.resealed, case.identity))
            if m[0].name != FIRST + ".sig"]
    return rebuild(case, case.resealed, tmp_path / "t.evidence", tar_of(kept))


def _unknown_member(case: Case, tmp_path: Path) -> Path:
    members = members_of(plaintext_of(case.resealed, case.identity))
    extra = tarfile.TarInfo("addenda/notes.txt")
    extra.size = 5
    return rebuild(case, case.resealed, tmp_path / "t.evidence",
                   tar_of([*members, (extra, b"hello")]))


def _too_large(case: Case, tmp_path: Path) -> Path:
    members = members_of(plaintext_of(case.resealed, case.identity))
    return rebuild(case, case.resealed, tmp_path / "t.evidence",
                   tar_of(replaced(members, FIRST, b" " * (addenda.ADDENDUM_LIMIT + 1))))


def _invalid_note(case: Case, tmp_path: Path) -> Path:
    details = {**LOSS.details, "currency": "EURO"}
    data, signature = signed_addendum(case, case.officer, details=details)
    members = members_of(plaintext_of(case.resealed, case.identity))
    members = replaced(replaced(members, FIRST, data), FIRST + ".sig", signature)
    return rebuild(case, case.resealed, tmp_path / "t.evidence", tar_of(members),
                   {addenda.DETAIL: sha(data)})


@pytest.mark.parametrize(("tamper", "where", "words"), [
    (_removed, FIRST, "names an addendum that is not in the payload"),
    (_hash_differs, FIRST, "differs from the one custody event #2 names"),
    (_other_key, FIRST + ".sig", "signed by a key other than its author's"),
    (_wrong_sequence, FIRST, "names another sequence number than its member name"),
    (_before_a_bag_member, "bag/" + bag.TAGMANIFEST, "payload member after the addenda"),
    (_named_but_absent, FIRST, "names an addendum that is not in the payload"),
    (_another_case, FIRST, "addendum names another case"),
    (_not_the_resealer, FIRST, "author is not who resealed in custody event #2"),
    (_without_signature, FIRST, "addendum has no signature"),
    (_unknown_member, "addenda/notes.txt", "unexpected member in addenda/"),
    (_too_large, FIRST, "more than the 1048576 allowed"),  # (so its .sig follows nothing)
    (_invalid_note, FIRST, "is not an ISO 4217 currency code"),
], ids=lambda value: getattr(value, "__name__", None))
def test_tampered_addenda_are_findings_named_after_the_defect(case: Case, tmp_path: Path,
                                                              tamper: Tamper, where: str,
                                                              words: str) -> None:
    bundle = tamper(case, tmp_path)
    public = verify(bundle)  # the payload hash is the one the re-signed event names
    assert not errors(public), errors(public)
    keyed = verify(bundle, case.keys())
    if tamper is _too_large:  # refused unread: its signature and the event's claim then fail too
        assert {f.check for f in errors(keyed)} == {addenda.CHECK}
        assert (addenda.CHECK, where) == (errors(keyed)[0].check, errors(keyed)[0].where)
        assert words in errors(keyed)[0].problem
    else:
        assert_only(keyed, addenda.CHECK, where, words)


def test_the_number_of_addenda_is_bounded(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    twice = case.reseal(case.resealed, "bounded.evidence", TIMELINE).output
    monkeypatch.setattr(addenda, "MAX_ADDENDA", 1)
    report = verify(twice, case.keys())
    assert [a.name for a in report.addenda] == [FIRST]
    problems = {(f.where, f.problem.split(" (")[0]) for f in errors(report)}
    assert (SECOND, "the payload holds more than the 1 addenda allowed") in problems
    monkeypatch.setattr(addenda, "MAX_ADDENDA", 2)  # the writer refuses to go past it
    with pytest.raises(UsageError, match="already holds 2 addenda"):
        case.reseal(twice, "one-too-many.evidence", LOSS)
    assert not (case.folder / "one-too-many.evidence").exists()


def test_a_tampered_addendum_is_neither_resealed_nor_extracted(case: Case, tmp_path: Path) -> None:
    bundle = _hash_differs(case, tmp_path)
    with pytest.raises(BundleError, match="addenda"):
        case.reseal(bundle, f"refused-{tmp_path.name}.evidence", TIMELINE)
    result = extract(bundle, tmp_path / "out", case.keys())
    assert result.output is None and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("details", "words"), [
    ({addenda.DETAIL: "not a hash"}, "addendum_sha256 is not a SHA-256"),
])
def test_without_a_key_the_resealed_detail_must_be_well_formed(case: Case, tmp_path: Path,
                                                               details: dict[str, str | None],
                                                               words: str) -> None:
    plain = case.reseal(case.sealed, f"plain-{tmp_path.name}.evidence")
    bundle = rebuild(case, plain.output, tmp_path / "t.evidence",
                     plaintext_of(plain.output, case.identity), details)
    assert_only(verify(bundle), "custody", custody_member(2), words)


def test_only_a_resealed_event_can_name_an_addendum(case: Case, tmp_path: Path) -> None:
    bundle = tmp_path / "noted.evidence"
    shutil.copy(case.sealed, bundle)
    os.chmod(bundle, 0o644)
    events.append_event(bundle, EventRequest("note", "Jane", case.sealer, "hello",
                                              details={addenda.DETAIL: "ab" * 32}))
    assert_only(verify(bundle), "custody", custody_member(2), "only a 'resealed' event")


# --------------------------------------------------------------------- the standard tools
def _identity_file(case: Case, folder: Path) -> Path:
    path = folder / "key.txt"
    path.write_text(f"{case.identity}\n")
    return path


def _run(argv: list[object], *, stdin: bytes = b"", cwd: Path | None = None) -> bytes:
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    result = subprocess.run([str(a) for a in argv], input=stdin, capture_output=True, cwd=cwd,
                            env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout + result.stderr


@pytest.mark.interop
def test_age_tar_and_ssh_keygen_open_and_check_the_addenda(case: Case, tmp_path: Path) -> None:
    age_tool, tar, ssh_keygen, sha256sum = (require_tool(t) for t in
                                            ("age", "tar", "ssh-keygen", "sha256sum"))
    twice = case.reseal(case.resealed, f"tools-{tmp_path.name}.evidence", TIMELINE,
                        key=case.sealer, actor="Jane Victim").output
    outer = tmp_path / "outer"
    outer.mkdir()
    _run([tar, "-xf", twice, "-C", outer])
    plaintext = _run([age_tool, "-d", "-i", _identity_file(case, tmp_path),
                      outer / "payload.age"])
    _run([tar, "-xf", "-"], stdin=plaintext, cwd=outer)
    assert sorted(os.listdir(outer / "addenda")) == ["000002.json", "000002.json.sig",
                                                     "000003.json", "000003.json.sig"]
    for sequence, author in ((2, case.officer), (3, case.sealer)):
        name = addendum_member(sequence)
        with open(outer / name, "rb") as document:
            checked = subprocess.run([ssh_keygen, "-Y", "check-novalidate", "-n", "evidencekit",
                                      "-s", outer / (name + ".sig")], stdin=document,
                                     capture_output=True, timeout=60, check=False)
        said = (checked.stdout + checked.stderr).decode()
        assert checked.returncode == 0 and 'Good "evidencekit" signature' in said, said
        assert author.public.fingerprint in said
        digest = _run([sha256sum, name], cwd=outer).decode().split()[0]
        event = CustodyEvent.from_json((outer / custody_member(sequence)).read_bytes(), "event")
        assert event.details[addenda.DETAIL] == digest
    _run([sha256sum, "-c", "manifest-sha256.txt"], cwd=outer / "bag")  # the bag, untouched


@pytest.mark.interop
@pytest.mark.parametrize("forgery", [None, "hash differs", "other key", "removed"])
def test_the_documented_procedure_checks_an_addendum(case: Case, tmp_path: Path,
                                                     forgery: str | None) -> None:
    """FORMAT.md §7.2 as printed (tests/interop/test_by_hand.py runs it): a resealed bundle
    with an addendum and an incident record passes; each forged addendum fails, named."""
    from tests.support.by_hand import by_hand, failed, passed, toolbox_in

    toolbox = toolbox_in(tmp_path / "toolbox")
    bundle = tmp_path / "case.evidence"
    if forgery is None:
        shutil.copyfile(case.resealed, bundle)
        output = passed(by_hand(toolbox, bundle, "-i", _identity_file(case, tmp_path)))
        # seal, two custody events, the manifest, the addendum
        assert output.count('Good "evidencekit" signature') == 5, output
        assert "addenda/000002.json is the addendum that custody event 000002 names" in output
        assert "incident.json is the one manifest.json names" in output
        return
    build = {"hash differs": _hash_differs, "other key": _other_key, "removed": _removed}
    shutil.copyfile(build[forgery](case, tmp_path), bundle)
    phrase = {"hash differs": "addenda/000002.json is not named by a 'resealed' custody event",
              "other key": "addendum 000002, by its author (addenda/000002.json) is not signed "
                           "by the key it names",
              "removed": "custody event 000002 names an addendum that the payload does not hold"}
    failed(by_hand(toolbox, bundle, "-i", _identity_file(case, tmp_path)), phrase[forgery])


# ------------------------------------------------------------------ evidencekit note --private
def addenda_mark() -> str:
    from evidencekit.cli.render import ADDENDUM_MARK

    return ADDENDUM_MARK


@pytest.fixture
def cli_bundle(tmp_path: Path, home: Path, keys: dict[str, Path]) -> Path:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "chat.png").write_bytes(b"\x89PNG")
    incident = tmp_path / "incident.yaml"
    incident.write_text(INCIDENT_YAML)
    out = tmp_path / "case.evidence"
    result = run_cli("capture", evidence, "--incident", incident, "-R", keys["recipient"],
                     "--sign-key", keys["signer"], "-o", out)
    assert result.code == 0, result.stderr
    return out


def test_note_private_through_the_cli(cli_bundle: Path, keys: dict[str, Path],
                                      tmp_path: Path) -> None:
    before = cli_bundle.read_bytes()
    new = tmp_path / "case-private.evidence"
    args = ("--kind", "timeline", "--time", "2026-11-17 09:00 +01:00", "--text",
            "The bank called back: account 12345678")
    result = run_cli("note", cli_bundle, "--private", "-i", keys["identity"], "-R",
                     keys["recipient"], "-o", new, *args, "--actor", "Jane",
                     "--sign-key", keys["signer"], "--json")
    assert result.code == 0, result.stderr
    document = result.json()
    assert_valid(document, "note")
    assert document["private"] is True and document["output"] == str(new)
    added = document["addendum"]
    assert added["sequence"] == 2 and added["author"] == "Jane"
    assert added["details"] == {"kind": "timeline", "time": "2026-11-17T09:00:00+01:00",
                                "time_utc": "2026-11-17T08:00:00.000000000Z"}
    assert document["event"]["action"] == "resealed"
    assert document["event"]["details"][addenda.DETAIL] == added["sha256"]
    assert document["event"]["note"] == addenda.RESEAL_NOTE
    assert cli_bundle.read_bytes() == before  # the original stays as it was
    assert b"12345678" not in new.read_bytes()  # not in the clear anywhere

    checked = run_cli("verify", new, "-i", keys["identity"], "--json")
    assert checked.code == 0, checked.stderr
    assert_valid(checked.json(), "verify")
    assert [a["sha256"] for a in checked.json()["addenda"]] == [added["sha256"]]
    shown = run_cli("verify", new, "-i", keys["identity"])
    assert "Encrypted additions to the incident record (1" in shown.stdout
    assert "account 12345678" in shown.stdout
    assert addenda_mark() in run_cli("inspect", new, env={"COLUMNS": "300"}).stdout
    report = run_cli("report", new, "-i", keys["identity"], "-o", tmp_path / "r.html")
    assert report.code == 0, report.stderr
    page = (tmp_path / "r.html").read_text()
    assert "encrypted addition #2 by Jane" in page and "account 12345678" in page
    opened = run_cli("extract", new, "-i", keys["identity"], "-o", tmp_path / "out", "--json")
    assert opened.code == 0, opened.stderr
    assert_valid(opened.json(), "extract")
    assert sha((tmp_path / "out" / FIRST).read_bytes()) == added["sha256"]


@pytest.mark.parametrize(("extra", "code", "words"), [
    (("-o", "{new}", "-i", "{other}", "-R", "{recipient}"), 4, "none of the keys"),
    (("-o", "{old}", "-i", "{identity}", "-R", "{recipient}"), 2, "already exists"),
    (("-o", "{new}", "-i", "{identity}"), 2, "no way to encrypt"),
    (("-i", "{identity}", "-R", "{recipient}"), 2, "give its name with -o"),
])
def test_note_private_errors_are_exit_codes_as_for_reseal(cli_bundle: Path, keys: dict[str, Path],
                                                          tmp_path: Path, extra: tuple[str, ...],
                                                          code: int, words: str) -> None:
    other = tmp_path / "other.txt"
    other.write_text(f"{age.X25519Identity.generate()}\n")
    values = {"new": tmp_path / "new.evidence", "old": cli_bundle, "other": other,
              "identity": keys["identity"], "recipient": keys["recipient"]}
    args = [a.format(**{k: str(v) for k, v in values.items()}) for a in extra]
    before = cli_bundle.read_bytes()
    result = run_cli("note", cli_bundle, "--private", *args, "--text", "x", "--sign-key",
                     keys["signer"], "--json")
    assert result.code == code, result.stderr
    assert_valid(result.json(), "note")
    assert words in " ".join(result.stderr.split()), result.stderr
    assert cli_bundle.read_bytes() == before and not (tmp_path / "new.evidence").exists()


def test_private_options_without_private_are_refused(cli_bundle: Path, keys: dict[str, Path],
                                                    tmp_path: Path) -> None:
    result = run_cli("note", cli_bundle, "-o", tmp_path / "x.evidence", "--text", "x", "--yes",
                     "--sign-key", keys["signer"])
    assert result.code == 2 and "only with --private" in result.stderr


def test_the_public_note_warning_offers_the_private_command_and_it_works(
        tmp_path: Path, home: Path, keys: dict[str, Path]) -> None:
    pexpect = pytest.importorskip("pexpect")
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "chat.png").write_bytes(b"\x89PNG")
    (tmp_path / "pass.txt").write_text(PASSPHRASE + "\n")
    bundle = tmp_path / "case.evidence"
    assert run_cli("capture", evidence, "--passphrase-file", tmp_path / "pass.txt",
                   "--sign-key", keys["signer"], "-o", bundle).code == 0
    before = bundle.read_bytes()

    def spawn(args: list[str]) -> Any:
        return evidencekit_on_a_pty(args, cwd=tmp_path, columns=250)

    child = spawn(["note", str(bundle), "--kind", "loss", "--amount", "12.50", "--currency",
                   "EUR", "--text", "Account 12345678 was used", "--sign-key",
                   str(keys["signer"])])
    child.expect_exact("To keep it private instead")
    child.expect(r"evidencekit note [^\r\n]*")
    offered = child.after.strip()
    child.expect_exact("Write this public note? [y/N]:")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and bundle.read_bytes() == before
    words = shlex.split(offered)
    assert words[:5] == ["evidencekit", "note", str(bundle), "--private", "-p"], offered
    new = Path(words[words.index("-o") + 1])
    assert new == tmp_path / "case-private.evidence"
    assert re.search(r"--amount 12\.50 --currency EUR .*--text 'Account 12345678 was used'",
                     offered), offered

    child = spawn([*words[1:], "--sign-key", str(keys["signer"])])
    for prompt, reply in (("Passphrase for the bundle:", PASSPHRASE),
                          ("Passphrase for the new bundle", "a new passphrase"),
                          ("Repeat for confirmation:", "a new passphrase")):
        child.expect_exact(prompt)
        child.sendline(reply)
    child.expect(pexpect.EOF)
    transcript = child.before
    child.close()
    assert child.exitstatus == 0, transcript
    assert bundle.read_bytes() == before
    report = verify(new, [age.ScryptIdentity(b"a new passphrase")])
    assert report.ok, errors(report)
    document = report.addenda[0].document
    assert document is not None and document.text == "Account 12345678 was used"
    assert document.details["amount"] == "12.50"
