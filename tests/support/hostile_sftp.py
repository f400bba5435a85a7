"""A lying SFTP server for tests (version 3, on standard input and output, as sshd runs a
``Subsystem``): ``python -m tests.support.hostile_sftp MODE``. It serves a made-up folder
``/x`` holding ``f.txt`` (200,000 bytes), and as MODE says:

- ``empty-name``: ``/x`` also lists an entry whose name is empty (``/x/`` is ``/x`` again);
- ``reordered``: answers the READs it has been sent in reverse order;
- ``long-read``: answers the first READ with 100 bytes more than asked;
- ``past-eof``: answers READs past the end of ``f.txt`` with data, never with EOF;
- ``stalled``: never answers a READ (the session held open);
- ``trickled``: answers READs a byte a second (never silent for long, never done);
- ``endless-folder``: ``/x`` lists new names without end, never EOF;
- ``long-names``: ``/x`` lists 300 names of 60,000 bytes each (18 MB of names), one an answer;
- ``sizeless``: lists ``f.txt`` without a size and answers its READs with data without end;
- ``endless-depth``: every folder below ``/x`` holds a folder ``d``, without bottom;
- ``wide-deep[:WIDE:CHAIN]``: ``/x`` is the top of a chain of CHAIN (60) folders of 250-byte
  names (paths of 15 KB), the last listing WIDE (20,000) names of FIFOs (nothing read):
  each item costing memory several times its path, a wide folder that deep filled memory;
- ``hangup``: answers the first READ of ``f.txt``, then ends (the session gone mid-file, as
  when the connection drops);
- ``denied``: refuses to OPEN ``f.txt`` (permission denied), as a server does a file its user
  may not read;
- ``truncated``: answers LSTAT of ``/x/f.txt`` with attributes cut short (a size announced, no
  bytes for it).
"""

from __future__ import annotations

import os
import select
import struct
import sys
import time
from typing import BinaryIO

CONTENT = bytes(range(256)) * 782  # 200,192 bytes
_DIR, _FILE, _FIFO = 0o040755, 0o100644, 0o010644
MODE, *_SHAPE = (sys.argv[1] if __name__ == "__main__" else "").split(":")
_WIDE, _CHAIN = (int(n) for n in _SHAPE) if _SHAPE else (20_000, 60)  # wide-deep[:WIDE:CHAIN]
_LINK_NAME = b"d" * 250


def _attrs(mode: int, size: int) -> bytes:
    if MODE == "sizeless" and mode == _FILE:
        return struct.pack(">IIII", 0x4 | 0x8, mode, 1_700_000_000, 1_700_000_000)
    return struct.pack(">IQIII", 0x1 | 0x4 | 0x8, size, mode, 1_700_000_000, 1_700_000_000)


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


