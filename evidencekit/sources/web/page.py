"""One page: its URL fetched (redirects followed), then its own resources, every exchange written
to one WARC file, and a JSON document describing the fetch (docs/schemas/web-capture.schema.json).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography import x509

from evidencekit import canonical
from evidencekit.clock import Clock, rfc3339, system_clock
from evidencekit.sources.web import warc
from evidencekit.sources.web.fetch import Exchange, fetch, head_end
from evidencekit.sources.web.render import NOT_CAPTURED_LISTED_AT_MOST
from evidencekit.sources.web.resources import (
    IN_THE_PAGE,
    REFUSED_LISTED_AT_MOST,
    UNREADABLE,
    PageLinks,
    charset_of,
    is_css,
    is_html,
    joined,
    read_page,
    refresh_target,
    scheme_of,
    stylesheet_links,
)
from evidencekit.sources.web.urls import Unfetchable, fetchable
from evidencekit.sources.web_limits import Limits

DOCUMENT_TYPE = "evidencekit.web-capture"
LISTED_AT_MOST = 10_000  # resources of one page listed (fetched: Limits.max_resources)
PAGE_TIME_FACTOR = 10  # a whole page (redirects and resources) gets ten exchanges' time
# roles of exchanges that are not on the way to the page: named by the page or its style
# sheets, or asked by the browser that made the pictures (BrowserFetches)
_NOT_THE_PAGE = ("resource", "browser")


@dataclass
class PageCapture:
    """What :func:`capture_page` got: the WARC's bytes and the exchanges, in order."""

    given: str
    started_ns: int
    limits: Limits
    exchanges: list[tuple[str, Exchange]] = field(default_factory=list)  # (role, exchange)
    not_fetched: list[tuple[str, str]] = field(default_factory=list)  # (url, why)
    record_ids: list[tuple[str, str | None]] = field(default_factory=list)  # request, response
    unfollowed: str | None = None  # why the page's redirects were not followed to the end
    unlisted: str | None = None  # why some resources the page names are not even listed
    refused_listed: int = 0  # addresses under a scheme not fetched, listed in not_fetched
    refused_unlisted: int = 0  # and past REFUSED_LISTED_AT_MOST (the page's and style sheets')
    # the browser's requests past what the replay proxy lists as not captured: counted
    browser_unlisted: int = 0
    warc: bytes = b""
    finished_ns: int = 0
    browser: BrowserFetches | None = field(default=None, repr=False, compare=False)

    @property
    def page(self) -> Exchange | None:
        """The last exchange of the redirect chain: the page itself."""
        chain = [exchange for role, exchange in self.exchanges if role not in _NOT_THE_PAGE]
        return chain[-1] if chain else None

    @property
    def final_url(self) -> str:
        page = self.page
        return page.url if page else self.given

    def problems(self) -> list[str]:
        """Sentences for what is missing: the page's own failure first, then its resources'."""
        found = []
        page = self.page
        if page is None or page.error:
            found.append(f"the page {self.final_url} was not captured whole: "
                         f"{page.error if page else 'nothing fetched'}")
        elif self.unfollowed:
            found.append(f"the page {self.given} was {self.unfollowed}; what came before is "
                         "recorded")
        failed = [(e.url, f"not captured whole: {e.error}") for role, e in self.exchanges
                  if role in _NOT_THE_PAGE and e.error]
        found += _grouped(failed + [(url, why) for url, why in self.not_fetched])
        if self.browser_unlisted:
            found.append(f"the browser, making the pictures, asked for more than "
                         f"{BROWSER_LISTED_AT_MOST} addresses the capture does not hold: "
                         f"{self.browser_unlisted} more requests were neither fetched nor "
                         "listed")
        if self.refused_unlisted:
            found.append(f"{self.refused_unlisted} more addresses the page names under a scheme "
                         "evidencekit does not fetch were neither fetched nor listed")
        return found + ([self.unlisted] if self.unlisted else [])

    def replay(self) -> dict[str, bytes]:
        """URL → the response as received, for rendering from the WARC (render.py)."""
        return {exchange.url: exchange.response for _, exchange in self.exchanges
                if exchange.response}


