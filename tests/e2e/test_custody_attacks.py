"""Attacks on the chain of custody through the real CLI (issue 3; docs/FORMAT.md §6).

One bundle is captured per module and handed on three times (transferred by the victim, received
by an officer with a second key, a note by the officer); each test works on its own copy. Forged
bundles are rebuilt with evidencekit's own OuterWriter and carry header times equal to the signed
event times, so they are structurally perfect and only the custody checks (or the receipt) can
catch them. Every attack is checked with `verify --json` and, where the custody log alone shows
it, with `custody show --json` too. CLI runs that do not depend on each other run in parallel.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from evidencekit.clock import parse_rfc3339, rfc3339
from evidencekit.crypto import age, sshsig
from evidencekit.crypto.keys import SigningKey
from evidencekit.format.documents import CustodyEvent, Signer, custody_member
from tests.support.bundles import Member, contents, rebuild
from tests.support.cli import Run, run_cli

# No test here touches the real ~/.config or inherits a passphrase (tests/support/env.py).
pytestmark = pytest.mark.usefixtures("isolated_environment")

CASE = "FRAUD-2026-0117"
SECOND = 10**9


def ev(sequence: int) -> str:
    return custody_member(sequence)


def sig(sequence: int) -> str:
    return custody_member(sequence) + ".sig"


# ----------------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Setup:
    bundle: Path  # events: 1 captured, 2 transferred (victim), 3 received, 4 note (officer)
    other: Path  # same case, same sealer, passphrase-protected, only its "captured" event
    receipt: Path  # made after event 4
    receipt_early: Path  # made after event 2
    other_receipt: Path  # the other bundle's receipt
    victim: SigningKey  # the sealer
    victim_file: Path
    officer: SigningKey
    officer_file: Path
    identity_file: Path  # opens `bundle`
    wrong_identity_file: Path
    new_recipient: str  # for reseal

    def key_for(self, fingerprint: str) -> SigningKey:
        return {k.public.fingerprint: k for k in (self.victim, self.officer)}[fingerprint]


def ok(result: Run) -> Run:
    assert result.code == 0, f"exit {result.code}: {result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def setup(isolated_environment: None, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    root = tmp_path_factory.mktemp("custody")
    tree = root / "evidence"
    tree.mkdir()
    (tree / "chat.png").write_bytes(b"\x89PNG fake screenshot")
    (tree / "statement.csv").write_text("2026-11-16,-499.00,EUR\n")
    victim, officer = SigningKey.generate("victim"), SigningKey.generate("officer")
    victim.save(root / "victim")
    officer.save(root / "officer")
    identity, wrong, new = (age.X25519Identity.generate() for _ in range(3))
    (root / "identity.txt").write_text(f"{identity}\n")
    (root / "wrong.txt").write_text(f"{wrong}\n")
    (root / "passphrase.txt").write_text("correct horse battery staple\n")
    bundle, other = root / "case.evidence", root / "other.evidence"
    captured = in_parallel(
        ("capture", tree, "--case", CASE, "--examiner", "Victim V.", "-r", identity.recipient(),
         "--sign-key", root / "victim", "-o", bundle, "--json"),
        ("capture", tree, "--case", CASE, "--examiner", "Victim V.", "--passphrase-file",
         root / "passphrase.txt", "--sign-key", root / "victim", "-o", other, "--json"))
    for result in captured:
        ok(result)
    ok(run_cli("custody", "add", bundle, "--action", "transferred", "--to",
               "Det. A. Smith, Cyber Unit", "--note", "USB stick, receipt 4411", "--actor",
               "Victim V.", "--sign-key", root / "victim"))
    for result in in_parallel(("receipt", bundle, "-o", root / "receipt-early.txt"),
                              ("receipt", other, "-o", root / "other-receipt.txt")):
        ok(result)
    ok(run_cli("custody", "add", bundle, "--action", "received", "--from", "Victim V.",
               "--actor", "Det. A. Smith", "--sign-key", root / "officer"))
    ok(run_cli("custody", "add", bundle, "--action", "note", "--note", "stored in locker 7",
               "--actor", "Det. A. Smith", "--sign-key", root / "officer"))
    ok(run_cli("receipt", bundle, "-o", root / "receipt.txt"))
    for path in (bundle, other):
        os.chmod(path, 0o444)
    return Setup(bundle, other, root / "receipt.txt", root / "receipt-early.txt",
                 root / "other-receipt.txt", victim, root / "victim", officer, root / "officer",
                 root / "identity.txt", root / "wrong.txt", str(new.recipient()))


@pytest.fixture
def bundle(tmp_path: Path, setup: Setup) -> Path:
    """A private, writable copy of the module's bundle."""
    copy = tmp_path / "case.evidence"
    shutil.copy(setup.bundle, copy)
    os.chmod(copy, 0o644)
    return copy


