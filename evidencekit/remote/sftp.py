"""A read-only SFTP client (protocol version 3, draft-ietf-secsh-filexfer-02) over the system's
``ssh -s HOST sftp``, for hosts without evidencekit (capture --remote falls back to it).

Only what reading evidence needs: LSTAT, OPENDIR/READDIR, READLINK, OPEN for reading, READ
(several requests in flight, so that a file comes at the link's speed), FSTAT, CLOSE. Nothing
that writes or changes anything on the server is ever sent.

The server may be the compromised host's: an answer to a READ longer than asked is refused (it
would shift every byte after it), data past the size the file had when listed is noted (the file
grew, or the server lies) and never stored, and a server that stops answering is given up after
the stall timeout (SftpStalled: the whole capture ends, nothing kept): each answer must arrive
whole within it, so that one trickled a byte at a time is not waited for without end; and the
whole session must end by the deadline given (``--remote-timeout``).
"""

from __future__ import annotations

import contextlib
import signal
import struct
import subprocess
from collections import deque
from dataclasses import dataclass
from typing import IO

from evidencekit.errors import RemoteError
from evidencekit.remote import protocol
from evidencekit.remote.ssh import signal_all
from evidencekit.text import exact_size

_INIT, _VERSION = 1, 2
_OPEN, _CLOSE, _READ, _LSTAT, _FSTAT = 3, 4, 5, 7, 8
_OPENDIR, _READDIR, _READLINK = 11, 12, 19
_STATUS, _HANDLE, _DATA, _NAME, _ATTRS = 101, 102, 103, 104, 105
_READ_FLAG = 0x1
_SIZE, _UIDGID, _PERMISSIONS, _ACMODTIME, _EXTENDED = 0x1, 0x2, 0x4, 0x8, 0x80000000
_EOF = 1
_NO_SUCH_FILE, _PERMISSION_DENIED = 2, 3
_CHUNK = 64 << 10  # bytes per READ (servers serve at least 32 KiB; OpenSSH 256 KiB)
_IN_FLIGHT = 32  # READ requests outstanding at once
_LARGEST_PACKET = 1 << 20
# Entries one folder may list: a server that lists without end (never EOF) would fill this
# process's memory; no real folder comes near (ext4 and XFS folders of 10 million files are
# already unusable), and a folder cut there is recorded, not read further.
MOST_ENTRIES = 10_000_000
# ... and bytes of names: the count alone let names of up to a packet each (1 MiB) fill memory.
# Ten million names of 107 bytes reach it; real names average far less.
MOST_NAME_BYTES = 1 << 30


class SftpError(OSError):
    """A request the server refused (its status code and message) or a broken session."""


class SftpSessionOver(RemoteError):
    """The session cannot go on: the capture ends there, nothing kept (not an OSError, which
    is one file's read error: recorded, and the walk goes on with the next)."""


class SftpStalled(SftpSessionOver):
    """The SFTP server stopped answering (an OSError would let the next request wait as long
    again)."""


class SftpEnded(SftpSessionOver):
    """The session ended under the capture (the connection closed, the server stopped):
    every request after it would fail too, and as file read errors they made a bundle that
    looked valid, exit 3, with the rest of the file being read stored as zeros and every file
    after it recorded as unreadable."""


def _refused(what: str) -> SftpError:
    error = SftpError(what)
    error.strerror = what
    return error


@dataclass(frozen=True, slots=True)
class Attrs:
    """What SFTP v3 says about a file: no ctime, no inode, no extended attributes, times in
    whole seconds."""

    size: int | None
    uid: int | None
    gid: int | None
    mode: int | None
    atime: int | None
    mtime: int | None

    def to_json(self) -> dict[str, int | str | None]:
        return {"size": self.size, "uid": self.uid, "gid": self.gid,
                "mode": None if self.mode is None else f"{self.mode:o}",
                "atime": self.atime, "mtime": self.mtime}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def _take(self, count: int) -> bytes:
        """The next *count* bytes; a server's answer cut short is an SftpError (struct.error
        or IndexError would reach the CLI as an internal error)."""
        if self.at + count > len(self.data):
            raise SftpError("a truncated SFTP packet")
        self.at += count
        return self.data[self.at - count:self.at]

    def u8(self) -> int:
        return self._take(1)[0]

    def u32(self) -> int:
        value: int = struct.unpack(">I", self._take(4))[0]
        return value

    def u64(self) -> int:
        value: int = struct.unpack(">Q", self._take(8))[0]
        return value

    def string(self) -> bytes:
        return self._take(self.u32())

    def attrs(self) -> Attrs:
        flags = self.u32()
        size = self.u64() if flags & _SIZE else None
        uid, gid = (self.u32(), self.u32()) if flags & _UIDGID else (None, None)
        mode = self.u32() if flags & _PERMISSIONS else None
        atime, mtime = (self.u32(), self.u32()) if flags & _ACMODTIME else (None, None)
        if flags & _EXTENDED:
            for _ in range(self.u32()):
                self.string()
                self.string()
        return Attrs(size, uid, gid, mode, atime, mtime)


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


