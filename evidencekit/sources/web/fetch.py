"""One HTTP/1.1 exchange, kept byte for byte: what was sent, what came back, over which address
and which TLS certificates, within a time and a size limit.

The standard library's HTTP clients parse and forget; evidence needs the bytes as they crossed
the wire (status line, headers, chunked framing, compressed body), so the exchange is spoken here
on a plain socket: one request with ``Connection: close``, then the response read until it is
complete (its ``Content-Length``, its last chunk, or the server closing), until the time limit
(a server that never answers, or answers forever), or until the size limit. Nothing here raises
on the network's account: every outcome is an :class:`Exchange` that says what happened.

A certificate that does not verify (self-signed, expired, another name: common on phishing
sites) is recorded with the reason, and the page is fetched all the same without trusting it:
the evidence is what the site served, and a victim needs it most when the site is a fake.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
import urllib.parse
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from evidencekit.clock import Clock, system_clock
from evidencekit.sources.web_limits import Limits

_RECEIVE = 1 << 16
_MAX_HEADER = 1 << 20  # a header block larger than this is not HTTP we can use
REDIRECTS = (301, 302, 303, 307, 308)
MAX_ENTITY = 32 << 20  # a compressed page is read (for its resources) up to this much: no bomb


@dataclass
class TlsInfo:
    version: str | None = None
    cipher: str | None = None
    verified: bool = False
    verify_error: str | None = None  # why the chain or the name did not verify
    chain: list[bytes] = field(default_factory=list)  # DER, the server's certificate first


@dataclass
class Exchange:
    """One request and what came back (or why nothing did)."""

    url: str
    started_ns: int
    addresses: list[str] = field(default_factory=list)  # what the name resolved to
    address: str | None = None  # the one connected to
    port: int = 0
    tls: TlsInfo | None = None
    request: bytes = b""  # as sent; empty when it could not be sent
    response: bytes = b""  # as received: status line, headers and body
    response_started_ns: int | None = None
    finished_ns: int = 0
    truncated: str | None = None  # WARC-Truncated: "time", "length" or "disconnect"
    error: str | None = None  # the exchange failed: no (complete) answer
    status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body_offset: int = 0  # where the body starts in ``response``

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def redirect_to(self) -> str | None:
        location = self.header("Location")
        if self.status in REDIRECTS and location:
            # the header's bytes (read as latin-1) past ASCII percent-encoded as they came, as
            # browsers do: UTF-8 "ä" (C3 A4) is %C3%A4, not the %C3%83%C2%A4 of encoding the
            # latin-1 reading again, which asked the site for a page it does not have
            raw = location.strip().encode("latin-1")
            ascii_only = urllib.parse.quote(raw, safe=bytes(range(0x21, 0x7f)))
            try:
                return urllib.parse.urljoin(self.url, ascii_only)
            except ValueError:  # ('http://[bad/': urls.fetchable says why it is not followed)
                return ascii_only
        return None

    def body(self) -> bytes:
        """The entity: transfer coding undone and gzip/deflate content coding undone (what
        could not be undone is returned as it is)."""
        raw = self.response[self.body_offset:]
        if (self.header("Transfer-Encoding") or "").lower().strip().endswith("chunked"):
            raw = _dechunk(raw)
        coding = (self.header("Content-Encoding") or "").lower().strip()
        try:
            if coding in ("gzip", "x-gzip"):
                return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, MAX_ENTITY)
            if coding == "deflate":
                return zlib.decompressobj().decompress(raw, MAX_ENTITY)
        except zlib.error:
            return raw
        return raw


class _Refused(Exception):
    """Every address the name resolved to is refused (``str()`` says why)."""


class _NameTimeout(TimeoutError):
    """The system's resolver did not answer in time."""


