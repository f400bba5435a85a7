"""capture --remote: evidencekit on another host captures there and streams the bundle back.

1. The host key is pinned (--host-key, or known_hosts) before anything is asked of the host.
2. ``ssh HOST REMOTE-COMMAND serve-capture …`` runs evidencekit there: it seals and encrypts the
   bundle to the recipients given here and signs it with a key made for this acquisition only
   (docs/decisions/remote-capture.md); only ciphertext crosses the wire.
3. The framed stream (evidencekit.remote.protocol) is written into a temporary file next to the
   output, the payload hashed as it arrives.
4. The bundle's public parts are verified, its payload's hash compared with the seal's, and a
   ``received`` custody event signed here is added (FORMAT.md §6): the host, its host key's
   fingerprint, the command, the byte count, the times.
5. Only then does the file get its name (evidencekit.fs): a dropped connection, a failed remote
   capture or a bundle that does not verify leaves nothing.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO, NoReturn

from evidencekit import fs, publictext
from evidencekit.capture import CaseInfo
from evidencekit.clock import Clock, rfc3339, system_clock
from evidencekit.crypto import age, sshsig
from evidencekit.crypto.keys import SigningKey
from evidencekit.custody.append import require_intact
from evidencekit.custody.events import EventRequest, build_event
from evidencekit.errors import BundleError, ExitCode, OutputError, RemoteError, UsageError
from evidencekit.format.documents import CustodyEvent, Seal, custody_member
from evidencekit.format.outer import END_OF_ARCHIVE, OuterWriter
from evidencekit.progress import NoProgress, Progress
from evidencekit.protection import payload_header, recipients_in
from evidencekit.remote import protocol, ssh
from evidencekit.remote.protocol import PROBLEM_PREFIX, SERVE_COMMAND, STALL_TIMEOUT
from evidencekit.remote.ssh import Connection, Endpoint, HostKey, connection, route
from evidencekit.text import exact_size, human_size
from evidencekit.verify import Report, verify

_LARGEST_BUNDLE = 1 << 50  # a frame beyond this is a broken stream, not a bundle
_STDERR_KEPT = 16 << 20  # its messages, one line per item it could not read
_STDERR_TAIL = 64 << 10  # and the last of them (its error), whatever came before
_MESSAGE_SHOWN = 1000  # characters of the remote's own message in ours
DISK_RESERVE = 64 << 20  # free bytes a received stream never eats into (more than a frame;
# half the free space on a disk with less: StreamLimit)
_ROOM_CHECK_EVERY = 8 << 20  # bytes received between two looks at the free space


class NotInstalled(RemoteError):
    """evidencekit could not be started on the host (the shell's exit code 126 or 127)."""


@dataclass(frozen=True)
class RemoteRequest:
    endpoint: Endpoint
    host_key: HostKey  # pinned (evidencekit.remote.ssh)
    remote_command: str  # how evidencekit is started there, e.g. "sudo evidencekit"
    paths: Sequence[str]  # on the remote host
    output: Path
    case: CaseInfo
    recipients: Sequence[age.Recipient]
    signing_key: SigningKey  # signs the 'received' event, here
    actor_name: str
    live: bool = False
    profile: str | None = None
    identity: Path | None = None
    ssh_config: Path | None = None
    jump: Endpoint | None = None  # --jump: the bastion the connection goes through
    note: str = ""
    progress: Progress = field(default_factory=NoProgress)
    clock: Clock = system_clock
    # seconds in which less than protocol.STALL_LEAST bytes arrive (None: no limit)
    stall_timeout: float | None = STALL_TIMEOUT
    timeout: float | None = None  # seconds the whole transfer may take (None: no limit)
    max_size: int | None = None  # bytes the received bundle may reach (None: what fits)
    # made here for this capture alone: the host must sign it into its capture event, so that
    # a bundle captured there earlier (when the host could still be trusted) cannot be sent
    # again as this one
    request_id: str = field(default_factory=lambda: secrets.token_hex(16))

    def deadline(self) -> float | None:
        """When the transfer must have ended by (time.monotonic()), from now; None: never."""
        return None if self.timeout is None else time.monotonic() + self.timeout


@dataclass(frozen=True)
class RemoteResult:
    output: Path
    seal: Seal
    event: CustodyEvent  # the 'received' event added here
    size: int
    command: str
    remote_exit: int
    remote_messages: str  # what the remote evidencekit said (warnings), as it said it
    problems: list[tuple[str, str]]  # what it could not read completely: (path, problem)

    @property
    def problems_unlike_seal(self) -> str | None:
        """Why the host's list of problems cannot be taken as the manifest's, or None.

        The list comes from the host's standard error, which nothing signs; the seal it signed
        counts them (each problem is one unreadable, skipped or changed item). Here, without
        the key, only the number can be compared: a host that hides or invents items is caught
        when the numbers differ, and only ``verify -i KEY`` shows the list the manifest holds.
        """
        counts = self.seal.counts
        sealed = sum(counts.get(name, 0) for name in ("errors", "skipped", "changed"))
        if sealed == len(self.problems):
            return None
        return (f"the remote host listed {len(self.problems)} item(s) it could not capture "
                f"completely, but the seal it signed counts {sealed} "
                f"({counts.get('errors', 0)} unreadable, {counts.get('skipped', 0)} skipped, "
                f"{counts.get('changed', 0)} changed): its list is not the manifest's; "
                "'evidencekit verify -i KEY' shows the items the manifest records")


def serve_arguments(request: RemoteRequest) -> list[str]:
    """The remote evidencekit's arguments: the case, the recipients (public keys only), what to
    capture. Each is one word for the remote shell (shlex.join)."""
    args = [SERVE_COMMAND, "--case", request.case.case_id, "--examiner", request.case.examiner,
            "--request", request.request_id]
    for option, value in (("--description", request.case.description),
                          ("--legal-basis", request.case.legal_basis),
                          ("--organisation", request.case.organisation),
                          ("--profile", request.profile or "")):
        if value:
            args += [option, value]
    for recipient in request.recipients:
        args += ["-r", str(recipient)]
    if request.live:
        args.append("--live")
    return [*args, "--", *request.paths]


def remote_command_line(request: RemoteRequest) -> str:
    return shell_command(request.remote_command, serve_arguments(request))


def shell_command(remote_command: str, arguments: Sequence[str]) -> str:
    """*remote_command*'s words, then *arguments*, each one word for the remote shell. A word
    of *remote_command* starting with ``~/`` or ``~USER/`` keeps its tilde unquoted, so that
    the remote shell expands it to that home: ``--remote-command "~/.local/bin/evidencekit"``
    (where pipx installs it, not on the PATH of a command run over SSH) was sent quoted, not
    found, and the capture fell back to SFTP."""
    try:
        prefix = shlex.split(remote_command)
    except ValueError as exc:
        raise UsageError(f"--remote-command {remote_command!r}: {exc}") from None
    if not prefix:
        raise UsageError("--remote-command is empty", hint="e.g. --remote-command evidencekit")
    return " ".join([*map(_home_kept, prefix), *map(shlex.quote, arguments)])


_HOME = re.compile(r"~(?:[a-z_][a-z0-9_.-]*)?(?:/|$)")  # the slash unquoted too: POSIX


def _home_kept(word: str) -> str:
    home = _HOME.match(word)
    if home is None:
        return shlex.quote(word)
    rest = word[home.end():]
    return home.group() + (shlex.quote(rest) if rest else "")


def capture_remote(request: RemoteRequest) -> RemoteResult:
    """Capture on the remote host and keep the bundle at *request.output* (see the module's
    docstring); raise an EvidenceKitError (nothing left) on failure."""
    if any(isinstance(r, age.ScryptRecipient) for r in request.recipients):
        raise UsageError("a remote capture is encrypted to public keys, not a passphrase",
                         hint="give the investigator's public key with -R or -r")
    fs.require_new(request.output)
    command = remote_command_line(request)
    with connection(request.endpoint, request.host_key, request.identity,
                    request.ssh_config, request.jump) as conn:
        try:
            with fs.staged(request.output) as stage:
                result = _receive_and_record(request, conn, command, stage)
        except FileExistsError:
            raise OutputError(f"{request.output} appeared while receiving; it was not "
                              "replaced and nothing was kept") from None
        except OSError as exc:
            hint = ("the destination cannot hold a file that large (FAT32 stops at 4 GiB, "
                    "and 'ulimit -f' may set a lower limit): use an exFAT or NTFS disk, or "
                    "another folder, with -o"
                    if exc.errno == errno.EFBIG else "check free space and permissions")
            raise OutputError(f"could not write {request.output}: {exc.strerror or exc}; "
                              "nothing was kept", hint=hint) from None
    return result


def _receive_and_record(request: RemoteRequest, conn: Connection, command: str,
                        stage: fs.Staged) -> RemoteResult:
    started = request.clock()
    process = ssh.start([*conn.ssh_argv(), command], subprocess.DEVNULL)
    assert process.stdout is not None and process.stderr is not None
    protocol.widen_pipe(process.stdout.fileno())  # ssh and this process take turns less often
    errors = ErrorChannel(process.stderr)
    try:
        received = _receive(request, process.stdout, stage.file,
                            request.output.absolute().parent)
    except (protocol.Stalled, protocol.Refused) as exc:  # the remote may go on: it is stopped
        _stop(process, wait=0)
        raise _stopped(request, exc) from None
    except protocol.StreamBroken as exc:
        _stop(process)
        raise stream_failure(request, conn, process.returncode, errors.said(), str(exc)) from None
    except BaseException:  # interrupted here (Ctrl-C, SIGTERM): ssh is stopped at once
        _stop(process, wait=0)
        raise
    code = process.wait()
    said = errors.said()
    finished = request.clock()
    if code not in (ExitCode.OK, ExitCode.CAPTURE_INCOMPLETE):
        raise stream_failure(request, conn, code, said, "it failed after sending its bundle")
    stage.file.flush()
    report = verified_on_arrival(stage.path, received, request.endpoint)
    assert report.seal is not None
    _check_as_asked(stage.path, report, request)
    details = {"via": "ssh", "remote": str(request.endpoint),
               "host_key": conn.key.fingerprint, "host_key_type": conn.key.kind,
               "command": command, "bytes": str(received.size),
               "started": rfc3339(started), "finished": rfc3339(finished),
               "remote_exit": str(code), "remote_signer": report.seal.signer.fingerprint,
               "request": request.request_id,
               "recipients_checked": recipients_checked(request.recipients)}
    taken = route(request.endpoint, request.ssh_config, request.jump)
    if taken is not None:  # a bastion carried it (its own key is checked by ssh, not pinned)
        details["route"] = taken
    event_request = EventRequest("received", request.actor_name, request.signing_key,
                                 request.note, f"evidencekit on {request.endpoint} over SSH",
                                 details, request.clock)
    event = build_event(report, event_request)
    publictext.check_readable(event.to_json(), custody_member(event.sequence))
    _append_in_place(stage.file, received.size, event, request.signing_key)
    after = verify(stage.path, check_payload_hash=False)
    if not after.findings.ok:  # never: the event was built from this very bundle
        raise BundleError("the received bundle did not verify once its custody event was "
                          "added; nothing was kept")
    problems, messages = _problems_of(said)
    return RemoteResult(request.output, report.seal, event, received.size, command, code,
                        messages, problems)


def _problems_of(said: str) -> tuple[list[tuple[str, str]], str]:
    """The remote's problem lines (PROBLEM_PREFIX + JSON), and the rest of what it said."""
    problems: list[tuple[str, str]] = []
    rest = []
    for line in said.splitlines():
        if line.startswith(PROBLEM_PREFIX):
            try:
                item = json.loads(line[len(PROBLEM_PREFIX):])
                problems.append((str(item["path"]), str(item["problem"])))
                continue
            except (ValueError, KeyError, TypeError):
                pass
        rest.append(line)
    return problems, "\n".join(rest).strip()


def _receive(request: RemoteRequest, stdout: IO[bytes], out: BinaryIO,
             folder: Path) -> protocol.Received:
    deadline = request.deadline()
    request.progress.start(f"Receiving from {request.endpoint.host}", None, None)
    limit = StreamLimit(folder, request.max_size, request.progress)
    try:
        return protocol.receive(stdout, out, limit.advance, _LARGEST_BUNDLE,
                                request.stall_timeout, deadline)
    finally:
        request.progress.finish()


class StreamLimit:
    """How far a stream may grow here. The host may send without end (a compromised one, or a
    capture of something endless): it is stopped past --max-size, and as soon as the free space
    where it is written is below the reserve (looked at every eighth of it, at most
    _ROOM_CHECK_EVERY bytes, so at most that and a frame more are written after a look: the
    disk keeps some 40 MiB), never when the disk is full. The reserve is DISK_RESERVE, or half
    the free space when the stream begins if that is less: a small bundle still fits on a
    small disk (a USB stick with 20 MiB free), as a local capture does. (On FAT32 a write past
    4 GiB fails: capture_remote says so.)"""

    def __init__(self, folder: Path, max_size: int | None, progress: Progress,
                 free_space: Callable[[Path], int | None] | None = None) -> None:
        self._folder = folder
        self._max_size = max_size
        self._progress = progress
        self._free_space = free_space or free_bytes
        at_start = self._free_space(folder)
        self._reserve = DISK_RESERVE if at_start is None else min(DISK_RESERVE, at_start // 2)
        self._every = max(1, min(_ROOM_CHECK_EVERY, self._reserve // 8))
        self._received = 0
        self._unchecked = self._every  # look at once

    def advance(self, count: int) -> None:
        self._received += count
        self._progress.advance(nbytes=count)
        largest = self._max_size
        if largest is not None and self._received > largest:
            raise protocol.Refused(f"it grew past --max-size ({exact_size(largest)})")
        self._unchecked += count
        if self._unchecked >= self._every:
            self._unchecked = 0
            self._check_room()

    def _check_room(self) -> None:
        free = self._free_space(self._folder)
        if free is not None and free < self._reserve:
            got = human_size(self._received)
            raise protocol.Refused(f"the disk it is written to ({self._folder}) has only "
                                   f"{human_size(free)} free left after {got} received")


def free_bytes(folder: Path) -> int | None:
    """The bytes an unprivileged writer may still use in *folder*'s file system (None: unknown,
    and a real disk-full ends the stream: OutputError, nothing kept)."""
    try:
        found = os.statvfs(folder)
    except OSError:
        return None
    return found.f_bavail * found.f_frsize


def _stopped(request: RemoteRequest, exc: protocol.StreamBroken) -> RemoteError:
    """The receiver stopped the stream: it did not move for --stall-timeout, took longer than
    --remote-timeout, or grew too big."""
    where = str(request.endpoint)
    if isinstance(exc, protocol.TimedOut):
        return RemoteError(f"the capture on {where} did not finish within --remote-timeout "
                           f"({request.timeout:g} seconds); it was ended and nothing was kept",
                           hint="run it again with a longer --remote-timeout, or naming fewer "
                           "paths; a host that sends a trickle is not to be trusted")
    if isinstance(exc, protocol.Stalled):
        return RemoteError(f"the capture on {where} stopped sending ({exc}); it was ended "
                           "and nothing was kept", hint="the capture there may be stuck (a "
                           "hung network file system, a device that does not answer) or the "
                           "connection stalled: run it again, naming fewer paths, or with a "
                           "longer --stall-timeout")
    return RemoteError(f"the bundle from {where} was not received: {exc}; it was stopped and "
                       "nothing was kept", hint="free some space, write it elsewhere with -o, "
                       "or give a larger --max-size; a host that sends far more than it holds "
                       "is not to be trusted")


def verified_on_arrival(path: Path, received: protocol.Received, endpoint: Endpoint) -> Report:
    """The received bundle's public parts verified; its payload's hash is the one computed as
    it arrived when it could be (else read again), and must be the seal's."""
    report = verify(path, check_payload_hash=received.payload_sha256 is None)
    if report.payload is not None and received.payload_sha256 is not None and \
            report.findings.ok and report.payload_sha256 is None:
        if (received.payload_sha256, received.payload_size) != \
                (report.payload.sha256, report.payload.size):
            raise BundleError(f"the payload received from {endpoint} is not the one its seal "
                              "names; nothing was kept", hint="try again; if it happens again, "
                              "the host or the connection is not to be trusted")
        report.payload_sha256 = received.payload_sha256
    try:
        require_intact(report)
    except BundleError as exc:
        said = report.findings.first_error_said(str(path)) or exc.message
        raise BundleError(f"the bundle received from {endpoint} does not verify ({said}); "
                          "nothing was kept", hint="try again; if it happens again, the "
                          "remote evidencekit or the host is not to be trusted") from None
    return report


def _check_as_asked(path: Path, report: Report, request: RemoteRequest) -> None:
    """A bundle that verifies may still not be the one asked for: the host (maybe the
    compromised one) runs what it likes. It must be a fresh capture: one custody event, the
    capture's, carrying the request made for this capture (a bundle the host captured earlier,
    when it could still be trusted, signed by a key made then, is not sent again as this one),
    signed by the key that signed the seal (a history before it arrived, such as a
    'transferred' in the investigator's name, would have the investigator's 'received' signed
    after it). Its case must be ours, its capture event's examiner and note (the description)
    the ones given here, and its payload's age header must
    hold one stanza per recipient given here, of the same types, an ssh-ed25519 stanza with the
    tag of one of our SSH keys. An age1 (X25519) stanza does not say whose key it is, so one age1
    key swapped for another is not seen here (verify -i with the investigator's key sees it)."""
    where = request.endpoint
    seal = report.seal
    assert seal is not None
    events = report.events
    if len(events) != 1:
        _not_asked(where, f"it has a custody log of {len(events)} events, where a capture "
                   "made for this one has one")
    if events[0].actor.fingerprint != seal.signer.fingerprint:
        _not_asked(where, "its capture event is signed by a key other than the one that "
                   "sealed it")
    if events[0].details.get("request") != request.request_id:
        _not_asked(where, "its capture event does not carry the request made for this capture "
                   f"({_quoted(events[0].details.get('request', ''))} instead of "
                   f"{request.request_id!r}): a bundle made before, sent again?")
    if seal.case_id != request.case.case_id:
        _not_asked(where, f"it is for case {seal.case_id}, not {request.case.case_id}")
    # what the capture event says in public, in the examiner's name, is what was asked: the
    # host ran what it liked, and the investigator's 'received' is signed after it (before,
    # a description swapped there, 'Seized under warrant 42' for 'Collected with the owner's
    # consent', was received with exit 0)
    if events[0].actor_name != request.case.examiner:
        _not_asked(where, f"its capture event names the examiner {events[0].actor_name!r}, "
                   f"not {request.case.examiner!r}")
    if events[0].note != request.case.description:
        _not_asked(where, "its capture event's note (the public description) is "
                   f"{_quoted(events[0].note)}, not {_quoted(request.case.description)}")
    wanted = sorted(_stanza_signature(r.wrap(os.urandom(age.FILE_KEY_SIZE), os.urandom))
                    for r in request.recipients)
    header = payload_header(path)
    found = sorted((r.type, r.key_tag if r.type == "ssh-ed25519" else None)
                   for r in recipients_in(header.stanzas if header else ()))
    if found != wanted:
        _not_asked(where, f"it is not encrypted to the recipients given here "
                   f"({_described(found)} instead of {_described(wanted)})")


def _quoted(text: str) -> str:
    return repr(text) if len(text) <= 200 else repr(text[:200]) + "…"


def recipients_checked(recipients: Sequence[age.Recipient]) -> str:
    """What _check_as_asked could and could not check of the payload's recipients, said in
    the 'received' event: an age1 (X25519) stanza holds an ephemeral share and the wrapped file
    key, nothing naming its recipient, so without the private key one age1 key cannot be told
    from another (FORMAT.md §6)."""
    ssh = sum(1 for r in recipients if isinstance(r, age.SshEd25519Recipient))
    x25519 = len(recipients) - ssh
    said = [f"{len(recipients)} stanza(s) for {len(recipients)} recipient(s), types matched"]
    if ssh:
        said.append(f"{ssh} ssh-ed25519 by key tag")
    if x25519:
        said.append(f"{x25519} age1 (X25519) not by key: an X25519 stanza does not name its "
                    "recipient; decrypting with the identity (verify -i) shows it")
    return "; ".join(said)


def _not_asked(where: Endpoint, why: str) -> NoReturn:
    raise BundleError(f"the bundle received from {where} is not the one asked for: {why}; "
                      "nothing was kept", hint="the remote evidencekit did not do what it was "
                      "asked: the host is not to be trusted")


def _stanza_signature(stanza: age.Stanza) -> tuple[str, str | None]:
    """What a recipient's stanza shows of it: its type, and the key tag of an SSH key."""
    return stanza.type, stanza.args[0] if stanza.type == "ssh-ed25519" and stanza.args \
        else None


def _described(signatures: list[tuple[str, str | None]]) -> str:
    if not signatures:
        return "no recipient"
    return ", ".join(f"{kind} {tag}" if tag else kind for kind, tag in signatures)


def _append_in_place(out: BinaryIO, size: int, event: CustodyEvent, key: SigningKey) -> None:
    """The event's two members written over the end-of-archive blocks of the file still being
    staged (nobody else can see it yet), then a new end."""
    fd = out.fileno()
    at = size - len(END_OF_ARCHIVE)
    if at < 0 or os.pread(fd, len(END_OF_ARCHIVE), at) != END_OF_ARCHIVE:
        raise BundleError("the received bundle does not end with a tar end-of-archive marker")
    data = event.to_json()
    mtime = _seconds(event.time)
    encoded = io.BytesIO()
    writer = OuterWriter(encoded)
    name = custody_member(event.sequence)
    writer.add_bytes(name, data, mtime)
    writer.add_bytes(name + ".sig", sshsig.sign(key, data), mtime)
    writer.finish()
    protocol.write_at(fd, encoded.getbuffer(), at)


def _seconds(stamp: str) -> int:
    from evidencekit.clock import parse_rfc3339

    return parse_rfc3339(stamp) // 1_000_000_000


def _stop(process: subprocess.Popen[bytes], wait: float = 5) -> None:
    """ssh ended (its exit code tells why), or is made to after *wait* seconds (a stream that
    breaks the protocol, an interrupt); then what it started and left (a bastion's
    ProxyCommand) is ended too."""
    try:
        process.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        ssh.signal_all(process, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            ssh.signal_all(process, signal.SIGKILL)
            process.wait()
    ssh.signal_all(process, signal.SIGKILL)


class ErrorChannel:
    """What the remote side writes on its error channel, read as it comes by a thread of its
    own. The host may be the compromised one and write without end: only the first
    _STDERR_KEPT bytes and the last _STDERR_TAIL are kept (in memory; nothing on disk), and
    how many were dropped between them."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self._pipe = pipe
        self._head = bytearray()
        self._tail = bytearray()
        self._dropped = 0
        self._thread = threading.Thread(target=self._read, name="ssh-stderr", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while block := os.read(self._pipe.fileno(), 1 << 16):
                room = _STDERR_KEPT - len(self._head)
                self._head += block[:room]
                self._tail += block[room:]
                if len(self._tail) > _STDERR_TAIL:
                    self._dropped += len(self._tail) - _STDERR_TAIL
                    del self._tail[:len(self._tail) - _STDERR_TAIL]

    def said(self) -> str:
        """What was kept, once the channel has ended (or 10 s after being asked)."""
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._pipe.close()
        dropped = f"\n[{self._dropped:,} bytes of its messages not kept]\n" \
            if self._dropped else ""
        text = bytes(self._head).decode("utf-8", "replace") + dropped + \
            bytes(self._tail).decode("utf-8", "replace")
        return text.strip()


_SSH_FAILED = 255  # ssh's own exit code: it could not connect, authenticate, or lost the link
_NOT_FOUND = (126, 127)  # the shell's: the command could not be run, or does not exist
_SIGNALLED = 128  # above it, the remote command was killed by a signal (128 + its number)
# What OpenSSH's client says when the connection itself ended. When the server's side of the
# connection is killed, ssh may report the remote command's death by signal (137) before the
# closed link: then the link, not the capture, is what failed.
_LINK_LOST = ("closed by remote host", "Connection reset", "Broken pipe", "not responding",
              "Connection closed")


def _link_lost(said: str) -> bool:
    return any(words in said for words in _LINK_LOST)


def stream_failure(request: RemoteRequest, conn: Connection, code: int | None, said: str,
                   what: str) -> RemoteError:
    """What to tell people when the stream did not end well, from ssh's exit code and what the
    remote side wrote on its error channel."""
    where = str(request.endpoint)
    last = _last_message(said)
    if code == _SSH_FAILED or (code is not None and code > _SIGNALLED and _link_lost(said)):
        refused = host_key_refused(where, conn, said)
        if refused is not None:
            return refused
        return RemoteError(f"could not capture over SSH from {where}: "
                           f"{(last or what).rstrip('.')}; nothing "
                           "was kept", hint="check the address, your SSH key (--ssh-identity) "
                           "and the network; an interrupted capture can simply be run again")
    if code in _NOT_FOUND:
        return NotInstalled(f"evidencekit could not be started on {where} "
                           f"({last or 'command not found'}); nothing was captured",
                           hint="install evidencekit there, give its path with "
                           "--remote-command, or read the files over SFTP with --sftp")
    if code == ExitCode.USAGE and _OTHER_VERSION.search(said):
        # click's words for a request it does not know: an evidencekit older or newer than
        # this one ('No such option: --request'), which says nothing of what to do
        return RemoteError(f"the evidencekit on {where} does not understand this one's request "
                           f"({last or what}): it is another version, or --remote-command "
                           "gives it an option it does not know; nothing was captured",
                           hint="install the same evidencekit version there as here "
                           "(evidencekit --version on both), check --remote-command, or read "
                           "the files over SFTP with --sftp")
    if code is not None and code not in (ExitCode.OK, ExitCode.CAPTURE_INCOMPLETE):
        return RemoteError(f"the capture on {where} failed (its exit code {code}): "
                           f"{last or what}; nothing was kept",
                           hint="what follows the exit code is what evidencekit said there",
                           exit_code=code if 0 < code < 128 else None)
    return RemoteError(f"the bundle from {where} did not arrive whole ({what}); nothing was "
                       "kept", hint="run the capture again: the source was only read")


def host_key_refused(where: str, conn: Connection, said: str) -> RemoteError | None:
    """The error to give when ssh refused the host's key (*said*: its error channel): the host
    proved no key but one other than the pinned one. None when ssh said nothing of it."""
    if "Host key verification failed" not in said and "REMOTE HOST IDENTIFICATION" not in said:
        return None
    return RemoteError(f"{where}: the host key is not the one pinned ({conn.key.fingerprint}); "
                       "nothing was captured", exit_code=1,
                       hint="check the fingerprint with the host's administrator")


_OTHER_VERSION = re.compile(r"^Error: No such (option|command)\b", re.MULTILINE)


def _last_message(said: str) -> str:
    """The remote's error message: its 'evidencekit: error:' line if it wrote one, else its
    last line."""
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    for line in reversed(lines):
        if "error:" in line:
            return _shortened(line.split("error:", 1)[1].strip())
    return _shortened(lines[-1]) if lines else ""


def _shortened(message: str) -> str:
    return message if len(message) <= _MESSAGE_SHOWN else message[:_MESSAGE_SHOWN] + "…"
