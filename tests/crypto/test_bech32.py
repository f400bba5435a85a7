"""evidencekit.crypto.bech32 against the BIP 173 test vectors, with age's one deviation:
no 90-character length limit (c2sp.org/age)."""

from __future__ import annotations

import pytest

from evidencekit.crypto import bech32

# BIP 173 "valid Bech32" examples.
VALID = [
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11" + "q" * 82 + "c8247j",  # exactly 90 characters
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    "?1ezyfcl",
]

# BIP 173 "invalid Bech32" examples that stay invalid under age's rules.
INVALID = [
    "\x201nwldj5",  # HRP character out of range
    "\x7f1axkwrx",  # HRP character out of range
    "\x801eym55h",  # HRP character out of range
    "pzry9x0s0muk",  # no separator
    "1pzry9x0s0muk",  # empty HRP
    "x1b4n0q5v",  # invalid data character
    "li1dgmt3",  # too short checksum
    "de1lg7wt\xff",  # invalid character in checksum
    "A1G7SGD8",  # checksum calculated with upper-case HRP
    "10a06t8",  # empty HRP
    "1qzzfhee",  # empty HRP
]

SPEC_IDENTITY = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
SPEC_RECIPIENT = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"


@pytest.mark.parametrize("text", VALID)
def test_bip173_valid_checksums(text: str) -> None:
    hrp, _ = bech32.decode(text)
    assert hrp == text[: text.rfind("1")]


def test_bip173_valid_strings_with_byte_data_round_trip() -> None:
    # Strings whose 5-bit data converts to whole bytes re-encode to themselves.
    for text in ["abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw", "A12UEL5L", "a12uel5l"]:
        hrp, data = bech32.decode(text)
        assert bech32.encode(hrp, data) == text


@pytest.mark.parametrize("text", INVALID)
def test_bip173_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        bech32.decode(text)


def test_bip173_length_limit_does_not_apply_to_age() -> None:
    # BIP 173 rejects this one only for being longer than 90 characters.
    text = "an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx"
    assert len(text) > 90
    hrp, _ = bech32.decode(text)
    assert len(hrp) == 84
    long = bech32.encode("age1pq", bytes(range(256)) * 5)
    assert bech32.decode(long) == ("age1pq", bytes(range(256)) * 5)


@pytest.mark.parametrize("text", [SPEC_IDENTITY, SPEC_RECIPIENT])
def test_mixed_case_is_rejected(text: str) -> None:
    assert bech32.decode(text)  # valid as given
    mixed = text[:5] + text[5:].swapcase() if text.isupper() else text[:5].upper() + text[5:]
    with pytest.raises(ValueError, match="mixes"):
        bech32.decode(mixed)


def test_upper_and_lower_case_decode_to_the_same_data() -> None:
    hrp, data = bech32.decode(SPEC_RECIPIENT)
    upper_hrp, upper_data = bech32.decode(SPEC_RECIPIENT.upper())
    assert (hrp, upper_hrp, data) == ("age", "AGE", upper_data)
    assert len(data) == 32
    assert bech32.encode("age", data) == SPEC_RECIPIENT
    assert bech32.encode("AGE", data) == SPEC_RECIPIENT.upper()


def test_identity_round_trip() -> None:
    hrp, data = bech32.decode(SPEC_IDENTITY)
    assert hrp == "AGE-SECRET-KEY-"
    assert bech32.encode(hrp, data) == SPEC_IDENTITY


@pytest.mark.parametrize("position", [4, 10, 30, -1])
def test_any_single_character_change_breaks_the_checksum(position: int) -> None:
    chars = list(SPEC_RECIPIENT)
    chars[position] = "q" if chars[position] != "q" else "p"
    with pytest.raises(ValueError):
        bech32.decode("".join(chars))


@pytest.mark.parametrize("size", [0, 1, 2, 5, 31, 32, 33, 100])
def test_round_trip_any_length(size: int) -> None:
    data = bytes((7 * i + 3) % 256 for i in range(size))
    assert bech32.decode(bech32.encode("test", data)) == ("test", data)


def test_non_zero_padding_is_rejected() -> None:
    # One byte takes two 5-bit groups, the last 2 bits being padding; set one of them. The
    # checksum is valid, so only the strict padding rule can reject it.
    groups = [0, 1]
    data = "".join(bech32.CHARSET[g] for g in groups + bech32._checksum("a", groups))
    with pytest.raises(ValueError, match="padding"):
        bech32.decode("a1" + data)
    assert bech32.decode(bech32.encode("a", b"\x00")) == ("a", b"\x00")


def test_encode_rejects_bad_hrp() -> None:
    for hrp in ["", "Mixed", "sp ace", "\x7f"]:
        with pytest.raises(ValueError):
            bech32.encode(hrp, b"x")
