"""A strict, streaming implementation of the age v1 file format (c2sp.org/age) on ``cryptography``.

Supported: X25519 (``age1…``), ssh-ed25519 and scrypt (passphrase) recipients and identities,
binary files, and strict de-armoring of whole ASCII-armored files (:func:`dearmor`).
Not supported on purpose: ssh-rsa, plugins and post-quantum (mlkem768x25519) types. An identity
simply does not match stanzas of a type it does not know, as the spec requires.

Strictness follows the spec and the C2SP CCTV test vectors: canonical unpadded base64 only,
64-column stanza bodies ending in a short line, 16-byte file keys, a verified header MAC, and a
payload whose every chunk is authenticated before any of its plaintext is released.

Readers and writers never close the file objects they are given: the caller owns them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from evidencekit.crypto import bech32
from evidencekit.crypto.sshwire import encode_string, encode_uint32
from evidencekit.errors import (
    AgeArmorError,
    AgeHeaderError,
    AgeHeaderMacError,
    AgePayloadError,
    KeyFileError,
    NoMatchingKey,
    RecipientError,
)

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = [
    "CHUNK_SIZE",
    "AgeReader",
    "AgeWriter",
    "Header",
    "Identity",
    "RandomSource",
    "Recipient",
    "ScryptIdentity",
    "ScryptRecipient",
    "SshEd25519Identity",
    "SshEd25519Recipient",
    "Stanza",
    "X25519Identity",
    "X25519Recipient",
    "dearmor",
    "decrypt",
    "encrypt",
    "parse_identity_file",
    "parse_recipient",
    "read_header",
]

RandomSource = Callable[[int], bytes]
"""Returns n random bytes. ``os.urandom`` in production; tests pass a deterministic one."""

# --- format constants (c2sp.org/age) ---------------------------------------------------------

VERSION_LINE = b"age-encryption.org/v1\n"
_VERSION_PREFIX = b"age-encryption.org/"
FILE_KEY_SIZE = 16
NONCE_SIZE = 16
CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
ENCRYPTED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
_COLUMNS = 64  # base64 characters per full stanza body line
_WRAPPED_KEY_SIZE = FILE_KEY_SIZE + TAG_SIZE
_ZERO_NONCE = bytes(12)

_X25519_LABEL = b"age-encryption.org/v1/X25519"
_SSH_ED25519_LABEL = b"age-encryption.org/v1/ssh-ed25519"
_SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
_SCRYPT_SALT_SIZE = 16
_DEFAULT_MAX_WORK_FACTOR = 22  # the reference implementation refuses more, CCTV expects that

# Limits of our own (the spec sets none). They bound the work an untrusted header can cause
# before its MAC can be checked: every stanza may cost a scalar multiplication per identity.
MAX_HEADER_LINE = 16 * 1024
MAX_STANZAS = 1024

_B64_CHARS = re.compile(rb"[A-Za-z0-9+/]*")
_ARGUMENT = re.compile(r"[\x21-\x7e]+")  # VCHAR, as in the spec's ABNF
_WORK_FACTOR = re.compile(r"[1-9][0-9]*")

_P = 2**255 - 19  # the field prime of Curve25519 / Ed25519


# --- small primitives -----------------------------------------------------------------------


def _b64encode(data: bytes) -> str:
    """Canonical base64 without padding, as every age header field uses."""
    return base64.b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str | bytes, what: str) -> bytes:
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


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _x25519(scalar: bytes, point: bytes) -> bytes:
    """X25519(scalar, point); ValueError when the result is all zeros (low-order point)."""
    private = X25519PrivateKey.from_private_bytes(scalar)
    return private.exchange(X25519PublicKey.from_public_bytes(point))


def _x25519_base(scalar: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(scalar).public_key().public_bytes_raw()


def _wrap_key(wrap_key: bytes, file_key: bytes) -> bytes:
    return ChaCha20Poly1305(wrap_key).encrypt(_ZERO_NONCE, file_key, None)


def _unwrap_key(wrap_key: bytes, body: bytes) -> bytes | None:
    """Decrypt a wrapped file key; None when the tag does not verify (not for this identity)."""
    try:
        return ChaCha20Poly1305(wrap_key).decrypt(_ZERO_NONCE, body, None)
    except InvalidTag:
        return None


def _random(random: RandomSource, size: int) -> bytes:
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


def _expect_args(stanza: Stanza, count: int) -> None:
    if len(stanza.args) != count:
        raise AgeHeaderError(
            f"age header: {stanza.type} stanza has {len(stanza.args) + 1} arguments, expected {count + 1}"
        )


def _expect_wrapped_key(stanza: Stanza) -> None:
    # Checked before decrypting: the spec requires it against partitioning-oracle attacks.
    if len(stanza.body) != _WRAPPED_KEY_SIZE:
        raise AgeHeaderError(
            f"age header: {stanza.type} stanza body is {len(stanza.body)} bytes, "
            f"expected {_WRAPPED_KEY_SIZE} (a wrapped 16-byte file key)"
        )


def _decode_share(stanza: Stanza, text: str) -> bytes:
    share = _b64decode(text, f"{stanza.type} ephemeral share")
    if len(share) != 32:
        raise AgeHeaderError(f"age header: {stanza.type} ephemeral share is {len(share)} bytes, expected 32")
    return share


# --- X25519 ---------------------------------------------------------------------------------


class X25519Recipient:
    """An ``age1…`` public key."""

    def __init__(self, public_key: bytes) -> None:
        if len(public_key) != 32:
            raise RecipientError("an X25519 recipient is 32 bytes long")
        self._public = bytes(public_key)

    @classmethod
    def from_string(cls, text: str) -> X25519Recipient:
        try:
            hrp, data = bech32.decode(text)
        except ValueError as err:
            raise RecipientError(f"recipient {_shorten(text)!r} is not a valid age1… key: {err}") from None
        if hrp != "age":
            raise RecipientError(
                f"recipient {_shorten(text)!r} is not an X25519 age1… key "
                "(upper-case, post-quantum, tag and plugin recipients are not supported)"
            )
        if len(data) != 32:
            raise RecipientError(f"recipient {_shorten(text)!r} has {len(data)} key bytes, not 32")
        return cls(data)

    @property
    def public_bytes(self) -> bytes:
        return self._public

    def __str__(self) -> str:
        return bech32.encode("age", self._public)

    def __repr__(self) -> str:
        return f"X25519Recipient({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, X25519Recipient) and other._public == self._public

    def __hash__(self) -> int:
        return hash(self._public)

    def wrap(self, file_key: bytes, random: RandomSource) -> Stanza:
        ephemeral = _random(random, 32)
        share = _x25519_base(ephemeral)
        try:
            shared = _x25519(ephemeral, self._public)
        except ValueError:
            raise RecipientError(f"recipient {self} is a low-order point and cannot be used") from None
        wrap_key = _hkdf(shared, share + self._public, _X25519_LABEL)
        return Stanza("X25519", (_b64encode(share),), _wrap_key(wrap_key, file_key))


class X25519Identity:
    """An ``AGE-SECRET-KEY-1…`` secret key."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise KeyFileError("an X25519 identity is 32 bytes long")
        self._secret = bytes(secret)
        self._public = _x25519_base(self._secret)

    @classmethod
    def generate(cls, random: RandomSource = os.urandom) -> X25519Identity:
        return cls(_random(random, 32))

    @classmethod
    def from_string(cls, text: str) -> X25519Identity:
        # Never put the key text into messages: it is a secret.
        try:
            hrp, data = bech32.decode(text)
        except ValueError as err:
            raise KeyFileError(f"not a valid AGE-SECRET-KEY-1… identity: {err}") from None
        if hrp != "AGE-SECRET-KEY-":
            raise KeyFileError(
                "not an X25519 AGE-SECRET-KEY-1… identity (it must be upper case; "
                "post-quantum and plugin identities are not supported)"
            )
        if len(data) != 32:
            raise KeyFileError(f"the AGE-SECRET-KEY-1… identity holds {len(data)} bytes, not 32")
        return cls(data)

    def __str__(self) -> str:
        return bech32.encode("AGE-SECRET-KEY-", self._secret)

    def __repr__(self) -> str:
        return f"X25519Identity(recipient={str(self.recipient())!r})"  # never the secret

    def recipient(self) -> X25519Recipient:
        return X25519Recipient(self._public)

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        for stanza in stanzas:
            if stanza.type != "X25519":
                continue
            file_key = self._unwrap_one(stanza)
            if file_key is not None:
                return file_key
        return None

    def _unwrap_one(self, stanza: Stanza) -> bytes | None:
        _expect_args(stanza, 1)
        share = _decode_share(stanza, stanza.args[0])
        _expect_wrapped_key(stanza)
        try:
            shared = _x25519(self._secret, share)
        except ValueError:
            raise AgeHeaderError(
                "age header: X25519 stanza share is a low-order point (all-zero shared secret)"
            ) from None
        return _unwrap_key(_hkdf(shared, share + self._public, _X25519_LABEL), stanza.body)


