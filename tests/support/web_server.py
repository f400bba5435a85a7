"""A small HTTPS site on 127.0.0.1 for the web capture tests, under a self-signed certificate made
by the test: a page with an image, a style sheet and a script, a redirect to it, a response that
never comes (``/slow``) and one that never ends (``/forever``), a page styled by style sheets
that name fonts and pictures (``/styled.html``), a page that sends the browser on by a
``<meta>`` refresh (``/landing.html``), a page built by its script (``/scripted.html``), a
page with a gzip bomb for a picture (``/bomb.html``).

:func:`https_site` is a context manager: it waits until the server answers and stops it (and
wakes every handler still waiting) whatever happens.
"""

from __future__ import annotations

import datetime as dt
import functools
import socket
import ssl
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.serving import serving
from tests.support.tools import require_python_tool

# a 1x1 red PNG (made by hand: signature, IHDR, IDAT, IEND)
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763"
    "f8cfc0000003010100c9fe92ef0000000049454e44ae426082")
CSS = b"body { background: #ffeecc; font-family: sans-serif; }\nh1 { color: #aa0000; }\n"
SCRIPT = b"document.title = 'Fake Bank - sign in';\n"
PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>Fake Bank</title>
<link rel="stylesheet" href="/style.css"><script src="app.js"></script></head>
<body><h1>Fake Bank: sign in</h1><img src="/logo.png" alt="logo">
<form><input name="user"><input name="password" type="password"></form>
<img src="/missing.png"></body></html>
"""

# A page whose looks come from its style sheets: what they name is fetched too (fonts,
# pictures, @import, relative to the style sheet), and what a comment names is not
FONT = b"wOF2 not really a font"
STYLED_PAGE = b"""<!doctype html><html><head><link rel="stylesheet" href="/css/site.css">
<style>/* url(/commented.png) */ .hero { background: url('/img/hero.png') }</style></head>
<body style="background-image: url(/img/body.png)"><h1 class="hero">Fake Bank</h1></body></html>
"""
SITE_CSS = b"""@import "more.css";
@font-face { font-family: Bank; src: url("/fonts/bank.woff2") format("woff2"); }
/* .old { background: url(/never.png) } */
h1 { font-family: Bank; }
"""
MORE_CSS = b".logo { background: url(../img/logo-bg.png) no-repeat; }\n"
# A phishing kit's landing page: a harmless text, and the browser sent on at once
LANDING_PAGE = b"""<!doctype html><html><head>
<meta http-equiv="Refresh" content="0; URL='/page.html'"></head><body>Loading</body></html>
"""

# A page built by its script: what the script loads (a JSON, then a picture it names) is only
# seen by a browser; the script also asks for another local port (refused) and a JSON by POST
# (never sent to the site)
SCRIPTED_PAGE = b"""<!doctype html><html><head><title>Fake Bank</title></head><body>
<div id="brand">loading</div><script src="/loader.js"></script></body></html>
"""
LOADER = b"""fetch('/api/config.json').then(function (r) { return r.json(); }).then(function (c) {
  document.getElementById('brand').textContent = c.brand;
  var logo = new Image(); logo.src = c.logo; document.body.appendChild(logo);
});
fetch('http://127.0.0.1:631/admin').catch(function () {});
fetch('/api/collect', {method: 'POST', body: 'x'}).catch(function () {});
"""
CONFIG = b'{"brand": "Fake Bank (built by script)", "logo": "/img/dynamic-logo.png"}'
BOMB_DECODED = 64 << 20  # zeros: some 64 KiB gzip-compressed


@functools.cache  # made once (seconds on a loaded machine: not within a request's time)
def gzip_bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return packer.compress(bytes(BOMB_DECODED)) + packer.flush()


# A page that sends the browser on by script: only a browser running it goes there
SCRIPT_REDIRECT_PAGE = b"<!doctype html><html><body>Loading<script>location.replace('/page.html')"\
    b"</script></body></html>"
BOMB_PAGE = b'<!doctype html><html><body><h1>Fake Bank</h1><img src="/bomb.png"></body></html>'

# Names a page may hold that cannot go on a request line as they are, or not at all
ODD_PAGE = """<!doctype html><html><body>
<img src="/bild-ä.png"><img src="https://jane:secret@127.0.0.1/private.png">
<img srcset="/small.png 1x, /large.png 2x"><a href="javascript:alert(1)">x</a>
<script src="data:text/javascript,1"></script></body></html>
""".encode()

# names what evidencekit does not fetch (file:, ftp:, a custom scheme), and what names nothing to
# fetch (about:blank, javascript:, data:)
OTHER_SCHEMES_PAGE = b"""<!doctype html><html><head>
<meta http-equiv="refresh" content="0; url=file:///etc/passwd"></head><body>
<img src="file:///C:/Users/victim/photo.jpg"><img src="ftp://127.0.0.1/x.png">
<iframe src="about:blank"></iframe><img src="javascript:void(0)"><img src="/small.png">
<div style="background: url(smb://nas.local/share/bg.png)"></div></body></html>
"""


@dataclass
class Site:
    base: str  # https://127.0.0.1:PORT
    certificate_der: bytes
    hits: dict[str, int]
    ca_file: Path | None = None  # the test CA that issued the certificate, if one did


def _certificate(folder: Path, ca_names: list[x509.GeneralName] | None
                 ) -> tuple[Path, Path, bytes, Path | None]:
    """The site's certificate (for fake-bank.test): self-signed, or with *ca_names* issued
    for those names by a test CA whose certificate is written too (to be trusted through
    SSL_CERT_FILE). Returns the chain and key files, the site's DER and the CA's file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-bank.test")])
    now = dt.datetime.now(dt.timezone.utc)
    names = ca_names if ca_names is not None else [x509.DNSName("fake-bank.test")]
    issuer_key, issuer, ca_cert = key, name, None
    if ca_names is not None:
        issuer_key = ec.generate_private_key(ec.SECP256R1())
        issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evidencekit test CA")])
        ca_cert = (x509.CertificateBuilder().subject_name(issuer).issuer_name(issuer)
                   .public_key(issuer_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(hours=1))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                False, False), critical=True)
                   .sign(issuer_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(issuer_key, hashes.SHA256()))
    cert_path, key_path = folder / "site.pem", folder / "site.key"
    chain = cert.public_bytes(serialization.Encoding.PEM)
    ca_path = None
    if ca_cert is not None:
        ca_path = folder / "ca.pem"
        ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        chain += ca_cert.public_bytes(serialization.Encoding.PEM)
    cert_path.write_bytes(chain)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, cert.public_bytes(serialization.Encoding.DER), ca_path


