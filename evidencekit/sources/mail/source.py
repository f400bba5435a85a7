"""A mailbox as a Source, its files flat in ``data/`` (docs/FORMAT.md §4.3):
``USER@HOST.server.json``, then for each IMAP folder ``USER@HOST.FOLDER.UID.eml`` (the message
exactly as served) and ``USER@HOST.FOLDER.UID.json`` (its record) for each message, and
``USER@HOST.FOLDER.folder.json`` (what was asked and found) after them. No folder of its own: a
folder in the bag is one captured from a file system, listed in manifest.json, and the
procedure by hand (§7.2) counts them.
``FOLDER`` is the folder's name with its hierarchy delimiter (and any ``/``) written ``∕``,
U+2215, as remote-logical writes a path: ``Reçu.Archiv`` (delimiter ``.``) is ``Reçu∕Archiv``.

:meth:`MailSource.connect` runs before the capture starts (so a wrong password or an untrusted
server stops everything before a bundle is begun): it connects, logs in, examines and searches
the folders and asks each message's size (for the progress bar and for fetching in batches of
bounded size). The messages themselves are fetched while the bundle is written, batch by batch:
at most three batches are held in memory at a time (one sealed, one waiting, one fetched).
"""

from __future__ import annotations

import contextlib
import hashlib
import imaplib
import queue
import ssl
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email import header as email_header
from typing import Any, TypeVar

from evidencekit import canonical
from evidencekit.clock import Clock, rfc3339, system_clock
from evidencekit.errors import UsageError
from evidencekit.sources.base import BytesContent, Skip, SourceRecord, StreamEntry
from evidencekit.sources.files.walk import Entry, escape_name, unique_name
from evidencekit.sources.mail import fetch as imap
from evidencekit.sources.mail.account import Account, BearerToken, Credential, MailError
from evidencekit.sources.mail.fetch import Folder, Message
from evidencekit.sources.mail.resume import FolderState, ResumeState
from evidencekit.sources.mail.server import Trust, log_in, open_connection, why_failed

KIND = "mail"
SERVER_DOCUMENT = "server.json"
FOLDER_DOCUMENT = "folder.json"
# The manifest's types of what this source stores, known without libmagic (1 ms a message)
MESSAGE_MIME = "message/rfc822"
JSON_MIME = "application/json"
_RECORD_ESTIMATE = 1024  # bytes of a message's JSON record, for the progress bar
_HEAD_LIMIT = 64 << 10  # bytes of a message read for its Date, From and Subject
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class _Prepared:
    """A message ready to be stored: its bytes, its record, its time in the payload tar."""

    uid: int
    body: bytes
    record: bytes  # canonical JSON
    when: int
    earlier: bool  # fetched by an earlier run


@dataclass(frozen=True)
class _NotFetched:
    """A message of a batch that was not fetched, and why (its entry's error: exit code 3)."""

    uid: int
    problem: str


_GONE = ("the message was no longer on the server when it was fetched (deleted or moved "
         "meanwhile)")


@dataclass(frozen=True)
class _Request:
    """A batch of UIDs: those an earlier run kept (bytes, when fetched) and the FETCH sent."""

    batch: list[int]
    kept: dict[int, tuple[bytes, int]]
    asked: imap.Asked | None


@dataclass(frozen=True)
class _Examined:
    when: int
    renumbered: bool  # UIDVALIDITY differs from when the folder was searched


@dataclass(frozen=True)
class Selection:
    """Which messages: some folders (by name) or all of them, since a date, matching a search."""

    folders: tuple[str, ...] = ()  # empty: every folder that can be opened
    since: str | None = None  # an IMAP date, e.g. 1-Nov-2026
    search: str | None = None  # IMAP SEARCH criteria, as typed

    def criteria(self) -> str:
        parts = ([f"SINCE {self.since}"] if self.since else []) + \
            ([f"({self.search})"] if self.search else [])
        return " ".join(parts) or "ALL"


