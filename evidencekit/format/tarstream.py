"""A strict, streaming reader of the payload's pax tar: untrusted input, read once, never seeked.

Used instead of ``tarfile`` for decrypted payloads, which may come from anyone. ``tarfile`` copies
member data through several buffers, keeps every member it has seen, reads extended headers whole
whatever size they declare and understands formats evidencekit never writes. This reader takes
only the headers evidencekit's writer produces (evidencekit.format.inner) and refuses the rest:

* every header block must carry the ustar magic and a correct checksum; a damaged header, or a
  stream that ends before the end-of-archive block, stops reading (:class:`TarFormatError`)
  instead of being guessed at;
* members are regular files (``0``), folders (``5``) and hard links (``1``), each after one pax
  extended header (``x``), or, for the addenda, a bare ustar header. Any other type (symbolic
  links, devices, FIFOs, GNU long names ``L``/``K``, pax global headers ``g``, sparse ``S``,
  ``7`` …) stops reading: evidencekit never writes one, and some are read differently by
  different tar programs;
* **canonical headers**: each member's header bytes are regenerated from the fields read
  (name, type, size, mode, owner, mtime, link) and must be exactly those evidencekit writes, as
  the outer tar's are (docs/FORMAT.md §4.2). So a header that GNU tar or bsdtar could read
  differently from this reader (a pax ``path`` whose ustar name or prefix says something else,
  unknown or repeated pax keywords, a pax ``size`` on a folder, base-256 numbers, a signed
  checksum, bytes after a name's NUL …) is refused rather than interpreted: what this reader
  checks is what ``tar -x`` extracts;
* pax extended headers hold at most :data:`EXTENDED_LIMIT` bytes (checked before reading them),
  their records are parsed in one linear pass;
* member data is handed out in the pieces it arrived in (no copy), and nothing is allocated in
  proportion to a size the archive declares.

Damaged or hostile input raises :class:`TarFormatError` (a BundleError) and nothing else: verify
reports only that as a damaged payload, so any other exception out of this module is a bug and
surfaces as one (exit 5).

Members come out as :class:`tarfile.TarInfo` objects, so visitors see the same type as before;
:func:`mtime_ns` gives a member's exact modification time.
"""

from __future__ import annotations

import re
import struct
import tarfile
from collections.abc import Callable, Iterator

from evidencekit.errors import BundleError
from evidencekit.format.inner import (
    PAX_HEADER_NAME,
    member_header,
    pax_header_block,
    ustar_header,
)

BLOCK = 512
EXTENDED_LIMIT = 1 << 20  # bytes of one pax header: a path and a few numbers fit many times over
_ZERO_BLOCK = bytes(BLOCK)
_POSIX_MAGIC = b"ustar\x00"
_GNU_MAGIC = b"ustar  \x00"
_MEMBER_TYPES = (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.LNKTYPE)  # all evidencekit writes
_NO_DATA = (tarfile.DIRTYPE, tarfile.LNKTYPE)
_PAX = tarfile.XHDTYPE
_PAX_NAME = PAX_HEADER_NAME + b"\0"  # the name of the pax header blocks evidencekit writes
# What a type evidencekit never writes is, in the words of the refusal.
_FOREIGN_TYPES = {
    tarfile.AREGTYPE: "an old-style regular file (type NUL)",
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.CHRTYPE: "a character device (a special file)",
    tarfile.BLKTYPE: "a block device (a special file)",
    tarfile.FIFOTYPE: "a FIFO (a special file)",
    tarfile.CONTTYPE: "a contiguous file (type '7')",
    tarfile.XGLTYPE: "a pax global header (type 'g')",
    tarfile.SOLARIS_XHDTYPE: "a Solaris extended header (type 'X')",
    tarfile.GNUTYPE_LONGNAME: "a GNU long name (type 'L')",
    tarfile.GNUTYPE_LONGLINK: "a GNU long link name (type 'K')",
    tarfile.GNUTYPE_SPARSE: "a GNU sparse member (type 'S')",
}
_DECIMAL = re.compile(r"[0-9]{1,20}")
_TIME = re.compile(r"-?[0-9]{1,20}(\.[0-9]{0,30})?")
_PAX_MTIME = re.compile(r"(-?)([0-9]{1,20})\.([0-9]{9})")  # as evidencekit writes it
_LENGTH_DIGITS = 20
_NOT_TAR = "the decrypted payload is not a valid tar: "
_FOREIGN = "the decrypted payload holds a tar header evidencekit never writes: "
_DEVICE_FIELDS = slice(329, 345)
ADDENDA_PREFIX = "addenda/"  # evidencekit.addenda.ADDENDA_DIR: its members have no pax header
_OCTAL_ZERO_DEVICES = b"0000000\x00" * 2  # older tarfile wrote these for every member

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
    if info.type == tarfile.DIRTYPE:
        info.name = info.name.rstrip("/")
    return info


