"""Web pages from a hostile or broken site (tests/support/raw_http.py answers with exactly the
bytes each test scripts): lying framing, resets mid-answer, interim answers, odd charsets. Every
case ends in bounded time with what came kept, and warcio accepts the WARC."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from evidencekit.sources.web.page import PAGE_TIME_FACTOR, PageCapture, capture_page
from evidencekit.sources.web_limits import Limits
from tests.support.raw_http import PAUSE, RESET, raw_server
from tests.support.tools import require_tool
from tests.support.web_server import warcio_command

# the module (the package's name "render" is its function)
render_module = importlib.import_module("evidencekit.sources.web.render")
QUICK = Limits(timeout=2.0, user_agent="evidencekit-test")


def warcio_accepts(tmp_path: Path, capture: PageCapture) -> None:
    path = tmp_path / "page.warc.gz"
    path.write_bytes(capture.warc)
    checked = subprocess.run([warcio_command(), "check", "-v", str(path)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0 and "fail" not in checked.stdout, checked.stdout
    index = subprocess.run([warcio_command(), "index", str(path)], capture_output=True,
                           text=True, timeout=60)
    assert index.returncode == 0, index.stderr


def test_a_negative_chunk_size_ends_the_answer_instead_of_looping(tmp_path: Path) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    for body in (b"-6\r\n", b"5\r\nhello\r\n-6\r\n", b"+5\r\nhello\r\n0\r\n\r\n",
                 b"1_0\r\n" + bytes(16) + b"\r\n0\r\n\r\n"):
        with raw_server([[head + body]]) as site:
            started = time.monotonic()
            capture = capture_page(site.base + "/", QUICK)
        assert time.monotonic() - started < QUICK.timeout
        page = capture.page
        assert page is not None and page.response == head + body and page.status == 200
        assert page.body() in (b"", b"hello")
        warcio_accepts(tmp_path, capture)


def test_an_answer_reset_mid_body_is_kept_as_far_as_it_came(tmp_path: Path) -> None:
    sent = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n" + \
        b"a" * 500
    with raw_server([[sent, PAUSE, RESET]]) as site:
        capture = capture_page(site.base + "/", QUICK)
    page = capture.page
    assert page is not None and page.response == sent and page.status == 200
    assert page.truncated == "disconnect" and "reset" in (page.error or "")
    assert capture.problems()
    warcio_accepts(tmp_path, capture)


def test_an_early_hints_answer_is_passed_over_for_the_page_that_follows(tmp_path: Path) -> None:
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </logo.png>; rel=preload\r\n\r\n"
    html = b"<!doctype html><html><body><img src='/logo.png'></body></html>"
    page_answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
                   + str(len(html)).encode() + b"\r\n\r\n" + html)
    image = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 3\r\n\r\nPNG"
    with raw_server([[hints, PAUSE, page_answer], [image]]) as site:
        capture = capture_page(site.base + "/", QUICK)
    page = capture.page
    assert page is not None and page.response == hints + page_answer
    assert page.status == 200 and page.body() == html and page.error is None
    assert [e.url for _, e in capture.exchanges] == [site.base + "/", site.base + "/logo.png"]
    assert capture.problems() == []
    warcio_accepts(tmp_path, capture)


def test_a_page_in_a_charset_python_cannot_decode_with_is_read_as_utf8(tmp_path: Path) -> None:
    html = b"<!doctype html><html><body>\xff<img src='/logo.png'></body></html>"
    image = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 3\r\n\r\nPNG"
    for charset in (b"undefined", b"idna", b"punycode", b"rot13", b"nonsense"):
        answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=" + charset
                  + b"\r\nContent-Length: " + str(len(html)).encode() + b"\r\n\r\n" + html)
        with raw_server([[answer], [image]]) as site:
            capture = capture_page(site.base + "/", QUICK)
        assert [e.status for _, e in capture.exchanges] == [200, 200], charset


def test_a_site_cannot_lead_the_capture_to_another_local_address(tmp_path: Path) -> None:
    """A redirect or a resource pointing at this computer's other services (another port of
    127.0.0.1, localhost, 0.0.0.0, an IPv4-mapped IPv6 literal) is refused before connecting,
    and recorded; the page's own address (local here, as the person gave it) is fetched."""
    image = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 3\r\n\r\nPNG"
    with raw_server([[b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret"]]) as inside:
        port = inside.base.rsplit(":", 1)[1]
        html = "".join(f"<img src='{url}'>" for url in (
            f"{inside.base}/printer", f"http://localhost:{port}/a",
            f"http://0.0.0.0:{port}/b", f"http://[::ffff:127.0.0.1]:{port}/c", "/own.png"))
        answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
                  + str(len(html)).encode() + b"\r\n\r\n" + html.encode())
        redirect = (b"HTTP/1.1 302 Found\r\nLocation: " + inside.base.encode()
                    + b"/admin?reset=1\r\nContent-Length: 0\r\n\r\n")
        with raw_server([[answer], [image]]) as site:
            capture = capture_page(site.base + "/", QUICK)
            assert len(site.requests) == 2  # the page and its own image
        with raw_server([[redirect]]) as site:
            redirected = capture_page(site.base + "/", QUICK)
        assert inside.requests == []  # never asked
    fetched = {e.url: e for _, e in capture.exchanges}
    assert fetched[capture.given + "own.png"].status == 200
    refused = [e for e in fetched.values() if e.error]
    assert len(refused) == 4 and all(e.request == b"" for e in refused)
    assert all("only the address given to --url may be local" in (e.error or "")
               for e in refused)
    assert len(capture.problems()) == 4
    page = redirected.page
    assert page is not None and page.url == inside.base + "/admin?reset=1" and page.error
    assert redirected.problems()[0].startswith(f"the page {page.url} was not captured whole")
    warcio_accepts(tmp_path, capture)
    warcio_accepts(tmp_path, redirected)


def test_local_addresses_are_told_from_public_ones() -> None:
    from evidencekit.sources.web.page import is_local
    for local in ("127.0.0.1", "10.1.2.3", "192.168.1.1", "169.254.169.254", "100.64.0.1",
                  "0.0.0.0", "::1", "fe80::1%eth0", "fd00::1", "::ffff:127.0.0.1", "::",
                  "224.0.0.1", "not an address"):
        assert is_local(local), local
    for public in ("93.184.215.14", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"):
        assert not is_local(public), public


def test_redirects_of_resources_stay_within_the_time_of_the_whole_page() -> None:
    """Every exchange a little under the time limit, every resource a loop of redirects: the
    page still ends within its time (ten exchanges' time), not a redirect chain past it."""
    limits = Limits(timeout=0.15, user_agent="evidencekit-test")
    html = b"".join(b"<img src='/r%d'>" % n for n in range(5))
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
              + str(len(html)).encode() + b"\r\n\r\n" + html)
    loop = b"HTTP/1.1 302 Found\r\nLocation: /r\r\nContent-Length: 0\r\n\r\n"
    with raw_server([[answer], [PAUSE, loop]]) as site:
        started = time.monotonic()
        capture = capture_page(site.base + "/", limits)
        took = time.monotonic() - started
    assert took < limits.timeout * PAGE_TIME_FACTOR + 0.3, took
    assert any("the time for the whole page (1.5 s) had run out" in problem
               for problem in capture.problems())


def test_an_answer_whose_lines_end_in_bare_line_feeds_is_read(tmp_path: Path) -> None:
    html = b"<html><body><img src='/logo.png'></body></html>"
    answer = (b"HTTP/1.1 200 OK\nContent-Type: text/html\nContent-Length: "
              + str(len(html)).encode() + b"\n\n" + html)
    image = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 3\r\n\r\nPNG"
    with raw_server([[answer], [image]]) as site:
        capture = capture_page(site.base + "/", QUICK)
    page = capture.page
    assert page is not None and page.response == answer
    assert page.status == 200 and page.error is None and page.body() == html
    assert page.header("Content-Type") == "text/html"
    assert capture.problems() == [] and len(capture.exchanges) == 2
    warcio_accepts(tmp_path, capture)


def test_a_page_that_hangs_chromium_is_bounded_recorded_and_leaves_nothing(
        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A script that never yields: Chromium is killed at the time limit, the pictures are
    recorded absent with the reason, and nothing is left in the temporary folder (Chromium,
    killed, leaves its own org.chromium.* folder in TMPDIR unless that is ours to remove)."""
    browser = require_tool("chromium")
    # short: Chromium's socket in TMPDIR must fit in 108 bytes (a pytest tmp_path is too long)
    temporary = Path(tempfile.mkdtemp(prefix="ek-t-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(temporary))
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    monkeypatch.setattr(render_module, "RENDER_TIMEOUT", 3.0)
    html = b"<html><body><h1>Fake Bank</h1><script>for (;;) {}</script></body></html>"
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
              + str(len(html)).encode() + b"\r\n\r\n" + html)
    started = time.monotonic()
    rendering = render_module.render("http://fake-bank.test/", {"http://fake-bank.test/": answer},
                                     browser)
    assert time.monotonic() - started < 2 * 3.0 + 10
    assert rendering.screenshot is None and rendering.pdf is None
    assert rendering.absent == {"screenshot": "Chromium did not finish within 3 s",
                                "pdf": "Chromium did not finish within 3 s"}
    assert list(temporary.iterdir()) == []
    left = subprocess.run(["pgrep", "-f", str(temporary)], capture_output=True, text=True)
    assert left.stdout == ""  # no Chromium process of ours still running


def test_a_header_block_that_never_ends_is_scanned_once_not_at_every_read() -> None:
    """8 MiB of header lines and no blank line, in 64 KiB reads: looking for the end from the
    start again at each read took seconds (40 MB/s), 13.9 s for 8 MiB from a real server."""
    from evidencekit.sources.web.fetch import ResponseEnd
    line = b"X-Junk: " + b"a" * 1000 + b"\r\n"
    data = b"HTTP/1.1 200 OK\r\n" + line * (8 << 10)
    end, received = ResponseEnd(), bytearray()
    started = time.monotonic()
    for at in range(0, len(data), 1 << 16):
        received += data[at:at + (1 << 16)]
        assert not end.complete(received)
    assert time.monotonic() - started < 1.0
    received += b"Content-Length: 0\r\n\r\n"
    assert end.complete(received)  # the blank line, when it comes, is found


def test_a_page_naming_a_million_resources_is_listed_so_far_in_bounded_time() -> None:
    """17 MB of distinct <img> tags (under the size limit of one answer): resources were kept
    unique by a list search (23 s for 40,000, hours for this), and all of a page's tags were
    read and listed. Now the first LISTED_AT_MOST are listed, and the capture says so."""
    from evidencekit.sources.web.page import LISTED_AT_MOST
    count = 1_000_000
    html = b"<html><body>" + b"".join(b"<img src=/%d>" % n for n in range(count))
    page = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + html
    limits = Limits(timeout=10.0, max_resources=2, user_agent="evidencekit-test")
    image = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 3\r\n\r\nPNG"
    with raw_server([[page], [image]]) as site:
        started = time.monotonic()
        capture = capture_page(site.base + "/", limits)
        took = time.monotonic() - started
    assert took < 10, took
    assert len(capture.exchanges) == 3 and len(capture.not_fetched) == LISTED_AT_MOST - 2
    assert capture.problems()[-1] == (f"the page names more than {LISTED_AT_MOST} resources: "
                                      f"the first {LISTED_AT_MOST} are listed, the rest were "
                                      "not looked for")


def test_a_long_host_name_still_makes_file_names_that_fit() -> None:
    """Host names up to 253 bytes: HOST.web-capture.json must stay a file name (255 bytes at
    most), or the bundle verifies but cannot be extracted ("File name too long")."""
    from evidencekit.sources.web import FILES, WebSource
    long = ".".join(["a" * 60] * 4)
    urls = [f"http://{long}.example/", f"http://{long}.example.org/", f"http://{long}.example/",
            "http://short.example/"]
    source = WebSource(urls)
    source.place(0, set())
    names = [record.bag_name for record in source.records()]
    assert len(set(names)) == 4 and names[3] == "short.example"
    assert names[2] == names[0] + "~1"
    assert all(len(f"{name}.{file}".encode()) <= 255 for name in names for file in FILES)


def test_redirects_of_resources_stay_within_the_bytes_of_the_whole_page() -> None:
    """max_page bounds the memory a page takes: it was checked only before each resource, so
    one asked just under it could bring 11 answers (10 redirects) of max_response each more."""
    limits = Limits(timeout=2.0, max_response=4096, max_page=10_000,
                    user_agent="evidencekit-test")
    html = b"<img src='/r'>" + b" " * 3000
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
              + str(len(html)).encode() + b"\r\n\r\n" + html)
    filler = b"x" * 3000
    loop = (b"HTTP/1.1 302 Found\r\nLocation: /r\r\nContent-Length: "
            + str(len(filler)).encode() + b"\r\n\r\n" + filler)
    with raw_server([[answer], [loop]]) as site:
        capture = capture_page(site.base + "/", limits)
    assert sum(len(e.response) for _, e in capture.exchanges) <= limits.max_page
    assert any("the page's answers reached 10000 bytes in all" in problem
               for problem in capture.problems())


def test_under_a_long_temporary_folder_chromium_still_renders(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chromium aborts when its socket's path in TMPDIR passes 104-108 bytes: its own TMPDIR
    inside ours is given only when short enough (a pytest tmp_path, or macOS's TMPDIR, is
    not)."""
    browser = require_tool("chromium")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert len(str(tmp_path)) > 50
    html = b"<html><body><h1>Fake Bank</h1></body></html>"
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
              + str(len(html)).encode() + b"\r\n\r\n" + html)
    rendering = render_module.render("http://fake-bank.test/", {"http://fake-bank.test/": answer},
                                     browser)
    assert rendering.absent == {} and rendering.screenshot is not None


def test_a_redirect_to_a_path_past_ascii_asks_for_the_bytes_the_site_sent(tmp_path: Path) -> None:
    """Location: /anmelden-bestätigen (UTF-8, as sites send it) and a latin-1 byte: asked as
    a browser asks, each byte percent-encoded as it came."""
    utf8 = "/anmelden-bestätigen".encode()
    moved = (b"HTTP/1.1 302 Found\r\nLocation: " + utf8 + b"?n=\xe9\r\n"
             b"Content-Length: 0\r\n\r\n")
    page = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
    with raw_server([[moved], [page]]) as site:
        capture = capture_page(site.base + "/", QUICK)
        asked = site.requests[1].split(b" ")[1]
    assert asked == b"/anmelden-best%C3%A4tigen?n=%E9"
    assert capture.final_url == site.base + "/anmelden-best%C3%A4tigen?n=%E9"
    assert capture.problems() == []
    warcio_accepts(tmp_path, capture)
