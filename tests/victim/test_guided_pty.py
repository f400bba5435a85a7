"""The guided session through a real pseudo-terminal (pexpect): what a person at a terminal sees
and types, including hidden passphrase entry and Ctrl-C."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.terminal import evidencekit_on_a_pty
from tests.support.victim import PASSPHRASE

pexpect = pytest.importorskip("pexpect")

TIMEOUT = 30
NAME_QUESTION = "Your name, as it should appear in the record:"


def spawn(tmp_path: Path, victim_home: Path, keys: dict[str, Path], *extra: str,
          columns: int = 200):
    out = tmp_path / "out"
    out.mkdir()
    child = evidencekit_on_a_pty(
        ["capture", "--case", "PTY-1", "--sign-key", keys["signer"], *extra], cwd=out,
        env={"HOME": victim_home, "XDG_CONFIG_HOME": tmp_path / "config", "TZ": "Europe/Berlin"},
        columns=columns, timeout=TIMEOUT)
    return child, out  # child.logfile_read: everything the person saw, for the assertions


def seen(child) -> str:
    return child.logfile_read.getvalue()


def answer(child, prompt: str, text: str) -> None:
    child.expect_exact(prompt)
    child.sendline(text)


def finish(child) -> str:
    child.expect(pexpect.EOF)
    child.close()
    return child.before or ""


def test_answering_through_a_terminal(tmp_path, victim_home, keys):
    child, out = spawn(tmp_path, victim_home, keys)
    answer(child, "Number:", "2")
    child.expect_exact("Keep receipts")  # advice for this kind of incident
    answer(child, "What happened?", "Paid for a bike that never came")
    answer(child, "When did it start?", "2026-11-14 10:30")
    answer(child, "When did you notice it?", "")
    answer(child, "What happened when? Time:", "2026-11-15")  # a date alone is fine
    answer(child, "What happened then?", "Paid the seller")
    answer(child, "Next time (or Enter when done):", "")
    answer(child, "Which accounts?", "online banking")
    answer(child, "Another one?", "")
    answer(child, "Which devices?", "")
    answer(child, "Amount and currency:", "450 EUR")
    answer(child, "Paid through which bank or service?", "Example Bank")
    answer(child, "On which date?", "2026-11-15")
    answer(child, "Transaction reference?", "")
    answer(child, "Another amount?", "")
    answer(child, "Phone, email, website, account, IBAN or wallet:", "bike@example.net")
    answer(child, "Another one?", "")
    child.expect_exact("Screenshots")  # the suggestion, found in the victim's home
    answer(child, "Change the list?", "")
    answer(child, "1 or 2:", "1")
    answer(child, "Passphrase (hidden as you type):", PASSPHRASE)
    answer(child, "The same passphrase again:", PASSPHRASE)
    answer(child, NAME_QUESTION, "Jane Doe")
    answer(child, "Where should the bundle be saved?", "")
    child.expect_exact("Summary")
    child.expect_exact("2026-11-14 10:30 (UTC+01:00)")
    child.expect_exact("Jane Doe")  # the name, in the summary
    answer(child, "Make the bundle now? (yes/no)", "yes")
    child.expect_exact("Sealed")
    transcript = finish(child)
    assert child.exitstatus == 0, transcript
    assert PASSPHRASE not in transcript  # never echoed
    bundle = out / "PTY-1.evidence"
    result = run_cli("verify", bundle, "--passphrase-file", _secret(tmp_path), "--json")
    assert result.code == 0, result.stdout
    assert result.json()["files_checked"] == 3
    assert [e["actor"] for e in result.json()["custody"]] == ["Jane Doe"]


def _secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(PASSPHRASE + "\n")
    return path


def test_skipping_everything_through_a_terminal(tmp_path, victim_home, keys):
    child, out = spawn(tmp_path, victim_home, keys)
    for prompt in ("Number:", "What happened?", "When did it start?", "When did you notice it?",
                   "What happened when? Time:", "Which accounts?", "Which devices?", "Amount and currency:",
                   "Phone, email, website, account, IBAN or wallet:", "Change the list?",
                   "1 or 2:", "Passphrase (hidden as you type):", NAME_QUESTION,
                   "Where should the bundle be saved?",
                   "Which part do you want to change?"):  # no protection: Enter stops
        answer(child, prompt, "")
    child.expect_exact("Nothing was written")
    finish(child)
    assert child.exitstatus == 0
    assert os.listdir(out) == []


@pytest.mark.parametrize("where", ["question", "passphrase"])
def test_ctrl_c_through_a_terminal_leaves_nothing(tmp_path, victim_home, keys, where):
    child, out = spawn(tmp_path, victim_home, keys)
    answer(child, "Number:", "1")
    if where == "passphrase":
        for prompt in ("What happened?", "When did it start?", "When did you notice it?",
                       "What happened when? Time:", "Which accounts?", "Which devices?",
                       "Amount and currency:",
                       "Phone, email, website, account, IBAN or wallet:", "Change the list?"):
            answer(child, prompt, "")
        answer(child, "1 or 2:", "1")
        child.expect_exact("Passphrase (hidden as you type):")
        child.send("half a pass")
    else:
        child.expect_exact("What happened?")
        child.send("I clicked a li")
    child.send("\x03")  # Ctrl-C, as the terminal sends it
    transcript = finish(child)
    assert child.exitstatus == 130, transcript
    assert "interrupted" in transcript and "Traceback" not in transcript
    # no source may have been chosen yet: not "the source was not changed"
    assert "source" not in " ".join(transcript.split()) and "nothing on it was changed" in \
        " ".join(transcript.split())
    assert os.listdir(out) == []
    assert not (tmp_path / "config" / "evidencekit").exists()


def test_long_sentences_wrap_at_words_on_a_narrow_terminal(tmp_path, victim_home, keys):
    # rich treats TERM=dumb as 80 columns wide (a real terminal: its own width)
    child, _out = spawn(tmp_path, victim_home, keys, columns=80)
    child.expect_exact("Number:")
    child.send("\x03")
    finish(child)
    welcome = seen(child).split("1. What happened?")[0]
    lines = [line.rstrip() for line in welcome.replace("\r", "").split("\n") if line.strip()]
    # rich breaks the lines itself, at spaces: a line the terminal would cut mid-word is none
    assert lines and all(len(line) <= 80 for line in lines), lines
    assert "nothing is saved until you say yes" in " ".join(" ".join(lines).split())


def test_prepared_incident_file_on_a_terminal_only_asks_for_the_files(tmp_path, victim_home,
                                                                      keys):
    """A support worker prepared incident.yaml and the passphrase file; the victim runs
    'capture --incident incident.yaml' and answers only: which files, where, and yes."""
    from tests.support.victim import INCIDENT_YAML

    incident = tmp_path / "incident.yaml"
    incident.write_text(INCIDENT_YAML + "affected_devices:\n  - laptop\n")
    child, out = spawn(tmp_path, victim_home, keys, "--incident", str(incident),
                       "--passphrase-file", str(_secret(tmp_path)))
    child.expect_exact("already written down for you (incident.yaml)")
    answer(child, "Change the list?", "")
    child.expect_exact("the passphrase in the file")
    answer(child, NAME_QUESTION, "")
    answer(child, "Where should the bundle be saved?", "")
    child.expect_exact("Summary")
    child.expect_exact("incident.yaml, with your answers")
    child.expect_exact("Online fraud / payment scam")
    answer(child, "Make the bundle now? (yes/no)", "yes")
    child.expect_exact("Sealed")
    transcript = finish(child)
    assert child.exitstatus == 0, transcript
    for question in ("Number:", "What happened?", "When did it start?", "1 or 2:",
                     "Passphrase (hidden as you type):"):
        assert f"? {question}" not in seen(child), question  # "?" marks a question asked
    opened = tmp_path / "opened"
    result = run_cli("extract", out / "PTY-1.evidence", "--passphrase-file", _secret(tmp_path),
                     "-o", opened, "--as-stored")
    assert result.code == 0, result.stderr
    record = (opened / "evidencekit" / "incident.json").read_text()
    assert "used bike" in record and "GB82 WEST" in record and "laptop" in record


def test_invalid_incident_file_on_a_terminal_fails_before_any_question(tmp_path, victim_home,
                                                                       keys):
    incident = tmp_path / "incident.yaml"
    incident.write_text("losses:\n  - amount: 10\n    currency: EURO\n")
    child, out = spawn(tmp_path, victim_home, keys, "--incident", str(incident))
    transcript = finish(child)
    assert child.exitstatus == 2, transcript
    assert "losses[0].currency" in transcript and "ISO 4217" in transcript
    assert "Number:" not in transcript and "let's preserve" not in transcript
    assert os.listdir(out) == []


def test_passphrase_flag_on_a_terminal_asks_only_for_the_passphrase(tmp_path, victim_home, keys):
    child, out = spawn(tmp_path, victim_home, keys, "-p", "--narrative", "Paid for a bike",
                       "--incident-type", "online-fraud")
    answer(child, "When did it start?", "2026-11-14")
    for prompt in ("When did you notice it?", "What happened when? Time:", "Which accounts?",
                   "Which devices?", "Amount and currency:",
                   "Phone, email, website, account, IBAN or wallet:", "Change the list?"):
        answer(child, prompt, "")
    child.expect_exact("as asked on the command line (-p)")
    answer(child, "Passphrase (hidden as you type):", PASSPHRASE)
    answer(child, "The same passphrase again:", PASSPHRASE)
    answer(child, NAME_QUESTION, "")
    answer(child, "Where should the bundle be saved?", "")
    child.expect_exact("Paid for a bike")  # the --narrative, in the summary
    answer(child, "Make the bundle now? (yes/no)", "yes")
    transcript = finish(child)
    assert child.exitstatus == 0, transcript
    assert "? 1 or 2:" not in seen(child) and "? Number:" not in seen(child)
    assert PASSPHRASE not in seen(child)
    result = run_cli("verify", out / "PTY-1.evidence", "--passphrase-file", _secret(tmp_path))
    assert result.code == 0, result.stderr


def test_examiner_flag_on_a_terminal_is_the_name_and_not_asked(tmp_path, victim_home, keys):
    child, out = spawn(tmp_path, victim_home, keys, "--examiner", "Jane Victim",
                       "--passphrase-file", str(_secret(tmp_path)))
    for prompt in ("Number:", "What happened?", "When did it start?", "When did you notice it?",
                   "What happened when? Time:", "Which accounts?", "Which devices?",
                   "Amount and currency:", "Phone, email, website, account, IBAN or wallet:",
                   "Change the list?"):
        answer(child, prompt, "")
    child.expect_exact("Your name: Jane Victim, as given on the command line.")
    answer(child, "Where should the bundle be saved?", "")
    answer(child, "Make the bundle now? (yes/no)", "yes")
    transcript = finish(child)
    assert child.exitstatus == 0, transcript
    assert f"? {NAME_QUESTION}" not in seen(child)
    result = run_cli("verify", out / "PTY-1.evidence", "--json")
    assert [e["actor"] for e in result.json()["custody"]] == ["Jane Victim"]


def test_examiner_from_the_settings_is_offered_and_enter_keeps_it(tmp_path, victim_home, keys,
                                                                  monkeypatch):
    monkeypatch.setenv("EVIDENCEKIT_EXAMINER", "Jane From Settings")
    child, out = spawn(tmp_path, victim_home, keys, "--passphrase-file", str(_secret(tmp_path)))
    for prompt in ("Number:", "What happened?", "When did it start?", "When did you notice it?",
                   "What happened when? Time:", "Which accounts?", "Which devices?",
                   "Amount and currency:", "Phone, email, website, account, IBAN or wallet:",
                   "Change the list?"):
        answer(child, prompt, "")
    child.expect_exact("Enter for Jane From Settings.")  # the hint names the default
    answer(child, NAME_QUESTION, "")
    answer(child, "Where should the bundle be saved?", "")
    answer(child, "Make the bundle now? (yes/no)", "yes")
    transcript = finish(child)
    assert child.exitstatus == 0, transcript
    result = run_cli("verify", out / "PTY-1.evidence", "--json")
    assert [e["actor"] for e in result.json()["custody"]] == ["Jane From Settings"]


@pytest.mark.parametrize(("reply", "written"), [("n", False), ("y", True)])
def test_note_on_a_terminal_warns_that_it_is_public(tmp_path, keys, reply, written):
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "chat.png").write_bytes(b"\x89PNG")
    bundle = tmp_path / "case.evidence"
    assert run_cli("capture", evidence, "-R", keys["recipient"], "--sign-key", keys["signer"],
                   "-o", bundle).code == 0
    before = bundle.read_bytes()
    child = evidencekit_on_a_pty(["note", bundle, "--text", "Account number 12345678 was used",
                                  "--sign-key", keys["signer"]], cwd=tmp_path, timeout=TIMEOUT)
    child.expect_exact("This note will be public.")
    child.expect_exact("To keep it private instead")
    answer(child, "Write this public note? [y/N]:", reply)
    transcript = finish(child)
    assert child.exitstatus == 0, transcript
    if written:
        assert "Added note #2" in transcript and bundle.read_bytes() != before
    else:
        assert "Nothing was written" in transcript and bundle.read_bytes() == before
