"""For victims: the guided capture session, and the incident record from flags or a YAML file.

``evidencekit capture`` with no sources on a terminal asks a few short questions (every one can be
skipped with Enter), shows a summary, and writes nothing until the person says yes. All prompting
goes through a :class:`Prompter`, so tests can drive every answer; :class:`RichPrompter` is the
real terminal. Ctrl-C at any point leaves nothing behind (exit 130, handled by ``app.run``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
import re
import shlex
import urllib.parse
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rich.markup import escape

from evidencekit import amounts
from evidencekit import incident as inc
from evidencekit.capture import CaseInfo
from evidencekit.cli import capture_mail, guided_mail, render
from evidencekit.cli.capture_request import capture_request, chosen, signing_key_for
from evidencekit.cli.keyring import (
    default_signing_key_path,
    recipients_from,
    refuse_new_key_inside,
)
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.errors import (
    EvidenceKitError,
    ExitCode,
    Interrupted,
    OutputError,
)
from evidencekit.fs.noatime import scan_directory
from evidencekit.hostinfo import user_name
from evidencekit.publictext import check_line
from evidencekit.sources.files.source import sources_of
from evidencekit.sources.files.walk import Source, entries_below, source_reaching
from evidencekit.text import human_size, plural

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

    from evidencekit.sources.mail import Trust

# The mail and web sources (ssl, IMAP, HTML parsing: some 40 ms) are imported where a session
# uses them, not by every capture, which imports this module for its incident options (issue 27).

# ------------------------------------------------------------------------- prompting, injectable
class Prompter(Protocol):
    """Where the guided session talks and listens. Answers are returned stripped; "" = skipped."""

    def say(self, text: str) -> None: ...

    def ask(self, question: str, hint: str = "") -> str: ...

    def secret(self, question: str) -> str: ...


class RichPrompter:
    """The terminal: rich text on stderr (stdout stays clean), answers from stdin."""

    def __init__(self) -> None:
        self.console = render.err

    def say(self, text: str) -> None:
        # The shared console soft-wraps (a long path in a message stays one line to copy);
        # sentences for people wrap at words instead of where the terminal cuts them.
        self.console.print(text, soft_wrap=False)

    def ask(self, question: str, hint: str = "") -> str:
        if hint:
            self.console.print(f"  [dim]{hint}[/]", soft_wrap=False)
        try:
            return self.console.input(f"[bold cyan]?[/] {question} ").strip()
        except EOFError:  # Ctrl-D: treat like Ctrl-C, nothing is written
            raise KeyboardInterrupt from None

    def secret(self, question: str) -> str:
        try:
            return self.console.input(f"[bold cyan]?[/] {question} ", password=True)
        except EOFError:
            raise KeyboardInterrupt from None


# ------------------------------------------------------------------------------------ the plan
@dataclass(frozen=True)
class Protection:
    """How the bundle will be encrypted, and how to say so to a person."""

    recipients: list[age.Recipient]
    label: str  # for people: "a passphrase", "the investigator's key (age1…)"
    passphrase: bool = False


NO_PROTECTION = Protection([], "")


@dataclass
class GuidedDefaults:
    """What the command line already said (used as defaults; the session never asks for it)."""

    output: Path | None = None
    case_id: str = ""
    recipients: list[age.Recipient] = field(default_factory=list)
    protection: str = ""  # how the recipients were given, for people
    ask_passphrase: bool = False  # -p: the session asks for the passphrase and offers no key
    incident: inc.Incident = field(default_factory=inc.Incident)  # prepared (--incident, flags)
    incident_source: str = ""  # where the prepared record came from, for people
    home: Path = field(default_factory=Path.home)
    system: str = field(default_factory=platform.system)
    cwd: Path = field(default_factory=Path.cwd)
    zone: tuple[dt.tzinfo, str] | None = None  # (zone, IANA name or ""); default: this computer's
    examiner: str = ""  # the name offered for the record (settings, or the user name if "")
    examiner_given: bool = False  # --examiner was given: that name is used, not asked
    tsa_urls: tuple[str, ...] = ()  # --tsa or the configured TSAs: offered after the capture
    tsa_roots: list[Certificate] | None = None  # --tsa-ca: their answers are checked against
    new_signing_key: Path | None = None  # the personal key the capture will create, if any
    # The key that signs (the personal key, or --sign-key): a bundle protected by someone
    # else's key is encrypted to it too, so that the person who made it can open it and print
    # its report (docs/decisions/own-key.md). None: not added.
    own_key: Path | None = None
    # how mail servers' certificates are trusted (the system's authorities; a test pins)
    mail_trust: Trust | None = None


@dataclass
class Suggestion:
    path: Path
    why: str
    selected: bool = True


@dataclass
class Plan:
    """Everything the session collected; nothing has been written yet."""

    incident: inc.Incident
    sources: list[Path]
    protection: Protection
    output: Path
    incident_source: str = ""
    examiner: str = ""  # who is capturing, as the record (custody log, manifest) will say
    own_key: Path | None = None  # also encrypted to this signing key (never with a passphrase)
    pages: list[str] = field(default_factory=list)  # web pages to save (capture --url)
    mailboxes: list[capture_mail.MailRequest] = field(default_factory=list)  # capture --imap

    @property
    def opened_with_own_key(self) -> bool:
        return self.own_key is not None and not self.protection.passphrase


TYPE_EXPLANATIONS = {
    "phishing": "a fake message or website asked for passwords, codes or card details",
    "online-fraud": "you paid for something that never came, or were tricked into paying",
    "account-takeover": "someone else got into one of your accounts",
    "ransomware-extortion": "your files were locked, or someone threatens you unless you pay",
    "harassment": "threatening, abusive or unwanted messages",
    "identity-theft": "someone used your name, documents or details",
    "other": "something else",
}

TYPE_ADVICE = {
    "phishing": "Don't delete the messages or emails — we copy them; the originals stay untouched.",
    "online-fraud": "Keep receipts, chats and bank statements. Call your bank soon: a quick "
                    "report can sometimes stop or recall a payment.",
    "account-takeover": "Take screenshots of the account's security page (recent logins, devices, "
                        "changed settings) before you change anything.",
    "ransomware-extortion": "Don't wipe or reinstall the computer yet. Keep the ransom note; a few "
                            "of the locked files help too.",
    "harassment": "Keep every message, even the worst ones: screenshots that show the date and "
                  "the sender are best.",
    "identity-theft": "Keep the letters, emails and statements about accounts or orders that are "
                      "not yours.",
    "other": "Keep everything — messages, screenshots, statements. We copy them; nothing is "
             "changed.",
}

def explain(exc: inc.IncidentError) -> str:
    """The problem and its hint as two sentences a person can read (escaped for rich)."""
    return " ".join(escape(_sentence(text)) for text in (exc.problem, exc.hint or "") if text)


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "?", "!", ")")) else text + "."


# ------------------------------------------------------------------------- where evidence lives
MAIL_SUFFIXES = (".eml", ".msg", ".mbox", ".emlx")


def suggestions(incident_type: str | None, home: Path, system: str) -> list[Suggestion]:
    """The usual places for evidence of this kind on this system; only existing ones selected."""
    found: list[Suggestion] = []
    screenshots = {"Darwin": [(home / "Desktop", "screenshots (macOS saves them on the Desktop)"),
                              (home / "Pictures" / "Screenshots", "screenshots")],
                   "Windows": [(home / "Pictures" / "Screenshots", "screenshots"),
                               (home / "OneDrive" / "Pictures" / "Screenshots",
                                "screenshots (OneDrive)")]}.get(
        system, [(home / "Pictures" / "Screenshots", "screenshots")])
    downloads = (home / "Downloads", "statements, invoices and attachments you downloaded")
    desktop = (home / "Desktop", "files you saved on the desktop")
    if incident_type == "ransomware-extortion":
        places = [(home / "Desktop", "the ransom note usually appears on the desktop"), downloads,
                  *screenshots]
    else:
        places = [*screenshots, downloads, desktop]
    for path, why in places:
        if all(s.path != path for s in found):
            found.append(Suggestion(path, why, path.is_dir()))
    for folder in (home / "Downloads", home / "Desktop", home / "Documents"):
        for mail in _mail_exports(folder):
            if not any(s.selected and s.path in mail.parents for s in found):
                found.append(Suggestion(mail, "an exported email"))
    return found


def _mail_exports(folder: Path, limit: int = 2000) -> list[Path]:
    """Exported emails directly in *folder* (bounded: a huge Downloads folder is not walked)."""
    found = []
    try:
        with scan_directory(folder, follow=True) as entries:  # keeps the folder's access time
            for n, entry in enumerate(entries):
                if n >= limit:
                    break
                if entry.name.lower().endswith(MAIL_SUFFIXES) and entry.is_file(
                        follow_symlinks=False):
                    found.append(folder / entry.name)
    except OSError:
        pass
    return sorted(found)


def describe_size(path: Path, limit: int = 5000) -> str:
    """'12 files, 3.4 MiB' for a folder (counting stops at *limit* entries), or a file's size."""
    try:
        if not path.is_dir():
            return human_size(path.stat().st_size) if path.exists() else "not found"
    except OSError:
        return "cannot be read"
    files = total = 0
    with suppress(OSError):  # the folder itself may be a link the user made: followed
        for seen, entry in enumerate(entries_below(path, follow=True), 1):
            if seen > limit:
                return f"more than {files} files, over {human_size(total)}"
            with suppress(OSError):
                if entry.is_dir():  # a folder, or a link to one (not followed): not a file
                    continue
                total += entry.stat(follow_symlinks=False).st_size
                files += 1
    return f"{files} file{'' if files == 1 else 's'}, {human_size(total)}"


