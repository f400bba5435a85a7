"""The one ustar/pax encoder of both tars in a bundle (the outer tar and the payload's).

Each tar fixes its own fields (evidencekit.format.outer, evidencekit.format.inner); the bytes of
a header block and of a pax record are made here only, so both write them the same way.
"""

from __future__ import annotations

POSIX_MAGIC = b"ustar\x0000"
MAX_OCTAL = {8: 8**7, 12: 8**11}  # first value an octal field of that width cannot hold
_ZERO_DEVICES = b"0000000\0" * 2  # devmajor, devminor written as octal zero
_NO_DEVICES = bytes(16)  # ... or left empty, as tarfile writes them for regular members


def octal(value: int, width: int) -> bytes:
    """A NUL-terminated, zero-padded octal field of *width* bytes."""
    return b"%0*o\0" % (width - 1, value)


def ustar_block(name: bytes, kind: bytes, size: int, mode: int, mtime: int, uid: int,
                gid: int, linkname: bytes = b"", *, device_numbers: bool = False) -> bytes:
    """A ustar header block, its checksum computed (no uname, gname or prefix). Device numbers
    are octal zero with *device_numbers* (the outer tar), else empty (as tarfile writes them)."""
    block = b"".join((
        name[:100].ljust(100, b"\0"), octal(mode & 0o7777, 8), octal(uid, 8), octal(gid, 8),
        octal(size, 12), octal(mtime, 12), b"        ", kind, linkname[:100].ljust(100, b"\0"),
        POSIX_MAGIC, bytes(64),  # uname, gname
        _ZERO_DEVICES if device_numbers else _NO_DEVICES,
        bytes(155 + 12),  # prefix, padding
    ))
    return block[:148] + b"%06o\0" % sum(block) + block[155:]


def pax_record(keyword: str, value: str) -> bytes:
    """One pax extended-header record, ``<length> <keyword>=<value>\\n``."""
    body = b" %s=%s\n" % (keyword.encode("utf-8"), value.encode("utf-8"))
    length = len(body)  # the record's length includes its own decimal digits
    while len(b"%d" % length) + len(body) != length:
        length = len(b"%d" % length) + len(body)
    return b"%d" % length + body
