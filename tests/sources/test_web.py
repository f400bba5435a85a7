"""Web pages (evidencekit.sources.web) against a real HTTPS server on 127.0.0.1 (tests/support/
web_server.py), with warcio's own commands as the WARC oracle and headless Chromium for the
pictures."""

from __future__ import annotations

import importlib
import io
import ipaddress
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from evidencekit.errors import UsageError
from evidencekit.sources.web import check_url
from evidencekit.sources.web.page import PageCapture, capture_json, capture_page
from evidencekit.sources.web.render import BROWSER_ENV, render
from evidencekit.sources.web_limits import Limits
from tests.support.env import bare_home
from tests.support.schemas import assert_valid
from tests.support.tools import require_tool
from tests.support.web_server import (
    CONFIG,
    CSS,
    FONT,
    MORE_CSS,
    PAGE,
    PNG,
    SCRIPT,
    SITE_CSS,
    Site,
    gzip_bomb,
    https_site,
    warcio_command,
)

QUICK = Limits(timeout=1.0, user_agent="evidencekit-test")
# for captures that must succeed whole on a loaded machine (a TLS handshake can take a second)
PATIENT = Limits(timeout=10.0, user_agent="evidencekit-test")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with https_site(tmp_path) as running:
        yield running


def checked_by_warcio(tmp_path: Path, capture: PageCapture) -> list[str]:
    """``warcio check`` and ``warcio index`` accept the WARC; the index lines."""
    path = tmp_path / "page.warc.gz"
    path.write_bytes(capture.warc)
    checked = subprocess.run([warcio_command(), "check", "-v", str(path)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "digest pass" in checked.stdout and "fail" not in checked.stdout
    index = subprocess.run([warcio_command(), "index", "-f", "warc-type,warc-target-uri",
                            str(path)], capture_output=True, text=True, timeout=60)
    assert index.returncode == 0, index.stderr
    return index.stdout.splitlines()


def responses(capture: PageCapture) -> dict[str, tuple[dict[str, str], bytes]]:
    """URL -> (WARC headers, HTTP payload as warcio decodes it) of each response record."""
    from warcio.archiveiterator import ArchiveIterator  # the test extra's oracle
    found = {}
    for record in ArchiveIterator(io.BytesIO(capture.warc)):
        if record.rec_type == "response":
            found[record.rec_headers.get_header("WARC-Target-URI")] = (
                dict(record.rec_headers.headers), record.content_stream().read())
    return found


def test_a_page_its_redirect_and_resources_are_one_valid_warc(site: Site,
                                                              tmp_path: Path) -> None:
    capture = capture_page(site.base + "/", QUICK)
    roles = [(role, e.url.removeprefix(site.base), e.status) for role, e in capture.exchanges]
    assert roles == [("page", "/", 302), ("redirected", "/page.html", 200),
                     ("resource", "/style.css", 200), ("resource", "/app.js", 200),
                     ("resource", "/logo.png", 200), ("resource", "/missing.png", 404)]
    assert capture.final_url == site.base + "/page.html" and capture.problems() == []

    index = checked_by_warcio(tmp_path, capture)
    assert index[0] == '{"warc-type": "warcinfo"}'
    kinds = [line.split('"')[3] for line in index[1:]]
    assert kinds == ["request", "response", "metadata"] * 6

    found = responses(capture)
    assert found[site.base + "/logo.png"][1] == PNG
    assert found[site.base + "/app.js"][1] == SCRIPT  # chunked on the wire, undone by warcio
    assert found[site.base + "/style.css"][1] == CSS  # gzip on the wire, undone by warcio
    headers = found[site.base + "/page.html"][0]
    assert headers["WARC-IP-Address"] == "127.0.0.1"
    assert headers["WARC-Block-Digest"].startswith("sha1:")

    page = capture.page
    assert page is not None and page.tls is not None
    assert page.addresses == ["127.0.0.1"] and page.address == "127.0.0.1"
    assert page.tls.chain == [site.certificate_der]  # the certificate the server sent
    assert not page.tls.verified and "self-signed" in (page.tls.verify_error or "")
    assert b"User-Agent: evidencekit-test\r\n" in page.request
    [(_, logo)] = [(r, e) for r, e in capture.exchanges if e.url.endswith("/logo.png")]
    assert f"Referer: {site.base}/page.html\r\n".encode() in logo.request  # as a browser does
    assert b"Referer" not in page.request


def test_a_server_that_never_answers_is_recorded_not_waited_for(site: Site,
                                                                tmp_path: Path) -> None:
    started = time.monotonic()
    capture = capture_page(site.base + "/slow", QUICK)
    assert time.monotonic() - started < 4
    [(_, exchange)] = capture.exchanges
    assert exchange.response == b"" and exchange.status is None
    assert exchange.error == "the server did not answer within 1 s"
    assert capture.problems() == [f"the page {site.base}/slow was not captured whole: "
                                  "the server did not answer within 1 s"]
    kinds = [line.split('"')[3] for line in checked_by_warcio(tmp_path, capture)[1:]]
    assert kinds == ["request", "metadata"]  # what was asked, and how it ended


@pytest.mark.parametrize(("limits", "cut"), [
    (Limits(timeout=2.5, user_agent="t"), "time"),  # time for a TLS handshake on a busy machine
    (Limits(timeout=30.0, max_response=64 << 10, user_agent="t"), "length")],
    ids=["time", "size"])
def test_an_answer_that_never_ends_is_cut_and_recorded_as_cut(site: Site, tmp_path: Path,
                                                              limits: Limits, cut: str) -> None:
    started = time.monotonic()
    capture = capture_page(site.base + "/forever", limits)
    assert time.monotonic() - started < 10
    [(_, exchange)] = capture.exchanges
    assert exchange.status == 200 and exchange.truncated == cut
    assert exchange.response.startswith(b"HTTP/1.0 200") or \
        exchange.response.startswith(b"HTTP/1.1 200")
    if cut == "length":
        assert len(exchange.response) == 64 << 10
    assert "was not captured whole" in capture.problems()[0]
    checked_by_warcio(tmp_path, capture)
    [(headers, payload)] = responses(capture).values()
    assert headers["WARC-Truncated"] == cut and payload.startswith(b"<html><body><p>and more")


def test_nothing_at_the_address_is_recorded(tmp_path: Path) -> None:
    import socket
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    capture = capture_page(f"https://127.0.0.1:{port}/", QUICK)
    [(_, exchange)] = capture.exchanges
    assert exchange.error is not None and exchange.error.startswith("the connection failed")
    assert exchange.request == b"" and capture.problems()


def test_chromium_renders_the_capture_without_fetching_again(site: Site, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    browser = require_tool("chromium")
    capture = capture_page(site.base + "/", QUICK)
    before = dict(site.hits)
    home = bare_home(monkeypatch, tmp_path / "victim-home")
    rendering = render(site.base + "/", capture.replay(), browser)
    assert list(home.iterdir()) == []  # Chromium left nothing in the user's home
    assert rendering.absent == {}
    assert rendering.screenshot is not None and rendering.screenshot.startswith(b"\x89PNG\r\n")
    assert rendering.pdf is not None and rendering.pdf.startswith(b"%PDF-")
    assert site.hits == before  # the pictures come from the WARC: the site saw nothing more
    assert f"{site.base}/favicon.ico" in rendering.not_captured  # asked, refused, listed
    assert rendering.browser is not None and "Chromium" in rendering.browser


def test_a_redirect_to_a_scheme_not_fetched_is_pictured_as_it_stands(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chromium handed ftp://… to another program and waited for it until the time limit, for
    each picture (122 s, none made): the redirect is withheld from it, and recorded."""
    browser = require_tool("chromium")
    # the module, not the function web/__init__ names render too
    monkeypatch.setattr(importlib.import_module("evidencekit.sources.web.render"),
                        "RENDER_TIMEOUT", 15.0)
    capture = capture_page(site.base + "/to-ftp", QUICK)
    started = time.monotonic()
    rendering = render(capture.final_url, capture.replay(), browser)
    assert rendering.absent == {} and time.monotonic() - started < 15
    assert rendering.screenshot is not None and rendering.pdf is not None
    assert rendering.withheld == {site.base + "/to-ftp": (
        "its redirect to ftp://127.0.0.1/file was not handed to the browser: evidencekit does "
        "not fetch that scheme, and Chromium would wait for a program to open it; the answer "
        "is pictured without it")}


def test_a_script_sending_the_browser_to_a_scheme_not_fetched_is_pictured_all_the_same(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """A navigation by script to ftp://… stayed pending (Chromium waits for another program):
    no picture within the time limit. Chromium now stops navigations after NAVIGATION_STOP
    (short here) and pictures the page as it stands."""
    browser = require_tool("chromium")
    module = importlib.import_module("evidencekit.sources.web.render")
    monkeypatch.setattr(module, "RENDER_TIMEOUT", 15.0)
    monkeypatch.setattr(module, "NAVIGATION_STOP", 2.0)
    capture = capture_page(site.base + "/script-to-ftp.html", QUICK)
    started = time.monotonic()
    rendering = render(capture.final_url, capture.replay(), browser)
    assert rendering.absent == {} and time.monotonic() - started < 15
    assert rendering.screenshot is not None and rendering.pdf is not None


def test_without_chromium_the_pictures_are_recorded_absent(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    monkeypatch.setenv(BROWSER_ENV, str(tmp_path / "no-such-browser"))
    rendering = render("https://example.invalid/", {"https://example.invalid/": b"HTTP/1.1 200"})
    assert rendering.screenshot is None and rendering.pdf is None
    assert "Chromium is not installed" in rendering.absent["screenshot"]


@pytest.mark.parametrize(("given", "expected"), [
    ("https://Fake-Bank.example/login?x=1#top", "https://fake-bank.example/login?x=1"),
    ("http://bücher.example/ä b", "http://xn--bcher-kva.example/%C3%A4%20b"),
    ("https://[::1]:8443", "https://[::1]:8443/"),
])
def test_urls_are_normalised(given: str, expected: str) -> None:
    assert check_url(given) == expected


@pytest.mark.parametrize("given", ["ftp://example.org/", "example.org", "https://",
                                   "https://jane:secret@example.org/",
                                   "http://[bad/"])  # (ValueError: internal error, exit 5)
def test_urls_that_cannot_be_fetched_are_refused(given: str) -> None:
    with pytest.raises(UsageError):
        check_url(given)


def test_odd_addresses_in_a_page_are_encoded_or_refused_never_a_crash(site: Site) -> None:
    capture = capture_page(site.base + "/odd.html", QUICK)
    fetched = [e.url.removeprefix(site.base) for role, e in capture.exchanges
               if role == "resource"]
    assert fetched == ["/bild-%C3%A4.png", "/small.png", "/large.png"]
    assert capture.not_fetched == [
        ("https://jane:secret@127.0.0.1/private.png",
         "not fetched: it holds a user name or password (they would be stored in the bundle's "
         "records)")]
    assert capture.problems() == [
        "the resource https://jane:secret@127.0.0.1/private.png was not fetched: it holds a "
        "user name or password (they would be stored in the bundle's records)"]


def test_addresses_under_schemes_not_fetched_are_recorded_not_dropped(site: Site) -> None:
    """A <meta> refresh to file:, pictures at file:, ftp:, smb: are not fetched, and the capture
    says so; about:blank and javascript: name nothing to fetch."""
    capture = capture_page(site.base + "/other-schemes.html", QUICK)
    assert [(role, e.url.removeprefix(site.base)) for role, e in capture.exchanges] == [
        ("page", "/other-schemes.html"), ("resource", "/small.png")]
    only = "is not fetched (evidencekit fetches http:// and https:// only)"
    assert capture.not_fetched == [
        ("file:///etc/passwd", "not followed: the page's <meta> refresh leads there, and its "
         f"scheme file: {only}"),
        ("file:///C:/Users/victim/photo.jpg", f"not fetched: its scheme file: {only}"),
        ("ftp://127.0.0.1/x.png", f"not fetched: its scheme ftp: {only}"),
        ("smb://nas.local/share/bg.png", f"not fetched: its scheme smb: {only}")]
    assert len(capture.problems()) == 4 and "file:///etc/passwd" in capture.problems()[0]
    document = capture_json(capture, {"warc": "127.0.0.1.page.warc.gz", "screenshot": None,
                                      "pdf": None, "absent": {}, "browser": None,
                                      "rendered_from": "-", "asked_by_browser_not_captured": [],
                                      "withheld_from_browser": []})
    assert document["complete"] is False and len(document["not_fetched"]) == 4
    assert_valid(document, "web-capture")


@pytest.mark.parametrize(("path", "why"), [
    ("/loop", "not reached: more than 3 redirects"),
    ("/to-ftp", "not reached: it redirects to ftp://127.0.0.1/file, which is not fetched: it is "
     "not an http:// or https:// address"),
    ("/to-bad-address", "not reached: it redirects to http://[bad/x, which is not fetched: it "
     "is not an address that can be read (RFC 3986)")])
def test_redirects_that_lead_nowhere_are_recorded(site: Site, tmp_path: Path, path: str,
                                                 why: str) -> None:
    capture = capture_page(site.base + path, Limits(timeout=1.0, max_redirects=3,
                                                    user_agent="t"))
    assert capture.unfollowed == why
    assert capture.problems() == [f"the page {site.base}{path} was {why}; what came before is "
                                  "recorded"]
    assert all(e.status in (301, 302) for _, e in capture.exchanges)
    checked_by_warcio(tmp_path, capture)


def test_the_end_of_an_answer_is_found_however_it_arrives() -> None:
    from evidencekit.sources.web.fetch import ResponseEnd
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in [b"ab"] * 50)
               + b"0\r\nX-Trailer: 1\r\n\r\n")
    sized = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    for whole in (chunked, sized):
        end, received = ResponseEnd(), bytearray()
        seen = []
        for byte in whole:  # one byte at a time: every cut a network could make
            received.append(byte)
            seen.append(end.complete(received))
        assert seen[-1] and not any(seen[:-1])
    closed = ResponseEnd()
    assert not closed.complete(bytearray(b"HTTP/1.0 200 OK\r\n\r\nbody"))
    assert closed.complete(bytearray(b"HTTP/1.0 200 OK\r\n\r\nbody"), closed=True)


def test_a_plain_http_page_has_no_tls_and_the_same_records(tmp_path: Path) -> None:
    with https_site(tmp_path, tls=False) as site:
        capture = capture_page(site.base + "/", QUICK)
    assert site.base.startswith("http://") and capture.problems() == []
    assert [e.status for _, e in capture.exchanges] == [302, 200, 200, 200, 200, 404]
    assert all(e.tls is None for _, e in capture.exchanges)
    assert responses(capture)[site.base + "/logo.png"][1] == PNG
    checked_by_warcio(tmp_path, capture)


def test_the_replay_proxy_serves_only_what_was_captured(site: Site) -> None:
    """What Chromium sees, asked the way it asks: plain HTTP by absolute URL, HTTPS through
    CONNECT (under the proxy's own certificate); anything else is 404 and listed."""
    import http.client
    import ssl

    from evidencekit.sources.web.render import ReplayProxy
    capture = capture_page(site.base + "/", QUICK)
    recorded = capture.replay()
    recorded["http://plain.test/a"] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    before = dict(site.hits)
    with ReplayProxy(recorded) as proxy:
        plain = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        plain.request("GET", "http://plain.test/a")
        assert plain.getresponse().read() == b"hi"
        plain.close()
        unchecked = ssl.create_default_context()
        unchecked.check_hostname, unchecked.verify_mode = False, ssl.CERT_NONE
        port = int(site.base.rsplit(":", 1)[1])
        for path, status, body in (("/logo.png", 200, PNG), ("/page.html", 200, None),
                                   ("/never-captured", 404, None)):
            tunnel = http.client.HTTPSConnection("127.0.0.1", proxy.port, timeout=10,
                                                 context=unchecked)
            tunnel.set_tunnel("127.0.0.1", port)
            tunnel.request("GET", path)
            answer = tunnel.getresponse()
            assert answer.status == status
            data = answer.read()
            assert body is None or data == body
            tunnel.close()
    assert proxy.missing == {f"{site.base}/never-captured"}
    assert site.hits == before  # the site itself was never asked


def test_many_resources_past_the_limit_are_counted_not_listed_one_by_one(site: Site) -> None:
    capture = capture_page(site.base + "/page.html", Limits(timeout=5, max_resources=0,
                                                            user_agent="t"))
    assert len(capture.not_fetched) == 4 and capture.exchanges[-1][0] == "page"
    with_many = PageCapture(capture.given, 0, capture.limits, capture.exchanges,
                            [(f"https://x.example/{n}.png", "not fetched: more than 0 "
                              "resources") for n in range(10_000)])
    problems = with_many.problems()
    assert len(problems) == 6 and problems[-1] == (
        "9995 more resources were not fetched: more than 0 resources (each is listed in the "
        "capture document)")


def test_a_name_the_resolver_never_answers_is_recorded_in_time(monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    import socket
    import threading

    from evidencekit.sources.web import fetch as fetching
    stuck = threading.Event()

    def never(*args: object, **kwargs: object) -> object:
        stuck.wait(5)
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(fetching.socket, "getaddrinfo", never)
    started = time.monotonic()
    exchange = fetching.fetch("https://fake-bank.example/", Limits(timeout=0.5, user_agent="t"))
    stuck.set()
    assert time.monotonic() - started < 2
    assert exchange.error == "the name 'fake-bank.example' was not resolved within 0.5 s"


def test_a_compressed_page_is_read_for_its_resources_only_so_far() -> None:
    import zlib

    from evidencekit.sources.web.fetch import MAX_ENTITY, Exchange
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = packer.compress(bytes(2 * MAX_ENTITY)) + packer.flush()  # 64 MiB in some 64 KiB
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n"
    exchange = Exchange("https://x.example/", 0, response=head + bomb, body_offset=len(head),
                        headers=[("Content-Encoding", "gzip")])
    assert len(bomb) < 1 << 20 and len(exchange.body()) == MAX_ENTITY


@pytest.mark.parametrize(("names", "verified", "error"), [
    ([ipaddress.ip_address("127.0.0.1")], True, None),
    ([x509.DNSName("fake-bank.test")], False, "IP address mismatch")],
    ids=["trusted", "wrong-name"])
def test_a_trusted_certificate_verifies_and_a_wrong_name_is_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, names: list[object], verified: bool,
        error: str | None) -> None:
    general = [x509.IPAddress(n) if not isinstance(n, x509.DNSName) else n for n in names]
    with https_site(tmp_path, ca_names=general) as site:
        assert site.ca_file is not None
        monkeypatch.setenv("SSL_CERT_FILE", str(site.ca_file))  # the test CA, trusted
        capture = capture_page(site.base + "/page.html", QUICK)
    page = capture.page
    assert page is not None and page.tls is not None and page.status == 200
    assert page.tls.verified is verified
    assert (page.tls.verify_error or "").startswith(error or "") and \
        (page.tls.verify_error is None) is (error is None)
    ca = x509.load_pem_x509_certificate(site.ca_file.read_bytes())
    assert page.tls.chain == [site.certificate_der, ca.public_bytes(Encoding.DER)]


def test_an_answer_cut_inside_its_headers_is_kept_as_it_came(site: Site, tmp_path: Path) -> None:
    capture = capture_page(site.base + "/half-head", QUICK)
    [(_, exchange)] = capture.exchanges
    assert exchange.response == b"HTTP/1.1 200 OK\r\nContent-Ty" and exchange.status is None
    assert exchange.truncated == "time" and capture.problems()
    kinds = [line.split('"')[3] for line in checked_by_warcio(tmp_path, capture)[1:]]
    assert kinds == ["request", "response", "metadata"]


def test_what_style_sheets_name_is_fetched_and_recorded(site: Site, tmp_path: Path) -> None:
    """Fonts, pictures and @import named by a linked style sheet, a <style> block and a style
    attribute: fetched after the page's own, relative to the style sheet naming them, with it
    as Referer; what a CSS comment names is not."""
    capture = capture_page(site.base + "/styled.html", PATIENT)
    fetched = [(e.url.removeprefix(site.base), e.status) for role, e in capture.exchanges
               if role == "resource"]
    assert fetched == [("/css/site.css", 200), ("/img/hero.png", 200), ("/img/body.png", 200),
                       ("/css/more.css", 200), ("/fonts/bank.woff2", 200),
                       ("/img/logo-bg.png", 200)]
    assert capture.problems() == [] and "/never.png" not in site.hits
    assert "/commented.png" not in site.hits
    [more] = [e for _, e in capture.exchanges if e.url.endswith("/more.css")]
    assert f"Referer: {site.base}/css/site.css\r\n".encode() in more.request
    checked_by_warcio(tmp_path, capture)
    found = responses(capture)
    assert found[site.base + "/fonts/bank.woff2"][1] == FONT
    assert found[site.base + "/css/site.css"][1] == SITE_CSS
    assert found[site.base + "/css/more.css"][1] == MORE_CSS
    assert found[site.base + "/img/logo-bg.png"][1] == PNG


def test_what_style_sheets_name_keeps_the_limit_on_resources(site: Site) -> None:
    capture = capture_page(site.base + "/styled.html", Limits(timeout=10.0, max_resources=4,
                                                              user_agent="t"))
    assert [e.url.removeprefix(site.base) for role, e in capture.exchanges
            if role == "resource"] == ["/css/site.css", "/img/hero.png", "/img/body.png",
                                       "/css/more.css"]
    assert capture.not_fetched == [(site.base + path, "not fetched: more than 4 resources")
                                   for path in ("/fonts/bank.woff2", "/img/logo-bg.png")]


def test_a_meta_refresh_is_followed_and_recorded_as_such(site: Site, tmp_path: Path) -> None:
    capture = capture_page(site.base + "/landing.html", PATIENT)
    roles = [(role, e.url.removeprefix(site.base)) for role, e in capture.exchanges]
    assert roles[:2] == [("page", "/landing.html"), ("refreshed", "/page.html")]
    assert capture.final_url == site.base + "/page.html" and capture.problems() == []
    assert [url for role, url in roles if role == "resource"] == [
        "/style.css", "/app.js", "/logo.png", "/missing.png"]  # the final page's
    [(_, refreshed)] = [(r, e) for r, e in capture.exchanges if r == "refreshed"]
    assert f"Referer: {site.base}/landing.html\r\n".encode() in refreshed.request
    found = responses(capture)
    assert found[site.base + "/page.html"][1] == PAGE
    checked_by_warcio(tmp_path, capture)
    document = capture_json(capture, {"warc": "x.page.warc.gz", "screenshot": None,
                                      "pdf": None, "absent": {}, "browser": None,
                                      "rendered_from": "-",
                                      "asked_by_browser_not_captured": []})
    assert_valid(document, "web-capture")


def test_refreshes_that_go_round_stop_at_the_redirect_limit(site: Site, tmp_path: Path) -> None:
    capture = capture_page(site.base + "/refresh-loop.html",
                           Limits(timeout=10.0, max_redirects=3, user_agent="t"))
    assert [role for role, _ in capture.exchanges] == ["page"] + ["refreshed"] * 3
    assert capture.unfollowed == "not reached: more than 3 redirects"
    checked_by_warcio(tmp_path, capture)


@pytest.mark.parametrize(("content", "target"), [
    ("0; url=/next", "/next"), ("5;URL='/a b'", "/a b"), ('0, "/q"', "/q"),
    ("30", None), ("0; url=", None), ("  3  ;  url = next.html ", "next.html")])
def test_a_refresh_is_read_as_browsers_read_it(content: str, target: str | None) -> None:
    from evidencekit.sources.web.resources import refresh_target
    assert refresh_target(content) == target


def metadata_roles(capture: PageCapture) -> dict[str, str]:
    """URL -> the role the WARC's metadata record gives its exchange."""
    import json

    from warcio.archiveiterator import ArchiveIterator
    return {record.rec_headers.get_header("WARC-Target-URI"):
            json.loads(record.content_stream().read())["role"]
            for record in ArchiveIterator(io.BytesIO(capture.warc))
            if record.rec_type == "metadata"}


def test_what_the_page_loads_in_the_browser_is_fetched_once_and_recorded(
        site: Site, tmp_path: Path) -> None:
    """A page built by its script: the capture holds the page and the script; what the script
    loads in Chromium (a JSON, then a picture it names) is fetched once for it, recorded in
    the WARC as the browser's, and replayed to the second picture (the PDF) without asking
    again. The script's request to another local port is refused, its POST never sent, and
    Chromium's own calls home never leave the machine."""
    browser = require_tool("chromium")
    capture = capture_page(site.base + "/scripted.html", PATIENT)
    assert [e.url.removeprefix(site.base) for role, e in capture.exchanges
            if role == "resource"] == ["/loader.js"]
    assert capture.browser is not None
    rendering = render(site.base + "/scripted.html", capture.replay(), browser,
                       fetch_missing=capture.browser)
    capture.browser.close()
    assert rendering.absent == {} and rendering.withheld == {}
    asked = {e.url.removeprefix(site.base): e for role, e in capture.exchanges
             if role == "browser"}
    assert asked["/api/config.json"].status == 200
    assert asked["/img/dynamic-logo.png"].status == 200
    assert f"Referer: {site.base}/scripted.html\r\n".encode() in asked["/api/config.json"].request
    for path in ("/scripted.html", "/loader.js", "/api/config.json", "/img/dynamic-logo.png"):
        assert site.hits[path] == 1, path  # two pictures made, each URL asked once
    assert not [hit for hit in site.hits if hit.startswith("POST")]
    assert f"{site.base}/api/collect" in rendering.not_captured  # asked by POST: 404, listed
    refused = asked["http://127.0.0.1:631/admin"]
    assert refused.request == b"" and (refused.error or "").startswith(
        "not connected to: 127.0.0.1 is on this computer or its local network")
    assert all(e.url.startswith(("http://127.0.0.1", site.base)) for _, e in capture.exchanges)
    assert capture.problems() == [
        "the resource http://127.0.0.1:631/admin was not captured whole: " + (refused.error or "")]

    checked_by_warcio(tmp_path, capture)
    assert responses(capture)[site.base + "/api/config.json"][1] == CONFIG
    roles = metadata_roles(capture)
    assert roles[site.base + "/api/config.json"] == "browser"
    assert roles[site.base + "/loader.js"] == "resource"
    document = capture_json(capture, {"warc": "x.page.warc.gz", "screenshot": None,
                                      "pdf": None, "absent": {}, "browser": None,
                                      "rendered_from": "-",
                                      "asked_by_browser_not_captured": rendering.not_captured,
                                      "withheld_from_browser": []})
    assert_valid(document, "web-capture")


def test_the_browser_asks_within_the_limit_on_resources(site: Site) -> None:
    """What the browser asks counts with the page's resources: past the limit, nothing is
    fetched for it, and what it asked is listed as not fetched."""
    from evidencekit.sources.web.page import BrowserFetches
    capture = capture_page(site.base + "/scripted.html", Limits(timeout=10.0, max_resources=1,
                                                                user_agent="t"))
    fetches = capture.browser
    assert isinstance(fetches, BrowserFetches)
    assert fetches(site.base + "/api/config.json") is None
    assert capture.not_fetched == [(site.base + "/api/config.json",
                                    "not fetched: more than 1 resources")]
    assert fetches(site.base + "/api/config.json") is None  # asked once, not counted again
    assert len(capture.not_fetched) == 1 and "/api/config.json" not in site.hits
    fetches.close()
    assert fetches(site.base + "/img/x.png") is None and "/img/x.png" not in site.hits


def test_a_compression_bomb_in_the_capture_is_not_handed_to_chromium(site: Site,
                                                                    tmp_path: Path) -> None:
    """A picture served gzip-compressed, 64 KiB that become 64 MiB: the capture keeps it as
    served (the WARC is the evidence); the browser is not handed it (a real one, 20 MiB that
    become 20 GiB, would cost the pictures their time, or the computer its memory), and the
    document says so."""
    from evidencekit.sources.web.render import DECODED_AT_MOST
    browser = require_tool("chromium")
    gzip_bomb()  # made before the site is asked, not within the request's time
    capture = capture_page(site.base + "/bomb.html", Limits(timeout=10.0, user_agent="t"))
    [bomb] = [e for _, e in capture.exchanges if e.url.endswith("/bomb.png")]
    assert bomb.status == 200 and len(bomb.response) < 1 << 20 and capture.problems() == []
    assert capture.browser is not None
    rendering = render(site.base + "/bomb.html", capture.replay(), browser,
                       fetch_missing=capture.browser)
    capture.browser.close()
    assert rendering.withheld == {
        site.base + "/bomb.png": f"it decompresses to more than {DECODED_AT_MOST} bytes "
        "(a compression bomb)"}
    assert rendering.screenshot is not None and rendering.pdf is not None
    assert site.hits["/bomb.png"] == 1
    checked_by_warcio(tmp_path, capture)


def _answer(body: bytes, *headers: str) -> bytes:
    return ("HTTP/1.1 200 OK\r\n" + "".join(f"{h}\r\n" for h in headers)).encode() + \
        b"\r\n" + body


def test_what_a_browser_would_decompress_is_measured_within_a_bound() -> None:
    import zlib

    from evidencekit.sources.web.fetch import decoded_size, parsed
    limit = 1 << 20
    bomb = gzip_bomb()
    raw = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    bare_deflate = raw.compress(bytes(4 << 20)) + raw.flush()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(bomb), bomb)
    cases = [
        (_answer(b"hello", "Content-Length: 5"), 5, None),
        (_answer(zlib.compress(b"x" * 1000), "Content-Encoding: deflate"), 1000, None),
        (_answer(bomb, "Content-Encoding: gzip"), limit + 1, "decompresses to more than"),
        (_answer(chunked, "Transfer-Encoding: chunked", "Content-Encoding: gzip"), limit + 1,
         "decompresses to more than"),
        (_answer(bare_deflate, "Content-Encoding: deflate"), limit + 1,
         "decompresses to more than"),
        (_answer(b"\x1b\x00", "Content-Encoding: br"), 2, "content coding 'br' cannot be "
         "measured"),
        (_answer(b"not gzip", "Content-Encoding: gzip"), 8, "its gzip body cannot be read"),
    ]
    for response, size, why in cases:
        found, reason = decoded_size(parsed("https://x.example/", response), limit)
        assert found == size and (reason is None if why is None else why in (reason or "")), \
            (response[:60], found, reason)


def test_the_browser_is_handed_a_bounded_amount_in_all(site: Site,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import http.client
    import importlib
    render_module = importlib.import_module("evidencekit.sources.web.render")  # not the function
    monkeypatch.setattr(render_module, "DECODED_IN_ALL", 100)
    recorded = {f"http://plain.test/{n}": _answer(bytes(60), "Content-Length: 60")
                for n in range(3)}
    with render_module.ReplayProxy(recorded) as proxy:
        statuses = []
        for n in (0, 1, 0, 2):
            plain = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            plain.request("GET", f"http://plain.test/{n}")
            statuses.append(plain.getresponse().status)
            plain.close()
    assert statuses == [200, 404, 200, 404]  # the first kept, judged once; the rest withheld
    assert proxy.withheld == {
        f"http://plain.test/{n}": "the answers handed to the browser reached 100 bytes in "
        "all, decompressed" for n in (1, 2)}


def test_a_redirect_by_script_is_followed_by_the_browser_and_recorded(site: Site) -> None:
    """location.replace() in a script: the capture (which runs no script) has the first page;
    Chromium goes on, and the page it went to, with its resources, is fetched for it."""
    browser = require_tool("chromium")
    capture = capture_page(site.base + "/script-redirect.html", PATIENT)
    assert [role for role, _ in capture.exchanges] == ["page"] and capture.browser is not None
    render(site.base + "/script-redirect.html", capture.replay(), browser,
           fetch_missing=capture.browser)
    capture.browser.close()
    asked = [e.url.removeprefix(site.base) for role, e in capture.exchanges if role == "browser"]
    assert asked[0] == "/page.html"
    assert {"/style.css", "/app.js", "/logo.png"} <= set(asked)
    assert responses(capture)[site.base + "/page.html"][1] == PAGE


def test_what_the_browser_asks_gets_a_bounded_time_in_all(site: Site,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A site answering the scripts' requests slowly would cost the pictures (Chromium waits
    for them, 60 s a picture): the browser's fetches end within BROWSER_SECONDS in all."""
    from evidencekit.sources.web import page as page_module
    monkeypatch.setattr(page_module, "BROWSER_SECONDS", 0.5)
    capture = capture_page(site.base + "/scripted.html", Limits(timeout=5.0, user_agent="t"))
    fetches = capture.browser
    assert fetches is not None
    started = time.monotonic()
    assert site.base + "/slow" not in (fetches(site.base + "/slow") or {})  # no answer in time
    assert time.monotonic() - started < 2
    [(role, slow)] = [(r, e) for r, e in capture.exchanges if e.url.endswith("/slow")]
    assert role == "browser" and (slow.error or "").startswith("the server did not answer within 0.")
    assert fetches(site.base + "/api/config.json") is None
    assert capture.not_fetched == [(site.base + "/api/config.json", "not fetched: the 0.5 s "
                                    "given to what the browser asks had run out")]
    fetches.close()


def test_over_plain_http_what_the_page_asks_is_told_by_its_referer(tmp_path: Path) -> None:
    """Over http Chromium sends no Sec-Fetch-* headers: a page's requests are told from the
    browser's own by their Referer."""
    browser = require_tool("chromium")
    with https_site(tmp_path, tls=False) as site:
        capture = capture_page(site.base + "/scripted.html", PATIENT)
        assert capture.browser is not None
        rendering = render(site.base + "/scripted.html", capture.replay(), browser,
                           fetch_missing=capture.browser)
        capture.browser.close()
    asked = {e.url.removeprefix(site.base): e.status for role, e in capture.exchanges
             if role == "browser"}
    assert asked["/api/config.json"] == 200 and asked["/img/dynamic-logo.png"] == 200
    assert site.hits["/api/config.json"] == 1 and rendering.screenshot is not None


@pytest.mark.parametrize(("head", "by_a_page"), [
    (b"GET /a HTTP/1.1\r\nSec-Fetch-Site: same-origin\r\n\r\n", True),
    (b"GET /a HTTP/1.1\r\nSec-Fetch-Site: cross-site\r\nReferer: https://x/\r\n\r\n", True),
    (b"GET /a HTTP/1.1\r\nSec-Fetch-Site: none\r\nReferer: https://x/\r\n\r\n", False),
    (b"GET /a HTTP/1.1\r\nReferer: http://x/\r\n\r\n", True),  # http: no Sec-Fetch-*
    (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", False),
    (b"POST /a HTTP/1.1\r\nContent-Length: 20\r\n\r\nReferer: http://x/\r\n", False)],
    ids=["same-origin", "cross-site", "browser-itself", "http-referer", "nothing", "in-body"])
def test_a_page_s_requests_are_told_from_the_browser_s_own(head: bytes, by_a_page: bool) -> None:
    import importlib
    render_module = importlib.import_module("evidencekit.sources.web.render")
    assert render_module._asked_by_a_page(head) is by_a_page


def test_a_refresh_header_is_followed_and_one_for_browsers_without_scripts_is_not(
        site: Site) -> None:
    """A Refresh header (PHP's header("Refresh: 0; url=…")) is obeyed as a <meta> refresh; a
    <meta> refresh inside <noscript> is not: a browser running scripts (the victim's, and the
    one making the pictures) ignores it, and a cloaking kit uses it to send others away."""
    by_header = capture_page(site.base + "/refresh-header", PATIENT)
    assert [(role, e.url.removeprefix(site.base)) for role, e in by_header.exchanges][:2] == [
        ("page", "/refresh-header"), ("refreshed", "/page.html")]
    assert by_header.final_url == site.base + "/page.html" and by_header.problems() == []
    cloaked = capture_page(site.base + "/noscript-refresh.html", PATIENT)
    assert [role for role, _ in cloaked.exchanges] == ["page"]
    assert "/for-bots.html" not in site.hits


@pytest.mark.parametrize(("path", "target", "scheme"), [
    ("/refresh-header-to-file", "file:///etc/passwd", "file"),
    ("/refresh-header-to-ftp", "ftp://127.0.0.1/x", "ftp")])
def test_a_refresh_header_to_a_scheme_not_fetched_is_listed_as_a_meta_refresh_is(
        site: Site, path: str, target: str, scheme: str) -> None:
    """It ended the capture as "not reached", and was missing from not_fetched, where a
    <meta> refresh to file: is listed; the page's own pictures were not fetched either."""
    capture = capture_page(site.base + path, PATIENT)
    assert capture.unfollowed is None
    assert [(role, e.url.removeprefix(site.base)) for role, e in capture.exchanges] == [
        ("page", path), ("resource", "/small.png")]
    assert capture.not_fetched == [
        (target, "not followed: the page's Refresh header leads there, and its scheme "
         f"{scheme}: is not fetched (evidencekit fetches http:// and https:// only)")]
    assert len(capture.problems()) == 1 and target in capture.problems()[0]


def test_addresses_that_cannot_be_read_are_listed_not_fetched(site: Site) -> None:
    """A page naming 'http://[bad/…' (an unclosed IPv6 bracket) in a picture, a style or its
    Refresh header ended capture --url in 'internal error: ValueError: Invalid IPv6 URL' (exit
    5), keeping nothing: any page could stop its own capture."""
    capture = capture_page(site.base + "/bad-addresses", PATIENT)
    assert [(role, e.url.removeprefix(site.base)) for role, e in capture.exchanges] == [
        ("page", "/bad-addresses"), ("resource", "/small.png")]
    why = "it is not an address that can be read (RFC 3986)"
    assert sorted(capture.not_fetched) == [
        ("http://[bad/css", f"not fetched: {why}"),
        ("http://[bad/img", f"not fetched: {why}"),
        ("http://[bad/refresh", f"not followed: the page's Refresh header leads there, and "
         f"{why}")]


def test_a_script_asking_for_thousands_of_addresses_is_listed_then_counted(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page's script asking, in a loop, for thousands of addresses of 60 KB each made a
    capture document of 700 MB (each listed as not fetched and as not captured): past a
    number, what the browser asks is neither tried nor listed, only counted."""
    import http.client
    import importlib

    from evidencekit.sources.web import page as page_module
    render_module = importlib.import_module("evidencekit.sources.web.render")  # not the function
    monkeypatch.setattr(render_module, "NOT_CAPTURED_LISTED_AT_MOST", 3)
    monkeypatch.setattr(page_module, "BROWSER_LISTED_AT_MOST", 3)
    capture = capture_page(site.base + "/scripted.html", Limits(timeout=5.0, max_resources=1,
                                                                user_agent="t"))
    assert capture.browser is not None
    with render_module.ReplayProxy(capture.replay(), capture.browser) as proxy:
        for number in range(10):
            asked = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            asked.request("GET", f"{site.base}/many/{number}?{'a' * 1000}",
                          headers={"Referer": site.base + "/scripted.html"})
            assert asked.getresponse().status == 404
            asked.close()
    capture.browser.close()
    assert len(capture.not_fetched) == 3 and len(proxy.missing) == 3 and proxy.unlisted == 7
    assert not any(path.startswith("/many/") for path in site.hits)
    capture.browser_unlisted = proxy.unlisted
    assert capture.problems()[-1] == ("the browser, making the pictures, asked for more than 3 "
                                      "addresses the capture does not hold: 7 more requests "
                                      "were neither fetched nor listed")


def test_what_a_style_sheet_names_is_read_as_before() -> None:
    from evidencekit.sources.web.resources import stylesheet_resources
    css = (b"@import 'a.css'; @import \"b.css\" screen; @import url(c.css);\n"
           b"/* url(commented.png) */ body { background: url( d.png ) }\n"
           b"p { background: URL(\"e 1.png\") } q { background: url('f.png') }"
           b" r { background: url() } s { background: url(data:image/png;base64,AAAA) }")
    assert stylesheet_resources(css, "http://x.test/css/s.css") == [
        f"http://x.test/css/{name}" for name in ("a.css", "b.css", "c.css", "d.png",
                                                 "e 1.png", "f.png")]


@pytest.mark.parametrize("css", [b"url(" * 100_000, b"url(" + b" " * 400_000 + b"x",
                                 b"@import" + b" " * 400_000 + b"x",
                                 b"url(\"" + b"url(" * 100_000])
def test_a_style_sheet_made_to_stall_the_parser_is_read_in_linear_time(css: bytes) -> None:
    """url( repeated without its ')' (or followed by spaces without end) made the reading of a
    style sheet quadratic: 80 KB took 10 s, the 20 MiB an answer may hold would take days, the
    page's time limit never checked meanwhile (a <style> block or a style attribute too)."""
    from evidencekit.sources.web.resources import read_page, stylesheet_resources
    started = time.monotonic()
    assert stylesheet_resources(css, "http://x.test/s.css") == []
    read_page(b"<style>" + css + b"</style><p style='" + css[:40_000] + b"'>", "http://x.test/")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("html", [b"</" * 250_000, b"<a" + b" b" * 1_000_000,
                                  b"<img src=/a.png>" + b"<!--" + b"x" * 3_000_000])
def test_a_page_made_to_stall_the_html_parser_is_read_in_bounded_time(html: bytes) -> None:
    """What html.parser holds unparsed (an end tag, tag or comment never closed, to the end)
    it read in quadratic time: "</" repeated took 16 s for 500 KB. Such a rest is, for a
    browser, the inside of what was never closed: nothing in it is loaded."""
    from evidencekit.sources.web.resources import read_page
    started = time.monotonic()
    found = read_page(html, "http://x.test/").resources
    assert time.monotonic() - started < 5
    assert found == (["http://x.test/a.png"] if html.startswith(b"<img") else [])


def test_a_style_block_never_closed_still_names_what_it_loads() -> None:
    from evidencekit.sources.web.resources import read_page
    for filler in (b"", b"x" * 200_000):
        html = b"<p>hi</p><style>body{background:url(/bg.png)}" + filler
        assert read_page(html, "http://x.test/").resources == ["http://x.test/bg.png"]
    short = b"<!-- never closed <img src=/a.png>"  # short: html.parser's reading, as before
    assert read_page(short, "http://x.test/").resources == \
        read_page(short + b" ", "http://x.test/").resources