class _Deadline:
    def __init__(self, seconds: float, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._end = monotonic() + seconds
        self.seconds = seconds

    def left(self) -> float:
        left = self._end - self._monotonic()
        if left <= 0:
            raise TimeoutError
        return left


Refusal = Callable[[str], str | None]  # an address -> why it is not connected to, or None


def fetch(url: str, limits: Limits, clock: Clock = system_clock,
          monotonic: Callable[[], float] = time.monotonic, referer: str | None = None,
          refuse: Refusal | None = None) -> Exchange:
    """GET *url* (http or https) once; never raises for what the network does. *referer*: the
    page a resource is fetched for (sent as a browser would: some sites refuse images
    without it). *refuse*: addresses the name resolves to that are not connected to (checked
    on the addresses actually connected to, so that a name cannot change its answer after a
    check)."""
    exchange = Exchange(url, clock())
    deadline = _Deadline(limits.timeout, monotonic)
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    exchange.port = parts.port or (443 if parts.scheme == "https" else 80)
    sock: socket.socket | None = None
    try:
        exchange.addresses = _resolve(host, exchange.port, deadline)
        sock = _connect(exchange, deadline, refuse)
        if parts.scheme == "https":
            sock = _tls(sock, host, exchange, deadline)
        exchange.request = _request(parts, limits.user_agent, referer)
        sock.settimeout(deadline.left())
        sock.sendall(exchange.request)
        _receive(sock, exchange, limits, deadline, clock)
    except _Refused as exc:
        exchange.error = f"not connected to: {exc}"
    except _NameTimeout:
        exchange.error = f"the name {host!r} was not resolved within {deadline.seconds:g} s"
    except TimeoutError:
        exchange.error = (f"no complete answer within {deadline.seconds:g} s"
                          if exchange.response else
                          f"the server did not answer within {deadline.seconds:g} s")
        if exchange.response:
            exchange.truncated = "time"
    except socket.gaierror as exc:
        exchange.error = f"the name {host!r} could not be resolved: {exc.strerror}"
    except ssl.SSLError as exc:
        exchange.error = f"TLS failed: {exc.reason or exc}"
    except OSError as exc:
        exchange.error = f"the connection failed: {exc.strerror or exc}"
    finally:
        if sock is not None:
            sock.close()
        exchange.finished_ns = clock()
    _parse_head(exchange)
    return exchange


def _resolve(host: str, port: int, deadline: _Deadline) -> list[str]:
    """Every address *host* resolves to, within the deadline: the system's resolver has no
    timeout of ours, so it runs on a thread that is left behind if it takes too long."""
    answer: list[object] = []
    asking = threading.Thread(target=_ask_resolver, args=(host, port, answer), daemon=True,
                              name="evidencekit-resolve")
    asking.start()
    asking.join(deadline.left())
    if not answer:
        raise _NameTimeout
    if isinstance(answer[0], OSError):
        raise answer[0]
    found = cast(list[tuple[Any, ...]], answer[0])
    addresses: list[str] = []
    for _, _, _, _, address in found:
        if str(address[0]) not in addresses:
            addresses.append(str(address[0]))
    return addresses


def _ask_resolver(host: str, port: int, answer: list[object]) -> None:
    try:
        answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    except OSError as exc:
        answer.append(exc)


def _connect(exchange: Exchange, deadline: _Deadline, refuse: Refusal | None
             ) -> socket.socket:
    judged = [(address, refuse(address) if refuse else None) for address in exchange.addresses]
    allowed = [address for address, why in judged if why is None]
    refusals = [why for _, why in judged if why]
    if refusals and not allowed:
        raise _Refused(refusals[0])
    last: OSError = OSError("no address to connect to")
    for address in allowed:
        try:
            sock = socket.create_connection((address, exchange.port), timeout=deadline.left())
        except TimeoutError:
            raise
        except OSError as exc:
            last = exc
            continue
        exchange.address = address
        return sock
    raise last


def _tls(sock: socket.socket, host: str, exchange: Exchange, deadline: _Deadline
         ) -> socket.socket:
    """TLS, verified against the system's roots; when that fails, the reason is kept and the
    connection made again without verifying (the site is recorded, not trusted)."""
    info = exchange.tls = TlsInfo()
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    try:
        sock.settimeout(deadline.left())
        wrapped = context.wrap_socket(sock, server_hostname=host)
        info.verified = True
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        info.verify_error = str(exc.verify_message or exc.reason or exc)
        plain = socket.create_connection((exchange.address or host, exchange.port),
                                         timeout=deadline.left())
        unchecked = ssl.create_default_context()
        unchecked.check_hostname = False
        unchecked.verify_mode = ssl.CERT_NONE
        unchecked.set_alpn_protocols(["http/1.1"])
        wrapped = unchecked.wrap_socket(plain, server_hostname=host)
    info.version = wrapped.version()
    cipher = wrapped.cipher()
    info.cipher = cipher[0] if cipher else None
    info.chain = _chain(wrapped, info.verified)
    return wrapped


def _chain(sock: ssl.SSLSocket, verified: bool) -> list[bytes]:
    """The certificates the server sent (DER), its own first. Python 3.13 names the methods;
    3.10 to 3.12 have them on the underlying object only."""
    inner = getattr(sock, "_sslobj", None)
    getter = getattr(sock, "get_unverified_chain", None) or \
        getattr(inner, "get_unverified_chain", None)
    if getter is not None:
        der = getattr(ssl, "_ssl").ENCODING_DER  # noqa: B009 (not re-exported before 3.13)
        return [c if isinstance(c, bytes) else c.public_bytes(der) for c in getter() or []]
    leaf = sock.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _request(parts: urllib.parse.SplitResult, user_agent: str, referer: str | None) -> bytes:
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    default_port = 443 if parts.scheme == "https" else 80
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port and parts.port != default_port:
        host += f":{parts.port}"
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}", f"User-Agent: {user_agent}",
             "Accept: */*", "Accept-Encoding: gzip, identity", "Connection: close"]
    if referer:
        lines.insert(3, f"Referer: {referer}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii", "strict")


