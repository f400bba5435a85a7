"""Which mailbox, and how to log in to it.

The address is ``imaps://USER@HOST[:PORT]``: the user name as the provider knows it (often the
whole e-mail address: ``imaps://jane@example.com@imap.example.com`` or with ``%40``), never the
password. ``imap://USER@HOST[:PORT]`` (port 143) is a server that offers TLS by STARTTLS: it is
required there, never a login in clear. The address typed goes into the bundle (the manifest's
source record and the recorded command line), so one holding a password is refused before
anything else is done.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from evidencekit.errors import InputError, UsageError

IMAPS_PORT = 993
IMAP_PORT = 143  # imap://: TLS by STARTTLS, required


class MailError(InputError):
    """The mailbox could not be read: the server cannot be reached or trusted, the login was
    refused, the connection was lost (exit code 2; what was already fetched is kept for the
    next run, see resume.py)."""


@dataclass(frozen=True)
class Account:
    given: str  # as typed, without any password (refused otherwise)
    user: str
    host: str
    port: int
    starttls: bool = False  # imap://: TLS after the greeting, by STARTTLS (required)

    @property
    def url(self) -> str:
        """The normalised address: ``imaps://USER@HOST:PORT`` (the user percent-encoded), or
        ``imap://…`` for STARTTLS."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "imap" if self.starttls else "imaps"
        return f"{scheme}://{urllib.parse.quote(self.user, safe='')}@{host}:{self.port}"

    @property
    def name(self) -> str:
        """The account's name in the bag: its files are ``data/USER@HOST.…``."""
        return f"{self.user}@{self.host}"


def parse_account(text: str) -> Account:
    """The account *text* names; UsageError for anything but ``imaps://USER@HOST[:PORT]`` or
    ``imap://USER@HOST[:PORT]`` (STARTTLS)."""
    example = "e.g. --imap imaps://jane@mail.example.com"
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() not in ("imaps", "imap") or not parts.hostname:
        raise UsageError(f"--imap needs an address like imaps://USER@HOST, not {text!r}",
                         hint=example)
    if parts.password is not None:
        raise UsageError("do not put the password in the --imap address: the address is recorded "
                         "in the bundle", hint="the password is asked for, or read from "
                         "--imap-password-file or the variable EVIDENCEKIT_IMAP_PASSWORD")
    if not parts.username:
        raise UsageError("the --imap address names no user", hint=example)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(f"the --imap address should name only the user and the server: {text!r}",
                         hint="choose folders with --folder NAME (or --all-folders)")
    starttls = parts.scheme.lower() == "imap"
    try:
        port = parts.port or (IMAP_PORT if starttls else IMAPS_PORT)
    except ValueError:
        raise UsageError(f"the port in {text!r} is not a number from 1 to 65535") from None
    return Account(text, urllib.parse.unquote(parts.username), parts.hostname, port, starttls)


@dataclass(frozen=True)
class Password:
    """A password (or a provider's app password). ``repr`` never shows it."""

    secret: str

    def __repr__(self) -> str:
        return "Password(…)"


@dataclass(frozen=True)
class BearerToken:
    """An OAuth2 access token, logged in with SASL XOAUTH2 (Gmail, Microsoft 365)."""

    secret: str

    def __repr__(self) -> str:
        return "BearerToken(…)"


Credential = Password | BearerToken
