"""The guided capture session, driven through the injectable prompter: every answer, every skip,
Ctrl-C midway, and the places it suggests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from evidencekit.capture import CaseInfo
from evidencekit.cli import guided
from evidencekit.errors import ExitCode
from evidencekit.verify import verify
from tests.victim.conftest import PASSPHRASE, ScriptedPrompter, run_cli

BERLIN = (ZoneInfo("Europe/Berlin"), "Europe/Berlin")


def defaults(victim_home: Path, out: Path, system: str = "Linux") -> guided.GuidedDefaults:
    return guided.GuidedDefaults(home=victim_home, system=system, cwd=out, zone=BERLIN)


def session(prompter: ScriptedPrompter, victim_home: Path, out: Path,
            keys: dict[str, Path], **kw: object) -> int:
    return guided.guided_capture(prompter, defaults(victim_home, out, **kw),  # type: ignore[arg-type]
                                 CaseInfo("EK-TEST", "Jane Victim"), "EK-TEST", keys["signer"],
                                 None)


ALL_ANSWERS = [
    "2",  # online fraud
    "I paid for a bike that never came.",
    "2026-11-14 10:30",  # started (Berlin time)
    "2026-11-16 19:05 +01:00",  # noticed
    "online banking at Example Bank", "",  # accounts
    "laptop", "phone", "",  # devices
    "450,00 €", "Example Bank", "2026-11-15", "TX-4411",  # a loss
    "GBP 35.50", "PayPal", "", "",
    "",  # no more losses
    "+44 7700 900123", "bike.seller@example.net", "GB82 WEST 1234 5698 7654 32", "",
    "2",  # leave out Downloads
    "~/Documents/seller.eml",  # add a file (~ is the home folder)
    "",  # keep the list
    "1", PASSPHRASE, PASSPHRASE,  # passphrase, twice
    "",  # default output
    "yes",
]


def test_all_answers_make_a_bundle_with_the_incident_record(tmp_path, victim_home, keys,
                                                            monkeypatch):
    monkeypatch.setenv("HOME", str(victim_home))
    out = tmp_path / "out"
    out.mkdir()
    prompter = ScriptedPrompter(ALL_ANSWERS)
    assert session(prompter, victim_home, out, keys) == ExitCode.OK
    assert prompter.answers == []  # every question asked, in this order
    bundle = out / "EK-TEST.evidence"
    assert bundle.exists()
    text = prompter.transcript
    assert "don't delete" in text.lower() or "Keep receipts" in text
    assert "nothing is saved until you say yes" in text
    assert "recorded as phone number" in text and "recorded as iban" in text.lower()
    from evidencekit.crypto import age

    report = verify(bundle, [age.ScryptIdentity(PASSPHRASE.encode())])
    assert report.ok and report.decrypted, report.findings.items
    assert {e["path"] for e in report.manifest.entries()} == {
        "Screenshots", "Screenshots/chat.png", "seller.eml"}
    record = json.loads(report.tag_files["evidencekit/incident.json"])
    assert record["incident_type"] == "online-fraud"
    assert record["started"] == {"time": "2026-11-14T10:30:00+01:00",
                                 "time_utc": "2026-11-14T09:30:00.000000000Z"}
    assert record["time_zone"] == "Europe/Berlin"
    assert [(x["amount"], x["currency"], x["institution"]) for x in record["losses"]] == [
        ("450.00", "EUR", "Example Bank"), ("35.50", "GBP", "PayPal")]
    assert [x["kind"] for x in record["identifiers"]] == ["phone", "email", "iban"]
    assert record["affected_devices"] == ["laptop", "phone"]
    assert "evidencekit report" in text  # the next step is suggested


class SkipEverything(ScriptedPrompter):
    def __init__(self) -> None:
        super().__init__([])

    def _next(self, question: str) -> str:
        self.asked.append(question)
        return ""


def test_every_question_can_be_skipped_and_then_nothing_is_written(tmp_path, victim_home, keys):
    out = tmp_path / "out"
    out.mkdir()
    prompter = SkipEverything()
    assert session(prompter, victim_home, out, keys) == ExitCode.OK
    assert len(prompter.asked) >= 11 and "Make the bundle now? (yes/no)" not in prompter.asked
    assert "Nothing was written" in prompter.transcript
    assert "no way to protect it" in prompter.transcript  # says why
    assert os.listdir(out) == []


def test_no_at_the_summary_writes_nothing(tmp_path, victim_home, keys):
    out = tmp_path / "out"
    out.mkdir()
    answers = [*ALL_ANSWERS[:-1], ""]  # Enter at "Make the bundle now?" means no
    assert session(ScriptedPrompter(answers), victim_home, out, keys) == ExitCode.OK
    assert os.listdir(out) == []


@pytest.mark.parametrize("stop_at", [1, 12, len(ALL_ANSWERS) - 2, len(ALL_ANSWERS) - 1])
def test_ctrl_c_midway_leaves_nothing_behind(tmp_path, victim_home, keys, home, stop_at):
    out = tmp_path / "out"
    out.mkdir()
    answers = [*ALL_ANSWERS[:stop_at], KeyboardInterrupt()]
    with pytest.raises(KeyboardInterrupt):
        guided.guided_capture(ScriptedPrompter(answers), defaults(victim_home, out),
                              CaseInfo("EK-TEST", "Jane"), "EK-TEST", None, None)
    assert os.listdir(out) == []
    assert not (home / "evidencekit").exists()  # not even the personal signing key


def test_the_investigators_key_instead_of_a_passphrase(tmp_path, victim_home, keys):
    out = tmp_path / "out"
    out.mkdir()
    index = ALL_ANSWERS.index("1")
    recipient = keys["recipient"].read_text().strip()
    answers = [*ALL_ANSWERS[:index], "2", "not a key", str(keys["recipient"]), "", "yes"]
    prompter = ScriptedPrompter(answers)
    assert session(prompter, victim_home, out, keys) == ExitCode.OK
    assert "not a key evidencekit can use" in prompter.transcript
    assert recipient[:20] in prompter.transcript  # the summary names the key
    result = run_cli("verify", out / "EK-TEST.evidence", "-i", keys["identity"])
    assert result.code == 0, result.stderr


def test_mistakes_are_explained_and_asked_again(tmp_path, victim_home, keys):
    out = tmp_path / "out"
    out.mkdir()
    answers = ["9", "", "", "yesterday", "", "", "", "", "12 EURO", "lots", "", "",
               str(tmp_path / "missing"), "", "1", "short", PASSPHRASE, "different",
               PASSPHRASE, PASSPHRASE, str(victim_home / "Downloads" / "statement.csv"),
               str(tmp_path / "nowhere" / "x.evidence"), "", "no"]
    prompter = ScriptedPrompter(answers)
    assert session(prompter, victim_home, out, keys) == ExitCode.OK
    assert prompter.answers == []
    text = prompter.transcript
    for words in ("type a number from 1 to 7", "not a date and time", "ISO 4217",
                  "write the amount and the currency", "Not found", "at least 8 characters",
                  "did not match", "already exists", "does not exist"):
        assert words in text, words


def test_suggested_places_depend_on_the_system_and_the_incident(tmp_path):
    home = tmp_path / "h"
    for folder in ("Desktop", "Downloads", "Pictures/Screenshots", "OneDrive/Pictures/Screenshots",
                   "Documents"):
        (home / folder).mkdir(parents=True)
    (home / "Documents" / "bank.eml").write_text("x")
    (home / "Documents" / "notes.txt").write_text("x")
    linux = guided.suggestions("phishing", home, "Linux")
    assert [s.path.relative_to(home).as_posix() for s in linux] == [
        "Pictures/Screenshots", "Downloads", "Desktop", "Documents/bank.eml"]
    assert all(s.selected for s in linux)
    mac = guided.suggestions("phishing", home, "Darwin")
    assert mac[0].path == home / "Desktop" and "macOS" in mac[0].why
    windows = guided.suggestions("harassment", home, "Windows")
    assert home / "OneDrive" / "Pictures" / "Screenshots" in [s.path for s in windows]
    ransomware = guided.suggestions("ransomware-extortion", home, "Linux")
    assert ransomware[0].path == home / "Desktop" and "ransom note" in ransomware[0].why
    empty = guided.suggestions(None, tmp_path / "nobody", "Linux")
    assert empty and not any(s.selected for s in empty)  # shown, but nothing that isn't there


@pytest.mark.parametrize(("text", "expected"), [
    ("499.90 EUR", ("499.90", "EUR")), ("EUR 499,90", ("499.90", "EUR")),
    ("€499.90", ("499.90", "EUR")), ("£20", ("20", "GBP")), ("12 chf", ("12", "CHF")),
])
def test_money_as_people_write_it(text, expected):
    assert guided.parse_money(text) == expected


@pytest.mark.parametrize(("value", "kind"), [
    ("scam@example.com", "email"), ("+44 7700 900123", "phone"),
    ("https://fake-bank.example/login", "url"), ("www.fake.example", "url"),
    ("GB82 WEST 1234 5698 7654 32", "iban"), ("0x52908400098527886E0F7030069857D2E4169EE7", "wallet"),
    ("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "wallet"), ("@scammer_99", "username"),
    ("order 55-AB", "other"),
])
def test_identifier_kinds_are_guessed(value, kind):
    assert guided.guess_identifier_kind(value) == kind


def test_without_a_terminal_capture_needs_sources(tmp_path, home):
    result = run_cli("capture")
    assert result.code == 2
    assert "nothing to capture" in result.stderr and "--passphrase" in result.stderr
    assert "guided session" in result.stderr
    as_json = run_cli("capture", "--json")
    assert as_json.code == 2 and as_json.json()["error"]["kind"] == "UsageError"