# --------------------------------------------------------------------------------- the session
def _choose_type(p: Prompter) -> str | None:
    keys = list(inc.INCIDENT_TYPES)
    p.say("\n[bold]1. What happened?[/]")
    for n, key in enumerate(keys, 1):
        p.say(f"  {n}) [bold]{inc.INCIDENT_TYPES[key]}[/] — {TYPE_EXPLANATIONS[key]}")
    while True:
        answer = p.ask("Number:", "If you are not sure, pick the closest one — or press Enter "
                       "to skip.")
        if not answer:
            return None
        if answer.isdigit() and 1 <= int(answer) <= len(keys):
            chosen = keys[int(answer) - 1]
            p.say(f"  [green]✓[/] {inc.INCIDENT_TYPES[chosen]}. {TYPE_ADVICE[chosen]}")
            return chosen
        try:
            return inc.incident_type(answer)
        except inc.IncidentError:
            p.say(f"  Please type a number from 1 to {len(keys)}, or press Enter to skip.")


def _ask_moment(p: Prompter, question: str, zone: tuple[dt.tzinfo, str],
                hint: str = "") -> inc.Moment | None:
    zone_text = zone[1] or "this computer's time zone"
    while True:
        answer = p.ask(question, hint or f"Date and time, e.g. 2026-11-16 14:05 (in {zone_text})."
                       " A rough time is fine, or just the date (2026-11-16). Enter to skip.")
        if not answer:
            return None
        try:
            return inc.parse_moment(answer, "time", zone[0])
        except inc.IncidentError as exc:
            p.say(f"  {explain(exc)}")


def _ask_timeline(p: Prompter, zone: tuple[dt.tzinfo, str]) -> list[inc.TimelineEntry]:
    """'What happened when': a time and a few words, again and again until Enter on a time."""
    entries: list[inc.TimelineEntry] = []
    p.say("  Anything else that happened at a certain time? A short timeline helps the police "
          "and the bank: the first message, each payment, a call from the \"bank\".")
    while True:
        if entries:
            moment = _ask_moment(p, "Next time (or Enter when done):", zone,
                                 "e.g. 2026-11-15 08:12, or just the date. Enter when done.")
        else:
            moment = _ask_moment(p, "What happened when? Time:", zone)
        if moment is None:
            return entries
        text = p.ask("What happened then?", "A few words, e.g. paid 450 EUR by bank transfer.")
        if not text:
            p.say("  Left out: a time needs a few words saying what happened.")
            continue
        entries.append(inc.TimelineEntry(moment, text))
        p.say(f"  [green]✓[/] {escape(inc.human_time(moment))}: {escape(_short(text, 50))}")


