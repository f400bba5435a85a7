"""Web pages as evidence (``capture --url URL``): each URL a source of kind ``web``.

For each URL, files named ``data/HOST.`` then (docs/FORMAT.md §4.3):

- ``page.warc.gz``: every HTTP exchange as WARC 1.1 records (warc.py): the page, the redirects
  followed to it, its own resources one level deep (resources.py), each exchange's resolved
  addresses and TLS certificate chain (a metadata record);
- ``screenshot.png`` and ``page.pdf``: made by headless Chromium from the capture, not from the
  network (render.py), when Chromium is installed; the capture document says why otherwise;
- ``web-capture.json``: what was fetched, when, from where, how it ended
  (docs/schemas/web-capture.schema.json).

A page that was not captured whole (no answer, an answer cut by a limit, a resource that failed)
is stored as far as it came and recorded as an error of ``page.warc.gz``: the capture is then
incomplete (exit code 3), never silent.

The names are flat, beside the other sources' names in ``data/``, not in a folder of their own: a
folder in the bag is a folder that was captured, with its own manifest entry and stat fields
(checked by hand too, FORMAT.md §7.2), and a web page has none.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

from evidencekit import canonical
from evidencekit.clock import Clock, rfc3339, system_clock
from evidencekit.errors import UsageError
from evidencekit.sources.base import BytesContent, Content, Skip, SourceRecord, StreamEntry
from evidencekit.sources.files.walk import Entry
from evidencekit.sources.web.page import (
    PageCapture,
    capture_json,
    capture_page,
)
from evidencekit.sources.web.render import FetchMissing, Rendering, render
from evidencekit.sources.web.urls import check_url, check_user_agent
from evidencekit.sources.web_limits import DEFAULT_USER_AGENT, Limits

KIND = "web"
WARC_NAME = "page.warc.gz"
SCREENSHOT_NAME = "screenshot.png"
PDF_NAME = "page.pdf"
DOCUMENT_NAME = "web-capture.json"
FILES = (WARC_NAME, SCREENSHOT_NAME, PDF_NAME, DOCUMENT_NAME)  # data/HOST.FILE, in this order



class Renderer(Protocol):
    def __call__(self, url: str, replay: dict[str, bytes], browser: str | None = None,
                 fetch_missing: FetchMissing | None = None) -> Rendering: ...


__all__ = ["KIND", "Limits", "WebSource", "check_url"]


@dataclass(frozen=True)
class Captured:
    """One page as captured, for the command's summary."""

    capture: PageCapture
    rendering: Rendering
    name: str  # HOST (or HOST~1 …): its files are data/HOST.FILE

    def files(self) -> list[str]:
        """What is stored of the page, in data/."""
        made = {SCREENSHOT_NAME: self.rendering.screenshot is not None,
                PDF_NAME: self.rendering.pdf is not None}
        return [f"data/{self.name}.{file}" for file in FILES if made.get(file, True)]

    def details(self) -> dict[str, Any]:
        """The source record's ``details``: the page's status, address and certificate, and
        whether it is whole (signed with the manifest; the rest is in web-capture.json)."""
        page = self.capture.page
        tls = page.tls if page else None
        return {"started": rfc3339(self.capture.started_ns),
                "status": page.status if page else None,
                "address": page.address if page else None,
                "requests": len(self.capture.exchanges),
                "complete": not self.capture.problems(),
                "certificate_sha256": hashlib.sha256(tls.chain[0]).hexdigest()
                if tls and tls.chain else None,
                "certificate_verified": tls.verified if tls else None,
                "certificate_error": tls.verify_error if tls else None,
                "screenshot": self.rendering.screenshot is not None,
                "pdf": self.rendering.pdf is not None}

    def to_json(self) -> dict[str, Any]:
        page = self.capture.page
        tls = page.tls if page else None
        return {"url": self.capture.given, "final_url": self.capture.final_url,
                "files": self.files(), "status": page.status if page else None,
                "requests": len(self.capture.exchanges),
                "complete": not self.capture.problems(), "problems": self.capture.problems(),
                "certificate_verified": tls.verified if tls else None,
                "certificate_error": tls.verify_error if tls else None,
                "screenshot": self.rendering.screenshot is not None,
                "pdf": self.rendering.pdf is not None, "absent": self.rendering.absent}


class _WarcContent(BytesContent):
    """The WARC, with what is missing from it (:class:`evidencekit.sources.PartlyRead`): the
    manifest entry's ``error``, and the capture incomplete, when the page was not captured
    whole."""

    def __init__(self, data: bytes, problems: list[str]) -> None:
        super().__init__(data)
        self._problems = problems

    def unread(self) -> str | None:
        return "; ".join(self._problems) or None


