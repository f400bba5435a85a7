"""The X25519 recipient and identity (``age1…``, ``AGE-SECRET-KEY-1…``), c2sp.org/age."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from evidencekit.crypto import bech32
from evidencekit.crypto.age.stanza import (
    RandomSource,
    Stanza,
    b64encode,
    decode_share,
    expect_args,
    expect_wrapped_key,
    first_unwrapped,
    random_bytes,
    shorten,
    unwrap_from_share,
    wrap_to_point,
    x25519_base,
)
from evidencekit.errors import AgeHeaderError, EvidenceKitError, KeyFileError, RecipientError

_X25519_LABEL = b"age-encryption.org/v1/X25519"


@dataclass(frozen=True)
class _Wording:
    """What a key's error says: not Bech32 (``{problem}``), another kind of key, or a wrong
    ``{length}``; ``{text}`` is the key as typed, shortened (never for a secret key)."""

    invalid: str
    other_kind: str
    length: str


_RECIPIENT_WORDING = _Wording(
    invalid="recipient {text!r} is not a valid age1… key: {problem}",
    other_kind="recipient {text!r} is not an X25519 age1… key (upper-case, post-quantum, tag and "
    "plugin recipients are not supported)",
    length="recipient {text!r} has {length} key bytes, not 32")
_IDENTITY_WORDING = _Wording(
    invalid="not a valid AGE-SECRET-KEY-1… identity: {problem}",
    other_kind="not an X25519 AGE-SECRET-KEY-1… identity (it must be upper case; post-quantum "
    "and plugin identities are not supported)",
    length="the AGE-SECRET-KEY-1… identity holds {length} bytes, not 32")


def _key_bytes(text: str, hrp: str, error: type[EvidenceKitError], wording: _Wording) -> bytes:
    """The 32 key bytes of the Bech32 *text* under *hrp*; else *error* with *wording*."""
    shown = shorten(text)
    try:
        found, data = bech32.decode(text)
    except ValueError as err:
        raise error(wording.invalid.format(text=shown, problem=err)) from None
    if found != hrp:
        raise error(wording.other_kind.format(text=shown))
    if len(data) != 32:
        raise error(wording.length.format(text=shown, length=len(data)))
    return data


class X25519Recipient:
    """An ``age1…`` public key."""

    def __init__(self, public_key: bytes) -> None:
        if len(public_key) != 32:
            raise RecipientError("an X25519 recipient is 32 bytes long")
        self._public = bytes(public_key)

    @classmethod
    def from_string(cls, text: str) -> X25519Recipient:
        return cls(_key_bytes(text, "age", RecipientError, _RECIPIENT_WORDING))

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
        try:
            share, wrapped = wrap_to_point(file_key, self._public, _X25519_LABEL, random)
        except ValueError:
            raise RecipientError(f"recipient {self} is a low-order point and cannot be used") from None
        return Stanza("X25519", (b64encode(share),), wrapped)


class X25519Identity:
    """An ``AGE-SECRET-KEY-1…`` secret key."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise KeyFileError("an X25519 identity is 32 bytes long")
        self._secret = bytes(secret)
        self._public = x25519_base(self._secret)

    @classmethod
    def generate(cls, random: RandomSource = os.urandom) -> X25519Identity:
        return cls(random_bytes(random, 32))

    @classmethod
    def from_string(cls, text: str) -> X25519Identity:
        # Never put the key text into messages: it is a secret.
        return cls(_key_bytes(text, "AGE-SECRET-KEY-", KeyFileError, _IDENTITY_WORDING))

    def __str__(self) -> str:
        return bech32.encode("AGE-SECRET-KEY-", self._secret)

    def __repr__(self) -> str:
        return f"X25519Identity(recipient={str(self.recipient())!r})"  # never the secret

    def recipient(self) -> X25519Recipient:
        return X25519Recipient(self._public)

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        return first_unwrapped(stanzas, "X25519", self._unwrap_one)

    def _unwrap_one(self, stanza: Stanza) -> bytes | None:
        expect_args(stanza, 1)
        share = decode_share(stanza, stanza.args[0])
        expect_wrapped_key(stanza)
        try:
            return unwrap_from_share(self._secret, self._public, share, stanza.body, _X25519_LABEL)
        except ValueError:
            raise AgeHeaderError(
                "age header: X25519 stanza share is a low-order point (all-zero shared secret)"
            ) from None