class SftpSession:
    """One SFTP session over *process* (``ssh … -s HOST sftp``), its pipes as given."""

    def __init__(self, process: subprocess.Popen[bytes], stall: float | None = None,
                 where: str = "the host", deadline: float | None = None) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        # an answer is never more than a packet and its length: it all comes within *stall*
        self._in = protocol.Incoming(process.stdout, stall, least=_LARGEST_PACKET + 5,
                                     deadline=deadline, too_slow="an answer comes whole")
        self._where = where
        self._out: IO[bytes] = process.stdin
        self._next_id = 0
        self._send(_INIT, struct.pack(">I", 3), with_id=False)
        kind, body = self._packet()
        if kind != _VERSION:
            raise SftpError("the server did not start an SFTP session")
        self.version = struct.unpack_from(">I", body)[0]

    # -- wire
    def _send(self, kind: int, body: bytes, with_id: bool = True) -> int:
        request = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        payload = bytes([kind]) + (struct.pack(">I", request) if with_id else b"") + body
        try:
            self._out.write(struct.pack(">I", len(payload)) + payload)
            self._out.flush()
        except (BrokenPipeError, ValueError):
            raise self._ended() from None
        return request

    def _exactly(self, count: int) -> bytes:
        try:
            return bytes(self._in.exactly(count))
        except protocol.TimedOut:
            raise SftpStalled(f"the SFTP session with {self._where} did not end within "
                              "--remote-timeout; the capture was ended and nothing was kept",
                              hint="run it again with a longer --remote-timeout, or naming "
                              "fewer paths") from None
        except protocol.Stalled as exc:
            raise SftpStalled(f"the SFTP server on {self._where} stopped answering ({exc}); "
                              "the capture was ended and nothing was kept",
                              hint="the host or the link may be stuck: run it again, or with "
                              "a longer --stall-timeout") from None
        except protocol.StreamBroken:
            raise self._ended() from None

    def _ended(self) -> SftpEnded:
        return SftpEnded(f"the SFTP session with {self._where} ended before the capture was "
                         "done (the connection was closed, or the server stopped); the capture "
                         "was ended and nothing was kept",
                         hint="run it again; if it ends again, check the network and the host")

    def _packet(self) -> tuple[int, bytes]:
        self._in.restart()  # the answer's time counts from when it is waited for
        (length,) = struct.unpack(">I", self._exactly(4))
        if not 1 <= length <= _LARGEST_PACKET:
            raise SftpError("a malformed SFTP packet")
        data = self._exactly(length)
        return data[0], data[1:]

    def _reply(self, request: int) -> tuple[int, _Reader]:
        kind, body = self._packet()
        reader = _Reader(body)
        if reader.u32() != request:
            raise SftpError("an SFTP answer out of order")
        return kind, reader

    def _expect(self, request: int, wanted: int, what: str) -> _Reader:
        kind, reader = self._reply(request)
        if kind == wanted:
            return reader
        if kind == _STATUS:
            raise _status_error(reader, what)
        raise SftpError(f"{what}: an unexpected SFTP answer ({kind})")

    # -- requests
    def lstat(self, path: bytes) -> Attrs:
        return self._expect(self._send(_LSTAT, _string(path)), _ATTRS, _text(path)).attrs()

    def readlink(self, path: bytes) -> bytes:
        reader = self._expect(self._send(_READLINK, _string(path)), _NAME, _text(path))
        reader.u32()
        return reader.string()

    def listdir(self, path: bytes, most_entries: int | None = None,
                most_bytes: int | None = None) -> list[tuple[bytes, Attrs]]:
        """What the folder *path* holds, in name order; SftpError past *most_entries* entries
        (MOST_ENTRIES by default) or *most_bytes* bytes of paths (MOST_NAME_BYTES of names
        by default; each counted as ``path/name``), as soon as it is passed (the caller's
        budget: evidencekit.sources.remote_logical)."""
        most_entries = MOST_ENTRIES if most_entries is None else min(most_entries, MOST_ENTRIES)
        prefix = 0 if most_bytes is None else len(path.rstrip(b"/")) + 1
        most_bytes = MOST_NAME_BYTES if most_bytes is None else most_bytes
        handle = self._expect(self._send(_OPENDIR, _string(path)), _HANDLE,
                              _text(path)).string()
        found: list[tuple[bytes, Attrs]] = []
        name_bytes = 0
        try:
            while True:
                kind, reader = self._reply(self._send(_READDIR, _string(handle)))
                if kind == _STATUS:
                    code = reader.u32()
                    if code == _EOF:
                        break
                    reader.at -= 4
                    raise _status_error(reader, _text(path))
                if kind != _NAME:
                    raise SftpError(f"{_text(path)}: an unexpected SFTP answer ({kind})")
                for _ in range(reader.u32()):
                    name = reader.string()
                    reader.string()  # the ls -l line, not a specified format
                    attrs = reader.attrs()
                    if name not in (b".", b".."):
                        found.append((name, attrs))
                        name_bytes += prefix + len(name)
                if len(found) > most_entries:
                    raise _refused(f"the server listed more than {most_entries:,} entries in "
                                   "it; not listed further")
                if name_bytes > most_bytes:
                    what = "of paths" if prefix else "of names"
                    raise _refused(f"the server listed more than {exact_size(most_bytes)} "
                                   f"{what} in it; not listed further")
        finally:
            self._close(handle)
        return sorted(found)

    def open(self, path: bytes, size: int | None = None) -> RemoteFile:
        """*path* open for reading; *size*, what it was listed with, is what data past is
        noted against (RemoteFile.past_size)."""
        body = _string(path) + struct.pack(">II", _READ_FLAG, 0)
        handle = self._expect(self._send(_OPEN, body), _HANDLE, _text(path)).string()
        return RemoteFile(self, handle, path, size)

    def _close(self, handle: bytes) -> None:
        kind, _reader = self._reply(self._send(_CLOSE, _string(handle)))
        if kind != _STATUS:
            raise SftpError("an unexpected answer to CLOSE")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._out.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            signal_all(self.process, signal.SIGKILL)
            self.process.wait()