def _receive(sock: socket.socket, exchange: Exchange, limits: Limits, deadline: _Deadline,
             clock: Clock) -> None:
    received = bytearray()
    ends = ResponseEnd()
    while True:
        try:  # the time runs out in recv, or between two (deadline.left raises)
            sock.settimeout(deadline.left())
            piece = sock.recv(min(_RECEIVE, limits.max_response - len(received)))
        except TimeoutError:
            exchange.response = bytes(received)
            raise
        except OSError as exc:  # a reset (or a TLS failure) mid-answer: keep what came
            exchange.response = bytes(received)
            if not received:
                raise
            exchange.truncated = "disconnect"
            exchange.error = ("the connection failed before the end of the answer: "
                              f"{exc.strerror or exc}")
            return
        if not piece:
            break
        if exchange.response_started_ns is None:
            exchange.response_started_ns = clock()
        received += piece
        if ends.complete(received):
            break
        if len(received) >= limits.max_response:
            exchange.truncated = "length"
            exchange.error = (f"the answer was cut at {limits.max_response} bytes "
                              "(the size limit for one answer)")
            break
    exchange.response = bytes(received)
    if not received:
        exchange.error = "the server closed the connection without answering"
    elif exchange.truncated is None and not ends.complete(received, closed=True):
        exchange.truncated = "disconnect"
        exchange.error = "the server closed the connection before the end of its answer"


class ResponseEnd:
    """Whether a response received so far is complete, learned incrementally: the header block
    is parsed once, chunks are walked once (a 20 MiB answer is not scanned again at each read)."""

    def __init__(self) -> None:
        self._head_at = 0  # where the header block being looked for starts (after 1xx ones)
        self._scanned = 0  # no blank line before this (a huge header block is scanned once)
        self._body_at: int | None = None  # where the body starts, once the header block is in
        self._length: int | None = None  # Content-Length, when given
        self._chunked = False
        self._no_body = False
        self._next_chunk = 0  # offset in the body of the next chunk-size line
        self._done = False

    def complete(self, data: bytearray, closed: bool = False) -> bool:
        if self._done:
            return True
        if self._body_at is None and not self._head(data):
            return False
        assert self._body_at is not None
        body = len(data) - self._body_at
        if self._no_body:
            self._done = True
        elif self._chunked:
            self._done = self._chunks_end(data)
        elif self._length is not None:
            self._done = body >= self._length
        else:
            self._done = closed  # delimited by the connection closing
        return self._done

    def _head(self, data: bytearray) -> bool:
        """Parse the final header block once it is in: interim answers (1xx but 101, such as
        103 Early Hints, which sites send before the real one) are passed over."""
        while True:
            found = head_end(data, max(self._head_at, self._scanned))
            if found is None:
                self._scanned = max(len(data) - 3, 0)  # a blank line may end in what comes
                return False
            end, after = found
            lines = _lines(bytes(data[self._head_at:end]))
            status = lines[0].split(" ", 2)[1] if lines[0].count(" ") else ""
            if not _interim(status):
                break
            self._head_at = after
        self._body_at = after
        self._no_body = status in ("204", "304", "101")
        for line in lines[1:]:
            key, _, value = line.partition(":")
            key, value = key.strip().lower(), value.strip()
            if key == "transfer-encoding" and value.lower().endswith("chunked"):
                self._chunked = True
            elif key == "content-length" and value.isdigit():
                self._length = int(value)
        return True

    def _chunks_end(self, data: bytearray) -> bool:
        """Walk the chunks received since the last call; True past the last one and its
        trailers (or when the framing is not chunked after all: nothing more to wait for)."""
        assert self._body_at is not None
        while True:
            at = self._body_at + self._next_chunk
            line_end = data.find(b"\r\n", at)
            if line_end < 0:
                return False
            size = _chunk_size(bytes(data[at:line_end]))
            if size is None:
                return True
            if size == 0:
                return data.find(b"\r\n\r\n", line_end) >= 0
            following = line_end + 2 + size + 2
            if following > len(data):
                return False
            self._next_chunk = following - self._body_at


