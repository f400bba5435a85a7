"""Reading folders and messages, read-only: EXAMINE (never SELECT) and FETCH BODY.PEEK[] (never
BODY[] or RFC822, which set \\Seen).

FETCH responses are parsed here from imapclient's tokens rather than by ``IMAPClient.fetch``:
its parser turns INTERNALDATE into a datetime (dropping the time-zone offset by default), and
the record keeps the date exactly as the server wrote it.
"""

from __future__ import annotations

import datetime as dt
import io
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from evidencekit.rawreader import RawReader
from evidencekit.sources.mail.account import MailError

BATCH_BYTES = 8 << 20  # messages fetched in one command: at most this much (or one message)
BATCH_COUNT = 500
SIZES_BATCH = 2000  # UIDs per command when only sizes are asked
LARGEST_MESSAGE = 256 << 20  # a message announced larger is recorded, not fetched (memory)
ANSWER_LIMIT = 64 << 20  # bytes of the answer to any command but a FETCH of messages
_ANSWER_SLACK = 1 << 20  # a FETCH answer's own lines beyond the messages' bytes...
_PER_MESSAGE = 64 << 10  # ... and each message's attributes (flags, Gmail labels)
_GREETING_LIMIT = 1 << 20  # the server's greeting, read as the connection is made
# Time, as bytes: an answer may take ANSWER_GRACE seconds of waiting (a server searching a large
# mailbox says nothing meanwhile; the socket's own read timeout is as long), and one second
# more for every ANSWER_MIN_RATE bytes it has sent so far. A server sending one byte each time
# the read timeout is about to end kept a capture waiting for days (bounded in memory, not in
# time); now the answer to one command lasts at most ANSWER_GRACE + its byte limit at the
# slowest rate. Only the time spent waiting for the server counts, not the capture's own work
# between sending a FETCH and reading its answer.
ANSWER_GRACE = 300.0
ANSWER_MIN_RATE = 4096  # bytes a second: 32 kbit/s, slower than any line still in use


@dataclass
class Folder:
    """A folder as LISTed, EXAMINEd and SEARCHed."""

    name: str  # decoded from modified UTF-7
    name_utf7: str  # as the server names it
    delimiter: str | None
    flags: list[str]
    uidvalidity: int = 0
    uidnext: int | None = None
    exists: int = 0
    highestmodseq: int | None = None
    uids: list[int] = field(default_factory=list)  # matched by the search, ascending
    sizes: dict[int, int] = field(default_factory=dict)  # RFC822.SIZE of each
    unnamed: str | None = None  # why its name could not be read, when it could not: not opened


@dataclass
class Message:
    """One message's attributes (from a FETCH), and its bytes when they were asked for."""

    uid: int
    internaldate: str | None = None  # exactly as served, e.g. "07-Dec-2026 05:00:00 +0100"
    flags: list[str] = field(default_factory=list)
    rfc822_size: int | None = None
    modseq: int | None = None
    gmail: dict[str, Any] | None = None
    body: bytes | None = None


class AnswerTooLarge(MailError):
    """The server sent more in answer to one command than it may (see :class:`AnswerLimit`);
    the connection is no longer usable (the rest of the answer was not read)."""


class AnswerTooSlow(MailError):
    """The server's answer to one command came more slowly than :data:`ANSWER_MIN_RATE` after
    :data:`ANSWER_GRACE` (see :class:`AnswerLimit`); the connection is no longer usable."""


