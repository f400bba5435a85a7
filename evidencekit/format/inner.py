"""The payload's plaintext: a pax tar holding the BagIt bag under ``bag/``."""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterable
from functools import lru_cache

from evidencekit.format.bag import BAG_ROOT
from evidencekit.format.outer import BLOCK, padding
from evidencekit.format.ustar import MAX_OCTAL, pax_record, ustar_block
from evidencekit.pipeline import Writable

TAG_MODE = 0o644


def _pax_time(ns: int) -> str:
    """*ns* as POSIX pax writes a time: a decimal number of seconds, so before 1970 a minus sign,
    then the whole seconds and the fraction of the time's absolute value (-1.5 s is
    ``-1.500000000``, as GNU tar writes it). Older writers gave ``-2.500000000`` (whole seconds
    rounded down, the fraction above them), which tar reads as -2.5 s: readers still take it
    (evidencekit.format.tarstream.mtime_readings, docs/FORMAT.md §4.2)."""
    seconds, fraction = divmod(abs(ns), 1_000_000_000)
    return f"{'-' if ns < 0 else ''}{seconds}.{fraction:09d}"


PAX_HEADER_NAME = b"././@PaxHeader"


def bag_header(name: str, kind: bytes, size: int, mode: int, mtime_ns: int,
               info: os.stat_result | None, link_to: str | None = None) -> bytes:
    """The header of the bag member *name* (under ``bag/``): byte for byte what ``tarfile``
    writes in PAX_FORMAT, about ten times faster (it matters for folders of small files).
    Unusual names go through tarfile.

    *link_to* (a hard link, format version 2) is the bag name of the file it links to."""
    uid, gid = (info.st_uid, info.st_gid) if info is not None else (0, 0)
    header = member_header(f"{BAG_ROOT}/{name}", kind, size, mode, mtime_ns, uid, gid,
                           None if link_to is None else f"{BAG_ROOT}/{link_to}")
    if header is None:  # surrogates: tarfile switches to hdrcharset=BINARY
        return tarfile_bag_header(name, kind, size, mode, mtime_ns, info, link_to)
    return header


@lru_cache(maxsize=1024)
def pax_header_block(size: int) -> bytes:
    """The ustar block before *size* bytes of pax records: only the size changes from one
    member to the next (most members' records are of a few lengths)."""
    return ustar_block(PAX_HEADER_NAME, tarfile.XHDTYPE, size, 0, 0, 0, 0)


def member_header(path: str, kind: bytes, size: int, mode: int, mtime_ns: int, uid: int,
                  gid: int, linkpath: str | None = None) -> bytes | None:
    """The canonical header bytes of a payload member (pax header, its records, ustar block):
    the one encoding evidencekit writes for these fields, so that a reader can regenerate it
    and compare (evidencekit.format.tarstream). None when a name is not valid UTF-8 text."""
    if kind == tarfile.DIRTYPE and not path.endswith("/"):
        path += "/"
    mtime = mtime_ns // 1_000_000_000
    records = [pax_record("mtime", _pax_time(mtime_ns))]
    encoded_link = b""
    try:
        encoded = _pax_field(records, "path", path)
        if linkpath is not None:
            encoded_link = _pax_field(records, "linkpath", linkpath)
    except UnicodeEncodeError:
        return None
    if not (0 <= uid < _MAX_ID and 0 <= gid < _MAX_ID and 0 <= size < _MAX_NUMBER):
        uid, gid, size = _large_numbers(records, uid, gid, size)
    if not 0 <= mtime < _MAX_NUMBER:
        mtime = 0  # the pax mtime record holds it
    data = b"".join(records)
    return (pax_header_block(len(data)) + data + padding(len(data))
            + ustar_block(encoded, kind, size, mode, mtime, uid, gid, encoded_link))


_MAX_ID, _MAX_NUMBER = MAX_OCTAL[8], MAX_OCTAL[12]


def _large_numbers(records: list[bytes], uid: int, gid: int, size: int) -> tuple[int, int, int]:
    """A pax record for each number too large (or negative) for its ustar field, which then
    holds 0: the fields' values."""
    numbers = {"uid": uid, "gid": gid, "size": size}
    for keyword, width in (("uid", 8), ("gid", 8), ("size", 12)):
        if not 0 <= numbers[keyword] < MAX_OCTAL[width]:
            records.append(pax_record(keyword, str(numbers[keyword])))
            numbers[keyword] = 0
    return numbers["uid"], numbers["gid"], numbers["size"]


