"""Counts and sizes in plain words, the same in every output made for people (terminal,
guided session, reports). Machine output (``--json``) gives the numbers themselves."""

from __future__ import annotations

import re
import unicodedata


def plural(count: int, noun: str) -> str:
    """'1 folder', '3 folders', '1,200 files', '2 entries' (not 'entrys'), '2 keys'."""
    if count == 1:
        return f"{count:,} {noun}"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u", ""):
        return f"{count:,} {noun[:-1]}ies"
    return f"{count:,} {noun}s"


def human_size(size: int) -> str:
    """``1.5 GiB``: binary units, one decimal; ``123 bytes`` below a KiB."""
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            return f"{size} bytes" if size < 1024 else f"{value:.1f} {unit}"
    return f"{size} bytes"  # not reached


def exact_size(size: int) -> str:
    """A size as a setting is written: ``5 GiB`` when it is a whole number of a unit, else
    ``5000 bytes`` (never rounded: a limit shown must be the limit applied)."""
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def size_text(size: int | None) -> str:
    """A byte count with thousands separators ('1,234,567'); empty when unknown."""
    return "" if size is None else f"{size:,}"


# Characters that would hide or reorder text in a name: shown as [U+XXXX] instead.
_INVISIBLE = re.compile("[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u061c\u115f\u1160"
                        "\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff"
                        "\ufff0-\ufffb]")


def visible(text: str, keep_newlines: bool = False) -> str:
    """*text* with control, invisible and bidirectional-override characters written as [U+XXXX]."""
    def code(match: re.Match[str]) -> str:
        return f"[U+{ord(match.group()):04X}]"

    text = _INVISIBLE.sub(code, text)
    text = text.replace("\t", "[TAB]")
    if not keep_newlines:
        text = text.replace("\r", "[CR]").replace("\n", "[LF]")
    # Lone surrogates (from undecodable bytes) cannot be encoded: show their code too.
    return "".join(c if unicodedata.category(c) != "Cs" else f"[U+{ord(c):04X}]"
                   for c in text)
