"""The connection to the IMAP server: TLS, what the server is, the login.

The certificate is checked against the system's trusted authorities and the host name, or,
when a fingerprint is pinned (``--imap-fingerprint SHA256:…``, for a server with a certificate
of its own), it must be exactly that certificate. Either check happens before anything is sent:
a server that fails it never sees the user name or the password.

``imap://`` (port 143): the connection starts in clear and is secured by STARTTLS before
anything else is sent but CAPABILITY; a server that does not offer STARTTLS (or refuses it) is
refused, never logged in to in clear. What it said before TLS (greeting, capabilities) could
have been changed by anyone in between: only what it says after is used.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from evidencekit.clock import Clock, rfc3339
from evidencekit.errors import UsageError
from evidencekit.sources.mail.account import Account, BearerToken, Credential, MailError
from evidencekit.sources.mail.fetch import AnswerTooLarge, AnswerTooSlow, bounded

CONNECT_TIMEOUT = 30.0  # seconds
READ_TIMEOUT = 300.0  # a large message on a slow line


@dataclass(frozen=True)
class Trust:
    """How the server's certificate is trusted: the system's authorities (``pinned`` None) or
    exactly the certificate whose SHA-256 (of its DER bytes) is ``pinned``."""

    pinned: bytes | None = None


def parse_fingerprint(text: str) -> bytes:
    """The 32 bytes of a SHA-256 fingerprint written ``SHA256:<hex>`` (colons allowed, as
    ``openssl x509 -fingerprint -sha256`` prints it) or ``SHA256:<base64>`` (as OpenSSH does)."""
    value = text.strip()
    if value.upper().startswith("SHA256:"):
        value = value[7:]
    hexdigits = value.replace(":", "")
    if re.fullmatch(r"[0-9A-Fa-f]{64}", hexdigits):
        return bytes.fromhex(hexdigits)
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise UsageError(f"not a SHA-256 certificate fingerprint: {text!r}",
                         hint="e.g. --imap-fingerprint SHA256:AB:CD:… (openssl x509 -noout "
                         "-fingerprint -sha256 -in server.pem)")
    return raw


def fingerprint_text(digest: bytes) -> str:
    return "SHA256:" + ":".join(f"{byte:02X}" for byte in digest)


def open_connection(account: Account, trust: Trust, clock: Clock) -> tuple[Any, dict[str, Any]]:
    """Connect and check the certificate; return the client (not logged in) and what the server
    is (server.json's ``server``). MailError when it cannot be reached or trusted."""
    from imapclient.imapclient import SocketTimeout

    addresses = _addresses(account)
    context = _tls_context(trust)
    started = clock()
    with _failures_said(account, _CONNECTING):
        client = _client_class()(account.host, account.port, ssl=not account.starttls,
                            ssl_context=context,
                            timeout=SocketTimeout(CONNECT_TIMEOUT, READ_TIMEOUT))
        if account.starttls:
            _start_tls(client, account, context)
    # imapclient sets imaplib's debug level to 5 so that imaplib logs to imapclient's logger;
    # imaplib then formats every answer (the messages' bytes, with repr) whether or not anything
    # is logged: twice each message, a fifth of a capture's processor time. Nothing is lost
    # (evidencekit never turns that logger on; it would also log the traffic's contents).
    client._imap.debug = 0
    tls_socket = client.socket()
    chain = _chain(tls_socket)
    leaf = hashlib.sha256(chain[0]).digest() if chain else b""
    if trust.pinned is not None and leaf != trust.pinned:
        _close(client)
        raise MailError(f"the certificate of {account.host} is not the one pinned: expected "
                        f"{fingerprint_text(trust.pinned)}, the server presented "
                        f"{fingerprint_text(leaf)}; nothing was sent to it",
                        hint="someone may be in between; ask the server's administrator which "
                        "certificate it uses")
    facts = {
        "host": account.host,
        "port": account.port,
        "addresses": addresses,
        "connected_to": tls_socket.getpeername()[0],
        "connected": rfc3339(started),
        "tls": {"version": tls_socket.version(), "cipher": (tls_socket.cipher() or ("",))[0],
                "starttls": account.starttls,
                "trust": "system" if trust.pinned is None else "pinned",
                "pinned_sha256": None if trust.pinned is None else trust.pinned.hex(),
                "chain": [_certificate(der) for der in chain]},
        "greeting": _text(client.welcome),
        "capability_before_login": _capabilities(client),
    }
    return client, facts


def _client_class() -> Any:
    """IMAPClient over an imaplib connection whose reads are bounded from its first byte
    (fetch.AnswerLimit): the greeting is read as the connection is made, before any check of
    the certificate's pin, so even someone in between could send a literal of gigabytes."""
    from imapclient import IMAPClient, imap4, tls

    class BoundedClient(IMAPClient):  # type: ignore[misc]
        def _create_IMAP4(self) -> Any:
            timeout = getattr(self._timeout, "connect", None)
            if self.ssl:
                return bounded(tls.IMAP4_TLS)(self.host, self.port, self.ssl_context, timeout)
            return bounded(imap4.IMAP4WithTimeout)(self.host, self.port, timeout)

    return BoundedClient


def _start_tls(client: Any, account: Account, context: ssl.SSLContext) -> None:
    """Secure a connection that began in clear (imap://) by STARTTLS, or refuse the server:
    the user name and password are never sent in clear. The certificate is checked in the
    handshake (system trust) or right after it (pinned), as for imaps://."""
    from imapclient.exceptions import IMAPClientError

    offered = {str(c).upper() for c in getattr(client._imap, "capabilities", ())}
    if "STARTTLS" not in offered:
        _close(client)
        raise MailError(f"{account.host} port {account.port} does not offer STARTTLS (TLS on a "
                        "connection that starts in clear): the password would travel "
                        "unprotected, so nothing was sent to it",
                        hint="use imaps://USER@HOST (port 993) if the server has it, or ask its "
                        "administrator; someone in between may also have removed STARTTLS from "
                        "its answer")
    refused = _Failure(IMAPClientError, "{host} refused STARTTLS: {why}; nothing was sent to it",
                       _server_words, hint="use imaps://USER@HOST (port 993) if the server has it",
                       close=True)
    with _failures_said(account, (refused,), client):
        client.starttls(context)
    client._cached_capabilities = None  # those said in clear are not believed


def log_in(client: Any, account: Account, credential: Credential) -> list[str]:
    """Log in; the CAPABILITY after it. MailError when the server refuses."""
    from imapclient.exceptions import IMAPClientError

    refused = _Failure(IMAPClientError, "{host} refused the login of {user}: {why}",
                       _server_words, hint="check the user name and the password; providers "
                       "such as Gmail, Outlook, Yahoo and iCloud want an app password (made in "
                       "the account's security settings) rather than your usual one", close=True)
    lost = _Failure(OSError, "the connection to {host} was lost while logging in: {why}",
                    why_failed)
    with _failures_said(account, (refused, lost), client):
        if isinstance(credential, BearerToken):
            client.oauth2_login(account.user, credential.secret)
        else:
            client.login(account.user, credential.secret)
    client._cached_capabilities = None
    return _capabilities(client)


def _addresses(account: Account) -> list[str]:
    with _failures_said(account, _RESOLVING):
        found = socket.getaddrinfo(account.host, account.port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in found})