class MailSource:
    """One IMAP account as a Source (kind ``mail``)."""

    def __init__(self, account: Account, credential: Credential, selection: Selection,
                 trust: Trust | None = None, resume: ResumeState | None = None,
                 clock: Clock = system_clock) -> None:
        self.account = account
        self._credential = credential
        self.selection = selection
        self._trust = trust or Trust()
        self._resume = resume
        self._clock = clock
        self._client: Any = None
        self._server: dict[str, Any] = {}
        self._capabilities: list[str] = []
        self.folders: list[Folder] = []
        self._listed: list[Folder] = []
        self._index = 0
        self._bag_name = escape_name(account.name.encode("utf-8"))
        self._flat: dict[str, str] = {}  # a folder's modified UTF-7 name: its FOLDER in names
        self.fetched = 0  # messages asked of the server in this run
        self.resumed = 0  # messages read from an earlier run's state

    # -------------------------------------------------------------------- before the capture
    def connect(self) -> None:
        """Connect, log in, choose, examine and search the folders, ask the messages' sizes."""
        self._client, self._server = open_connection(self.account, self._trust, self._clock)
        self._capabilities = log_in(self._client, self.account, self._credential)
        with self._connection_kept("listing the folders"):
            self._listed = imap.list_folders(self._client)
            self.folders = self._chosen(self._listed)
            for folder in self.folders:
                imap.examine(self._client, folder)
                if folder.exists:
                    folder.uids = imap.search(self._client, self.selection.criteria())
                    folder.sizes = imap.fetch_sizes(self._client, folder.uids)

    def _chosen(self, listed: list[Folder]) -> list[Folder]:
        if not self.selection.folders:
            return [folder for folder in listed if imap.selectable(folder) and not folder.unnamed]
        by_name = {folder.name: folder for folder in listed if not folder.unnamed}
        by_name.update({f.name.upper(): f for f in listed if f.name.upper() == "INBOX"})
        chosen, missing = [], []
        for name in self.selection.folders:
            found = by_name.get(name.upper() if name.upper() == "INBOX" else name)
            if found is None or not imap.selectable(found):
                missing.append(name)
            elif found not in chosen:
                chosen.append(found)
        if missing:
            self.close()
            names = ", ".join(repr(f.name) for f in listed if imap.selectable(f))
            raise UsageError(f"no folder {', '.join(map(repr, missing))} in this mailbox",
                             hint=f"its folders: {names}")
        return chosen

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):  # the connection may be gone already
                self._client.logout()
            self._client = None
        if self._resume is not None:
            self._resume.close()

    def finished(self) -> None:
        """The bundle holding every message is published: forget the resume state."""
        self.close()
        if self._resume is not None:
            self._resume.discard()

    @property
    def messages(self) -> int:
        return sum(len(folder.uids) for folder in self.folders)

    # -------------------------------------------------------------------- Source
    def place(self, first_index: int, taken: set[str]) -> None:
        """Take ``USER@HOST`` (else ``USER@HOST~1`` …) such that no name taken is it or starts
        with it and a dot: then every ``USER@HOST.…`` name of this source is free (the other
        sources' names are all taken before the mailbox's, which comes last). Its own names
        are unique by their shape: ``.server.json``, ``.FOLDER.folder.json`` and
        ``.FOLDER.UID.eml|json`` (UID digits) with FOLDER unique among its folders."""
        self._index = first_index
        base = escape_name(self.account.name.encode("utf-8"))
        candidate, number = base, 0
        while _clashes(candidate, taken):
            number += 1
            candidate = f"{base}~{number}"
        self._bag_name = candidate
        self._flat = flat_folder_names(self.folders, len(candidate.encode("utf-8")))
        taken.update([candidate, self._name(SERVER_DOCUMENT),
                      *(self._name(f"{flat}.{FOLDER_DOCUMENT}") for flat in self._flat.values())])

    def records(self) -> list[SourceRecord]:
        return [SourceRecord(self._index, self.account.given.encode("utf-8"),
                             self.account.url.encode("utf-8"), self._bag_name, kind=KIND,
                             details=self._details())]

    def _details(self) -> dict[str, Any]:
        """The source record's ``details`` (asked again once every entry is stored)."""
        return {"folders": len(self.folders), "messages": self.messages,
                "fetched": self.fetched, "from_earlier_run": self.resumed}

    def estimate(self, skip: Skip) -> tuple[int, int | None]:
        files = 1 + sum(1 + 2 * len(folder.uids) for folder in self.folders)
        size = sum(sum(folder.sizes.values()) + _RECORD_ESTIMATE * len(folder.uids)
                   for folder in self.folders)
        return files, size

    def entries(self, skip: Skip) -> Iterator[Entry | StreamEntry]:
        """The documents and messages, in order. The server is asked on a thread of its own,
        a batch ahead (background_fetching): while one batch is sealed, the next one travels."""
        if self._client is None:
            raise RuntimeError("MailSource.connect() must be called before the capture")
        if not self._flat:
            self._flat = flat_folder_names(self.folders, len(self._bag_name.encode("utf-8")))
        yield self._stream(SERVER_DOCUMENT, canonical.dumps(self._server_document()),
                           self._clock(), JSON_MIME, self._not_opened())
        directory, examined = "", 0
        summary: dict[str, Any] = {}
        for folder, news in in_background(self._fetching()):
            if isinstance(news, _Examined):
                directory = self._flat[folder.name_utf7]
                summary = {"failed": [], "stored": 0, "from_earlier_run": 0}
                examined = news.when
                if news.renumbered:
                    problem = ("the folder was renumbered on the server (its UIDVALIDITY changed) "
                               "while the capture ran; capture it again")
                    for uid in folder.uids:
                        summary["failed"].append({"uid": uid, "problem": problem})
                        yield self._failed(directory, folder, uid, problem)
            elif isinstance(news, list):
                yield from self._batch_entries(directory, folder, news, summary)
            else:
                yield self._document(f"{directory}.{FOLDER_DOCUMENT}",
                                     self._folder_document(folder, summary, examined), examined)
        self.close()

    # -------------------------------------------------------------------- the messages
    def _fetching(self) -> Iterator[tuple[Folder, _Examined | list[_Prepared | _NotFetched] | None]]:
        """All the server traffic of the capture, run on the fetching thread: for each folder,
        that it was examined, each batch of its messages, and None at its end."""
        for folder in self.folders:
            planned = folder.uidvalidity
            with self._connection_kept(f"opening the folder {folder.name!r}"):
                imap.examine(self._client, folder)
            renumbered = folder.uidvalidity != planned
            yield folder, _Examined(self._clock(), renumbered)
            if not renumbered:
                yield from self._folder_batches(folder)
            yield folder, None

    def _folder_batches(self, folder: Folder) -> Iterator[tuple[Folder, list[_Prepared | _NotFetched]]]:
        """The folder's messages batch by batch. The FETCH of the next batch is sent as soon
        as the answer to this one is read, before this one is hashed, kept and handed on: the
        server prepares it meanwhile instead of waiting for the next command."""
        state = None if self._resume is None else \
            self._resume.folder_state(folder.name_utf7, folder.uidvalidity)
        batches = list(imap.batches(folder.uids, folder.sizes))
        if not batches:
            return
        request: _Request | None = self._ask(folder, batches[0], state)
        for following in [*batches[1:], None]:
            assert request is not None  # asked at the end of the turn before
            fresh, known = self._answered(folder, request)
            current = request
            request = None if following is None else self._ask(folder, following, state)
            yield folder, self._fetched(folder, current, fresh, known, state)

    def _batch_entries(self, directory: str, folder: Folder, batch: list[_Prepared | _NotFetched],
                       summary: dict[str, Any]) -> Iterator[StreamEntry]:
        for item in batch:
            if isinstance(item, _NotFetched):
                summary["failed"].append({"uid": item.uid, "problem": item.problem})
                yield self._failed(directory, folder, item.uid, item.problem)
                continue
            summary["stored"] += 1
            summary["from_earlier_run"] += item.earlier
            name = f"{directory}.{item.uid}"
            yield self._stream(f"{name}.eml", item.body, item.when, MESSAGE_MIME)
            yield self._stream(f"{name}.json", item.record, item.when, JSON_MIME)

    def _ask(self, folder: Folder, batch: list[int], state: FolderState | None) -> _Request:
        """Read what an earlier run kept of *batch*, and send the FETCH of the rest (answered
        later: :meth:`_answered`)."""
        kept: dict[int, tuple[bytes, int]] = {}
        if state is not None:
            for uid in batch:
                if uid in state:
                    found = state.read(uid)
                    if found is not None:
                        kept[uid] = found
        items = imap.attributes(self._capabilities)
        wanted = [u for u in batch if u not in kept and not _too_large(folder, u)]
        with self._connection_kept(f"fetching messages of {folder.name!r}"):
            asked = imap.ask(self._client, wanted, [*items, "BODY.PEEK[]"],
                             limit=imap.fetch_limit(wanted, folder.sizes))
        return _Request(batch, kept, asked)

    def _answered(self, folder: Folder, request: _Request) -> tuple[list[Message], list[Message]]:
        """The messages fetched for *request*, and the attributes of those kept before."""
        items = imap.attributes(self._capabilities)
        with self._connection_kept(f"fetching messages of {folder.name!r}"):
            fresh = imap.answer(self._client, request.asked)
            known = imap.fetch(self._client, sorted(request.kept), items) if request.kept else []
        return fresh, known

    def _fetched(self, folder: Folder, request: _Request, fresh: list[Message],
                 known: list[Message], state: FolderState | None) -> list[_Prepared | _NotFetched]:
        """Each message of the batch with its record, or its UID alone if the server no longer
        has it; from an earlier run's state when it is there."""
        kept = request.kept
        now = self._clock()
        if state is not None:
            for message in fresh:
                if message.body is not None:
                    state.add(message.uid, now, message.body)
            state.flush()
        answered = {message.uid: message for message in [*fresh, *known]}
        self.fetched += len(fresh)
        result: list[_Prepared | _NotFetched] = []
        for uid in request.batch:
            reply = answered.get(uid)
            if uid in kept and reply is not None:
                reply.body, fetched = kept[uid]
                self.resumed += 1
                result.append(self._record(folder, reply, fetched, True))
            elif reply is not None and reply.body is not None:
                result.append(self._record(folder, reply, now, False))
            elif uid not in kept and _too_large(folder, uid):
                result.append(_NotFetched(uid, (
                    f"not fetched: the server announced {folder.sizes[uid]:,} bytes, more than "
                    f"evidencekit fetches in one message ({imap.LARGEST_MESSAGE:,}); save it "
                    "from a mail program")))
            else:
                result.append(_NotFetched(uid, _GONE))
        return result

    def _record(self, folder: Folder, message: Message, fetched: int, earlier: bool
                ) -> _Prepared:
        """The message's record (UID.json) and its time, made on the fetching thread (the
        hash and the headers there, beside the sealing of the batch before)."""
        assert message.body is not None
        body = message.body
        moment = imap.internaldate_rfc3339(message.internaldate or "")
        record = {
            "type": "evidencekit.mail.message",
            "folder": folder.name, "folder_utf7": folder.name_utf7,
            "uidvalidity": folder.uidvalidity, "uid": message.uid,
            "internaldate": message.internaldate,
            "internaldate_rfc3339": moment,
            "flags": message.flags, "rfc822_size": message.rfc822_size, "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(), "modseq": message.modseq,
            "gmail": message.gmail, "fetched": rfc3339(fetched), "from_earlier_run": earlier,
            "file": self._name(f"{self._flat[folder.name_utf7]}.{message.uid}.eml"),
            "headers": headers_of(body),
        }
        return _Prepared(message.uid, body, canonical.dumps(record), _seconds_ns(moment) or fetched,
                         earlier)

    def _failed(self, directory: str, folder: Folder, uid: int, problem: str) -> StreamEntry:
        path = self._name(f"{directory}.{uid}.eml")
        return StreamEntry(self._index, path.encode("utf-8"), f"data/{path}",
                           _Unfetched(problem), mtime_ns=self._clock())

    # -------------------------------------------------------------------- documents
    def _server_document(self) -> dict[str, Any]:
        return {
            "type": "evidencekit.mail.server",
            "account": {"url": self.account.url, "user": self.account.user,
                        "host": self.account.host, "port": self.account.port},
            "server": self._server,
            "capability": self._capabilities,
            "authentication": "xoauth2" if isinstance(self._credential, BearerToken)
            else "password",
            "folders_listed": [{"name": f.name, "name_utf7": f.name_utf7,
                                "delimiter": f.delimiter, "flags": f.flags,
                                **({"not_captured": f.unnamed} if f.unnamed else {})}
                               for f in self._listed],
            "selection": {"folders": list(self.selection.folders) or None,
                          "since": self.selection.since, "search": self.selection.search,
                          "criteria": self.selection.criteria()},
            "read_only": "EXAMINE and BODY.PEEK[] only: no flag was changed",
        }

    def _not_opened(self) -> str | None:
        """What server.json's entry says is missing: the folders that would have been captured
        but whose names could not be read (the capture is then incomplete, exit code 3)."""
        if self.selection.folders:
            return None  # not asked for: the folders named were
        missed = [f"the folder {f.name!r} was not captured: {f.unnamed}"
                  for f in self._listed if f.unnamed and imap.selectable(f)]
        return "; ".join(missed) or None

    def _folder_document(self, folder: Folder, summary: dict[str, Any], examined: int
                         ) -> dict[str, Any]:
        return {
            "type": "evidencekit.mail.folder",
            "folder": folder.name, "folder_utf7": folder.name_utf7,
            "delimiter": folder.delimiter, "flags": folder.flags,
            "uidvalidity": folder.uidvalidity, "uidnext": folder.uidnext,
            "exists": folder.exists, "highestmodseq": folder.highestmodseq,
            "examined": rfc3339(examined), "criteria": self.selection.criteria(),
            "matched": len(folder.uids), **summary,
        }

    def _document(self, relative: str, document: dict[str, Any], when: int) -> StreamEntry:
        return self._stream(relative, canonical.dumps(document), when, JSON_MIME)

    def _name(self, relative: str) -> str:
        """A file's name in data/: ``USER@HOST.`` and *relative*."""
        return f"{self._bag_name}.{relative}"

    def file_names(self, folder: Folder, uid: int | None = None) -> tuple[str, ...]:
        """The names in data/ of *folder*'s document, or of message *uid*'s .eml and .json."""
        flat = self._flat[folder.name_utf7]
        if uid is None:
            return (self._name(f"{flat}.{FOLDER_DOCUMENT}"),)
        return self._name(f"{flat}.{uid}.eml"), self._name(f"{flat}.{uid}.json")

    def _stream(self, relative: str, data: bytes, when: int, mime: str,
                missing: str | None = None) -> StreamEntry:
        path = self._name(relative)
        content = BytesContent(data) if missing is None else _Incomplete(data, missing)
        return StreamEntry(self._index, path.encode("utf-8"), f"data/{path}", content,
                           mtime_ns=when, mime=mime)

    def _connection_kept(self, doing: str) -> _ConnectionKept:
        return _ConnectionKept(self, doing)

    def lost(self, doing: str, exc: BaseException) -> MailError:
        return self._given_up(f"the connection to {self.account.host} was lost while {doing}: "
                              f"{why_failed(exc)}",
                              "run the same command again: it goes on from where it stopped")

    def unreadable(self, doing: str, exc: BaseException) -> MailError:
        """The server's answer broke the protocol (a number that is not one, an answer larger
        than what was asked holds): the connection is dropped, the capture stopped."""
        what = exc.message if isinstance(exc, MailError) else f"it could not be read ({exc})"
        return self._given_up(f"{self.account.host} did not answer as an IMAP server does while "
                              f"{doing}: {what}",
                              "if it happens again, the server (or something in between) is "
                              "broken or hostile: save the messages with a mail program")

    def too_slow(self, doing: str, exc: imap.AnswerTooSlow) -> MailError:
        """The server answered too slowly (imap.ANSWER_MIN_RATE): the connection is dropped,
        the capture stopped, what was fetched kept for the next run."""
        return self._given_up(f"{self.account.host} answered too slowly while {doing}: "
                              f"{exc.message}",
                              "run the same command again: it goes on from where it stopped; "
                              "if it happens again, the server (or the line) is too slow or "
                              "hostile: save the messages with a mail program")

    def _given_up(self, said: str, hint: str) -> MailError:
        kept = self.fetched + self.resumed
        saved = (f"; the {kept} message{'s' if kept != 1 else ''} fetched so far are kept, "
                 f"encrypted, in {self._resume.folder} for the next run"
                 if self._resume is not None and kept else "")
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # out of step: not logged out, just closed
                client.shutdown()
        if self._resume is not None:
            self._resume.close()
        return MailError(f"{said}; no bundle was written{saved}", hint=hint)


