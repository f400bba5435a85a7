"""A strict, streaming reader of the payload's pax tar: untrusted input, read once, never seeked.

Used instead of ``tarfile`` for decrypted payloads, which may come from anyone. ``tarfile`` copies
member data through several buffers, keeps every member it has seen, reads extended headers whole
whatever size they declare and understands formats evidencekit never writes. This reader takes what
a POSIX pax (or ustar) writer produces and refuses the rest:

* every header block must carry the ustar magic and a correct checksum; a damaged header, or a
  stream that ends before the end-of-archive block, stops reading (:class:`TarFormatError`)
  instead of being guessed at;
* pax extended headers (``x``) and global headers (``g``) hold at most :data:`EXTENDED_LIMIT`
  bytes (checked before reading them), their records are parsed in one linear pass, and only
  ``path``, ``size``, ``mtime``, ``uid``, ``gid``, ``uname``, ``gname`` and ``linkpath`` are used;
* GNU long names (``L``, ``K``) are refused: they, and the member they would name, are reported
  and skipped; sparse members (``S``, or ``GNU.sparse.*`` records) stop reading;
* member data is handed out in the pieces it arrived in (no copy), and nothing is allocated in
  proportion to a size the archive declares.

Damaged or hostile input raises :class:`TarFormatError` (a BundleError) and nothing else: verify
reports only that as a damaged payload, so any other exception out of this module is a bug and
surfaces as one (exit 5).

Members come out as :class:`tarfile.TarInfo` objects, so visitors see the same type as before.
"""

from __future__ import annotations

import re
import struct
import tarfile
from collections.abc import Callable, Iterator

from evidencekit.errors import BundleError

BLOCK = 512
EXTENDED_LIMIT = 1 << 20  # bytes of one pax header: a path and a few numbers fit many times over
_ZERO_BLOCK = bytes(BLOCK)
_POSIX_MAGIC = b"ustar\x00"
_GNU_MAGIC = b"ustar  \x00"
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
# Types whose header is all there is: tarfile does not skip data after them either.
_NO_DATA = (tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
            tarfile.FIFOTYPE)
_LONG_NAME = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_PAX = (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE)
_DECIMAL = re.compile(r"[0-9]{1,20}")
_TIME = re.compile(r"-?[0-9]{1,20}(\.[0-9]{0,30})?")
_LENGTH_DIGITS = 20
_NOT_TAR = "the decrypted payload is not a valid tar: "

Piece = bytes | bytearray | memoryview


class TarFormatError(BundleError):
    """The payload is not a tar this reader accepts; reading cannot go on."""


class _Input:
    """Byte-exact reads over a stream of pieces (``read_piece()`` returns b"" at the end)."""

    def __init__(self, read_piece: Callable[[], Piece]) -> None:
        self._read_piece = read_piece
        self._piece = memoryview(b"")
        self._position = 0
        self.offset = 0  # bytes of the stream consumed so far
        self.ended = False

    def take(self, limit: int) -> memoryview | None:
        """Up to *limit* bytes (at least one) from the current piece; None at the end."""
        piece = self._piece
        position = self._position
        if position >= len(piece):
            while True:
                if self.ended:
                    return None
                raw = self._read_piece()
                if not raw:
                    self.ended = True
                    self._piece = memoryview(b"")
                    self._position = 0
                    return None
                piece = self._piece = memoryview(raw)
                if piece.format != "B":
                    piece = self._piece = piece.cast("B")
                position = 0
                if len(piece):
                    break
        end = min(len(piece), position + limit)
        self._position = end
        self.offset += end - position
        return piece[position:end]

    def read_exact(self, size: int) -> bytes:
        """*size* bytes, or fewer only at the end of the stream (size is bounded by the caller)."""
        first = self.take(size)
        if first is None:
            return b""
        if len(first) == size:
            return bytes(first)
        parts = [bytes(first)]
        got = len(first)
        while got < size:
            part = self.take(size - got)
            if part is None:
                break
            parts.append(bytes(part))
            got += len(part)
        return b"".join(parts)

    def skip(self, size: int) -> int:
        """Discard up to *size* bytes; return how many were there."""
        skipped = 0
        while skipped < size:
            part = self.take(size - skipped)
            if part is None:
                break
            skipped += len(part)
        return skipped


