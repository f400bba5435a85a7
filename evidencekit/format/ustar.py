"""The one ustar/pax encoder of both tars in a bundle (the outer tar and the payload's).

Each tar fixes its own fields (evidencekit.format.outer, evidencekit.format.inner); the bytes of
a header block and of a pax record are made here only, so both write them the same way.
"""

from __future__ import annotations

import struct
import zlib

POSIX_MAGIC = b"ustar\x0000"
MAX_OCTAL = {8: 8**7, 12: 8**11}  # first value an octal field of that width cannot hold
_ZERO_DEVICES = b"0000000\0" * 2  # devmajor, devminor written as octal zero
_NO_DEVICES = bytes(16)  # ... or left empty, as tarfile writes them for regular members


def octal(value: int, width: int) -> bytes:
    """A NUL-terminated, zero-padded octal field of *width* bytes."""
    return b"%0*o\0" % (width - 1, value)


# name, mode uid gid size mtime (written together), checksum, type, linkname, magic and version,
# uname and gname, device numbers, prefix and padding: 512 bytes, each field padded with NULs
_BLOCK = struct.Struct("100s48s8s1s100s8s64s16s167s")
_NUMBERS = b"%07o\0%07o\0%07o\0%011o\0%011o\0"  # mode, uid, gid (8 bytes), size, mtime (12)
# The checksum counts its own field as eight spaces; the magic and the device numbers are fixed.
_FIXED_SUM = {devices: sum(b" " * 8 + POSIX_MAGIC + devices) for devices in (_ZERO_DEVICES, _NO_DEVICES)}


def ustar_block(name: bytes, kind: bytes, size: int, mode: int, mtime: int, uid: int,
                gid: int, linkname: bytes = b"", *, device_numbers: bool = False) -> bytes:
    """A ustar header block, its checksum computed (no uname, gname or prefix). Device numbers
    are octal zero with *device_numbers* (the outer tar), else empty (as tarfile writes them).
    The numbers must fit their fields (callers put larger ones in pax records)."""
    numbers = _NUMBERS % (mode & 0o7777, uid, gid, size, mtime)
    if len(numbers) != 48 or len(kind) != 1:
        raise ValueError("a ustar header field does not fit")
    devices = _ZERO_DEVICES if device_numbers else _NO_DEVICES
    name, linkname = name[:100], linkname[:100]
    # The checksum is the sum of the block's bytes: what varies here (at most 245 bytes), plus
    # the fixed part; computed before the block is packed, so it is packed once.
    checksum = byte_sum(name + numbers + kind + linkname) + _FIXED_SUM[devices]
    return _BLOCK.pack(name, numbers, b"%06o\0 " % checksum, kind, linkname, POSIX_MAGIC, b"",
                       devices, b"")


def byte_sum(data: bytes) -> int:
    """``sum(data)`` (a header's checksum), without a Python loop over its bytes: the lower half
    of Adler-32 is 1 + the sum of the bytes modulo 65521, which is the sum itself for 256 bytes
    or fewer (at most 65,280)."""
    if len(data) <= 256:
        return (zlib.adler32(data) & 0xFFFF) - 1
    view = memoryview(data)
    return sum([(zlib.adler32(view[start:start + 256]) & 0xFFFF) - 1
                for start in range(0, len(view), 256)])


def pax_record(keyword: str, value: str) -> bytes:
    """One pax extended-header record, ``<length> <keyword>=<value>\\n``."""
    body = b" %s=%s\n" % (keyword.encode("utf-8"), value.encode("utf-8"))
    # The record's length includes its own decimal digits: start from the body's length plus
    # its digits, which is already the answer unless adding them carries into another digit.
    length = len(body) + len(b"%d" % len(body))
    while len(b"%d" % length) + len(body) != length:
        length = len(b"%d" % length) + len(body)
    return b"%d" % length + body
