"""The victim-facing features in tests: a scripted prompter for the guided session, the example
incident record, and a captured case with notes and hostile file names."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.cli import run_cli

PASSPHRASE = "correct horse battery staple"


INCIDENT_YAML = """\
incident_type: online-fraud
description: |
  I bought a used bike on a classifieds site and paid by bank transfer.
  The seller stopped answering; the listing is gone.
time_zone: Europe/Berlin
started: 2026-11-14 10:30
noticed: 2026-11-16 19:05
timeline:
  - time: 2026-11-14 10:30
    description: First message from the "seller" on the classifieds site
  - time: 2026-11-15 08:12 +01:00
    description: Paid 450.00 EUR by bank transfer
identifiers:
  - kind: iban
    value: GB82 WEST 1234 5698 7654 32
    note: the seller's account
  - kind: email
    value: bike.seller@example.net
  - kind: url
    value: https://classifieds.example/item/99
losses:
  - amount: 450.00
    currency: EUR
    date: 2026-11-15
    institution: Example Bank
    reference: TX-4411
affected_accounts:
  - online banking at Example Bank
"""


DATE_ONLY_YAML = """\
started: 2026-11-14
noticed: 2026-11-16 19:05 +01:00
timeline:
  - time: 2026-11-15
    description: Paid the seller
  - time: 2026-11-15 08:12 +01:00
    description: The seller's last message
"""


class ScriptedPrompter:
    """Answers the guided session's questions from a list; raises what it is given."""

    def __init__(self, answers: Iterable[str | BaseException]) -> None:
        self.answers = list(answers)
        self.said: list[str] = []
        self.asked: list[str] = []

    def _next(self, question: str) -> str:
        self.asked.append(question)
        if not self.answers:
            raise AssertionError(f"unexpected question: {question!r}")
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def say(self, text: str) -> None:
        self.said.append(text)

    def ask(self, question: str, hint: str = "") -> str:
        return self._next(question).strip()

    def secret(self, question: str) -> str:
        return self._next(question)

    @property
    def transcript(self) -> str:
        return "\n".join(self.said)


@dataclass
class CaseBundle:
    path: Path
    folder: Path
    keys: dict[str, Path]
    events: list[dict] = field(default_factory=list)


def make_case_bundle(folder: Path, key_files: dict[str, Path], extra_files: int = 0) -> CaseBundle:
    """Capture (CLI) a small tree with hostile names and an incident record, then add notes."""
    evidence = folder / "evidence"
    (evidence / "screens").mkdir(parents=True)
    (evidence / "screens" / "<script>alert('x')<script>.png").write_bytes(b"\x89PNG 1")
    (evidence / "screens" / "<img src=x onerror=alert(1)>.png").write_bytes(b"\x89PNG 2")
    (evidence / "Überweisung Жанна Ελένη.txt").write_text("names in several scripts\n")
    (evidence / "evil\u202etxt.exe").write_bytes(b"MZ")
    for n in range(extra_files):
        (evidence / "screens" / f"shot-{n:05d}.png").write_bytes(b"\x89PNG %d" % n)
    incident = folder / "incident.yaml"
    incident.write_text(INCIDENT_YAML)
    bundle = folder / "case.evidence"
    made = run_cli("capture", evidence, "--incident", incident, "--case", "FRAUD-2026-0117",
                   "--examiner", "Jane Victim", "--loss", "25 EUR; 2026-11-15; Example Bank",
                   "--affected-device", "phone", "-R", key_files["recipient"], "--sign-key",
                   key_files["signer"], "-o", bundle, "--json")
    assert made.code == 0, made.stderr
    case = CaseBundle(bundle, folder, key_files)
    for args in (["--kind", "timeline", "--time", "2026-11-17 09:00 +01:00", "--text",
                  "The bank recalled the transfer; recall refused"],
                 ["--kind", "loss", "--amount", "35.50", "--currency", "GBP", "--institution",
                  "PayPal", "--text", "a second payment I found later"],
                 ["--kind", "identifier", "--id-kind", "phone", "--value", "+44 7700 900123",
                  "--text", "the seller called from this number"],
                 ["--text", "Reported to the police, reference 2026/1234"]):
        note = run_cli("note", bundle, *args, "--yes", "--actor", "Jane Victim", "--sign-key",
                       key_files["signer"], "--json")
        assert note.code == 0, note.stderr
        case.events.append(note.json()["event"])
    return case
