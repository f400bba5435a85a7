"""The story the custody feature exists for, end to end through the CLI:
victim captures → transfers → officer receives → reseals for a foreign authority → that authority
verifies and extracts, with the whole history intact and checkable against the victim's receipt."""

from __future__ import annotations

from pathlib import Path

from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from tests.support.cli import run_cli


def make_person(folder: Path, name: str) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    SigningKey.generate(name).save(folder / f"{name}_ed25519")
    identity = age.X25519Identity.generate()
    (folder / f"{name}.age").write_text(f"{identity}\n")
    (folder / f"{name}.age.pub").write_text(f"{identity.recipient()}\n")
    return {"sign": folder / f"{name}_ed25519", "pub": folder / f"{name}_ed25519.pub",
            "identity": folder / f"{name}.age", "recipient": folder / f"{name}.age.pub"}


def test_victim_to_officer_to_foreign_authority(tmp_path: Path, home: Path) -> None:
    victim = make_person(tmp_path / "victim", "victim")
    officer = make_person(tmp_path / "officer", "officer")
    foreign = make_person(tmp_path / "foreign", "foreign")
    evidence = tmp_path / "screenshots"
    evidence.mkdir()
    (evidence / "chat.png").write_bytes(b"\x89PNG fake screenshot")
    (evidence / "statement.csv").write_text("2026-11-16,-499.00,EUR\n")
    bundle = tmp_path / "case.evidence"

    # The victim seals the evidence for the local police unit and keeps a receipt.
    assert run_cli("capture", evidence, "--case", "FRAUD-2026-0117", "--examiner", "Victim V.",
                   "-R", officer["recipient"], "--sign-key", victim["sign"], "-o", bundle).code == 0
    transfer = run_cli("custody", "add", bundle, "--action", "transferred", "--to",
                       "Det. A. Smith, Cyber Unit", "--note", "USB stick, receipt 4411",
                       "--actor", "Victim V.", "--sign-key", victim["sign"], "--json")
    assert transfer.code == 0, transfer.stderr
    receipt = tmp_path / "receipt.txt"
    assert run_cli("receipt", bundle, "-o", receipt).code == 0
    assert "FRAUD-2026-0117" in receipt.read_text()

    # The officer signs for it on arrival, before (and without) opening it.
    received = run_cli("custody", "add", bundle, "--action", "received", "--from", "Victim V.",
                       "--actor", "Det. A. Smith", "--sign-key", officer["sign"])
    assert received.code == 0, received.stderr
    assert run_cli("verify", bundle, "--receipt", receipt).code == 0

    # ... and reseals it for the foreign authority under an MLA request.
    resealed = tmp_path / "case-for-interpol.evidence"
    result = run_cli("reseal", bundle, "-i", officer["identity"], "-R", foreign["recipient"],
                     "--sign-key", officer["sign"], "--actor", "Det. A. Smith",
                     "--note", "MLA request 2026/55", "-o", resealed, "--json")
    assert result.code == 0, result.stderr
    assert result.json()["event"]["action"] == "resealed"

    # The officer's key no longer opens the new bundle; the foreign authority's does.
    assert run_cli("verify", resealed, "-i", officer["identity"]).code == 4
    # Trusting the victim alone: intact, but the officer's events are not the victim's word.
    partly = run_cli("verify", resealed, "-i", foreign["identity"], "--trusted-key",
                     victim["pub"], "--json")
    assert partly.code == 6, partly.stdout
    assert partly.json()["untrusted_entries"] == ["custody/000003.json", "custody/000004.json"]
    checked = run_cli("verify", resealed, "-i", foreign["identity"], "--trusted-key",
                      victim["pub"], "--trusted-key", officer["pub"], "--record", "--sign-key",
                      foreign["sign"], "--actor", "Foreign Authority", "--json")
    assert checked.code == 0, checked.stdout
    opened = tmp_path / "opened"
    extracted = run_cli("extract", resealed, "-i", foreign["identity"], "-o", opened, "--record",
                        "--sign-key", foreign["sign"], "--actor", "Foreign Authority", "--json")
    assert extracted.code == 0, extracted.stdout
    assert (opened / "data" / "screenshots" / "chat.png").read_bytes() == b"\x89PNG fake screenshot"

    history = run_cli("custody", "show", resealed, "--json")
    assert history.code == 0
    actions = [e["action"] for e in history.json()["custody"]]
    assert actions == ["captured", "transferred", "received", "resealed", "verified", "accessed"]
    events = history.json()["custody"]
    assert events[1]["counterparty"] == "Det. A. Smith, Cyber Unit"
    assert events[3]["details"]["old_payload_sha256"] == events[0]["payload_sha256"]
    assert events[4]["payload_sha256"] == events[3]["details"]["new_payload_sha256"]

    # The receipt made before the reseal still identifies the evidence and its history.
    assert run_cli("verify", resealed, "--receipt", receipt).code == 0
