"""A strict, streaming implementation of the age v1 file format (c2sp.org/age) on ``cryptography``.

Supported: X25519 (``age1…``), ssh-ed25519 and scrypt (passphrase) recipients and identities,
binary files, and strict de-armoring of whole ASCII-armored files (:func:`dearmor`).
Not supported on purpose: ssh-rsa, plugins and post-quantum (mlkem768x25519) types. An identity
simply does not match stanzas of a type it does not know, as the spec requires.

Strictness follows the spec and the C2SP CCTV test vectors: canonical unpadded base64 only,
64-column stanza bodies ending in a short line, 16-byte file keys, a verified header MAC, and a
payload whose every chunk is authenticated before any of its plaintext is released.

Readers and writers never close the file objects they are given: the caller owns them.

The parts, as in age's own code: the header (header.py), the payload stream (stream.py), and
one module per key type behind the Recipient and Identity interfaces (stanza.py): x25519.py,
sshed25519.py, scrypt.py; parse.py reads keys as people give them, armor.py armored files.
A new key type is one new module; the header and the stream do not change.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

from evidencekit.crypto.age.armor import dearmor
from evidencekit.crypto.age.header import MAX_HEADER_LINE, MAX_STANZAS, VERSION_LINE, Header, read_header
from evidencekit.crypto.age.parse import parse_identity_file, parse_recipient
from evidencekit.crypto.age.scrypt import ScryptIdentity, ScryptRecipient
from evidencekit.crypto.age.sshed25519 import SshEd25519Identity, SshEd25519Recipient
from evidencekit.crypto.age.stanza import FILE_KEY_SIZE, TAG_SIZE, Identity, RandomSource, Recipient, Stanza
from evidencekit.crypto.age.stream import CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE, NONCE_SIZE, AgeReader, AgeWriter
from evidencekit.crypto.age.x25519 import X25519Identity, X25519Recipient

__all__ = [
    "CHUNK_SIZE",
    "ENCRYPTED_CHUNK_SIZE",
    "FILE_KEY_SIZE",
    "MAX_HEADER_LINE",
    "MAX_STANZAS",
    "NONCE_SIZE",
    "TAG_SIZE",
    "VERSION_LINE",
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


def encrypt(data: bytes, recipients: Sequence[Recipient], random: RandomSource = os.urandom) -> bytes:
    """Encrypt ``data`` in memory (for tests and small data)."""
    out = io.BytesIO()
    with AgeWriter(out, recipients, random=random) as writer:
        writer.write(data)
    return out.getvalue()


def decrypt(data: bytes, identities: Sequence[Identity]) -> bytes:
    """Decrypt a binary age file in memory (for tests and small data)."""
    return AgeReader(io.BytesIO(data), identities).readall()
