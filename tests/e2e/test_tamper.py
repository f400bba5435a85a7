"""Tampered bundles through the real CLI: every defect is exit code 1 with a finding that names it.

One small bundle is captured per module; each test works on its own copy. Rebuilt bundles are
written with evidencekit's own OuterWriter, so they are structurally perfect tars and only the
check that the attack targets can catch them. Many CLI runs go through a small thread pool (each
run is its own process) to keep the module fast.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from evidencekit.clock import parse_rfc3339, rfc3339
from evidencekit.crypto import age, sshsig
from evidencekit.crypto.keys import SigningKey
from evidencekit.format.documents import CustodyEvent, Seal, Signer
from evidencekit.format.outer import BLOCK, Member, read_members
from tests.support.bundles import contents, rebuild
from tests.support.cli import Run, run_cli

# No test here touches the real ~/.config or inherits a passphrase (tests/support/env.py).
pytestmark = pytest.mark.usefixtures("isolated_environment")

CASE = "FRAUD-2026-0117"
EVENT1 = "custody/000001.json"
EVENT2 = "custody/000002.json"
MEMBER_NAMES = ["README.txt", "payload.age", "seal.json", "seal.json.sig", EVENT1, EVENT1 + ".sig"]
# The check that must catch a change inside each member's data (docs/FORMAT.md §7.1).
DATA_CHECKS = {
    "README.txt": {"readme"},
    "payload.age": {"payload-hash"},
    "seal.json": {"seal", "seal-signature"},
    "seal.json.sig": {"seal-signature"},
    EVENT1: {"custody"},
    EVENT1 + ".sig": {"custody"},
}
WORKERS = max(2, min(8, os.cpu_count() or 2))


# ----------------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Original:
    path: Path
    signer: SigningKey
    signer_file: Path
    identity: age.X25519Identity
    identity_file: Path
    custody_head_sha256: str  # the newest event's hash, as capture printed it
    receipt: Path  # made by 'evidencekit receipt' right after the capture


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Original:
    """One small bundle (two files, X25519 recipient), captured once for the whole module."""
    root = tmp_path_factory.mktemp("original")
    tree = root / "evidence"
    (tree / "mail").mkdir(parents=True)
    (tree / "mail" / "scam.eml").write_bytes(b"From: a@b\n\nPay now\n")
    (tree / "notes.txt").write_text("seen on 2026-11-20\n")
    signer = SigningKey.generate("examiner@test")
    signer.save(root / "signer")
    identity = age.X25519Identity.generate()
    (root / "identity.txt").write_text(f"{identity}\n")
    bundle = root / "case.evidence"
    result = run_cli("capture", tree, "--case", CASE, "--examiner", "Jane Doe", "-r",
                     identity.recipient(), "--sign-key", root / "signer", "-o", bundle, "--json")
    assert result.code == 0, result.stderr
    os.chmod(bundle, 0o444)
    receipt = root / "case.receipt"
    made = run_cli("receipt", bundle, "-o", receipt)
    assert made.code == 0, made.stderr
    return Original(bundle, signer, root / "signer", identity, root / "identity.txt",
                    result.json()["custody_head_sha256"], receipt)


@pytest.fixture
def bundle(tmp_path: Path, original: Original) -> Path:
    """A private, writable copy of the original bundle."""
    copy = tmp_path / "case.evidence"
    shutil.copyfile(original.path, copy)
    return copy


# ------------------------------------------------------------------------------------ helpers


def verify(path: Path, *extra: object) -> Run:
    return run_cli("verify", path, "--json", *extra)


def rejected(result: Run) -> list[dict]:
    """Exit code 1 (never 0, never 5, no traceback) and a JSON report: its error findings."""
    assert result.code == 1, f"exit {result.code}: {result.stdout}{result.stderr}"
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    document = result.json()
    assert document["ok"] is False and document["exit_code"] == 1
    assert "findings" in document, f"no findings, only: {document.get('error')}"
    errors = [f for f in document["findings"] if f["severity"] == "error"]
    assert errors
    return errors


def assert_finding(result: Run, checks: str | set[str], where: str | set[str] | None = None,
                   problem: str = "") -> list[dict]:
    """Rejected, with a finding of one of *checks*, about *where*, whose text has *problem*."""
    errors = rejected(result)
    wanted = {checks} if isinstance(checks, str) else checks
    places = {where} if isinstance(where, str) else where
    matching = [f for f in errors if f["check"] in wanted and (places is None or f["where"] in places)
                and problem in f["problem"]]
    assert matching, f"no {sorted(wanted)} finding about {places} ({problem!r}) in {errors}"
    return errors


def in_parallel(function: Callable[..., Run], jobs: Iterable[tuple]) -> list[Run]:
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(lambda args: function(*args), jobs))


def layout(path: Path) -> list[Member]:
    with open(path, "rb") as f:
        return read_members(f)


def replaced(members: list[tuple[str, bytes, int]], **changes: bytes) -> list[tuple[str, bytes, int]]:
    """Members with new data for some names (keyword: name with '/' and '.' as '_')."""
    def key(name: str) -> str:
        return name.replace("/", "_").replace(".", "_")
    return [(n, changes.get(key(n), d), t) for n, d, t in members]


def member_data(path: Path, name: str) -> bytes:
    return next(d for n, d, _ in contents(path) if n == name)


def signer_of(key: SigningKey) -> Signer:
    return Signer(" ".join(key.public.openssh_line().split()[:2]), key.public.fingerprint)


def raw_ranges(path: Path) -> tuple[list[tuple[str, bytes]], bytes]:
    """The raw bytes of a bundle cut into [(name, header + data + padding)] and the end marker."""
    data = path.read_bytes()
    members = layout(path)
    starts = [m.header_offset for m in members] + [len(data) - 2 * BLOCK]
    return [(m.name, data[a:b]) for m, a, b in zip(members, starts, starts[1:], strict=False)], \
        data[starts[-1]:]


def outer(path: Path) -> set[str]:
    """Where an outer-structure finding points: the bundle, as named (by file name or by path)."""
    return {path.name, str(path)}


def with_second_event(path: Path, original: Original, actor: SigningKey) -> Path:
    """Append a correctly chained, signed event 2 ('transferred') by *actor*."""
    members = contents(path)
    first = CustodyEvent.from_json(member_data(path, EVENT1), EVENT1)
    later = parse_rfc3339(first.time) + 3600 * 10**9
    event = CustodyEvent(
        case_id=first.case_id, sequence=2, action="transferred", time=rfc3339(later),
        clock_source=first.clock_source, actor_name="Courier", actor=signer_of(actor),
        host="lab", note="handed to the lab", payload_sha256=first.payload_sha256,
        previous_sha256=hashlib.sha256(member_data(path, EVENT1)).hexdigest())
    data = event.to_json()
    seconds = later // 10**9
    return rebuild(path, [*members, (EVENT2, data, seconds),
                          (EVENT2 + ".sig", sshsig.sign(actor, data), seconds)])


# ------------------------------------------------------------------------------ bit flips


def flip_positions(path: Path) -> list[int]:
    """60 positions spread evenly, every header block, and chosen places inside each member."""
    size = path.stat().st_size
    positions = {i * (size - 1) // 59 for i in range(60)}
    for m in layout(path):
        positions |= {m.header_offset, m.header_offset + BLOCK, m.header_offset + 2 * BLOCK}
        positions |= {m.offset, m.offset + m.size // 2, m.offset + m.size - 1}
        if m.size % BLOCK:
            positions.add(m.offset + m.size)  # first padding byte
    payload = next(m for m in layout(path) if m.name == "payload.age")
    positions |= {payload.offset + 3,  # "age-encryption.org/v1"
                  payload.offset + 30,  # the X25519 stanza
                  payload.offset + 100,  # its wrapped key
                  payload.offset + payload.size - 16,  # the last chunk's tag
                  payload.offset + payload.size - 17}
    positions |= {size - 2 * BLOCK, size - BLOCK, size - 1}  # end-of-archive blocks
    return sorted(positions)


def expected_for(position: int, members: list[Member], path: Path) -> tuple[set[str], set[str]]:
    """Which checks, and about which member, must report a flipped bit at *position*."""
    for m in members:
        if m.header_offset <= position < m.offset:
            return {"outer-structure"}, outer(path)
        if m.offset <= position < m.offset + m.size:
            where = {m.name, m.name + ".sig"} if m.name.endswith(".json") else {m.name}
            return DATA_CHECKS[m.name], where
    return {"outer-structure"}, outer(path)  # padding or end-of-archive


def test_bit_flip_anywhere_is_detected_with_and_without_key(tmp_path, original):
    source = original.path.read_bytes()
    members = layout(original.path)
    payload = next(m for m in members if m.name == "payload.age")
    positions = flip_positions(original.path)
    assert len(positions) > 80
    # With the key: the payload's header blocks, age header, middle and last bytes, and every
    # fourth position (the public checks run with a key too, so this only trims the runtime).
    keyed = {p for p in positions if payload.header_offset <= p < payload.offset + 128
             or payload.offset + payload.size - 32 <= p <= payload.offset + payload.size}
    keyed |= {payload.offset + payload.size // 2, *positions[::4]}
    jobs: list[tuple] = []
    for position in positions:
        damaged = bytearray(source)
        damaged[position] ^= 1 << (position % 8)
        path = tmp_path / f"flip-{position}.evidence"
        path.write_bytes(damaged)
        jobs.append((path,))
        if position in keyed:
            jobs.append((path, "-i", original.identity_file))
    failures = []
    for (path, *extra), result in zip(jobs, in_parallel(verify, jobs), strict=True):
        position = int(path.stem.split("-")[1])
        checks, where = expected_for(position, members, path)
        try:
            assert_finding(result, checks, where)
        except AssertionError as exc:
            failures.append(f"byte {position} ({'with key' if extra else 'public'}): {exc}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("member", MEMBER_NAMES)
def test_bit_flip_in_member_data_is_detected(bundle, original, member):
    m = next(m for m in layout(bundle) if m.name == member)
    data = bytearray(bundle.read_bytes())
    data[m.offset + m.size // 2] ^= 0x04
    bundle.write_bytes(data)
    public, keyed = in_parallel(verify, [(bundle,), (bundle, "-i", original.identity_file)])
    where = {member, member + ".sig"} if member.endswith(".json") else {member}
    assert_finding(public, DATA_CHECKS[member], where)
    assert_finding(keyed, DATA_CHECKS[member], where)


def test_bit_flip_in_payload_is_caught_by_decryption_too(bundle, original):
    m = next(m for m in layout(bundle) if m.name == "payload.age")
    data = bytearray(bundle.read_bytes())
    data[m.offset + m.size - 100] ^= 0x80  # inside the last chunk's ciphertext
    bundle.write_bytes(data)
    errors = assert_finding(verify(bundle, "-i", original.identity_file), "payload-hash",
                            "payload.age")
    assert "payload-decrypt" in {f["check"] for f in errors}


# ------------------------------------------------------------------------------- truncation


def test_truncation_at_every_block_boundary_is_detected(tmp_path, original):
    source = original.path.read_bytes()
    payload = next(m for m in layout(original.path) if m.name == "payload.age")
    # From one byte: an empty file is no bundle at all (exit 2, tests/format/test_reader.py)
    lengths = set(range(BLOCK, len(source), BLOCK)) | {1}
    lengths |= {payload.offset + 1, payload.offset + payload.size // 2,
                payload.offset + payload.size - 1, len(source) - 1}
    jobs = []
    for length in sorted(lengths):
        path = tmp_path / f"cut-{length}.evidence"
        path.write_bytes(source[:length])
        jobs.append((path,))
        if length in (payload.offset + payload.size // 2, len(source) - BLOCK):
            jobs.append((path, "-i", original.identity_file))
    failures = []
    for (path, *extra), result in zip(jobs, in_parallel(verify, jobs), strict=True):
        try:
            assert_finding(result, "outer-structure", outer(path))
        except AssertionError as exc:
            failures.append(f"{path.name} {extra}: {exc}")
    assert not failures, "\n".join(failures)


# ------------------------------------------------------------------------ outer structure


@pytest.mark.parametrize("extra", [b"x", b"\0" * BLOCK, b"\0" * 2 * BLOCK + b"\n"],
                         ids=["one-byte", "zero-block", "zeros-and-newline"])
def test_appended_bytes_are_detected(bundle, extra):
    with open(bundle, "ab") as f:
        f.write(extra)
    assert_finding(verify(bundle), "outer-structure", outer(bundle), "after the end of the archive")


def test_appended_tar_member_is_detected(bundle):
    """A whole extra member written after the end-of-archive marker (as `tar -r` would not)."""
    extra = bundle.with_name("extra.evidence")
    rebuild(extra, [("notes.txt", b"added later\n", 0)])
    with open(bundle, "ab") as f:
        f.write(extra.read_bytes())
    assert_finding(verify(bundle), "outer-structure", outer(bundle), "after the end of the archive")


def test_extra_member_inside_the_archive_is_detected(bundle):
    rebuild(bundle, [*contents(bundle), ("custody/notes.txt", b"hello\n", 0)])
    assert_finding(verify(bundle), "outer-structure", outer(bundle), "unexpected member")


@pytest.mark.parametrize("pair", [("README.txt", "payload.age"), ("seal.json", "seal.json.sig"),
                                  ("seal.json.sig", EVENT1), (EVENT1, EVENT1 + ".sig")])
def test_swapped_members_are_detected(bundle, original, pair):
    ranges, end = raw_ranges(bundle)
    order = [n for n, _ in ranges]
    i, j = order.index(pair[0]), order.index(pair[1])
    ranges[i], ranges[j] = ranges[j], ranges[i]
    bundle.write_bytes(b"".join(r for _, r in ranges) + end)
    assert_finding(verify(bundle), "outer-structure", outer(bundle), "not in the prescribed order")


@pytest.mark.parametrize("member", MEMBER_NAMES)
def test_duplicated_member_is_detected(bundle, member):
    ranges, end = raw_ranges(bundle)
    index = [n for n, _ in ranges].index(member)
    ranges.insert(index + 1, ranges[index])
    bundle.write_bytes(b"".join(r for _, r in ranges) + end)
    assert_finding(verify(bundle), "outer-structure", outer(bundle), f"member {member} appears 2 times")


@pytest.mark.parametrize("member", MEMBER_NAMES)
def test_removed_member_is_detected(bundle, original, member):
    ranges, end = raw_ranges(bundle)
    bundle.write_bytes(b"".join(r for n, r in ranges if n != member) + end)
    jobs = [(bundle,), (bundle, "-i", original.identity_file)] if member == "payload.age" else [
        (bundle,)]
    for result in in_parallel(verify, jobs):
        errors = assert_finding(result, "outer-structure", outer(bundle))
        assert any(member in f["problem"] for f in errors if f["check"] == "outer-structure")


def test_renamed_member_is_detected(bundle):
    rebuild(bundle, [("custody/000002.json" if n == EVENT1 else n, d, t)
                     for n, d, t in contents(bundle)])
    assert_finding(verify(bundle), "outer-structure", outer(bundle))


# ----------------------------------------------------------------------------- header times


@pytest.mark.parametrize("member", [
    *MEMBER_NAMES[:5],
    EVENT1 + ".sig",
])
def test_changed_header_time_is_detected(bundle, member):
    # A canonical header (checksum recomputed) whose mtime is an hour off the signed time.
    rebuild(bundle, [(n, d, t + 3600 if n == member else t) for n, d, t in contents(bundle)])
    assert_finding(verify(bundle), "member-times", member)


# ----------------------------------------------------------------------------- the seal


def test_seal_edited_and_signed_by_another_key_is_detected(bundle, original):
    members = contents(bundle)
    seal = Seal.from_json(member_data(bundle, "seal.json"))
    forged = dataclasses.replace(seal, case_id="FRAUD-2026-0118").to_json()
    stranger = SigningKey.generate("attacker")
    rebuild(bundle, replaced(members, seal_json=forged, seal_json_sig=sshsig.sign(stranger, forged)))
    result = verify(bundle)
    errors = assert_finding(result, "seal-signature", "seal.json.sig",
                            "signed by a different key than the one it names")
    assert any(f["found"] == stranger.public.fingerprint for f in errors)
    assert_finding(result, "custody", EVENT1, "not chained")  # the event names the old seal


def test_seal_naming_another_signer_is_detected(bundle, original):
    """The forger names his own key in the seal: the seal signature is then 'valid', but event 1
    is not by the sealer and no longer chains to the seal; a trusted key says untrusted."""
    members = contents(bundle)
    seal = Seal.from_json(member_data(bundle, "seal.json"))
    stranger = SigningKey.generate("attacker")
    forged = dataclasses.replace(seal, total_bytes=seal.total_bytes + 1,
                                 signer=signer_of(stranger)).to_json()
    rebuild(bundle, replaced(members, seal_json=forged, seal_json_sig=sshsig.sign(stranger, forged)))
    public, trusted = in_parallel(verify, [
        (bundle,), (bundle, "--trusted-key", original.signer.public.openssh_line())])
    assert_finding(public, "custody", EVENT1, "'captured' event was not made by the sealer")
    assert_finding(public, "custody", EVENT1, "not chained")
    assert_finding(trusted, "seal-signature", "seal.json", "did not list as trusted")
    assert trusted.json()["signer"]["trusted"] is False


def test_bundle_resealed_entirely_by_another_key_is_untrusted(bundle, original):
    """Seal and event 1 both re-made and signed by a forger: consistent in itself, so only a trust
    anchor (--trusted-key) or the key (the manifest inside is signed by the real sealer) catch it."""
    members = contents(bundle)
    seal = Seal.from_json(member_data(bundle, "seal.json"))
    stranger = SigningKey.generate("attacker")
    forged_seal = dataclasses.replace(seal, signer=signer_of(stranger)).to_json()
    event = CustodyEvent.from_json(member_data(bundle, EVENT1), EVENT1)
    forged_event = dataclasses.replace(event, actor=signer_of(stranger),
                                       previous_sha256=hashlib.sha256(forged_seal).hexdigest()
                                       ).to_json()
    rebuild(bundle, replaced(members, seal_json=forged_seal,
                             seal_json_sig=sshsig.sign(stranger, forged_seal),
                             custody_000001_json=forged_event,
                             custody_000001_json_sig=sshsig.sign(stranger, forged_event)))
    trusted, keyed, anchorless = in_parallel(verify, [
        (bundle, "--trusted-key", original.signer.public.openssh_line()),
        (bundle, "-i", original.identity_file), (bundle,)])
    assert_finding(trusted, "seal-signature", "seal.json", "did not list as trusted")
    assert_finding(keyed, "manifest", "evidencekit/manifest.json.sig", "signed by another key")
    # Without a trust anchor and without the key nothing can tell: that is what --trusted-key is for.
    assert anchorless.code == 0, anchorless.stdout


def rewrapped(armored: bytes, width: int, final_newline: bool = True) -> bytes:
    """The same signature blob in lines of *width* characters: what a text editor or a mail
    program may do to a signature file."""
    lines = armored.decode().splitlines()
    body = "".join(lines[1:-1])
    text = "\n".join([lines[0], *(body[i:i + width] for i in range(0, len(body), width)),
                      lines[-1]])
    return (text + ("\n" if final_newline else "")).encode()


@pytest.mark.parametrize(("member", "check"), [("seal.json.sig", "seal-signature"),
                                               (EVENT1 + ".sig", "custody")])
@pytest.mark.parametrize(("width", "final_newline"), [(64, True), (76, True), (70, False)],
                         ids=["64-columns", "76-columns", "no-final-newline"])
def test_rewrapped_signature_armor_is_a_finding_naming_the_member(bundle, member, check, width,
                                                                   final_newline):
    """Every byte has one meaning (issue 19, item 5): a signature re-wrapped after signing still
    decodes to the same valid signature, but the bundle's bytes changed, so it is refused and the
    finding names the member."""
    original = member_data(bundle, member)
    changed = rewrapped(original, width, final_newline)
    assert changed != original
    rebuild(bundle, [(n, changed if n == member else d, t) for n, d, t in contents(bundle)])
    assert_finding(verify(bundle), check, member, "not in the exact form")


def test_seal_signature_over_another_document_is_detected(bundle):
    members = contents(bundle)
    rebuild(bundle, replaced(members, seal_json_sig=member_data(bundle, EVENT1 + ".sig")))
    assert_finding(verify(bundle), "seal-signature", "seal.json.sig", "does not match")


def test_custody_event_presented_as_seal_is_detected(bundle):
    members = contents(bundle)
    event, signature = member_data(bundle, EVENT1), member_data(bundle, EVENT1 + ".sig")
    rebuild(bundle, replaced(members, seal_json=event, seal_json_sig=signature))
    assert_finding(verify(bundle), "seal", "seal.json", "not of type")


# ------------------------------------------------------------------------- custody events


def edited_event(path: Path, **fields: object) -> bytes:
    event = CustodyEvent.from_json(member_data(path, EVENT1), EVENT1)
    return dataclasses.replace(event, **fields).to_json()


def test_custody_note_edited_without_resigning_is_detected(bundle):
    forged = edited_event(bundle, note="nothing to see")
    rebuild(bundle, replaced(contents(bundle), custody_000001_json=forged))
    assert_finding(verify(bundle), "custody", EVENT1 + ".sig", "does not match")


def test_custody_note_edited_and_signed_by_another_key_is_detected(bundle):
    forged = edited_event(bundle, note="nothing to see")
    stranger = SigningKey.generate("attacker")
    rebuild(bundle, replaced(contents(bundle), custody_000001_json=forged,
                             custody_000001_json_sig=sshsig.sign(stranger, forged)))
    assert_finding(verify(bundle), "custody", EVENT1 + ".sig",
                   "signed by a key other than the one it names")


def test_custody_event_reattributed_to_another_actor_is_detected(bundle):
    stranger = SigningKey.generate("attacker")
    forged = edited_event(bundle, note="nothing to see", actor=signer_of(stranger),
                          actor_name="Someone Else")
    rebuild(bundle, replaced(contents(bundle), custody_000001_json=forged,
                             custody_000001_json_sig=sshsig.sign(stranger, forged)))
    assert_finding(verify(bundle), "custody", EVENT1, "'captured' event was not made by the sealer")


@pytest.mark.parametrize(("fields", "problem"), [
    ({"action": "accessed"}, "first custody event is not 'captured'"),
    ({"payload_sha256": "0" * 64}, "concerns another payload"),
    ({"case_id": "FRAUD-2026-0118"}, "names another case"),
    ({"sequence": 2}, "sequence number is wrong"),
    ({"previous_sha256": "f" * 64}, "not chained"),
], ids=["action", "payload", "case", "sequence", "previous"])
def test_custody_event_field_changed_and_resigned_by_sealer_is_detected(bundle, original, fields,
                                                                         problem):
    forged = edited_event(bundle, **fields)
    rebuild(bundle, replaced(contents(bundle), custody_000001_json=forged,
                             custody_000001_json_sig=sshsig.sign(original.signer, forged)))
    assert_finding(verify(bundle), "custody", EVENT1, problem)


def test_custody_event_time_changed_without_header_is_detected(bundle, original):
    event = CustodyEvent.from_json(member_data(bundle, EVENT1), EVENT1)
    forged = edited_event(bundle, time=rfc3339(parse_rfc3339(event.time) + 7200 * 10**9))
    rebuild(bundle, replaced(contents(bundle), custody_000001_json=forged,
                             custody_000001_json_sig=sshsig.sign(original.signer, forged)))
    assert_finding(verify(bundle), "member-times", EVENT1)


def test_custody_note_edited_and_resigned_by_sealer_is_caught_by_the_receipt(bundle, original):
    """Whoever holds the sealer's key can re-make the only event: it still chains to seal.json, is
    signed by the key it names, concerns the sealed payload, so verification alone passes. FORMAT.md
    §6 documents this (like removing the newest events); the remedy is the receipt."""
    forged = edited_event(bundle, note="nothing to see")
    rebuild(bundle, replaced(contents(bundle), custody_000001_json=forged,
                             custody_000001_json_sig=sshsig.sign(original.signer, forged)))
    alone, with_receipt = in_parallel(verify, [(bundle,), (bundle, "--receipt", original.receipt)])
    assert alone.code == 0, alone.stdout
    assert alone.json()["custody"][0]["note"] == "nothing to see"  # shown, for a human to judge
    assert hashlib.sha256(member_data(bundle, EVENT1)).hexdigest() != original.custody_head_sha256
    assert_finding(with_receipt, "receipt", "custody", "not in the bundle's log")


def test_second_event_by_another_actor_is_accepted(bundle, original):
    """Baseline for the chain tests below: a correctly chained, signed event 2 verifies."""
    with_second_event(bundle, original, SigningKey.generate("courier"))
    result = verify(bundle, "-i", original.identity_file)
    assert result.code == 0, result.stdout
    assert [e["action"] for e in result.json()["custody"]] == ["captured", "transferred"]


def test_custody_event_edited_under_a_later_event_breaks_the_chain(bundle, original):
    with_second_event(bundle, original, SigningKey.generate("courier"))
    forged = edited_event(bundle, note="nothing to see")
    rebuild(bundle, replaced(contents(bundle), custody_000001_json=forged,
                             custody_000001_json_sig=sshsig.sign(original.signer, forged)))
    assert_finding(verify(bundle), "custody", EVENT2, "not chained")


def test_custody_events_swapped_are_detected(bundle, original):
    with_second_event(bundle, original, SigningKey.generate("courier"))
    members = contents(bundle)
    data = {n: d for n, d, _ in members}
    swapped = {EVENT1: EVENT2, EVENT2: EVENT1, EVENT1 + ".sig": EVENT2 + ".sig",
               EVENT2 + ".sig": EVENT1 + ".sig"}
    rebuild(bundle, [(n, data[swapped.get(n, n)], t) for n, _, t in members])
    errors = assert_finding(verify(bundle), "custody", EVENT1)
    problems = " ".join(f["problem"] for f in errors)
    assert "sequence number is wrong" in problems and "not chained" in problems


def test_custody_event_removed_from_the_middle_is_detected(bundle, original):
    with_second_event(bundle, original, SigningKey.generate("courier"))
    rebuild(bundle, [m for m in contents(bundle) if not m[0].startswith(EVENT1)])
    errors = assert_finding(verify(bundle), "outer-structure", outer(bundle))
    assert any("custody/000001.json is missing" in f["problem"] for f in errors)


# --------------------------------------------------------------------------------- payload


def test_payload_reencrypted_by_attacker_is_detected(bundle, original):
    """The holder of the identity re-encrypts the same evidence (same recipient), keeping the seal."""
    members = contents(bundle)
    plaintext = age.decrypt(member_data(bundle, "payload.age"), [original.identity])
    forged = age.encrypt(plaintext, [original.identity.recipient()])
    rebuild(bundle, replaced(members, payload_age=forged))
    public, keyed = in_parallel(verify, [(bundle,), (bundle, "-i", original.identity_file)])
    errors = assert_finding(public, "payload-hash", "payload.age", "SHA-256 differs")
    assert {f["check"] for f in errors} == {"payload-hash"}
    assert_finding(keyed, "payload-hash", "payload.age", "SHA-256 differs")
    assert keyed.json()["decrypted"] is True  # the content itself is intact


def test_payload_with_changed_evidence_is_detected(bundle, original):
    """Same size, one evidence file changed inside, re-encrypted: payload hash, bag and manifest."""
    members = contents(bundle)
    plaintext = age.decrypt(member_data(bundle, "payload.age"), [original.identity])
    assert plaintext.count(b"Pay now") == 1
    forged = age.encrypt(plaintext.replace(b"Pay now", b"Pay NOW"), [original.identity.recipient()])
    rebuild(bundle, replaced(members, payload_age=forged))
    public, keyed = in_parallel(verify, [(bundle,), (bundle, "-i", original.identity_file)])
    assert_finding(public, "payload-hash", "payload.age")
    assert_finding(keyed, "bag", "data/evidence/mail/scam.eml", "does not match")
    assert_finding(keyed, "manifest", "data/evidence/mail/scam.eml", "does not match")


def test_payload_encrypted_to_another_recipient_is_detected(bundle, original):
    members = contents(bundle)
    plaintext = age.decrypt(member_data(bundle, "payload.age"), [original.identity])
    other = age.X25519Identity.generate()
    rebuild(bundle, replaced(members, payload_age=age.encrypt(plaintext, [other.recipient()])))
    keyed = verify(bundle, "-i", original.identity_file)
    assert_finding(keyed, "payload-hash", "payload.age")
    assert keyed.json()["no_matching_key"]


def test_payload_swapped_back_after_a_reseal_is_detected(tmp_path, bundle, original):
    """A legitimate reseal moves the expected payload to the new one: the old one no longer fits."""
    resealed = tmp_path / "resealed.evidence"
    holder = age.X25519Identity.generate()
    result = run_cli("reseal", bundle, "-i", original.identity_file, "-r", holder.recipient(),
                     "--sign-key", original.signer_file, "-o", resealed, "--json")
    assert result.code == 0, result.stdout + result.stderr
    baseline = verify(resealed, "--trusted-key", original.signer.public.openssh_line())
    assert baseline.code == 0, baseline.stdout
    rebuild(resealed, replaced(contents(resealed), payload_age=member_data(bundle, "payload.age")))
    assert_finding(verify(resealed), "payload-hash", "payload.age")


def test_payload_replaced_under_a_resealed_event_by_an_untrusted_key_is_detected(bundle, original):
    """A stranger swaps payload.age and appends a well-formed 'resealed' event signed by his own
    key. Even checked against the sealer's key and the hand-over receipt, that must not pass."""
    members = contents(bundle)
    seal = Seal.from_json(member_data(bundle, "seal.json"))
    first = CustodyEvent.from_json(member_data(bundle, EVENT1), EVENT1)
    stranger = SigningKey.generate("attacker")
    junk = age.encrypt(b"not the evidence", [age.X25519Identity.generate().recipient()])
    junk_sha256 = hashlib.sha256(junk).hexdigest()
    later = parse_rfc3339(first.time) + 3600 * 10**9
    event = CustodyEvent(
        case_id=first.case_id, sequence=2, action="resealed", time=rfc3339(later),
        clock_source=first.clock_source, actor_name="Mallory", actor=signer_of(stranger),
        host="elsewhere", note="", payload_sha256=junk_sha256,
        previous_sha256=hashlib.sha256(member_data(bundle, EVENT1)).hexdigest(),
        details={"old_payload_sha256": seal.payload_sha256, "new_payload_sha256": junk_sha256,
                 "new_payload_size": str(len(junk))})
    data = event.to_json()
    rebuild(bundle, [*replaced(members, payload_age=junk), (EVENT2, data, later // 10**9),
                     (EVENT2 + ".sig", sshsig.sign(stranger, data), later // 10**9)])
    result = verify(bundle, "--trusted-key", original.signer.public.openssh_line(),
                    "--receipt", original.receipt)
    assert_finding(result, {"payload-hash", "custody", "seal-signature"},
                   {"payload.age", EVENT2, EVENT2 + ".sig"})


# ------------------------------------------------------------------------- oversized members


@pytest.mark.parametrize(("member", "check"), [("README.txt", "readme"), (EVENT1, "custody")])
def test_oversized_member_is_reported_as_a_finding(bundle, member, check):
    members = contents(bundle)
    padded = [(n, d + b" " * (2 << 20) if n == member else d, t) for n, d, t in members]
    rebuild(bundle, padded)
    assert_finding(verify(bundle), check, member)


@pytest.mark.parametrize(("member", "check"), [("seal.json", "seal"),
                                               ("seal.json.sig", "seal-signature"),
                                               (EVENT1 + ".sig", "custody")])
def test_oversized_signed_member_is_detected(bundle, member, check):
    members = contents(bundle)
    rebuild(bundle, [(n, d + b" " * (2 << 20) if n == member else d, t) for n, d, t in members])
    assert_finding(verify(bundle), check, member, "more than")
