"""capture --url end to end: a real HTTPS site on 127.0.0.1 captured by the real command, then
verify, extract, and the files and records read back (WARC, pictures, the capture document
against its JSON Schema, the manifest's source of kind "web")."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from evidencekit.crypto import age
from evidencekit.sources.web.render import BROWSER_ENV
from evidencekit.verify import verify
from tests.support.by_hand import by_hand, toolbox_in
from tests.support.cli import run_cli
from tests.support.schemas import assert_valid
from tests.support.tools import require_tool
from tests.support.web_capture import capture, extracted, valid_capture_document
from tests.support.web_server import PNG, Site, https_site, warcio_command


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with https_site(tmp_path) as running:
        yield running


def test_a_web_page_is_captured_verified_and_extracted(tmp_path: Path, keys: dict[str, Path],
                                                       home: Path, site: Site) -> None:
    require_tool("chromium")
    done = capture(tmp_path, keys, "--url", site.base + "/")
    assert done.code == 0, done.stderr + done.stdout
    result = json.loads(done.stdout)
    assert_valid(result, "capture")
    assert result["seal"]["complete"]
    assert result["web"] == [{
        "url": site.base + "/", "final_url": site.base + "/page.html",
        "files": ["data/127.0.0.1.page.warc.gz", "data/127.0.0.1.screenshot.png",
                  "data/127.0.0.1.page.pdf", "data/127.0.0.1.web-capture.json"],
        "status": 200, "requests": 7, "complete": True,  # the favicon asked by Chromium too
        "problems": [], "certificate_verified": False,
        "certificate_error": "self-signed certificate", "screenshot": True, "pdf": True,
        "absent": {}}]
    data = extracted(tmp_path, keys)
    assert sorted(p.name for p in data.iterdir()) == [  # flat: no folder the manifest lacks
        "127.0.0.1.page.pdf", "127.0.0.1.page.warc.gz", "127.0.0.1.screenshot.png",
        "127.0.0.1.web-capture.json"]
    assert (data / "127.0.0.1.screenshot.png").read_bytes().startswith(b"\x89PNG")
    assert (data / "127.0.0.1.page.pdf").read_bytes().startswith(b"%PDF-")
    warc = (data / "127.0.0.1.page.warc.gz").read_bytes()
    assert PNG not in warc  # each record is compressed on its own (.warc.gz)
    document = valid_capture_document(data / "127.0.0.1.web-capture.json")
    assert document["url"] == site.base + "/" and document["final_url"] == \
        site.base + "/page.html"
    assert document["complete"] and document["status"] == 200
    assert [e["role"] for e in document["exchanges"]] == ["page", "redirected"] + \
        ["resource"] * 4 + ["browser"]
    assert document["exchanges"][-1]["url"] == site.base + "/favicon.ico"  # asked by Chromium
    assert site.hits["/favicon.ico"] == 1  # once, for two pictures
    tls = document["exchanges"][1]["tls"]
    assert tls["verified"] is False and "self-signed" in tls["verify_error"]
    assert tls["certificates"][0]["subject"] == "CN=fake-bank.test"
    assert document["files"]["screenshot"] == "127.0.0.1.screenshot.png"

    report = verify(tmp_path / "out.evidence",
                    age.parse_identity_file(keys["identity"].read_bytes()))
    assert report.ok and report.manifest is not None
    assert [{k: v for k, v in s.items() if k != "details"} for s in
            report.manifest.get("sources")] == [
        {"index": 0, "given": site.base + "/", "path": site.base + "/page.html",
         "bag_name": "127.0.0.1", "via_symlink": False, "kind": "web"}]
    [source] = report.manifest.get("sources")
    assert source["details"]["certificate_sha256"] == hashlib.sha256(site.certificate_der) \
        .hexdigest()
    assert source["details"]["address"] == "127.0.0.1" and source["details"]["complete"]

    # the report for the police lists the page, from the signed manifest
    for name in ("report.html", "report.pdf"):
        made = run_cli("report", tmp_path / "out.evidence", "-i", keys["identity"],
                       "-o", tmp_path / name)
        assert made.code == 0, made.stderr
    html = (tmp_path / "report.html").read_text()
    assert "Web page" in html and f"{site.base}/ → {site.base}/page.html" in html
    assert f"HTTP 200 from 127.0.0.1; certificate SHA-256 {source['details']['certificate_sha256']}" \
        " (not trusted: self-signed certificate); screenshot and PDF made from the capture; " \
        "stored as data/127.0.0.1.*" in html
    from pypdf import PdfReader
    text = " ".join(" ".join(page.extract_text() for page in
                             PdfReader(tmp_path / "report.pdf").pages).split())
    assert "Web page" in text and "self-signed certificate" in text
    entries = {e["bag_path"]: e for e in report.manifest.entries()}
    assert entries["data/127.0.0.1.page.warc.gz"]["error"] is None
    assert entries["data/127.0.0.1.page.warc.gz"]["path"] == "127.0.0.1.page.warc.gz"

    # FORMAT.md §7.2's procedure, standard tools only; then warcio on the WARC found by hand
    toolbox = toolbox_in(tmp_path / "toolbox")
    checked = by_hand(toolbox, tmp_path / "out.evidence", "-i", keys["identity"])
    assert checked.code == 0, checked.verdict
    found = tmp_path / "out.evidence.checked/payload/bag/data/127.0.0.1.page.warc.gz"
    assert found.read_bytes() == warc
    oracle = subprocess.run([warcio_command(), "check", str(found)], capture_output=True,
                            text=True, timeout=60)
    assert oracle.returncode == 0, oracle.stdout
    index = subprocess.run([warcio_command(), "index", "-f", "warc-type,warc-target-uri",
                            str(found)], capture_output=True, text=True, timeout=60)
    assert f'"warc-type": "response", "warc-target-uri": "{site.base}/favicon.ico"' in \
        index.stdout  # what Chromium asked, in the stored WARC (written after the pictures)


def test_a_page_that_never_answers_makes_an_incomplete_capture(
        tmp_path: Path, keys: dict[str, Path], home: Path, site: Site) -> None:
    done = capture(tmp_path, keys, "--url", site.base + "/slow",
                   env={BROWSER_ENV: str(tmp_path / "no-browser")})
    assert done.code == 3, done.stderr + done.stdout
    result = json.loads(done.stdout)
    assert_valid(result, "capture")
    assert not result["seal"]["complete"] and result["seal"]["counts"]["errors"] == 1
    assert "did not answer within 2 s" in json.dumps(result)
    data = extracted(tmp_path, keys)
    document = valid_capture_document(data / "127.0.0.1.web-capture.json")
    assert not document["complete"] and document["files"]["screenshot"] is None
    assert "nothing was received" in document["files"]["absent"]["screenshot"]


def test_a_url_that_cannot_be_fetched_is_a_usage_error(tmp_path: Path, keys: dict[str, Path],
                                                       home: Path) -> None:
    done = capture(tmp_path, keys, "--url", "ftp://example.org/file")
    assert done.code == 2 and "http:// or https://" in done.stdout + done.stderr
    assert not (tmp_path / "out.evidence").exists()


def test_the_text_summary_says_what_was_captured_and_what_is_missing(
        tmp_path: Path, keys: dict[str, Path], home: Path, site: Site) -> None:
    done = run_cli("capture", "--case", "WEB-2", "-R", keys["recipient"], "--sign-key",
                   keys["signer"], "-o", tmp_path / "out.evidence", "--url-timeout", "1",
                   "--url", site.base + "/odd.html", "--url", site.base + "/slow",
                   env={BROWSER_ENV: str(tmp_path / "no-browser"), "COLUMNS": "200"})
    assert done.code == 3, done.stderr
    said = " ".join(done.stderr.split())
    assert f"Web page {site.base}/odd.html: HTTP 200, 4 requests, no screenshot or PDF; stored " \
        "as data/127.0.0.1.*" in said
    assert "Its certificate is not trusted (self-signed certificate): recorded, and the page " \
        "captured anyway" in said
    assert "No screenshot: Chromium is not installed" in said
    assert f"Web page {site.base}/slow: no answer, 1 request" in said and "data/127.0.0.1~1.*" \
        in said
    assert "Missing: the page " + site.base + "/slow was not captured whole: the server did " \
        "not answer within 1 s" in said
    assert "Traceback" not in done.stderr
