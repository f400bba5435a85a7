"""The ssh-ed25519 recipient and identity (defined by the reference implementation): an OpenSSH
Ed25519 key used as an age key."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from evidencekit.crypto.age.stanza import (
    RandomSource,
    Stanza,
    b64decode,
    b64encode,
    decode_share,
    expect_args,
    expect_wrapped_key,
    first_unwrapped,
    hkdf,
    shorten,
    unwrap_from_share,
    wrap_to_point,
    x25519_base,
)
from evidencekit.crypto.sshwire import encode_string, encode_uint32
from evidencekit.errors import AgeHeaderError, RecipientError

_SSH_ED25519_LABEL = b"age-encryption.org/v1/ssh-ed25519"
_P = 2**255 - 19  # the field prime of Curve25519 / Ed25519


def _ssh_wire(public_key: Ed25519PublicKey) -> bytes:
    """The SSH wire encoding of an Ed25519 public key (RFC 8709)."""
    return encode_string(b"ssh-ed25519") + encode_string(public_key.public_bytes_raw())


def _tweak(wire: bytes) -> bytes:
    """What binds the shared secret to this exact SSH key (reference implementation)."""
    return hkdf(b"", wire, _SSH_ED25519_LABEL)


def _ssh_tag(wire: bytes) -> str:
    return b64encode(hashlib.sha256(wire).digest()[:4])


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
                f"{shorten(line)!r} is not an 'ssh-ed25519 AAAA…' public key line "
                "(ssh-rsa and other SSH key types are not supported)"
            )
        try:
            wire = base64.b64decode(fields[1], validate=True)
        except binascii.Error:
            raise RecipientError(f"ssh-ed25519 key {shorten(line)!r}: the key is not base64") from None
        prefix = encode_string(b"ssh-ed25519") + encode_uint32(32)
        if len(wire) != len(prefix) + 32 or not wire.startswith(prefix):
            raise RecipientError(f"ssh-ed25519 key {shorten(line)!r}: malformed key blob")
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
        share, wrapped = wrap_to_point(file_key, self._montgomery, _SSH_ED25519_LABEL, random,
                                       tweak=_tweak(self._wire))
        return Stanza("ssh-ed25519", (self._tag, b64encode(share)), wrapped)


class SshEd25519Identity:
    """An OpenSSH Ed25519 private key used as an age identity."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        public = private_key.public_key()
        self._wire = _ssh_wire(public)
        self._tag = _ssh_tag(self._wire)
        # The X25519 scalar is the clamped half of SHA-512(seed), as Ed25519 itself uses it.
        self._scalar = hashlib.sha512(private_key.private_bytes_raw()).digest()[:32]
        self._montgomery = x25519_base(self._scalar)
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
        return "SHA256:" + b64encode(hashlib.sha256(self._wire).digest())

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        return first_unwrapped(stanzas, "ssh-ed25519", self._unwrap_one)

    def _unwrap_one(self, stanza: Stanza) -> bytes | None:
        expect_args(stanza, 2)
        tag = b64decode(stanza.args[0], "ssh-ed25519 key tag")
        share = decode_share(stanza, stanza.args[1])
        if len(tag) != 4:
            raise AgeHeaderError(f"age header: ssh-ed25519 key tag is {len(tag)} bytes, not 4")
        if stanza.args[0] != self._tag:
            return None  # addressed to another SSH key
        expect_wrapped_key(stanza)
        try:
            file_key = unwrap_from_share(self._scalar, self._montgomery, share, stanza.body,
                                         _SSH_ED25519_LABEL, tweak=_tweak(self._wire))
        except ValueError:
            raise AgeHeaderError("age header: ssh-ed25519 stanza share is a low-order point") from None
        if file_key is None:
            # The tag says this stanza is ours, so failing to open it is damage, not a mismatch
            # (the reference implementation treats it as fatal too).
            raise AgeHeaderError(
                "age header: the ssh-ed25519 stanza addressed to this key does not decrypt "
                "(damaged or forged)"
            )
        return file_key
