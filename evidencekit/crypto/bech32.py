"""Bech32 (BIP 173) as the age format uses it: no length limit, all-lower or all-upper case.

age encodes keys as Bech32: recipients with the human-readable part (HRP) ``age`` in lower case,
X25519 identities with ``AGE-SECRET-KEY-`` in upper case. The age specification drops BIP 173's
90-character limit; everything else (character set, case rule, checksum over the lower-case
string, strict 5-to-8-bit conversion) is as in BIP 173.

Errors are :class:`ValueError` with a plain-language message: this is a low-level codec and its
callers (``evidencekit.crypto.age``) turn them into :mod:`evidencekit.errors` classes that say
which key or file was wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_INDEX = {char: value for value, char in enumerate(CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_CHECKSUM_LENGTH = 6


def _polymod(values: Iterable[int]) -> int:
    """BIP 173 checksum polynomial over GF(32)."""
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = ((checksum & 0x1FFFFFF) << 5) ^ value
        for bit, generator in enumerate(_GENERATOR):
            if (top >> bit) & 1:
                checksum ^= generator
    return checksum


def _hrp_expand(hrp: str) -> list[int]:
    """The HRP as checksum input: high bits, a zero separator, low bits (always lower case)."""
    codes = [ord(char) for char in hrp.lower()]
    return [code >> 5 for code in codes] + [0] + [code & 31 for code in codes]


def _checksum(hrp: str, data: Sequence[int]) -> list[int]:
    polymod = _polymod([*_hrp_expand(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ 1
    return [(polymod >> 5 * (5 - index)) & 31 for index in range(_CHECKSUM_LENGTH)]


def _regroup(values: Iterable[int], width: int, new_width: int) -> tuple[list[int], int, int]:
    """Regroup *width*-bit values into *new_width*-bit ones (BIP 173's bit conversion): the
    whole groups, and the bits left over (their count and value) for the caller to judge."""
    accumulator = 0
    bits = 0
    mask = (1 << new_width) - 1
    groups: list[int] = []
    for value in values:
        accumulator = (accumulator << width) | value
        bits += width
        while bits >= new_width:
            bits -= new_width
            groups.append((accumulator >> bits) & mask)
    return groups, bits, accumulator & ((1 << bits) - 1)


def _to_five_bits(data: bytes) -> list[int]:
    """Regroup 8-bit bytes into 5-bit groups, zero-padding the last group."""
    groups, bits, rest = _regroup(data, 8, 5)
    if bits:
        groups.append(rest << (5 - bits))
    return groups


def _to_bytes(groups: Sequence[int]) -> bytes:
    """Regroup 5-bit groups into bytes; the padding must be shorter than 5 bits and all zero.

    Strictness matters: a lenient decoder would accept several strings for one key.
    """
    out, bits, rest = _regroup(groups, 5, 8)
    if bits >= 5:
        raise ValueError("bech32 data has a whole unused 5-bit group at the end")
    if rest:
        raise ValueError("bech32 data has non-zero padding bits")
    return bytes(out)


def _check_hrp(hrp: str) -> None:
    if not hrp:
        raise ValueError("bech32 string has an empty human-readable part")
    for char in hrp:
        if not 33 <= ord(char) <= 126:
            raise ValueError("bech32 human-readable part contains a character outside ASCII 33-126")


def encode(hrp: str, data: bytes) -> str:
    """Encode ``data`` under ``hrp``; an upper-case HRP gives an upper-case string."""
    _check_hrp(hrp)
    if hrp.lower() != hrp and hrp.upper() != hrp:
        raise ValueError("bech32 human-readable part mixes upper and lower case")
    groups = _to_five_bits(data)
    text = hrp.lower() + "1" + "".join(CHARSET[g] for g in groups + _checksum(hrp, groups))
    return text if hrp.lower() == hrp else text.upper()


def decode(text: str) -> tuple[str, bytes]:
    """Decode a Bech32 string into (HRP in the string's own case, data bytes).

    Raises ValueError on mixed case, a bad separator position, characters outside the Bech32
    set, a wrong checksum or non-canonical padding. There is no length limit (age spec).
    """
    if text.lower() != text and text.upper() != text:
        raise ValueError("bech32 string mixes upper and lower case")
    separator = text.rfind("1")
    if separator < 1:
        raise ValueError("bech32 string has no '1' separator after a human-readable part")
    if len(text) - separator - 1 < _CHECKSUM_LENGTH:
        raise ValueError("bech32 string is too short to hold its 6-character checksum")
    hrp = text[:separator]
    _check_hrp(hrp)
    try:
        groups = [_CHARSET_INDEX[char] for char in text[separator + 1 :].lower()]
    except KeyError as err:
        raise ValueError(f"bech32 data part contains the invalid character {err.args[0]!r}") from None
    if _polymod([*_hrp_expand(hrp), *groups]) != 1:
        raise ValueError("bech32 checksum does not match (mistyped or truncated key?)")
    return hrp, _to_bytes(groups[:-_CHECKSUM_LENGTH])
