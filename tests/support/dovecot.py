"""A real Dovecot IMAP server for tests, on 127.0.0.1 only, with TLS.

The test user logs in as ``jane`` or with a whole address ``jane@…`` (the part before the @ is
the user, as for the large providers, who want the whole address).

Everything lives in a temporary folder: its own configuration (``dovecot -c FILE``, nothing of
/etc/dovecot), a self-signed certificate made here (its fingerprint is what the tests pin), a
passwd-file with one test user, and that user's Maildir, owned by an unprivileged account
(``nobody`` when the tests run as root, else the user running them). :func:`running` waits until
the server answers and stops it whatever happens. Missing Dovecot skips locally and fails in CI
(tests/support/tools.skip_or_fail).
"""

from __future__ import annotations

import datetime as dt
import grp
import hashlib
import http.server
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.tools import skip_or_fail

USER = "jane"
PASSWORD = "correct horse battery staple 42"  # made up for the test; grepped for in bundles
TOKEN = "ya29.test-access-token-for-jane"  # an OAuth2 bearer token the test's endpoint accepts


@dataclass
class Dovecot:
    root: Path
    port: int
    maildir: Path  # the test user's Maildir
    fingerprint: bytes  # SHA-256 of the server certificate's DER bytes
    mail_uid: int
    mail_gid: int
    starttls_port: int = 0  # plain IMAP, TLS by STARTTLS (required before any login)

    @property
    def url(self) -> str:
        return f"imaps://{USER}@127.0.0.1:{self.port}"

    @property
    def starttls_url(self) -> str:
        return f"imap://{USER}@127.0.0.1:{self.starttls_port}"

    def folder(self, name_utf7: str) -> Path:
        """The Maildir++ folder of a (modified UTF-7) IMAP name; INBOX is the Maildir itself."""
        return self.maildir if name_utf7 == "INBOX" else self.maildir / f".{name_utf7}"

    def file_names(self) -> dict[str, list[str]]:
        """Every message file name, by folder: flags are in the names (``:2,S`` = seen)."""
        found: dict[str, list[str]] = {}
        for folder in sorted(p for p in [self.maildir, *self.maildir.glob(".*")] if p.is_dir()):
            for part in ("cur", "new"):
                if (folder / part).is_dir():
                    found[f"{folder.name}/{part}"] = sorted(os.listdir(folder / part))
        return found


def _dovecot_binary() -> str:
    path = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot")
                                       else None)
    if path is None:
        skip_or_fail("Dovecot is not installed (Debian: dovecot-imapd)")
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_certificate(folder: Path, name: str = "localhost") -> tuple[Path, Path, bytes]:
    """A self-signed certificate and its key (PEM files in *folder*) and its SHA-256."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path, hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)
                                               ).digest()


def _accounts() -> tuple[str, int, int, str, str]:
    """The mail user, its uid and gid, and Dovecot's own two accounts."""
    if os.geteuid() == 0:
        try:
            internal = pwd.getpwnam("dovecot").pw_name
            login = pwd.getpwnam("dovenull").pw_name
        except KeyError:
            skip_or_fail("Dovecot's accounts dovecot and dovenull are missing")
        nobody = pwd.getpwnam("nobody")
        return "nobody", nobody.pw_uid, nobody.pw_gid, internal, login
    me = pwd.getpwuid(os.geteuid())
    return me.pw_name, me.pw_uid, me.pw_gid, me.pw_name, me.pw_name


def _oauth2_config(root: Path, introspection: int) -> str:
    """OAuth2 bearer tokens (XOAUTH2) checked by the test's introspection endpoint."""
    return (f"introspection_mode = post\n"
            f"introspection_url = http://127.0.0.1:{introspection}/introspect\n"
            "username_attribute = username\nactive_attribute = active\nactive_value = true\n")