class AnswerLimit:
    """How many bytes the server may send in answer to one command, counted as imaplib reads
    them. imaplib keeps a whole answer in memory until its tagged end and reads a literal of
    whatever size the server announces in one piece: a hostile server answering a FETCH with
    ``{3221225472}`` made the capture hold 3 GiB, and one answering with FETCH responses
    without end filled memory (9 GiB in 25 s) until the system killed it; a greeting holding a
    literal was read whole before the certificate's pin was even looked at (400 MiB held in
    the test). imaplib's class is made to count (:func:`bounded`) from the connection's first
    byte; each command sent gets ANSWER_LIMIT, or what :meth:`expect` said before it (a FETCH
    of messages: their announced sizes); the greeting gets _GREETING_LIMIT."""

    def __init__(self) -> None:
        self._limit = self._left = _GREETING_LIMIT
        self._next: int | None = None
        self.received = 0  # bytes of the current answer received from the socket
        self.waited = 0.0  # seconds spent waiting for them

    def time_left(self) -> float:
        """Seconds the server may still take before its next bytes (see ANSWER_GRACE)."""
        return ANSWER_GRACE + self.received / ANSWER_MIN_RATE - self.waited

    def too_slow(self) -> AnswerTooSlow:
        return AnswerTooSlow(
            f"the server sent {self.received:,} bytes in {self.waited:,.0f} s of waiting (in "
            f"its greeting, or in answer to one command): slower than {ANSWER_MIN_RATE:,} "
            f"bytes a second after {ANSWER_GRACE:g} s; it was not waited for further")

    @classmethod
    def of(cls, client: Any) -> AnswerLimit:
        return cls.of_imap(client._imap)

    @classmethod
    def of_imap(cls, imap: Any) -> AnswerLimit:
        found = imap.__dict__.get("_evidencekit_limit")
        if not isinstance(found, AnswerLimit):
            found = imap.__dict__["_evidencekit_limit"] = cls()
        return found

    def expect(self, limit: int) -> None:
        """The answer to the next command sent may hold *limit* bytes."""
        self._next = limit

    def sending(self) -> None:
        self._limit = self._left = ANSWER_LIMIT if self._next is None else self._next
        self._next = None
        self.received, self.waited = 0, 0.0

    def spend(self, count: int) -> None:
        self._left -= count
        if self._left < 0:
            raise AnswerTooLarge(f"the server sent more than {self._limit:,} bytes at once (in "
                                 "its greeting, or in answer to one command: more than the "
                                 "messages asked for hold, or without end); it was not read "
                                 "further")


class _TimedSocket(RawReader):
    """The socket as imaplib reads it, each wait bounded by the answer's time left
    (:meth:`AnswerLimit.time_left`): imaplib reads a literal, or a line, in one call that
    waits as long as bytes keep coming, however slowly."""

    def __init__(self, sock: socket.socket, limit: AnswerLimit) -> None:
        super().__init__()
        self._sock = sock
        self._limit = limit

    def readinto(self, buffer: Any) -> int:
        limit = self._limit
        left = limit.time_left()
        if left <= 0:
            raise limit.too_slow()
        timeout = self._sock.gettimeout()  # the connection's own (imapclient sets it later)
        bounded_by_limit = timeout is None or left < timeout
        self._sock.settimeout(left if bounded_by_limit else timeout)
        started = time.monotonic()
        try:
            count = self._sock.recv_into(buffer)
        except TimeoutError:
            limit.waited += time.monotonic() - started
            if bounded_by_limit:
                raise limit.too_slow() from None
            raise
        finally:
            self._sock.settimeout(timeout)
        limit.waited += time.monotonic() - started
        limit.received += count
        return count


def _timed_file(imap: Any) -> None:
    """imaplib's file over its socket, replaced by one read through :class:`_TimedSocket`
    before anything is read from it (imaplib makes a new one after STARTTLS)."""
    if not isinstance(getattr(imap.file, "raw", None), _TimedSocket):
        made, imap.file = imap.file, io.BufferedReader(
            _TimedSocket(imap.sock, AnswerLimit.of_imap(imap)))
        if made is not None:
            made.close()  # nothing read from it yet; the socket stays open


_BOUNDED: dict[type, type] = {}


def bounded(base: type) -> type:
    """*base* (an imaplib.IMAP4 class) whose reads are counted by its AnswerLimit: a literal
    before it is read (it is read in one piece), a line once read; and timed (_TimedSocket)."""

    def read(self: Any, size: int) -> bytes:
        AnswerLimit.of_imap(self).spend(size)
        _timed_file(self)
        return bytes(base.read(self, size))  # type: ignore[attr-defined]

    def readline(self: Any) -> bytes:
        _timed_file(self)
        line = bytes(base.readline(self))  # type: ignore[attr-defined]
        AnswerLimit.of_imap(self).spend(len(line))
        return line

    def send(self: Any, data: bytes) -> None:
        AnswerLimit.of_imap(self).sending()
        base.send(self, data)  # type: ignore[attr-defined]

    if base not in _BOUNDED:
        _BOUNDED[base] = type(f"Bounded{base.__name__}", (base,),
                              {"read": read, "readline": readline, "send": send})
    return _BOUNDED[base]


def fetch_limit(uids: Sequence[int], sizes: dict[int, int]) -> int:
    """What an answer to a FETCH of *uids* with their bytes may hold: twice their announced
    sizes (LARGEST_MESSAGE for one not announced; some servers, Exchange among them, announce
    an estimate: a message converted to MIME as it is sent may come out larger), with room
    for the answer's own lines."""
    announced = sum(min(sizes.get(uid, LARGEST_MESSAGE), LARGEST_MESSAGE) for uid in uids)
    return 2 * announced + _ANSWER_SLACK + _PER_MESSAGE * len(uids)


