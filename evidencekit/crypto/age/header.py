"""The age header: parsed strictly and streaming (:func:`read_header`), and written with its
MAC (c2sp.org/age). It knows stanzas, never a key type."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from evidencekit.crypto.age.stanza import Stanza, b64decode, b64encode, hkdf, shorten
from evidencekit.errors import AgeHeaderError, RecipientError

VERSION_LINE = b"age-encryption.org/v1\n"
_VERSION_PREFIX = b"age-encryption.org/"
COLUMNS = 64  # base64 characters per full stanza body line

# Limits of our own (the spec sets none). They bound the work an untrusted header can cause
# before its MAC can be checked: every stanza may cost a scalar multiplication per identity.
MAX_HEADER_LINE = 16 * 1024
MAX_STANZAS = 1024

_ARGUMENT = re.compile(r"[\x21-\x7e]+")  # VCHAR, as in the spec's ABNF


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
    if len(text) > COLUMNS:
        raise AgeHeaderError(f"age header: stanza body line {number} is longer than 64 columns")
    return b64decode(text, f"stanza body line {number}")


def _parse_mac_line(line: bytes, number: int) -> bytes:
    text = line[4:-1]
    if not line.startswith(b"--- ") or len(text) != 43:
        raise AgeHeaderError(f"age header: line {number} is not a '--- <43 base64 MAC>' line")
    return b64decode(text, "header MAC")


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
        if len(line) - 1 < COLUMNS:
            return bytes(body), number


def _encode_stanza(stanza: Stanza) -> bytes:
    for word in (stanza.type, *stanza.args):
        if not _ARGUMENT.fullmatch(word):
            raise RecipientError(f"stanza argument {shorten(word)!r} is not printable ASCII")
    encoded = b64encode(stanza.body)
    lines = [encoded[i : i + COLUMNS] for i in range(0, len(encoded), COLUMNS)]
    if len(encoded) % COLUMNS == 0:
        lines.append("")  # the body always ends with a short (here empty) line
    text = "-> " + " ".join((stanza.type, *stanza.args)) + "\n" + "".join(x + "\n" for x in lines)
    return text.encode("ascii")


def header_mac(file_key: bytes, mac_input: bytes) -> bytes:
    return hmac.new(hkdf(file_key, b"", b"header"), mac_input, hashlib.sha256).digest()


def encode_header(stanzas: Sequence[Stanza], file_key: bytes) -> bytes:
    mac_input = VERSION_LINE + b"".join(_encode_stanza(s) for s in stanzas) + b"---"
    return mac_input + b" " + b64encode(header_mac(file_key, mac_input)).encode() + b"\n"
