"""The age payload: the file key wrapped for every recipient, then 64 KiB chunks, each
authenticated before any of its plaintext is released (:class:`AgeWriter`, :class:`AgeReader`)."""

from __future__ import annotations

import hmac
import io
import os
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from evidencekit.crypto.age.header import Header, encode_header, header_mac, read_header
from evidencekit.crypto.age.scrypt import ScryptRecipient, check_scrypt_alone
from evidencekit.crypto.age.stanza import (
    FILE_KEY_SIZE,
    TAG_SIZE,
    Identity,
    RandomSource,
    Recipient,
    Stanza,
    hkdf,
    random_bytes,
)
from evidencekit.errors import (
    AgeHeaderError,
    AgeHeaderMacError,
    AgePayloadError,
    NoMatchingKey,
    RecipientError,
)
from evidencekit.rawreader import RawReader

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

NONCE_SIZE = 16
CHUNK_SIZE = 64 * 1024
ENCRYPTED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE


def _payload_aead(file_key: bytes, nonce: bytes) -> ChaCha20Poly1305:
    return ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))


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
        file_key = random_bytes(random, FILE_KEY_SIZE)
        header = encode_header(_wrap_all(recipients, file_key, random), file_key)
        nonce = random_bytes(random, NONCE_SIZE)
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
    check_scrypt_alone(header.stanzas)
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


class AgeReader(RawReader):
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
        expected = header_mac(file_key, self.header.mac_input)
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
        size = len(target)
        filled = 0
        while filled < size:
            if size - filled >= CHUNK_SIZE and self._offset >= len(self._plain):
                # Whole chunks are decrypted straight into the caller's buffer: no plaintext
                # object per chunk, no copy (verify spends one core on this stage).
                count = self._chunk_into(target[filled:], have_data=filled > 0)
                if count < 0:  # the stream ended, or an error is kept for the next call
                    break
                filled += count
                continue
            if not self._ensure_plain(have_data=filled > 0):
                break
            part = self._take(size - filled)
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
            self._check_end()
            return
        size = self._read_into(self._cipher)
        self._plain = self._open(memoryview(self._cipher)[:size], size)
        self._offset = 0
        self._counter += 1

    def _check_end(self) -> None:
        if self._src.read(1):
            raise AgePayloadError(f"age payload has data after its final chunk (chunk {self._counter})")
        self._eof = True

    def _chunk_into(self, target: memoryview, *, have_data: bool) -> int:
        """Decrypt the next chunk into *target* (room for CHUNK_SIZE bytes at least): its size,
        or -1 at the end or when an error was found while the caller already holds data (kept
        for the next call, as _ensure_plain does). A chunk that fails leaves zeros behind, never
        unauthenticated plaintext."""
        if self.closed:
            raise ValueError("read from a closed AgeReader")
        try:
            if self._error is not None:
                raise self._error
            if self._final_seen:
                if not self._eof:
                    self._check_end()
                return -1
            chunk = self._cipher_chunk()
            size = len(chunk)
            out = target[: max(size - TAG_SIZE, 0)]
            try:
                self._open(chunk, size, out)
            except AgePayloadError:
                out[:] = bytes(len(out))
                raise
        except AgePayloadError as err:
            self._error = err
            if have_data:
                return -1
            raise
        self._counter += 1
        return len(out)

    def _cipher_chunk(self) -> memoryview:
        """The next encrypted chunk: a view of the source's own block where the source lends
        one (ReadAheadStream.read_view) and the chunk lies whole in it, else read into a copy."""
        read_view = getattr(self._src, "read_view", None)
        if read_view is None:
            return memoryview(self._cipher)[: self._read_into(self._cipher)]
        view: memoryview = read_view(ENCRYPTED_CHUNK_SIZE)
        if len(view) == ENCRYPTED_CHUNK_SIZE or not view:
            return view
        filled = len(view)
        self._cipher[:filled] = view  # across two blocks: join the pieces
        rest = memoryview(self._cipher)[filled:]
        filled += self._read_into_view(rest)
        return memoryview(self._cipher)[:filled]

    def _open(self, chunk: memoryview, size: int, out: memoryview | None = None) -> bytes:
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
            return self._decrypt(chunk, final=True, out=out)
        try:
            return self._decrypt(chunk, final=False, out=out)
        except AgePayloadError:
            # A full-size chunk may still be the final one (payload a multiple of 64 KiB).
            return self._decrypt(chunk, final=True, out=out)

    def _decrypt(self, chunk: memoryview, *, final: bool, out: memoryview | None = None) -> bytes:
        """The chunk's plaintext; with *out*, written there instead (and b"" returned)."""
        _set_counter(self._nonce, self._counter, final)
        try:
            if out is None:
                plain = self._aead.decrypt(self._nonce, chunk, None)
            else:
                self._aead.decrypt_into(self._nonce, chunk, None, out)
                plain = b""
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
        return self._read_into_view(memoryview(buffer))

    def _read_into_view(self, view: memoryview) -> int:
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