def _chunk_size(line: bytes) -> int | None:
    """A chunk-size line's size: hexadecimal digits only (RFC 9112 §7.1), None otherwise.
    ``int(…, 16)`` alone would take "-6", "+5" or "1_0": a negative size walks back over the
    answer, and a site that sends one would keep the reader going round for ever."""
    text = line.split(b";", 1)[0].strip()
    if not text or text.strip(b"0123456789abcdefABCDEF"):
        return None
    return int(text, 16)


def _dechunk(raw: bytes) -> bytes:
    out = bytearray()
    at = 0
    while True:
        line_end = raw.find(b"\r\n", at)
        if line_end < 0:
            return bytes(out)
        size = _chunk_size(raw[at:line_end])
        if size is None or size == 0:
            return bytes(out)
        out += raw[line_end + 2:line_end + 2 + size]
        at = line_end + 2 + size + 2


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def head_end(data: bytes | bytearray, start: int = 0) -> tuple[int, int] | None:
    """Where the header block starting at *start* ends, and where what follows it starts: at
    the first empty line, its lines ended by CRLF or by a bare LF (which browsers and warcio
    accept, RFC 9112 §2.2; a site answering with bare LFs is still a site)."""
    found = _BLANK_LINE.search(data, start)
    return (found.start(), found.end()) if found else None


def _lines(head: bytes) -> list[str]:
    return [line.rstrip("\r") for line in head.decode("latin-1").split("\n")]


def _interim(status: str) -> bool:
    """An interim answer (1xx but 101 Switching Protocols): the final one follows it."""
    return len(status) == 3 and status.startswith("1") and status != "101"


def parsed(url: str, response: bytes) -> Exchange:
    """A response as received, read as :func:`fetch` reads one (status, headers, body)."""
    exchange = Exchange(url, 0, response=response)
    _parse_head(exchange)
    return exchange


def decoded_size(exchange: Exchange, limit: int) -> tuple[int, str | None]:
    """The answer's body size once its content codings are undone, up to *limit* + 1, and why
    it must not be handed to a browser (None: it may): a coding that decompresses past *limit*
    bytes (a gzip bomb: 20 MiB served become 20 GiB in the browser), one that cannot be
    measured here (br, zstd: the browser would undo them without bound), or a stream that is
    not what it says (the browser's decoder might read it otherwise)."""
    codings = [c.strip().lower() for c in (exchange.header("Content-Encoding") or "").split(",")
               if c.strip() and c.strip().lower() != "identity"]
    data = exchange.response[exchange.body_offset:]
    if codings and (exchange.header("Transfer-Encoding") or "").lower().strip().endswith(
            "chunked"):
        data = _dechunk(data)
    for coding in reversed(codings):  # the last coding applied is undone first
        if coding not in ("gzip", "x-gzip", "deflate"):
            return len(data), (f"its content coding {coding!r} cannot be measured before a "
                               "browser undoes it")
        undone = _inflated(data, coding, limit + 1)
        if undone is None:
            return len(data), f"its {coding} body cannot be read"
        data = undone
        if len(data) > limit:
            return len(data), f"it decompresses to more than {limit} bytes (a compression bomb)"
    return len(data), None


def _inflated(data: bytes, coding: str, at_most: int) -> bytes | None:
    """*data* decompressed, *at_most* bytes at most; "deflate" is a zlib stream or, from some
    servers, a bare one (browsers take both)."""
    for wbits in ((16 + zlib.MAX_WBITS,) if coding != "deflate" else
                  (zlib.MAX_WBITS, -zlib.MAX_WBITS)):
        try:
            return zlib.decompressobj(wbits).decompress(data, at_most)
        except zlib.error:
            continue
    return None


def _parse_head(exchange: Exchange) -> None:
    """The final answer's status and headers, past any interim (1xx) ones."""
    start = 0
    while True:
        found = head_end(exchange.response, start)
        if found is None or found[0] > _MAX_HEADER:
            exchange.status, exchange.headers = None, []
            return
        end, after = found
        lines = _lines(exchange.response[start:end])
        parts = lines[0].split(" ", 2)
        if not (len(parts) >= 2 and parts[0].startswith("HTTP/") and parts[1].isdigit()):
            return
        exchange.status = int(parts[1])
        if not _interim(parts[1]):
            break
        start = after
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if sep:
            exchange.headers.append((key.strip(), value.strip()))
    exchange.body_offset = after
