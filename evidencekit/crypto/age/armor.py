"""ASCII-armored age files (strict RFC 7468 PEM, label "AGE ENCRYPTED FILE")."""

from __future__ import annotations

import base64
import binascii
import re

from evidencekit.crypto.age.header import COLUMNS
from evidencekit.errors import AgeArmorError

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
    if len(line) > COLUMNS:
        raise AgeArmorError(f"age armor: line {number} is longer than 64 columns")
    if not last and len(line) != COLUMNS:
        raise AgeArmorError(f"age armor: line {number} is shorter than 64 columns")
    if not _PADDED_B64.fullmatch(line) or (not last and b"=" in line):
        raise AgeArmorError(f"age armor: line {number} has characters outside base64")