# --- ssh-ed25519 (defined by the reference implementation) ----------------------------------


def _ssh_wire(public_key: Ed25519PublicKey) -> bytes:
    """The SSH wire encoding of an Ed25519 public key (RFC 8709)."""
    return encode_string(b"ssh-ed25519") + encode_string(public_key.public_bytes_raw())


def _ssh_tag(wire: bytes) -> str:
    return _b64encode(hashlib.sha256(wire).digest()[:4])


def _ed25519_to_montgomery(public: bytes) -> bytes:
    """Map an Ed25519 point (y, sign of x) to its Curve25519 u-coordinate, u = (1+y)/(1-y).

    Done with plain integers because ``cryptography`` has no API for it; only public data is
    involved, so the lack of constant time does not matter.
    """
    y = int.from_bytes(public, "little") & ((1 << 255) - 1)  # drop the sign bit of x
    if y % _P == 1:
        raise RecipientError("the ssh-ed25519 key is the neutral point and cannot be used")
    u = (1 + y) * pow(1 - y, _P - 2, _P) % _P
    return u.to_bytes(32, "little")


class SshEd25519Recipient:
    """An ``ssh-ed25519`` OpenSSH public key used as an age recipient."""

    def __init__(self, public_key: Ed25519PublicKey) -> None:
        self._key = public_key
        self._wire = _ssh_wire(public_key)
        self._tag = _ssh_tag(self._wire)
        self._montgomery = _ed25519_to_montgomery(public_key.public_bytes_raw())

    @classmethod
    def from_ssh_line(cls, line: str) -> SshEd25519Recipient:
        fields = line.strip().split(None, 2)
        if fields[:1] == ["ssh-ed25519"] and len(fields) < 2:
            raise RecipientError("the ssh-ed25519 public key line has no key after the type")
        if len(fields) < 2 or fields[0] != "ssh-ed25519":
            raise RecipientError(
                f"{_shorten(line)!r} is not an 'ssh-ed25519 AAAA…' public key line "
                "(ssh-rsa and other SSH key types are not supported)"
            )
        try:
            wire = base64.b64decode(fields[1], validate=True)
        except binascii.Error:
            raise RecipientError(f"ssh-ed25519 key {_shorten(line)!r}: the key is not base64") from None
        prefix = encode_string(b"ssh-ed25519") + encode_uint32(32)
        if len(wire) != len(prefix) + 32 or not wire.startswith(prefix):
            raise RecipientError(f"ssh-ed25519 key {_shorten(line)!r}: malformed key blob")
        return cls(Ed25519PublicKey.from_public_bytes(wire[len(prefix) :]))

    def __str__(self) -> str:
        return "ssh-ed25519 " + base64.b64encode(self._wire).decode("ascii")

    def __repr__(self) -> str:
        return f"SshEd25519Recipient({str(self)!r})"

    @property
    def key_tag(self) -> str:
        """The tag its stanzas carry: base64 of the first 4 bytes of SHA-256(SSH wire key)."""
        return self._tag

    def wrap(self, file_key: bytes, random: RandomSource) -> Stanza:
        ephemeral = _random(random, 32)
        share = _x25519_base(ephemeral)
        # The tweak binds the shared secret to this exact SSH key (reference implementation).
        tweak = _hkdf(b"", self._wire, _SSH_ED25519_LABEL)
        shared = _x25519(tweak, _x25519(ephemeral, self._montgomery))
        wrap_key = _hkdf(shared, share + self._montgomery, _SSH_ED25519_LABEL)
        args = (self._tag, _b64encode(share))
        return Stanza("ssh-ed25519", args, _wrap_key(wrap_key, file_key))


