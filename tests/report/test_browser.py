"""The HTML report in a real browser: headless Chromium (Debian package ``chromium``) opens it
with no console error, no script error and nothing refused by its Content-Security-Policy, and
prints it to PDF, with its styles, its pictures and "Page n of N".

Chromium is driven through the DevTools protocol over a pipe (--remote-debugging-pipe: file
descriptors 3 and 4, messages as JSON ended by a NUL byte), so no port is opened at all.
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from tests.support.cli import run_cli
from tests.support.env import bare_home
from tests.support.fraud_case import FraudCase, report_of
from tests.support.tools import require_tool

pytestmark = [pytest.mark.interop, pytest.mark.slow]

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-extensions", "--remote-debugging-pipe"]
TIMEOUT = 90.0


@pytest.fixture(autouse=True)
def users_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The home every test here runs under (empty, in the temporary folder), checked still
    empty at the end: Chromium writes .config/chromium, .cache and .local/share under HOME even
    with --user-data-dir, and a test run must not touch the real one."""
    home = bare_home(monkeypatch, tmp_path / "users-home")
    yield home
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == []


class Browser:
    """Just enough of the DevTools protocol: commands, their answers, and the events seen."""

    def __init__(self, profile: Path) -> None:
        binary = require_tool("chromium")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def as_fds_3_and_4() -> None:  # in the child: where --remote-debugging-pipe looks
            read = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
            write = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
            os.dup2(read, 3)
            os.dup2(write, 4)

        home = profile.with_name(profile.name + "-home")  # its own home, beside its profile
        environment = {**os.environ, "HOME": str(home),
                       "XDG_CONFIG_HOME": str(home / ".config"),
                       "XDG_CACHE_HOME": str(home / ".cache"),
                       "XDG_DATA_HOME": str(home / ".local" / "share")}
        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=as_fds_3_and_4, pass_fds=(3, 4), env=environment)
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.deadline = time.monotonic() + TIMEOUT

    def _message(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = self.deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(left, 0))
            if not ready:
                pytest.fail("Chromium did not answer in time")
            data = os.read(self._from_browser, 1 << 20)
            if not data:
                pytest.fail(f"Chromium closed the pipe (exit {self.process.poll()})")
            self._buffer += data
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._message()
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    pytest.fail(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_for(self, method: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._message())

    def settle(self, seconds: float) -> None:
        """Collect the events that arrive within *seconds* (late console messages)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([self._from_browser], [], [], end - time.monotonic())
            if ready:
                self.events.append(self._message())

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except BaseException:
            pass
        finally:
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            os.close(self._to_browser)
            os.close(self._from_browser)


def open_and_print(page: Path, profile: Path) -> tuple[list[str], bytes]:
    """Open *page* (file://), collect every complaint, and print it to PDF (A4 from its CSS)."""
    browser = Browser(profile)
    try:
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.call(f"{domain}.enable", session)
        browser.call("Page.navigate", session, url=page.as_uri())
        browser.wait_for("Page.loadEventFired")
        browser.settle(1.0)
        pdf = browser.call("Page.printToPDF", session, printBackground=True,
                           preferCSSPageSize=True)["data"]
        browser.settle(0.3)
    finally:
        browser.close()
    return complaints(browser.events), base64.b64decode(pdf)


def complaints(events: list[dict[str, Any]]) -> list[str]:
    """Console errors and warnings, uncaught exceptions, and the browser's own log errors (a
    style sheet or picture refused by the Content-Security-Policy, a resource not loaded)."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            found.append(f"uncaught: {details.get('exception', {}).get('description') or details}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in (
                "error", "warning", "assert"):
            found.append(f"console {params['type']}: {params.get('args')}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in (
                "error", "warning"):
            entry = params["entry"]
            found.append(f"log {entry['level']} ({entry.get('source')}): {entry.get('text')}")
    return found


def green_banner_on(pdf: bytes, tmp_path: Path) -> bool:
    """Page 1 rendered by poppler: the VERIFIED box's green background is there (the style
    sheet was applied)."""
    from PIL import Image

    pdftoppm = require_tool("pdftoppm")
    (tmp_path / "printed.pdf").write_bytes(pdf)
    subprocess.run([pdftoppm, "-r", "40", "-f", "1", "-l", "1", "-png", tmp_path / "printed.pdf",
                    tmp_path / "page"], check=True, timeout=60)
    image = Image.open(next(tmp_path.glob("page*.png"))).convert("RGB")
    pixels = image.tobytes()
    green = sum(1 for i in range(0, len(pixels), 3)
                if abs(pixels[i] - 0xe7) < 8 and abs(pixels[i + 1] - 0xf4) < 8
                and abs(pixels[i + 2] - 0xea) < 8)
    return green > 500


def test_the_html_report_renders_and_prints_in_chromium(fraud_case: FraudCase, tmp_path: Path):
    output = tmp_path / "report.html"
    assert report_of(fraud_case, output).code == 0
    problems, pdf = open_and_print(output, tmp_path / "profile")
    assert problems == []
    reader = PdfReader(io.BytesIO(pdf))
    pages = [" ".join(p.extract_text().split()) for p in reader.pages]
    assert len(pages) >= 3
    assert reader.pages[0].mediabox.width == pytest.approx(595, abs=2)  # A4, from @page
    text = " ".join(pages)
    assert "VERIFIED: the bundle is intact" in pages[0]
    assert "5. Pictures and e-mails in the evidence" in text and "Jürgen Müller" in text
    assert "10. How to verify this bundle" in text
    assert all(f"Page {n} of {len(pages)}" in page for n, page in enumerate(pages, 1))
    assert sum(len(page.images) for page in reader.pages) >= 2  # the two thumbnails
    assert green_banner_on(pdf, tmp_path)


def test_a_failed_report_renders_and_prints_in_chromium(fraud_case: FraudCase, tmp_path: Path):
    damaged = tmp_path / "damaged.evidence"
    data = bytearray(fraud_case.path.read_bytes())
    data[len(data) // 2] ^= 1
    damaged.write_bytes(bytes(data))
    output = tmp_path / "failed.html"
    assert run_cli("report", damaged, "-i", fraud_case.keys["identity"], "-o", output,
                   "--force").code == 1
    problems, pdf = open_and_print(output, tmp_path / "profile")
    assert problems == []
    pages = [p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages]
    assert all("VERIFICATION FAILED" in page for page in pages)  # the mark on every page


def test_the_browser_check_sees_errors_and_refusals(tmp_path: Path):
    """The check above can fail: a script error, a console error, and what the report's own
    Content-Security-Policy refuses (a style attribute, an outside picture) are all seen."""
    from evidencekit.report.html import CSP

    page = tmp_path / "bad.html"
    page.write_text(
        f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        f'content="{CSP}"></head><body><p style="color:red">styled</p>'
        '<img src="https://example.invalid/x.png" alt=""></body></html>')
    problems, _ = open_and_print(page, tmp_path / "profile1")
    assert any("style" in p.lower() for p in problems), problems
    assert any("img-src" in p or "example.invalid" in p for p in problems), problems
    scripted = tmp_path / "script.html"
    scripted.write_text("<!DOCTYPE html><html><body><script>console.error('said');"
                        "null.boom();</script></body></html>")
    problems, _ = open_and_print(scripted, tmp_path / "profile2")
    assert any(p.startswith("uncaught:") for p in problems), problems
    assert any(p.startswith("console error") and "said" in p for p in problems), problems
