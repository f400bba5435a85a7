"""Unit tests of evidencekit.custody: building and appending events, receipts (docs/FORMAT.md §6).

One bundle is captured in-process per module; each test works on its own copy. The attacks through
the CLI are in tests/e2e/test_custody_attacks.py.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from evidencekit import fs
from evidencekit.capture import CaptureRequest, CaseInfo, capture
from evidencekit.clock import parse_rfc3339, rfc3339
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.custody import append, events, resealing
from evidencekit.custody.events import EventRequest, append_event, build_event
from evidencekit.custody.receipt import (
    RECEIPT_FIELDS,
    check_receipt,
    parse_receipt,
    receipt_fields,
    receipt_text,
)
from evidencekit.errors import BundleError, OutputError, UsageError
from evidencekit.findings import Findings
from evidencekit.format.documents import custody_member
from evidencekit.format.outer import END_OF_ARCHIVE, OuterWriter, member_header, read_member, read_members
from evidencekit.verify import Report, verify

CASE = "FRAUD-2026-0117"
LATER = parse_rfc3339("2030-01-02T03:04:05.123456789Z")  # after the capture, whenever it runs
EVENT1 = custody_member(1)


@dataclass(frozen=True)
class Sealed:
    path: Path
    sealer: SigningKey
    identity: age.X25519Identity


def _capture(root: Path, case_id: str) -> Sealed:
    tree = root / "evidence"
    tree.mkdir()
    (tree / "chat.png").write_bytes(b"\x89PNG fake screenshot")
    sealer, identity = SigningKey.generate("victim"), age.X25519Identity.generate()
    capture(CaptureRequest([os.fsencode(tree)], root / "case.evidence", CaseInfo(case_id, "Victim V."),
                           [identity.recipient()], sealer, command_line=["evidencekit", "capture"]))
    return Sealed(root / "case.evidence", sealer, identity)


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Sealed:
    return _capture(tmp_path_factory.mktemp("sealed"), CASE)


@pytest.fixture
def bundle(tmp_path: Path, sealed: Sealed) -> Path:
    copy = tmp_path / "case.evidence"
    shutil.copy(sealed.path, copy)
    return copy


@pytest.fixture(scope="module")
def courier() -> SigningKey:
    return SigningKey.generate("courier")


def request(key: SigningKey, action: str = "note", at: int = LATER, **fields: object) -> EventRequest:
    return EventRequest(action, "Courier C.", key, clock=lambda: at, **fields)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def member(path: Path, name: str) -> bytes:
    with open(path, "rb") as f:
        return next(read_member(f, m, 1 << 30) for m in read_members(f) if m.name == name)


# ------------------------------------------------------------------------------ build_event


def test_build_event_follows_the_newest_event(bundle: Path, courier: SigningKey) -> None:
    report = verify(bundle)
    details = {"operation": "extract"}
    event = build_event(report, request(courier, "transferred", note="USB stick",
                                        counterparty="Det. A. Smith", details=details))
    assert report.seal is not None and report.payload_sha256 is not None
    assert (event.sequence, event.action, event.case_id) == (2, "transferred", CASE)
    assert event.previous_sha256 == sha(member(bundle, EVENT1)) == sha(report.events[0].to_json())
    assert event.payload_sha256 == report.payload_sha256 == report.seal.payload_sha256
    assert event.time == rfc3339(LATER)
    assert (event.actor_name, event.note, event.counterparty) == ("Courier C.", "USB stick",
                                                                 "Det. A. Smith")
    assert event.actor.fingerprint == courier.public.fingerprint
    assert event.actor.public_key == " ".join(courier.public.openssh_line().split()[:2])
    assert event.details == details and event.details is not details


def test_build_event_for_a_reseal_names_the_new_payload(bundle: Path, courier: SigningKey) -> None:
    report = verify(bundle)
    event = build_event(report, request(courier), action="resealed", payload_sha256="ab" * 32)
    assert (event.action, event.payload_sha256, event.sequence) == ("resealed", "ab" * 32, 2)


def test_appended_events_chain_one_to_the_next(bundle: Path, sealed: Sealed,
                                               courier: SigningKey) -> None:
    before = bundle.read_bytes()
    first = append_event(bundle, request(courier, "transferred", counterparty="Lab"))
    second = append_event(bundle, request(sealed.sealer, "received", at=LATER + 10**9))
    report = verify(bundle, [sealed.identity])
    assert report.ok and report.decrypted, report.findings.items
    assert report.events[1:] == [first, second]
    assert second.previous_sha256 == sha(first.to_json()) == sha(member(bundle, custody_member(2)))
    assert second.sequence == 3
    # Appending replaced only the end-of-archive marker.
    assert bundle.read_bytes()[: len(before) - len(END_OF_ARCHIVE)] == before[:-len(END_OF_ARCHIVE)]


@pytest.mark.parametrize("action", ["captured", "resealed", "stolen"])
def test_append_event_refuses_actions_it_does_not_append(bundle: Path, courier: SigningKey,
                                                         action: str) -> None:
    before = bundle.read_bytes()
    with pytest.raises(UsageError, match="action must be one of"):
        append_event(bundle, request(courier, action))
    assert bundle.read_bytes() == before


def test_append_event_refuses_a_bundle_that_does_not_verify(bundle: Path,
                                                            courier: SigningKey) -> None:
    with open(bundle, "rb") as f:
        payload = next(m for m in read_members(f) if m.name == "payload.age")
    data = bytearray(bundle.read_bytes())
    data[payload.offset + payload.size // 2] ^= 1
    bundle.write_bytes(data)
    with pytest.raises(BundleError, match="no custody event was added") as raised:
        append_event(bundle, request(courier))
    assert "payload.age" in raised.value.message
    assert bundle.read_bytes() == data


def test_append_event_refuses_a_report_that_did_not_hash_the_payload(bundle: Path,
                                                                     courier: SigningKey) -> None:
    """A quick look (custody show skips step 7) must not be enough to vouch for the bundle."""
    before = bundle.read_bytes()
    with pytest.raises(BundleError):
        append_event(bundle, request(courier), verify(bundle, check_payload_hash=False))
    assert bundle.read_bytes() == before


# --------------------------------------------------------------------------- _append_members


def _failing_add_bytes(monkeypatch: pytest.MonkeyPatch, fail_on: int,
                       error: BaseException) -> list[str]:
    """Make the *fail_on*-th OuterWriter.add_bytes write part of its header, then raise."""
    calls: list[str] = []
    real = OuterWriter.add_bytes

    def add_bytes(self: OuterWriter, name: str, data: bytes, mtime: int) -> None:
        calls.append(name)
        if len(calls) == fail_on:
            self._out.write(member_header(name, len(data), mtime)[:700])
            raise error
        real(self, name, data, mtime)

    monkeypatch.setattr(OuterWriter, "add_bytes", add_bytes)
    return calls


@pytest.mark.parametrize(("fail_on", "error"), [
    (1, OSError(errno.ENOSPC, "No space left on device")),
    (2, OSError(errno.ENOSPC, "No space left on device")),
    (2, KeyboardInterrupt()),
], ids=["event", "signature", "interrupted-at-signature"])
def test_failed_append_leaves_the_file_identical(bundle: Path, sealed: Sealed, courier: SigningKey,
                                                 monkeypatch: pytest.MonkeyPatch, fail_on: int,
                                                 error: BaseException) -> None:
    before = bundle.read_bytes()
    calls = _failing_add_bytes(monkeypatch, fail_on, error)
    # I/O errors reach people as OutputError (exit 2); Ctrl-C stays KeyboardInterrupt.
    with pytest.raises(OutputError if isinstance(error, OSError) else type(error)):
        append_event(bundle, request(courier))
    assert calls == [custody_member(2), custody_member(2) + ".sig"][:fail_on]
    assert bundle.read_bytes() == before
    monkeypatch.undo()
    assert verify(bundle).ok


def test_failed_fsync_leaves_the_file_identical(bundle: Path, courier: SigningKey,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    before = bundle.read_bytes()

    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OutputError):
        append_event(bundle, request(courier))
    assert bundle.read_bytes() == before


def test_disk_full_while_appending_is_an_output_error(bundle: Path, courier: SigningKey,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    before = bundle.read_bytes()
    _failing_add_bytes(monkeypatch, 2, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(OutputError):
        append_event(bundle, request(courier))
    assert bundle.read_bytes() == before


@pytest.mark.parametrize("tail", [b"x", b"\x01" + b"\0" * 1023], ids=["extra-byte", "dirty-end"])
def test_append_refuses_a_file_without_an_end_of_archive_marker(bundle: Path, courier: SigningKey,
                                                                tail: bytes) -> None:
    event = build_event(verify(bundle), request(courier))
    with open(bundle, "r+b") as f:
        if len(tail) == len(END_OF_ARCHIVE):
            f.seek(-len(END_OF_ARCHIVE), os.SEEK_END)
        else:
            f.seek(0, os.SEEK_END)
        f.write(tail)
    before = bundle.read_bytes()
    with pytest.raises(BundleError, match="end-of-archive"), open(bundle, "rb") as f:
        events.append_event_members(bundle, f.fileno(), event, courier)
    assert bundle.read_bytes() == before


# ----------------------------------------------------------------------------------- reseal


def test_reseal_refuses_an_existing_output(bundle: Path, sealed: Sealed, courier: SigningKey,
                                           tmp_path: Path) -> None:
    existing = tmp_path / "new.evidence"
    existing.write_bytes(b"someone else's file")
    with pytest.raises(OutputError, match="already exists"):
        resealing.reseal(bundle, existing, [sealed.identity], [sealed.identity.recipient()],
                       request(courier, "resealed"))
    assert existing.read_bytes() == b"someone else's file"


def test_reseal_into_a_missing_folder_is_an_output_error(bundle: Path, sealed: Sealed,
                                                         courier: SigningKey, tmp_path: Path) -> None:
    with pytest.raises(OutputError):
        resealing.reseal(bundle, tmp_path / "missing" / "new.evidence", [sealed.identity],
                       [sealed.identity.recipient()], request(courier, "resealed"))


# ---------------------------------------------------------------------------------- receipts


def test_receipt_text_round_trips(bundle: Path) -> None:
    report = verify(bundle)
    text = receipt_text(report, "case.evidence")
    assert text.startswith("EVIDENCEKIT RECEIPT\n") and "Bundle file: case.evidence\n" in text
    assert parse_receipt(text) == receipt_fields(report)
    assert set(receipt_fields(report)) == set(RECEIPT_FIELDS)
    # Mailed through Windows, or re-typed with other spacing: the same fields.
    assert parse_receipt(text.replace("\n", "\r\n")) == receipt_fields(report)
    assert parse_receipt(text.replace(":  ", ":")) == receipt_fields(report)


@pytest.mark.parametrize("text", ["", "hello\n", "Case: X\n", " EVIDENCEKIT RECEIPT\n"],
                         ids=["empty", "text", "fields-without-title", "indented-title"])
def test_parse_receipt_refuses_what_is_not_a_receipt(text: str) -> None:
    with pytest.raises(UsageError, match="not an evidencekit receipt"):
        parse_receipt(text)


def test_parse_receipt_names_missing_fields(bundle: Path) -> None:
    text = receipt_text(verify(bundle), "case.evidence")
    kept = [line for line in text.splitlines()
            if not line.startswith(("Root hash:", "Newest event SHA-256:"))]
    with pytest.raises(UsageError, match="incomplete") as raised:
        parse_receipt("\n".join(kept))
    assert raised.value.message.endswith("missing Root hash, Newest event SHA-256")


def findings_for(report: Report, receipt: dict[str, str]) -> list[tuple[str, str]]:
    findings = Findings()
    check_receipt(report, receipt, findings)
    assert all(f.check == "receipt" and f.severity == "error" for f in findings.items)
    return [(f.where, f.problem) for f in findings.items]


def test_check_receipt_accepts_its_own_bundle_and_a_longer_log(bundle: Path,
                                                               courier: SigningKey) -> None:
    receipt = receipt_fields(verify(bundle))
    assert findings_for(verify(bundle), receipt) == []
    append_event(bundle, request(courier, "transferred"))
    assert findings_for(verify(bundle), receipt) == []  # the receipt's event is still there
    # Informational lines are not compared: the hash of the newest event is what counts.
    assert findings_for(verify(bundle), {**receipt, "Custody events": "9",
                                         "Newest event": "#9 anything"}) == []


@pytest.mark.parametrize("key", ["Case", "Sealed at", "Files", "Bytes", "Root hash", "Sealed by"])
def test_check_receipt_reports_each_identifying_field(bundle: Path, key: str) -> None:
    report = verify(bundle)
    receipt = {**receipt_fields(report), key: "0"}
    findings = Findings()
    check_receipt(report, receipt, findings)
    [finding] = findings.items
    assert (finding.where, finding.problem) == (key, "differs from the receipt")
    assert (finding.expected, finding.found) == ("0", receipt_fields(report)[key])


def test_check_receipt_reports_a_removed_newest_event(bundle: Path, courier: SigningKey) -> None:
    append_event(bundle, request(courier, "transferred"))
    receipt = receipt_fields(verify(bundle))
    data = bundle.read_bytes()
    with open(bundle, "rb") as f:
        event2 = next(m for m in read_members(f) if m.name == custody_member(2))
    bundle.write_bytes(data[: event2.header_offset] + END_OF_ARCHIVE)  # cut back to event 1
    report = verify(bundle)
    assert report.ok  # a hash chain cannot see it ...
    [(where, problem)] = findings_for(report, receipt)  # ... the receipt can
    assert where == "custody" and "not in the bundle's log" in problem


def test_check_receipt_reports_a_payload_the_log_does_not_know(bundle: Path) -> None:
    report = verify(bundle)
    receipt = {**receipt_fields(report), "Payload SHA-256": "0" * 64}
    [(where, problem)] = findings_for(report, receipt)
    assert where == "payload" and "not one this bundle's log knows" in problem


def test_check_receipt_says_nothing_without_a_seal(bundle: Path) -> None:
    """A bundle whose seal cannot be read has failed verification already."""
    receipt = receipt_fields(verify(bundle))
    assert findings_for(Report("broken.evidence"), receipt) == []


def test_actor_name_cannot_rewrite_receipt_fields(bundle: Path, courier: SigningKey) -> None:
    event1 = sha(member(bundle, EVENT1))
    # Writers refuse such a name now (evidencekit.publictext); an older writer did not, and
    # its bundles are still read: the receipt must not be fooled by them.
    forged = request(courier)
    object.__setattr__(forged, "actor_name", f"Mallory\nNewest event SHA-256: {event1}\nx")
    append_event(bundle, forged)
    report = verify(bundle)
    assert report.ok
    parsed = parse_receipt(receipt_text(report, "case.evidence"))
    assert parsed["Newest event SHA-256"] == receipt_fields(report)["Newest event SHA-256"]


def test_case_id_with_spaces_is_refused_so_receipts_always_match(tmp_path: Path) -> None:
    # parse_receipt strips values, so capture refuses case ids that would not round-trip.
    with pytest.raises(UsageError):
        _capture(tmp_path, "FRAUD-2026-0117 ")


# ------------------------------------------------------------------------- before a public note
def test_a_note_is_checked_for_before_anyone_is_asked(bundle: Path) -> None:
    checked = events.checked_for_note(bundle)
    assert checked.ok and checked.payload_sha256 is not None


def test_no_note_is_offered_for_a_bundle_that_does_not_verify(bundle: Path) -> None:
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0xFF  # in the payload: its hash no longer matches the custody log
    bundle.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"^the bundle does not verify, so no note was added \("):
        events.checked_for_note(bundle)


# ------------------------------------------------------------------- an append that failed on disk
def test_an_append_that_did_not_fit_says_how_much_in_the_units_of_every_size(tmp_path: Path) -> None:
    error = append.append_failed(tmp_path / "b.evidence", "the timestamp",
                                  fs.NotEnoughSpace(3 << 30, 5 << 20, tmp_path), "free space")
    assert isinstance(error, OutputError) and error.hint == "free space"
    assert error.message.startswith(f"not enough free space next to {tmp_path / 'b.evidence'} to "
                                    "add the timestamp: it needs 3.0 GiB (a copy of the bundle), "
                                    "5.0 MiB are free; the bundle was left as it was")


def test_an_append_to_a_bundle_that_went_away_is_an_input_error(tmp_path: Path) -> None:
    error = append.append_failed(tmp_path / "b.evidence", "the custody event",
                                  FileNotFoundError(2, "gone"), "")
    assert error.message == f"cannot read {tmp_path / 'b.evidence'}: it does not exist"
    other = append.append_failed(tmp_path / "b.evidence", "the custody event",
                                  PermissionError(13, "Permission denied"), "")
    assert other.message == (f"could not add the custody event to {tmp_path / 'b.evidence'}: "
                             "Permission denied; the bundle was left as it was")