class SshEd25519Identity:
    """An OpenSSH Ed25519 private key used as an age identity."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        public = private_key.public_key()
        self._wire = _ssh_wire(public)
        self._tag = _ssh_tag(self._wire)
        # The X25519 scalar is the clamped half of SHA-512(seed), as Ed25519 itself uses it.
        self._scalar = hashlib.sha512(private_key.private_bytes_raw()).digest()[:32]
        self._montgomery = _x25519_base(self._scalar)
        self._recipient = SshEd25519Recipient(public)

    def __repr__(self) -> str:
        return f"SshEd25519Identity(recipient={str(self._recipient)!r})"

    def recipient(self) -> SshEd25519Recipient:
        return self._recipient

    @property
    def key_tag(self) -> str:
        """The tag its stanzas carry: base64 of the first 4 bytes of SHA-256(SSH wire key)."""
        return self._tag

    @property
    def fingerprint(self) -> str:
        """``SHA256:…`` as ``ssh-keygen -lf`` prints it; its first 5 characters after the colon
        are the key tag's first 5 (both encode the same leading SHA-256 bits)."""
        return "SHA256:" + _b64encode(hashlib.sha256(self._wire).digest())

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        for stanza in stanzas:
            if stanza.type != "ssh-ed25519":
                continue
            file_key = self._unwrap_one(stanza)
            if file_key is not None:
                return file_key
        return None

    def _unwrap_one(self, stanza: Stanza) -> bytes | None:
        _expect_args(stanza, 2)
        tag = _b64decode(stanza.args[0], "ssh-ed25519 key tag")
        share = _decode_share(stanza, stanza.args[1])
        if len(tag) != 4:
            raise AgeHeaderError(f"age header: ssh-ed25519 key tag is {len(tag)} bytes, not 4")
        if stanza.args[0] != self._tag:
            return None  # addressed to another SSH key
        _expect_wrapped_key(stanza)
        try:
            tweak = _hkdf(b"", self._wire, _SSH_ED25519_LABEL)
            shared = _x25519(tweak, _x25519(self._scalar, share))
        except ValueError:
            raise AgeHeaderError("age header: ssh-ed25519 stanza share is a low-order point") from None
        wrap_key = _hkdf(shared, share + self._montgomery, _SSH_ED25519_LABEL)
        file_key = _unwrap_key(wrap_key, stanza.body)
        if file_key is None:
            # The tag says this stanza is ours, so failing to open it is damage, not a mismatch
            # (the reference implementation treats it as fatal too).
            raise AgeHeaderError(
                "age header: the ssh-ed25519 stanza addressed to this key does not decrypt "
                "(damaged or forged)"
            )
        return file_key


