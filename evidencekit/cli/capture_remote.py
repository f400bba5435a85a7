"""``capture --remote``: the options of a capture made on another host over SSH, and the hidden
``serve-capture`` command the remote evidencekit runs (it writes the bundle to its standard
output, framed: evidencekit.remote.protocol).

The options are kept in click's context (``expose_value=False``), as capture --imap's are, so
that cmd_capture.py only asks :func:`requested` for them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, cast

import click

from evidencekit import fs
from evidencekit.capture import CaptureRequest, CaptureResult, CaseInfo, capture, check_case
from evidencekit.cli import capture_mail, render
from evidencekit.cli.app import actor_name, cli, resolve_signing_key, run
from evidencekit.cli.keyring import default_signing_key_path, recipients_from
from evidencekit.cli.live import live_sources
from evidencekit.cli.options import FILE_PATH, TEXT, Kept, option_group
from evidencekit.cli.secrets import recorded_command_line
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.errors import ExitCode, UsageError
from evidencekit.hostinfo import host_name
from evidencekit.remote import protocol
from evidencekit.remote.protocol import (
    PROBLEM_PREFIX,
    SERVE_COMMAND,
    STALL_LEAST,
    STALL_TIMEOUT,
)
from evidencekit.remote.ssh import (
    Endpoint,
    HostKey,
    check_fingerprint,
    pin_by_fingerprint,
    pin_from_known_hosts,
)
from evidencekit.sources.files.profile_terms import parse_size
from evidencekit.text import plural

if TYPE_CHECKING:  # the receiver and the SFTP fallback are imported when --remote is used
    from evidencekit.remote.receive import RemoteRequest, RemoteResult

_KEPT = Kept("evidencekit.remote", gate="--remote", purpose="a remote capture",
             needs="--remote USER@HOST")
F = TypeVar("F", bound=Callable[..., Any])


def remote_options(command: F) -> F:
    """The remote options of ``capture`` (kept in the context: see :func:`requested`)."""
    options = [
        _KEPT.option("--remote", type=TEXT, metavar="USER@HOST[:PORT]",
                     help="Capture on this host over SSH: evidencekit there seals and encrypts "
                     "the bundle and sends it back; the SOURCES are paths on that host."),
        _KEPT.gated("--host-key", type=TEXT, metavar="SHA256:…",
                    help="the host's SSH key fingerprint; any other key is refused "
                    "(default: the key known_hosts records; an unknown host is refused)."),
        _KEPT.gated("--known-hosts", type=FILE_PATH,
                    help="the known_hosts file to pin the host key from."),
        _KEPT.gated("--remote-command", type=TEXT, metavar="COMMAND", default="evidencekit",
                    show_default=True,
                    help="how evidencekit is started there, e.g. 'sudo evidencekit' or a path "
                    "('~/.local/bin/evidencekit', quoted: ~ is that host's home)."),
        _KEPT.gated("--ssh-identity", type=FILE_PATH,
                    help="log in with this SSH private key (default: ssh's)."),
        _KEPT.gated("--sftp", is_flag=True,
                    help="read the files over SFTP and seal them here, as when evidencekit "
                    "is not installed there (less is recorded: no ctime, inode or extended "
                    "attributes, and access times there may change)."),
        _KEPT.gated("--ssh-config", type=FILE_PATH,
                    help="use this ssh configuration file instead of yours."),
        _KEPT.gated("--jump", type=TEXT, metavar="USER@BASTION[:PORT]",
                    help="reach the host through this bastion (as ssh -J); its own key must be "
                    "in your known_hosts (an unknown bastion is refused)."),
        _KEPT.gated("--stall-timeout", type=click.IntRange(5, 86400), metavar="SECONDS",
                    help=f"give up when less than {STALL_LEAST // 1024} KiB arrives in this "
                    "long (over SFTP: when one answer takes longer), keeping nothing (exit 2)  "
                    f"[default: {STALL_TIMEOUT}]"),
        _KEPT.gated("--remote-timeout", type=click.IntRange(5, None), metavar="SECONDS",
                    help="give up when the transfer has not ended after this long, keeping "
                    "nothing (exit 2; default: no limit)."),
        _KEPT.gated("--max-size", type=TEXT, metavar="SIZE",
                    help="stop, keeping nothing (exit 2), when the bundle grows past SIZE "
                    "(e.g. 20GB; default: it is stopped only before the disk here fills)."),
    ]
    return option_group(options)(command)


@dataclass(frozen=True)
class RemoteAsked:
    endpoint: Endpoint
    fingerprint: str | None
    known_hosts: Path | None
    command: str
    identity: Path | None
    config: Path | None
    sftp: bool = False
    stall_timeout: float = STALL_TIMEOUT
    max_size: int | None = None
    timeout: float | None = None  # --remote-timeout
    jump: Endpoint | None = None  # --jump

    def pinned(self) -> HostKey:
        if self.fingerprint is not None:
            return pin_by_fingerprint(self.endpoint, self.fingerprint, self.known_hosts,
                                      self.config, self.jump)
        return pin_from_known_hosts(self.endpoint, self.known_hosts, self.config, self.jump)


def requested() -> RemoteAsked | None:
    """The remote capture the options ask for; None without --remote (UsageError for remote
    options without it)."""
    given = _KEPT.given()
    if given.get("remote") and capture_mail.KEPT.given().get("imap_url"):
        raise UsageError("--imap cannot be used with --remote",
                         hint="capture the mailbox separately, from here")
    if not given.get("remote"):
        _KEPT.refuse_ungated()
        return None
    if given.get("sftp") and given.get("max_size"):
        raise UsageError("--max-size bounds a bundle streamed by evidencekit on the remote host, "
                         "not files read with --sftp", hint="over SFTP each file is stored at "
                         "the size it was listed with, and the disk here is watched as in any "
                         "capture")
    fingerprint = given.get("host_key")
    for option in ("ssh_identity", "known_hosts", "ssh_config"):
        _require_file(given.get(option), f"--{option.replace('_', '-')}")
    return RemoteAsked(Endpoint.parse(given["remote"]),
                       check_fingerprint(fingerprint) if fingerprint else None,
                       given.get("known_hosts"), given.get("remote_command") or "evidencekit",
                       given.get("ssh_identity"), given.get("ssh_config"),
                       bool(given.get("sftp")), given.get("stall_timeout") or STALL_TIMEOUT,
                       _size_option(given.get("max_size")), given.get("remote_timeout"),
                       _jump_option(given.get("jump")))


def _jump_option(text: str | None) -> Endpoint | None:
    """--jump USER@BASTION[:PORT], checked as --remote is (one bastion: a chain of them is
    written as ProxyJump in the ssh configuration)."""
    if text is None:
        return None
    try:
        return Endpoint.parse(text)
    except UsageError:
        raise UsageError(f"--jump {text!r}: expected USER@BASTION or USER@BASTION:PORT",
                         hint="e.g. --jump admin@bastion.example (more than one bastion: "
                         "ProxyJump in an ssh configuration, --ssh-config FILE)") from None


def _require_file(path: Path | None, option: str) -> None:
    """A file named for ssh that is not there: ssh went on without it, and what was said was
    'Permission denied (publickey)' (--ssh-identity) or 'not in known_hosts' (--known-hosts),
    far from the cause. What ssh can read is taken, not only a regular file: ``--ssh-config
    /dev/null`` (none of the user's configuration, as ``ssh -F /dev/null``), a pipe."""
    if path is None:
        return
    try:
        os.stat(path)  # (a folder: refused by FILE_PATH)
    except (FileNotFoundError, NotADirectoryError):
        raise UsageError(f"{option} {path}: no such file") from None
    except OSError as exc:  # a folder not ours to enter, a name too long: not exit 5
        raise UsageError(f"{option} {path}: {exc.strerror or exc}") from None


def _size_option(text: str | None) -> int | None:
    if text is None:
        return None
    size = parse_size(text.strip())
    if size == 0:  # a size, but no bundle fits in it
        raise UsageError("--max-size must be more than 0", hint="e.g. --max-size 20GB or "
                         "--max-size 500MiB; leave it out for no limit")
    if not size:
        raise UsageError(f"--max-size {text!r} is not a size", hint="e.g. --max-size 20GB or "
                         "--max-size 500MiB")
    return size


# capture's incident record options (cli/guided.incident_options): kept with a local capture.
_INCIDENT_OPTIONS = ("incident_file", "incident_type", "narrative", "started", "noticed",
                     "time_zone", "timeline_entries", "identifier_entries", "loss_entries",
                     "affected_accounts", "affected_devices")


def incident_given(options: dict[str, Any]) -> bool:
    """Whether any incident record option was given among capture's other *options*."""
    return any(options.get(name) for name in _INCIDENT_OPTIONS)


def refuse_local_only(**given: Any) -> None:
    """Options that name something on this machine have no meaning for a remote capture."""
    if given.pop("passphrase", False):
        raise UsageError("a remote capture is encrypted to public keys, not a passphrase",
                         hint="give the investigator's public key with -R FILE or -r KEY")
    for option, value in given.items():
        if value and option == "output_to_a_store":
            raise UsageError("-o s3://… cannot be used with --remote",
                             hint="receive it into a file (-o FILE), then 'evidencekit store "
                             "put FILE s3://…' (docs/playbooks.md)")
        if value:
            raise UsageError(f"--{option.replace('_', '-')} cannot be used with --remote",
                             hint="a remote capture collects paths (and --live) on the remote "
                             "host; capture the rest separately")


def say_received(result: RemoteResult, case: CaseInfo, as_json: bool) -> int:
    code = ExitCode.OK if result.seal.complete else ExitCode.CAPTURE_INCOMPLETE
    details = result.event.details
    unlike = result.problems_unlike_seal
    if as_json:
        render.emit_json({
            "command": "capture", "ok": True, "exit_code": code, "bundle": str(result.output),
            "seal_sha256": hashlib.sha256(result.seal.to_json()).hexdigest(),
            "custody_head_sha256": hashlib.sha256(result.event.to_json()).hexdigest(),
            "seal": render.seal_json(result.seal),
            "problems": [{"path": p, "problem": why} for p, why in result.problems],
            "warnings": [unlike] if unlike else [], "case": dataclasses.asdict(case),
            "profile": None, "web": None,
            "remote": {"host": details["remote"], "host_key": details["host_key"],
                       "command": result.command, "bytes": result.size,
                       "received_event": result.event.sequence,
                       "signer": details["remote_signer"],
                       "recipients_checked": details["recipients_checked"],
                       "messages": result.remote_messages}})
        return code
    if result.remote_messages:
        render.err.print(render.escape(result.remote_messages))
    render.out.print(f"[bold green]Captured on[/] {render.escape(details['remote'])} (host key "
                     f"{details['host_key']}) and received as "
                     f"{render.escape(str(result.output))} ({result.size:,} bytes)")
    counts = result.seal.counts
    render.out.print(f"  {plural(counts.get('files', 0), 'file')}; sealed there with a key "
                     f"made for this acquisition ({details['remote_signer']})")
    if result.problems:
        render.err.print(f"[yellow]The remote host reports {len(result.problems)} item(s) it "
                         "could not capture completely (its manifest records them):[/]")
        for path, why in result.problems[:50]:
            render.err.print(f"  {render.escape(path)}: {render.escape(why)}")
        if len(result.problems) > 50:
            render.err.print(f"  … and {len(result.problems) - 50} more (see --json)")
    if unlike:
        render.err.print(f"[yellow]evidencekit: warning:[/] {render.escape(unlike)}")
    render.out.print(f"Recorded as custody event #{result.event.sequence} (received), signed "
                     "by you.")
    if "X25519" in details.get("recipients_checked", ""):
        render.out.print("  Checked on arrival: its recipients' number and types, but not which "
                         "age1 keys (an age1 recipient cannot be recognised without its private "
                         "key): 'evidencekit verify -i KEY' confirms that yours opens it.")
    return code


def run_remote(asked: RemoteAsked, paths: tuple[Path, ...], output: Path, case: CaseInfo,
               recipients: list[age.Recipient], sign_key: Path | None,
               sign_key_passphrase_file: Path | None, profile: str | None, live: bool,
               as_json: bool, progress: str) -> int:
    """capture --remote, from the options cmd_capture.py parsed (*case* without an examiner
    takes the signing key's name, as a local capture does)."""
    from evidencekit.remote.fallback import capture_over_sftp
    from evidencekit.remote.receive import NotInstalled, RemoteRequest, capture_remote

    check_case(case)
    if not paths and not live and not profile:
        # over SFTP (evidencekit not there) it made a bundle holding nothing, exit 0
        raise UsageError(f"nothing to capture on {asked.endpoint}: name the paths there",
                         hint="e.g. evidencekit capture --remote USER@HOST … /var/log /etc "
                         "-R inv.pub -o host.evidence (or --profile NAME, --live)")
    fs.require_new(output)
    # the host pinned first: a host refused made the user's own signing key all the same
    # ('Created your personal signing key', then 'not in known_hosts')
    key = asked.pinned()
    signing = resolve_signing_key(sign_key, sign_key_passphrase_file, as_json, may_create=True)
    if not case.examiner:
        case = dataclasses.replace(case, examiner=actor_name(None, signing, "--examiner"))
    request = RemoteRequest(asked.endpoint, key, asked.command, [str(p) for p in paths],
                            output, case, recipients, signing, case.examiner, live=live,
                            profile=profile, identity=asked.identity, ssh_config=asked.config,
                            jump=asked.jump,
                            progress=render.progress_for(as_json, progress),
                            stall_timeout=asked.stall_timeout, max_size=asked.max_size,
                            timeout=asked.timeout)
    if not asked.sftp:
        try:
            return say_received(capture_remote(request), case, as_json)
        except NotInstalled as exc:
            if live or profile:
                raise
            fell_back = f"{exc.message}; reading the files over SFTP instead"
            if asked.max_size is not None:
                fell_back += (" (--max-size does not apply there: each file is stored at the "
                              "size it was listed with)")
            render.err.print(f"[yellow]evidencekit: warning:[/] {render.escape(fell_back)}")
            result = capture_over_sftp(request, recorded_command_line(),
                                       (sign_key or default_signing_key_path(),))
            if as_json:  # the text said it already, before the files were read
                result.warnings.insert(0, fell_back)
            return say_sftp(result, request, case, as_json)
    elif live or profile:
        raise UsageError("--live and --profile need evidencekit on the remote host, not --sftp")

    exclude = (sign_key or default_signing_key_path(),)
    result = capture_over_sftp(request, recorded_command_line(), exclude)
    return say_sftp(result, request, case, as_json)


def say_sftp(result: CaptureResult, request: RemoteRequest, case: CaseInfo,
             as_json: bool) -> int:
    from evidencekit.sources.remote_logical import ACCESS_TIME, DOCUMENT, NOT_RECORDED

    code = ExitCode.OK if result.seal.complete else ExitCode.CAPTURE_INCOMPLETE
    logical: dict[str, Any] = {"host": str(request.endpoint),
                               "host_key": request.host_key.fingerprint,
                               "not_recorded": NOT_RECORDED, "access_time": ACCESS_TIME}
    if as_json:
        document = render.capture_json(result, code)
        document.update({"case": dataclasses.asdict(case), "profile": None, "web": None,
                         "remote_logical": logical})
        render.emit_json(document)
        return code
    render.capture_text(result, request.recipients)
    render.err.print(f"[bold yellow]Remote-logical capture[/] of "
                     f"{render.escape(str(request.endpoint))} (host key "
                     f"{request.host_key.fingerprint}), read over SFTP and sealed here. Its "
                     "files are stored flat; its folders, symbolic links and other items are "
                     f"not counted above but recorded, with what SFTP said of each, in "
                     f"data/…{DOCUMENT}. Not recorded: {', '.join(NOT_RECORDED)}; "
                     f"{ACCESS_TIME}.")
    return code


# ----------------------------------------------------------------------- the remote side
@cli.command(SERVE_COMMAND, hidden=True)
@click.argument("sources", nargs=-1)
@click.option("--case", "case_id", required=True)
@click.option("--examiner", required=True)
@click.option("--request", "request_id", default="")
@click.option("--description", default="")
@click.option("--legal-basis", default="")
@click.option("--organisation", default="")
@click.option("-r", "--recipient", "recipients", multiple=True, required=True)
@click.option("--profile", default=None)
@click.option("--live", is_flag=True)
def serve_capture(sources: tuple[str, ...], case_id: str, examiner: str, request_id: str,
                  description: str, legal_basis: str, organisation: str,
                  recipients: tuple[str, ...], profile: str | None, live: bool) -> None:
    """Capture here for 'capture --remote' on another machine: the bundle, framed, on standard
    output (nothing else ever goes there); messages on standard error."""
    data = _take_standard_output()

    def body() -> int:
        case = CaseInfo(case_id, examiner, description, legal_basis, organisation)
        check_case(case)
        chosen = recipients_from(recipients, ())
        paths = list(sources)
        selection = None
        found_by_profile: dict[bytes, bytes] = {}
        if profile:
            from evidencekit.cli.cmd_profiles import select_profile

            # what the profile does not find there is said on the error channel, which the
            # receiving side passes on (quiet, it was said nowhere: not here, not in the bundle)
            selection = select_profile(profile, None, bool(sources), False)
            paths += [str(p) for p in selection.paths]
            named = {os.fsencode(p) for p in sources}  # as cmd_capture: links named are followed
            found = {os.fsencode(path): os.fsencode(selection.resolution.followed(path))
                     for path in selection.resolution.sources}
            found_by_profile = {k: v for k, v in found.items() if k not in named}
        more = live_sources(live or bool(selection and selection.profile.live), None, 60.0)
        if not paths and not more:
            raise UsageError("nothing to capture: name the paths on the remote host")
        key = SigningKey.generate(f"evidencekit per-acquisition key, {case_id} on "
                                  f"{host_name()}")
        target = _FramedTarget(data, request_id)
        result = capture(CaptureRequest(
            [os.fsencode(p) for p in paths], Path("remote.evidence"), case, chosen, key,
            command_line=recorded_command_line(),
            filters=selection.filters if selection else None,
            unreachable=selection.unreachable if selection else (),
            profile=selection.record() if selection else None,
            found_by_profile=found_by_profile, more_sources=more, stream_to=target))
        for problem in result.problems:  # read by the receiving side (remote.receive)
            sys.stderr.write(PROBLEM_PREFIX + json.dumps(
                {"path": problem.path, "problem": problem.problem}) + "\n")
        return ExitCode.OK if result.seal.complete else ExitCode.CAPTURE_INCOMPLETE

    run("serve-capture", False, body)


def _take_standard_output() -> BinaryIO:
    """Standard output for the stream alone: a copy of it is kept, and descriptor 1 (and
    sys.stdout) now lead to standard error, so that nothing printed by mistake corrupts the
    stream."""
    sys.stdout.flush()
    kept = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # sshd reads the pipe in small pieces: 64 KiB deep, this process and sshd took turns every
    # few of them (52,000 context switches for 1 GiB, against 9,000-13,000 at 1 MiB, and
    # 0.25 s less CPU on this side)
    protocol.widen_pipe(kept)
    # buffered below the 1 MiB blocks capture writes: a block as large as the buffer was
    # copied into it whole and sent only when the next frame came (CPython's BufferedWriter);
    # larger than the buffer, it goes to the pipe as it is; small frames are still gathered
    return open(kept, "wb", buffering=_STREAM_BUFFER)


_STREAM_BUFFER = 256 << 10


class _FramedTarget:
    """capture's ``stream_to`` for a remote capture: the bundle framed on *out*, the end frame
    written only when the capture has finished."""

    location = "(sent over SSH)"
    queue_blocks = 8  # as a file's: the pipe to ssh holds little

    def __init__(self, out: BinaryIO, request_id: str) -> None:
        self._out = out
        self._request_id = request_id

    def check(self) -> None:
        pass

    def public_details(self) -> dict[str, str]:
        """Signed into the capture event: the receiver checks that its request is the one it
        made for this capture (remote.receive, a bundle made before cannot be sent again)."""
        return {"destination": "ssh-stream",
                **({"request": self._request_id} if self._request_id else {})}

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        writer = protocol.FramedWriter(self._out)
        yield cast(BinaryIO, writer)
        writer.finish()
        self._out.close()  # the receiver waits for the stream's end (protocol._require_end)