class WebSource:
    """The pages at *urls* (checked with :func:`check_url`), fetched when the pipeline asks for
    their entries: within the capture, so that its start and end bracket every fetch."""

    def __init__(self, urls: list[str], limits: Limits | None = None,
                 renderer: Renderer = render, clock: Clock = system_clock) -> None:
        self._urls = [check_url(url) for url in urls]
        self._given = list(urls)
        limits = limits or Limits()
        self._limits = replace(limits, user_agent=check_user_agent(limits.user_agent)) \
            if limits.user_agent else replace(limits, user_agent=DEFAULT_USER_AGENT)
        if not limits.timeout > 0:  # NaN too: no deadline would ever come
            raise UsageError(f"--url-timeout {limits.timeout} is not a number of seconds")
        self._renderer = renderer
        self._clock = clock
        self._first = 0
        self._names = [_host_name(url) for url in self._urls]
        self._final = list(self._urls)
        self.captured: list[Captured] = []  # for the command's summary, once read

    def place(self, first_index: int, taken: set[str]) -> None:
        """Take HOST (else HOST~1 …) for each page such that every ``HOST.FILE`` is free too."""
        self._first = first_index
        for number, host in enumerate(self._names):
            candidate, count = host, 0
            while candidate in taken or any(f"{candidate}.{file}" in taken for file in FILES):
                count += 1
                candidate = f"{host}~{count}"
            self._names[number] = candidate
            taken.add(candidate)
            taken.update(f"{candidate}.{file}" for file in FILES)

    def records(self) -> list[SourceRecord]:
        """One per URL; once a page is captured, its ``path`` is where the redirects ended and
        its ``details`` what a reader looks for first (FORMAT.md §4.3)."""
        done = {page.name: page for page in self.captured}
        return [SourceRecord(self._first + number, given.encode("utf-8"),
                             self._final[number].encode("utf-8"), name, kind=KIND,
                             details=done[name].details() if name in done else None)
                for number, (given, name) in enumerate(zip(self._given, self._names,
                                                           strict=True))]

    def estimate(self, skip: Skip) -> tuple[int, int | None]:
        return 4 * len(self._urls), None

    def entries(self, skip: Skip) -> Iterator[Entry | StreamEntry]:
        for number, url in enumerate(self._urls):
            yield from self._page(number, url)

    def _page(self, number: int, url: str) -> Iterator[StreamEntry]:
        index, name = self._first + number, self._names[number]
        capture = capture_page(url, self._limits, self._clock, warc_name=WARC_NAME)
        self._final[number] = capture.final_url
        replay = capture.replay()
        if replay:
            # where the redirects and refreshes ended: a refresh after some seconds would
            # otherwise be pictured before it happens (Chromium's virtual time is 5 s); and
            # what the page loads in the browser that the capture lacks is fetched for it
            try:
                rendering = self._renderer(capture.final_url, replay,
                                           fetch_missing=capture.browser)
            finally:
                if capture.browser is not None:
                    capture.browser.close()
        else:
            nothing = "nothing was received from the site: there is nothing to render"
            rendering = Rendering(absent={"screenshot": nothing, "pdf": nothing})
        capture.browser_unlisted = rendering.unlisted
        self.captured.append(Captured(capture, rendering, name))
        problems = capture.problems()

        def entry(file: str, content: Content) -> StreamEntry:
            return StreamEntry(index, f"{name}.{file}".encode(), f"data/{name}.{file}",
                               content, mtime_ns=capture.started_ns)

        yield entry(WARC_NAME, _WarcContent(capture.warc, problems))
        files: dict[str, object] = {"warc": f"{name}.{WARC_NAME}", "screenshot": None,
                                    "pdf": None,
                                    "absent": rendering.absent, "browser": rendering.browser,
                                    "rendered_from": "the WARC, through a replay proxy on "
                                    "127.0.0.1; what the browser asked that the WARC did not "
                                    "hold was fetched once and added to it (role browser); "
                                    "no URL was fetched twice",
                                    "asked_by_browser_not_captured": rendering.not_captured,
                                    "withheld_from_browser": [
                                        {"url": url, "reason": why}
                                        for url, why in rendering.withheld.items()]}
        if rendering.screenshot is not None:
            files["screenshot"] = f"{name}.{SCREENSHOT_NAME}"
            yield entry(SCREENSHOT_NAME, BytesContent(rendering.screenshot))
        if rendering.pdf is not None:
            files["pdf"] = f"{name}.{PDF_NAME}"
            yield entry(PDF_NAME, BytesContent(rendering.pdf))
        yield entry(DOCUMENT_NAME, BytesContent(canonical.dumps(capture_json(capture, files))))


NAME_AT_MOST = 190  # bytes of HOST in HOST~N.FILE: a file name holds 255 at most


def _host_name(url: str) -> str:
    """The name of a page's files: its host (an IPv6 address's colons as ``_``, for file systems
    that refuse them). A host name may be 253 bytes long (phishing names often are long), and
    HOST.web-capture.json would not fit in a file name: a bundle that cannot be extracted. A
    longer one is cut, and ends with its hash (two long names stay two)."""
    host = (urllib.parse.urlsplit(url).hostname or "page").replace(":", "_")
    if len(host) <= NAME_AT_MOST:
        return host
    return host[:NAME_AT_MOST - 13] + "~" + hashlib.sha256(host.encode()).hexdigest()[:12]