# --- scrypt ---------------------------------------------------------------------------------


def _scrypt_key(passphrase: bytes, salt: bytes, work_factor: int) -> bytes:
    kdf = Scrypt(salt=_SCRYPT_LABEL + salt, length=32, n=1 << work_factor, r=8, p=1)
    try:
        return kdf.derive(passphrase)
    except MemoryError:  # 128 * r * 2^work_factor bytes: 4 GiB at the 2^22 readers accept
        raise AgeHeaderError(
            f"age header: scrypt work factor 2^{work_factor} needs {1 << (work_factor - 10)} MiB "
            "of memory, more than this machine can give"
        ) from None


class ScryptRecipient:
    """A passphrase. Must be the only recipient of a file (spec: password-based encryption
    implies the sender knew the passphrase, which a mix with public keys would break)."""

    def __init__(self, passphrase: bytes, work_factor: int = 18) -> None:
        if not 1 <= work_factor <= 30:
            raise RecipientError(f"scrypt work factor {work_factor} is outside 1..30")
        self._passphrase = bytes(passphrase)
        self._work_factor = work_factor

    def __repr__(self) -> str:
        return f"ScryptRecipient(work_factor={self._work_factor})"  # never the passphrase

    def wrap(self, file_key: bytes, random: RandomSource) -> Stanza:
        salt = _random(random, _SCRYPT_SALT_SIZE)
        wrap_key = _scrypt_key(self._passphrase, salt, self._work_factor)
        args = (_b64encode(salt), str(self._work_factor))
        return Stanza("scrypt", args, _wrap_key(wrap_key, file_key))


class ScryptIdentity:
    """A passphrase to try on an scrypt stanza, refusing work factors above ``max_work_factor``
    (each step doubles time and memory: 2^22 is ~4 GiB and several seconds)."""

    def __init__(self, passphrase: bytes, max_work_factor: int = _DEFAULT_MAX_WORK_FACTOR) -> None:
        self._passphrase = bytes(passphrase)
        self._max_work_factor = max_work_factor
        # The derived key per (salt, work factor): checking a typed passphrase against the
        # header and then opening the payload must not pay for scrypt (about a second) twice.
        self._derived: dict[tuple[bytes, int], bytes] = {}

    def __repr__(self) -> str:
        return f"ScryptIdentity(max_work_factor={self._max_work_factor})"

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        scrypt = [stanza for stanza in stanzas if stanza.type == "scrypt"]
        if not scrypt:
            return None
        _check_scrypt_alone(stanzas)
        return self._unwrap_one(scrypt[0])

    def _unwrap_one(self, stanza: Stanza) -> bytes | None:
        _expect_args(stanza, 2)
        salt = _b64decode(stanza.args[0], "scrypt salt")
        if len(salt) != _SCRYPT_SALT_SIZE:
            raise AgeHeaderError(f"age header: scrypt salt is {len(salt)} bytes, expected 16")
        work_factor = self._work_factor(stanza.args[1])
        _expect_wrapped_key(stanza)
        derived = self._derived.get((salt, work_factor))
        if derived is None:
            derived = self._derived[salt, work_factor] = _scrypt_key(self._passphrase, salt,
                                                                     work_factor)
        return _unwrap_key(derived, stanza.body)

    def _work_factor(self, text: str) -> int:
        # Decimal without sign or leading zero: the only canonical form the spec allows.
        if not _WORK_FACTOR.fullmatch(text):
            raise AgeHeaderError(
                f"age header: scrypt work factor {_shorten(text)!r} is not a decimal number "
                "without leading zeros"
            )
        # Compare lengths first: int() of a huge digit string is slow (and limited).
        work_factor = int(text) if len(text) <= 3 else 1000
        if work_factor > self._max_work_factor:
            raise AgeHeaderError(
                f"age header: scrypt work factor 2^{_shorten(text)} exceeds the maximum "
                f"2^{self._max_work_factor} this reader accepts"
            )
        return work_factor


def _check_scrypt_alone(stanzas: Sequence[Stanza]) -> None:
    if any(stanza.type == "scrypt" for stanza in stanzas) and len(stanzas) != 1:
        raise AgeHeaderError(
            f"age header: an scrypt (passphrase) stanza must be the only stanza, "
            f"but the header has {len(stanzas)}"
        )


# --- parsing keys ----------------------------------------------------------------------------


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def parse_recipient(text: str) -> Recipient:
    """Parse an ``age1…`` or ``ssh-ed25519 AAAA… [comment]`` recipient."""
    stripped = text.strip()
    if stripped.startswith("age1"):
        return X25519Recipient.from_string(stripped)
    if stripped.split(None, 1)[0:1] == ["ssh-ed25519"]:
        return SshEd25519Recipient.from_ssh_line(stripped)
    raise RecipientError(
        f"{_shorten(stripped)!r} is not an age1… or ssh-ed25519 public key "
        "(ssh-rsa, post-quantum and plugin recipients are not supported)"
    )