def list_folders(client: Any) -> list[Folder]:
    """The folders as LISTed, INBOX first. One whose name is not modified UTF-7 (a raw
    ``Q&A``) is listed too, its ``unnamed`` saying why it is not opened: imapclient's own
    decoding raised on it and stopped the whole capture."""
    encoding = client.folder_encode
    client.folder_encode = False  # names as sent: decoded here, one by one
    try:
        listed = client.list_folders()
    finally:
        client.folder_encode = encoding
    found = [_listed_folder(name, _text(delimiter) if delimiter else None,
                            [_text(f) for f in flags]) for flags, delimiter, name in listed]
    return sorted(found, key=lambda f: (f.name.upper() != "INBOX", f.name))


def _listed_folder(name: Any, delimiter: str | None, flags: list[str]) -> Folder:
    from imapclient import imap_utf7

    if isinstance(name, str):  # a number, as imapclient gives it
        name = name.encode("ascii")
    try:
        decoded = imap_utf7.decode(name)
    except UnicodeError:
        # kept as sent, escaped (a byte past ASCII as \xNN): not named back to the server,
        # whose name for it is unclear; listed so that an investigator knows it exists
        raw = name.decode("ascii", "backslashreplace")
        return Folder(raw, raw, delimiter, flags, unnamed=(
            f"its name as the server sent it, {raw!r}, is not valid modified UTF-7 (RFC 3501 "
            "§5.1.3, the way IMAP writes folder names): it was not opened; save it with a mail "
            "program"))
    return Folder(decoded, _text(imap_utf7.encode(decoded)), delimiter, flags)


def selectable(folder: Folder) -> bool:
    return not {f.lower() for f in folder.flags} & {"\\noselect", "\\nonexistent"}


def examine(client: Any, folder: Folder) -> None:
    """EXAMINE *folder* (read-only) and fill in its numbers; MailError if the server says the
    folder is open for writing after all."""
    info = client.select_folder(folder.name, readonly=True)
    if info.get(b"READ-WRITE"):
        raise MailError(f"the server opened the folder {folder.name!r} for writing although it "
                        "was asked to open it read-only (EXAMINE); stopped so that nothing changes")
    folder.uidvalidity = int(info.get(b"UIDVALIDITY", 0))
    folder.uidnext = _int(info.get(b"UIDNEXT"))
    folder.exists = int(info.get(b"EXISTS", 0))
    folder.highestmodseq = _int(info.get(b"HIGHESTMODSEQ"))


def search(client: Any, criteria: str) -> list[int]:
    charset = None if criteria.isascii() else "UTF-8"
    return sorted(int(uid) for uid in client.search(criteria, charset))


def fetch_sizes(client: Any, uids: Sequence[int]) -> dict[int, int]:
    sizes: dict[int, int] = {}
    for start in range(0, len(uids), SIZES_BATCH):
        for message in fetch(client, uids[start:start + SIZES_BATCH], ["RFC822.SIZE"]):
            if message.rfc822_size is not None:
                sizes[message.uid] = message.rfc822_size
    return sizes


def batches(uids: Sequence[int], sizes: dict[int, int]) -> Iterator[list[int]]:
    """*uids* in groups of at most BATCH_BYTES (by their announced sizes) or BATCH_COUNT."""
    batch: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if batch and (total + size > BATCH_BYTES or len(batch) >= BATCH_COUNT):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += size
    if batch:
        yield batch


def attributes(capabilities: Sequence[str]) -> list[str]:
    """What is asked of every message besides its bytes, by what the server offers."""
    wanted = ["UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE"]
    offered = {c.upper() for c in capabilities}
    if "CONDSTORE" in offered:
        wanted.append("MODSEQ")
    if "X-GM-EXT-1" in offered:
        wanted += ["X-GM-MSGID", "X-GM-THRID", "X-GM-LABELS"]
    return wanted


@dataclass(frozen=True)
class Asked:
    """A UID FETCH sent and not yet answered (see :func:`ask`)."""

    tag: Any
    uids: tuple[int, ...]


def fetch(client: Any, uids: Sequence[int], items: Sequence[str]) -> list[Message]:
    """UID FETCH *items* of *uids*; the messages the server answered for, in UID order."""
    return answer(client, ask(client, uids, items))