def _ask_list(p: Prompter, question: str, hint: str) -> list[str]:
    items: list[str] = []
    while True:
        answer = p.ask(question if not items else "Another one?", hint if not items else
                       "Enter when done.")
        if not answer:
            return items
        items.append(answer)


def _ask_losses(p: Prompter) -> list[inc.Loss]:
    losses: list[inc.Loss] = []
    p.say("\n[bold]5. Did you lose money?[/]")
    while True:
        answer = p.ask("Amount and currency:" if not losses else "Another amount?",
                       "e.g. 1250.00 EUR or 1.250,00 € — one payment at a time. Enter to skip."
                       if not losses else "Enter when done.")
        if not answer:
            return losses
        money = _ask_money(p, answer)
        if money is None:
            continue
        institution = p.ask("Paid through which bank or service?", "e.g. Example Bank, PayPal, "
                            "a gift card shop. Enter to skip.")
        date = _ask_date(p)
        reference = p.ask("Transaction reference?", "From your statement or receipt. Enter to "
                          "skip.")
        losses.append(inc.Loss(money.amount, money.currency, date, institution, reference))


def _ask_money(p: Prompter, answer: str) -> amounts.Money | None:
    """The amount typed, read back in words; a form that reads two ways is asked about."""
    money: amounts.Money | None
    try:
        money = inc.money(answer, "loss")
    except inc.AmbiguousMoney as exc:
        money = _which_reading(p, exc)
    except inc.IncidentError as exc:
        p.say(f"  {explain(exc)}")
        return None
    if money is None:
        return None
    p.say(f"  [green]✓[/] {escape(amounts.described(money))}")
    return money


def _which_reading(p: Prompter, exc: inc.AmbiguousMoney) -> amounts.Money | None:
    currency = exc.currency
    readings = exc.readings
    p.say(f"  {escape(exc.text)} can be read two ways:")
    for n, amount in enumerate(readings, 1):
        p.say(f"    {n}) {escape(amounts.shown(amount, currency))} — "
              f"{escape(amounts.in_words(amount, currency))}")
    while True:
        choice = p.ask("Which one did you mean? 1 or 2:", "Enter to type the amount again.")
        if not choice:
            return None
        if choice in ("1", "2"):
            try:
                return inc.reading(exc, int(choice), "loss")
            except inc.IncidentError as error:
                p.say(f"  {explain(error)}")
                return None
        p.say("  Please type 1 or 2, or press Enter to type the amount again.")


def _ask_date(p: Prompter) -> str | None:
    while True:
        answer = p.ask("On which date?", "YYYY-MM-DD, e.g. 2026-11-16. Enter to skip.")
        try:
            return inc.loss_date(answer)
        except inc.IncidentError as exc:
            p.say(f"  {explain(exc)}")


def _ask_identifiers(p: Prompter) -> list[inc.Identifier]:
    found: list[inc.Identifier] = []
    p.say("\n[bold]6. Contact details the criminals used[/]")
    while True:
        answer = p.ask("Phone, email, website, account, IBAN or wallet:" if not found else
                       "Another one?", "Copy them exactly as you saw them. One at a time; "
                       "Enter to skip." if not found else "Enter when done.")
        if not answer:
            return found
        item = _identified(p, answer)
        if item is not None:
            found.append(item)
            p.say(f"  [green]✓[/] recorded as {escape(inc.kind_label(item.kind))}")


def _identified(p: Prompter, answer: str) -> inc.Identifier | None:
    """*answer* as the kind it looks like; an IBAN whose check digits fail is said so, to be
    typed again or kept as written (as 'other'), never changed in silence. None: typed again."""
    found = inc.guessed_identifier(answer)
    if found.kind == "other" and inc.looks_like_iban(answer):
        p.say(f"  [yellow]{escape(answer)} looks like an IBAN, but its check digits do not "
              "match:[/] a letter or digit may have been mistyped.")
        again = p.ask("Type it again to correct it, or press Enter to keep it as written:",
                      "Kept as written, it is recorded as 'other' (not as an IBAN).")
        if again:
            return _identified(p, again)
    return found


@dataclass
class Page:
    """A web page offered for saving (``capture --url``): one named in the contact details
    (offered, not chosen: the site sees who fetches it), or typed in."""

    url: str
    why: str
    selected: bool = False


def _named_pages(record: inc.Incident, chosen: list[str] | None = None) -> list[Page]:
    """The pages already chosen, then the web addresses of the contact details (6) not chosen."""
    pages = [Page(url, "added by you", True) for url in chosen or []]
    for identifier in record.identifiers:
        url = _page_url(identifier.value) if identifier.kind == "url" else None
        if url and all(page.url != url for page in pages):
            pages.append(Page(url, "a web address you named (6): type its number to save the "
                          "page as it is now"))
    return pages


def _page_url(text: str) -> str | None:
    """*text* as a web address to fetch (``https://`` added when no scheme was written); None
    when it cannot be one."""
    text = text.strip()
    if "://" not in text:
        text = "https://" + text
    from evidencekit.sources.web import check_url

    try:
        return check_url(text)
    except EvidenceKitError:
        return None


