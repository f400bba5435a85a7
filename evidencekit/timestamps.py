"""Trusted timestamps (RFC 3161): a time stamping authority (TSA) countersigns the seal.

What is timestamped is the exact bytes of ``seal.json.sig`` (SHA-256 imprint): the TSA then
attests that the seal's signature existed at its time, which the signer's own clock cannot. Each
TSA's whole response (DER ``TimeStampResp``) is stored as a public outer member
``timestamps/NNNNNN.tsr`` (docs/FORMAT.md §1, §6.1), whose tar header time is the token's
``genTime`` in whole seconds.

At request time the response must be granted, carry our nonce and imprint, and be signed by the
certificate it carries (with the critical timeStamping usage): anything else is refused and not
stored. Offline (``verify --tsa-ca``) the token is checked against a root the reader trusts, at
the token's time. The nonce only guards the request against a replayed answer; nothing about it is
stored (a reader has no way to know which nonce was sent).
"""

from __future__ import annotations

import datetime
import hashlib
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evidencekit.clock import rfc3339
from evidencekit.errors import BundleError, InputError

if TYPE_CHECKING:
    import urllib.request

    from cryptography import x509
    from rfc3161_client import TimeStampResponse

    Certificate = x509.Certificate

# rfc3161_client is imported by the functions that read or ask for a token: every command that
# verifies imports this module, and most bundles carry no timestamp (issue 27, start-up cost).
# cryptography's x509 likewise (15 ms of every capture and verify): where a certificate is read.

MAX_TOKEN = 64 * 1024  # a response with a chain of a few certificates is 2-10 KB
MAX_TIMESTAMPS = 1000  # per bundle (docs/FORMAT.md §6.1): verify parses every one
REQUEST_TIMEOUT = 20.0  # seconds per TSA, its whole answer included
# More than this between the TSA's time and the signer's claimed time is a warning.
CLOCK_TOLERANCE_SECONDS = 300
_SHA256_OID = "2.16.840.1.101.3.4.2.1"
# what rfc3161-client and cryptography raise for DER they cannot read (a name with an unknown
# string type: KeyError), as a stranger's token may hold; with cryptography's own (unreadable())
_UNREADABLE = (ValueError, KeyError, TypeError)


def unreadable(*more: type[Exception]) -> tuple[type[Exception], ...]:
    """Every exception that reading a stranger's token and its certificates may raise (and
    *more*)."""
    from cryptography import x509

    return (*more, *_UNREADABLE, x509.InvalidVersion, x509.DuplicateExtension,
            x509.UnsupportedGeneralNameType)


class TimestampError(Exception):
    """A TSA gave no usable answer (not an EvidenceKitError: capture goes on without it)."""


@dataclass(frozen=True)
class Token:
    """What a stored response says, parsed (not yet trusted)."""

    der: bytes
    gen_time: datetime.datetime  # UTC
    policy: str
    serial: int
    tsa: str  # the signing certificate's subject, or "" when the response carries none
    imprint_matches: bool


