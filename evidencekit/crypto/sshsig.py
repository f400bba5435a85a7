"""Detached SSH signatures (OpenSSH PROTOCOL.sshsig), interchangeable with ``ssh-keygen -Y``.

Anyone can check an evidencekit signature without evidencekit::

    ssh-keygen -Y verify -f allowed_signers -I someone -n evidencekit -s FILE.sig < FILE

Ed25519 signing is deterministic and we lay the signature out exactly as ssh-keygen does, so
for the same key and message our armored bytes equal ``ssh-keygen -Y sign``'s.

Parsing is validation and is stricter than ssh-keygen in two documented ways, both so that no one
can change a signature file's bytes without invalidating it (every byte has one meaning, as in
canonical JSON): the spec says to ignore a non-empty ``reserved`` field, but it is not covered by
the signature, so we refuse it; and the armor must be exactly the one written here and by
``ssh-keygen -Y sign`` (base64 in lines of 70 characters, the exact BEGIN/END lines, one final
newline), so a re-wrapped signature is refused although it would decode to the same blob.

:func:`verify` proves only that *the key inside the signature* signed the data; callers must
still decide whether they trust that key (compare it with a known :class:`PublicKey`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature

from evidencekit.crypto.keys import ED25519, PublicKey, SigningKey
from evidencekit.crypto.sshwire import (
    WireReader,
    decode_base64_strict,
    encode_string,
    encode_uint32,
)
from evidencekit.errors import KeyFileError, SignatureError, UsageError

NAMESPACE = "evidencekit"

_MAGIC = b"SSHSIG"
_VERSION = 1
_DIGEST_SIZES = {"sha256": 32, "sha512": 64}  # the only hash algorithms the spec allows
_ED25519_SIGNATURE_LEN = 64

_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_END = "-----END SSH SIGNATURE-----"
_WRITE_WIDTH = 70  # what ssh-keygen writes, and the only width read
_MAX_READ_WIDTH = 76  # what the spec recommends: wider lines get their own message
_MAX_ARMORED_SIZE = 16 * 1024  # an ed25519 signature is about 300 bytes; refuse floods early


@dataclass(frozen=True)
class Signature:
    """A parsed (and structurally valid) SSHSIG; ``signature`` is the raw 64-byte Ed25519 value."""

    public_key: PublicKey
    namespace: str
    hash_alg: str
    signature: bytes


# --------------------------------------------------------------------------- signing


def sign(key: SigningKey, message: bytes, *, namespace: str = NAMESPACE, hash_alg: str = "sha512") -> bytes:
    """Sign ``message``; the armored result is byte for byte what ``ssh-keygen -Y sign`` writes."""
    _check_hash_alg(hash_alg)
    digest = hashlib.new(hash_alg, message).digest()
    return sign_digest(key, digest, hash_alg, namespace=namespace)


def sign_digest(key: SigningKey, digest: bytes, hash_alg: str, *, namespace: str = NAMESPACE) -> bytes:
    """Like :func:`sign`, for a message the caller has already hashed with ``hash_alg``."""
    _check_hash_alg(hash_alg)
    _check_namespace(namespace)
    if len(digest) != _DIGEST_SIZES[hash_alg]:
        raise UsageError(f"a {hash_alg} digest is {_DIGEST_SIZES[hash_alg]} bytes, got {len(digest)}")
    raw = key.key.sign(_signed_data(namespace, hash_alg, digest))
    blob = (
        _MAGIC
        + encode_uint32(_VERSION)
        + encode_string(key.public.wire)
        + encode_string(namespace.encode("utf-8"))
        + encode_string(b"")  # reserved
        + encode_string(hash_alg.encode("ascii"))
        + encode_string(encode_string(ED25519.encode("ascii")) + encode_string(raw))
    )
    return _armor(blob)


def _signed_data(namespace: str, hash_alg: str, digest: bytes) -> bytes:
    """What the key really signs (PROTOCOL.sshsig section 3); reserved is always empty."""
    return (
        _MAGIC
        + encode_string(namespace.encode("utf-8"))
        + encode_string(b"")
        + encode_string(hash_alg.encode("ascii"))
        + encode_string(digest)
    )


def _armor(blob: bytes) -> bytes:
    body = base64.b64encode(blob).decode("ascii")
    lines = [body[i : i + _WRITE_WIDTH] for i in range(0, len(body), _WRITE_WIDTH)]
    return "\n".join([_BEGIN, *lines, _END, ""]).encode("ascii")


def _check_hash_alg(hash_alg: str) -> None:
    if hash_alg not in _DIGEST_SIZES:
        raise UsageError(f"unsupported signature hash {hash_alg!r} (use sha512 or sha256)")


def _check_namespace(namespace: str) -> None:
    # The spec forbids the empty namespace: it would make signatures valid in any domain.
    if not namespace:
        raise UsageError("a signature namespace must not be empty")


# --------------------------------------------------------------------------- parsing


def parse(armored: bytes) -> Signature:
    """Parse and validate an armored SSHSIG; SignatureError says what is wrong.

    Checks, cheapest first: 1 armor lines, 2 base64, 3 magic and version, 4 public key,
    5 namespace, 6 reserved empty, 7 hash algorithm, 8 ed25519 signature, 9 no trailing data.
    """
    reader = WireReader(_dearmor(armored), error=SignatureError, what="signature")
    if reader.read_bytes(len(_MAGIC)) != _MAGIC:  # 3
        raise reader.fail("is not an SSHSIG signature (bad magic)")
    version = reader.read_uint32()
    if version != _VERSION:
        raise reader.fail(f"has version {version}; evidencekit reads version {_VERSION}")
    public_key = _read_public_key(reader.read_string())  # 4
    namespace = reader.read_text()  # 5
    if not namespace:
        raise reader.fail("has an empty namespace")
    if reader.read_string():  # 6
        raise reader.fail("has a non-empty reserved field")
    hash_alg = reader.read_text()  # 7
    if hash_alg not in _DIGEST_SIZES:
        raise reader.fail(f"uses the unsupported hash algorithm {hash_alg!r}")
    raw = _read_ed25519_signature(reader.read_string())  # 8
    reader.expect_end()  # 9
    return Signature(public_key, namespace, hash_alg, raw)


def _dearmor(armored: bytes) -> bytes:
    """Steps 1-2: the exact armor lines around canonical base64."""
    if len(armored) > _MAX_ARMORED_SIZE:
        raise SignatureError("signature file is too large to be an SSH signature")
    try:
        text = armored.decode("ascii")
    except UnicodeDecodeError:
        raise SignatureError("signature file is not ASCII text") from None
    if "\r" in text:
        raise SignatureError("signature file has CR line endings; SSH signatures use LF only")
    lines = text.removesuffix("\n").split("\n")
    if lines[0] != _BEGIN:
        raise SignatureError(f"signature file does not start with '{_BEGIN}'")
    if len(lines) < 2 or lines[-1] != _END:
        raise SignatureError(f"signature file does not end with '{_END}'")
    if len(lines) == 2:
        raise SignatureError("signature file has nothing between its armor lines")
    body = lines[1:-1]
    if any(not line or len(line) > _MAX_READ_WIDTH for line in body):
        raise SignatureError("signature file has blank or over-long lines in its armor")
    blob = decode_base64_strict("".join(body))
    if blob is None:
        raise SignatureError("signature file is damaged (its base64 body is invalid)")
    if _armor(blob) != armored:
        # Same blob, other bytes (lines of another width, no final newline): the file was
        # re-wrapped or re-typed after signing. Refused, so that it cannot change unseen.
        raise SignatureError("signature file is not in the exact form evidencekit and ssh-keygen "
                             f"write (base64 in lines of {_WRITE_WIDTH} characters, one final "
                             "newline): it was re-wrapped or edited")
    return blob


def _read_public_key(wire: bytes) -> PublicKey:
    try:
        return PublicKey.from_wire(wire)
    except KeyFileError as exc:
        raise SignatureError(f"signature's {exc.message}") from None


def _read_ed25519_signature(encoded: bytes) -> bytes:
    reader = WireReader(encoded, error=SignatureError, what="signature value")
    kind = reader.read_text()
    if kind != ED25519:
        raise reader.fail(f"is of type {kind!r}, expected {ED25519!r}")
    raw = reader.read_string()
    if len(raw) != _ED25519_SIGNATURE_LEN:
        raise reader.fail(f"is {len(raw)} bytes, expected {_ED25519_SIGNATURE_LEN}")
    reader.expect_end()
    return raw


# --------------------------------------------------------------------------- verifying


def verify(armored: bytes, message: bytes, *, namespace: str = NAMESPACE) -> PublicKey:
    """Check that ``armored`` signs ``message`` in ``namespace``; return the signer's key.

    The key comes from the signature itself: the caller must check it is a key it trusts.
    """
    return verify_digest(
        armored, lambda hash_alg: hashlib.new(hash_alg, message).digest(), namespace=namespace
    )


def verify_digest(
    armored: bytes, digest_by_alg: Callable[[str], bytes], *, namespace: str = NAMESPACE
) -> PublicKey:
    """Like :func:`verify` for streamed data: ``digest_by_alg(alg)`` returns the message's
    digest under the signature's hash algorithm ("sha256" or "sha512")."""
    _check_namespace(namespace)
    sig = parse(armored)
    # Compare namespaces before the cryptography: a signature for another purpose is refused
    # with a message that says so, even if it is otherwise valid.
    if sig.namespace != namespace:
        raise SignatureError(f"signature is for namespace {sig.namespace!r}, expected {namespace!r}")
    digest = digest_by_alg(sig.hash_alg)
    if len(digest) != _DIGEST_SIZES[sig.hash_alg]:
        raise UsageError(f"digest_by_alg returned a wrong-sized {sig.hash_alg} digest")
    try:
        sig.public_key.key.verify(sig.signature, _signed_data(namespace, sig.hash_alg, digest))
    except InvalidSignature:
        raise SignatureError("signature does not match the data") from None
    return sig.public_key
