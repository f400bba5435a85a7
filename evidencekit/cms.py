"""Whether a time stamping authority's token is signed by the certificate it names as its
signer (RFC 5652 §5.4), with no trusted root at hand.

rfc3161-client checks a token's signature only together with its chain to a root the caller
trusts; at request time there is usually none (``capture --tsa URL``), and an answer whose
signature does not verify (a broken TSA, or anyone on the plain-http path to it) was stored,
for good: a bundle's timestamps are only ever appended, and every later ``verify --tsa-ca``
of it said VERIFICATION FAILED. This reads just enough DER to check the signature:
the SignerInfo's ``messageDigest`` attribute against the token's content, and its signature
over the DER of the signed attributes (as a SET) with the signer certificate's public key.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa


class Unverifiable(ValueError):
    """The token could not be read far enough, or its signature does not verify (said how)."""


_HASHES = {  # digest algorithm OIDs and, for signature algorithms that name one, its hash
    "1.3.14.3.2.26": "sha1", "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384", "2.16.840.1.101.3.4.2.3": "sha512",
    "1.2.840.10045.4.1": "sha1", "1.2.840.10045.4.3.2": "sha256",
    "1.2.840.10045.4.3.3": "sha384", "1.2.840.10045.4.3.4": "sha512",
    "1.2.840.113549.1.1.5": "sha1", "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384", "1.2.840.113549.1.1.13": "sha512",
}
_RSA_PSS = "1.2.840.113549.1.1.10"
_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_SEQUENCE, _SET, _OCTETS, _OID, _CONTEXT_0 = 0x30, 0x31, 0x04, 0x06, 0xA0


def _element(data: bytes, at: int) -> tuple[int, int, int]:
    """The DER element at *at*: (tag, where its content starts, where it ends)."""
    if at + 2 > len(data):
        raise Unverifiable("the token is cut short")
    tag, first = data[at], data[at + 1]
    start = at + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 0 < count <= 4 or start + count > len(data):
            raise Unverifiable("the token holds a length that cannot be right")
        length = int.from_bytes(data[start:start + count], "big")
        start += count
    if start + length > len(data):
        raise Unverifiable("the token is cut short")
    return tag, start, start + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """The elements inside content [start, end): (tag, header start, content start, end)."""
    found = []
    at = start
    while at < end:
        tag, content, after = _element(data, at)
        found.append((tag, at, content, after))
        at = after
    if at != end:
        raise Unverifiable("the token's structure does not add up")
    return found


def _expect(child: tuple[int, int, int, int], tag: int, what: str) -> tuple[int, int]:
    if child[0] != tag:
        raise Unverifiable(f"the token's {what} is not where RFC 5652 puts it")
    return child[2], child[3]


def _inside(data: bytes, child: tuple[int, int, int, int], tag: int, what: str,
            at_least: int = 0, missing: str = "") -> list[tuple[int, int, int, int]]:
    """The children of *child*, a *tag* element: at least *at_least* of them, else
    Unverifiable(*missing*), so that a walk down the token reads as a path."""
    children = _children(data, *_expect(child, tag, what))
    if len(children) < at_least:
        raise Unverifiable(missing or f"the token's {what} is empty")
    return children


def _oid(data: bytes, start: int, end: int) -> str:
    raw = data[start:end]
    if not raw:
        raise Unverifiable("the token holds an empty object identifier")
    parts = [min(raw[0] // 40, 2), raw[0] - 40 * min(raw[0] // 40, 2)]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(map(str, parts))


def _algorithm(data: bytes, child: tuple[int, int, int, int], what: str) -> str:
    inner = _inside(data, child, _SEQUENCE, what, 1)
    return _oid(data, *_expect(inner[0], _OID, what))


def check_signature(response_der: bytes, signer: x509.Certificate) -> None:
    """Unverifiable unless the TimeStampResp *response_der* holds one SignerInfo whose
    signature is made by *signer*'s key over signed attributes naming the token's content."""
    data = response_der
    tag, start, end = _element(data, 0)
    response = _inside(data, (tag, 0, start, end), tag, "answer", 2, "the answer holds no token")
    token = _inside(data, response[1], _SEQUENCE, "content", 2, "the token holds no signed data")
    wrapped = _inside(data, token[1], _CONTEXT_0, "signed data", 1)
    signed = _inside(data, wrapped[0], _SEQUENCE, "signed data", 4,
                     "the token's signed data is incomplete")
    encapsulated = _inside(data, signed[2], _SEQUENCE, "content", 2, "the token has no content")
    octets = _inside(data, encapsulated[1], _CONTEXT_0, "content", 1)
    content = data[slice(*_expect(octets[0], _OCTETS, "content"))]
    infos = _inside(data, signed[-1], _SET, "signer infos")
    if len(infos) != 1:
        raise Unverifiable(f"the token has {len(infos)} signer infos, not one")
    info = _children(data, *_expect(infos[0], _SEQUENCE, "signer info"))
    if len(info) < 6 or info[3][0] != _CONTEXT_0:
        raise Unverifiable("the token's signer info has no signed attributes")
    digest = _HASHES.get(_algorithm(data, info[2], "digest algorithm"))
    if digest is None:
        raise Unverifiable("the token's digest algorithm is not one evidencekit knows")
    attributes = data[info[3][1]:info[3][3]]
    _require_digest(data, info[3], hashlib.new(digest, content).digest())
    signature = data[slice(*_expect(info[5], _OCTETS, "signature"))]
    method = _algorithm(data, info[4], "signature algorithm")
    _verify(signer, signature, b"\x31" + attributes[1:], _HASHES.get(method, digest), method)


def _require_digest(data: bytes, attributes: tuple[int, int, int, int], wanted: bytes) -> None:
    for attribute in _children(data, attributes[2], attributes[3]):
        parts = _children(data, *_expect(attribute, _SEQUENCE, "signed attribute"))
        if len(parts) == 2 and _oid(data, *_expect(parts[0], _OID, "attribute")) == \
                _MESSAGE_DIGEST:
            values = _children(data, *_expect(parts[1], _SET, "message digest"))
            if len(values) == 1 and data[slice(*_expect(values[0], _OCTETS, "digest"))] == wanted:
                return
            raise Unverifiable("its signed message digest is not that of its content (the "
                               "token was changed)")
    raise Unverifiable("its signed attributes name no message digest")


def _verify(signer: x509.Certificate, signature: bytes, signed: bytes, digest: str,
            method: str) -> None:
    try:  # a stranger's certificate: its key may be of a type or on a curve cryptography lacks
        key = signer.public_key()
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise Unverifiable(f"its signer's certificate holds a key evidencekit cannot read "
                           f"({exc})") from None
    algorithm: hashes.HashAlgorithm = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(),
                                       "sha384": hashes.SHA384(),
                                       "sha512": hashes.SHA512()}[digest]
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            scheme: padding.AsymmetricPadding = padding.PSS(
                padding.MGF1(algorithm), padding.PSS.AUTO) if method == _RSA_PSS \
                else padding.PKCS1v15()
            key.verify(signature, signed, scheme, algorithm)
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(signature, signed)
        else:
            raise Unverifiable("its signing key is of a kind evidencekit cannot check")
    except InvalidSignature:
        raise Unverifiable("the TSA's signature over the token is not valid (the token was "
                           "changed, or signed by another key than its certificate's)") from None
    except UnsupportedAlgorithm:
        raise Unverifiable("its signature algorithm is not one evidencekit can check") from None