def _ask_sources(p: Prompter, incident_type: str | None, defaults: GuidedDefaults,
                 chosen: list[Path] | None = None, pages: list[Page] | None = None,
                 mailboxes: list[capture_mail.MailRequest] | None = None) -> list[Path]:
    """The files and folders to copy; with *pages*, web pages too (typed as https://…, chosen
    in *pages* itself)."""
    items = suggestions(incident_type, defaults.home, defaults.system)
    if chosen is not None:  # changing the list from the summary: start from what was chosen
        for item in items:
            item.selected = item.path in chosen
        items += [Suggestion(path, "added by you") for path in chosen
                  if all(item.path != path for item in items)]
    p.say("\n[bold]7. What should be copied?[/]")
    p.say("  Screenshots, downloaded statements and exported emails are the usual evidence. "
          "Folders are copied whole. Nothing is moved or changed.")
    if pages is not None:
        p.say("  A web page used against you (a fake shop, a fake bank's sign-in page) can be "
              "saved as it is now, with its pictures and a screenshot: paste its address "
              "(https://…). The site sees this computer's internet address, as when you "
              "visited it.")
    if mailboxes is not None:
        p.say("  E-mails from your mailbox: type your e-mail address (e.g. jane@gmail.com) to "
              "copy the messages from the mailbox itself, without marking anything read.")
    while True:
        for n, item in enumerate(items, 1):
            mark = "[green]✓[/]" if item.selected else " "
            state = describe_size(item.path) if item.path.exists() else "[dim]not found[/]"
            p.say(f"  {mark} {n}) {escape(str(item.path))} — {escape(item.why)} ({state})")
        for n, page in enumerate(pages or [], len(items) + 1):
            mark = "[green]✓[/]" if page.selected else " "
            p.say(f"  {mark} {n}) {escape(page.url)} — {escape(page.why)}")
        for mailbox in mailboxes or []:
            p.say(f"  [green]✓[/]    {escape(guided_mail.label(mailbox))} (type the address again to leave "
                  "it out)")
        if not items and not pages:
            p.say("  (no suggestions: type the path of a file or folder to add it)")
        answer = p.ask("Change the list?", "Enter to keep it. Type a number to leave it out or "
                       "put it back, or the path of a file or folder to add"
                       + (", or a web address." if pages is not None else "."))
        if pages is not None and _page_answer(p, answer, pages, len(items)):
            continue
        if mailboxes is not None and guided_mail.take_answer(p, answer, mailboxes,
                                                             defaults.mail_trust):
            continue
        if not answer:
            chosen = [s.path for s in items if s.selected]
            if not _gone_said(p, items) and not _key_would_change(p, defaults, chosen):
                return chosen
            continue
        if answer.isdigit() and 1 <= int(answer) <= len(items):
            item = items[int(answer) - 1]
            if item.selected:  # even one no longer there: leaving it out is the way on
                item.selected = False
            elif not item.path.exists():
                p.say(f"  {escape(str(item.path))} does not exist on this computer.")
            else:
                _select(p, item, items)
            continue
        path = _typed_path(answer)
        if not os.path.lexists(path):
            p.say(f"  Not found: {escape(str(path))}. Check the spelling, or drag the file into "
                  "this window to paste its path.")
        elif not path.exists():  # the capture would refuse it, after every other question
            p.say(f"  {escape(str(path))} is a shortcut (link) that points to something that no "
                  "longer exists: type the path of the file or folder itself.")
        elif any(s.path == path for s in items):
            _select(p, next(s for s in items if s.path == path), items)
        else:
            item = Suggestion(path, "added by you", selected=False)
            if _select(p, item, items):
                items.append(item)


def _gone(sources: list[Path]) -> list[Path]:
    """The chosen files and folders no longer there (deleted, moved, a USB stick pulled out):
    the capture would refuse them ('source not found'), as it refuses a broken link."""
    return [path for path in sources if not path.exists()]


def _say_gone(p: Prompter, paths: list[Path]) -> None:
    for path in paths:
        p.say(f"\n[yellow]{escape(str(path))} is no longer there.[/]")
    p.say("  If it was on a USB stick or a disk, plug it back in, then press Enter at the "
          "list; or type its number to leave it out. Nothing has been written yet, and your "
          "other answers are kept.")


def _gone_said(p: Prompter, items: list[Suggestion]) -> bool:
    """Say so when something ticked in the list is no longer there (it would be refused)."""
    missing = _gone([item.path for item in items if item.selected])
    if missing:
        _say_gone(p, missing)
    return bool(missing)


def _page_answer(p: Prompter, answer: str, pages: list[Page], first: int) -> bool:
    """Whether *answer* was about a web page (its number after the *first* files, or an
    address typed): then *pages* is changed and what happened said."""
    if answer.isdigit() and first < int(answer) <= first + len(pages):
        page = pages[int(answer) - first - 1]
        page.selected = not page.selected
        return True
    if ("://" not in answer and not answer.lower().startswith("www.")) or _file_uri(answer):
        return False  # a path
    url = _page_url(answer)
    if url is None:
        p.say(f"  {escape(answer)} is not a web address evidencekit can save.")
    elif any(page.url == url for page in pages):
        next(page for page in pages if page.url == url).selected = True
    else:
        pages.append(Page(url, "added by you", True))
    return True


def _select(p: Prompter, item: Suggestion, items: list[Suggestion]) -> bool:
    """Put *item* in the list unless a folder already chosen holds it (it would be copied
    twice); chosen items inside it are taken out, since it brings them. Says what it did."""
    chosen = [s for s in items if s.selected and s is not item]
    holder = _holding(item.path, [s.path for s in chosen])
    if holder is not None:
        p.say(f"  {escape(str(item.path))} is inside {escape(str(holder))}, which is already "
              "being copied: it is copied with it, not added a second time.")
        return False
    item.selected = True
    for inner in chosen:
        if _holding(inner.path, [item.path]) is not None:
            inner.selected = False
            p.say(f"  {escape(str(inner.path))} is inside {escape(str(item.path))}: it is "
                  "copied with it, so it is no longer listed on its own.")
    return True


def _holding(path: Path, folders: list[Path]) -> Path | None:
    """The one of *folders* whose copy includes *path* (the same folder, or one inside it),
    compared as the capture compares them (device and inode: links, other spellings). A link
    typed is what it points to: a folder's copy stores a link inside it as a link, not what
    the link reaches (a chosen source that is a link is followed, as on the command line)."""
    target = path.resolve() if path.exists() else path  # a broken link: as its folder holds it
    place = target if target.is_dir() and not target.is_symlink() else target.parent
    if not place.is_dir():
        return None
    for folder in folders:
        if folder.is_dir() and source_reaching(place, _walked([folder])) is not None:
            return folder
    return None


def _file_uri(answer: str) -> bool:
    return answer.strip().strip("'\"").lower().startswith("file://")