class _Introspection(http.server.BaseHTTPRequestHandler):
    """RFC 7662 token introspection: TOKEN is active, for the test user; nothing else is."""

    def do_POST(self) -> None:  # the name http.server calls
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        active = form.get("token") == [TOKEN]
        body = json.dumps({"active": True, "username": USER} if active else
                          {"active": False}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


def _config(root: Path, port: int, starttls_port: int, cert: Path, key: Path, uid: int,
            gid: int, internal: str, login: str) -> str:
    group = grp.getgrgid(gid).gr_name
    return f"""\
base_dir = {root}/run
state_dir = {root}/state
instance_name = evidencekit-test-{port}
listen = 127.0.0.1
protocols = imap
log_path = {root}/dovecot.log
default_internal_user = {internal}
default_login_user = {login}
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
auth_mechanisms = plain xoauth2
auth_failure_delay = 0
disable_plaintext_auth = yes
first_valid_uid = 1
mail_location = maildir:{root}/home/%n/Maildir
mail_uid = {uid}
mail_gid = {group}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {root}/passwd
}}
passdb {{
  driver = oauth2
  args = {root}/oauth2.conf.ext
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {starttls_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


@contextmanager
def running(populate: callable | None = None) -> Iterator[Dovecot]:  # type: ignore[valid-type]
    """A Dovecot serving the test user's Maildir, filled by ``populate(Dovecot)`` first."""
    binary = _dovecot_binary()
    _user, uid, gid, internal, login = _accounts()
    root = Path(tempfile.mkdtemp(prefix="ek-dovecot-"))
    os.chmod(root, 0o755)  # the mail user and Dovecot's own accounts must reach what is theirs
    config = root / "dovecot.conf"
    introspection: http.server.ThreadingHTTPServer | None = None
    try:
        cert, key, fingerprint = make_certificate(root)
        maildir = root / "home" / USER / "Maildir"
        for part in ("cur", "new", "tmp"):
            (maildir / part).mkdir(parents=True)
        (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        server = Dovecot(root, _free_port(), maildir, fingerprint, uid, gid, _free_port())
        if populate is not None:
            populate(server)
        for path in [root / "home", *(root / "home").rglob("*")]:
            os.chown(path, uid, gid)
        config.write_text(_config(root, server.port, server.starttls_port, cert, key, uid, gid,
                                  internal, login))
        introspection = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Introspection)
        threading.Thread(target=introspection.serve_forever, daemon=True).start()
        (root / "oauth2.conf.ext").write_text(_oauth2_config(root, introspection.server_address[1]))
        # The master goes to the background and its children keep its descriptors: output to
        # a file, not a pipe (a pipe would wait for all of them)
        with open(root / "start.log", "wb") as out:
            started = subprocess.run([binary, "-c", str(config)], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=out, timeout=30, check=False)
        if started.returncode != 0:
            raise RuntimeError(f"dovecot did not start: {(root / 'start.log').read_text()}"
                               f"{_log(root)}")
        try:
            _wait_until_answering(server)
            yield server
        finally:
            _stop(binary, config, root)
    finally:
        if introspection is not None:
            introspection.shutdown()
            introspection.server_close()
        shutil.rmtree(root, ignore_errors=True)


def _log(root: Path) -> str:
    try:
        return "\n" + (root / "dovecot.log").read_text(errors="replace")[-3000:]
    except OSError:
        return ""


def _wait_until_answering(server: Dovecot, timeout: float = 20.0) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=2) as raw, \
                    context.wrap_socket(raw) as tls:
                if tls.recv(100).startswith(b"* OK"):
                    with socket.create_connection(("127.0.0.1", server.starttls_port),
                                                  timeout=2) as plain:
                        if plain.recv(100).startswith(b"* OK"):  # the STARTTLS port too
                            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"dovecot did not answer on 127.0.0.1:{server.port}"
                               f"{_log(server.root)}")
        time.sleep(0.05)


def _stop(binary: str, config: Path, root: Path, timeout: float = 10.0) -> None:
    """SIGTERM to this instance's master (its pid file), then wait until it is gone, so nothing
    is left running; ``dovecot stop`` if there is no pid file."""
    try:
        pid = int((root / "run" / "master.pid").read_text().strip())
    except (OSError, ValueError):
        subprocess.run([binary, "-c", str(config), "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
                       check=False)
        return
    try:
        # The master went to the background in a session of its own, with its children in
        # its process group: all of them told at once (told one by one by the master, they
        # take some 3 s to go)
        group = os.getpgid(pid)
        if group == pid:
            os.killpg(group, signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)


def message(subject: str, body: str = "Hello.\n", *, sender: str = "scam@example.net",
            date: str = "Mon, 07 Dec 2026 06:00:00 +0100", extra: bytes = b"") -> bytes:
    """A small message with LF line endings, as Dovecot stores it (it serves CRLF)."""
    head = (f"From: {sender}\nTo: {USER}@example.org\nSubject: {subject}\nDate: {date}\n"
            f"Message-ID: <{hashlib.sha256(subject.encode()).hexdigest()[:16]}@example.net>\n"
            ).encode() + extra
    return head + b"\n" + body.encode()


def deliver(folder: Path, name: str, content: bytes, *, flags: str = "",
            received: int = 1_796_619_600) -> Path:
    """Put a message file into a Maildir++ folder's cur/ (its time = INTERNALDATE)."""
    for part in ("cur", "new", "tmp"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    if folder.name.startswith("."):
        (folder / "maildirfolder").touch()
    path = folder / "cur" / f"{received}.{name}.test:2,{flags}"
    path.write_bytes(content)
    os.utime(path, (received, received))
    return path
