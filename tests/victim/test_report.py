"""evidencekit report: from a real bundle to HTML (parsed) and PDF (text extracted)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from pypdf import PdfReader

from evidencekit import __version__
from tests.support.cli import run_cli
from tests.support.html import Page
from tests.support.keys import make_keys
from tests.support.victim import CaseBundle, make_case_bundle


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> CaseBundle:
    folder = tmp_path_factory.mktemp("case")
    return make_case_bundle(folder, make_keys(folder))


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


@pytest.mark.parametrize(("umask", "mode"), [(0o077, 0o600), (0o027, 0o600), (0o022, 0o600)])
@pytest.mark.parametrize("name", ["report.html", "report.pdf"])
def test_report_is_private_whatever_the_umask(case, tmp_path, umask, mode, name):
    """It holds decrypted names, hashes, the incident record and pictures: 0600 like the
    bundle and every export, not 0644 under the usual umask 022."""
    old = os.umask(umask)
    try:
        result = report(case, tmp_path / name)
    finally:
        os.umask(old)
    assert result.code == 0, result.stderr
    assert (tmp_path / name).stat().st_mode & 0o777 == mode
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


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


# ----------------------------------------------------- wrong key or passphrase, in plain words
@pytest.fixture(scope="module")
def passphrase_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A small passphrase-protected bundle, its passphrase file, and keys (for the wrong tries)."""
    folder = tmp_path_factory.mktemp("passphrase-case")
    key_files = make_keys(folder)
    (folder / "evidence").mkdir()
    (folder / "evidence" / "chat.png").write_bytes(b"\x89PNG")
    secret = folder / "pass.txt"
    secret.write_text("correct horse battery staple\n")
    bundle = folder / "case.evidence"
    made = run_cli("capture", folder / "evidence", "--passphrase-file", secret, "--sign-key",
                   key_files["signer"], "-o", bundle, "--examiner", "Jane Victim")
    assert made.code == 0, made.stderr
    return bundle, secret, key_files


JARGON = ("stanza", "scrypt", "X25519", "did not match", "none of the keys given (-i)")


def test_report_on_a_passphrase_bundle_given_a_key_says_to_use_the_passphrase(passphrase_case,
                                                                              tmp_path):
    bundle, _, key_files = passphrase_case
    result = run_cli("report", bundle, "-i", key_files["identity"], "-o", tmp_path / "r.html")
    assert result.code == 4 and not (tmp_path / "r.html").exists()
    text = " ".join(result.stderr.split())
    assert "this bundle is protected by a passphrase, not a key" in text
    assert "use -p" in text and "ask the person who made the bundle for the passphrase" in text
    assert not [word for word in JARGON if word in text]


def test_report_on_a_key_bundle_given_a_passphrase_says_to_use_the_key(case, passphrase_case,
                                                                       tmp_path):
    _, secret, _ = passphrase_case
    result = run_cli("report", case.path, "--passphrase-file", secret, "-o", tmp_path / "r.pdf")
    assert result.code == 4 and not (tmp_path / "r.pdf").exists()
    text = " ".join(result.stderr.split())
    assert "this bundle is protected by a key, not a passphrase" in text
    assert "-i KEYFILE" in text and "ask the person who made the bundle" in text
    assert "passphrase did not match" not in text and "(-i)" not in text


@pytest.mark.parametrize("command", ["verify", "extract"])
def test_wrong_passphrase_on_verify_and_extract_is_plain_and_consistent(passphrase_case,
                                                                        tmp_path, command):
    bundle, _, _ = passphrase_case
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the passphrase\n")
    extra = ["-o", tmp_path / "out"] if command == "extract" else []
    result = run_cli(command, bundle, "--passphrase-file", wrong, *extra)
    assert result.code == 4, result.stderr
    text = " ".join((result.stdout + result.stderr).split())
    # what was given is known: a passphrase, the wrong one (as report says it)
    assert "the passphrase does not open this bundle" in text
    assert "ask the person who made the bundle" in text
    assert "stanza" not in text and "0 problem(s)" not in text
    assert "could not be opened" in text
    assert not (tmp_path / "out").exists()


def test_forced_report_without_the_key_says_plainly_why(passphrase_case, tmp_path):
    bundle, _, key_files = passphrase_case
    output = tmp_path / "r.html"
    result = run_cli("report", bundle, "-i", key_files["identity"], "-o", output, "--force")
    assert result.code == 4, result.stderr
    page = Page()
    page.feed(output.read_text("utf-8"))
    assert "the bundle could not be opened: this bundle is protected by a passphrase" in \
        page.plain
    assert "stanza" not in page.plain
    # who captured it is in the signed custody log, readable without the key
    assert "Captured by Jane Victim" in " ".join(page.plain.split())


