"""The full headers of e-mails in the report (issue 24: "the full headers of the messages the
user marks, or of all of them when they are few"), and the list of e-mails that never drops
one silently: how many are not listed, and where they are."""

from __future__ import annotations

import hashlib
import re
import tarfile
from pathlib import Path

import pytest
from pypdf import PdfReader

from evidencekit.report import previews
from evidencekit.report.previews import FullHeaders, PreviewCollector, Previews, matching
from tests.support.fraud_case import FraudCase, report_of
from tests.support.html import Page
from tests.support.schemas import assert_valid


def eml(number: int, extra: bytes = b"") -> bytes:
    return (b"Received: from mx.example.net (mx.example.net [192.0.2.7])\r\n"
            b"\tby mail.example.org with ESMTPS id " + str(number).encode() + b"\r\n"
            b"From: scam@example.net\r\nSubject: message " + str(number).encode() + b"\r\n"
            + extra + b"\r\nbody " * 3)


def collect(collector: PreviewCollector, count: int) -> Previews:
    for number in range(1, count + 1):
        data = eml(number)
        member = tarfile.TarInfo(f"bag/data/jane@x.INBOX.{number}.eml")
        member.size = len(data)
        collector.file(f"data/jane@x.INBOX.{number}.eml", member, iter([data[:5], data[5:]]))
    return collector.finish()


def test_every_e_mail_s_headers_are_kept_when_they_are_few():
    found = collect(PreviewCollector(), 3)
    assert [h.bag_path for h in found.headers] == [f"data/jane@x.INBOX.{n}.eml" for n in (1, 2, 3)]
    first = found.headers[0]
    assert first.text == ("Received: from mx.example.net (mx.example.net [192.0.2.7])\n"
                          "\tby mail.example.org with ESMTPS id 1\nFrom: scam@example.net\n"
                          "Subject: message 1")
    assert first.sha256 == hashlib.sha256(eml(1)).hexdigest() and not first.marked


def test_only_the_marked_ones_when_there_are_many(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(previews, "FEW_EMAILS", 2)
    collector = PreviewCollector(["*.INBOX.5.eml", "data/jane@x.INBOX.6.eml", "*.Junk.*"],
                                 email_limit=3)
    found = collect(collector, 6)
    assert [h.bag_path for h in found.headers] == ["data/jane@x.INBOX.5.eml",
                                                   "data/jane@x.INBOX.6.eml"]
    assert all(h.marked for h in found.headers)  # 1 and 2 (few at first) were forgotten
    assert len(found.emails) == 3 and found.emails_left_out == 3  # 5 and 6: headers, not listed
    assert found.marks_unmatched == ("*.Junk.*",)
    assert found.headers[0].sha256 == hashlib.sha256(eml(5)).hexdigest()


def test_marked_headers_are_bounded_and_the_rest_counted(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(previews, "FEW_EMAILS", 0)
    monkeypatch.setattr(previews, "MAX_FULL_HEADERS", 2)
    found = collect(PreviewCollector(["*"], email_limit=None), 5)
    assert len(found.headers) == 2 and found.headers_left_out == 3
    assert len(found.emails) == 5 and found.emails_left_out == 0


def test_the_header_block_is_shown_as_stored_bounded():
    text, cut = previews.header_block("Subject: Überweisung\n".encode()
                                      + b"X-Latin: caf\xe9\n\nbody")  # Latin-1, not UTF-8
    assert text == "Subject: Überweisung\nX-Latin: caf\\xe9" and not cut
    text, cut = previews.header_block(b"X-Long: " + b"a" * (previews.EMAIL_HEAD_BYTES - 8))
    assert cut and len(text) == previews.EMAIL_HEAD_BYTES


def test_headers_are_kept_only_for_content_the_manifest_lists():
    headers = FullHeaders("data/b.eml", "bb" * 32, 20, "Subject: x")
    found = Previews(headers=[headers])
    assert matching(found, {"data/b.eml": ("bb" * 32, 20)}).headers == [headers]
    assert matching(found, {"data/b.eml": ("cc" * 32, 20)}).headers == []


def test_the_report_shows_the_full_headers_of_few_e_mails(fraud_case: FraudCase, tmp_path: Path):
    output = tmp_path / "r.html"
    done = report_of(fraud_case, output, "--json")
    assert done.code == 0, done.stderr
    assert_valid(done.json(), "report")
    assert done.json()["emails"]["not_listed"] == 0
    assert len(done.json()["emails"]["full_headers"]) == 2
    html = output.read_text("utf-8")
    block = re.search(r"<pre class=headers>(Return-Path.*?)</pre>", html, re.S)
    assert block, html
    assert block[1].split("\n")[:4] == [
        "Return-Path: &lt;bike.seller@example.net&gt;",
        "From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= &lt;bike.seller@example.net&gt;",
        "To: Jane Victim &lt;jane@example.org&gt;,",
        " &quot;Example Bank fraud desk&quot; &lt;fraud@bank.example&gt;"]  # folding kept
    assert "Message-ID: &lt;1@example.net&gt;" in block[1] and "Please pay" not in block[1]
    page = Page()
    page.feed(html)
    assert "Full headers" in page.plain and "--full-headers" not in page.plain  # few: all
    pdf = tmp_path / "r.pdf"
    assert report_of(fraud_case, pdf).code == 0
    text = " ".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert "Full headers" in text and "Return-Path: <bike.seller@example.net>" in text
    assert "Message-ID: <1@example.net>" in text


def test_a_name_that_matches_no_e_mail_is_said(fraud_case: FraudCase, tmp_path: Path):
    output = tmp_path / "r.html"
    done = report_of(fraud_case, output, "--full-headers", "from the bank.eml",  # its own name
                     "--full-headers", "nothing-*.eml")
    assert done.code == 0, done.stderr
    assert "--full-headers 'nothing-*.eml' names no e-mail" in done.stderr
    page = Page()
    page.feed(output.read_text("utf-8"))
    assert "Nothing matched 'nothing-*.eml'" in page.plain
    assert "From: Example Bank <noreply@bank.example>" in page.plain
    assert "Return-Path" not in page.plain  # the seller's e-mail was not asked for


def test_e_mails_not_listed_are_counted_and_said_where_they_are():
    from evidencekit.report.model import emails_left_out_text

    found = collect(PreviewCollector(email_limit=2), 5)
    assert len(found.emails) == 2 and found.emails_left_out == 3
    text = emails_left_out_text(found)
    assert text.startswith("3 more e-mails not listed here (the first 2 are)")
    assert "evidence list (section 6)" in text and "--all-emails" in text