def _typed_path(answer: str) -> Path:
    """A path as typed or dragged into a terminal: quotes, ~ and backslash-escaped spaces. A
    name that exists as typed is that name (`note'` is not `note`); then as a shell reads it
    (a terminal quotes `it's.txt` as 'it'\\''s.txt'); then the quotes at its ends dropped."""
    if _file_uri(answer):  # some file managers drag in file:///home/jane/My%20File.png
        return _path_of_file_uri(answer.strip().strip("'\""))
    readings = [answer.strip()]
    with suppress(ValueError):  # an unclosed quote
        words = shlex.split(answer)
        if len(words) == 1:
            readings.append(words[0])
    text = answer.strip().strip("'\"")
    if not os.path.lexists(os.path.expanduser(text)) and "\\" in text:
        text = re.sub(r"\\(.)", r"\1", text)  # macOS Terminal drags in "My\ File.png"
    readings.append(text)
    found = next((r for r in readings if os.path.lexists(os.path.expanduser(r))), text)
    return Path(os.path.expanduser(found)).absolute()


def _path_of_file_uri(uri: str) -> Path:
    """The path of a file:// address on this computer (file:///x or file://localhost/x);
    another host's is kept as typed, so it is said not found."""
    parts = urllib.parse.urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        return Path(uri)
    return Path(urllib.parse.unquote(parts.path)).absolute()


def _ask_protection(p: Prompter, defaults: GuidedDefaults) -> Protection:
    p.say("\n[bold]8. How should the bundle be protected?[/] It is always encrypted.")
    if defaults.recipients:  # chosen on the command line: say so, don't ask
        label = defaults.protection or "the key(s) given on the command line"
        p.say(f"  [green]✓[/] With {escape(label)}, as given on the command line.")
        passphrase = all(isinstance(r, age.ScryptRecipient) for r in defaults.recipients)
        if defaults.own_key and not passphrase:
            p.say(OWN_KEY_TOO)
        return Protection(defaults.recipients, label, passphrase)
    if defaults.ask_passphrase:
        p.say("  With a passphrase, as asked on the command line (-p).")
        return _passphrase_protection(p)
    p.say("  1) with a [bold]passphrase[/] you choose — give it to the police separately, e.g. "
          "by phone\n  2) with the [bold]investigator's key[/], if they gave you one (a line "
          "starting with age1… or ssh-ed25519)")
    while True:
        choice = p.ask("1 or 2:", "Enter for a passphrase.")
        if choice in ("", "1"):
            return _passphrase_protection(p)
        if choice == "2":
            return _ask_key(p, defaults.own_key is not None)
        p.say("  Please type 1 or 2.")


def _passphrase_protection(p: Prompter) -> Protection:
    secret = _ask_passphrase(p)
    if not secret:
        return NO_PROTECTION
    return Protection([age.ScryptRecipient(secret.encode("utf-8"))], "a passphrase", True)


def _ask_passphrase(p: Prompter) -> str:
    p.say("  Choose something long that you can read out over the phone, such as four random "
          "words. Without it nobody can open the bundle — not even us — so write it down and "
          "keep it apart from the bundle.")
    for _ in range(3):
        first = p.secret("Passphrase (hidden as you type):")
        if not first:
            p.say("  [yellow]No passphrase: without one (or a key) the bundle cannot be made.[/]")
            return ""
        if len(first) < 8:
            p.say("  That is short and easy to guess: please use at least 8 characters.")
            continue
        if p.secret("The same passphrase again:") == first:
            return first
        p.say("  The two did not match. Let's try again.")
    return ""


OWN_KEY_TOO = ("  [green]✓[/] The bundle is also locked with your own key, so that you can "
               "open it yourself and print your report.")


def _ask_key(p: Prompter, own_key: bool) -> Protection:
    while True:
        answer = p.ask("The investigator's key:", "Paste the line, or type the path of the file "
                       "they sent (e.g. investigator.pub). Enter to skip.")
        if not answer:
            return NO_PROTECTION
        try:
            path = Path(os.path.expanduser(answer.strip("'\"")))
            found = recipients_from((), (path,)) if path.is_file() else recipients_from(
                (answer,), ())
            shown = str(found[0])
            if own_key:
                p.say(OWN_KEY_TOO)
            return Protection(found, f"the investigator's key ({shown[:24]}…)")
        except EvidenceKitError as exc:
            p.say(f"  That is not a key evidencekit can use: {escape(exc.message)}")


def _ask_name(p: Prompter, defaults: GuidedDefaults) -> str:
    """Who is capturing, in their own words (default: the settings' name or the user name)."""
    name = defaults.examiner or user_name()
    if defaults.examiner_given:
        p.say(f"  [green]✓[/] Your name: {escape(name)}, as given on the command line.")
        return name
    while True:
        answer = p.ask("Your name, as it should appear in the record:",
                       "The bundle says who made it, and anyone who has the file can read this "
                       f"name: it is not encrypted. Enter for {escape(name)}.") or name
        try:  # public text: one line a reader can read back (evidencekit.publictext)
            return check_line(answer, "Your name")
        except EvidenceKitError as exc:
            p.say(f"  {escape(exc.message)}")


def _ask_output(p: Prompter, defaults: GuidedDefaults, case_id: str, sources: list[Path]) -> Path:
    captured = _walked(sources)
    name = (defaults.output or Path(f"{case_id}.evidence")).name
    offered = (defaults.output or defaults.cwd / name).absolute()
    if defaults.output is None and _inside(offered.parent, captured):
        offered = defaults.home / name  # the current folder is being saved
    # the home folder too: then the person has to say where
    default = None if _inside(offered.parent, captured) else offered
    while True:
        hint = f"Enter for {escape(str(default))}" if default else \
            "Type a folder outside what you are saving, for example a USB stick"
        answer = p.ask("Where should the bundle be saved?", hint)
        if not answer and default is None:
            p.say("  Please type where to save it: a folder outside the ones being saved.")
            continue
        target = Path(os.path.expanduser(answer.strip("'\""))).absolute() if answer else default
        assert target is not None
        if target.is_dir():
            target = target / name
        if os.path.lexists(target):
            p.say(f"  {escape(str(target))} already exists; evidencekit never overwrites a "
                  "bundle. Please choose another name.")
        elif not target.parent.is_dir():
            p.say(f"  The folder {escape(str(target.parent))} does not exist.")
        elif (inside := _inside(target.parent, captured)) is not None:
            p.say(f"  {escape(_where(target.parent, inside))}: putting the bundle there would "
                  "change your evidence. Please choose a place outside it, such as a USB stick.")
        else:
            return target


