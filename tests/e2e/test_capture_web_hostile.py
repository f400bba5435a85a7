"""capture --url end to end against a hostile site (tests/support/raw_http.py: the bytes each
answer is made of are the test's): interim answers, bare line feeds, a chunk size that loops, a
reset mid-answer, a resource on another local service, and two sites on one host. The real
command's --json and exit code, both JSON documents against their schemas, warcio on both WARCs,
and the bundle checked by hand (FORMAT.md §7.2)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from evidencekit.sources.web.render import BROWSER_ENV
from tests.support.by_hand import by_hand, toolbox_in
from tests.support.raw_http import PAUSE, RESET, raw_server
from tests.support.schemas import assert_valid
from tests.support.web_capture import capture, extracted, valid_capture_document
from tests.support.web_server import warcio_command


def answer(body: bytes, content_type: bytes = b"text/html", end: bytes = b"\r\n") -> bytes:
    return (b"HTTP/1.1 200 OK" + end + b"Content-Type: " + content_type + end
            + b"Content-Length: " + str(len(body)).encode() + end + end + body)


def test_a_hostile_site_is_captured_as_far_as_it_went_and_says_what_is_missing(
        tmp_path: Path, keys: dict[str, Path], home: Path) -> None:
    with raw_server([[answer(b"secret", b"text/plain")]]) as inside:
        html = (f"<html><body><img src='/hint.png'><img src='/loop.js'><img src='/cut.css'>"
                f"<img src='{inside.base}/router'><p>\xe9\xff</p></body></html>").encode("latin-1")
        hostile = [
            [b"HTTP/1.1 103 Early Hints\r\nLink: </hint.png>\r\n\r\n", PAUSE, answer(html)],
            [answer(b"PNG", b"image/png", end=b"\n")],
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-6\r\n"],
            [b"HTTP/1.1 200 OK\r\nContent-Length: 900\r\n\r\n" + b"x" * 400, PAUSE, RESET]]
        with raw_server(hostile) as site, raw_server([[answer(b"<p>second</p>")]]) as second:
            done = capture(tmp_path, keys, "--url", site.base + "/", "--url",
                           second.base + "/", env={BROWSER_ENV: str(tmp_path / "none")})
        assert inside.requests == []
    assert done.code == 3, done.stderr + done.stdout
    result = json.loads(done.stdout)
    assert_valid(result, "capture")
    first, other = result["web"]
    assert first["status"] == 200 and first["requests"] == 5 and not first["complete"]
    assert other["complete"] and other["files"][0] == "data/127.0.0.1~1.page.warc.gz"
    said = " ".join(first["problems"])
    assert f"{inside.base}/router" in said and f"{site.base}/cut.css" in said
    assert f"{site.base}/loop.js" not in said
    data = extracted(tmp_path, keys)
    for name in ("127.0.0.1", "127.0.0.1~1"):
        valid_capture_document(data / f"{name}.web-capture.json")
        checked = subprocess.run([warcio_command(), "check", "-v",
                                  str(data / f"{name}.page.warc.gz")],
                                 capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0 and "fail" not in checked.stdout, checked.stdout
    by_hand_result = by_hand(toolbox_in(tmp_path / "toolbox"), tmp_path / "out.evidence",
                             "-i", keys["identity"])
    assert by_hand_result.code == 0, by_hand_result.verdict


@pytest.mark.parametrize(("option", "value", "said"), [
    ("--user-agent", "Mozilla/5.0 …", "a User-Agent is printable ASCII on one line"),
    ("--user-agent", "x\r\nX-Injected: 1", "a User-Agent is printable ASCII on one line"),
    ("--url-timeout", "nan", "is not a number of seconds")],
    ids=["ellipsis-copied-from-an-example", "line-end", "nan"])
def test_limits_that_cannot_work_are_refused_before_anything_is_asked(
        tmp_path: Path, keys: dict[str, Path], home: Path, option: str, value: str,
        said: str) -> None:
    """They stopped the capture with an internal error (exit 5: a User-Agent past ASCII, a
    timeout of NaN), or added a header of their own to every request (a line end)."""
    with raw_server([[answer(b"<p>page</p>")]]) as site:
        done = capture(tmp_path, keys, "--url", site.base + "/", option, value)
        assert site.requests == []
    assert done.code == 2, done.stderr + done.stdout
    assert said in done.stdout + done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out.evidence").exists()