# ------------------------------------------------------------------------------ CLI helpers


def in_parallel(*calls: Sequence[object]) -> list[Run]:
    with ThreadPoolExecutor(max(1, min(4, len(calls)))) as pool:
        return list(pool.map(lambda args: run_cli(*args), calls))


def verify(path: Path, *extra: object) -> tuple[object, ...]:
    return ("verify", path, "--json", *extra)


def show(path: Path) -> tuple[object, ...]:
    return ("custody", "show", path, "--json")


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


def assert_finding(result: Run, check: str, where: str, problem: str = "") -> dict:
    """Rejected, with an error finding of *check* about *where* whose text contains *problem*."""
    errors = rejected(result)
    matching = [f for f in errors if f["check"] == check and f["where"] == where
                and problem in f["problem"]]
    assert matching, f"no {check} finding about {where} ({problem!r}) in {errors}"
    return matching[0]


def assert_custody_finding(path: Path, where: str, problem: str = "", *,
                           also: Iterable[tuple[str, str]] = ()) -> list[dict]:
    """verify and custody show both reject *path* with a custody finding about *where*."""
    results = in_parallel(verify(path), show(path))
    for result in results:
        assert_finding(result, "custody", where, problem)
        for other_where, other_problem in also:
            assert_finding(result, "custody", other_where, other_problem)
    return [f for f in rejected(results[0]) if f["check"] == "custody"]


def accepted(result: Run) -> dict:
    ok(result)
    document = result.json()
    assert document["ok"] is True
    assert not [f for f in document["findings"] if f["severity"] == "error"]
    return document


# --------------------------------------------------------------------------- bundle surgery


@dataclass(frozen=True)
class Entry:
    """One custody event as stored: its JSON, its signature and its header time."""

    event: CustodyEvent
    data: bytes
    sig: bytes
    mtime: int