def _inside(folder: Path, captured: list[Source]) -> Source | None:
    return source_reaching(folder, captured) if folder.is_dir() else None


def _where(folder: Path, source: Source) -> str:
    """'X is one of the folders you are saving', or which one it lies in."""
    if os.path.samefile(folder, os.fsdecode(source.path)):
        return f"{folder} is one of the folders you are saving"
    return f"{folder} is inside {os.fsdecode(source.given)}, which you are saving"


def _walked(sources: list[Path]) -> list[Source]:
    """The chosen sources as the capture will walk them (those gone since are left out)."""
    found = [os.fsencode(path) for path in sources if os.path.lexists(path)]
    return sources_of(found)


def _key_would_change(p: Prompter, defaults: GuidedDefaults, sources: list[Path]) -> bool:
    """Say so when the personal signing key, made on first use, would be written into one of
    the folders chosen (the whole home folder, ~/.config included)."""
    if defaults.new_signing_key is None:
        return False
    try:
        refuse_new_key_inside(defaults.new_signing_key, _walked(sources))
    except OutputError:
        key = escape(str(defaults.new_signing_key))
        p.say(f"  [yellow]Your personal signing key is made the first time, as {key}: that is "
              "inside a folder in this list, and would change your evidence.[/] Type that "
              "folder's number to leave it out, or press Ctrl-C to stop, create the key first "
              f"with [bold]evidencekit key generate -o {key}[/], and start again.")
        return True
    return False


def interview(p: Prompter, defaults: GuidedDefaults, case_id: str) -> Plan | None:
    """Ask everything, show the summary, let the person change any part of it; return the plan
    once confirmed, None when they stop without saving."""
    _welcome(p, defaults)
    record = _ask_incident(p, defaults.incident, _session_zone(defaults))
    pages = _named_pages(record)
    mailboxes: list[capture_mail.MailRequest] = []
    sources = _ask_sources(p, record.incident_type, defaults, pages=pages, mailboxes=mailboxes)
    protection = _ask_protection(p, defaults)
    p.say("\n[bold]9. Saving[/]")
    examiner = _ask_name(p, defaults)
    output = _ask_output(p, defaults, case_id, sources)
    plan = Plan(record, sources, protection, output, defaults.incident_source, examiner,
                defaults.own_key, [page.url for page in pages if page.selected], mailboxes)
    while True:
        _summary(p, plan)
        section = _confirm(p, plan)
        missing = _gone(plan.sources) if section is None else []
        if missing:  # since it was chosen: back to the list, not a refusal losing every answer
            _say_gone(p, missing)
            section = 7
        if section is None:
            return plan
        if section == 0:
            p.say("Nothing was written. Run [bold]evidencekit capture[/] again when you are "
                  "ready.")
            return None
        plan = _change(p, plan, section, defaults, case_id)


SECTIONS = {1: "What happened", 2: "In your own words", 3: "When", 4: "What is affected",
            5: "Money lost", 6: "Contact details", 7: "What is copied", 8: "Protection",
            9: "Your name and where it is saved"}


def _confirm(p: Prompter, plan: Plan) -> int | None:
    """None: make the bundle; 0: stop without saving; 1–9: change that part of the summary."""
    missing = "" if (plan.sources or plan.pages or plan.mailboxes) and plan.protection.recipients else (
        "nothing to copy was chosen (7)" if not (plan.sources or plan.pages or plan.mailboxes) else
        "no way to protect it was chosen, a passphrase or a key (8)")
    if missing:
        p.say(f"\n[yellow]The bundle cannot be made yet: {missing}.[/]")
    question = "Which part do you want to change?" if missing else \
        "Make the bundle now? (yes/no)"
    hint = ("Nothing has been written yet. Type yes to make it, or the number of a part "
            "(1–9) to change it." if not missing else
            "Type the number of a part (1–9) to change it, or press Enter to stop without "
            "saving anything.")
    while True:
        answer = p.ask(question, hint).lower()
        if answer in ("y", "yes") and not missing:
            return None
        if answer.isdigit() and int(answer) in SECTIONS:
            return int(answer)
        if answer in ("n", "no", "") and question != "Which part do you want to change?":
            question = "Which part do you want to change?"
            hint = ("Type the number of a part (1–9) to change it, or press Enter to stop "
                    "without saving anything.")
            continue
        if answer == "" or answer in ("n", "no", "stop", "quit"):
            return 0
        p.say("  Please type yes, or a number from 1 to 9.")


def _change(p: Prompter, plan: Plan, section: int, defaults: GuidedDefaults,
            case_id: str) -> Plan:
    """Ask one part of the summary again (its earlier answers are replaced)."""
    p.say(f"\n[bold]Changing {section}. {SECTIONS[section]}[/] — the questions of this part "
          "are asked again; your other answers stay as they are.")
    record = plan.incident
    zone = _session_zone(defaults)
    if section == 1:
        record = dataclasses.replace(record, incident_type=_choose_type(p))
    elif section == 2:
        record = dataclasses.replace(record, description=_ask_description(p))
    elif section == 3:
        record = _ask_when(p, dataclasses.replace(record, started=None, noticed=None,
                                                  timeline=()), zone)
    elif section == 4:
        record = _ask_affected(p, dataclasses.replace(record, affected_accounts=(),
                                                      affected_devices=()))
    elif section == 5:
        record = dataclasses.replace(record, losses=tuple(_ask_losses(p)))
    elif section == 6:
        record = dataclasses.replace(record, identifiers=tuple(_ask_identifiers(p)))
    elif section == 7:
        pages = _named_pages(record, plan.pages)
        sources = _ask_sources(p, record.incident_type, defaults, plan.sources, pages,
                               plan.mailboxes)
        plan = dataclasses.replace(plan, sources=sources,
                                   pages=[page.url for page in pages if page.selected])
        if _inside(plan.output.parent, _walked(sources)) is not None:
            p.say("  The place chosen for the bundle is inside what is now being copied: "
                  "please choose another.")
            plan = dataclasses.replace(plan, output=_ask_output(p, defaults, case_id, sources))
    elif section == 8:
        plan = dataclasses.replace(plan, protection=_ask_protection(p, defaults))
    else:
        given = dataclasses.replace(defaults, examiner=plan.examiner or defaults.examiner)
        plan = dataclasses.replace(plan, examiner=_ask_name(p, given),
                                   output=_ask_output(p, defaults, case_id, plan.sources))
    return dataclasses.replace(plan, incident=record)