class RemoteFile:
    """A file open for reading, read in order with several READs in flight."""

    def __init__(self, session: SftpSession, handle: bytes, path: bytes,
                 size: int | None = None) -> None:
        self._session = session
        self._handle = handle
        self._path = path
        self._size = size
        self._pending: deque[tuple[int, int]] = deque()  # (request, offset) of READs sent
        self._offset = 0  # of the next READ to send
        self._eof = False
        self.past_size = False  # data came past *size* (the file grew, or the server lies)

    def _fill(self) -> None:
        while not self._eof and len(self._pending) < _IN_FLIGHT:
            body = _string(self._handle) + struct.pack(">QI", self._offset, _CHUNK)
            self._pending.append((self._session._send(_READ, body), self._offset))
            self._offset += _CHUNK

    def read(self) -> bytes:
        """The next bytes in order; b"" at the end."""
        self._fill()
        while self._pending:
            request, offset = self._pending.popleft()
            kind, reader = self._session._reply(request)
            if kind == _DATA:
                data = self._data(reader, offset)
                if len(data) < _CHUNK:  # a short read: ask again from where it stopped
                    self._drain(errors_count=True)  # those sent asked for the wrong offsets
                    self._offset = offset + len(data)
                return data
            if kind == _STATUS and reader.u32() == _EOF:
                self._eof = True
                continue
            reader.at -= 4
            raise _status_error(reader, _text(self._path))
        return b""

    def _data(self, reader: _Reader, offset: int) -> bytes:
        data = reader.string()
        if len(data) > _CHUNK:
            raise _refused(f"the SFTP server answered a READ of {_CHUNK} bytes at byte {offset} "
                           f"with {len(data)} bytes; not read further")
        if self._size is not None and offset + len(data) > self._size:
            self.past_size = True
        return data

    def fstat(self) -> Attrs:
        self._drain()
        return self._session._expect(self._session._send(_FSTAT, _string(self._handle)),
                                     _ATTRS, _text(self._path)).attrs()

    def _drain(self, errors_count: bool = False) -> None:
        """The answers to the READs still in flight, all read (the session stays in step) and
        dropped, their data not asked for after all: data past the size listed is noted, an
        answer longer than asked refused, and with *errors_count* a refusal too (at the end,
        reads past the end may be refused as a server likes)."""
        problem: SftpError | None = None
        while self._pending:
            request, offset = self._pending.popleft()
            kind, reader = self._session._reply(request)
            try:
                if kind == _DATA:
                    self._data(reader, offset)
                elif kind == _STATUS and reader.u32() != _EOF and errors_count:
                    reader.at -= 4
                    raise _status_error(reader, _text(self._path))
            except SftpError as exc:
                problem = problem or exc
        if problem is not None:
            raise problem

    def close(self) -> None:
        self._drain()
        self._session._close(self._handle)


def _status_error(reader: _Reader, what: str) -> SftpError:
    code = reader.u32()
    message = reader.string().decode("utf-8", "replace") if reader.at < len(reader.data) \
        else ""
    text = {_NO_SUCH_FILE: "no such file or folder",
            _PERMISSION_DENIED: "permission denied"}.get(code, message or f"SFTP status {code}")
    error = SftpError(f"{what}: {text}")
    error.errno = {_NO_SUCH_FILE: 2, _PERMISSION_DENIED: 13}.get(code)
    error.strerror = text
    return error


def _text(path: bytes) -> str:
    return path.decode("utf-8", "backslashreplace")