def _tls_context(trust: Trust) -> ssl.SSLContext:
    if trust.pinned is None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:  # the fingerprint decides, after the handshake and before anything is sent
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _chain(tls_socket: ssl.SSLSocket) -> list[bytes]:
    """The certificates the server sent (DER), its own first. Python 3.13 has the method
    public; 3.10 to 3.12 have it on the underlying object."""
    get = getattr(tls_socket, "get_unverified_chain", None)
    if get is None:
        get = getattr(getattr(tls_socket, "_sslobj", None), "get_unverified_chain", None)
    if get is not None:
        try:
            return [_der(cert) for cert in get() or []]
        except (AttributeError, ValueError, ssl.SSLError):
            pass
    leaf = tls_socket.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _der(cert: Any) -> bytes:
    if isinstance(cert, bytes):
        return cert
    return bytes(cert.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]


def _certificate(der: bytes) -> dict[str, Any]:
    from cryptography import x509

    found: dict[str, Any] = {"sha256": hashlib.sha256(der).hexdigest(),
                             "sha1": hashlib.sha1(der).hexdigest(),
                             "der_base64": base64.b64encode(der).decode("ascii")}
    try:
        cert = x509.load_der_x509_certificate(der)
        found.update(subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
                     serial=format(cert.serial_number, "x"),
                     not_before=cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     not_after=cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"))
    except ValueError as exc:
        found["problem"] = f"could not be read: {exc}"
    return found


def _capabilities(client: Any) -> list[str]:
    try:
        return sorted(_text(item) for item in client.capabilities())
    except Exception:
        return []


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def _server_words(exc: Exception) -> str:
    text = str(exc)
    return text[2:-1] if text.startswith(("b'", 'b"')) else text


def why_failed(exc: BaseException) -> str:
    """What went wrong with a connection, in words (a timeout says nothing by itself)."""
    if isinstance(exc, socket.timeout):
        return "no answer (timed out)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _close(client: Any) -> None:
    with contextlib.suppress(Exception):  # a connection that may already be gone
        client.shutdown()


@dataclass(frozen=True)
class _Failure:
    """What an error of *kind* means at one step, in *words* ({host}, {port}, {user} of the
    account; {why}: *why* of the error), with a *hint*; *close*: the client is closed first."""

    kind: type[Exception]
    words: str
    why: Callable[[Any], str] = str
    hint: str | None = None
    close: bool = False


_RESOLVING = (
    _Failure(OSError, "cannot find the server {host}: {why}", why_failed,
             hint="check its name (for example imap.gmail.com) and your Internet connection"),
)
_CONNECTING = (
    # what fetch.AnswerLimit bounds, from the connection's first byte (the greeting, STARTTLS)
    _Failure(AnswerTooSlow, "{host} port {port} answered too slowly while connecting: {why}",
             lambda exc: exc.message, hint="if it happens again, the server (or the line) is "
             "too slow or hostile: save the messages with a mail program"),
    _Failure(AnswerTooLarge, "{host} port {port} did not answer as an IMAP server does while "
             "connecting: {why}", lambda exc: exc.message),
    _Failure(ssl.SSLCertVerificationError, "the certificate of {host} is not trusted: {why}; "
             "nothing was sent to it", lambda exc: exc.verify_message or exc.reason,
             hint="check the server's name; for a server with a certificate of its own, pin it "
             "with --imap-fingerprint SHA256:… (ask its administrator for the fingerprint)"),
    _Failure(OSError, "cannot connect to {host} port {port}: {why}", why_failed,
             hint="check the server's name and port and your Internet connection"),
    # imaplib's own errors (a greeting that is not IMAP)
    _Failure(Exception, "{host} port {port} does not answer as an IMAP server: {why}"),
)


@contextlib.contextmanager
def _failures_said(account: Account, failures: Sequence[_Failure], client: Any = None
                   ) -> Iterator[None]:
    """Turn an error of the block into a MailError in the words of the first of *failures* it
    is a kind of (another error passes as it is, and so does a MailError unless one of
    *failures* names its kind: fetch.AnswerTooSlow says nothing of the host)."""
    try:
        yield
    except Exception as exc:
        failure = next((f for f in failures if isinstance(exc, f.kind)), None)
        if failure is None or (isinstance(exc, MailError)
                               and not issubclass(failure.kind, MailError)):
            raise
        if failure.close:
            _close(client)
        words = failure.words.format(host=account.host, port=account.port, user=account.user,
                                     why=failure.why(exc))
        raise MailError(words, hint=failure.hint) from None