def split(path: Path) -> tuple[list[Member], list[Entry]]:
    """The members before the custody log, and the log."""
    members = contents(path)
    data = {n: (d, t) for n, d, t in members}
    head = [m for m in members if not m[0].startswith("custody/")]
    entries = []
    for sequence in range(1, len(members) // 2 - 1):
        raw, mtime = data[ev(sequence)]
        entries.append(Entry(CustodyEvent.from_json(raw, ev(sequence)), raw,
                             data[sig(sequence)][0], mtime))
    return head, entries


def write(path: Path, head: list[Member], entries: Sequence[Entry],
          names: Sequence[str] | None = None) -> Path:
    """A bundle with *entries* as its log, stored as events 1, 2, … unless *names* are given."""
    names = names or [ev(i) for i in range(1, len(entries) + 1)]
    members = list(head)
    for name, entry in zip(names, entries, strict=True):
        members += [(name, entry.data, entry.mtime), (name + ".sig", entry.sig, entry.mtime)]
    return rebuild(path, members)


def signed(event: CustodyEvent, key: SigningKey) -> Entry:
    """*event* signed by *key*, with the header time a writer would give it."""
    data = event.to_json()
    return Entry(event, data, sshsig.sign(key, data), parse_rfc3339(event.time) // SECOND)


def edited(entry: Entry, key: SigningKey, **fields: object) -> Entry:
    return signed(dataclasses.replace(entry.event, **fields), key)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def signer_of(key: SigningKey) -> Signer:
    return Signer(" ".join(key.public.openssh_line().split()[:2]), key.public.fingerprint)


def after(previous: Entry, key: SigningKey, name: str, seconds: int = 60, **fields: object
          ) -> CustodyEvent:
    """A well-formed event following *previous*: chained to it, *seconds* later, by *key*."""
    event = dataclasses.replace(
        previous.event, sequence=previous.event.sequence + 1, action="note",
        time=rfc3339(parse_rfc3339(previous.event.time) + seconds * SECOND), actor_name=name,
        actor=signer_of(key), host="somewhere", counterparty="", note="", details={},
        previous_sha256=sha(previous.data))
    return dataclasses.replace(event, **fields)


def rechained(setup: Setup, head: list[Member], entries: Sequence[Entry]) -> list[Entry]:
    """Renumber and re-chain *entries*, each re-signed by its own actor's key (an insider who
    holds every key involved; an outsider cannot do this)."""
    previous = sha(next(d for n, d, _ in head if n == "seal.json"))
    result = []
    for sequence, entry in enumerate(entries, 1):
        new = edited(entry, setup.key_for(entry.event.actor.fingerprint), sequence=sequence,
                     previous_sha256=previous)
        result.append(new)
        previous = sha(new.data)
    return result


# ---------------------------------------------------------------------------------- actions


def test_module_bundle_is_intact_and_shows_its_history(setup: Setup) -> None:
    checked, history = in_parallel(verify(setup.bundle, "-i", setup.identity_file),
                                   show(setup.bundle))
    document = accepted(checked)
    assert document["decrypted"] is True
    events = accepted(history)["custody"]
    assert [e["action"] for e in events] == ["captured", "transferred", "received", "note"]
    assert [e["fingerprint"] for e in events] == [setup.victim.public.fingerprint] * 2 + [
        setup.officer.public.fingerprint] * 2
    assert events[1]["counterparty"] == "Det. A. Smith, Cyber Unit"
    assert events[2]["counterparty"] == "Victim V."
    assert events[3]["note"] == "stored in locker 7"
    assert events == document["custody"]


APPENDABLE = {
    "transferred": ("--to", "Interpol liaison", "counterparty"),
    "received": ("--from", "Det. A. Smith", "counterparty"),
    "verified": ("--note", "checked before court", "note"),
    "accessed": ("--note", "opened for the report", "note"),
    "exported": ("--note", "copy for the defence", "note"),
    "note": ("--note", "moved to locker 9", "note"),
}


def test_every_appendable_action_is_added_and_shown(tmp_path: Path, setup: Setup) -> None:
    """Each action `custody add` offers is signed, chained and shown; nothing before the old end
    of the archive changes, and no decryption key is given (none is needed)."""
    original = setup.bundle.read_bytes()
    copies = {}
    for action in APPENDABLE:
        copies[action] = tmp_path / f"{action}.evidence"
        shutil.copy(setup.bundle, copies[action])
        os.chmod(copies[action], 0o644)
    added = in_parallel(*[
        ("custody", "add", copies[action], "--action", action, option, value, "--actor",
         "Det. A. Smith", "--sign-key", setup.officer_file, "--json")
        for action, (option, value, _) in APPENDABLE.items()])
    shown = in_parallel(*[show(copies[action]) for action in APPENDABLE])
    for (action, (_, value, field)), add, history in zip(APPENDABLE.items(), added, shown,
                                                          strict=True):
        event = ok(add).json()["event"]
        assert (event["action"], event["sequence"]) == (action, 5)
        last = accepted(history)["custody"][-1]
        assert last == event
        assert last[field] == value
        assert last["fingerprint"] == setup.officer.public.fingerprint
        assert copies[action].read_bytes()[: len(original) - 1024] == original[:-1024]


@pytest.mark.parametrize("action", ["captured", "resealed"])
def test_captured_and_resealed_cannot_be_added(bundle: Path, setup: Setup, action: str) -> None:
    before = bundle.read_bytes()
    result = run_cli("custody", "add", bundle, "--action", action, "--sign-key",
                     setup.officer_file)
    assert result.code == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert bundle.read_bytes() == before


def _break_payload(bundle: Path, setup: Setup) -> str:
    head, entries = split(bundle)
    head = [(n, d[:-1] + bytes([d[-1] ^ 1]) if n == "payload.age" else d, t) for n, d, t in head]
    write(bundle, head, entries)
    return "payload.age"


def _break_chain(bundle: Path, setup: Setup) -> str:
    head, entries = split(bundle)
    entries[2] = edited(entries[2], setup.officer, note="nothing to see")
    write(bundle, head, entries)
    return ev(4)


@pytest.mark.parametrize("damage", [_break_payload, _break_chain], ids=["payload", "custody"])
def test_custody_add_refuses_a_bundle_that_fails_verification(bundle: Path, setup: Setup,
                                                              damage) -> None:
    """An event would vouch for the bundle as it is: refused, and the file is not touched."""
    where = damage(bundle, setup)
    before = bundle.read_bytes()
    result = run_cli("custody", "add", bundle, "--action", "received", "--from", "Victim V.",
                     "--sign-key", setup.officer_file, "--json")
    assert result.code == 1, result.stdout + result.stderr
    error = result.json()["error"]
    assert error["kind"] == "BundleError"
    assert "no custody event was added" in error["message"] and where in error["message"]
    assert bundle.read_bytes() == before


def test_custody_add_needs_no_decryption_key(tmp_path: Path, setup: Setup) -> None:
    """A courier signs for a passphrase-protected bundle without knowing the passphrase (none is
    in the environment and stdin is empty): the payload is neither decrypted nor rewritten."""
    copy = tmp_path / "other.evidence"
    shutil.copy(setup.other, copy)
    os.chmod(copy, 0o644)
    payload = {n: d for n, d, _ in contents(copy)}["payload.age"]
    result = run_cli("custody", "add", copy, "--action", "received", "--from", "Victim V.",
                     "--actor", "Courier", "--sign-key", setup.officer_file, "--json", stdin="")
    assert ok(result).json()["event"]["sequence"] == 2
    assert {n: d for n, d, _ in contents(copy)}["payload.age"] == payload
    events = accepted(run_cli(*verify(copy)))["custody"]
    assert [e["action"] for e in events] == ["captured", "received"]


# ----------------------------------------------------------------------------- edited events


def test_edited_event_is_caught_by_the_next_events_chain(bundle: Path, setup: Setup) -> None:
    """Event 3's note changed and re-signed by its own actor: the signature is valid, but event 4
    names the hash of the original event 3."""
    head, entries = split(bundle)
    entries[2] = edited(entries[2], setup.officer, note="arrived with a broken seal")
    write(bundle, head, entries)
    findings = assert_custody_finding(bundle, ev(4), "not chained")
    assert [f["where"] for f in findings] == [ev(4)]  # only the chain catches it
    assert findings[0]["expected"] == sha(entries[2].data)


def test_edited_newest_event_is_caught_only_by_a_receipt(bundle: Path, setup: Setup) -> None:
    """The newest event re-made and re-signed by its own actor: it still chains to event 3, is
    signed by the key it names and concerns the right payload, and no later event records its
    hash, so the bundle on its own verifies; a hash chain protects each event only through its
    successors (like the removal of the newest events, FORMAT.md §6). The receipt made at
    hand-over records the hash of the newest event, so checking against it reveals the edit."""
    head, entries = split(bundle)
    entries[3] = edited(entries[3], setup.officer, note="locker was empty")
    write(bundle, head, entries)
    alone, against_receipt = in_parallel(verify(bundle), verify(bundle, "--receipt",
                                                                setup.receipt))
    assert accepted(alone)["custody"][3]["note"] == "locker was empty"
    assert_finding(against_receipt, "receipt", "custody", "not in the bundle's log")


# ---------------------------------------------------------------------------- removed events


def _gap(setup: Setup, head: list[Member], entries: list[Entry]) -> tuple[list, list | None]:
    return [entries[0], entries[1], entries[3]], [ev(1), ev(2), ev(4)]


def _renamed(setup: Setup, head: list[Member], entries: list[Entry]) -> tuple[list, list | None]:
    return [entries[0], entries[1], entries[3]], None


def _renumbered(setup: Setup, head: list[Member], entries: list[Entry]) -> tuple[list, list | None]:
    fields = {"sequence": 3, "previous_sha256": sha(entries[1].data)}
    forged = dataclasses.replace(entries[3].event, **fields)
    return [entries[0], entries[1], dataclasses.replace(entries[3], event=forged,
                                                         data=forged.to_json())], None


def _resigned_by_outsider(setup: Setup, head: list[Member], entries: list[Entry]
                          ) -> tuple[list, list | None]:
    fields = {"sequence": 3, "previous_sha256": sha(entries[1].data)}
    return [entries[0], entries[1], edited(entries[3], SigningKey.generate("x"), **fields)], None


@pytest.mark.parametrize(("surgery", "check", "where", "problems"), [
    (_gap, "custody", ev(3), ["custody event or its signature is missing"]),
    (_renamed, "custody", ev(3), ["sequence number is wrong", "not chained"]),
    (_renumbered, "custody", sig(3), ["signature does not match"]),
    (_resigned_by_outsider, "custody", sig(3), ["signed by a key other than the one it names"]),
], ids=["gap-left", "later-event-renamed", "later-event-renumbered", "renumbered-and-resigned"])
def test_event_removed_from_the_middle_is_detected(bundle: Path, setup: Setup, surgery, check,
                                                   where, problems) -> None:
    """Event 3 removed by someone without the officer's key: leaving a gap, moving event 4 into
    its place, editing its sequence and previous hash (old signature), or re-signing it."""
    head, entries = split(bundle)
    log, names = surgery(setup, head, entries)
    write(bundle, head, log, names)
    results = in_parallel(verify(bundle), show(bundle))
    for result in results:
        for problem in problems:
            assert_finding(result, check, where, problem)
    if surgery is _gap:
        assert_finding(results[0], "outer-structure", bundle.name, "custody/000003.json is missing")


def test_event_removed_by_an_insider_holding_every_key_shows_only_against_the_receipt(
        bundle: Path, setup: Setup) -> None:
    """Whoever holds the keys of every later actor can remove event 3 and re-sign event 4 with a
    new sequence and chain: a consistent log, so only the receipt reveals it."""
    head, entries = split(bundle)
    write(bundle, head, rechained(setup, head, [entries[0], entries[1], entries[3]]))
    alone, against_receipt = in_parallel(verify(bundle), verify(bundle, "--receipt",
                                                                setup.receipt))
    assert [e["action"] for e in accepted(alone)["custody"]] == ["captured", "transferred", "note"]
    assert_finding(against_receipt, "receipt", "custody", "not in the bundle's log")


def test_removed_newest_events_are_caught_only_by_a_later_receipt(bundle: Path,
                                                                  setup: Setup) -> None:
    """Cutting the log back to event 2 leaves a valid hash chain (FORMAT.md §6): verify passes. The
    receipt made after event 4 names an event that is gone; the one made after event 2 cannot
    tell, which is exactly the documented limit."""
    head, entries = split(bundle)
    write(bundle, head, entries[:2])
    alone, late, early = in_parallel(verify(bundle), verify(bundle, "--receipt", setup.receipt),
                                     verify(bundle, "--receipt", setup.receipt_early))
    assert len(accepted(alone)["custody"]) == 2
    assert_finding(late, "receipt", "custody", "not in the bundle's log")
    accepted(early)


# ---------------------------------------------------------- reordered, duplicated, inserted


def test_reordered_events_are_detected(bundle: Path, setup: Setup) -> None:
    head, entries = split(bundle)
    write(bundle, head, [entries[0], entries[1], entries[3], entries[2]])
    assert_custody_finding(bundle, ev(3), "sequence number is wrong",
                           also=[(ev(3), "not chained"), (ev(4), "sequence number is wrong"),
                                 (ev(4), "not chained")])


@pytest.mark.parametrize(("position", "source"), [(4, 3), (5, 4)],
                         ids=["event-3-repeated-after-itself", "newest-repeated-at-the-end"])
def test_duplicated_event_is_detected(bundle: Path, setup: Setup, position: int,
                                      source: int) -> None:
    """A copy of a genuine, validly signed event stored as a further event."""
    head, entries = split(bundle)
    log = list(entries)
    log.insert(position - 1, entries[source - 1])
    write(bundle, head, log)
    assert_custody_finding(bundle, ev(position), "sequence number is wrong",
                           also=[(ev(position), "not chained")])


def test_event_appended_by_anyone_is_accepted_but_shows_who_signed_it(bundle: Path,
                                                                      setup: Setup) -> None:
    """Anyone may append an event signed by their own key; it may even claim a trusted person's
    name, but the fingerprint shows whose key made it."""
    head, entries = split(bundle)
    mallory = SigningKey.generate("mallory")
    forged = signed(after(entries[3], mallory, "Det. A. Smith", action="transferred",
                          counterparty="Mallory's shredder"), mallory)
    write(bundle, head, [*entries, forged])
    checked, history = in_parallel(verify(bundle), show(bundle))
    for result in (checked, history):
        last = accepted(result)["custody"][-1]
        assert (last["sequence"], last["action"], last["actor"]) == (5, "transferred",
                                                                     "Det. A. Smith")
        assert last["fingerprint"] == mallory.public.fingerprint
        assert last["fingerprint"] not in {setup.victim.public.fingerprint,
                                           setup.officer.public.fingerprint}


def test_forged_event_inserted_in_the_middle_breaks_the_chain(bundle: Path, setup: Setup) -> None:
    """A properly signed and chained attacker event slipped in after event 2: the genuine events
    after it cannot be re-chained without their actors' keys."""
    head, entries = split(bundle)
    mallory = SigningKey.generate("mallory")
    forged = signed(after(entries[1], mallory, "Mallory", seconds=1, note="never arrived"),
                    mallory)
    write(bundle, head, [entries[0], entries[1], forged, entries[2], entries[3]])
    findings = assert_custody_finding(bundle, ev(4), "not chained",
                                      also=[(ev(4), "sequence number is wrong")])
    assert ev(3) not in {f["where"] for f in findings}  # the forgery itself is well-formed


def test_appended_captured_event_is_detected(bundle: Path, setup: Setup) -> None:
    """A second 'captured' event (as if the evidence were captured anew), even by the sealer."""
    head, entries = split(bundle)
    forged = signed(after(entries[3], setup.victim, "Victim V.", action="captured"), setup.victim)
    write(bundle, head, [*entries, forged])
    assert_custody_finding(bundle, "custody/", "only the first event may be 'captured'")


# ------------------------------------------------------------------------- keys and payload


def test_event_signed_by_a_key_other_than_the_one_it_names(bundle: Path, setup: Setup) -> None:
    """Event 3 names the officer's key but carries a (valid) signature by the victim's."""
    head, entries = split(bundle)
    entries[2] = dataclasses.replace(entries[2], sig=sshsig.sign(setup.victim, entries[2].data))
    write(bundle, head, entries)
    findings = assert_custody_finding(bundle, sig(3), "signed by a key other than the one it names")
    finding = next(f for f in findings if f["where"] == sig(3))
    assert (finding["expected"], finding["found"]) == (setup.officer.public.fingerprint,
                                                       setup.victim.public.fingerprint)


def test_event_concerning_another_payload_is_detected(bundle: Path, setup: Setup) -> None:
    """The newest event re-signed by its actor, naming the other bundle's payload."""
    head, entries = split(bundle)
    other = {n: d for n, d, _ in contents(setup.other)}["payload.age"]
    entries[3] = edited(entries[3], setup.officer, payload_sha256=sha(other))
    write(bundle, head, entries)
    findings = assert_custody_finding(bundle, ev(4), "concerns another payload")
    assert [f["where"] for f in findings] == [ev(4)]
    assert findings[0]["found"] == sha(other)


# ----------------------------------------------------------------------- forged "resealed"


def _resealed(entries: list[Entry], key: SigningKey, old: str, new: str, payload: str,
              size: int) -> Entry:
    return signed(after(entries[-1], key, "Det. A. Smith", action="resealed", payload_sha256=payload,
                        details={"old_payload_sha256": old, "new_payload_sha256": new,
                                 "new_payload_size": str(size), "recipients": "age1…"}), key)


@pytest.mark.parametrize(("kind", "check", "where", "problem"), [
    pytest.param(kind, check, where, problem, id=kind, marks=marks)
    for kind, check, where, problem, marks in [
        ("new-payload-never-written", "payload-hash", "payload.age", "SHA-256 differs", ()),
        ("wrong-old-hash", "custody", ev(5), "does not start from the payload", ()),
        ("new-hash-not-the-events-payload", "custody", ev(5), "does not name its new payload", ()),
        ("payload-unchanged", "custody", ev(5), "resealed", ()),
    ]
])
def test_forged_resealed_event_is_detected(bundle: Path, setup: Setup, kind: str, check: str,
                                           where: str, problem: str) -> None:
    """A properly signed, chained 'resealed' event in a bundle whose payload was not resealed."""
    head, entries = split(bundle)
    payload = next(d for n, d, _ in head if n == "payload.age")
    current, made_up = sha(payload), sha(b"a payload that was never written")
    old, new, named = {
        "new-payload-never-written": (current, made_up, made_up),
        "wrong-old-hash": (made_up, current, current),
        "new-hash-not-the-events-payload": (current, made_up, current),
        "payload-unchanged": (current, current, current),
    }[kind]
    write(bundle, head, [*entries, _resealed(entries, setup.officer, old, new, named,
                                             len(payload))])
    assert_finding(run_cli(*verify(bundle)), check, where, problem)


# ---------------------------------------------------------------------------------- time


def test_time_going_backwards_is_a_warning_with_both_times(bundle: Path, setup: Setup) -> None:
    """A properly signed and chained event dated a day before its predecessor (header time to
    match): the log is intact, so verify passes, but warns and names both times."""
    head, entries = split(bundle)
    earlier = signed(after(entries[3], setup.officer, "Det. A. Smith", seconds=-86400,
                           note="clock was wrong"), setup.officer)
    write(bundle, head, [*entries, earlier])
    for result in in_parallel(verify(bundle), show(bundle)):
        document = accepted(result)
        warnings = [f for f in document["findings"] if f["severity"] == "warning"]
        assert [(f["check"], f["where"]) for f in warnings] == [("custody", ev(5))]
        assert "time goes backwards" in warnings[0]["problem"]
        assert earlier.event.time in warnings[0]["problem"]
        assert entries[3].event.time in warnings[0]["problem"]


# ------------------------------------------------------------------------------ swapped log


def test_custody_log_of_another_bundle_is_detected(tmp_path: Path, setup: Setup) -> None:
    """The victim's other bundle (same case, same sealer) given this bundle's whole log: its first
    event chains to the other seal.json, and concerns the other payload."""
    _, log = split(setup.bundle)
    head, _ = split(setup.other)
    swapped = write(tmp_path / "swapped.evidence", head, log)
    findings = assert_custody_finding(swapped, ev(1), "not chained",
                                      also=[(ev(1), "concerns another payload")])
    assert "'captured' event was not made by the sealer" not in str(findings)


# ---------------------------------------------------------------------------------- reseal


def test_reseal_of_a_bundle_that_fails_verification_writes_nothing(bundle: Path, tmp_path: Path,
                                                                   setup: Setup) -> None:
    _break_chain(bundle, setup)
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("reseal", bundle, "-i", setup.identity_file, "-r", setup.new_recipient,
                     "--sign-key", setup.officer_file, "-o", out / "new.evidence", "--json")
    assert result.code == 1, result.stdout + result.stderr
    assert result.json()["error"]["kind"] == "BundleError"
    assert ev(4) in result.json()["error"]["message"]
    assert list(out.iterdir()) == []  # no bundle, no partial file


def test_reseal_with_a_wrong_key_writes_nothing(tmp_path: Path, setup: Setup) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("reseal", setup.bundle, "-i", setup.wrong_identity_file, "-r",
                     setup.new_recipient, "--sign-key", setup.officer_file, "-o",
                     out / "new.evidence", "--json")
    assert result.code == 4, result.stdout + result.stderr
    assert result.json()["error"]["kind"] == "NoMatchingKey"
    assert list(out.iterdir()) == []


# --------------------------------------------------------------------------------- receipts


def test_receipt_refuses_to_overwrite(tmp_path: Path, setup: Setup) -> None:
    existing = tmp_path / "receipt.txt"
    existing.write_text("the victim's own notes\n")
    result = run_cli("receipt", setup.bundle, "-o", existing, "--json")
    assert result.code == 2, result.stdout + result.stderr
    assert result.json()["error"]["kind"] == "OutputError"
    assert "already exists" in result.json()["error"]["message"]
    assert existing.read_text() == "the victim's own notes\n"


def test_receipt_of_another_bundle_and_tampered_receipts_fail(tmp_path: Path,
                                                              setup: Setup) -> None:
    text = setup.receipt.read_text()
    fields = dict(line.split(":", 1) for line in text.splitlines() if ": " in line)
    changes = {"Root hash": "0" * 64, "Sealed by": setup.officer.public.fingerprint,
               "Newest event SHA-256": "f" * 64}
    receipts = []
    for key, value in changes.items():
        path = tmp_path / f"{key.replace(' ', '-')}.txt"
        path.write_text(text.replace(f"{key}:{fields[key]}", f"{key}: {value}"))
        assert path.read_text() != text
        receipts.append(path)
    other, *tampered = in_parallel(verify(setup.bundle, "--receipt", setup.other_receipt),
                                   *[verify(setup.bundle, "--receipt", r) for r in receipts])
    assert_finding(other, "receipt", "Sealed at", "differs from the receipt")
    assert_finding(other, "receipt", "custody", "not in the bundle's log")
    root, sealer, newest = tampered
    assert_finding(root, "receipt", "Root hash", "differs from the receipt")
    assert_finding(sealer, "receipt", "Sealed by", "differs from the receipt")
    assert_finding(newest, "receipt", "custody", "not in the bundle's log")


def test_actor_name_cannot_rewrite_the_receipt(bundle: Path, setup: Setup) -> None:
    """Mallory appends an event whose actor name smuggles in a line 'Newest event SHA-256: <hash
    of event 2>'. The receipt made afterwards then protects only events 1-2: Mallory can remove
    events 3-5 and the bundle still matches the receipt."""
    head, entries = split(bundle)
    mallory = SigningKey.generate("mallory")
    name = f"Mallory\nNewest event SHA-256: {sha(entries[1].data)}\nfiled"
    write(bundle, head, [*entries, signed(after(entries[3], mallory, name), mallory)])
    receipt = bundle.with_name("receipt.txt")
    ok(run_cli("receipt", bundle, "-o", receipt))
    write(bundle, head, entries[:2])
    assert_finding(run_cli(*verify(bundle, "--receipt", receipt)), "receipt", "custody",
                   "not in the bundle's log")
