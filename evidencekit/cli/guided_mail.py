"""The guided session's "e-mails from my mailbox": an e-mail address typed where files are
chosen (section 7) adds that mailbox, read over IMAP like ``capture --imap``.

The server is guessed from the address for the large providers; otherwise the person is asked
for it. The password (an app password for most large providers, which is explained) is tried at
once, so that a refusal is said while the person is still there to type it again.
"""

from __future__ import annotations

import contextlib
import re
import urllib.parse
from typing import TYPE_CHECKING

from evidencekit.cli.capture_mail import MailRequest
from evidencekit.clock import system_clock
from evidencekit.errors import UsageError

if TYPE_CHECKING:
    from evidencekit.cli.guided import Prompter
    from evidencekit.sources.mail import Trust

# The mail source (ssl, IMAP) is imported once an address is typed: every capture imports the
# guided session for its incident options, and with it this module (issue 27, start-up).

_APP_PASSWORD = ("{name} does not let programs use your usual password: make an [bold]app "
                 "password[/] for evidencekit ({where}) and type that. It only reads your "
                 "mail; you can delete it afterwards.")

# domain -> (provider, IMAP server, where its app passwords are made, or None)
PROVIDERS: dict[str, tuple[str, str, str | None]] = {
    **{d: ("Google", "imap.gmail.com", "Google account → Security → 2-Step Verification → "
           "App passwords") for d in ("gmail.com", "googlemail.com")},
    **{d: ("Microsoft", "outlook.office365.com", "account.microsoft.com → Security → "
           "Advanced security options → App passwords")
       for d in ("outlook.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "live.com",
                 "live.fr", "msn.com")},
    **{d: ("Yahoo", "imap.mail.yahoo.com", "Yahoo account → Account security → Generate app "
           "password") for d in ("yahoo.com", "yahoo.co.uk", "yahoo.fr", "ymail.com")},
    **{d: ("Apple", "imap.mail.me.com", "appleid.apple.com → Sign-In and Security → "
           "App-Specific Passwords") for d in ("icloud.com", "me.com", "mac.com")},
    "aol.com": ("AOL", "imap.aol.com", "AOL account → Account security → Generate app password"),
    **{d: ("GMX", "imap.gmx.net", None) for d in ("gmx.com", "gmx.net", "gmx.de", "gmx.at")},
    "web.de": ("WEB.DE", "imap.web.de", None),
    "orange.fr": ("Orange", "imap.orange.fr", None),
    "free.fr": ("Free", "imap.free.fr", None),
    **{d: ("Yandex", "imap.yandex.com", "Yandex ID → Security → App passwords")
       for d in ("yandex.com", "yandex.ru")},
    **{d: ("Zoho", "imap.zoho.com", None) for d in ("zoho.com", "zohomail.com")},
}
NO_IMAP = {"proton.me": "Proton Mail", "protonmail.com": "Proton Mail", "tutanota.com": "Tuta",
           "tuta.io": "Tuta"}

_ADDRESS = re.compile(r"^[^@\s/]+@([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+)$")


def label(mailbox: MailRequest) -> str:
    """How the session names a mailbox it chose (its user is the address typed)."""
    account = mailbox.account
    return f"e-mails of {account.user} (all folders, read-only, from {account.host})"


def guess_server(address: str) -> tuple[str, str, str | None] | None:
    """(provider, IMAP server, where app passwords are made) for a large provider's address."""
    return PROVIDERS.get(address.rsplit("@", 1)[-1].lower())


def is_address(answer: str) -> bool:
    return bool(_ADDRESS.match(answer.strip()))


def take_answer(p: Prompter, answer: str, chosen: list[MailRequest], trust: Trust | None = None
                ) -> bool:
    """Whether *answer* was an e-mail address: then its mailbox is added to *chosen* (asking
    the server when it cannot be guessed, and the password, tried at once), or removed from it
    when it was there already. *p* is the session's Prompter."""
    from rich.markup import escape

    address = answer.strip()
    if not is_address(address):
        return False
    known = [c for c in chosen if c.account.user.lower() == address.lower()]
    if known:
        chosen.remove(known[0])
        p.say(f"  The e-mails of {escape(address)} will not be copied.")
        return True
    domain = address.rsplit("@", 1)[1].lower()
    if domain in NO_IMAP:
        p.say(f"  {NO_IMAP[domain]} cannot be read from outside its own apps: export the "
              "messages there (as .eml files) and add the folder instead.")
        return True
    p.say("  evidencekit copies the messages from the mailbox itself, exactly as the server "
          "holds them, without marking anything read or changing anything.")
    guessed = guess_server(address)
    if guessed is not None:
        name, server, where = guessed
        p.say(f"  Server: {server} ({name}).")
        if where:
            p.say("  " + _APP_PASSWORD.format(name=name, where=escape(where)))
    else:
        server = p.ask("What is your provider's IMAP server?",
                       "For example imap.example.com (your provider's help pages say it). "
                       "Enter to give up this mailbox.")
        if not server:
            return True
    from evidencekit.sources.mail import MailError, Password, Selection, Trust, parse_account

    try:
        account = parse_account(f"imaps://{urllib.parse.quote(address, safe='')}@{server}")
    except UsageError as exc:
        p.say(f"  {escape(exc.message)}")
        return True
    secret = p.secret(f"Password for {address}:")
    if not secret:
        p.say("  No password: the mailbox is not added.")
        return True
    request = MailRequest(account, Password(secret), Selection(), trust or Trust())
    try:
        _try_login(request)
    except MailError as exc:
        p.say(f"  [red]{escape(exc.message)}[/]")
        if exc.hint:
            p.say(f"  {escape(exc.hint)}")
        p.say("  Type the address again to try once more.")
        return True
    chosen.append(request)  # its account's user is *address*
    p.say(f"  [green]✓[/] the e-mails of {escape(address)} will be copied.")
    return True


def _try_login(request: MailRequest) -> None:
    from evidencekit.sources.mail.server import log_in, open_connection

    client, _ = open_connection(request.account, request.trust, system_clock)
    try:
        log_in(client, request.account, request.credential)
    finally:
        with contextlib.suppress(Exception):  # already closed after a refused login
            client.logout()
