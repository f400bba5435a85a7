"""What every part of age shares: stanzas, the Recipient and Identity interfaces that each key
type implements (x25519.py, sshed25519.py, scrypt.py), and the small primitives they use
(c2sp.org/age). The header (header.py) and the payload stream (stream.py) never need to know
a key type."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from evidencekit.errors import AgeHeaderError

RandomSource = Callable[[int], bytes]
"""Returns n random bytes. ``os.urandom`` in production; tests pass a deterministic one."""

FILE_KEY_SIZE = 16
TAG_SIZE = 16
_WRAPPED_KEY_SIZE = FILE_KEY_SIZE + TAG_SIZE
_ZERO_NONCE = bytes(12)
_B64_CHARS = re.compile(rb"[A-Za-z0-9+/]*")


# --- small primitives -----------------------------------------------------------------------


def b64encode(data: bytes) -> str:
    """Canonical base64 without padding, as every age header field uses."""
    return base64.b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str | bytes, what: str) -> bytes:
    """Decode canonical unpadded base64; AgeHeaderError names ``what`` otherwise.

    Non-canonical encodings (padding, stray characters, non-zero trailing bits) are rejected
    because the header must not be malleable: two encodings of one value would both verify.
    """
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    if not _B64_CHARS.fullmatch(raw) or len(raw) % 4 == 1:
        raise AgeHeaderError(f"age header: {what} is not valid unpadded base64")
    try:
        value = base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except binascii.Error:
        raise AgeHeaderError(f"age header: {what} is not valid unpadded base64") from None
    if base64.b64encode(value).rstrip(b"=") != raw:
        raise AgeHeaderError(f"age header: {what} is not canonical base64 (non-zero spare bits)")
    return value


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def x25519_exchange(scalar: bytes, point: bytes) -> bytes:
    """X25519(scalar, point); ValueError when the result is all zeros (low-order point)."""
    private = X25519PrivateKey.from_private_bytes(scalar)
    return private.exchange(X25519PublicKey.from_public_bytes(point))


def x25519_base(scalar: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(scalar).public_key().public_bytes_raw()


def encrypt_file_key(wrap_key: bytes, file_key: bytes) -> bytes:
    return ChaCha20Poly1305(wrap_key).encrypt(_ZERO_NONCE, file_key, None)


def decrypt_file_key(wrap_key: bytes, body: bytes) -> bytes | None:
    """Decrypt a wrapped file key; None when the tag does not verify (not for this identity)."""
    try:
        return ChaCha20Poly1305(wrap_key).decrypt(_ZERO_NONCE, body, None)
    except InvalidTag:
        return None


def wrap_to_point(file_key: bytes, point: bytes, label: bytes, random: RandomSource,
                  tweak: bytes | None = None) -> tuple[bytes, bytes]:
    """The key agreement of X25519 and ssh-ed25519 stanzas (c2sp.org/age): a new ephemeral
    share, and the file key wrapped for *point* under HKDF(shared secret, share || point,
    *label*); ssh-ed25519 multiplies the shared secret by its *tweak* first. Returns (share,
    wrapped key); ValueError when *point* is of low order (an all-zero shared secret)."""
    ephemeral = random_bytes(random, 32)
    share = x25519_base(ephemeral)
    shared = x25519_exchange(ephemeral, point)
    if tweak is not None:
        shared = x25519_exchange(tweak, shared)
    return share, encrypt_file_key(hkdf(shared, share + point, label), file_key)


def unwrap_from_share(scalar: bytes, point: bytes, share: bytes, body: bytes, label: bytes,
                      tweak: bytes | None = None) -> bytes | None:
    """The other side of :func:`wrap_to_point`: the file key for the secret *scalar* whose
    public *point* it was wrapped for; None when it does not decrypt; ValueError when *share*
    is of low order."""
    shared = x25519_exchange(scalar, share)
    if tweak is not None:
        shared = x25519_exchange(tweak, shared)
    return decrypt_file_key(hkdf(shared, share + point, label), body)


def random_bytes(random: RandomSource, size: int) -> bytes:
    value = random(size)
    if len(value) != size:  # a broken test double must not silently weaken keys
        raise ValueError(f"random source returned {len(value)} bytes instead of {size}")
    return value


# --- stanzas and the recipient / identity protocols ------------------------------------------


@dataclass(frozen=True)
class Stanza:
    """One recipient stanza: ``-> type args…`` and its body. ``args`` excludes the type."""

    type: str
    args: tuple[str, ...]
    body: bytes


@runtime_checkable
class Recipient(Protocol):
    def wrap(self, file_key: bytes, random: RandomSource) -> Stanza: ...


@runtime_checkable
class Identity(Protocol):
    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None: ...


def first_unwrapped(stanzas: Sequence[Stanza], kind: str,
                    unwrap_one: Callable[[Stanza], bytes | None]) -> bytes | None:
    """The file key of the first stanza of type *kind* that *unwrap_one* opens; None when none
    is addressed to this identity (a key type that may hold several stanzas: X25519, SSH)."""
    for stanza in stanzas:
        if stanza.type != kind:
            continue
        file_key = unwrap_one(stanza)
        if file_key is not None:
            return file_key
    return None


def expect_args(stanza: Stanza, count: int) -> None:
    if len(stanza.args) != count:
        raise AgeHeaderError(
            f"age header: {stanza.type} stanza has {len(stanza.args) + 1} arguments, expected {count + 1}"
        )


def expect_wrapped_key(stanza: Stanza) -> None:
    # Checked before decrypting: the spec requires it against partitioning-oracle attacks.
    if len(stanza.body) != _WRAPPED_KEY_SIZE:
        raise AgeHeaderError(
            f"age header: {stanza.type} stanza body is {len(stanza.body)} bytes, "
            f"expected {_WRAPPED_KEY_SIZE} (a wrapped 16-byte file key)"
        )


def decode_share(stanza: Stanza, text: str) -> bytes:
    share = b64decode(text, f"{stanza.type} ephemeral share")
    if len(share) != 32:
        raise AgeHeaderError(f"age header: {stanza.type} ephemeral share is {len(share)} bytes, expected 32")
    return share


def shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