# -------------------------------------------- an incident record that fails verification
@pytest.fixture(scope="module")
def edited_incident(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A bundle resealed by someone who changed the incident record on the way (the signed
    manifest still names the original), as in test_capture_incident."""
    from evidencekit.crypto import age
    from evidencekit.crypto.keys import load_signing_key
    from evidencekit.custody import resealing
    from evidencekit.custody.events import EventRequest
    from evidencekit.custody.resealing import reseal
    from tests.support.victim import INCIDENT_YAML

    folder = tmp_path_factory.mktemp("edited")
    key_files = make_keys(folder)
    (folder / "evidence").mkdir()
    (folder / "evidence" / "statement.csv").write_text("2026-11-15,-450.00,EUR\n")
    incident = folder / "incident.yaml"
    incident.write_text(INCIDENT_YAML)
    bundle = folder / "case.evidence"
    made = run_cli("capture", folder / "evidence", "--incident", incident, "-R",
                   key_files["recipient"], "--sign-key", key_files["signer"], "-o", bundle)
    assert made.code == 0, made.stderr
    original = resealing._Tee.write
    resealing._Tee.write = lambda self, data: original(  # type: ignore[method-assign]
        self, data.replace(b"used bike", b"new bike!"))
    try:
        identity = age.parse_identity_file(key_files["identity"].read_bytes())
        reseal(bundle, folder / "edited.evidence", identity, [identity[0].recipient()],
               EventRequest("resealed", "Mallory", load_signing_key(key_files["signer"], None)))
    finally:
        resealing._Tee.write = original  # type: ignore[method-assign]
    return folder / "edited.evidence", key_files


def test_forced_report_marks_an_edited_incident_record_as_not_sealed(edited_incident, tmp_path):
    bundle, key_files = edited_incident
    html_out, pdf_out = tmp_path / "r.html", tmp_path / "r.pdf"
    for output in (html_out, pdf_out):
        result = run_cli("report", bundle, "-i", key_files["identity"], "-o", output, "--force")
        assert result.code == 1, result.stderr
    page = Page()
    page.feed(html_out.read_text("utf-8"))
    plain = page.plain
    assert "new bike!" in plain  # shown, since --force was given ...
    assert "1. What happened — NOT the sealed record — it fails verification" in plain
    # ... but never as sealed (the notes from the checks say who resealed the bundle)
    assert "sealed by" not in plain.replace("Sealed by key", "").replace("resealed by", "")
    assert plain.count("incident record — NOT the sealed record — it fails verification") >= 4
    pdf = " ".join(" ".join(p.extract_text() for p in PdfReader(pdf_out).pages).split())
    assert "1. What happened — NOT the sealed record — it fails verification" in pdf
    assert "(sealed by" not in pdf and "NOT the sealed record" in pdf


def test_report_of_a_verified_bundle_calls_the_record_sealed(case, tmp_path):
    output = tmp_path / "r.html"
    assert report(case, output).code == 0
    page = Page()
    page.feed(output.read_text("utf-8"))
    assert "incident record (sealed by Jane Victim)" in page.plain
    assert "NOT the sealed record" not in page.plain


# ------------------------------------------------------------------ wording and dates
def test_how_to_verify_says_where_to_get_evidencekit(case, tmp_path):
    output = tmp_path / "r.html"
    assert report(case, output).code == 0
    page = Page()
    page.feed(output.read_text("utf-8"))
    section = page.plain[page.plain.index("How to verify this bundle"):]
    # no package index has it (issue 20.7): the release's wheel, or its single-file app
    assert f"pipx install ./evidencekit-{__version__}-py3-none-any.whl" in section
    assert "python3 evidencekit.pyz" in section
    assert "pipx install evidencekit " not in section + " "
    assert section.index("pipx install") < section.index("evidencekit verify case.evidence")


def test_dates_without_a_time_and_counts_of_one(tmp_path):
    """A date given without a time is shown as that date; '1 folder', 'the 1 file'."""
    import io

    from evidencekit import incident as inc
    from evidencekit.capture import CaptureRequest, CaseInfo, capture
    from evidencekit.crypto import age
    from evidencekit.crypto.keys import SigningKey
    from evidencekit.report import collect
    from evidencekit.report.html import render_html
    from evidencekit.report.pdf import render_pdf
    from evidencekit.verify import verify

    tree = tmp_path / "shots"
    tree.mkdir()
    (tree / "one.png").write_bytes(b"\x89PNG")
    record = inc.from_input({"started": "2026-11-14", "timeline": [
        {"time": "2026-11-15", "description": "Paid the seller"}]})
    identity = age.X25519Identity.generate()
    bundle = tmp_path / "one.evidence"
    capture(CaptureRequest([os.fsencode(tree)], bundle, CaseInfo("ONE-1", "Jane"),
                           [identity.recipient()], SigningKey.generate(), ["test"],
                           incident=record.to_json()))
    data = collect(verify(bundle, [identity]), bundle.name, "2026-11-24T10:00:00.000000000Z")
    page = Page()
    page.feed(render_html(data))
    plain = page.plain
    assert "2026-11-15 Paid the seller" in plain and "2026-11-14 It started" in plain
    assert "2026-11-14 00:00" not in plain and "(UTC" not in plain.split("Timeline")[1][:300]
    assert "1 file (" in plain and "1 folder" in plain and "1 folders" not in plain
    assert "the 1 file were checked" in plain and "all 1 files" not in plain
    out = io.BytesIO()
    render_pdf(data, out)
    out.seek(0)
    pdf = " ".join(" ".join(p.extract_text() for p in PdfReader(out).pages).split())
    assert "1 folder" in pdf and "1 folders" not in pdf and "all 1 files" not in pdf
    assert "2026-11-15 Paid the seller" in pdf


# ----------------------------------------------------------------- PDF evidence list density
def test_pdf_evidence_list_fits_25_items_a_page(tmp_path):
    """300 files with ordinary names: the hash fits on one line under the path, so a page holds
    25 items or more (13 before); and no page holds nothing but the footer."""
    import io
    import re

    from evidencekit.capture import CaptureRequest, CaseInfo, capture
    from evidencekit.crypto import age
    from evidencekit.crypto.keys import SigningKey
    from evidencekit.report import collect
    from evidencekit.report.pdf import render_pdf
    from evidencekit.verify import verify

    tree = tmp_path / "Screenshots" / "2026-11"
    tree.mkdir(parents=True)
    for n in range(300):
        (tree / f"Screenshot 2026-11-16 at 14.{n:05d}.png").write_bytes(b"\x89PNG %d" % n)
    identity = age.X25519Identity.generate()
    bundle = tmp_path / "many.evidence"
    capture(CaptureRequest([os.fsencode(tmp_path / "Screenshots")], bundle,
                           CaseInfo("MANY-1", "Jane"), [identity.recipient()],
                           SigningKey.generate(), ["test"]))
    data = collect(verify(bundle, [identity]), bundle.name, "2026-11-24T10:00:00.000000000Z")
    out = io.BytesIO()
    render_pdf(data, out)
    out.seek(0)
    pages = [p.extract_text() for p in PdfReader(out).pages]
    counts = [len(re.findall(r"at 14\.\d{5}\.png", page)) for page in pages]
    full_pages = [c for c in counts if c][1:-1]  # the first and last list pages are partial
    assert full_pages and min(full_pages) >= 25, counts
    assert sum(counts) == 300
    hashes = {item.sha256 for item in data.items if item.sha256}
    one_line = {line.strip() for page in pages for line in page.splitlines()}
    assert hashes <= one_line  # every SHA-256 whole on one line
    for number, page in enumerate(pages, 1):
        body = [line for line in page.splitlines()
                if line.strip() and "evidence report · sealer" not in line
                and not line.startswith("Page ")]
        assert len(" ".join(body)) > 200, f"page {number} is almost empty: {body}"


def test_problems_are_named_in_plain_words_not_by_check_name():
    from evidencekit.findings import Finding
    from evidencekit.report.model import finding_line

    custody = Finding("custody", "custody/000003.json", "event does not chain to the one before",
                      "ab12", "cd34")
    assert finding_line(custody) == ("Chain of custody — custody/000003.json: event does not "
                                      "chain to the one before (expected ab12, found cd34)")
    warning = Finding("custody", "custody/000002.json", "time goes backwards", severity="warning")
    assert finding_line(warning) == "Chain of custody — custody/000002.json: time goes backwards"
    assert finding_line(Finding("new-check", "x", "odd")) == "new-check — x: odd"  # fallback


def test_a_forced_report_names_the_failed_checks_in_plain_words(case, tmp_path):
    damaged = tmp_path / "damaged.evidence"
    data = bytearray(case.path.read_bytes())
    data[len(data) // 2] ^= 1  # inside payload.age
    damaged.write_bytes(bytes(data))
    output = tmp_path / "f.html"
    assert run_cli("report", damaged, "-i", case.keys["identity"], "-o", output,
                   "--force").code == 1
    page = Page()
    page.feed(output.read_text("utf-8"))
    assert "Encrypted evidence (fingerprint) — payload.age:" in page.plain
    assert "[payload-hash]" not in page.plain and "[payload-decrypt]" not in page.plain
