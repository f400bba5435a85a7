"""``capture --imap``: the options of a mailbox capture, its credential, its connection.

The options are declared here and kept in click's context (``expose_value=False``), so that
cmd_capture.py only asks :func:`requested` for them. The password or token is never on the
command line: it is asked for, or read from a file or an environment variable, and it goes
nowhere but to the server.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from evidencekit.capture import CaptureRequest, CaptureResult, capture
from evidencekit.cli import render
from evidencekit.cli.options import FILE_PATH, TEXT, Kept, option_group
from evidencekit.cli.secrets import interactive
from evidencekit.crypto.keys import SigningKey
from evidencekit.errors import InputError, PassphraseRequired, UsageError
from evidencekit.fs.noatime import read_user_file

if TYPE_CHECKING:  # the mail source (ssl, IMAP, 24 ms) is imported when a mailbox is asked for
    from evidencekit.sources.mail import Account, Credential, MailSource, Selection, Trust

PASSWORD_ENV = "EVIDENCEKIT_IMAP_PASSWORD"
KEPT = Kept("evidencekit.imap", gate="--imap", purpose="a mailbox",
            needs="--imap imaps://USER@HOST")
_SECRET_LIMIT = 64 << 10  # a password or an access token; refuse to read a whole disk image

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class MailRequest:
    account: Account
    credential: Credential
    selection: Selection
    trust: Trust


def imap_options(command: F) -> F:
    """The mailbox options of ``capture`` (kept in the context: see :func:`requested`)."""
    options = [
        KEPT.option("--imap", "imap_url", type=TEXT, metavar="imaps://USER@HOST[:PORT]",
                    help="Also capture e-mails from this mailbox, read-only (nothing is marked "
                    "read). The password is asked for (or --imap-password-file, or the variable "
                    f"{PASSWORD_ENV}); never put it in the address. imap://USER@HOST (port 143) "
                    "for a server that offers TLS only by STARTTLS: required, never a login in "
                    "clear."),
        KEPT.gated("--folder", "folders", multiple=True, type=TEXT, metavar="NAME",
                   help="capture this folder (repeatable; default: all folders)."),
        KEPT.gated("--all-folders", is_flag=True,
                   help="capture every folder (the default without --folder)."),
        KEPT.gated("--since", type=TEXT, metavar="DATE",
                   help="only messages received on or after DATE (2026-11-01)."),
        KEPT.gated("--search", type=TEXT, metavar="CRITERIA",
                   help="only messages matching these IMAP SEARCH criteria, e.g. "
                   "'FROM scam@example.net'."),
        KEPT.gated("--imap-password-file", type=FILE_PATH,
                   help="read the password (or app password) from this file."),
        KEPT.gated("--imap-token-file", type=FILE_PATH,
                   help="log in with the OAuth2 access token in this file (XOAUTH2) "
                   "instead of a password."),
        KEPT.gated("--imap-fingerprint", type=TEXT, metavar="SHA256:…",
                   help="trust exactly the server certificate with this SHA-256 fingerprint "
                   "(a server with its own certificate) instead of the system's authorities; "
                   "any other certificate is refused."),
    ]
    return option_group(options)(command)


def requested() -> MailRequest | None:
    """The mailbox the options name, with its credential; None without --imap. UsageError for
    mailbox options without --imap."""
    given = KEPT.given()
    url = given.get("imap_url")
    if not url:
        KEPT.refuse_ungated()
        return None
    from evidencekit.sources.mail import Trust, parse_account, parse_fingerprint
    from evidencekit.sources.mail.source import selection_from

    account = parse_account(url)
    if importlib.util.find_spec("imapclient") is None:
        raise UsageError("capture --imap needs the package imapclient, which is missing from "
                         "this installation", hint="install evidencekit again (from its wheel "
                         "or release file): imapclient is one of its dependencies")
    selection = selection_from(given.get("folders") or (), bool(given.get("all_folders")),
                               given.get("since"), given.get("search"))
    trust = Trust(parse_fingerprint(given["imap_fingerprint"])) \
        if given.get("imap_fingerprint") else Trust()
    credential = credential_for(account, given.get("imap_password_file"),
                                given.get("imap_token_file"))
    return MailRequest(account, credential, selection, trust)


def credential_for(account: Account, password_file: Path | None, token_file: Path | None
                   ) -> Credential:
    """The token file, else the password file, else $EVIDENCEKIT_IMAP_PASSWORD, else a prompt."""
    from evidencekit.sources.mail import BearerToken, Password

    if password_file is not None and token_file is not None:
        raise UsageError("choose either --imap-password-file or --imap-token-file, not both")
    if token_file is not None:
        return BearerToken(_first_line(token_file, "access token"))
    if password_file is not None:
        return Password(_first_line(password_file, "password"))
    if os.environ.get(PASSWORD_ENV):
        return Password(os.environ[PASSWORD_ENV])
    if not interactive():
        raise PassphraseRequired(f"a password is needed for the mailbox {account.name}, and "
                                 "there is no terminal to ask on",
                                 hint=f"pass --imap-password-file FILE or set {PASSWORD_ENV}")
    value: str = click.prompt(f"Password for {account.name} (an app password for Gmail, "
                              "Outlook, Yahoo, iCloud)", hide_input=True, err=True)
    if not value:
        raise InputError("the password is empty")
    return Password(value)


def _first_line(path: Path, what: str) -> str:
    try:
        data = read_user_file(path, _SECRET_LIMIT + 1)
    except OSError as exc:
        raise InputError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if len(data) > _SECRET_LIMIT:
        raise InputError(f"the {what} file {path} is too large to hold one {what}")
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    if not line:
        raise InputError(f"the {what} file {path} is empty")
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"the {what} file {path} is not UTF-8 text") from None


def connected(request: MailRequest, signing: SigningKey, quiet: bool) -> MailSource:
    """The mailbox, connected, logged in and searched; its resume state is keyed by *signing*
    (docs/decisions/mail-resume.md)."""
    from evidencekit.sources.mail import MailSource
    from evidencekit.sources.mail.resume import ResumeState, derive_key

    seed = signing.key.private_bytes_raw()
    state = ResumeState(request.account, derive_key(seed, request.account))
    state.lock()  # before the password is sent: a second capture of the account stops here
    source = MailSource(request.account, request.credential, request.selection, request.trust,
                        resume=state)
    if not quiet:
        render.err.print(f"Connecting to {request.account.host} as {request.account.user}…")
    source.connect()
    if not quiet:
        folders = len(source.folders)
        render.err.print(f"{source.messages} message{'s' if source.messages != 1 else ''} to "
                         f"collect in {folders} folder{'s' if folders != 1 else ''} (read-only: "
                         "nothing is marked read).")
    return source


def capture_with(request: CaptureRequest, mailboxes: Sequence[MailSource]) -> CaptureResult:
    """Seal *request* with the connected *mailboxes* after its other sources. Each mailbox is
    closed whatever happens; its resume state is removed only once the bundle holds every
    message (a capture that failed resumes where it stopped)."""
    request = dataclasses.replace(request, more_sources=(*request.more_sources, *mailboxes))
    try:
        result = capture(request)
    finally:
        for mailbox in mailboxes:
            mailbox.close()
    for mailbox in mailboxes:
        mailbox.finished()
    return result


def summary(source: MailSource) -> dict[str, Any]:
    """For ``capture --json``: the mailbox, its folders and what was fetched."""
    return {"account": source.account.url,
            "folders": [{"name": f.name, "uidvalidity": f.uidvalidity, "messages": len(f.uids)}
                        for f in source.folders],
            "messages": source.messages, "fetched": source.fetched,
            "from_earlier_run": source.resumed}


def say_done(source: MailSource) -> None:
    earlier = (f" ({source.resumed} kept from an earlier, interrupted run)" if source.resumed
               else "")
    render.err.print(f"Mailbox {source.account.name}: {source.messages} message"
                     f"{'s' if source.messages != 1 else ''} from {len(source.folders)} "
                     f"folder{'s' if len(source.folders) != 1 else ''}{earlier}; nothing was "
                     "marked read.")