SHOWN_ONE_BY_ONE = 5  # resources named in the problems for one reason; past that, counted


def _grouped(missing: list[tuple[str, str]]) -> list[str]:
    """A sentence per resource missing, but for a reason shared by many (a page naming 10,000
    images past the limit of 100): the first few, then how many more (all are in the capture
    document)."""
    by_reason: dict[str, list[str]] = {}
    for url, why in missing:
        by_reason.setdefault(why, []).append(url)
    found = []
    for why, urls in by_reason.items():
        found += [f"the resource {url} was {why}" for url in urls[:SHOWN_ONE_BY_ONE]]
        if len(urls) > SHOWN_ONE_BY_ONE:
            found.append(f"{len(urls) - SHOWN_ONE_BY_ONE} more resources were {why} (each is "
                         "listed in the capture document)")
    return found


def capture_page(url: str, limits: Limits, clock: Clock = system_clock,
                 monotonic: Callable[[], float] = time.monotonic,
                 warc_name: str = "page.warc.gz") -> PageCapture:
    """Fetch *url* (checked by urls.check_url), its redirects (HTTP and ``<meta>`` refresh) and
    its own resources, with what its style sheets name."""
    capture = PageCapture(url, clock(), limits)
    run = _Run(capture, monotonic() + limits.timeout * PAGE_TIME_FACTOR, clock, monotonic)
    run.out.append(warc.warcinfo(capture.started_ns, warc_name, warc.record_id()))
    capture.unfollowed = run.follow(url, "page")
    links = _follow_refreshes(capture, run)
    page = capture.page
    if links is not None and page is not None:
        _record_refused(capture, links)
        named = links.resources
        if len(named) > LISTED_AT_MOST:
            named = named[:LISTED_AT_MOST]
            capture.unlisted = _unlisted()
        _fetch_resources(capture, run, named, page.url)
    capture.warc = b"".join(run.out)
    capture.finished_ns = clock()
    capture.browser = BrowserFetches(capture, run)
    return capture


def _record_refused(capture: PageCapture, links: PageLinks) -> None:
    """What the page (or a style sheet) names under a scheme that is not fetched (``file:``,
    ``ftp:``...): not fetched, and said so, never dropped."""
    room = max(0, REFUSED_LISTED_AT_MOST - capture.refused_listed)
    capture.refused_listed += min(room, len(links.refused))
    capture.refused_unlisted += links.refused_unlisted + max(0, len(links.refused) - room)
    for url, how in links.refused[:room]:
        scheme = scheme_of(url)
        why = UNREADABLE if scheme is None else (
            f"its scheme {scheme}: is not fetched (evidencekit fetches http:// and https:// "
            "only)")
        capture.not_fetched.append(
            (url, f"not followed: the page's {how} leads there, and {why}"
             if how != "resource" else f"not fetched: {why}"))


def _unlisted() -> str:
    return (f"the page names more than {LISTED_AT_MOST} resources: the first {LISTED_AT_MOST} "
            "are listed, the rest were not looked for")


def _links(page: Exchange | None) -> PageLinks | None:
    """What the page's HTML names (its resources, its refresh), when it is a whole HTML page."""
    if page is None or page.status != 200 or page.error:
        return None
    body = page.body()
    content_type = page.header("Content-Type")
    if not is_html(content_type, body):
        return None
    return read_page(body, page.url, charset_of(content_type), at_most=LISTED_AT_MOST + 1)


