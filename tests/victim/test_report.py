"""evidencekit report: from a real bundle to HTML (parsed) and PDF (text extracted)."""

from __future__ import annotations

import hashlib
import json
import os
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.victim.conftest import CaseBundle, make_case_bundle, make_keys, run_cli


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> CaseBundle:
    folder = tmp_path_factory.mktemp("case")
    return make_case_bundle(folder, make_keys(folder))


class Page(HTMLParser):
    """Collects the text, the tags and every attribute of an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)
        if tag == "style":
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)

    @property
    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())


def manifest_of(case: CaseBundle, tmp_path: Path) -> dict:
    out = tmp_path / "opened"
    assert run_cli("extract", case.path, "-i", case.keys["identity"], "-o", out,
                   "--as-stored").code == 0
    return json.loads((out / "evidencekit" / "manifest.json").read_bytes())


def report(case: CaseBundle, output: Path, *extra: object):
    return run_cli("report", case.path, "-i", case.keys["identity"], "-o", output, *extra)


def test_html_report_holds_everything_and_escapes_hostile_names(case, tmp_path):
    output = tmp_path / "report.html"
    result = report(case, output, "--json")
    assert result.code == 0, result.stderr
    assert result.json()["verified"] is True and result.json()["format"] == "html"
    text = output.read_text("utf-8")
    page = Page()
    page.feed(text)
    plain = page.plain
    # self-contained and inert: no scripts, no external resources, no links anywhere
    assert "script" not in page.tags and "img" not in page.tags and "link" not in page.tags
    assert not [v for k, v in page.attributes if k in ("src", "href") and v
                and not v.startswith("#")]
    assert "http" not in "".join(v or "" for _, v in page.attributes)
    assert "<script>alert('x')<script>.png" in plain  # shown as text, exactly
    assert "&lt;script&gt;" in text and "<img src=x" not in text
    assert "evil[U+202E]txt.exe" in plain  # a direction override is made visible
    assert "Überweisung Жанна Ελένη.txt" in plain
    manifest = manifest_of(case, tmp_path)
    for entry in manifest["entries"]:
        if entry.get("sha256"):
            assert entry["sha256"] in plain
    seal = run_cli("inspect", case.path, "--json").json()["seal"]
    assert seal["manifest_root"] in plain and seal["payload"]["sha256"] in plain
    assert seal["signer"]["fingerprint"] in plain
    assert "VERIFIED" in plain and "VERIFICATION FAILED" not in plain
    # incident record and the notes added later, merged, each with who signed it
    assert "Online fraud / payment scam" in plain and "used bike" in plain
    assert "GB82 WEST 1234 5698 7654 32" in plain and "+44 7700 900123" in plain
    assert "The bank recalled the transfer; recall refused" in plain
    assert "note #3 by Jane Victim" in plain  # the loss note, with its signer
    assert "Total EUR 475.00" in plain and "Total GBP 35.50" in plain
    # the custody history, every event
    for event in case.events:
        assert event["fingerprint"] in plain
    assert "Reported to the police, reference 2026/1234" in plain
    assert "How to verify this bundle" in plain and "evidencekit verify case.evidence" in plain
    # readable on a phone and on paper
    assert 'name="viewport"' in text and "@media print" in text and "@media (max-width" in text
    assert "table-header-group" in text


def test_timeline_is_in_time_order_with_offsets(case, tmp_path):
    output = tmp_path / "report.html"
    assert report(case, output).code == 0
    page = Page()
    page.feed(output.read_text("utf-8"))
    plain = page.plain
    order = ["2026-11-14 10:30 (UTC+01:00) It started",
             "2026-11-15 08:12 (UTC+01:00) Paid 450.00 EUR",
             "2026-11-16 19:05 (UTC+01:00) It was noticed",
             "2026-11-17 09:00 (UTC+01:00) The bank recalled"]
    positions = [plain.index(item) for item in order]
    assert positions == sorted(positions)


def test_pdf_report_has_real_text_page_numbers_and_unicode(case, tmp_path):
    output = tmp_path / "report.pdf"
    result = report(case, output)
    assert result.code == 0, result.stderr
    reader = PdfReader(output)
    pages = [p.extract_text() for p in reader.pages]
    text = "\n".join(pages)
    flat = " ".join(text.split())
    assert all(f"Page {n} of {len(pages)}" in page for n, page in enumerate(pages, 1))
    manifest = manifest_of(case, tmp_path)
    compact = text.replace("\n", "").replace(" ", "")
    for entry in manifest["entries"]:
        if entry.get("sha256"):
            assert entry["sha256"] in compact
    assert "VERIFIED" in flat and "Online fraud / payment scam" in flat
    assert "Total EUR" in flat and "475.00" in flat and "35.50" in flat
    assert "<script>alert('x')<script>.png" in compact.replace(" ", "")
    assert "evil[U+202E]txt.exe" in compact
    if reader.metadata is not None:
        assert "FRAUD-2026-0117" in (reader.metadata.title or "")
    from evidencekit.report.pdf import load_fonts

    if load_fonts().unicode:  # DejaVu (or EVIDENCEKIT_REPORT_FONT) is installed
        assert "Жанна" in flat and "Ελένη" in flat and "Überweisung" in flat


def test_long_lists_split_across_pages_with_headers(tmp_path):
    """510 items (in-process, to stay fast): two titled parts in HTML, many PDF pages."""
    import io

    from evidencekit.capture import CaptureRequest, CaseInfo, capture
    from evidencekit.crypto import age
    from evidencekit.crypto.keys import SigningKey
    from evidencekit.report import collect
    from evidencekit.report.html import render_html
    from evidencekit.report.pdf import render_pdf
    from evidencekit.verify import verify

    tree = tmp_path / "shots"
    tree.mkdir()
    for n in range(509):
        (tree / f"shot-{n:05d}.png").write_bytes(b"\x89PNG %d" % n)
    identity = age.X25519Identity.generate()
    bundle = tmp_path / "long.evidence"
    capture(CaptureRequest([os.fsencode(tree)], bundle, CaseInfo("LONG-1", "Jane"),
                           [identity.recipient()], SigningKey.generate(), ["test"]))
    data = collect(verify(bundle, [identity]), bundle.name, "2026-11-24T10:00:00.000000000Z")
    text = render_html(data)
    assert text.count('<h3 id="items-') == 2 and 'href="#items-2"' in text
    assert "Items 501–510 of 510</h3>" in text
    out = io.BytesIO()
    render_pdf(data, out)
    out.seek(0)
    pages = [p.extract_text() for p in PdfReader(out).pages]
    with_items = [p for p in pages if "shot-0" in p]
    assert len(with_items) > 3
    assert all("Path and SHA-256" in p for p in with_items)  # header repeated on every page
    assert all(f"Page {n} of {len(pages)}" in p for n, p in enumerate(pages, 1))


def test_failed_verification_refuses_or_marks_every_page(case, tmp_path):
    damaged = tmp_path / "damaged.evidence"
    data = bytearray(case.path.read_bytes())
    data[len(data) // 2] ^= 1  # inside payload.age
    damaged.write_bytes(bytes(data))
    refused = run_cli("report", damaged, "-i", case.keys["identity"], "-o", tmp_path / "r.pdf")
    assert refused.code == 1
    assert "no report was made" in refused.stderr and "--force" in refused.stderr
    assert not (tmp_path / "r.pdf").exists()
    forced = run_cli("report", damaged, "-i", case.keys["identity"], "-o", tmp_path / "f.pdf",
                     "--force")
    assert forced.code == 1
    pages = [p.extract_text() for p in PdfReader(tmp_path / "f.pdf").pages]
    assert all("VERIFICATION FAILED" in p for p in pages)
    forced_html = run_cli("report", damaged, "-i", case.keys["identity"], "-o",
                          tmp_path / "f.html", "--force")
    assert forced_html.code == 1
    assert 'class="banner failed"' in (tmp_path / "f.html").read_text()


def test_wrong_key_says_what_to_do(case, tmp_path):
    from evidencekit.crypto import age

    other = tmp_path / "other.txt"
    other.write_text(f"{age.X25519Identity.generate()}\n")
    result = run_cli("report", case.path, "-i", other, "-o", tmp_path / "r.html")
    assert result.code == 4
    assert "ask the person who made the bundle" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "r.html").exists()


def test_report_needs_a_key_and_never_overwrites(case, tmp_path):
    no_key = run_cli("report", case.path, "-o", tmp_path / "r.html")
    assert no_key.code == 2 and "-i" in no_key.stderr
    existing = tmp_path / "exists.pdf"
    existing.write_bytes(b"keep")
    again = report(case, existing)
    assert again.code == 2 and existing.read_bytes() == b"keep"
    odd = report(case, tmp_path / "report.docx")
    assert odd.code == 2 and "report.html or report.pdf" in odd.stderr
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".partial")]


def test_report_does_not_change_the_bundle(case, tmp_path):
    before = hashlib.sha256(case.path.read_bytes()).hexdigest()
    assert report(case, tmp_path / "r.html").code == 0
    assert hashlib.sha256(case.path.read_bytes()).hexdigest() == before


def test_pdf_without_a_unicode_font_says_so_and_loses_no_character(case, tmp_path, monkeypatch):
    import io

    from evidencekit.crypto import age
    from evidencekit.report import collect
    from evidencekit.report import pdf as pdf_module
    from evidencekit.verify import verify

    monkeypatch.delenv(pdf_module.FONT_ENV, raising=False)
    monkeypatch.setattr(pdf_module, "_find", lambda names: None)
    monkeypatch.setattr(pdf_module, "OTHER_REGULAR", ())
    identities = age.parse_identity_file(case.keys["identity"].read_bytes())
    data = collect(verify(case.path, identities), case.path.name, "2026-11-24T10:00:00.000000000Z")
    out = io.BytesIO()
    fonts = pdf_module.render_pdf(data, out)
    assert not fonts.unicode and fonts.regular == "Helvetica"
    out.seek(0)
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(out).pages).split())
    assert "No Unicode font was found" in text and "fonts-dejavu-core" in text
    assert "[U+0416]" in text.replace(" ", "")  # Ж, written as its code point, not dropped
    assert "Überweisung" in text  # Latin-1 letters still print
