"""The payload's plaintext: a pax tar holding the BagIt bag under ``bag/``."""

from __future__ import annotations

import os
import stat
import tarfile

from evidencekit.format.bag import BAG_ROOT
from evidencekit.format.outer import BLOCK, padding
from evidencekit.pipeline import Writable

TAG_MODE = 0o644


def _pax_time(ns: int) -> str:
    seconds, fraction = divmod(ns, 1_000_000_000)
    return f"{seconds}.{fraction:09d}"


def _header(name: str, kind: bytes, size: int, mode: int, mtime_ns: int,
            info: os.stat_result | None) -> bytes:
    member = tarfile.TarInfo(f"{BAG_ROOT}/{name}")
    member.type = kind
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

    def add_bytes(self, name: str, data: bytes, mtime_ns: int) -> None:
        self._out.write(_header(name, tarfile.REGTYPE, len(data), TAG_MODE, mtime_ns, None))
        self._out.write(data + padding(len(data)))

    def add_directory(self, name: str, info: os.stat_result) -> None:
        self._out.write(_header(name, tarfile.DIRTYPE, 0, stat.S_IMODE(info.st_mode) | 0o700,
                                info.st_mtime_ns, info))

    def begin_file(self, name: str, size: int, info: os.stat_result) -> None:
        self._out.write(_header(name, tarfile.REGTYPE, size, stat.S_IMODE(info.st_mode),
                                info.st_mtime_ns, info))

    def write(self, data: bytes) -> None:
        self._out.write(data)

    def end_file(self, size: int) -> None:
        if size % BLOCK:
            self._out.write(padding(size))

    def finish(self) -> None:
        self._out.write(b"\0" * (2 * BLOCK))