def _refresh(capture: PageCapture, page: Exchange | None, links: PageLinks | None
             ) -> tuple[str, str] | None:
    """Where the page sends the browser on, and by what: its ``Refresh`` header (which
    browsers obey first), else its ``<meta http-equiv="refresh">``. A Refresh header to a
    scheme not fetched (file:, ftp:) is listed in *capture*'s not_fetched and not followed,
    the page is where it ends, as resources.py does for such a <meta> refresh (before, it
    ended the capture as "not reached", unlisted, the page's resources not fetched); a
    browser obeys the first refresh only."""
    if page is None or page.status != 200 or page.error:
        return None
    header = page.header("Refresh")
    target = refresh_target(header) if header else None
    if target is not None:
        where = joined(page.url, target)
        scheme = None if where is None else scheme_of(where)
        if where is not None and scheme in ("http", "https"):
            return where, "Refresh header"
        if scheme not in IN_THE_PAGE:
            _record_refused(capture, PageLinks(refused=[(where or target, "Refresh header")]))
        return None
    if links is not None and links.refresh is not None:
        return links.refresh, "<meta> refresh"
    return None


def _follow_refreshes(capture: PageCapture, run: _Run) -> PageLinks | None:
    """Follow the page's refresh (a ``Refresh`` header or ``<meta http-equiv="refresh">``: a
    phishing kit's landing page often sends the browser on this way, seconds later) as a
    browser would, within the same count as HTTP redirects; the links of the page where it
    ends (None: not a whole HTML page)."""
    limits = capture.limits
    while capture.unfollowed is None:
        page = capture.page
        links = _links(page)
        refresh = _refresh(capture, page, links)
        if page is None or refresh is None:
            return links
        where, how = refresh
        try:
            target = fetchable(where)
        except Unfetchable as exc:
            capture.unfollowed = (f"not reached: its {how} leads to {where}, which is not "
                                  f"fetched: {exc}")
            return None
        if target == page.url:
            return links  # a page that reloads itself
        hops = sum(1 for role, _ in capture.exchanges if role not in _NOT_THE_PAGE) - 1
        if hops >= limits.max_redirects:
            capture.unfollowed = f"not reached: more than {limits.max_redirects} redirects"
            return None
        capture.unfollowed = run.follow(target, "refreshed", referer=page.url, first_hop=hops + 1)
    return None


STYLESHEET_DEPTH = 4  # page -> style sheet -> @import -> @import: what the last names is read


def _fetch_resources(capture: PageCapture, run: _Run, named: list[str], page_url: str) -> None:
    """Each resource once, in the page's order, then what its style sheets name (fonts,
    pictures, @import), each asked with the page, or the style sheet naming it, as Referer."""
    listed = set(named)
    queue = deque((resource, page_url, 1) for resource in named)
    while queue:
        resource, referer, depth = queue.popleft()
        why = run.refusal()
        if why is None:
            why = run.follow(resource, "resource", referer=referer)
            answer = capture.exchanges[-1][1]
            if why is None and depth < STYLESHEET_DEPTH and answer.status == 200 and \
                    not answer.error and is_css(answer.header("Content-Type"), answer.url):
                sheet = stylesheet_links(answer.body(), answer.url,
                                         charset_of(answer.header("Content-Type")),
                                         at_most=LISTED_AT_MOST + 1)
                _record_refused(capture, sheet)
                for found in sheet.resources:
                    if found in listed:
                        continue
                    if len(listed) >= LISTED_AT_MOST:
                        capture.unlisted = _unlisted()
                        break
                    listed.add(found)
                    queue.append((found, answer.url, depth + 1))
        if why is not None:
            capture.not_fetched.append((resource, why))


