"""A fraud case for report tests: screenshots and e-mails, captured with an incident record."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from tests.support.cli import run_cli
from tests.support.victim import INCIDENT_YAML

SELLER_EML = (
    "Return-Path: <bike.seller@example.net>\r\n"
    "From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <bike.seller@example.net>\r\n"
    "To: Jane Victim <jane@example.org>,\r\n"
    " \"Example Bank fraud desk\" <fraud@bank.example>\r\n"
    "Date: Sat, 14 Nov 2026 10:31:00 +0100\r\n"
    "Subject: =?utf-8?b?UmU6IEZhaHJyYWQg4oCTIElCQU4gZsO8ciBkaWUgWmFobHVuZw==?=\r\n"
    "Message-ID: <1@example.net>\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Please pay 450 EUR to GB82 WEST 1234 5698 7654 32 today, other buyers are waiting.\r\n")


BANK_EML = (
    "From: Example Bank <noreply@bank.example>\n"
    "To: jane@example.org\n"
    "Date: Mon, 16 Nov 2026 19:02:11 +0000\n"
    "Subject: Your transfer TX-4411 was executed\n"
    "\n" + "Dear customer,\n" * 20000)  # large: only its headers are read


SELLER_SUBJECT = "Re: Fahrrad – IBAN für die Zahlung"


def screenshot(size: tuple[int, int], lines: list[str], fmt: str) -> bytes:
    """A picture with readable text on it, like a screenshot of a chat or a banking app."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", size, (236, 229, 221))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(18, size[0] // 30))
    y = 40
    for n, line in enumerate(lines):
        x = 40 if n % 2 else size[0] // 3
        box = draw.textbbox((x, y), line, font=font)
        draw.rounded_rectangle((box[0] - 16, box[1] - 12, box[2] + 16, box[3] + 12), 18,
                               fill=(255, 255, 255) if n % 2 else (220, 248, 198))
        draw.text((x, y), line, fill=(20, 20, 20), font=font)
        y = box[3] + 60
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


CHAT_LINES = ["Hi, is the bike still available?", "Yes! 450 EUR, bank transfer only",
              "Can I see it first?", "No time, other buyers. Pay today: GB82 WEST 1234 5698 7654 32",
              "OK, paid. Reference TX-4411", "(no answer)"]


def make_evidence(folder: Path) -> Path:
    evidence = folder / "evidence"
    shots = evidence / "Screenshots"
    shots.mkdir(parents=True)
    (shots / "chat with the seller.png").write_bytes(
        screenshot((1080, 2340), CHAT_LINES, "PNG"))
    (shots / "banking app.jpg").write_bytes(
        screenshot((1280, 800), ["Transfer executed", "450.00 EUR to GB82 WEST 1234 5698 7654 32",
                                 "Reference TX-4411"], "JPEG"))
    (shots / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"junk" * 8)
    mail = evidence / "E-mails"
    mail.mkdir()
    (mail / "from the seller.eml").write_bytes(SELLER_EML.encode())
    (mail / "from the bank.eml").write_text(BANK_EML)
    (evidence / "statement.csv").write_text("2026-11-15,-450.00,EUR,TX-4411\n")
    return evidence


@dataclass
class FraudCase:
    path: Path
    folder: Path
    keys: dict[str, Path]


def capture_case(folder: Path, keys: dict[str, Path], evidence: Path,
                 name: str = "case.evidence") -> Path:
    incident = folder / "incident.yaml"
    incident.write_text(INCIDENT_YAML)
    bundle = folder / name
    made = run_cli("capture", evidence, "--incident", incident, "--case", "FRAUD-2026-0117",
                   "--examiner", "Jane Victim", "-R", keys["recipient"], "--sign-key",
                   keys["signer"], "-o", bundle, "--json")
    assert made.code == 0, made.stderr
    for args in (["--kind", "timeline", "--time", "2026-11-17 09:00 +01:00", "--text",
                  "The bank recalled the transfer; recall refused"],
                 ["--text", "Reported to the police, reference 2026/1234"]):
        note = run_cli("note", bundle, *args, "--yes", "--actor", "Jane Victim", "--sign-key",
                       keys["signer"], "--json")
        assert note.code == 0, note.stderr
    return bundle


def report_of(case: FraudCase, output: Path, *extra: object):
    return run_cli("report", case.path, "-i", case.keys["identity"], "-o", output, *extra)
