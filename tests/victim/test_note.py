"""evidencekit note: signed, public additions to the incident record, written only when confirmed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import run_cli


@pytest.fixture
def bundle(tmp_path: Path, home: Path, keys: dict[str, Path]) -> Path:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "chat.png").write_bytes(b"\x89PNG")
    out = tmp_path / "case.evidence"
    result = run_cli("capture", evidence, "-R", keys["recipient"], "--sign-key", keys["signer"],
                     "-o", out)
    assert result.code == 0, result.stderr
    return out


def test_without_a_terminal_a_note_needs_yes(bundle, keys):
    before = bundle.read_bytes()
    result = run_cli("note", bundle, "--text", "bank called", "--sign-key", keys["signer"])
    assert result.code == 2
    assert "--yes" in result.stderr and "public" in result.stderr
    assert "Traceback" not in result.stderr
    assert bundle.read_bytes() == before


@pytest.mark.parametrize(("args", "details"), [
    (["--text", "Reported to the police, ref 2026/1234"], {"kind": "note"}),
    (["--kind", "timeline", "--time", "2026-11-17 09:00 +01:00", "--text", "card blocked"],
     {"kind": "timeline", "time": "2026-11-17T09:00:00+01:00",
      "time_utc": "2026-11-17T08:00:00.000000000Z"}),
    (["--kind", "identifier", "--id-kind", "email", "--value", "x@scam.example"],
     {"kind": "identifier", "identifier_kind": "email", "value": "x@scam.example"}),
    (["--kind", "loss", "--amount", "35.50", "--currency", "gbp", "--date", "2026-11-18",
      "--institution", "PayPal", "--reference", "PP-1"],
     {"kind": "loss", "amount": "35.50", "currency": "GBP", "date": "2026-11-18",
      "institution": "PayPal", "reference": "PP-1"}),
    (["--kind", "loss", "--amount", "1,5", "--currency", "EUR"],  # a decimal comma, as --loss
     {"kind": "loss", "amount": "1.5", "currency": "EUR", "date": "",
      "institution": "", "reference": ""}),
    (["--kind", "loss", "--amount", "1.250,00", "--currency", "EUR", "--date", "18.11.2026"],
     {"kind": "loss", "amount": "1250.00", "currency": "EUR", "date": "2026-11-18",
      "institution": "", "reference": ""}),  # German forms, stored one way
    (["--kind", "timeline", "--time", "17.11.2026 09:00 +01:00", "--text", "card blocked"],
     {"kind": "timeline", "time": "2026-11-17T09:00:00+01:00",
      "time_utc": "2026-11-17T08:00:00.000000000Z"}),
    (["--kind", "timeline", "--time", "2026-11-17", "--text", "card blocked"],  # a date alone
     {"kind": "timeline", "time": "2026-11-17", "time_utc": ""}),
])
def test_note_is_a_signed_custody_event(bundle, keys, args, details):
    result = run_cli("note", bundle, *args, "--yes", "--actor", "Jane", "--sign-key",
                     keys["signer"], "--json")
    assert result.code == 0, result.stderr
    event = result.json()["event"]
    assert event["action"] == "note" and event["details"] == details
    shown = run_cli("custody", "show", bundle, "--json")
    assert shown.code == 0  # signature and chain checked
    assert shown.json()["custody"][-1]["details"] == details
    assert run_cli("verify", bundle, "-i", keys["identity"]).code == 0


@pytest.mark.parametrize(("args", "words"), [
    (["--kind", "loss", "--amount", "12", "--currency", "EURO"], "ISO 4217"),
    (["--kind", "loss", "--currency", "EUR"], "amount"),
    (["--kind", "timeline", "--text", "x"], "--time"),
    (["--kind", "timeline", "--time", "soon", "--text", "x"], "not a date"),
    (["--kind", "identifier", "--id-kind", "iban", "--value", "DE00 1"], "IBAN"),
    (["--text", "x", "--amount", "5"], "--amount cannot be used with --kind note"),
    (["--kind", "note"], "error: a note needs --text"),
    (["--text", ""], "error: a note needs --text"),
    (["--kind", "timeline", "--time", "2026-11-17 9:00 Mars/Base", "--text", "x"], "--time:"),
    (["--kind", "loss", "--amount", "1.2.3", "--currency", "EUR"], "--amount: '1.2.3'"),
    (["--kind", "loss", "--amount", "5", "--currency", "EURO"], "--currency: 'EURO'"),
    (["--kind", "loss", "--amount", "5", "--currency", "EUR", "--date", "17/11/2026"],
     "--date: '17/11/2026'"),
    (["--kind", "loss", "--amount", "1.250", "--currency", "EUR"],
     "--amount: '1.250' can be read two ways"),
    (["--kind", "identifier", "--value", "x@scam.example"], "--id-kind is missing"),
    (["--kind", "identifier", "--id-kind", "email"], "--value is missing"),
])
def test_bad_notes_are_usage_errors_naming_what_to_fix(bundle, keys, args, words):
    before = bundle.read_bytes()
    result = run_cli("note", bundle, *args, "--yes", "--sign-key", keys["signer"])
    assert result.code == 2, result.stderr
    assert words in " ".join(result.stderr.split()) and "Traceback" not in result.stderr
    assert "note note" not in result.stderr
    for field in ("'time'", "loss.", "identifier.", "field '"):  # the flags typed, not fields
        assert field not in result.stderr, field
    assert bundle.read_bytes() == before


def test_no_note_on_a_damaged_bundle(bundle, keys):
    data = bytearray(bundle.read_bytes())
    data[2000] ^= 1  # inside payload.age
    bundle.write_bytes(bytes(data))
    result = run_cli("note", bundle, "--text", "x", "--yes", "--sign-key", keys["signer"])
    assert result.code == 1 and "no note was added" in result.stderr