def ustar_header(name: str, kind: bytes, size: int, mode: int, mtime: int, uid: int,
                 gid: int) -> bytes | None:
    """A bare ustar header (no pax records), as tarfile's USTAR_FORMAT writes it for a short
    ASCII name and small numbers: the form of the addenda members (evidencekit.addenda); None
    when these fields need pax records."""
    try:
        encoded = name.encode("ascii")
    except UnicodeEncodeError:
        return None
    if len(encoded) > 100 or not (0 <= uid < MAX_OCTAL[8] and 0 <= gid < MAX_OCTAL[8] and
                                  0 <= size < MAX_OCTAL[12] and 0 <= mtime < MAX_OCTAL[12]):
        return None
    return ustar_block(encoded, kind, size, mode, mtime, uid, gid)


def _pax_field(records: list[bytes], keyword: str, value: str) -> bytes:
    """The ustar field for *value*; a pax record too when it is not ASCII or too long for it."""
    try:
        encoded = value.encode("ascii")
        if len(encoded) > 100:
            records.append(pax_record(keyword, value))
    except UnicodeEncodeError:
        records.append(pax_record(keyword, value))  # raises again for surrogates
        encoded = value.encode("ascii", "replace")
    return encoded


def tarfile_bag_header(name: str, kind: bytes, size: int, mode: int, mtime_ns: int,
                       info: os.stat_result | None, link_to: str | None = None) -> bytes:
    """The reference: the header tarfile itself makes (what :func:`bag_header` must equal)."""
    member = tarfile.TarInfo(f"{BAG_ROOT}/{name}")
    member.type = kind
    if link_to is not None:
        member.linkname = f"{BAG_ROOT}/{link_to}"
    member.size = size
    member.mode = mode
    member.mtime = mtime_ns // 1_000_000_000
    member.pax_headers = {"mtime": _pax_time(mtime_ns)}
    if info is not None:
        member.uid, member.gid = info.st_uid, info.st_gid
    return member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class InnerTarWriter:
    """Writes tar members into *out* (the age stream). Content is passed through unchanged."""

    def __init__(self, out: Writable) -> None:
        self._out = out
        self._scratch = bytearray()

    def add_bytes(self, name: str, data: bytes, mtime_ns: int) -> None:
        self._out.write(bag_header(name, tarfile.REGTYPE, len(data), TAG_MODE, mtime_ns, None))
        self._out.write(data)
        self._out.write(padding(len(data)))

    def add_chunks(self, name: str, chunks: Iterable[bytes], size: int, mtime_ns: int) -> None:
        """A tag file given in pieces (of *size* bytes in all): the same bytes as add_bytes()."""
        self._out.write(bag_header(name, tarfile.REGTYPE, size, TAG_MODE, mtime_ns, None))
        written = 0
        for chunk in chunks:
            self._out.write(chunk)
            written += len(chunk)
        if written != size:
            raise ValueError(f"{name}: {written} bytes given, {size} announced")
        self._out.write(padding(size))

    def add_directory(self, name: str, info: os.stat_result) -> None:
        self._out.write(bag_header(name, tarfile.DIRTYPE, 0, stat.S_IMODE(info.st_mode) | 0o700,
                                info.st_mtime_ns, info))

    def begin_file(self, name: str, size: int, info: os.stat_result) -> None:
        self._out.write(bag_header(name, tarfile.REGTYPE, size, stat.S_IMODE(info.st_mode),
                                info.st_mtime_ns, info))

    def add_hard_link(self, name: str, link_to: str, info: os.stat_result) -> None:
        """A second name of a file already stored as *link_to* (format version 2): no data."""
        self._out.write(bag_header(name, tarfile.LNKTYPE, 0, stat.S_IMODE(info.st_mode),
                                info.st_mtime_ns, info, link_to))

    def write(self, data: bytes) -> None:
        self._out.write(data)

    def reserve(self, size: int) -> memoryview:
        """Room for up to *size* bytes of file content, to read into; then :meth:`commit`.

        With a BackgroundWriter underneath this is free space in its current block, so content is
        read straight into the block that gets encrypted: no copy.
        """
        reserve = getattr(self._out, "reserve", None)
        if reserve is not None:
            view: memoryview = reserve(size)
            return view
        if len(self._scratch) < size:
            self._scratch = bytearray(size)
        return memoryview(self._scratch)[:size]

    def commit(self, count: int) -> None:
        """*count* bytes were put into the view from :meth:`reserve`: they follow in the stream."""
        commit = getattr(self._out, "commit", None)
        if commit is not None:
            commit(count)
        else:
            self._out.write(bytes(self._scratch[:count]))

    def end_file(self, size: int) -> None:
        if size % BLOCK:
            self._out.write(padding(size))

    def finish(self) -> None:
        self._out.write(b"\0" * (2 * BLOCK))