def parse_identity_file(data: bytes) -> list[X25519Identity]:
    """Parse an age identity file: ``#`` comments, blank lines and AGE-SECRET-KEY-1… lines."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError("the age identity file is not UTF-8 text") from None
    identities: list[X25519Identity] = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("AGE-SECRET-KEY-1"):
            kind = (
                "a post-quantum key"
                if line.startswith("AGE-SECRET-KEY-PQ-")
                else ("a plugin key" if line.startswith("AGE-PLUGIN-") else "not an age identity")
            )
            raise KeyFileError(f"age identity file line {number} is {kind} (unsupported)")
        try:
            identities.append(X25519Identity.from_string(line))
        except KeyFileError as err:
            raise KeyFileError(f"age identity file line {number}: {err}") from None
    if not identities:
        raise KeyFileError("the age identity file contains no AGE-SECRET-KEY-1… line")
    return identities


# --- header ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """A parsed age header. ``raw`` is the exact header bytes, ``--- mac`` line included."""

    stanzas: tuple[Stanza, ...]
    mac: bytes
    raw: bytes

    @property
    def mac_input(self) -> bytes:
        """The bytes the MAC covers: the header up to and including ``---``."""
        return self.raw[: self.raw.rindex(b"\n---") + 4]


def _read_line(src: BinaryIO, number: int) -> bytes:
    """Read one LF-terminated header line without consuming anything beyond it."""
    line = src.readline(MAX_HEADER_LINE + 1)
    if not line:
        raise AgeHeaderError(f"age header: the input ends at line {number}, before the '---' line")
    if not line.endswith(b"\n"):
        if len(line) > MAX_HEADER_LINE:
            raise AgeHeaderError(f"age header: line {number} is longer than {MAX_HEADER_LINE}")
        raise AgeHeaderError(f"age header: line {number} is cut off (no line feed before the end)")
    return line


def _read_version(src: BinaryIO) -> bytes:
    line = src.readline(MAX_HEADER_LINE + 1)
    if line == VERSION_LINE:
        return line
    if not line:
        raise AgeHeaderError("age header: the input is empty")
    if not line.startswith(_VERSION_PREFIX):
        raise AgeHeaderError("not an age file: it does not start with 'age-encryption.org/v1'")
    if not line.endswith(b"\n"):
        raise AgeHeaderError("age header: the version line is cut off")
    if line == VERSION_LINE[:-1] + b"\r\n":
        raise AgeHeaderError("age header: line 1 ends with CR LF; age headers use LF only")
    raise AgeHeaderError("age header: unsupported age format version (only v1 is supported)")


def _parse_arguments(line: bytes, number: int) -> tuple[str, tuple[str, ...]]:
    fields = line[3:-1].split(b" ")
    for field in fields:
        if not _ARGUMENT.fullmatch(field.decode("latin-1")):
            raise AgeHeaderError(
                f"age header: line {number} has an empty argument or a character outside printable ASCII"
            )
    words = [field.decode("ascii") for field in fields]
    return words[0], tuple(words[1:])


def _parse_body_line(line: bytes, number: int) -> bytes:
    text = line[:-1]
    if text.startswith(b"-"):
        raise AgeHeaderError(
            f"age header: line {number} starts a new section, but the stanza before it has not "
            "ended with a body line shorter than 64 columns"
        )
    if text.endswith(b"\r"):
        raise AgeHeaderError(f"age header: line {number} ends with CR LF; age headers use LF only")
    if len(text) > _COLUMNS:
        raise AgeHeaderError(f"age header: stanza body line {number} is longer than 64 columns")
    return _b64decode(text, f"stanza body line {number}")


def _parse_mac_line(line: bytes, number: int) -> bytes:
    text = line[4:-1]
    if not line.startswith(b"--- ") or len(text) != 43:
        raise AgeHeaderError(f"age header: line {number} is not a '--- <43 base64 MAC>' line")
    return _b64decode(text, "header MAC")


def read_header(src: BinaryIO) -> Header:
    """Parse an age v1 header strictly, consuming exactly the header bytes from ``src``.

    The grammar (c2sp.org/age): the version line, one or more stanzas (``-> args`` then base64
    body lines of 64 columns ending with one shorter line, maybe empty), then ``--- MAC``.
    """
    raw = bytearray(_read_version(src))
    stanzas: list[Stanza] = []
    number = 1
    while True:
        number += 1
        line = _read_line(src, number)
        raw += line
        if line.startswith(b"---"):
            if not stanzas:
                raise AgeHeaderError("age header: there is no recipient stanza before '---'")
            mac = _parse_mac_line(line, number)
            return Header(tuple(stanzas), mac, bytes(raw))
        if not line.startswith(b"-> "):
            raise AgeHeaderError(f"age header: line {number} should start a stanza ('-> ') or end the header")
        if len(stanzas) == MAX_STANZAS:
            raise AgeHeaderError(f"age header: more than {MAX_STANZAS} recipient stanzas")
        kind, args = _parse_arguments(line, number)
        body, number = _read_body(src, raw, number)
        stanzas.append(Stanza(kind, args, body))


def _read_body(src: BinaryIO, raw: bytearray, number: int) -> tuple[bytes, int]:
    """Read stanza body lines until the first one shorter than 64 columns."""
    body = bytearray()
    while True:
        number += 1
        line = _read_line(src, number)
        raw += line
        body += _parse_body_line(line, number)
        if len(line) - 1 < _COLUMNS:
            return bytes(body), number


def _encode_stanza(stanza: Stanza) -> bytes:
    for word in (stanza.type, *stanza.args):
        if not _ARGUMENT.fullmatch(word):
            raise RecipientError(f"stanza argument {_shorten(word)!r} is not printable ASCII")
    encoded = _b64encode(stanza.body)
    lines = [encoded[i : i + _COLUMNS] for i in range(0, len(encoded), _COLUMNS)]
    if len(encoded) % _COLUMNS == 0:
        lines.append("")  # the body always ends with a short (here empty) line
    text = "-> " + " ".join((stanza.type, *stanza.args)) + "\n" + "".join(x + "\n" for x in lines)
    return text.encode("ascii")


def _header_mac(file_key: bytes, mac_input: bytes) -> bytes:
    return hmac.new(_hkdf(file_key, b"", b"header"), mac_input, hashlib.sha256).digest()


def _encode_header(stanzas: Sequence[Stanza], file_key: bytes) -> bytes:
    mac_input = VERSION_LINE + b"".join(_encode_stanza(s) for s in stanzas) + b"---"
    return mac_input + b" " + _b64encode(_header_mac(file_key, mac_input)).encode() + b"\n"


# --- payload keys and nonces -----------------------------------------------------------------


def _payload_aead(file_key: bytes, nonce: bytes) -> ChaCha20Poly1305:
    return ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))


def _set_counter(nonce: bytearray, counter: int, final: bool) -> None:
    # 11-byte big-endian counter + final flag; 2^64 chunks are unreachable, so the top three
    # counter bytes stay zero and we only rewrite the low eight.
    nonce[3:11] = counter.to_bytes(8, "big")
    nonce[11] = 1 if final else 0


# --- writer ----------------------------------------------------------------------------------


def _wrap_all(recipients: Sequence[Recipient], file_key: bytes, random: RandomSource) -> list[Stanza]:
    if not recipients:
        raise RecipientError("at least one recipient is needed to encrypt")
    if len(recipients) > 1 and any(isinstance(r, ScryptRecipient) for r in recipients):
        raise RecipientError("a passphrase cannot be combined with other recipients")
    stanzas = [recipient.wrap(file_key, random) for recipient in recipients]
    if len(stanzas) > 1 and any(stanza.type == "scrypt" for stanza in stanzas):
        raise RecipientError("a passphrase cannot be combined with other recipients")
    return stanzas


class AgeWriter(io.RawIOBase):
    """Encrypt a stream to age. The header and nonce are written at once; ``close()`` (or a
    ``with`` block that ends normally) writes the final chunk and flushes ``out``.

    A writer that is abandoned, garbage-collected or left by an exception is *not* finalised:
    its output then lacks a final chunk, so every reader reports it as truncated rather than
    accepting a partial file as complete.
    """

    def __init__(
        self,
        out: BinaryIO,
        recipients: Sequence[Recipient],
        *,
        random: RandomSource = os.urandom,
    ) -> None:
        super().__init__()
        self._out = out
        self._finished = True  # until the header is out, there is nothing to finalise
        file_key = _random(random, FILE_KEY_SIZE)
        header = _encode_header(_wrap_all(recipients, file_key, random), file_key)
        nonce = _random(random, NONCE_SIZE)
        self._aead = _payload_aead(file_key, nonce)
        self._nonce = bytearray(12)
        self._counter = 0
        self._buffer = bytearray(CHUNK_SIZE)
        self._filled = 0
        self.bytes_written = 0
        self._emit(header + nonce)
        self._finished = False

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        if self.closed or self._finished:
            raise ValueError("write to a closed AgeWriter")
        view = memoryview(data).cast("B")
        size = len(view)
        if size == 0:
            return 0
        try:
            self._write_view(view, size)
        except BaseException:
            self._finished = True  # the output is now inconsistent: never finalise it
            raise
        return size

    def _write_view(self, view: memoryview, size: int) -> None:
        # The buffer always keeps the last 1..CHUNK_SIZE bytes: only close() knows which chunk
        # is final, so a full buffer is sealed only once more data arrives.
        position = 0
        if self._filled:
            position = min(CHUNK_SIZE - self._filled, size)
            self._buffer[self._filled : self._filled + position] = view[:position]
            self._filled += position
            if position == size:
                return
            self._seal(memoryview(self._buffer), final=False)
            self._filled = 0
        # Whole chunks straight from the caller's memory: no copy for large writes.
        while size - position > CHUNK_SIZE:
            self._seal(view[position : position + CHUNK_SIZE], final=False)
            position += CHUNK_SIZE
        rest = size - position
        self._buffer[:rest] = view[position:]
        self._filled = rest

    def _seal(self, plaintext: memoryview, *, final: bool) -> None:
        _set_counter(self._nonce, self._counter, final)
        self._emit(self._aead.encrypt(self._nonce, plaintext, None))
        self._counter += 1

    def _emit(self, data: bytes) -> None:
        written = self._out.write(data)
        if written is not None and written < len(data):
            self._emit_rest(memoryview(data)[written:])  # a raw file may write only part
        self.bytes_written += len(data)

    def _emit_rest(self, view: memoryview) -> None:
        while view:
            written = self._out.write(view)
            if written is None:
                return
            view = view[written:]

    def close(self) -> None:
        """Write the final chunk and flush ``out`` (which stays open)."""
        if self.closed:
            return
        try:
            if not self._finished:
                self._finished = True
                self._seal(memoryview(self._buffer)[: self._filled], final=True)
                flush = getattr(self._out, "flush", None)
                if flush is not None:
                    flush()
        finally:
            super().close()

    def abort(self) -> None:
        """Stop without writing the final chunk: the output will read as truncated."""
        self._finished = True
        super().close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        # io.IOBase would call close() here and silently complete a partial file.
        if not getattr(self, "_finished", True):
            self._finished = True


# --- reader ----------------------------------------------------------------------------------


def _unwrap_file_key(header: Header, identities: Sequence[Identity]) -> bytes:
    _check_scrypt_alone(header.stanzas)
    for identity in identities:
        file_key = identity.unwrap(header.stanzas)
        if file_key is None:
            continue
        if len(file_key) != FILE_KEY_SIZE:
            raise AgeHeaderError(f"age header: the unwrapped file key is {len(file_key)} bytes, expected 16")
        return file_key
    kinds = sorted({stanza.type for stanza in header.stanzas})
    raise NoMatchingKey(
        f"none of the {len(identities)} key(s) or passphrase(s) given opens this age file "
        f"(its recipient stanzas are of type {', '.join(kinds)})"
    )


class AgeReader(io.RawIOBase):
    """Decrypt an age stream. The header is parsed and checked in the constructor (raising
    AgeHeaderError, NoMatchingKey or AgeHeaderMacError); ``read`` then returns plaintext one
    authenticated chunk at a time and raises AgePayloadError where the payload goes wrong:
    truncation is therefore reported at the end, after the good chunks were returned.
    """

    def __init__(self, src: BinaryIO, identities: Sequence[Identity]) -> None:
        super().__init__()
        self._src = src
        self.header = read_header(src)
        file_key = _unwrap_file_key(self.header, identities)
        expected = _header_mac(file_key, self.header.mac_input)
        if not hmac.compare_digest(expected, self.header.mac):
            raise AgeHeaderMacError(
                "age header MAC does not verify: the header was altered or the key is wrong"
            )
        nonce = self._read_exact(NONCE_SIZE)
        if len(nonce) != NONCE_SIZE:
            raise AgeHeaderError(f"age payload nonce is cut off: {len(nonce)} of 16 bytes after the header")
        self._aead = _payload_aead(file_key, nonce)
        self._nonce = bytearray(12)
        self._counter = 0  # index of the next chunk to decrypt
        self._cipher = bytearray(ENCRYPTED_CHUNK_SIZE)
        self._plain = b""
        self._offset = 0
        self._final_seen = False
        self._eof = False
        self._error: AgePayloadError | None = None

    def readable(self) -> bool:
        return True

    # -- public reading API --

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        parts: list[bytes] = []
        wanted = size
        while wanted > 0 and self._ensure_plain(have_data=bool(parts)):
            part = self._take(wanted)
            parts.append(part)
            wanted -= len(part)
        return b"".join(parts)

    def readall(self) -> bytes:
        parts: list[bytes] = []
        while self._ensure_plain(have_data=False):
            parts.append(self._take(len(self._plain)))
        return b"".join(parts)

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(target) and self._ensure_plain(have_data=filled > 0):
            part = self._take(len(target) - filled)
            target[filled : filled + len(part)] = part
            filled += len(part)
        return filled

    def finish(self) -> None:
        """Read and discard the rest, raising AgePayloadError unless the stream ends properly.

        Callers that stop early (tarfile stops at its end-of-archive blocks) call this to be
        sure the payload was complete and nothing follows it.
        """
        while self._ensure_plain(have_data=False):
            self._offset = len(self._plain)

    # -- internals --

    def _take(self, limit: int) -> bytes:
        start = self._offset
        whole = start == 0 and limit >= len(self._plain)
        # Handing out the whole chunk object itself avoids a copy in the common case.
        part = self._plain if whole else self._plain[start : start + limit]
        self._offset = start + len(part)
        return part

    def _ensure_plain(self, *, have_data: bool) -> bool:
        """Make plaintext available; False at the end. Errors found while the caller already
        holds data from this call are kept for the next call, so verified data is never lost."""
        if self.closed:
            raise ValueError("read from a closed AgeReader")
        while self._offset >= len(self._plain):
            if self._error is not None:
                raise self._error
            if self._eof:
                return False
            try:
                self._next_chunk()
            except AgePayloadError as err:
                self._error = err
                if have_data:
                    return False
                raise
        return True

    def _next_chunk(self) -> None:
        if self._final_seen:
            if self._src.read(1):
                raise AgePayloadError(f"age payload has data after its final chunk (chunk {self._counter})")
            self._eof = True
            return
        size = self._read_into(self._cipher)
        self._plain = self._open(memoryview(self._cipher)[:size], size)
        self._offset = 0
        self._counter += 1

    def _open(self, chunk: memoryview, size: int) -> bytes:
        index = self._counter
        if size == 0:
            if index == 0:
                raise AgePayloadError("age payload is truncated: no chunk follows the nonce")
            raise AgePayloadError(
                f"age payload is truncated: the stream ends after chunk {index} without a final chunk"
            )
        if size < TAG_SIZE:
            raise AgePayloadError(
                f"age payload is truncated: chunk {index + 1} has {size} bytes, less than its tag"
            )
        if size < ENCRYPTED_CHUNK_SIZE:
            # A short chunk can only be the final one, and only the first chunk may be empty.
            if size == TAG_SIZE and index > 0:
                raise AgePayloadError(f"age payload is malformed: final chunk {index + 1} is empty")
            return self._decrypt(chunk, final=True)
        try:
            return self._decrypt(chunk, final=False)
        except AgePayloadError:
            # A full-size chunk may still be the final one (payload a multiple of 64 KiB).
            return self._decrypt(chunk, final=True)

    def _decrypt(self, chunk: memoryview, *, final: bool) -> bytes:
        _set_counter(self._nonce, self._counter, final)
        try:
            plain = self._aead.decrypt(self._nonce, chunk, None)
        except InvalidTag:
            raise AgePayloadError(
                f"age payload chunk {self._counter + 1} does not authenticate: the file is "
                "damaged or was altered"
            ) from None
        if final:
            self._final_seen = True
        return plain

    def _read_into(self, buffer: bytearray) -> int:
        """Fill ``buffer`` from the source, looping over short reads; returns bytes read."""
        view = memoryview(buffer)
        readinto = getattr(self._src, "readinto", None)
        filled = 0
        while filled < len(view):
            if readinto is not None:
                got = readinto(view[filled:])
            else:
                data = self._src.read(len(view) - filled)
                got = len(data)
                view[filled : filled + got] = data
            if not got:
                break
            filled += got
        return filled

    def _read_exact(self, size: int) -> bytes:
        buffer = bytearray(size)
        return bytes(buffer[: self._read_into(buffer)])


# --- armor -----------------------------------------------------------------------------------

_ARMOR_BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"
_ARMOR_END = b"-----END AGE ENCRYPTED FILE-----"
_ARMOR_OUTSIDE_WHITESPACE = b" \t\r\n"
_PADDED_B64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def dearmor(data: bytes) -> bytes:
    """Decode an ASCII-armored age file (strict RFC 7468 PEM, label "AGE ENCRYPTED FILE").

    Accepted leniencies, as the spec allows: whitespace before and after the block, and LF or
    CRLF line ends. Everything else is rejected: headers, blank lines, lines longer or (except
    the last) shorter than 64 columns, missing or non-canonical padding, other labels.
    """
    lines = data.strip(_ARMOR_OUTSIDE_WHITESPACE).split(b"\n")
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    if lines[0] != _ARMOR_BEGIN:
        raise AgeArmorError("age armor: the first line is not '-----BEGIN AGE ENCRYPTED FILE-----'")
    if len(lines) < 2 or lines[-1] != _ARMOR_END:
        raise AgeArmorError("age armor: the last line is not '-----END AGE ENCRYPTED FILE-----'")
    body = lines[1:-1]
    for number, line in enumerate(body, start=2):
        _check_armor_line(line, number, last=number == len(body) + 1)
    encoded = b"".join(body)
    if len(encoded) % 4:
        raise AgeArmorError("age armor: the base64 text is not padded to a multiple of 4")
    try:
        decoded = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise AgeArmorError("age armor: the base64 text is not valid") from None
    if base64.b64encode(decoded) != encoded:
        raise AgeArmorError("age armor: the base64 text is not canonical")
    return decoded


def _check_armor_line(line: bytes, number: int, *, last: bool) -> None:
    if not line:
        raise AgeArmorError(f"age armor: line {number} is empty")
    if len(line) > _COLUMNS:
        raise AgeArmorError(f"age armor: line {number} is longer than 64 columns")
    if not last and len(line) != _COLUMNS:
        raise AgeArmorError(f"age armor: line {number} is shorter than 64 columns")
    if not _PADDED_B64.fullmatch(line) or (not last and b"=" in line):
        raise AgeArmorError(f"age armor: line {number} has characters outside base64")


# --- conveniences ----------------------------------------------------------------------------


def encrypt(data: bytes, recipients: Sequence[Recipient], random: RandomSource = os.urandom) -> bytes:
    """Encrypt ``data`` in memory (for tests and small data)."""
    out = io.BytesIO()
    with AgeWriter(out, recipients, random=random) as writer:
        writer.write(data)
    return out.getvalue()


def decrypt(data: bytes, identities: Sequence[Identity]) -> bytes:
    """Decrypt a binary age file in memory (for tests and small data)."""
    return AgeReader(io.BytesIO(data), identities).readall()
