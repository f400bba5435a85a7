"""The guided capture session, driven through the injectable prompter: every answer, every skip,
Ctrl-C midway, and the places it suggests."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from evidencekit import incident as inc
from evidencekit.capture import CaseInfo
from evidencekit.cli import guided
from evidencekit.crypto import age
from evidencekit.errors import ExitCode, InputError, Interrupted
from evidencekit.verify import verify
from tests.support.cli import run_cli
from tests.support.tools import atimes, stale_atimes
from tests.support.victim import PASSPHRASE, ScriptedPrompter

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
    "2026-11-15 08:12", "Paid 450 EUR by bank transfer",  # what happened when
    "2026-11-15", "The seller stopped answering",  # a date without a time is fine
    "",  # no more events
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
    "Jane Q. Victim",  # the name for the record (the default is the case's, "Jane Victim")
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
    assert "recorded as phone number" in text and "recorded as IBAN" in text
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
    assert record["timeline"] == [
        {"time": "2026-11-15T08:12:00+01:00", "time_utc": "2026-11-15T07:12:00.000000000Z",
         "description": "Paid 450 EUR by bank transfer"},
        {"time": "2026-11-15", "time_utc": None, "description": "The seller stopped answering"}]
    assert "2026-11-15: The seller stopped answering" in text  # in the summary
    assert "evidencekit report" in text and "-p -o report.pdf" in text  # the next step
    # the name typed is who captured it: in the summary, the custody log and the manifest
    assert any("Your name:" in line and "Jane Q. Victim" in line for line in prompter.said)
    assert [e.actor_name for e in report.events] == ["Jane Q. Victim"]
    assert report.manifest.fields["case"]["examiner"] == "Jane Q. Victim"


NAME_QUESTION = "Your name, as it should appear in the record:"


def test_enter_at_the_name_keeps_the_default(tmp_path, victim_home, keys):
    out = tmp_path / "out"
    out.mkdir()
    index = ALL_ANSWERS.index("Jane Q. Victim")
    hints: dict[str, str] = {}

    class WithHints(ScriptedPrompter):
        def ask(self, question: str, hint: str = "") -> str:
            hints[question] = hint
            return super().ask(question, hint)

    prompter = WithHints([*ALL_ANSWERS[:index], "", *ALL_ANSWERS[index + 1:]])
    assert session(prompter, victim_home, out, keys) == ExitCode.OK
    assert NAME_QUESTION in prompter.asked and prompter.answers == []
    assert "Enter for Jane Victim" in hints[NAME_QUESTION]
    assert "not encrypted" in hints[NAME_QUESTION]  # the custody log is public
    assert any("Your name:" in line and "Jane Victim" in line for line in prompter.said)
    bundle = out / "EK-TEST.evidence"
    assert [e.actor_name for e in verify(bundle).events] == ["Jane Victim"]


def test_the_name_from_examiner_is_not_asked_again(tmp_path, victim_home, keys):
    out = tmp_path / "out"
    out.mkdir()
    index = ALL_ANSWERS.index("Jane Q. Victim")
    prompter = ScriptedPrompter([*ALL_ANSWERS[:index], *ALL_ANSWERS[index + 1:]])
    plan_defaults = guided.GuidedDefaults(home=victim_home, system="Linux", cwd=out, zone=BERLIN,
                                          examiner_given=True)
    assert guided.guided_capture(prompter, plan_defaults, CaseInfo("EK-TEST", "J. Examiner"),
                                 "EK-TEST", keys["signer"], None) == ExitCode.OK
    assert NAME_QUESTION not in prompter.asked and prompter.answers == []
    assert "Your name: J. Examiner, as given on the command line." in prompter.transcript
    assert [e.actor_name for e in verify(out / "EK-TEST.evidence").events] == ["J. Examiner"]


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
    # Enter at "Make the bundle now?" means no; then Enter at "Which part…?": stop
    answers = [*ALL_ANSWERS[:-1], "", ""]
    prompter = ScriptedPrompter(answers)
    assert session(prompter, victim_home, out, keys) == ExitCode.OK
    assert prompter.answers == [] and "Which part do you want to change?" in prompter.asked
    assert os.listdir(out) == []


def test_any_part_can_be_changed_from_the_summary(tmp_path, victim_home, keys):
    """Before, "no" at the summary threw the whole session away."""
    out = tmp_path / "out"
    out.mkdir()
    answers = [*ALL_ANSWERS[:-1],
               "no", "5",  # the amounts were wrong: asked again, the others kept
               "1.250,00 €", "Example Bank", "14.11.2026", "TX-1", "",
               "9", "Jane Doe", "",  # and the name
               "yes"]
    prompter = ScriptedPrompter(answers)
    assert session(prompter, victim_home, out, keys) == ExitCode.OK
    assert prompter.answers == []
    assert prompter.asked.count("Make the bundle now? (yes/no)") == 3  # the summary each time
    from evidencekit.crypto import age

    report = verify(out / "EK-TEST.evidence", [age.ScryptIdentity(PASSPHRASE.encode())])
    assert report.ok and report.decrypted
    record = json.loads(report.tag_files["evidencekit/incident.json"])
    assert [(x["amount"], x["date"]) for x in record["losses"]] == [("1250.00", "2026-11-14")]
    assert record["incident_type"] == "online-fraud" and len(record["identifiers"]) == 3
    assert [e.actor_name for e in report.events] == ["Jane Doe"]
    assert any("Money lost:" in line and "1 250.00 EUR" in line for line in prompter.said)


def test_what_is_missing_can_be_chosen_from_the_summary(tmp_path, victim_home, keys):
    out = tmp_path / "out"
    out.mkdir()
    index = ALL_ANSWERS.index("1")
    answers = [*ALL_ANSWERS[:index], "1", "", *ALL_ANSWERS[index + 3:-1],  # no passphrase
               "8", "1", PASSPHRASE, PASSPHRASE,  # chosen from the summary
               "yes"]
    prompter = ScriptedPrompter(answers)
    assert session(prompter, victim_home, out, keys) == ExitCode.OK
    assert prompter.answers == []
    assert "no way to protect it was chosen" in prompter.transcript
    assert (out / "EK-TEST.evidence").exists()


@pytest.mark.parametrize("stop_at", [1, 12, len(ALL_ANSWERS) - 2, len(ALL_ANSWERS) - 1])
def test_ctrl_c_midway_leaves_nothing_behind(tmp_path, victim_home, keys, home, stop_at):
    out = tmp_path / "out"
    out.mkdir()
    answers = [*ALL_ANSWERS[:stop_at], KeyboardInterrupt()]
    with pytest.raises(Interrupted):  # said as "interrupted; nothing was written", exit 130
        guided.guided_capture(ScriptedPrompter(answers), defaults(victim_home, out),
                              CaseInfo("EK-TEST", "Jane"), "EK-TEST", None, None)
    assert os.listdir(out) == []
    assert not (home / "evidencekit").exists()  # not even the personal signing key


def test_the_investigators_key_instead_of_a_passphrase(tmp_path, victim_home, keys):
    out = tmp_path / "out"
    out.mkdir()
    index = ALL_ANSWERS.index("1")
    recipient = keys["recipient"].read_text().strip()
    answers = [*ALL_ANSWERS[:index], "2", "not a key", str(keys["recipient"]), "", "", "yes"]
    prompter = ScriptedPrompter(answers)
    assert session(prompter, victim_home, out, keys) == ExitCode.OK
    assert "not a key evidencekit can use" in prompter.transcript
    assert recipient[:20] in prompter.transcript  # the summary names the key
    result = run_cli("verify", out / "EK-TEST.evidence", "-i", keys["identity"])
    assert result.code == 0, result.stderr


def test_mistakes_are_explained_and_asked_again(tmp_path, victim_home, keys):
    out = tmp_path / "out"
    out.mkdir()
    answers = ["9", "", "", "yesterday", "", "", "", "", "", "12 ECU", "lots", "", "",
               str(tmp_path / "missing"), "", "1", "short", PASSPHRASE, "different",
               PASSPHRASE, PASSPHRASE, "", str(victim_home / "Downloads" / "statement.csv"),
               str(tmp_path / "nowhere" / "x.evidence"), "", "no", ""]
    prompter = ScriptedPrompter(answers)
    assert session(prompter, victim_home, out, keys) == ExitCode.OK
    assert prompter.answers == []
    text = prompter.transcript
    for words in ("type a number from 1 to 7", "not a date and time", "ISO 4217",
                  "write the amount and the currency", "Not found", "at least 8 characters",
                  "did not match", "already exists", "does not exist"):
        assert words in text, words
    # a hint after a full stop is a sentence of its own
    assert "is not a date and time. Write it as YYYY-MM-DD HH:MM" in text
    assert ". write" not in text and ". three letters" not in text


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
    found = inc.money(text, "loss")
    assert (found.amount, found.currency) == expected


@pytest.mark.parametrize(("value", "kind"), [
    ("scam@example.com", "email"), ("+44 7700 900123", "phone"),
    ("https://fake-bank.example/login", "url"), ("www.fake.example", "url"),
    ("GB82 WEST 1234 5698 7654 32", "iban"), ("0x52908400098527886E0F7030069857D2E4169EE7", "wallet"),
    ("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "wallet"), ("@scammer_99", "username"),
    ("order 55-AB", "other"),
])
def test_identifier_kinds_are_guessed(value, kind):
    assert inc.guess_identifier_kind(value) == kind


def test_without_a_terminal_capture_needs_sources(tmp_path, home):
    result = run_cli("capture")
    assert result.code == 2
    assert "nothing to capture" in result.stderr and "--passphrase" in result.stderr
    assert "guided session" in result.stderr
    as_json = run_cli("capture", "--json")
    assert as_json.code == 2 and as_json.json()["error"]["kind"] == "UsageError"


# ------------------------------------------------------------- a record prepared beforehand
INCIDENT_QUESTIONS = ("Number:", "What happened?", "When did it start?",
                      "When did you notice it?", "What happened when? Time:", "Which accounts?",
                      "Which devices?", "Amount and currency:",
                      "Phone, email, website, account, IBAN or wallet:")


def test_a_prepared_record_is_used_and_its_questions_are_not_asked(tmp_path, victim_home,
                                                                   keys):
    """A support worker wrote incident.yaml; the victim only picks the files and says yes."""
    from evidencekit import incident as inc
    from tests.support.victim import INCIDENT_YAML

    out = tmp_path / "out"
    out.mkdir()
    prepared = inc.load_yaml(INCIDENT_YAML + "affected_devices:\n  - laptop\n")
    prompter = ScriptedPrompter(["", "1", PASSPHRASE, PASSPHRASE, "", "", "yes"])
    plan_defaults = guided.GuidedDefaults(home=victim_home, system="Linux", cwd=out,
                                          zone=(ZoneInfo("America/New_York"), "America/New_York"),
                                          incident=prepared, incident_source="incident.yaml")
    code = guided.guided_capture(prompter, plan_defaults, CaseInfo("EK-TEST", "Jane"),
                                 "EK-TEST", keys["signer"], None)
    assert code == ExitCode.OK and prompter.answers == []
    assert not set(INCIDENT_QUESTIONS) & set(prompter.asked)
    text = prompter.transcript
    assert "Online fraud / payment scam" in text and "already written down" in text
    assert "Written down in:" in text and "incident.yaml, with your answers" in text
    assert "GB82 WEST 1234 5698 7654 32" in text and "450.00 EUR" in text
    assert "First message from the" in text  # the prepared timeline, in the summary
    from evidencekit.crypto import age

    report = verify(out / "EK-TEST.evidence", [age.ScryptIdentity(PASSPHRASE.encode())])
    assert report.ok, report.findings.items
    stored = inc.from_json(report.tag_files["evidencekit/incident.json"])
    assert stored == prepared  # exactly the prepared record, its own time zone kept


def test_a_partly_prepared_record_asks_only_what_is_missing(tmp_path, victim_home, keys):
    from evidencekit import incident as inc

    out = tmp_path / "out"
    out.mkdir()
    prepared = inc.from_input({"incident_type": "phishing", "started": "2026-11-14 10:30 +01:00"})
    prompter = SkipEverything()
    plan_defaults = guided.GuidedDefaults(home=victim_home, system="Linux", cwd=out, zone=BERLIN,
                                          incident=prepared, incident_source="the command line")
    guided.guided_capture(prompter, plan_defaults, CaseInfo("EK-TEST", "Jane"), "EK-TEST",
                          keys["signer"], None)
    assert "Number:" not in prompter.asked and "When did it start?" not in prompter.asked
    assert "What happened?" in prompter.asked and "When did you notice it?" in prompter.asked
    assert "Phishing" in prompter.transcript


def test_protection_from_the_command_line_is_not_asked_again(tmp_path, victim_home, keys):
    from evidencekit.crypto import age

    out = tmp_path / "out"
    out.mkdir()
    recipient = age.parse_recipient(keys["recipient"].read_text().strip())
    plan_defaults = guided.GuidedDefaults(home=victim_home, system="Linux", cwd=out, zone=BERLIN,
                                          recipients=[recipient],
                                          protection="the key age1… (investigator.pub)")
    index = ALL_ANSWERS.index("1")
    prompter = ScriptedPrompter([*ALL_ANSWERS[:index], "", "", "yes"])
    assert guided.guided_capture(prompter, plan_defaults, CaseInfo("EK-TEST", "Jane"),
                                 "EK-TEST", keys["signer"], None) == ExitCode.OK
    assert "1 or 2:" not in prompter.asked and prompter.answers == []
    assert "investigator.pub" in prompter.transcript
    # not -p: there is no passphrase; the signing key, which the bundle is also encrypted to
    assert f"-i {keys['signer']} -o report.pdf" in prompter.transcript
    assert "also locked with your own key" in prompter.transcript
    assert run_cli("verify", out / "EK-TEST.evidence", "-i", keys["identity"]).code == 0
    assert run_cli("verify", out / "EK-TEST.evidence", "-i", keys["signer"]).code == 0


def test_passphrase_flag_goes_straight_to_the_passphrase(tmp_path, victim_home, keys):
    out = tmp_path / "out"
    out.mkdir()
    plan_defaults = guided.GuidedDefaults(home=victim_home, system="Linux", cwd=out, zone=BERLIN,
                                          ask_passphrase=True)
    index = ALL_ANSWERS.index("1")
    prompter = ScriptedPrompter([*ALL_ANSWERS[:index], *ALL_ANSWERS[index + 1:]])
    assert guided.guided_capture(prompter, plan_defaults, CaseInfo("EK-TEST", "Jane"),
                                 "EK-TEST", keys["signer"], None) == ExitCode.OK
    assert "1 or 2:" not in prompter.asked and prompter.answers == []
    assert "(-p)" in prompter.transcript


def test_protection_options_are_checked_and_labelled_before_the_session(tmp_path, keys,
                                                                        monkeypatch):
    from evidencekit.cli.cmd_capture import protection_defaults
    from evidencekit.crypto import age
    from evidencekit.errors import UsageError

    monkeypatch.delenv("EVIDENCEKIT_PASSPHRASE", raising=False)
    recipient = keys["recipient"].read_text().strip()
    with pytest.raises(UsageError, match="not both"):  # -p with -r: refused, nothing asked
        protection_defaults(guided.GuidedDefaults(), (recipient,), (), True, None)
    by_key = guided.GuidedDefaults()
    protection_defaults(by_key, (), (keys["recipient"],), False, None)
    assert str(by_key.recipients[0]) == recipient and recipient[:20] in by_key.protection
    secret = tmp_path / "pass.txt"
    secret.write_text(PASSPHRASE + "\n")
    by_file = guided.GuidedDefaults()
    protection_defaults(by_file, (), (), False, secret)
    assert isinstance(by_file.recipients[0], age.ScryptRecipient)
    assert "pass.txt" in by_file.protection and not by_file.ask_passphrase
    asked = guided.GuidedDefaults()
    protection_defaults(asked, (), (), True, None)
    assert asked.ask_passphrase and not asked.recipients
    nothing = guided.GuidedDefaults()
    protection_defaults(nothing, (), (), False, None)
    assert not nothing.ask_passphrase and not nothing.recipients  # the session asks


def test_looking_around_keeps_the_folders_access_times(tmp_path):
    home = tmp_path / "h"
    for folder in ("Desktop", "Downloads/bank", "Documents"):
        (home / folder).mkdir(parents=True)
    (home / "Documents" / "bank.eml").write_text("x")
    (home / "Downloads" / "bank" / "statement.pdf").write_bytes(b"%PDF" + b"0" * 96)
    (tmp_path / "elsewhere").symlink_to(home / "Downloads")
    folders = [home / "Desktop", home / "Downloads", home / "Downloads" / "bank",
               home / "Documents"]
    stale = stale_atimes(*folders)
    guided.suggestions("phishing", home, "Linux")
    assert guided.describe_size(home / "Downloads") == "1 file, 100 bytes"
    assert guided.describe_size(tmp_path / "elsewhere") == "1 file, 100 bytes"  # a link the user named
    assert atimes(*folders) == stale


def test_the_bundle_is_never_saved_in_a_folder_being_saved(tmp_path, victim_home, keys,
                                                           monkeypatch):
    monkeypatch.setenv("HOME", str(victim_home))
    screenshots = victim_home / "Pictures" / "Screenshots"  # chosen, and the current folder
    before = (os.listdir(screenshots), os.lstat(screenshots).st_mtime_ns)
    index = ALL_ANSWERS.index("Jane Q. Victim") + 1
    answers = [*ALL_ANSWERS[:index], str(screenshots), "", "yes"]
    prompter = ScriptedPrompter(answers)
    assert session(prompter, victim_home, screenshots, keys) == ExitCode.OK
    assert prompter.answers == []
    assert f"{screenshots} is one of the folders you are saving: putting the bundle there " \
        "would change your evidence" in prompter.transcript
    assert (victim_home / "EK-TEST.evidence").exists()  # Enter: the home folder instead
    assert (os.listdir(screenshots), os.lstat(screenshots).st_mtime_ns) == before


def test_a_new_signing_key_inside_a_folder_being_saved_is_said_when_choosing(tmp_path,
                                                                           victim_home, home):
    """Said at the list of folders, so that the person can leave that folder out there, before
    answering the rest (not after every question, with nothing to do but start again)."""
    out = tmp_path / "out"
    out.mkdir()
    before = (os.listdir(home), os.lstat(home).st_mtime_ns)
    index = ALL_ANSWERS.index("~/Documents/seller.eml")
    # also add the folder holding the key's place, Enter (refused), leave it out (number 5,
    # after the four suggestions), Enter, and the rest as usual
    answers = [*ALL_ANSWERS[:index + 1], str(home), "", "5", "", *ALL_ANSWERS[index + 2:]]
    prompter = ScriptedPrompter(answers)
    assert guided.guided_capture(prompter, defaults(victim_home, out),
                                 CaseInfo("EK-TEST", "Jane"), "EK-TEST", None, None) == ExitCode.OK
    assert prompter.answers == []
    key = home / "evidencekit" / "id_ed25519"
    assert f"evidencekit key generate -o {key}" in prompter.transcript
    assert "Type that folder's number to leave it out" in prompter.transcript
    assert (out / "EK-TEST.evidence").exists() and key.exists()  # made once it was left out
    assert before[0] == [] and os.listdir(home) == ["evidencekit"]


def test_no_place_is_offered_when_the_home_folder_is_being_saved_too(tmp_path, victim_home,
                                                                     keys, monkeypatch):
    monkeypatch.setenv("HOME", str(victim_home))
    out = tmp_path / "usb"
    out.mkdir()
    answers = [str(victim_home) if a == "~/Documents/seller.eml" else a for a in ALL_ANSWERS]
    name_at = answers.index("Jane Q. Victim") + 1
    answers[name_at:name_at + 1] = ["", str(out)]  # Enter offers nothing: a place is typed
    prompter = ScriptedPrompter(answers)
    assert session(prompter, victim_home, victim_home / "Downloads", keys) == ExitCode.OK
    assert prompter.answers == []
    assert "Please type where to save it" in prompter.transcript
    assert (out / "EK-TEST.evidence").exists() and "EK-TEST.evidence" not in os.listdir(
        victim_home)


def test_an_amount_that_reads_two_ways_is_asked_about_and_said_back():
    prompter = ScriptedPrompter([
        "1.250 €", "1", "Example Bank", "14.11.2026", "TX-1",  # German: one thousand …
        "1,250 EUR", "2", "", "", "",  # … or one and a quarter, as the person says
        "1.250 €", "", "1.250,00 €", "", "", "",  # Enter: type it again, unambiguously
        ""])
    losses = guided._ask_losses(prompter)
    assert prompter.answers == []
    assert [(x.amount, x.currency, x.date) for x in losses] == [
        ("1250", "EUR", "2026-11-14"), ("1.25", "EUR", None), ("1250.00", "EUR", None)]
    text = prompter.transcript
    assert "1 250 EUR — one thousand two hundred fifty euros" in text
    assert "1.25 EUR — one and 25/100 euros" in text
    assert prompter.asked.count("Which one did you mean? 1 or 2:") == 3
    # every amount is said back one way before the next question
    assert "✓[/] 1 250.00 EUR (one thousand two hundred fifty euros)" in text


def test_an_iban_with_wrong_check_digits_is_said_and_can_be_fixed_or_kept():
    prompter = ScriptedPrompter([
        "GB82 WEST 1234 5698 7654 33", "GB82 WEST 1234 5698 7654 32",  # a typo, fixed
        "DE00 1234 5678 9012 3456 78", "",  # kept as written, knowingly
        ""])
    found = guided._ask_identifiers(prompter)
    assert prompter.answers == []
    assert [(i.kind, i.value) for i in found] == [
        ("iban", "GB82 WEST 1234 5698 7654 32"), ("other", "DE00 1234 5678 9012 3456 78")]
    text = prompter.transcript
    assert text.count("looks like an IBAN, but its check digits do not match") == 2
    assert "recorded as IBAN" in text and "recorded as other" in text
    assert "recorded as iban" not in text


def test_a_file_inside_a_folder_already_chosen_is_not_added_twice(victim_home, tmp_path):
    shots = victim_home / "Pictures" / "Screenshots"
    prompter = ScriptedPrompter([
        str(shots / "chat.png"),  # inside Screenshots, which is chosen: said, not added
        "2",  # leave Downloads out
        str(victim_home / "Downloads" / "statement.csv"),  # Downloads is out: added alone
        "2",  # Downloads back in: the statement inside it is no longer listed on its own
        ""])
    chosen = guided._ask_sources(prompter, None, defaults(victim_home, tmp_path))
    assert prompter.answers == []
    assert chosen == [shots, victim_home / "Downloads", victim_home / "Documents" / "seller.eml"]
    text = " ".join(prompter.transcript.split())
    assert "chat.png is inside" in text and "not added a second time" in text
    assert "statement.csv is inside" in text and "no longer listed on its own" in text


def test_ctrl_c_before_anything_was_chosen_does_not_speak_of_a_source(tmp_path, victim_home,
                                                                       keys):
    prompter = ScriptedPrompter([KeyboardInterrupt()])
    with pytest.raises(Interrupted) as caught:
        session(prompter, victim_home, tmp_path, keys)
    assert "source" not in f"{caught.value.message} {caught.value.hint}"
    assert caught.value.exit_code == ExitCode.INTERRUPTED


def test_a_victim_who_used_the_investigators_key_can_print_their_own_report(
        tmp_path, victim_home, keys, home):
    """The bundle is encrypted to the investigator's key and to the victim's own (personal)
    signing key; the report command the session suggests works, literally as printed."""
    out = tmp_path / "out"
    out.mkdir()
    prompter = ScriptedPrompter([*[""] * 9, "",  # skip the questions, keep the list
                                 "2", str(keys["recipient"]),  # the investigator's key
                                 "", "", "yes"])
    code = guided.guided_capture(prompter, defaults(victim_home, out),
                                 CaseInfo("EK-TEST", "Jane Victim"), "EK-TEST", None, None)
    assert code == ExitCode.OK and prompter.answers == []
    personal = home / "evidencekit" / "id_ed25519"  # made on first use, unprotected
    assert personal.exists()
    text = prompter.transcript
    assert "also locked with your own key" in text
    assert any("Protected by:" in line and "your own key" in line for line in prompter.said)
    suggested = re.search(r"\[bold\](evidencekit report [^\[]*)\[/\]", text)
    assert suggested is not None, text
    words = shlex.split(suggested.group(1))
    assert words[words.index("-i") + 1] == str(personal)
    made = run_cli(*words[1:], cwd=tmp_path)  # "-o report.pdf", in the current folder
    assert made.code == 0, made.stderr
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")
    # and the investigator's own key still opens it
    assert run_cli("verify", out / "EK-TEST.evidence", "-i", keys["identity"]).code == 0


def test_with_a_passphrase_the_report_command_asks_for_it_and_no_key_is_added(
        tmp_path, victim_home, keys):
    out = tmp_path / "out"
    out.mkdir()
    prompter = ScriptedPrompter([*[""] * 10, "1", PASSPHRASE, PASSPHRASE, "", "", "yes"])
    assert session(prompter, victim_home, out, keys) == ExitCode.OK
    assert "evidencekit report" in prompter.transcript and "-p -o report.pdf" in \
        prompter.transcript
    assert "your own key" not in prompter.transcript  # age allows a passphrase only alone


def test_a_web_page_used_against_the_victim_is_offered_and_saved(tmp_path, victim_home, keys,
                                                                 monkeypatch):
    from evidencekit.sources.web.render import BROWSER_ENV
    from tests.support.web_server import https_site

    monkeypatch.setenv("HOME", str(victim_home))
    monkeypatch.setenv(BROWSER_ENV, str(tmp_path / "no-browser"))  # the pictures: test_web.py
    out = tmp_path / "out"
    out.mkdir()
    with https_site(tmp_path) as site:
        answers = list(ALL_ANSWERS)
        # a web address among the contact details: offered in 7, not chosen (the site would
        # see who fetches it) until its number is typed
        at = answers.index("GB82 WEST 1234 5698 7654 32")
        answers.insert(at + 1, "fake-shop.invalid/bikes")
        at = answers.index("~/Documents/seller.eml")
        answers[at + 1:at + 1] = [site.base + "/", "ftp://nope.invalid/", ""]
        prompter = ScriptedPrompter(answers)
        assert session(prompter, victim_home, out, keys) == ExitCode.OK
    assert prompter.answers == []
    text = " ".join(prompter.transcript.split())
    assert any(line.startswith("    5) https://fake-shop.invalid/bikes — a web address you "
                               "named (6)") for line in prompter.said)  # offered, not chosen
    assert f"  [green]✓[/] 6) {site.base}/ — added by you" in prompter.said
    assert "ftp://nope.invalid/ is not a web address evidencekit can save" in text
    assert any("Copy:" in line for line in prompter.said) and \
        any(line.strip() == site.base + "/" for line in prompter.said)  # in the summary

    from evidencekit.crypto import age
    report = verify(out / "EK-TEST.evidence", [age.ScryptIdentity(PASSPHRASE.encode())])
    assert report.ok and report.manifest is not None
    [web] = [s for s in report.manifest.get("sources") if s.get("kind") == "web"]
    assert web["given"] == site.base + "/" and web["path"] == site.base + "/page.html"
    assert {e["path"] for e in report.manifest.entries() if e["source"] == web["index"]} == {
        "127.0.0.1.page.warc.gz", "127.0.0.1.web-capture.json"}


@pytest.mark.parametrize("answer", ["yes", "no"])
def test_a_configured_tsa_is_offered_after_the_capture(tmp_path, victim_home, keys, monkeypatch,
                                                       answer):
    """With a TSA configured (or --tsa), the session offers a trusted timestamp once the bundle
    is written; yes adds it, no leaves the bundle as it is."""
    from evidencekit import timestamps
    from tests.support.tsa_server import running_tsa

    monkeypatch.setenv("HOME", str(victim_home))
    out = tmp_path / "out"
    out.mkdir()
    prompter = ScriptedPrompter([*ALL_ANSWERS, answer])
    with running_tsa(tmp_path / "pki") as tsa:
        plan_defaults = guided.GuidedDefaults(home=victim_home, system="Linux", cwd=out,
                                              zone=BERLIN, tsa_urls=(tsa.url,),
                                              tsa_roots=timestamps.load_roots(str(tsa.root)))
        code = guided.guided_capture(prompter, plan_defaults, CaseInfo("EK-TEST", "Jane Victim"),
                                     "EK-TEST", keys["signer"], None)
    assert code == ExitCode.OK
    assert prompter.answers == []
    assert "trusted timestamp" in prompter.transcript
    report = verify(out / "EK-TEST.evidence")
    assert report.ok, report.findings.items
    assert len(report.timestamps) == (1 if answer == "yes" else 0)


class RemovesAtTheSummary(ScriptedPrompter):
    """Removes *gone* when the summary first asks "Make the bundle now?" (a USB stick pulled,
    a file deleted, between choosing it and saying yes)."""

    def __init__(self, answers: list[str], gone: Path) -> None:
        super().__init__(answers)
        self.gone = gone
        self.saved = gone.read_bytes()

    def _next(self, question: str) -> str:
        if question.startswith("Make the bundle now?") and self.asked.count(question) == 0:
            self.gone.unlink()
        return super()._next(question)


@pytest.mark.parametrize("then", ["plugged back in", "left out"])
def test_a_file_removed_after_it_was_chosen_takes_the_person_back_to_the_list(
        tmp_path, victim_home, home, monkeypatch, then):
    """A source gone between choosing it and saying yes stopped the capture (exit 2, 'source
    not found') and every answer was lost. It is said in plain words at the summary and the
    list of what to copy is asked again, every other answer kept: plug it back in, or leave it
    out. Never silently left out; nothing written, no key made, until the person says yes to a
    list that exists. (The command line still refuses it: tests/cli/test_exit_codes.py.)"""
    monkeypatch.setenv("HOME", str(victim_home))
    out = tmp_path / "out"
    out.mkdir()
    gone = victim_home / "Documents" / "seller.eml"

    class Back(RemovesAtTheSummary):
        def ask(self, question: str, hint: str = "") -> str:
            if question == "Change the list?" and self.answers[0] == "PUT BACK":
                assert os.listdir(out) == [] and not (home / "evidencekit").exists()
                gone.write_bytes(self.saved)
                self.answers[0] = ""
            elif question == "Change the list?" and self.answers[0] == "LEAVE OUT":
                shown = next(line for line in reversed(self.said) if str(gone) in line)
                found = re.search(r"(\d+)\) ", shown)
                assert found is not None
                self.answers[0] = found.group(1)  # its number in the list
            return super().ask(question, hint)

    back = ["PUT BACK"] if then == "plugged back in" else ["LEAVE OUT", ""]
    prompter = Back([*ALL_ANSWERS, *back, "yes"], gone)
    code = guided.guided_capture(prompter, defaults(victim_home, out),
                                 CaseInfo("EK-TEST", "Jane Victim"), "EK-TEST", None, None)
    assert code == ExitCode.OK
    assert prompter.answers == []
    text = " ".join(prompter.transcript.split())
    assert f"{gone} is no longer there" in text
    after_yes = prompter.asked[prompter.asked.index("Make the bundle now? (yes/no)"):]
    assert after_yes.count("Change the list?") == len(back)  # straight back to the list
    report = verify(out / "EK-TEST.evidence", [age.ScryptIdentity(PASSPHRASE.encode())])
    assert report.ok and report.decrypted, report.findings.items
    paths = {e["path"] for e in report.manifest.entries()}
    assert ("seller.eml" in paths) == (then == "plugged back in")
    record = json.loads(report.tag_files["evidencekit/incident.json"])  # every answer kept
    assert record["incident_type"] == "online-fraud" and len(record["losses"]) == 2
    assert [e.actor_name for e in report.events] == ["Jane Q. Victim"]


def test_a_file_removed_in_the_moment_after_yes_is_still_refused(tmp_path, victim_home, home,
                                                                 monkeypatch):
    """Gone after the check at the "yes" (the race that check cannot close): the capture
    resolves the paths once, as on the command line, and refuses it (exit 2) before anything
    is written, the personal signing key included; never silently smaller."""
    monkeypatch.setenv("HOME", str(victim_home))
    monkeypatch.setattr(guided, "_gone", lambda sources: [])  # the check saw it still there
    out = tmp_path / "out"
    out.mkdir()
    prompter = RemovesAtTheSummary(ALL_ANSWERS, victim_home / "Documents" / "seller.eml")
    with pytest.raises(InputError, match=r"source not found: .*seller\.eml"):
        guided.guided_capture(prompter, defaults(victim_home, out),
                              CaseInfo("EK-TEST", "Jane Victim"), "EK-TEST", None, None)
    assert prompter.answers == []
    assert os.listdir(out) == []
    assert not (home / "evidencekit").exists()


def test_a_link_to_a_folder_elsewhere_is_added_not_said_to_be_copied_with_its_folder(
        victim_home, tmp_path):
    """A link inside a chosen folder is stored as a link: what it points to elsewhere is not in
    that folder's copy. Typed by the victim, it was refused as 'copied with it', so the folder
    they asked for was silently left out. It is added on its own (followed, as the command line
    follows a link given as a source); a link to a file inside the folder is still not added
    twice."""
    shots = victim_home / "Pictures" / "Screenshots"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "receipt.pdf").write_bytes(b"%PDF receipt")
    (shots / "to-receipts").symlink_to(elsewhere)
    (shots / "to-chat").symlink_to(shots / "chat.png")
    prompter = ScriptedPrompter([str(shots / "to-receipts"), str(shots / "to-chat"), ""])
    chosen = guided._ask_sources(prompter, None, defaults(victim_home, tmp_path))
    assert shots / "to-receipts" in chosen
    assert shots / "to-chat" not in chosen
    text = " ".join(prompter.transcript.split())
    assert "to-receipts is inside" not in text and "to-chat is inside" in text


def test_a_typed_or_dragged_name_with_quotes_is_the_file_named(victim_home, tmp_path):
    """Quotes were stripped from both ends of whatever was typed: `note'` (a file that exists,
    beside `note`) chose `note` instead, silently; a name with a quote dragged from a terminal
    that quotes it as a shell would ('it'\\''s.txt') was 'not found'."""
    folder = tmp_path / "letters"
    folder.mkdir()
    for name in ("note", "note'", "it's.txt", "a b.txt"):
        (folder / name).write_text(name)
    prompter = ScriptedPrompter([str(folder / "note'"), f"'{folder}/it'\\''s.txt'",
                                 f"'{folder}/a b.txt'", ""])
    chosen = guided._ask_sources(prompter, None, defaults(victim_home, tmp_path))
    assert {folder / "note'", folder / "it's.txt", folder / "a b.txt"} <= set(chosen)
    assert folder / "note" not in chosen
    assert "Not found" not in prompter.transcript


def test_a_broken_link_is_said_when_typed_not_refused_after_every_question(victim_home,
                                                                           tmp_path):
    """A link to something gone was put in the list, and the capture, after every other
    question, refused it ('a broken symbolic link', exit 2): all the answers lost."""
    gone = tmp_path / "gone-shortcut"
    gone.symlink_to(tmp_path / "no-longer-there")
    prompter = ScriptedPrompter([str(gone), ""])
    chosen = guided._ask_sources(prompter, None, defaults(victim_home, tmp_path))
    assert gone not in chosen
    assert "points to something that no longer exists" in " ".join(prompter.transcript.split())


@pytest.mark.parametrize("pages", [None, []])
def test_a_file_dragged_in_as_a_file_address_is_that_file(victim_home, tmp_path, pages):
    """Some file managers drag a file into a terminal as file:///…/My%20Photo.png: it was
    'not found' (or, with web pages offered, 'not a web address evidencekit can save')."""
    folder = tmp_path / "My Photos"
    folder.mkdir()
    (folder / "scam ad.png").write_bytes(b"\x89PNG")
    uri = (folder / "scam ad.png").as_uri()
    prompter = ScriptedPrompter([uri, f"'{(folder).as_uri()}'", "file://elsewhere/x.png", ""])
    chosen = guided._ask_sources(prompter, None, defaults(victim_home, tmp_path), pages=pages)
    assert folder in chosen and "%20" in uri
    text = " ".join(prompter.transcript.split())
    assert "scam ad.png is inside" in text  # chosen, then its folder: copied with it
    assert "Not found: file:/elsewhere/x.png" in text  # another computer's: not this one's /x.png
    assert "not a web address" not in text
