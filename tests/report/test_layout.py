"""The report's pages and words: no page left mostly blank, a resealed bundle's banner in plain
words (the technical finding lower down), and how to verify spelled out instead of a reference."""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.support.cli import run_cli
from tests.support.fraud_case import FraudCase, report_of
from tests.support.html import Page
from tests.support.keys import make_keys
from tests.support.tools import require_tool
from tests.support.victim import make_case_bundle

FOOTER_BAND = 40  # points above the page's bottom edge: the footer ("Page n of N")
BOTTOM_MARGIN = 16 / 25.4 * 72  # pdf.py's bottomMargin


def lowest_text(page) -> float:
    """How far above the page's bottom edge its lowest line of text (footer aside) sits."""
    heights: list[float] = []

    def seen(text, cm, tm, font, size):
        if text.strip():
            heights.append(tm[4] * cm[1] + tm[5] * cm[3] + cm[5])

    page.extract_text(visitor_text=seen)
    return min(h for h in heights if h > FOOTER_BAND)


def assert_pages_filled(pdf: bytes) -> None:
    """Every page but the last is filled at least three quarters of the way down."""
    pages = PdfReader(io.BytesIO(pdf)).pages
    assert len(pages) > 1
    for number, page in enumerate(pages[:-1], 1):
        frame = float(page.mediabox.height) - 14 / 25.4 * 72 - BOTTOM_MARGIN
        blank = (lowest_text(page) - BOTTOM_MARGIN) / frame
        assert blank < 0.25, f"page {number} of {len(pages)} is {blank:.0%} blank at the bottom"


def test_no_page_of_the_pdf_is_left_mostly_blank(fraud_case: FraudCase, tmp_path: Path):
    output = tmp_path / "r.pdf"
    assert report_of(fraud_case, output).code == 0
    assert_pages_filled(output.read_bytes())


def test_no_page_is_left_blank_with_hostile_names_and_notes(tmp_path: Path):
    """The case of tests/victim (hostile names, notes of every kind), where page 2 was 80 %
    blank: the evidence list and the custody log no longer start on pages of their own."""
    case = make_case_bundle(tmp_path, make_keys(tmp_path))
    output = tmp_path / "r.pdf"
    assert run_cli("report", case.path, "-i", case.keys["identity"], "-o", output).code == 0
    assert_pages_filled(output.read_bytes())
    html = tmp_path / "r.html"
    assert run_cli("report", case.path, "-i", case.keys["identity"], "-o", html).code == 0
    assert "break-before:page" not in html.read_text()  # nor in print from a browser


# ------------------------------------------------------------------------------ resealed banner
@pytest.fixture(scope="module")
def resealed(fraud_case: FraudCase, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The case re-encrypted by a second person (the bank's investigator, with their own key)."""
    from evidencekit.crypto.keys import SigningKey

    folder = tmp_path_factory.mktemp("resealed")
    SigningKey.generate("investigator@bank").save(folder / "investigator")
    output = folder / "resealed.evidence"
    done = run_cli("reseal", fraud_case.path, "-i", fraud_case.keys["identity"], "-R",
                   fraud_case.keys["recipient"], "-o", output, "--actor", "Bank investigator",
                   "--sign-key", folder / "investigator", "--note", "for the fraud team")
    assert done.code == 0, done.stderr
    return output


def test_a_resealed_bundle_is_explained_in_plain_words(fraud_case, resealed, tmp_path):
    html = tmp_path / "r.html"
    assert run_cli("report", resealed, "-i", fraud_case.keys["identity"], "-o", html).code == 0
    text = html.read_text("utf-8")
    banner = text[text.index('id="status"'):text.index("</div>", text.index('id="status"'))]
    assert "re-encrypted" in banner and "Bank investigator" in banner
    assert "exactly those that were sealed" in banner
    for technical in ("custody/0000", "SHA256:", ".json", "payload was resealed"):
        assert technical not in banner, technical
    page = Page()
    page.feed(text)
    details = page.plain[page.plain.index("Notes from the checks"):]
    # named by its key; the name only as its claim (issue 19.4)
    assert re.search(r"custody/0000\d\d\.json: the payload was resealed by the key SHA256:\S+ "
                     r"\(it calls itself “Bank investigator”\)", details)

    pdf = tmp_path / "r.pdf"
    assert run_cli("report", resealed, "-i", fraud_case.keys["identity"], "-o", pdf).code == 0
    pages = [" ".join(p.extract_text().split()) for p in PdfReader(pdf).pages]
    first = pages[0][:pages[0].index("Summary")]
    assert "re-encrypted" in first and "Bank investigator" in first
    assert "custody/0000" not in first and "SHA256:" not in first
    assert any("the payload was resealed by the key SHA256:" in p and "Bank investigator" in p
               for p in pages[1:])


# ------------------------------------------------------------------------------ how to verify
def test_how_to_verify_gives_the_steps_not_a_reference(fraud_case: FraudCase, tmp_path: Path):
    output = tmp_path / "r.html"
    assert report_of(fraud_case, output).code == 0
    page = Page()
    page.feed(output.read_text("utf-8"))
    section = page.plain[page.plain.index("How to verify this bundle"):]
    assert "§" not in section and "FORMAT.md" not in section
    assert "You need not do any of this to rely on this report" in section
    assert "tar -xf case.evidence -C outer" in section
    assert "sha256sum -c manifest-sha256.txt" in section


@pytest.mark.interop
def test_the_steps_by_hand_work_as_printed(fraud_case: FraudCase, tmp_path: Path):
    """Each command of "Without evidencekit" run literally (KEY: the key file) in a folder
    holding the bundle; what each step says to compare is what the commands print."""
    from evidencekit.report import collect
    from evidencekit.report.model import verify_by_hand
    from evidencekit.verify import verify

    for tool in ("tar", "age", "ssh-keygen", "sha256sum"):
        require_tool(tool)
    from evidencekit.crypto import age

    identities = age.parse_identity_file(fraud_case.keys["identity"].read_bytes())
    data = collect(verify(fraud_case.path, identities), fraud_case.path.name,
                   "2026-11-24T10:00:00.000000000Z")
    work = tmp_path / "by-hand"
    work.mkdir()
    (work / fraud_case.path.name).write_bytes(fraud_case.path.read_bytes())
    outputs = []
    for _text, command in verify_by_hand(data):
        command = command.replace("KEY", str(fraud_case.keys["identity"]))
        done = subprocess.run(["sh", "-c", command], cwd=work, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, f"{command}: {done.stderr}"
        outputs.append(done.stdout + done.stderr)
    _, signature, payload, _, files, root = outputs
    assert 'Good "evidencekit" signature' in signature
    assert data.seal.signer.fingerprint in signature
    assert payload.split()[0] == data.payload_sha256
    assert files.count(": OK") == data.seal.counts["files"] and "FAILED" not in files
    assert root.split()[0] == data.seal.manifest_root
