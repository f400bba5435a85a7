"""The scrypt recipient and identity: a passphrase (c2sp.org/age). A scrypt stanza must be the
only one in its header."""

from __future__ import annotations

import re
from collections.abc import Sequence

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from evidencekit.crypto.age.stanza import (
    RandomSource,
    Stanza,
    b64decode,
    b64encode,
    decrypt_file_key,
    encrypt_file_key,
    expect_args,
    expect_wrapped_key,
    random_bytes,
    shorten,
)
from evidencekit.errors import AgeHeaderError, RecipientError

_SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
_SCRYPT_SALT_SIZE = 16
_DEFAULT_MAX_WORK_FACTOR = 22  # the reference implementation refuses more, CCTV expects that
_WORK_FACTOR = re.compile(r"[1-9][0-9]*")


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
        salt = random_bytes(random, _SCRYPT_SALT_SIZE)
        wrap_key = _scrypt_key(self._passphrase, salt, self._work_factor)
        args = (b64encode(salt), str(self._work_factor))
        return Stanza("scrypt", args, encrypt_file_key(wrap_key, file_key))


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
        check_scrypt_alone(stanzas)
        return self._unwrap_one(scrypt[0])

    def _unwrap_one(self, stanza: Stanza) -> bytes | None:
        expect_args(stanza, 2)
        salt = b64decode(stanza.args[0], "scrypt salt")
        if len(salt) != _SCRYPT_SALT_SIZE:
            raise AgeHeaderError(f"age header: scrypt salt is {len(salt)} bytes, expected 16")
        work_factor = self._work_factor(stanza.args[1])
        expect_wrapped_key(stanza)
        derived = self._derived.get((salt, work_factor))
        if derived is None:
            derived = self._derived[salt, work_factor] = _scrypt_key(self._passphrase, salt,
                                                                     work_factor)
        return decrypt_file_key(derived, stanza.body)

    def _work_factor(self, text: str) -> int:
        # Decimal without sign or leading zero: the only canonical form the spec allows.
        if not _WORK_FACTOR.fullmatch(text):
            raise AgeHeaderError(
                f"age header: scrypt work factor {shorten(text)!r} is not a decimal number "
                "without leading zeros"
            )
        # Compare lengths first: int() of a huge digit string is slow (and limited).
        work_factor = int(text) if len(text) <= 3 else 1000
        if work_factor > self._max_work_factor:
            raise AgeHeaderError(
                f"age header: scrypt work factor 2^{shorten(text)} exceeds the maximum "
                f"2^{self._max_work_factor} this reader accepts"
            )
        return work_factor


def check_scrypt_alone(stanzas: Sequence[Stanza]) -> None:
    if any(stanza.type == "scrypt" for stanza in stanzas) and len(stanzas) != 1:
        raise AgeHeaderError(
            f"age header: an scrypt (passphrase) stanza must be the only stanza, "
            f"but the header has {len(stanzas)}"
        )