def ask(client: Any, uids: Sequence[int], items: Sequence[str],
        limit: int | None = None) -> Asked | None:
    """Send UID FETCH *items* of *uids* without waiting for the answer, so that the server
    prepares it while the previous one is dealt with; None when there is nothing to ask.
    :func:`answer` must read it before any other command is sent. Its answer may hold
    *limit* bytes (ANSWER_LIMIT if None: AnswerLimit)."""
    if not uids:
        return None
    if limit is not None:
        AnswerLimit.of(client).expect(limit)
    tag = client._imap._command("UID", "FETCH", uid_set(uids), "(" + " ".join(items) + ")")
    return Asked(tag, tuple(uids))


def answer(client: Any, asked: Asked | None) -> list[Message]:
    """The server's answer to *asked*: the messages it answered for, in UID order."""
    from imapclient.response_parser import gen_parsed_response

    if asked is None:
        return []
    imap = client._imap
    kind, data = imap._command_complete("FETCH", asked.tag)
    if kind != "OK":
        raise MailError(f"the server refused to send messages: {_text(data[0] if data else '')}")
    kind, data = imap._untagged_response(kind, data, "FETCH")
    found: dict[int, Message] = {}
    if data == [None]:
        return []
    tokens = gen_parsed_response(data)
    for _sequence in tokens:
        values = next(tokens)
        if not isinstance(values, tuple) or len(values) % 2:
            raise MailError(f"the server's answer to FETCH could not be read: {values!r:.200}")
        message = message_from_fetch(values)
        if message is not None:  # an unsolicited FETCH without UID (flags of another message)
            found.setdefault(message.uid, message).__dict__.update(
                {k: v for k, v in message.__dict__.items() if v is not None and k != "uid"})
    wanted = set(asked.uids)
    return [found[uid] for uid in sorted(found) if uid in wanted]


def message_from_fetch(values: tuple[Any, ...]) -> Message | None:
    fields = {_text(values[i]).upper(): values[i + 1] for i in range(0, len(values), 2)}
    if "UID" not in fields:
        return None
    message = Message(int(fields["UID"]))
    if "INTERNALDATE" in fields and fields["INTERNALDATE"] is not None:
        message.internaldate = _text(fields["INTERNALDATE"])
    if "FLAGS" in fields:
        message.flags = [_text(flag) for flag in fields["FLAGS"] or ()]
    message.rfc822_size = _int(fields.get("RFC822.SIZE"))
    if "MODSEQ" in fields:
        value = fields["MODSEQ"]
        message.modseq = _int(value[0] if isinstance(value, tuple) else value)
    if "X-GM-MSGID" in fields or "X-GM-THRID" in fields or "X-GM-LABELS" in fields:
        message.gmail = {"msgid": _text(fields.get("X-GM-MSGID", "")),
                         "thrid": _text(fields.get("X-GM-THRID", "")),
                         "labels": [_label(label) for label in fields.get("X-GM-LABELS") or ()]}
    body = fields.get("BODY[]")
    if isinstance(body, bytes):
        message.body = body
    return message


def uid_set(uids: Sequence[int]) -> str:
    """An IMAP sequence set, runs of consecutive UIDs as ``first:last`` (a short command)."""
    ordered = sorted(set(uids))
    runs: list[str] = []
    start = previous = ordered[0]
    for uid in [*ordered[1:], None]:
        if uid is not None and uid == previous + 1:
            previous = uid
            continue
        runs.append(str(start) if start == previous else f"{start}:{previous}")
        if uid is not None:
            start = previous = uid
    return ",".join(runs)


_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def internaldate_rfc3339(text: str) -> str | None:
    """``"07-Dec-2026 05:00:00 +0100"`` as ``"2026-12-07T05:00:00+01:00"``; None if malformed."""
    try:
        day, month, rest = text.strip().split("-", 2)
        year, clock, zone = rest.split(" ")
        hour, minute, second = (int(part) for part in clock.split(":"))
        sign = 1 if zone[0] == "+" else -1 if zone[0] == "-" else 0
        offset = dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])) * sign
        if not sign or len(zone) != 5:
            return None
        moment = dt.datetime(int(year), _MONTHS[month.capitalize()], int(day), hour, minute,
                             second, tzinfo=dt.timezone(offset))
    except (ValueError, KeyError, IndexError):
        return None
    return moment.isoformat()


def _label(value: Any) -> str:
    from imapclient import imap_utf7

    if isinstance(value, bytes):
        try:
            return str(imap_utf7.decode(value))
        except (ValueError, UnicodeError):
            return _text(value)
    return str(value)


def _int(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)