def _canonical_pax_size(block: bytes) -> int | None:
    """The size a pax header block declares when the block is exactly the one evidencekit
    writes for that size (it precedes every member: parsing it field by field would be half
    the headers' cost); None for any other block, which parse_header reads."""
    if block[156:157] != _PAX or not block.startswith(_PAX_NAME):
        return None
    digits = block[124:135]
    if not digits.isdigit():  # ASCII digits only: int() would take "_" and spaces
        return None
    try:
        size = int(digits, 8)
    except ValueError:  # an 8 or a 9
        return None
    return size if block == pax_header_block(size) else None


def mtime_ns(member: tarfile.TarInfo) -> int:
    """The member's modification time in nanoseconds: the pax ``mtime`` record, as evidencekit
    writes it (seconds, a dot, nine digits; a minus sign before 1970), read as POSIX and tar
    read it, or the ustar field (whole seconds)."""
    return mtime_readings(member)[0]


def mtime_readings(member: tarfile.TarInfo) -> tuple[int, int | None]:
    """:func:`mtime_ns`, and the time an older evidencekit meant by the same pax ``mtime``
    record when that differs: it wrote a time before 1970 with a fraction of a second as its
    whole seconds rounded down and the fraction above them (-1.5 s as ``-2.500000000``, -2 s +
    0.5 s); bundles of format versions 1 to 3 hold it, and readers take it (FORMAT.md §4.2).
    None for any other record: the same time either way, or never written so (``-0.x``: rounded
    down, such a time was ``-1.x``)."""
    record = member.pax_headers.get("mtime")
    match = None if record is None else _PAX_MTIME.fullmatch(record)
    if match is None:
        return int(member.mtime) * 1_000_000_000, None
    return _readings(match)


def _readings(match: re.Match[str]) -> tuple[int, int | None]:
    """:func:`mtime_readings` of a pax ``mtime`` record that _PAX_MTIME matched."""
    whole, fraction = int(match[2]), int(match[3])
    if not match[1]:
        return whole * 1_000_000_000 + fraction, None
    legacy = -whole * 1_000_000_000 + fraction if whole and fraction else None
    return -(whole * 1_000_000_000 + fraction), legacy


def _canonical(info: tarfile.TarInfo, pax: bool) -> bytes | None:
    """The header bytes evidencekit writes for these fields; None when it writes none (a
    type, a link name, a size or a time it never writes)."""
    if info.type not in _MEMBER_TYPES or (info.type in _NO_DATA and info.size):
        return None
    if info.linkname and info.type != tarfile.LNKTYPE:
        return None
    if (info.type != tarfile.DIRTYPE and info.name.endswith("/")) or \
            info.linkname.endswith("/"):
        # GNU tar makes a folder of a regular file whose name ends in '/', and a hard link to
        # 'x/' fails; evidencekit would strip the slash and read a file: refuse, never guess.
        return None
    if not pax:
        if info.type != tarfile.REGTYPE or not info.name.startswith(ADDENDA_PREFIX):
            return None  # bare ustar headers are only for the addenda's files
        return ustar_header(info.name, info.type, info.size, info.mode, int(info.mtime),
                            info.uid, info.gid)
    record = info.pax_headers.get("mtime")
    match = None if record is None else _PAX_MTIME.fullmatch(record)
    if match is None:
        return None
    return member_header(info.name, info.type, info.size, info.mode, _readings(match)[0],
                         info.uid, info.gid,
                         info.linkname if info.type == tarfile.LNKTYPE else None)