def _welcome(p: Prompter, defaults: GuidedDefaults) -> None:
    p.say("[bold]evidencekit — let's preserve what happened[/]\n"
          "This makes one sealed, encrypted file (a [italic]bundle[/]) with copies of your "
          "evidence and your own account of what happened, to give to the police, your bank or "
          "your insurer.\n"
          "• Nothing on this computer is changed or deleted: evidencekit only reads.\n"
          "• Press Enter to skip any question. Ctrl-C stops at any time: nothing is saved "
          "until you say yes at the end.")
    if not defaults.incident.empty:
        p.say(f"• What happened was already written down for you "
              f"({escape(defaults.incident_source or 'on the command line')}): the questions "
              "it answers are shown with a [green]✓[/] and not asked again.")


def _session_zone(defaults: GuidedDefaults) -> tuple[dt.tzinfo, str]:
    """The zone of the prepared record when it names one (its times and the new answers must
    agree), else this computer's."""
    named = defaults.incident.time_zone
    if named:
        return inc.zone_named(named), named
    return defaults.zone or inc.local_zone()


def _prepared(p: Prompter, label: str, value: str) -> None:
    p.say(f"  [green]✓[/] {label}: {escape(value)} [dim](already written down)[/]")


def _ask_incident(p: Prompter, prepared: inc.Incident, zone: tuple[dt.tzinfo, str]
                  ) -> inc.Incident:
    """Steps 1 to 6: what happened. Whatever *prepared* already holds is shown, not asked."""
    record = dataclasses.replace(prepared, time_zone=prepared.time_zone or zone[1])
    record = _ask_what(p, record)
    record = _ask_when(p, record, zone)
    record = _ask_affected(p, record)
    if record.losses:
        p.say("\n[bold]5. Did you lose money?[/]")
        _prepared(p, "Money lost", _money(record.losses))
    else:
        record = dataclasses.replace(record, losses=tuple(_ask_losses(p)))
    if record.identifiers:
        p.say("\n[bold]6. Contact details the criminals used[/]")
        _prepared(p, "Contacts used", plural(len(record.identifiers), "contact"))
    else:
        record = dataclasses.replace(record, identifiers=tuple(_ask_identifiers(p)))
    return record


def _ask_affected(p: Prompter, record: inc.Incident) -> inc.Incident:
    p.say("\n[bold]4. What is affected[/]")
    if record.affected_accounts:
        _prepared(p, "Accounts", ", ".join(record.affected_accounts))
    else:
        record = dataclasses.replace(record, affected_accounts=tuple(_ask_list(
            p, "Which accounts?", "e.g. online banking at Example Bank, an email address, a "
            "social media profile. One at a time; Enter to skip.")))
    if record.affected_devices:
        _prepared(p, "Devices", ", ".join(record.affected_devices))
    else:
        record = dataclasses.replace(record, affected_devices=tuple(_ask_list(
            p, "Which devices?", "e.g. laptop, phone. One at a time; Enter to skip.")))
    return record


def _ask_what(p: Prompter, record: inc.Incident) -> inc.Incident:
    if record.incident_type:
        p.say("\n[bold]1. What happened?[/]")
        _prepared(p, "Type", record.type_label)
        p.say(f"  {TYPE_ADVICE[record.incident_type]}")
    else:
        record = dataclasses.replace(record, incident_type=_choose_type(p))
    p.say("\n[bold]2. In your own words[/]")
    if record.description:
        _prepared(p, "What happened", _short(record.description))
        return record
    return dataclasses.replace(record, description=_ask_description(p))


def _ask_description(p: Prompter) -> str:
    return p.ask("What happened?", "A few sentences are enough. This stays encrypted inside "
                 "the bundle. Enter to skip.")


def _ask_when(p: Prompter, record: inc.Incident, zone: tuple[dt.tzinfo, str]) -> inc.Incident:
    p.say("\n[bold]3. When[/]")
    if record.started:
        _prepared(p, "Started", inc.human_time(record.started))
    else:
        record = dataclasses.replace(record, started=_ask_moment(p, "When did it start?", zone))
    if record.noticed:
        _prepared(p, "Noticed", inc.human_time(record.noticed))
    else:
        record = dataclasses.replace(record, noticed=_ask_moment(p, "When did you notice it?",
                                                                 zone))
    if record.timeline:
        _prepared(p, "What happened when", plural(len(record.timeline), "event"))
        return record
    return dataclasses.replace(record, timeline=tuple(_ask_timeline(p, zone)))


def _summary(p: Prompter, plan: Plan) -> None:
    record = plan.incident
    p.say("\n[bold]Summary[/] — please check")
    rows = [(1, "What happened", record.type_label if record.incident_type else "not stated"),
            (2, "Your account", _short(record.description) or "—"),
            (3, "Started", inc.human_time(record.started) if record.started else "—"),
            (3, "Noticed", inc.human_time(record.noticed) if record.noticed else "—"),
            (3, "Timeline", "\n".join(f"{inc.human_time(e.moment)}: "
                                      f"{_short(e.description, 50)}"
                                      for e in record.timeline) or "—"),
            (4, "Accounts", ", ".join(record.affected_accounts) or "—"),
            (4, "Devices", ", ".join(record.affected_devices) or "—"),
            (5, "Money lost", _money(record.losses) or "—"),
            (6, "Contacts used", "\n".join(f"{inc.IDENTIFIER_KINDS[i.kind]}: "
                                           f"{_short(i.value, 50)}"
                                           for i in record.identifiers) or "—"),
            (7, "Copy", "\n".join([*map(str, plan.sources), *plan.pages,
                                   *(guided_mail.label(m) for m in plan.mailboxes)]) or "nothing chosen"),
            (8, "Protected by", _protected_by(plan)),
            (9, "Your name", plan.examiner or "—"),
            (9, "Save as", str(plan.output))]
    if plan.incident_source:
        rows.insert(0, (0, "Written down in", plan.incident_source + ", with your answers"))
    shown = 0
    for section, label, value in rows:
        number = f"{section})" if section and section != shown else ""
        shown = section
        lines = value.split("\n")
        p.say(f"  {number:<3}[bold]{label + ':':<15}[/] {escape(lines[0])}")
        for line in lines[1:]:
            p.say(f"     {'':<15} {escape(line)}")