def _number(field: bytes, what: str, offset: int) -> int:
    """A numeric header field: octal digits (NUL or space terminated) or GNU base-256."""
    if field[:1] in (b"\x80", b"\xff"):
        value = int.from_bytes(field[1:], "big")
        return value - 256 ** (len(field) - 1) if field[0] == 0xFF else value
    digits = field.split(b"\0", 1)[0].strip(b" ")
    if digits.translate(None, b"01234567"):  # anything but octal digits (no sign, no "0o")
        raise TarFormatError(f"{_NOT_TAR}damaged header at byte {offset} ({what} is not a "
                             "number)")
    return int(digits or b"0", 8)


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _checksum_ok(block: bytes, stored: int) -> bool:
    unsigned = 256 + sum(block) - sum(block[148:156])
    if stored == unsigned:
        return True
    signed: int = 256 + sum(struct.unpack_from("148b8x356b", block))
    return stored == signed


def parse_header(block: bytes, offset: int) -> tarfile.TarInfo:
    """One ustar header block as a TarInfo; TarFormatError when it is not a valid header."""
    magic = block[257:265]
    if magic[:6] != _POSIX_MAGIC and magic != _GNU_MAGIC:
        raise TarFormatError(f"{_NOT_TAR}no tar header at byte {offset}")
    if not _checksum_ok(block, _number(block[148:156], "checksum", offset)):
        raise TarFormatError(f"{_NOT_TAR}damaged header at byte {offset} (bad checksum)")
    name = _text(block[0:100])
    prefix = _text(block[345:500]) if magic[:6] == _POSIX_MAGIC else ""
    info = tarfile.TarInfo(f"{prefix}/{name}" if prefix else name)
    info.mode = _number(block[100:108], "mode", offset)
    info.uid = _number(block[108:116], "uid", offset)
    info.gid = _number(block[116:124], "gid", offset)
    info.size = _number(block[124:136], "size", offset)
    info.mtime = _number(block[136:148], "mtime", offset)
    info.type = block[156:157]
    info.linkname = _text(block[157:257])
    info.uname = _text(block[265:297])
    info.gname = _text(block[297:329])
    if info.size < 0:
        raise TarFormatError(f"{_NOT_TAR}header at byte {offset} declares a negative size")
    if info.type == tarfile.AREGTYPE and info.name.endswith("/"):
        info.type = tarfile.DIRTYPE
    elif info.type == tarfile.AREGTYPE:
        info.type = tarfile.REGTYPE
    if info.type == tarfile.DIRTYPE:
        info.name = info.name.rstrip("/")
    return info


def pax_records(data: bytes) -> dict[str, str]:
    """Parse ``<length> <keyword>=<value>\\n`` records strictly, in one linear pass."""
    records: dict[str, str] = {}
    position = 0
    size = len(data)
    while position < size:
        space = data.find(b" ", position, position + _LENGTH_DIGITS + 1)
        digits = data[position:space]
        if space < 0 or not digits.isdigit():
            raise TarFormatError("payload tar: malformed pax record (bad length)")
        end = position + int(digits)
        equals = data.find(b"=", space + 1, end)
        if end > size or end <= space + 1 or data[end - 1] != 0x0A or equals <= space + 1:
            raise TarFormatError("payload tar: malformed pax record")
        keyword = data[space + 1 : equals].decode("utf-8", "surrogateescape")
        if keyword.startswith("GNU.sparse"):
            raise TarFormatError("payload tar holds a sparse member; evidencekit never writes "
                                 "those")
        records[keyword] = data[equals + 1 : end - 1].decode("utf-8", "surrogateescape")
        position = end
    return records


def _apply_pax(info: tarfile.TarInfo, records: dict[str, str]) -> None:
    for keyword, value in records.items():
        if keyword == "path":
            info.name = value.rstrip("/")  # as tarfile does
        elif keyword == "linkpath":
            info.linkname = value
        elif keyword in ("uname", "gname"):
            setattr(info, keyword, value)
        elif keyword in ("size", "uid", "gid"):
            if not _DECIMAL.fullmatch(value):
                raise TarFormatError(f"payload tar: malformed pax record ({keyword} "
                                     f"{value[:40]!r} is not a decimal number)")
            setattr(info, keyword, int(value))
        elif keyword == "mtime":
            if not _TIME.fullmatch(value):
                raise TarFormatError(f"payload tar: malformed pax record (mtime {value[:40]!r} "
                                     "is not a time)")
            info.mtime = float(value)  # as tarfile has it
    info.pax_headers = records