class _ConnectionKept:
    """Turns a lost connection (or a server gone mad) into a MailError that says what was kept."""

    def __init__(self, source: MailSource, doing: str) -> None:
        self._source = source
        self._doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: Any) -> None:
        if isinstance(error, imap.AnswerTooSlow):
            raise self._source.too_slow(self._doing, error) from None
        if isinstance(error, (imap.AnswerTooLarge, ValueError)):
            # imapclient's parsers, and ours, raise ValueError for what is not IMAP
            raise self._source.unreadable(self._doing, error) from None
        if error is None or isinstance(error, (MailError, UsageError)):
            return
        if isinstance(error, (OSError, ssl.SSLError, imaplib.IMAP4.error, EOFError)) or \
                type(error).__module__.startswith("imapclient"):
            raise self._source.lost(self._doing, error) from None


_LISTED = {b"date": "date", b"from": "from", b"to": "to", b"subject": "subject",
           b"message-id": "message-id"}


T = TypeVar("T")


def in_background(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """*items*, made on a thread of their own at most *depth* ahead of the one taking them; an
    exception there is raised here. Stopping early (the capture failed) stops the thread at
    its next item."""
    ready: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand(done: bool, value: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put((done, value), timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def make() -> None:
        try:
            for item in items:
                if not hand(False, item):
                    return
            hand(True, None)
        except BaseException as exc:  # handed to the taker, who raises it
            hand(True, exc)

    worker = threading.Thread(target=make, name="evidencekit-imap", daemon=True)
    worker.start()
    try:
        while True:
            done, value = ready.get()
            if done:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        stop.set()
        worker.join(timeout=1)


def headers_of(body: bytes) -> dict[str, str]:
    """Date, From, To, Subject and Message-ID, decoded for lists and reports (the .eml is the
    evidence; these are a convenience, made from at most its first 64 KiB). Read line by line
    rather than by the email package's parser: a tenth of the time, for 10,000s of messages."""
    head = body[:_HEAD_LIMIT]
    end = head.find(b"\r\n\r\n")
    ends = [at for at in (end, head.find(b"\n\n", 0, end if end >= 0 else len(head)))
            if at >= 0]
    found: dict[str, bytes] = {}
    current = None
    for line in head[:min(ends)].splitlines() if ends else head.splitlines():
        if line[:1] in (b" ", b"\t"):  # a folded line continues the header before it
            if current is not None:
                found[current] += b" " + line.strip()
            continue
        name, colon, value = line.partition(b":")
        current = _LISTED.get(name.strip().lower()) if colon else None
        if current in found:  # the first of a repeated header, as mail programs show
            current = None
        if current is not None:
            found[current] = value.strip()
    return {name: _decoded(value)[:1000] for name, value in found.items()}


def _decoded(raw: bytes) -> str:
    try:  # 8-bit headers (RFC 6532): UTF-8 as a rule, else read as Latin-1 rather than lost
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        value = raw.decode("latin-1")
    if "=?" not in value:  # no RFC 2047 encoded words
        return value
    try:
        parts = email_header.decode_header(value)
        return "".join(part.decode(charset or "utf-8", "replace") if isinstance(part, bytes)
                       else part for part, charset in parts).strip()
    except (LookupError, ValueError, UnicodeError, AssertionError):
        return value


_NAME_MAX = 255  # bytes of a file name on the usual file systems
_SEPARATOR = "\u2215"  # DIVISION SLASH: a folder hierarchy's delimiter (and any "/") in names


def flat_folder_names(folders: Sequence[Folder], account_bytes: int = 0) -> dict[str, str]:
    """Each folder's FOLDER in file names (by its modified UTF-7 name): its hierarchy delimiter
    and any '/' written '∕', unique among the mailbox's folders (``~1`` … as §4.4 makes names
    unique; the records say the folder's real name). A name too long for a file system's 255
    bytes beside an account name of *account_bytes* is cut, with ``~`` and 12 hex digits of
    the SHA-256 of the folder's modified UTF-7 name after it."""
    room = _NAME_MAX - account_bytes - len(".." + "4294967295" + ".json")
    names: dict[str, str] = {}
    for folder in folders:
        flat = _folder_file_name(folder.name, folder.delimiter)
        if len(flat.encode("utf-8")) > room:
            flat = _cut(flat, room, folder.name_utf7)
        names[folder.name_utf7] = unique_name(flat, set(names.values()))
    return names


def _cut(flat: str, room: int, name_utf7: str) -> str:
    tag = "~" + hashlib.sha256(name_utf7.encode("utf-8")).hexdigest()[:12]
    kept = flat.encode("utf-8")[:max(room - len(tag) - 4, 1)]  # 4: room for unique_name's ~N
    return kept.decode("utf-8", errors="ignore") + tag


def _folder_file_name(name: str, delimiter: str | None) -> str:
    if delimiter and delimiter != "/":
        name = name.replace(delimiter, _SEPARATOR)
    cleaned = name.replace("/", _SEPARATOR).replace("\x00", "")
    return cleaned or "_"


def _clashes(candidate: str, taken: set[str]) -> bool:
    """Whether a name taken is *candidate* or one of the names ``candidate.…``."""
    prefix = f"{candidate}."
    return any(name == candidate or name.startswith(prefix) for name in taken)


def _too_large(folder: Folder, uid: int) -> bool:
    return folder.sizes.get(uid, 0) > imap.LARGEST_MESSAGE


def _seconds_ns(text: str | None) -> int | None:
    import datetime as dt

    if not text:
        return None
    return int(dt.datetime.fromisoformat(text).timestamp()) * 1_000_000_000




class _Incomplete(BytesContent):
    """A document stored whole whose entry's ``error`` says what it lists was not captured."""

    def __init__(self, data: bytes, missing: str) -> None:
        super().__init__(data)
        self._missing = missing

    def unread(self) -> str:
        return self._missing


class _Unfetched(BytesContent):
    """A message listed but not fetched: an empty file whose entry's ``error`` says why (the
    capture is incomplete, exit code 3)."""

    def __init__(self, problem: str) -> None:
        super().__init__(b"")
        self._problem = problem

    def unread(self) -> str:
        return self._problem


def selection_from(folders: Sequence[str], all_folders: bool, since: str | None,
                   search: str | None) -> Selection:
    """The options' Selection; UsageError for a folder list with --all-folders or a bad date."""
    if folders and all_folders:
        raise UsageError("choose either --folder NAME… or --all-folders, not both")
    return Selection(tuple(folders), imap_date(since) if since else None, search or None)


def imap_date(text: str) -> str:
    """``2026-11-01`` (or 1-Nov-2026) as IMAP's ``1-Nov-2026``."""
    import datetime as dt

    given = text.strip()
    parts = given.split("-")
    if len(parts) == 3 and parts[1].capitalize() in _MONTH_NAMES:  # already 1-Nov-2026
        given = f"{parts[2]}-{_MONTH_NAMES.index(parts[1].capitalize()) + 1:02d}-{parts[0]}"
    for pattern in ("%Y-%m-%d",):
        try:
            day = dt.datetime.strptime(given, pattern)
        except ValueError:
            continue
        return f"{day.day}-{_MONTH_NAMES[day.month - 1]}-{day.year}"
    raise UsageError(f"--since needs a date like 2026-11-01, not {text!r}")
