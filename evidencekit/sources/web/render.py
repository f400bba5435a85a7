"""A screenshot (PNG) and a print (PDF) of a captured page, made by headless Chromium from the
capture itself, never from the network.

Letting the browser load the URL would fetch the page a second time, perhaps served differently
(phishing kits show a harmless page to a second visit, or to a browser from elsewhere), and the
pictures would not show the evidence. So Chromium is pointed at a replay proxy on 127.0.0.1
(this module) that answers every request with the response recorded in the WARC, byte for byte,
and with 404 for anything the capture does not hold (a script's own requests, a style sheet's
fonts): those are listed in the capture document as ``asked_by_browser_not_captured``. HTTPS
requests reach the proxy as CONNECT: it answers them with TLS under a certificate it makes for
the occasion, which Chromium is told to accept; the site's own certificates are those recorded
in the WARC. Chromium runs with its own empty profile and no background services, so that it
has no other way out (FORMAT.md §4.3, README "Web pages").
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from evidencekit.fs import leftovers
from evidencekit.fs.staging import remove_tree
from evidencekit.sources.web.fetch import decoded_size, parsed
from evidencekit.sources.web.resources import joined, scheme_of

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER_ENV = "EVIDENCEKIT_CHROMIUM"
RENDER_TIMEOUT = 60.0  # seconds for one picture
# Seconds after which headless Chromium stops the page's navigations and pictures what it has
# (its --timeout). A page's script sending the browser to ftp:// or a program's own scheme
# (mailto:, a chat app) leaves a navigation pending that never ends: Chromium hands the address
# to another program and waits, and no picture came before RENDER_TIMEOUT (measured: none in
# 60 s, for each). After the 20 s the browser's own fetches may take (page.BROWSER_SECONDS),
# well before RENDER_TIMEOUT.
NAVIGATION_STOP = 30.0
WINDOW = "1280,1024"
_TMPDIR_AT_MOST = 48  # bytes: + /org.chromium.Chromium.XXXXXX/SingletonSocket < 104
# The browser's own calls home, turned off (the replay proxy would refuse them anyway).
_QUIET_FEATURES = ("NetworkTimeServiceQuerying", "AutofillServerCommunication",
                   "OptimizationHints", "MediaRouter", "Translate", "SafeBrowsing",
                   "CertificateTransparencyComponentUpdater", "AccountConsistency",
                   "DialMediaRouteProvider", "InterestFeedContentSuggestions")


def _not_found(text: bytes) -> bytes:
    return (b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (len(text), text))


_NOT_CAPTURED = _not_found(b"Not part of the evidencekit capture (replay)\n")
_WITHHELD = _not_found(b"In the capture, not shown to the browser (evidencekit)\n")
# What the browser is handed, once decompressed: a gzip bomb in the capture (20 MiB that
# become 20 GiB) keeps Chromium busy past its time limit (measured: an image of 2 GiB took
# 38 s to picture, against 6 s withheld) and, as a page or a script, would take the computer's
# memory; so an answer is handed over only when it decompresses to at most this much, and
# all of them to at most the second.
DECODED_AT_MOST = 32 << 20
# addresses asked for and not held that are listed (asked_by_browser_not_captured); past it,
# requests are counted (a page's script can ask for thousands of addresses of 60 KB each)
NOT_CAPTURED_LISTED_AT_MOST = 1000
DECODED_IN_ALL = 256 << 20
# What a page asks for has Sec-Fetch-Site same-origin, same-site or cross-site (over https),
# or a Referer; the browser's own calls home (its account and search services) have "none"
# and no Referer: only the page's are fetched for it.
_ASKED_BY_A_PAGE = ("same-origin", "same-site", "cross-site")

FetchMissing = Callable[[str], "dict[str, bytes] | None"]  # URL -> the replay with it, or None


@dataclass
class Rendering:
    """The pictures made (bytes), or why each is absent."""

    screenshot: bytes | None = None
    pdf: bytes | None = None
    absent: dict[str, str] = field(default_factory=dict)  # "screenshot"/"pdf" -> why
    browser: str | None = None  # the browser's version line
    not_captured: list[str] = field(default_factory=list)  # asked by the browser, 404
    withheld: dict[str, str] = field(default_factory=dict)  # captured, not shown: URL -> why
    unlisted: int = 0  # requests for what is not captured, past those listed


def find_browser() -> str | None:
    chosen = os.environ.get(BROWSER_ENV)
    if chosen:
        return shutil.which(chosen) or (chosen if os.access(chosen, os.X_OK) else None)
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def render(url: str, replay: dict[str, bytes], browser: str | None = None,
           fetch_missing: FetchMissing | None = None) -> Rendering:
    """Pictures of *url* as replayed from *replay* (URL -> response as received).
    *fetch_missing*: asked for what a page in the browser loads that *replay* does not hold
    (page.BrowserFetches: fetched once and recorded); without it, that is answered 404."""
    result = Rendering()
    program = browser or find_browser()
    if not program:
        missing = ("Chromium is not installed (Debian/Ubuntu: apt install chromium; or set "
                   f"{BROWSER_ENV} to a Chromium or Chrome program)")
        result.absent = {"screenshot": missing, "pdf": missing}
        return result
    result.browser = _version(program)
    # (named with this process's id: one a kill -9 left is removed by the next web capture)
    with ReplayProxy(replay, fetch_missing) as proxy, _working_folder() as work:
        folder = Path(work)
        for what, flag, name in (("screenshot", "--screenshot", "page.png"),
                                 ("pdf", "--print-to-pdf", "page.pdf")):
            made, why = _run(program, url, proxy.port, folder, [f"{flag}={folder / name}"],
                             folder / name)
            if what == "screenshot":
                result.screenshot = made
            else:
                result.pdf = made
            if why:
                result.absent[what] = why
        result.not_captured = sorted(proxy.missing)
        result.unlisted = proxy.unlisted
        result.withheld = dict(sorted(proxy.withheld.items()))
    return result


def _version(browser: str) -> str | None:
    try:
        done = subprocess.run([browser, "--version"], capture_output=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode("utf-8", "replace").strip() or None


def _run(browser: str, url: str, port: int, folder: Path, output: list[str], made: Path
         ) -> tuple[bytes | None, str | None]:
    profile = folder / "profile"
    command = [browser, "--headless", "--disable-gpu", f"--user-data-dir={profile}",
               f"--proxy-server=http://127.0.0.1:{port}", "--proxy-bypass-list=<-loopback>",
               "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
               "--ignore-certificate-errors", "--no-first-run", "--no-default-browser-check",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--disable-default-apps", "--disable-extensions",
               "--disable-domain-reliability", "--disable-breakpad", "--metrics-recording-only",
               "--disable-client-side-phishing-detection", "--no-pings",
               "--disable-features=" + ",".join(_QUIET_FEATURES),
               "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
               "--mute-audio", "--hide-scrollbars", f"--window-size={WINDOW}",
               "--no-pdf-header-footer", "--virtual-time-budget=5000",
               f"--timeout={round(NAVIGATION_STOP * 1000)}", *output, url]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.insert(1, "--no-sandbox")  # Chromium refuses to start as root otherwise
    # Its own home too: Chromium writes crash settings, dconf and font caches under the user's
    # home even with --user-data-dir, and this computer's files are not its to change. And its
    # own TMPDIR: killed at the time limit (or by Ctrl-C), it leaves its org.chromium.Chromium.*
    # folder there; inside ours, it goes with ours. Only when that name is short: Chromium's
    # socket in it (org.chromium.Chromium.XXXXXX/SingletonSocket) must fit in 104-108 bytes,
    # or Chromium aborts; under a long TMPDIR (macOS's are ~50 bytes) it keeps the system's.
    home, temporary = folder / "home", folder / "t"
    environment = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
                   "XDG_CACHE_HOME": str(home / ".cache"),
                   "XDG_DATA_HOME": str(home / ".local/share")}
    if len(str(temporary).encode()) <= _TMPDIR_AT_MOST:
        temporary.mkdir(exist_ok=True)
        environment["TMPDIR"] = str(temporary)
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, start_new_session=True,
                                   env=environment)
    except OSError as exc:
        return None, f"Chromium could not be started: {exc.strerror or exc}"
    try:
        _, err = process.communicate(timeout=RENDER_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return None, f"Chromium did not finish within {RENDER_TIMEOUT:g} s"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if made.is_file() and made.stat().st_size > 0:
        return made.read_bytes(), None
    last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
    return None, f"Chromium made no file (exit status {process.returncode}: {last[0][:300]})"


def _key(url: str) -> tuple[str, str, int, str]:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, (parts.hostname or "").lower(), port, target


class ReplayProxy:
    """An HTTP proxy on 127.0.0.1 that only replays recorded responses."""

    def __init__(self, replay: dict[str, bytes], fetch_missing: FetchMissing | None = None
                 ) -> None:
        self._responses = {_key(url): response for url, response in replay.items()}
        self._fetch_missing = fetch_missing
        self._lock = threading.Lock()  # the answers, what is missing or withheld, the budget
        self._judged: dict[tuple[str, str, int, str], str | None] = {}  # key -> why withheld
        self._decoded = 0  # bytes handed to the browser so far, decompressed
        self.withheld: dict[str, str] = {}
        self.missing: set[str] = set()
        self.unlisted = 0  # requests for what is not held, past those listed
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # closing it does not wake accept(): it looks again
        self._stopping = threading.Event()
        self.port = self._listener.getsockname()[1]
        self._tls = _tls_context()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True,
                                           name="evidencekit-replay")

    def __enter__(self) -> ReplayProxy:
        self._accepting.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._accepting.join(timeout=5)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        connection.settimeout(5.0)  # the browser asks at once; a silent connection is dropped
        try:
            head = _read_head(connection)
            method, target = _request_line(head)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")  # an IPv6 host keeps its brackets
                connection.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                connection = self._tls.wrap_socket(connection, server_side=True)
                head = _read_head(connection)
                method, inner = _request_line(head)
                url = f"https://{host}{'' if port == '443' else ':' + port}{inner}"
            else:
                url = target
            self._answer(connection, url, method, head)
        except (OSError, ValueError, ssl.SSLError):
            pass  # the browser gave up or spoke nonsense: nothing to replay
        finally:
            connection.close()

    def _answer(self, connection: socket.socket, url: str, method: str, head: bytes) -> None:
        response = self._held(url)
        if response is None and method == "GET" and self._fetch_missing is not None and \
                _asked_by_a_page(head):
            replay = self._fetch_missing(url)  # one at a time, bounded by the page's limits
            if replay is not None:
                with self._lock:
                    self._responses = {_key(known): answer for known, answer in replay.items()}
                response = self._held(url)
        if response is None:
            with self._lock:
                if url in self.missing or len(self.missing) < NOT_CAPTURED_LISTED_AT_MOST:
                    self.missing.add(url)
                else:
                    self.unlisted += 1
            response = _NOT_CAPTURED
        elif self._withheld(url, response):
            response = _WITHHELD
        else:
            response = self._not_elsewhere(url, response)
        connection.sendall(response)

    def _not_elsewhere(self, url: str, response: bytes) -> bytes:
        """*response*, but for a redirect to a scheme that is not fetched (``ftp:``,
        ``file:``, a program's own): without its Location, recorded in ``withheld``. Chromium
        hands such an address to another program and waits for it without end (measured: no
        picture, 60 s lost for each); the answer is then pictured as it stands."""
        answer = parsed(url, response)
        target = answer.header("Location")
        if answer.status is None or not 300 <= answer.status < 400 or target is None:
            return response
        where = joined(url, target.strip())
        if where is None or scheme_of(where) in ("http", "https"):
            return response  # (one that cannot be read: the browser says so in its picture)
        with self._lock:
            self.withheld[url] = (f"its redirect to {where} was not handed to the browser: "
                                  "evidencekit does not fetch that scheme, and Chromium would "
                                  "wait for a program to open it; the answer is pictured "
                                  "without it")
        head = _LOCATION.sub(b"", response[:answer.body_offset])
        return head + response[answer.body_offset:]

    def _held(self, url: str) -> bytes | None:
        with self._lock:
            return self._responses.get(_key(url))

    def _withheld(self, url: str, response: bytes) -> bool:
        """Whether the answer is kept from the browser (a compression bomb, or past what the
        browser is handed in all): judged once for each URL, counted once."""
        key = _key(url)
        with self._lock:
            if key not in self._judged:
                size, why = decoded_size(parsed(url, response), DECODED_AT_MOST)
                if why is None and self._decoded + size > DECODED_IN_ALL:
                    why = (f"the answers handed to the browser reached {DECODED_IN_ALL} bytes "
                           "in all, decompressed")
                self._decoded += size if why is None else 0
                self._judged[key] = why
                if why is not None:
                    self.withheld[url] = why
            return self._judged[key] is not None


_LOCATION = re.compile(rb"^location[ \t]*:[^\n]*\n", re.IGNORECASE | re.MULTILINE)


def _asked_by_a_page(head: bytes) -> bool:
    """Whether a request comes from a page (its scripts, its pictures), not from the browser
    itself: by the headers browsers send for that (see _ASKED_BY_A_PAGE)."""
    fields = {}
    header_block = head.split(b"\r\n\r\n", 1)[0]  # not what a body sent with it says
    for line in header_block.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip().lower()
    site = fields.get("sec-fetch-site")
    return site in _ASKED_BY_A_PAGE if site is not None else bool(fields.get("referer"))


def _read_head(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = connection.recv(4096)
        if not piece or len(data) > 65536:
            raise ValueError("no request")
        data += piece
    return data


def _request_line(head: bytes) -> tuple[str, str]:
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    if len(parts) < 2:
        raise ValueError("not HTTP")
    return parts[0], parts[1]


def _tls_context() -> ssl.SSLContext:
    """A server context under a certificate made now, for the replay only (Chromium is told to
    accept any certificate: it only ever talks to this proxy)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evidencekit replay")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    with tempfile.TemporaryDirectory(prefix="ek-replay-") as folder:
        cert_path, key_path = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
    return context


@contextmanager
def _working_folder() -> Iterator[str]:
    folder = leftovers.working_folder("ek-web")
    try:
        yield folder
    finally:
        remove_tree(Path(folder))