def _protected_by(plan: Plan) -> str:
    if not plan.protection.label:
        return "nothing chosen"
    if plan.opened_with_own_key:
        return (f"{plan.protection.label}, and your own key (so that you can open it and print "
                "your report)")
    return plan.protection.label


def _money(losses: tuple[inc.Loss, ...]) -> str:
    return ", ".join(amounts.shown(v, c) for c, v in inc.totals(losses).items())


def _short(text: str, width: int = 70) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def next_steps(plan: Plan) -> str:
    name = escape(str(plan.output))
    if plan.protection.passphrase:
        key_hint = "-p"
    elif plan.opened_with_own_key:
        key_hint = f"-i {escape(shlex.quote(str(plan.own_key)))}"
    else:  # not reached from the session (it always adds the own key): say what is needed
        key_hint = "-i KEY (a key the bundle was made for)"
    return (f"\n[bold]What now?[/]\n"
            f"• Keep [bold]{name}[/] safe and make a copy (a USB stick is fine).\n"
            "• Give it to the police, your bank or your insurer"
            + (", and tell them the passphrase separately (by phone or in person)."
               if plan.protection.passphrase else ".") + "\n"
            f"• A printable report for them: [bold]evidencekit report {name} {key_hint} "
            "-o report.pdf[/]\n"
            "• Remembered something later? [bold]evidencekit note[/] adds it (see --help).")


def with_own_key(recipients: list[age.Recipient], signing: SigningKey) -> list[age.Recipient]:
    """*recipients* and the signer's own key (an ssh-ed25519 key is an age recipient), so that
    whoever made the bundle can open it again, e.g. to print its report."""
    own = age.SshEd25519Recipient(signing.key.public_key())
    if any(str(r) == str(own) for r in recipients):
        return recipients
    return [*recipients, own]


def guided_capture(prompter: Prompter, defaults: GuidedDefaults, case: CaseInfo, file_stem: str,
                   sign_key: Path | None, sign_key_passphrase_file: Path | None) -> int:
    """``evidencekit capture`` with no sources on a terminal. *case* is the case as the command
    line and the settings make it; the session asks for the examiner's name unless --examiner
    gave it."""
    personal = default_signing_key_path()
    defaults = dataclasses.replace(
        defaults, examiner=defaults.examiner or case.examiner,
        examiner_given=defaults.examiner_given,
        new_signing_key=None if sign_key or personal.exists() else personal,
        own_key=sign_key or personal)

    def make_bundle(plan: Plan) -> int:
        # resolved once, as the command line does: a source gone since the "yes" is refused
        files = chosen([os.fsencode(s) for s in plan.sources])
        signing = signing_key_for(files, sign_key, sign_key_passphrase_file, False)
        recipients = plan.protection.recipients
        if plan.opened_with_own_key:
            recipients = with_own_key(recipients, signing)
        from evidencekit.cli.capture_web import say_done as say_pages
        from evidencekit.sources.web import WebSource

        pages = (WebSource(plan.pages),) if plan.pages else ()
        mail = [capture_mail.connected(m, signing, False) for m in plan.mailboxes]
        request = capture_request(
            files, plan.output, dataclasses.replace(case, examiner=plan.examiner or case.examiner),
            recipients, signing, sign_key, progress=render.progress_for(False),
            incident=None if plan.incident.empty else plan.incident.to_json(),
            more_sources=pages)
        result = capture_mail.capture_with(request, mail)
        render.capture_text(result, recipients)
        say_pages(pages)
        for mailbox in mail:
            capture_mail.say_done(mailbox)
        code = ExitCode.OK if result.seal.complete else ExitCode.CAPTURE_INCOMPLETE
        if defaults.tsa_urls and offer_timestamp(prompter, defaults, result.output) and \
                code == ExitCode.OK:
            code = ExitCode.TIMESTAMP_MISSING
        return code

    return run_guided(prompter, defaults, file_stem, make_bundle)


def offer_timestamp(p: Prompter, defaults: GuidedDefaults, bundle: Path) -> bool:
    """Ask whether the configured time stamping authorities may countersign the new bundle (it
    goes over the internet: only the seal's signature is sent, nothing of the evidence). True
    when one was asked and failed (the bundle stands; the command to retry is said)."""
    from evidencekit.cli.cmd_timestamp import say_stamped
    from evidencekit.stamping import add_timestamps

    names = ", ".join(defaults.tsa_urls)
    p.say(f"\nA trusted timestamp from {escape(names)} would prove when this bundle existed. "
          "Only a fingerprint of its seal is sent over the internet, nothing of the evidence.")
    answer = p.ask("Add the timestamp now? (yes/no)", "Enter for yes; you can also add it "
                   "later with 'evidencekit timestamp'.").lower()
    if answer not in ("", "y", "yes"):
        return False
    stamped = add_timestamps(bundle, list(defaults.tsa_urls), defaults.tsa_roots)
    say_stamped(bundle, stamped)
    return bool(stamped.failed)


def run_guided(prompter: Prompter, defaults: GuidedDefaults, case_id: str,
               make_bundle: Callable[[Plan], int]) -> int:
    """The whole session: interview, then *make_bundle* (the capture), then what to do next."""
    try:
        plan = interview(prompter, defaults, case_id)
    except KeyboardInterrupt:
        # Not the capture's "the source was not changed": maybe no source was chosen yet.
        raise Interrupted("interrupted; nothing was written",
                          hint="evidencekit only read this computer, nothing on it was changed; "
                          "run 'evidencekit capture' again to start over") from None
    if plan is None:
        return ExitCode.OK
    code = make_bundle(plan)
    prompter.say(next_steps(plan))
    return code