def request(url: str, signature: bytes, roots: list[x509.Certificate] | None = None,
            timeout: float = REQUEST_TIMEOUT) -> Token:
    """Ask the TSA at *url* to timestamp *signature* (the bytes of seal.json.sig).

    TimestampError when it cannot be reached or its answer is not a good token for this request:
    not granted, another nonce or imprint, no signing certificate with the critical
    timeStamping usage, a signature that its certificate's key did not make; with *roots*,
    also not signed by a certificate chaining to them. Without roots, whether that certificate
    is to be trusted is left to ``verify --tsa-ca`` (nothing here would anchor it)."""
    import urllib.error  # here: 30 ms of start-up that only asking a TSA needs
    import urllib.request

    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

    query = (TimestampRequestBuilder().data(signature).hash_algorithm(HashAlgorithm.SHA256)
             .nonce(nonce=True).cert_request(cert_request=True).build())
    http = urllib.request.Request(url, data=query.as_bytes(), method="POST",
                                  headers={"Content-Type": "application/timestamp-query",
                                           "Accept": "application/timestamp-reply"})
    try:
        der = _answer_within(http, timeout)
    except urllib.error.HTTPError as exc:
        raise TimestampError(f"the TSA answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TimestampError(f"could not reach the TSA ({reason})") from None
    if len(der) > MAX_TOKEN:
        raise TimestampError(f"the TSA's answer is larger than {MAX_TOKEN} bytes")
    try:
        return _judged(der, query.nonce, signature, roots)
    except unreadable(BundleError, AttributeError) as exc:
        # rfc3161-client reads most fields only when asked: an answer that decodes may still
        # hold an unknown status or a certificate that cannot be read (before: 'internal
        # error', exit 5, after the bundle was written)
        text = exc.message if isinstance(exc, BundleError) else str(exc) or type(exc).__name__
        raise TimestampError(f"the TSA's answer cannot be read ({text})") from None


def _judged(der: bytes, nonce: int | None, signature: bytes,
            roots: list[x509.Certificate] | None) -> Token:
    """The token in the TSA's answer *der* to a request with *nonce* (see :func:`request`)."""
    from rfc3161_client import PKIStatus, decode_timestamp_response

    from evidencekit.cms import Unverifiable, check_signature

    try:
        response = decode_timestamp_response(der)
    except ValueError:
        raise TimestampError("the TSA's answer is not an RFC 3161 response") from None
    if PKIStatus(response.status) not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        raise TimestampError(f"the TSA refused the request (status {response.status}: "
                             f"{' '.join(response.status_string) or 'no reason given'})")
    if response.tst_info.nonce != nonce:
        raise TimestampError("the TSA's answer carries another nonce than the request (a "
                             "replayed or misdirected answer); it was not stored")
    if roots is not None:
        _check_signed(response, signature, roots)
    token = parse(der, signature)
    if not token.imprint_matches:
        raise TimestampError("the TSA's answer timestamps other data than the seal's signature")
    cert = _signing_certificate(response)
    if cert is None:
        raise TimestampError("the TSA's answer carries no signing certificate with the critical "
                             "timeStamping usage")
    try:  # the one check a token gets that no root is needed for (evidencekit.cms)
        check_signature(der, cert)
    except Unverifiable as exc:
        raise TimestampError(f"the TSA's answer does not verify: {exc}; it was not stored"
                             ) from None
    if not cert.not_valid_before_utc <= token.gen_time <= cert.not_valid_after_utc:
        raise TimestampError(f"the TSA's certificate was not valid at the time it gave "
                             f"({token.gen_time:%Y-%m-%d %H:%M:%S} UTC; valid "
                             f"{cert.not_valid_before_utc:%Y-%m-%d} to "
                             f"{cert.not_valid_after_utc:%Y-%m-%d})")
    return token


def _answer_within(http: urllib.request.Request, timeout: float) -> bytes:
    """The TSA's answer (at most MAX_TOKEN + 1 bytes), waited for *timeout* seconds in all:
    urllib's timeout bounds each read of the socket, so a TSA that sent its answer a byte at a
    time, each within it, held a capture (and a victim's guided session) for as long as it
    liked (over 100 s for an answer of 1.3 KB at a byte every 0.2 s, against the 20 s said).
    The request runs on a thread of its own, left behind if it does not finish (it ends with
    the process, or at its socket's next timeout)."""
    import urllib.request

    outcome: list[bytes | BaseException] = []

    def ask() -> None:
        try:
            with urllib.request.urlopen(http, timeout=timeout) as answer:
                outcome.append(answer.read(MAX_TOKEN + 1))
        except BaseException as exc:  # raised on the caller's thread
            outcome.append(exc)

    worker = threading.Thread(target=ask, name="evidencekit-tsa", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise TimestampError(f"the TSA did not answer in full within {timeout:g} seconds")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def parse(der: bytes, signature: bytes) -> Token:
    """Parse a stored response; BundleError when it is not one."""
    from rfc3161_client import decode_timestamp_response

    try:
        response = decode_timestamp_response(der)
        info = response.tst_info
        imprint = info.message_imprint
        matches = (imprint.hash_algorithm.dotted_string == _SHA256_OID
                   and imprint.message == hashlib.sha256(signature).digest())
        return Token(der, info.gen_time.astimezone(datetime.timezone.utc), info.policy.dotted_string,
                     info.serial_number, _signer_subject(response), matches)
    except unreadable(AttributeError) as exc:
        raise BundleError(f"not a readable RFC 3161 response ({exc})") from None


def check(token: Token, signature: bytes, roots: Sequence[x509.Certificate]) -> None:
    """Verify *token* offline against *roots*: the chain at the token's time, the TSA
    certificate's critical timeStamping usage, and the imprint. BundleError saying why not."""
    from rfc3161_client import decode_timestamp_response

    response = decode_timestamp_response(token.der)
    try:
        _check_signed(response, signature, list(roots))
    except TimestampError as exc:
        raise BundleError(str(exc)) from None


@dataclass(frozen=True)
class Checked:
    """One stored timestamp as verify found it (docs/FORMAT.md §7.1, step 12)."""

    name: str
    time: str  # the TSA's genTime, RFC 3339
    seconds: int
    policy: str
    serial: int
    tsa: str
    trusted: bool | None  # None: no --tsa-ca given, so not checked against a root
    problem: str | None
    # Whether the TSA's signature verifies with the certificate the token carries as its
    # signer's (cms.check_signature: asked without --tsa-ca too), and why not; None when not
    # asked (a token over other data: *problem* says so)
    signature_valid: bool | None = None
    unsigned: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"member": self.name, "time": self.time, "policy": self.policy,
                "serial": str(self.serial), "tsa": self.tsa, "trusted": self.trusted,
                "problem": self.problem, "signature_valid": self.signature_valid}


def examine(name: str, der: bytes, signature: bytes,
            roots: Sequence[x509.Certificate] | None) -> Checked:
    """Parse a stored response and check it (against *roots* when given); BundleError when it
    cannot even be read."""
    try:
        token = parse(der, signature)
    except BundleError as exc:
        raise BundleError(f"{exc.message}") from None
    ns = int(token.gen_time.timestamp()) * 1_000_000_000 + token.gen_time.microsecond * 1000
    problem: str | None = None
    trusted: bool | None = None
    unsigned: str | None = None
    if not token.imprint_matches:
        problem = "this timestamp is not over this bundle's seal.json.sig (its imprint differs)"
    else:
        unsigned = own_signature_problem(der)
        if roots is not None:
            try:
                check(token, signature, roots)
                trusted = True
            except BundleError as exc:
                problem, trusted = exc.message, False
    return Checked(name, rfc3339(ns), int(token.gen_time.timestamp()), token.policy,
                   token.serial, token.tsa, trusted, problem,
                   None if not token.imprint_matches else unsigned is None, unsigned)


def own_signature_problem(der: bytes) -> str | None:
    """Why the stored response *der*'s signature does not verify with the certificate it
    carries as its signer's (evidencekit.cms), None when it does. Without --tsa-ca nothing
    else says it: a bundle stamped before capture checked the TSA's answers this way may hold
    a timestamp that no root will ever verify, and one changed since (its time) is another."""
    from rfc3161_client import decode_timestamp_response

    from evidencekit.cms import Unverifiable, check_signature

    try:
        cert = _signer(decode_timestamp_response(der))
    except unreadable():
        cert = None
    if cert is None:
        return "it carries no readable certificate of its signer to check its signature with"
    try:
        check_signature(der, cert)
    except Unverifiable as exc:
        return f"the TSA's signature does not verify with the certificate it carries: {exc}"
    return None


def describe_gap(seconds: int) -> str:
    """'12 minutes after', '3 hours before' (the trusted time against the claimed one)."""
    side = "after" if seconds > 0 else "before"
    amount = abs(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if amount >= size:
            count = amount // size
            return f"{count} {unit}{'s' if count != 1 else ''} {side}"
    return f"{amount} seconds {side}"


def _check_signed(response: TimeStampResponse, signature: bytes,
                  roots: list[x509.Certificate]) -> None:
    """The response's signature and its chain to *roots* at the token's time, the signing
    certificate's critical timeStamping usage and the imprint (rfc3161-client's verifier)."""
    from cryptography import x509
    from rfc3161_client import VerificationError, VerifierBuilder

    try:
        carried = [x509.load_der_x509_certificate(c)
                   for c in response.signed_data.certificates]
    except unreadable():
        raise TimestampError("the timestamp does not verify: a certificate it carries cannot "
                             "be read") from None
    builder = VerifierBuilder(roots=list(roots),
                              intermediates=[c for c in carried if c not in roots])
    try:
        builder.build().verify_message(response, signature)
    except unreadable(VerificationError) as exc:
        raise TimestampError(f"the timestamp does not verify: {_plain(exc)}") from None


_OPENSSL_REASON = re.compile(r'Verify error: ([^"]+)"')
_PLAIN = {
    "unable to get local issuer certificate":
        "the TSA's certificate does not chain to the given root",
    "certificate has expired": "the TSA's certificate had expired at the token's time",
    "certificate is not yet valid": "the TSA's certificate was not yet valid at the token's time",
}


def _plain(exc: Exception) -> str:
    """openssl's verify reason in plain words (the library's text is a Rust error stack)."""
    text = str(exc)
    found = _OPENSSL_REASON.search(text)
    if found:
        return _PLAIN.get(found.group(1), found.group(1))
    if "signature" in text.lower() and "pkcs7" in text.lower():
        return "the TSA's signature over the token is not valid (the token was changed)"
    if text == "Mismatch between messages":
        return "it timestamps other data than this seal's signature"
    return text


def _signer(response: TimeStampResponse) -> x509.Certificate | None:
    """The carried certificate the (single) SignerInfo names; None also when a name or a
    certificate cannot be read (rfc3161-client reads a name when it is asked for: a stranger's
    token with a name holding an unknown string type made verify end in 'internal error:
    KeyError: 0', exit 5; anyone holding a bundle can append a timestamp)."""
    from cryptography import x509

    try:
        infos = list(response.signed_data.signer_infos)
        if len(infos) != 1:
            return None
        issuer, serial = infos[0].issuer, infos[0].serial_number
        for der in response.signed_data.certificates:
            cert = x509.load_der_x509_certificate(der)
            if cert.issuer == issuer and cert.serial_number == serial:
                return cert
    except unreadable():
        return None
    return None


def _signer_subject(response: TimeStampResponse) -> str:
    cert = _signer(response)
    try:
        return "" if cert is None else cert.subject.rfc4514_string()
    except unreadable():
        return ""


def _signing_certificate(response: TimeStampResponse) -> x509.Certificate | None:
    """The signer's certificate if it has the critical timeStamping usage (RFC 3161 §2.3)."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    cert = _signer(response)
    if cert is None:
        return None
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return None
    if not usage.critical or ExtendedKeyUsageOID.TIME_STAMPING not in usage.value:
        return None
    return cert


def load_roots(path: str) -> list[x509.Certificate]:
    """The PEM certificates of a --tsa-ca file (InputError when there are none)."""
    from cryptography import x509

    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        roots = x509.load_pem_x509_certificates(data)
    except ValueError:
        roots = []
    if not roots:
        raise InputError(f"{path} holds no PEM certificate",
                         hint="give the TSA's root certificate, as PEM (-----BEGIN CERTIFICATE)")
    return roots


def pem(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.PEM)
