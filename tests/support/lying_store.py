"""An HTTP proxy on 127.0.0.1 in front of an S3 store that lies as its ``mode`` says:

- ``ghost-key``: a listing (ListObjectsV2) names one more object, ``GHOST_KEY``, that is not there;
- ``lying-size``: a listing gives every object's size as 1 byte;
- ``ignore-range``: a GET is sent on without its Range header (the store answers the whole
  object, which HTTP allows, with status 200);
- ``expired-lock``: an object's head gives a retention date long past (2020-01-01);
- ``endless``: a GET of one version of an object is answered with its headers, then bytes
  without end (chunked), at most ENDLESS_AT_MOST (``sent`` says how many went out).

``""`` passes everything on as it is."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import socketserver
from collections.abc import Iterator
from urllib.parse import urlsplit

from tests.support.serving import serving

GHOST_KEY = "cases/ghost.evidence"
ENDLESS_AT_MOST = 256 << 20
_BLOCK = b"z" * (1 << 20)
_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}


class LyingStore(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = urlsplit(upstream)
        self.mode = ""
        self.sent = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LyingStore

    def log_message(self, *_: object) -> None:
        pass

    def _forward(self) -> None:
        mode = self.server.mode
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = dict(self.headers.items())
        if mode == "ignore-range" and self.command == "GET":
            headers = {k: v for k, v in headers.items() if k.lower() != "range"}
        upstream = http.client.HTTPConnection(self.server.upstream.hostname,
                                              self.server.upstream.port, timeout=30)
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        upstream.close()
        if b"<ListBucketResult" in data:
            data = _lying_listing(data, mode)
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if mode == "expired-lock" and \
                    name.lower() == "x-amz-object-lock-retain-until-date":
                value = "2020-01-01T00:00:00.000Z"
            if name.lower() not in _HOP:
                self.send_header(name, value)
        if mode == "endless" and self.command == "GET" and answer.status == 200 and \
                "versionId=" in self.path:
            self._endless()
            return
        length = answer.getheader("Content-Length") if self.command == "HEAD" else len(data)
        self.send_header("Content-Length", str(length or 0))
        self.end_headers()
        self.wfile.write(data)

    def _endless(self) -> None:
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with contextlib.suppress(OSError):
            while self.server.sent < ENDLESS_AT_MOST:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(_BLOCK), _BLOCK))
                self.server.sent += len(_BLOCK)
            self.wfile.write(b"0\r\n\r\n")

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward


def _lying_listing(data: bytes, mode: str) -> bytes:
    import re

    if mode == "ghost-key":
        ghost = (b"<Contents><Key>" + GHOST_KEY.encode() + b"</Key><LastModified>"
                 b"2026-01-01T00:00:00.000Z</LastModified><ETag>&quot;0&quot;</ETag>"
                 b"<Size>5</Size><StorageClass>STANDARD</StorageClass></Contents>")
        return data.replace(b"</Contents>", b"</Contents>" + ghost, 1)
    if mode == "lying-size":
        return re.sub(rb"<Size>\d+</Size>", b"<Size>1</Size>", data)
    return data


@contextlib.contextmanager
def lying_store(upstream: str) -> Iterator[LyingStore]:
    proxy = LyingStore(upstream)
    with serving(proxy):
        yield proxy
