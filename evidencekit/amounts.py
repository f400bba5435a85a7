"""Amounts of money as people type them, in either convention, read exactly or not at all.

``1.250,00 €`` (German), ``1,250.00 EUR`` (English), ``CHF 1'250.50`` (Swiss), ``1 250,00 €``
(French, with a space or a no-break space) and ``1.250,- €`` all mean one thousand two hundred
fifty. ``1.250 €`` and ``1,250 €`` do not say which convention they follow: one thousand two
hundred fifty, or one and a quarter? Such a form is never guessed: :func:`parse_money` raises
:class:`AmbiguousAmount` with both readings, for the guided session to ask and for a command
line or a file to refuse with a way to write it unambiguously.

The stored form (incident.json, notes, docs/FORMAT.md §4.5) is unchanged: digits with an
optional ``.`` and decimals, as before, e.g. ``1250.00``. :func:`shown` writes an amount back
for people without a separator that either convention could misread (``1 250.00 EUR``, the
space of ISO 80000-1), and :func:`in_words` spells out the whole part.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from evidencekit.errors import InputError

MAX_WHOLE_DIGITS = 18  # as the stored form allows (incident.py)
MAX_DECIMALS = 8
# Characters of an amount with its currency as typed: the longest one readable (18 digits and
# their separators, 8 decimals, a currency name, spaces) fits; past it, parse_money's currency
# patterns would take time that grows with the square of the length.
MAX_TYPED = 100

# Currency signs people type, for the ISO 4217 code they stand for. "$" is read as US dollars
# and "¥" as Japanese yen, and said so when the amount is shown back (SHARED_SIGNS), since many
# countries write their dollar with "$", and China its yuan with "¥".
CURRENCY_SIGNS: dict[str, str] = {
    "US$": "USD", "A$": "AUD", "C$": "CAD", "NZ$": "NZD", "HK$": "HKD", "R$": "BRL",
    "€": "EUR", "$": "USD", "£": "GBP", "¥": "JPY", "₹": "INR", "₩": "KRW", "₺": "TRY",
    "₽": "RUB", "₴": "UAH", "₪": "ILS", "₫": "VND", "₱": "PHP", "฿": "THB", "zł": "PLN",
    "Kč": "CZK", "Fr.": "CHF", "Fr": "CHF", "SFr.": "CHF",
}
# Signs that stand for more than one currency: what the reading says, so the person can correct it.
SHARED_SIGNS: dict[str, str] = {
    "$": "\"$\" was read as US dollars: write CAD, AUD… for another dollar",
    "¥": "\"¥\" was read as Japanese yen: write CNY for Chinese yuan",
}
# Currency names people type (lower case) for their code.
CURRENCY_WORDS: dict[str, str] = {
    "euro": "EUR", "euros": "EUR", "eur": "EUR", "dollar": "USD", "dollars": "USD",
    "pound": "GBP", "pounds": "GBP", "franken": "CHF", "francs": "CHF", "franc": "CHF",
    "zloty": "PLN", "złoty": "PLN", "yen": "JPY",
}
# How :func:`in_words` names a currency; any other is named by its code.
CURRENCY_NAMES: dict[str, str] = {
    "EUR": "euros", "USD": "US dollars", "GBP": "pounds sterling", "CHF": "Swiss francs",
    "JPY": "yen", "PLN": "złoty", "CAD": "Canadian dollars", "AUD": "Australian dollars",
}
# ... and for exactly one of them ('one euro', not 'one euros')
CURRENCY_NAME_ONE: dict[str, str] = {
    "EUR": "euro", "USD": "US dollar", "GBP": "pound sterling", "CHF": "Swiss franc",
    "JPY": "yen", "PLN": "złoty", "CAD": "Canadian dollar", "AUD": "Australian dollar",
}

_SPACES = "\u00a0\u202f\u2009\u2007 "  # no-break, narrow no-break, thin, figure space, space
_APOSTROPHES = "'\u2019\u02bc\u00b4`"  # Swiss thousands marks as keyboards type them
# ASCII digits only (re.ASCII): other scripts' digits are made ASCII first (_normalised), and
# anything else that Python calls a digit ('²', '①') is no digit of an amount.
_GROUPED = re.compile(r"^[1-9]\d{0,2}(?:(?P<sep>[., '])\d{3})(?:(?P=sep)\d{3})*$", re.ASCII)
_NUMBER = re.compile(r"^[\d., ']+$", re.ASCII)


class AmountError(InputError):
    """Text that is not an amount (or not one evidencekit can read without guessing)."""


class AmbiguousAmount(AmountError):
    """``1.250`` or ``1,250``: thousands or decimals? Both readings, as stored amounts."""

    def __init__(self, text: str, thousands: str, decimal: str, currency: str = "") -> None:
        self.text = text
        self.thousands = thousands  # "1250"
        self.decimal = decimal  # "1.25": the same value, written so that it reads one way
        self.currency = currency
        one, other = shown(thousands, currency), shown(decimal, currency)
        super().__init__(
            f"{text!r} can be read two ways: {one} ({in_words(thousands, currency)}) or "
            f"{other} ({in_words(decimal, currency)})",
            hint=f"write it as {thousands} or as {decimal}: one dot or comma followed by "
            "exactly three digits can mean either")

    def with_currency(self, currency: str) -> AmbiguousAmount:
        return AmbiguousAmount(self.text, self.thousands, self.decimal, currency)


@dataclass(frozen=True)
class Money:
    amount: str  # the stored form: "1250.00"
    currency: str  # as typed, upper case; incident.py checks it is ISO 4217
    shared_sign: str = ""  # "$" or "¥": a sign several currencies use, read as `currency`


def unambiguous_hint(amount: str) -> str:
    """How to type *amount* so that both conventions read it the same: without a thousands
    separator, and never with exactly three decimals ('1.250' → '1.25', '1.255' → '1.2550')."""
    whole, _, decimals = amount.partition(".")
    decimals = decimals.rstrip("0")
    if len(decimals) == 3 and whole != "0":
        decimals += "0"
    return f"{whole}.{decimals}" if decimals else whole


def parse_amount(text: str) -> str:
    """The stored form of an amount typed by a person (no currency): '1.250,00' → '1250.00'.

    Raises AmbiguousAmount for '1.250' / '1,250', AmountError for anything else unclear.
    """
    raw = text
    number = _normalised(text)
    if number.startswith("-"):
        raise AmountError(f"{raw.strip()!r} is negative", hint="write a loss as a positive amount")
    if number.endswith((",-", ".-", ",--", ".--", ",\u2013", ".\u2013")):
        # "1.250,-": whole units, the separator before the dash is the decimal one
        number = number.rstrip("-\u2013")
        if not _NUMBER.match(number):
            raise AmountError(f"{raw.strip()!r} is not an amount",
                              hint="write digits, e.g. 1250.00 or 1.250,00")
        return _checked(_whole(number[:-1], decimal_separator=number[-1], raw=raw), "", raw)
    if not number or not _NUMBER.match(number):
        raise AmountError(f"{raw.strip()!r} is not an amount",
                          hint="write digits, e.g. 1250.00 or 1.250,00")
    decimal_mark = _decimal_mark(number, raw)
    if decimal_mark is None:
        return _checked(_whole(number, decimal_separator=None, raw=raw), "", raw)
    whole, decimals = number.rsplit(decimal_mark, 1)
    if not decimals.isdigit():
        raise AmountError(f"{raw.strip()!r} is not an amount",
                          hint="write digits after the decimal mark, e.g. 1250.00")
    return _checked(_whole(whole, decimal_separator=decimal_mark, raw=raw) if whole else "0",
                    decimals, raw)


def _normalised(text: str) -> str:
    number = text.strip()
    for space in _SPACES:
        number = number.replace(space, " ")
    for mark in _APOSTROPHES:
        number = number.replace(mark, "'")
    number = re.sub(r" +", " ", number)
    number = "".join(_ascii_digit(c) for c in number)
    return number.replace("\u2212", "-")  # the minus sign


def _ascii_digit(char: str) -> str:
    """'١' (Arabic-Indic), '１' (full width), '४' (Devanagari) → the ASCII digit they are; the
    stored form (§4.5) and every reader know only 0-9. Other characters as they are."""
    if char.isdecimal() and not char.isascii():
        return str(unicodedata.decimal(char))
    return char


def _decimal_mark(number: str, raw: str) -> str | None:
    """Which of '.' and ',' (if any) separates the decimals; None for a whole number."""
    marks = [c for c in number if c in ".,"]
    if not marks:
        return None
    last = marks[-1]
    if len(set(marks)) == 2:  # both: the last one is the decimal mark, once
        if marks.count(last) != 1:
            raise AmountError(f"{raw.strip()!r} is not an amount",
                              hint="use one decimal mark, e.g. 1.250,00 or 1,250.00")
        return last
    if len(marks) > 1:  # "1.250.000": the only mark, repeated: thousands
        return None
    whole, decimals = number.split(last)
    if len(decimals) != 3 or " " in number or "'" in number or whole[:1] in ("", "0") \
            or len(whole) > 3:
        # "499,90", "1 250,000", "0.125", "00,125", "1250.000": decimals, whatever the custom
        # (a group of thousands never starts with 0, see _GROUPED)
        return last
    raise AmbiguousAmount(raw.strip(), (whole + decimals).lstrip("0"),
                          unambiguous_hint(f"{whole}.{decimals}"))


def _whole(text: str, decimal_separator: str | None, raw: str) -> str:
    """The digits of the whole part, its thousands separators checked and removed."""
    if text.isascii() and text.isdigit():
        return text
    match = _GROUPED.match(text)
    if match is None or match["sep"] == decimal_separator:
        raise AmountError(f"{raw.strip()!r} is not an amount",
                          hint="group thousands by three with one kind of separator "
                          "(1.250.000,00 or 1,250,000.00 or 1 250 000.00), or write no "
                          "separator (1250000.00)")
    return text.replace(match["sep"], "")


def _checked(whole: str, decimals: str, raw: str) -> str:
    whole = whole.lstrip("0") or "0"
    if len(whole) > MAX_WHOLE_DIGITS or len(decimals) > MAX_DECIMALS:
        raise AmountError(f"{raw.strip()!r} is too large or has too many decimals",
                          hint=f"at most {MAX_WHOLE_DIGITS} digits and {MAX_DECIMALS} decimals")
    return f"{whole}.{decimals}" if decimals else whole


def parse_money(text: str, default_currency: str = "") -> Money:
    """An amount and its currency, as typed: '1.250,00 €', 'EUR 1,250.00', "CHF 1'250",
    '€499.90', '450 euros'. Raises AmbiguousAmount or AmountError."""
    if len(text) > MAX_TYPED:
        raise AmountError(f"{text[:40].strip()!r}… is too long to be an amount",
                          hint="one amount at a time, with its currency, e.g. 1250.00 EUR")
    rest = _normalised(text)
    currency, shared = "", ""
    for sign in sorted(CURRENCY_SIGNS, key=len, reverse=True):
        found = _strip_affix(rest, sign)
        if found is not None:
            rest, currency = found, CURRENCY_SIGNS[sign]
            shared = sign if sign in SHARED_SIGNS else ""
            break
    if not currency:
        match = re.match(r"^([A-Za-zł]+)\s*(.*)$", rest)
        tail = re.match(r"^(.*?)\s*([A-Za-zł]+)$", rest)
        if match:
            currency, rest = match[1], match[2]
        elif tail:
            rest, currency = tail[1], tail[2]
        currency = CURRENCY_WORDS.get(currency.lower(), currency.upper())
    if re.search(r"[^\d., '\-\u2013]", rest):
        raise AmountError(f"{text.strip()!r}: write the amount and the currency, e.g. "
                          "1250.00 EUR or 1.250,00 €",
                          hint="one amount at a time, with its currency")
    if not rest.strip():
        raise AmountError(f"{text.strip()!r}: write the amount and the currency, e.g. "
                          "1250.00 EUR or 1.250,00 €", hint="one amount at a time")
    currency = currency or default_currency
    which_currency = AmountError(f"{text.strip()!r}: which currency?",
                                 hint="add the currency, e.g. 499.90 EUR")
    try:
        amount = parse_amount(rest)
    except AmbiguousAmount as exc:
        if not currency:  # asked first: choosing a reading, then being told to type it all
            raise which_currency from None  # again with a currency, is asking twice
        raise exc.with_currency(currency) from None
    if not currency:
        raise which_currency
    return Money(amount, currency, shared)


def _strip_affix(text: str, sign: str) -> str | None:
    """*text* without *sign* at its start or end (case-sensitive), or None."""
    if text.startswith(sign):
        return text[len(sign):].strip()
    if text.endswith(sign):
        head = text[: -len(sign)]
        # "Fr" must be a word of its own ("12 Fr"), not the end of "EUR" or similar
        if sign[0].isalpha() and head and head[-1].isalpha():
            return None
        return head.strip()
    return None


# ------------------------------------------------------------------------------ shown to people
def grouped(amount: str) -> str:
    """'1250.00' → '1 250.00': thousands grouped by a space, which no convention reads as a
    decimal mark (ISO 80000-1)."""
    whole, dot, decimals = amount.partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    return " ".join(groups) + dot + decimals


def shown(amount: str, currency: str = "") -> str:
    """'1 250.00 EUR': the stored amount, readable the same way in every convention."""
    return f"{grouped(amount)} {currency}".strip()


_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ("", "thousand", "million", "billion", "trillion", "quadrillion", "quintillion")


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10] + (f"-{_ONES[n % 10]}" if n % 10 else ""))
    elif n or not words:
        words.append(_ONES[n])
    return words


def number_in_words(n: int) -> str:
    """1250 → 'one thousand two hundred fifty'."""
    if n == 0:
        return "zero"
    words: list[str] = []
    scale = 0
    while n:
        n, part = divmod(n, 1000)
        if part:
            words = [*_below_thousand(part), *([_SCALES[scale]] if _SCALES[scale] else []),
                     *words]
        scale += 1
    return " ".join(words)


def in_words(amount: str, currency: str) -> str:
    """'one thousand two hundred fifty euros', '… and 50/100 euros' (the decimals as a fraction,
    as on a cheque, so nothing depends on a decimal mark)."""
    whole, _, decimals = amount.partition(".")
    exactly_one = int(whole) == 1 and not (decimals and int(decimals))
    name = (CURRENCY_NAME_ONE if exactly_one else CURRENCY_NAMES).get(currency, currency)
    words = number_in_words(int(whole))
    if decimals and int(decimals):
        words += f" and {decimals}/1{'0' * len(decimals)}"
    return f"{words} {name}".strip()


def described(money: Money) -> str:
    """'1 250.00 EUR (one thousand two hundred fifty euros)'; a "$" or "¥" says how it was
    read."""
    text = f"{shown(money.amount, money.currency)} ({in_words(money.amount, money.currency)})"
    if money.shared_sign:
        text += "; " + SHARED_SIGNS[money.shared_sign]
    return text