def _same_header(found: bytes, expected: bytes) -> int | None:
    """None when *found* is *expected*; else the offset of the first byte that differs.

    One variant is taken as the same: device numbers written as octal zeros instead of NULs
    in a header block (Python's tarfile did so for every member before 3.11.4 or so, and the
    addenda are written by tarfile); every tar reads both as 0, and they mean nothing for the
    types accepted here."""
    if found == expected:
        return None
    if len(found) == len(expected):
        patched = bytearray(expected)
        for start in {0, len(expected) - BLOCK}:
            block = found[start : start + BLOCK]
            if block[_DEVICE_FIELDS] == _OCTAL_ZERO_DEVICES and \
                    not any(expected[start + 329 : start + 345]):
                patched[start + 329 : start + 345] = _OCTAL_ZERO_DEVICES
                patched[start + 148 : start + 156] = b"        "
                patched[start + 148 : start + 155] = b"%06o\0" % sum(patched[start:start + BLOCK])
        if found == patched:
            return None
    return next((i for i, (a, b) in enumerate(zip(found, expected, strict=False)) if a != b),
                min(len(found), len(expected)))


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
        extended = b""  # the raw pax header (block, records, padding) of the next member
        start = 0  # where the next member's headers begin
        while True:
            self._finish_member()
            offset = source.offset
            block = source.read_exact(BLOCK)
            if len(block) < BLOCK:
                raise TarFormatError(f"{_NOT_TAR}unexpected end of data (no end-of-archive "
                                     f"block at byte {offset})")
            if block == _ZERO_BLOCK:
                if pending is not None:
                    raise TarFormatError(f"{_NOT_TAR}an extended header is not followed "
                                         "by a member")
                self.end_offset = offset
                return
            size = _canonical_pax_size(block)  # a pax header block as evidencekit writes it
            if size is None:
                info = parse_header(block, offset)
                size = info.size if info.type == _PAX else None
            if size is not None:
                if pending is not None:
                    raise TarFormatError(f"{_NOT_TAR}two pax headers in a row (byte "
                                         f"{offset})")
                start = offset
                pending, extended = self._read_extended(size, block)
                continue
            kind = info.type
            if kind not in _MEMBER_TYPES:
                what = _FOREIGN_TYPES.get(kind, f"of a type evidencekit never writes ({kind!r})")
                raise TarFormatError(f"{_FOREIGN}the member at byte {offset} is {what}")
            if pending is not None:
                _apply_pax(info, pending)
            else:
                start = offset
            found = extended + block if pending is not None else block
            expected = _canonical(info, pending is not None)
            difference = len(found) if expected is None else _same_header(found, expected)
            if difference is not None:
                raise TarFormatError(
                    f"{_FOREIGN}the header of member {info.name[:200]!r} at byte {start} is not "
                    f"in the form evidencekit writes (byte {start + difference} differs), so "
                    "another tar program could read it differently")
            pending, extended = None, b""
            self._expect(info, 0 if info.type in _NO_DATA else info.size)
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
            padding = self._input.read_exact(self._padding)  # less than a block
            if len(padding) < self._padding:
                raise TarFormatError(f"{_NOT_TAR}unexpected end of data (in the padding "
                                     f"after member {self._current!r})")
            if padding.count(0) != len(padding):
                # No tar shows these bytes: something hidden in the payload, as after its end.
                raise TarFormatError(f"{_NOT_TAR}non-zero bytes in the padding after member "
                                     f"{self._current[:200]!r}")
            self._padding = 0

    def _truncated(self, got: int) -> None:
        raise TarFormatError(f"{_NOT_TAR}unexpected end of data (member {self._current!r} "
                             f"ends {self._left - got} bytes short of its declared size)")

    def _read_extended(self, size: int, block: bytes) -> tuple[dict[str, str], bytes]:
        """The records of a pax header of *size* bytes, and its raw bytes (header block,
        records, padding)."""
        if size > EXTENDED_LIMIT:
            raise TarFormatError(f"payload tar: an extended (pax) header declares {size} "
                                 f"bytes, more than the {EXTENDED_LIMIT} allowed")
        # The records and their padding in one read: a pax header precedes every member.
        padded = self._input.read_exact(size + -size % BLOCK)
        if len(padded) < size + -size % BLOCK:
            raise TarFormatError(f"{_NOT_TAR}unexpected end of data (in a pax header)")
        return pax_records(padded[:size]), block + padded

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