def is_local(address: str) -> bool:
    """An address of this computer or its local network (loopback, private, link-local,
    unspecified, shared, multicast...): anything but the public Internet."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


class _Run:
    """One page's fetches under its limits: the WARC records so far, the time and bytes left.

    A hostile site can point its redirects and resources at the victim's own computer or
    network (``http://127.0.0.1:631/``, the router at ``192.168.1.1``): a GET there can change
    a setting, and its answer would be stored in evidence the victim hands on. So once the
    address the person gave has been asked, a local address is connected to only under that
    same host and port, and only when the person's own address was local (a capture of one's
    own router or test server): the person chose it, the site did not.
    """

    def __init__(self, capture: PageCapture, deadline: float, clock: Clock,
                 monotonic: Callable[[], float]) -> None:
        self.capture = capture
        self.deadline = deadline
        self.clock = clock
        self.monotonic = monotonic
        self.out: list[bytes] = []
        self.received = 0
        self.own_local: tuple[str, int] | None = None  # the person's address, when local
        self.asked = False  # whether the person's own address has been asked yet
        self.resources = 0  # resources asked for or refused so far (page, style sheets, browser)

    def _refusal_for(self, url: str) -> Callable[[str], str | None] | None:
        if not self.asked:
            return None  # the address the person gave: theirs to choose
        parts = urllib.parse.urlsplit(url)
        origin = ((parts.hostname or "").lower(),
                  parts.port or (443 if parts.scheme == "https" else 80))

        def refuse(address: str) -> str | None:
            if not is_local(address) or origin == self.own_local:
                return None
            return (f"{address} is on this computer or its local network, and the site led "
                    "there (only the address given to --url may be local)")
        return refuse

    def refusal(self) -> str | None:
        """Why the next resource is not asked for (a limit reached), or None; counted."""
        limits = self.capture.limits
        index, self.resources = self.resources, self.resources + 1
        if index >= limits.max_resources:
            return f"not fetched: more than {limits.max_resources} resources"
        if self.monotonic() >= self.deadline:
            return f"not fetched: {self._out_of_time()}"
        if self.received >= limits.max_page:
            return f"not fetched: {self._out_of_room()}"
        return None

    def _out_of_room(self) -> str:
        return f"the page's answers reached {self.capture.limits.max_page} bytes in all"

    def _out_of_time(self) -> str:
        return (f"the time for the whole page ({self.capture.limits.timeout * PAGE_TIME_FACTOR:g}"
                " s) had run out")

    def follow(self, url: str, role: str, referer: str | None = None, first_hop: int = 0
               ) -> str | None:
        """Fetch *url* and the redirects it leads to; why they were not followed to the end
        (None when they were: the last exchange is the answer, whatever it is). *first_hop*:
        redirects already followed to reach *url* (a page's refresh)."""
        current = url
        for hop in range(first_hop, self.capture.limits.max_redirects + 1):
            try:
                current = fetchable(current)
            except Unfetchable as exc:
                return (f"not fetched: {exc}" if hop == first_hop else
                        f"not reached: it redirects to {current}, which is not fetched: {exc}")
            # each hop within the page's time and bytes, not only each resource's start
            limits = self.capture.limits
            left, room = self.deadline - self.monotonic(), limits.max_page - self.received
            why = (self._out_of_time() if left <= 0 else self._out_of_room() if room <= 0
                   else None)
            if why is not None:
                return (f"not fetched: {why}" if hop == first_hop else
                        f"not reached: it redirects to {current}, which is not fetched: {why}")
            exchange = fetch(current, replace(limits, timeout=min(limits.timeout, left),
                                              max_response=min(limits.max_response, room)),
                             self.clock, self.monotonic, referer, self._refusal_for(current))
            if not self.asked:
                self.asked = True
                parts = urllib.parse.urlsplit(current)
                if exchange.address is not None and is_local(exchange.address):
                    self.own_local = ((parts.hostname or "").lower(), exchange.port)
            self.capture.exchanges.append((role if role in _NOT_THE_PAGE or hop == first_hop
                                           else "redirected", exchange))
            self.out.extend(_records(exchange, self.capture, self.capture.exchanges[-1][0]))
            self.received += len(exchange.response)
            if exchange.redirect_to is None:
                return None
            current = exchange.redirect_to
        return f"not reached: more than {self.capture.limits.max_redirects} redirects"


BROWSER_SECONDS = 20.0  # for all the browser's fetches: the pictures have 60 s each
# addresses the browser asks for that are tried (fetched, or listed as not fetched): a page's
# script asking for thousands of addresses of 60 KB each (3,000 in a loop, asked again for
# the PDF) made a capture document of 700 MB and took 2.3 GB of memory; past this, the replay
# proxy lists them as not captured, as many again at most, then only counts them
BROWSER_LISTED_AT_MOST = NOT_CAPTURED_LISTED_AT_MOST


class BrowserFetches:
    """What the browser making the pictures asks that the capture does not hold (what the
    page's scripts load, the favicon), fetched for it once, as any resource, and recorded in
    the WARC with the role ``browser``: the WARC then replays the page as the browser saw it.

    Called by the replay proxy (render.py) from its threads: one fetch at a time, each URL
    once; after :meth:`close` (the pictures made) nothing more is fetched, and the WARC and
    the end of the capture include what was. Within the page's limits (resources, bytes,
    time, no local address), and within :data:`BROWSER_SECONDS` from the first (Chromium
    waits for what it asked: a site answering its scripts slowly would otherwise cost the
    pictures): the browser asks through the capture's own fetcher, with its user agent, no
    cookies, and the page as Referer; only GET (render.py asks for nothing else).
    """

    def __init__(self, capture: PageCapture, run: _Run) -> None:
        self._capture = capture
        self._run = run
        self._lock = threading.Lock()
        self._tried: set[str] = set()
        self._closed = False
        self._until: float | None = None  # the end of the browser's time, from its first ask

    def __call__(self, url: str) -> dict[str, bytes] | None:
        """Fetch *url* for the browser; the replay with it (None: nothing new to replay)."""
        with self._lock:
            if self._closed:
                return None
            try:
                url = fetchable(url)
            except Unfetchable:
                return None  # the proxy lists it as asked and not captured
            held = {exchange.url for _, exchange in self._capture.exchanges}
            if url in held or url in self._tried:
                return None
            if len(self._tried) >= BROWSER_LISTED_AT_MOST:
                return None  # the replay proxy lists it as not captured, or counts it
            self._tried.add(url)
            why = self._run.refusal()
            if why is None:
                why = self._within_time(url)
            if why is not None:
                self._capture.not_fetched.append((url, why))
                return None
            return self._capture.replay()

    def _within_time(self, url: str) -> str | None:
        """:meth:`_Run.follow` within the browser's time as well as the page's."""
        run = self._run
        now = run.monotonic()
        if self._until is None:
            self._until = now + BROWSER_SECONDS
        if now >= self._until:
            return (f"not fetched: the {BROWSER_SECONDS:g} s given to what the browser asks "
                    "had run out")
        page_deadline = run.deadline
        run.deadline = min(page_deadline, self._until)
        try:
            return run.follow(url, "browser", referer=self._capture.final_url)
        finally:
            run.deadline = page_deadline

    def close(self) -> None:
        """No more fetches (waits for one under way, bounded by its time limit); the WARC and
        the capture's end as they now stand."""
        with self._lock:
            self._closed = True
            self._capture.warc = b"".join(self._run.out)
            self._capture.finished_ns = self._run.clock()


def _records(exchange: Exchange, capture: PageCapture, role: str) -> list[bytes]:
    """The request, the response (when any byte came back) and the connection's metadata
    (its role, addresses, TLS, what went wrong) of one exchange."""
    out: list[bytes] = []
    request_id = warc.record_id()
    response_id = warc.record_id() if exchange.response else None
    common = [("WARC-Target-URI", exchange.url)]
    if exchange.address:
        common.append(("WARC-IP-Address", exchange.address))
    if exchange.request:
        concurrent = [("WARC-Concurrent-To", response_id)] if response_id else []
        out.append(warc.record("request", exchange.request, exchange.started_ns,
                               "application/http;msgtype=request", common + concurrent,
                               request_id, payload_offset=len(exchange.request)))
    if response_id is not None:
        extra = [("WARC-Truncated", exchange.truncated)] if exchange.truncated else []
        # What follows the first header block, as warcio reads it: past an interim answer
        # (103 Early Hints) the payload digest covers the final answer's head and body too.
        first = head_end(exchange.response)
        offset = first[1] if first is not None and exchange.status is not None else None
        out.append(warc.record("response", exchange.response,
                               exchange.response_started_ns or exchange.started_ns,
                               "application/http;msgtype=response", common + extra,
                               response_id, payload_offset=offset))
    about = response_id or (request_id if exchange.request else None)
    refers = [("WARC-Concurrent-To", about)] if about else []
    metadata = canonical.dumps({"role": role, **connection_json(exchange)})
    out.append(warc.record("metadata", metadata, exchange.started_ns, "application/json",
                           [("WARC-Target-URI", exchange.url), *refers], warc.record_id()))
    capture.record_ids.append((request_id if exchange.request else "", response_id))
    return out


def connection_json(exchange: Exchange) -> dict[str, Any]:
    """What the exchange was, beyond its bytes: where it went, over what, and how it ended."""
    tls = None
    if exchange.tls is not None:
        tls = {"version": exchange.tls.version, "cipher": exchange.tls.cipher,
               "verified": exchange.tls.verified, "verify_error": exchange.tls.verify_error,
               "certificates": [certificate_json(der) for der in exchange.tls.chain]}
    return {
        "url": exchange.url, "started": rfc3339(exchange.started_ns),
        "finished": rfc3339(exchange.finished_ns),
        "resolved_addresses": exchange.addresses, "address": exchange.address,
        "port": exchange.port, "tls": tls, "status": exchange.status,
        "content_type": exchange.header("Content-Type"),
        "redirect_to": exchange.redirect_to,
        "request_bytes": len(exchange.request), "response_bytes": len(exchange.response),
        "truncated": exchange.truncated, "error": exchange.error,
    }


def certificate_json(der: bytes) -> dict[str, Any]:
    """A certificate as sent (DER, base64) with what a reader looks for first."""
    found: dict[str, Any] = {"sha256": hashlib.sha256(der).hexdigest(),
                             "der_b64": base64.b64encode(der).decode("ascii")}
    try:
        cert = x509.load_der_x509_certificate(der)
        found.update({"subject": cert.subject.rfc4514_string(),
                      "issuer": cert.issuer.rfc4514_string(),
                      "serial": format(cert.serial_number, "x"),
                      "not_before": cert.not_valid_before_utc.isoformat(),
                      "not_after": cert.not_valid_after_utc.isoformat()})
    except ValueError:
        found["subject"] = None  # kept as sent all the same
    return found


def capture_json(capture: PageCapture, files: dict[str, Any]) -> dict[str, Any]:
    """The document stored beside the WARC (docs/schemas/web-capture.schema.json)."""
    page = capture.page
    exchanges = []
    for (role, exchange), (request_id, response_id) in zip(capture.exchanges,
                                                          capture.record_ids, strict=True):
        exchanges.append({"role": role, **connection_json(exchange),
                          "warc_request_id": request_id or None,
                          "warc_response_id": response_id})
    return {
        "type": DOCUMENT_TYPE, "version": 1,
        "url": capture.given, "final_url": capture.final_url,
        "host": urllib.parse.urlsplit(capture.final_url).hostname,
        "started": rfc3339(capture.started_ns), "finished": rfc3339(capture.finished_ns),
        "user_agent": capture.limits.user_agent,
        "limits": {"timeout_ms": round(capture.limits.timeout * 1000),
                   "max_response_bytes": capture.limits.max_response,
                   "max_resources": capture.limits.max_resources,
                   "max_page_bytes": capture.limits.max_page,
                   "max_redirects": capture.limits.max_redirects},
        "status": page.status if page else None,
        "complete": not capture.problems(),
        "problems": capture.problems(),
        "exchanges": exchanges,
        "not_fetched": [{"url": url, "reason": why} for url, why in capture.not_fetched],
        "files": files,
    }
