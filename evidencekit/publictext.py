"""What the text fields people type may hold, checked where they are typed (docs/FORMAT.md §6).

A bundle's readers refuse a custody event larger than 1 MiB (evidencekit.format.reader's
SMALL_MEMBER_LIMIT); canonical JSON writes a control character as a six-byte ``\\u00XX``
escape. So a long enough ``--note`` of control characters would make a bundle that no reader
accepts, ever. The writers refuse such text at the command, before any evidence is read: a few
thousand characters of a name, a hundred thousand of free text, and no control characters but a
tab or a line break in free text. Readers stay lenient: a bundle written before these rules
still verifies.

With these limits the longest event (a note of 100,000 four-byte characters, a name and a
counterparty of 1,000) stays well under the readers' limit: at most about 420 KB.
"""

from __future__ import annotations

import re

from evidencekit.errors import UsageError

LINE_LIMIT = 1_000  # characters of a name, a case id, a counterparty: one line
TEXT_LIMIT = 100_000  # characters of free text (a note, a description), as in the incident record

# C0 controls, DEL and the C1 controls (U+0080-U+009F): invisible, or terminal commands.
_CONTROLS = re.compile("[\u0000-\u001f\u007f-\u009f]")
_CONTROLS_BUT_TAB_LF = re.compile("[\u0000-\u0008\u000b-\u001f\u007f-\u009f]")


def check_line(value: str, what: str, *, hint: str | None = None) -> str:
    """*value* if it is one line of at most LINE_LIMIT characters without control characters;
    UsageError (exit 2) naming *what* (the option, e.g. ``--to``) and the rule otherwise."""
    _check_length(value, what, LINE_LIMIT, hint)
    found = _CONTROLS.search(value)
    if found:
        raise UsageError(f"{what} holds a control character ({_code(found.group())}); it must be "
                         "one line of printable text", hint=hint or _CLEAN_HINT)
    return value


def check_text(value: str, what: str, *, hint: str | None = None) -> str:
    """*value* if it is free text of at most TEXT_LIMIT characters whose only control
    characters are tabs and line breaks (LF); UsageError (exit 2) otherwise."""
    _check_length(value, what, TEXT_LIMIT, hint)
    found = _CONTROLS_BUT_TAB_LF.search(value)
    if found:
        raise UsageError(f"{what} holds a control character ({_code(found.group())}); only "
                         "tabs and line breaks (LF) are allowed in it",
                         hint=hint or _CLEAN_HINT)
    return value


_CLEAN_HINT = ("type it again, or copy it from a plain-text editor (a carriage return from "
               "Windows line ends counts as one)")


def _check_length(value: str, what: str, limit: int, hint: str | None) -> None:
    if len(value) > limit:
        raise UsageError(f"{what} is {len(value):,} characters long; at most {limit:,} are "
                         "allowed (so that the bundle's signed records can always be read back; "
                         "readers accept at most 1 MiB per custody entry)",
                         hint=hint or "shorten it; put long texts into the incident record "
                         "(--incident) or into a file you capture")


def _code(char: str) -> str:
    return f"U+{ord(char):04X}"


def check_readable(data: bytes, member: str) -> None:
    """The last guard before a signed document is written: never one larger than readers
    accept (the rules above keep every event far below it; this catches a field they miss)."""
    from evidencekit.format.reader import SMALL_MEMBER_LIMIT

    if len(data) > SMALL_MEMBER_LIMIT:
        raise UsageError(f"{member} would be {len(data):,} bytes, more than the "
                         f"{SMALL_MEMBER_LIMIT:,} a reader accepts; nothing was written",
                         hint="shorten the texts given (--note, --description, --actor …)")
