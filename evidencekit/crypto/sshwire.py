"""The SSH wire encoding (RFC 4253 section 5): ``uint32`` and length-prefixed ``string``.

OpenSSH's key files (PROTOCOL.key) and signatures (PROTOCOL.sshsig) are built from these two
types. The reader is strict on purpose: every length is checked against the data that is really
there, and callers finish with :meth:`WireReader.expect_end` so that trailing bytes are refused.
"""

from __future__ import annotations

import base64
import binascii
import struct

from evidencekit.errors import EvidenceKitError

_UINT32 = struct.Struct(">I")


def encode_uint32(value: int) -> bytes:
    """Encode ``value`` as a big-endian uint32."""
    return _UINT32.pack(value)


def encode_string(data: bytes) -> bytes:
    """Encode ``data`` as an SSH string: uint32 length, then the bytes."""
    return _UINT32.pack(len(data)) + data


def decode_base64_strict(text: str) -> bytes | None:
    """Decode standard, padded base64; ``None`` unless the text is the canonical encoding.

    Re-encoding and comparing refuses stray characters and non-zero padding bits, so two
    different texts can never stand for the same bytes.
    """
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(data).decode("ascii") != text:
        return None
    return data


class WireReader:
    """Reads SSH wire values from bytes; any malformation raises ``error(message)``.

    ``error`` is the evidencekit error class that fits the caller (a key file problem is a
    :class:`~evidencekit.errors.KeyFileError`, a signature problem a
    :class:`~evidencekit.errors.SignatureError`); ``what`` names the data in messages.
    """

    def __init__(self, data: bytes, *, error: type[EvidenceKitError], what: str) -> None:
        self._data = data
        self._offset = 0
        self._error = error
        self._what = what

    @property
    def remaining(self) -> int:
        """How many bytes have not been read yet."""
        return len(self._data) - self._offset

    def fail(self, problem: str) -> EvidenceKitError:
        """Build the caller's error for ``problem`` (the caller raises it)."""
        return self._error(f"{self._what} {problem}")

    def read_bytes(self, count: int) -> bytes:
        """Read exactly ``count`` raw bytes."""
        if count > self.remaining:
            raise self.fail(
                f"is truncated (needs {count} bytes at offset {self._offset}, only {self.remaining} left)"
            )
        chunk = self._data[self._offset : self._offset + count]
        self._offset += count
        return chunk

    def read_uint32(self) -> int:
        """Read a big-endian uint32."""
        value: int = _UINT32.unpack(self.read_bytes(4))[0]
        return value

    def read_string(self) -> bytes:
        """Read an SSH string (uint32 length, then that many bytes)."""
        return self.read_bytes(self.read_uint32())

    def read_text(self) -> str:
        """Read an SSH string that must be UTF-8 text (names, namespaces, comments)."""
        raw = self.read_string()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail("contains a name that is not UTF-8 text") from None

    def read_rest(self) -> bytes:
        """Read everything that is left."""
        return self.read_bytes(self.remaining)

    def expect_end(self) -> None:
        """Refuse trailing data: a strict parse consumes every byte."""
        if self.remaining:
            raise self.fail(f"has {self.remaining} unexpected trailing bytes")