class TarReader:
    """Iterate over the members of a tar read from *read_piece*, in order.

    ``for member, problem in reader``: *problem* is None for a member to look at, or a sentence
    saying why it was refused (its data is skipped). A regular file's data is read with
    :meth:`data` before moving on (whatever is left unread is skipped). After the loop,
    :meth:`nonzero_after_end` reads the rest of the stream and counts its non-zero bytes.
    """

    def __init__(self, read_piece: Callable[[], Piece]) -> None:
        self._input = _Input(read_piece)
        self._left = 0  # data bytes of the current member not yet consumed
        self._padding = 0
        self._current = ""
        # Where the end-of-archive block starts, once the loop has reached it (reseal writes
        # the addenda there: docs/FORMAT.md §4.6).
        self.end_offset: int | None = None

    def __iter__(self) -> Iterator[tuple[tarfile.TarInfo, str | None]]:
        source = self._input
        pending: dict[str, str] | None = None
        refused: str | None = None
        while True:
            self._finish_member()
            offset = source.offset
            block = source.read_exact(BLOCK)
            if len(block) < BLOCK:
                raise TarFormatError(f"{_NOT_TAR}unexpected end of data (no end-of-archive "
                                     f"block at byte {offset})")
            if block == _ZERO_BLOCK:
                if pending is not None or refused is not None:
                    raise TarFormatError(f"{_NOT_TAR}an extended header is not followed "
                                         "by a member")
                self.end_offset = offset
                return
            info = parse_header(block, offset)
            kind = info.type
            if kind in _PAX or kind == tarfile.XGLTYPE:
                records = self._read_extended(info, offset)
                if kind != tarfile.XGLTYPE:
                    if pending is not None:
                        raise TarFormatError(f"{_NOT_TAR}two pax headers in a row (byte "
                                             f"{offset})")
                    pending = records
                continue
            if kind in _LONG_NAME:  # the name of the next member: never used, the member refused
                if info.size > EXTENDED_LIMIT:
                    raise TarFormatError(f"payload tar: a GNU long name header declares "
                                         f"{info.size} bytes, more than the {EXTENDED_LIMIT} "
                                         "allowed")
                refused = "unsafe or unexpected member name in the payload (not extracted)"
                self._expect(info, info.size)
                continue
            if kind == tarfile.GNUTYPE_SPARSE:
                raise TarFormatError("payload tar holds a sparse member; evidencekit never writes "
                                     "those")
            if pending is not None:
                _apply_pax(info, pending)
                pending = None
            has_data = info.type not in _NO_DATA
            self._expect(info, info.size if has_data else 0)
            if refused is not None:
                yield info, refused
                refused = None
                continue
            yield info, None

    def _expect(self, info: tarfile.TarInfo, size: int) -> None:
        self._current = info.name
        self._left = size
        self._padding = -size % BLOCK

    def _finish_member(self) -> None:
        if self._left:
            skipped = self._input.skip(self._left)
            if skipped < self._left:
                self._truncated(skipped)
            self._left = 0
        if self._padding:
            if self._input.skip(self._padding) < self._padding:
                raise TarFormatError(f"{_NOT_TAR}unexpected end of data (in the padding "
                                     f"after member {self._current!r})")
            self._padding = 0

    def _truncated(self, got: int) -> None:
        raise TarFormatError(f"{_NOT_TAR}unexpected end of data (member {self._current!r} "
                             f"ends {self._left - got} bytes short of its declared size)")

    def _read_extended(self, info: tarfile.TarInfo, offset: int) -> dict[str, str]:
        if info.size > EXTENDED_LIMIT:
            raise TarFormatError(f"payload tar: an extended (pax) header declares {info.size} "
                                 f"bytes, more than the {EXTENDED_LIMIT} allowed")
        data = self._input.read_exact(info.size)
        if len(data) < info.size:
            raise TarFormatError(f"{_NOT_TAR}unexpected end of data (in a pax header)")
        if self._input.skip(-info.size % BLOCK) < -info.size % BLOCK:
            raise TarFormatError(f"{_NOT_TAR}unexpected end of data (in a pax header)")
        return pax_records(data)

    def data(self) -> Iterator[memoryview]:
        """The current member's data, in the pieces it arrives in (valid until the next read)."""
        source = self._input
        while self._left:
            piece = source.take(self._left)
            if piece is None:
                self._truncated(0)
                return
            self._left -= len(piece)
            yield piece

    def nonzero_after_end(self) -> int:
        """Read the rest of the stream; the number of non-zero bytes in it."""
        hidden = 0
        while (piece := self._input.take(1 << 20)) is not None:
            hidden += len(piece) - bytes(piece).count(0)
        return hidden
