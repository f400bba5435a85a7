"""Messages an interrupted capture already fetched, kept encrypted on this machine
(docs/decisions/mail-resume.md).

A bundle is written in one pass and published only whole, so an interrupted capture leaves no
bundle. What it had fetched is not lost: each message is also appended, as it arrives, to a
state file of its folder, and the next run of a capture of the same account reads it from there
instead of asking the server again. A message is immutable on the server for a given folder,
UIDVALIDITY and UID (RFC 9051 §2.3.1.1), so only its bytes are kept: its flags and other
attributes are always fetched afresh.

Where: ``$XDG_STATE_HOME/evidencekit/mail-resume/<account>/`` (``~/.local/state`` by default),
one file per folder and UIDVALIDITY. What: records ``length ‖ nonce ‖ ChaCha20-Poly1305(uid ‖
fetched ‖ bytes)``, the folder and UIDVALIDITY as associated data (a record cannot be moved to
another file). The key is derived from the capturing person's private signing key (HKDF-SHA256,
the account in its info): only the same person, with the same key, can resume; nothing secret
is stored beside the messages. A record that is cut short (a crash) or does not authenticate
ends what is read of the file, and what follows it is fetched again. The folder is removed once
the bundle is published (:meth:`ResumeState.discard`).

One capture of an account at a time: :meth:`ResumeState.lock` holds an exclusive lock (flock)
on ``<account>.lock`` beside the account's folder for the whole run, and a second capture of the
same account on this machine stops at once with :class:`StateBusy`. Two runs appending to the
same files would each keep its own idea of where the file ends, and write over each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import struct
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from evidencekit.fs.replace import still_names
from evidencekit.sources.mail.account import Account, MailError

_INFO = b"evidencekit mail resume state v1\x00"
_HEAD = struct.Struct(">I")  # length of nonce + sealed record
_PLAIN = struct.Struct(">IQ")  # uid, fetched (ns since the epoch)
_NONCE = 12
_MAX_RECORD = 1 << 31


def state_root() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return Path(base) / "evidencekit" / "mail-resume"


def derive_key(private_seed: bytes, account: Account) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=_INFO + account.name.encode("utf-8")).derive(private_seed)


class StateBusy(MailError):
    """Another capture of the same account is running on this machine (exit code 2)."""


class ResumeState:
    """The state of one account: a folder of per-folder files."""

    def __init__(self, account: Account, key: bytes, root: Path | None = None) -> None:
        label = hashlib.sha256(account.name.encode("utf-8")).hexdigest()[:32]  # any port
        self.folder = (root or state_root()) / label
        self._lock_path = self.folder.with_name(f"{label}.lock")
        self._account = account.name
        self._cipher = ChaCha20Poly1305(key)
        self._open: list[FolderState] = []
        self._lock: int | None = None

    def lock(self) -> None:
        """Hold the account's lock until :meth:`discard` or the end of the process; StateBusy
        if another capture holds it. A run that ended (even killed) has let go of it: the
        kernel releases a flock with the process."""
        if self._lock is not None:
            return
        self.folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        while True:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise StateBusy(
                    f"another capture of the mailbox {self._account} is running on this "
                    "computer; two at once would spoil what each keeps for resuming",
                    hint="wait until it has finished (or stop it), then run this again: the "
                    "messages it fetched are not fetched again") from None
            # The run before may have removed the file between our open and our lock
            # (discard): then lock the file that the name names now.
            if still_names(self._lock_path, fd):
                self._lock = fd
                return
            os.close(fd)

    def folder_state(self, folder_utf7: str, uidvalidity: int) -> FolderState:
        name = hashlib.sha256(folder_utf7.encode("utf-8")).hexdigest()[:32]
        state = FolderState(self.folder / f"{name}-{uidvalidity}.state", self._cipher,
                            f"{folder_utf7}\x00{uidvalidity}".encode())
        self._open.append(state)
        return state

    def close(self) -> None:
        for state in self._open:
            state.close()
        self._open.clear()

    def discard(self) -> None:
        """Forget everything kept: the bundle now holds it (and let go of the lock)."""
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        if self._lock is not None:
            with contextlib.suppress(FileNotFoundError):
                self._lock_path.unlink()  # while locked: a run that opened it opens anew
            os.close(self._lock)
            self._lock = None


class FolderState:
    """The messages of one folder (one UIDVALIDITY) fetched so far."""

    def __init__(self, path: Path, cipher: ChaCha20Poly1305, label: bytes) -> None:
        self._path = path
        self._cipher = cipher
        self._label = label
        self._where: dict[int, tuple[int, int]] = {}  # uid -> (offset, length) of its record
        self._file: BinaryIO | None = None
        self._end = 0
        self._load()

    def __contains__(self, uid: int) -> bool:
        return uid in self._where

    def __len__(self) -> int:
        return len(self._where)

    def read(self, uid: int) -> tuple[bytes, int] | None:
        """The message's bytes and when they were fetched; None if its record does not read
        back (then it is fetched again)."""
        where = self._where.get(uid)
        if where is None or self._file is None:
            return None
        self._file.seek(where[0])
        record = self._open_record(self._file.read(where[1]))
        if record is None or record[0] != uid:
            del self._where[uid]
            return None
        return record[2], record[1]

    def add(self, uid: int, fetched_ns: int, body: bytes) -> None:
        if self._file is None:
            self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # 0600 whatever the umask, as every file evidencekit keeps (encrypted, but it
            # holds the mailbox's messages)
            self._file = open(self._path, "a+b", opener=_private)  # noqa: SIM115 (close())
            self._end = self._file.seek(0, os.SEEK_END)
        nonce = os.urandom(_NONCE)
        sealed = self._cipher.encrypt(nonce, _PLAIN.pack(uid, fetched_ns) + body, self._label)
        record = nonce + sealed
        self._file.seek(self._end)
        self._file.write(_HEAD.pack(len(record)) + record)
        self._where[uid] = (self._end + _HEAD.size, len(record))
        self._end += _HEAD.size + len(record)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _load(self) -> None:
        try:
            self._file = open(self._path, "r+b")  # noqa: SIM115 (closed by close())
        except FileNotFoundError:
            return
        size = os.fstat(self._file.fileno()).st_size
        offset = 0
        while offset + _HEAD.size <= size:
            (length,) = _HEAD.unpack(self._file.read(_HEAD.size))
            if not _NONCE < length < _MAX_RECORD or offset + _HEAD.size + length > size:
                break
            record = self._open_record(self._file.read(length))
            if record is None:
                break  # another key, or damage: what follows is fetched again
            self._where[record[0]] = (offset + _HEAD.size, length)
            offset += _HEAD.size + length
        self._file.truncate(offset)  # a record cut short by a crash is dropped
        self._end = offset

    def _open_record(self, record: bytes) -> tuple[int, int, bytes] | None:
        try:
            plain = self._cipher.decrypt(record[:_NONCE], record[_NONCE:], self._label)
        except (InvalidTag, ValueError):
            return None
        uid, fetched = _PLAIN.unpack_from(plain)
        return uid, fetched, plain[_PLAIN.size:]


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)