@contextmanager
def https_site(folder: Path, slow_seconds: float = 5.0, tls: bool = True,
               ca_names: list[x509.GeneralName] | None = None) -> Iterator[Site]:
    """The site, over HTTPS (or plain HTTP when not *tls*), self-signed or, with *ca_names*,
    under a certificate for those names from a test CA (``Site.ca_file``)."""
    cert_path, key_path, der, ca_file = _certificate(folder, ca_names)
    stopping = threading.Event()
    hits: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str,
                  extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            hits[self.path] = hits.get(self.path, 0) + 1
            if self.path == "/":
                self._send(302, b"", "text/html", {"Location": "/page.html"})
            elif self.path == "/page.html":
                self._send(200, PAGE, "text/html; charset=utf-8")
            elif self.path == "/style.css":
                gzipped = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
                body = gzipped.compress(CSS) + gzipped.flush()
                self._send(200, body, "text/css", {"Content-Encoding": "gzip"})
            elif self.path == "/app.js":
                self._chunked(SCRIPT, "application/javascript")
            elif self.path == "/logo.png":
                self._send(200, PNG, "image/png")
            elif self.path == "/styled.html":
                self._send(200, STYLED_PAGE, "text/html; charset=utf-8")
            elif self.path == "/css/site.css":
                self._send(200, SITE_CSS, "text/css")
            elif self.path == "/css/more.css":
                self._send(200, MORE_CSS, "text/css; charset=utf-8")
            elif self.path == "/fonts/bank.woff2":
                self._send(200, FONT, "font/woff2")
            elif self.path.startswith("/img/"):
                self._send(200, PNG, "image/png")
            elif self.path == "/landing.html":
                self._send(200, LANDING_PAGE, "text/html")
            elif self.path in ("/refresh-header-to-file", "/refresh-header-to-ftp"):
                target = "file:///etc/passwd" if self.path.endswith("file") \
                    else "ftp://127.0.0.1/x"
                self._send(200, b'<html><body>Pay now<img src="/small.png"></body></html>',
                           "text/html", {"Refresh": "0; url=" + target})
            elif self.path == "/bad-addresses":  # addresses urllib cannot split
                self._send(200, b'<html><body><img src="http://[bad/img"><img src="/small.png">'
                           b'<style>p{background:url(http://[bad/css)}</style></body></html>',
                           "text/html", {"Refresh": "0; url=http://[bad/refresh"})
            elif self.path == "/refresh-header":  # PHP's header("Refresh: 0; url=…")
                self._send(200, b"Loading", "text/html", {"Refresh": "0; url=/page.html"})
            elif self.path == "/noscript-refresh.html":  # what a browser without scripts gets
                self._send(200, b'<html><head><noscript><meta http-equiv="refresh" content="0; '
                           b'url=/for-bots.html"></noscript></head><body>Fake Bank</body></html>',
                           "text/html")
            elif self.path == "/refresh-loop.html":
                self._send(200, b'<meta http-equiv="refresh" content="1;url=/refresh-loop2.html">',
                           "text/html")
            elif self.path == "/refresh-loop2.html":
                self._send(200, b'<meta http-equiv="refresh" content="1;url=/refresh-loop.html">',
                           "text/html")
            elif self.path == "/scripted.html":
                self._send(200, SCRIPTED_PAGE, "text/html; charset=utf-8")
            elif self.path == "/loader.js":
                self._send(200, LOADER, "application/javascript")
            elif self.path == "/api/config.json":
                self._send(200, CONFIG, "application/json")
            elif self.path == "/script-redirect.html":
                self._send(200, SCRIPT_REDIRECT_PAGE, "text/html")
            elif self.path == "/bomb.html":
                self._send(200, BOMB_PAGE, "text/html")
            elif self.path == "/bomb.png":
                self._send(200, gzip_bomb(), "image/png", {"Content-Encoding": "gzip"})
            elif self.path == "/script-to-ftp.html":
                self._send(200, b"<!doctype html><p>Pay now<script>location.href="
                           b"'ftp://127.0.0.1/f'</script>", "text/html")
            elif self.path == "/other-schemes.html":
                self._send(200, OTHER_SCHEMES_PAGE, "text/html")
            elif self.path == "/odd.html":
                self._send(200, ODD_PAGE, "text/html; charset=utf-8")
            elif self.path == "/loop":
                self._send(302, b"", "text/html", {"Location": "/loop"})
            elif self.path == "/to-bad-address":  # ValueError: Invalid IPv6 URL (exit 5)
                self._send(302, b"", "text/html", {"Location": "http://[bad/x"})
            elif self.path == "/to-ftp":
                self._send(301, b"", "text/html", {"Location": "ftp://127.0.0.1/file"})
            elif self.path == "/half-head":  # a status line, half a header, then nothing
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Ty")
                self.wfile.flush()
                stopping.wait(slow_seconds)
                self.close_connection = True
            elif self.path == "/slow":
                stopping.wait(slow_seconds)
                self._send(200, b"too late", "text/plain")
            elif self.path == "/forever":
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(b"<html><body>")
                while not stopping.is_set():
                    self.wfile.write(b"<p>and more</p>\n" * 64)
                    self.wfile.flush()
                    stopping.wait(0.01)
            else:
                self._send(404, b"not here\n", "text/plain")

        def do_POST(self) -> None:  # counted: the capture never sends one
            hits["POST " + self.path] = hits.get("POST " + self.path, 0) + 1
            self._send(404, b"not here\n", "text/plain")

        def _chunked(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            half = len(body) // 2
            for piece in (body[:half], body[half:], b""):
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self) -> tuple[socket.socket, object]:
            connection, address = super().get_request()
            if not tls:
                return connection, address
            return context.wrap_socket(connection, server_side=True,
                                       do_handshake_on_connect=False), address

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a client that hung up (the capture's time and size limits do that)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server = Server(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    with serving(server, poll_interval=0.05):
        try:
            _wait_until_answering(port, tls)
            yield Site(f"{'https' if tls else 'http'}://127.0.0.1:{port}", der, hits, ca_file)
        finally:
            stopping.set()  # handlers still sending end before the server is shut down


def _wait_until_answering(port: int, tls: bool) -> None:
    unchecked = ssl.create_default_context()
    unchecked.check_hostname = False
    unchecked.verify_mode = ssl.CERT_NONE
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as raw, \
                    (unchecked.wrap_socket(raw) if tls else raw) as connection:
                connection.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if connection.recv(16).startswith(b"HTTP/1."):
                    return
        except OSError:
            threading.Event().wait(0.05)
    raise RuntimeError(f"the test HTTPS server on 127.0.0.1:{port} never answered")


def warcio_command() -> str:
    """warcio's command line (the test extra installs it beside this Python)."""
    return require_python_tool("warcio", "warcio")