class _Server:
    def __init__(self, mode: str, inp: BinaryIO, out: BinaryIO) -> None:
        mode = mode.split(":")[0]
        self.mode, self.inp, self.out = mode, inp, out
        self.listed: set[bytes] = set()
        self.held: list[bytes] = []
        self.listed_count: dict[bytes, int] = {}

    def send(self, kind: int, body: bytes) -> None:
        self.out.write(struct.pack(">IB", len(body) + 1, kind) + body)
        self.out.flush()

    def wide_deep(self, kind: int, request: int, path: bytes) -> None:
        levels = path.rstrip(b"/").count(b"/") - 1  # /x is 0
        if kind == 7:  # LSTAT: the chain's folders exist, the wide folder's names do not
            if path.startswith(b"/x") and levels <= _CHAIN:
                self.send(105, struct.pack(">I", request) + _attrs(_DIR, 4096))
            else:
                self.status(request, 2)
            return
        listed = self.listed_count.get(path, 0)  # READDIR
        if levels < _CHAIN:
            names = [] if listed else [_LINK_NAME]
        else:
            names = [b"%08d" % i for i in range(listed, min(listed + 100, _WIDE))]
        if not names:
            self.status(request, 1)
            return
        self.listed_count[path] = listed + len(names)
        self.send(104, struct.pack(">II", request, len(names)) + b"".join(
            _string(n) + _string(b"") + (_attrs(_DIR, 4096) if levels < _CHAIN
                                                      else _attrs(_FIFO, 0)) for n in names))

    def trickle(self, kind: int, body: bytes) -> None:
        for byte in struct.pack(">IB", len(body) + 1, kind) + body:
            self.out.write(bytes([byte]))
            self.out.flush()
            time.sleep(1)

    def status(self, request: int, code: int) -> None:
        self.send(101, struct.pack(">II", request, code) + _string(b"") + _string(b""))

    def exactly(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            block = os.read(self.inp.fileno(), count - len(data))  # unbuffered: see select
            if not block:
                return b""
            data += block
        return data

    def packet(self) -> tuple[int, bytes] | None:
        head = self.exactly(4)
        if len(head) < 4:
            return None
        (length,) = struct.unpack(">I", head)
        data = self.exactly(length)
        return data[0], data[1:]

    def serve(self) -> None:
        while (got := self.packet()) is not None:
            kind, body = got
            if kind == 1:
                self.send(2, struct.pack(">I", 3))
                continue
            (request,) = struct.unpack_from(">I", body)
            (length,) = struct.unpack_from(">I", body, 4)
            argument = body[8:8 + length]
            self.answer(kind, request, argument, body)

    def answer(self, kind: int, request: int, argument: bytes, body: bytes) -> None:
        if self.mode == "wide-deep" and kind in (7, 12):
            self.wide_deep(kind, request, argument)
            return
        if kind == 7:  # LSTAT
            if argument.rstrip(b"/") == b"/x" or (self.mode == "endless-depth" and
                                                  argument.startswith(b"/x/")):
                self.send(105, struct.pack(">I", request) + _attrs(_DIR, 4096))
            elif argument == b"/x/f.txt" and self.mode == "truncated":
                self.send(105, struct.pack(">II", request, 0x1) + b"\0\0")
            elif argument == b"/x/f.txt":
                self.send(105, struct.pack(">I", request) + _attrs(_FILE, len(CONTENT)))
            else:
                self.status(request, 2)
        elif kind == 3 and self.mode == "denied":  # OPEN
            self.status(request, 3)
        elif kind in (11, 3):  # OPENDIR, OPEN
            self.send(102, struct.pack(">I", request) + _string(argument))
        elif kind == 12:  # READDIR
            if self.mode == "endless-folder":
                first = len(self.listed)
                self.listed.add(argument + str(first).encode())
                names = [(f"n{first}-{i}".encode(), _attrs(_FILE, 1)) for i in range(100)]
                self.send(104, struct.pack(">II", request, len(names)) + b"".join(
                    _string(n) + _string(n) + a for n, a in names))
                return
            if self.mode == "endless-depth" and argument not in self.listed:
                self.listed.add(argument)
                self.send(104, struct.pack(">II", request, 1) + _string(b"d") + _string(b"d")
                          + _attrs(_DIR, 4096))
                return
            if self.mode == "long-names" and len(self.listed) < 300:
                name = str(len(self.listed)).encode().rjust(60_000, b"n")
                self.listed.add(name)
                self.send(104, struct.pack(">II", request, 1) + _string(name) + _string(b"")
                          + _attrs(_FILE, 1))
                return
            if argument in self.listed or self.mode == "long-names":
                self.status(request, 1)
                return
            self.listed.add(argument)
            names = [(b"f.txt", _attrs(_FILE, len(CONTENT)))]
            if self.mode == "empty-name":
                names.append((b"", _attrs(_DIR, 4096)))
            self.send(104, struct.pack(">II", request, len(names)) + b"".join(
                _string(n) + _string(n) + a for n, a in names))
        elif kind == 4:  # CLOSE
            self.listed.discard(argument)
            self.listed_count.pop(argument, None)
            self.status(request, 0)
        elif kind == 8:  # FSTAT
            self.send(105, struct.pack(">I", request) + _attrs(_FILE, len(CONTENT)))
        elif kind == 5:  # READ
            offset, count = struct.unpack_from(">QI", body, 8 + len(argument))
            data = CONTENT[offset:offset + count]
            if self.mode == "stalled":
                return
            if self.mode == "hangup" and offset > 0:
                os._exit(0)
            if self.mode == "trickled":
                self.trickle(103, struct.pack(">I", request) + _string(data))
                return
            if self.mode == "long-read" and offset == 0:
                data = CONTENT[:count + 100]
            if self.mode in ("past-eof", "sizeless") and offset >= len(CONTENT):
                data = b"\xee" * count
            reply = struct.pack(">I", request) + _string(data)
            if not data:
                self.status(request, 1)
            elif self.mode == "reordered":
                self.held.append(reply)
                if not select.select([self.inp], [], [], 0.2)[0]:
                    for held in reversed(self.held):
                        self.send(103, held)
                    self.held.clear()
            else:
                self.send(103, reply)
        else:
            self.status(request, 8)  # unsupported


if __name__ == "__main__":
    _Server(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer).serve()
