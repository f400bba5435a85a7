"""Amounts typed in either convention: read exactly, or asked about, never guessed."""

from __future__ import annotations

import pytest

from evidencekit import amounts


@pytest.mark.parametrize(("typed", "amount", "currency"), [
    ("1.250,00 €", "1250.00", "EUR"),  # German
    ("1,250.00 EUR", "1250.00", "EUR"),  # English
    ("EUR 1,250.00", "1250.00", "EUR"),
    ("CHF 1'250.50", "1250.50", "CHF"),  # Swiss
    ("Fr. 1\u2019250.50", "1250.50", "CHF"),  # a typographic apostrophe
    ("1 250,00 €", "1250.00", "EUR"),  # French
    ("1\u00a0250,00\u00a0€", "1250.00", "EUR"),  # no-break spaces, as copied from a statement
    ("1\u202f250,00 €", "1250.00", "EUR"),
    ("1.250,- €", "1250", "EUR"),
    ("€499.90", "499.90", "EUR"),
    ("499,90 €", "499.90", "EUR"),
    ("450 euros", "450", "EUR"),
    ("EUR1250", "1250", "EUR"),
    ("1.250.000 EUR", "1250000", "EUR"),
    ("0,125 KWD", "0.125", "KWD"),  # a leading zero is no thousands group
    ("1250.000 EUR", "1250.000", "EUR"),  # four digits before the mark: decimals
    ("1 250,000 EUR", "1250.000", "EUR"),  # spaces group thousands: the comma is decimal
    ("£35.5", "35.5", "GBP"),
    ("12 usd", "12", "USD"),
])
def test_unambiguous_forms_are_read(typed: str, amount: str, currency: str) -> None:
    assert amounts.parse_money(typed) == amounts.Money(amount, currency)


@pytest.mark.parametrize(("typed", "thousands", "decimal"), [
    ("1.250 €", "1250", "1.25"), ("1,250 EUR", "1250", "1.25"), ("EUR 12.500", "12500", "12.5"),
    ("999,999 USD", "999999", "999.9990"),  # three decimals would read two ways again
])
def test_a_form_that_reads_two_ways_is_not_guessed(typed: str, thousands: str,
                                                   decimal: str) -> None:
    with pytest.raises(amounts.AmbiguousAmount) as caught:
        amounts.parse_money(typed)
    assert (caught.value.thousands, caught.value.decimal) == (thousands, decimal)
    assert "can be read two ways" in caught.value.message


def test_both_readings_are_said_in_words() -> None:
    with pytest.raises(amounts.AmbiguousAmount) as caught:
        amounts.parse_money("1.250 €")
    assert caught.value.currency == "EUR"
    assert "1 250 EUR (one thousand two hundred fifty euros)" in caught.value.message
    assert "1.25 EUR (one and 25/100 euros)" in caught.value.message
    assert caught.value.hint is not None and "1250 or as 1.25" in caught.value.hint


@pytest.mark.parametrize(("typed", "words"), [
    ("1.250.5 EUR", "not an amount"), ("1,250,00 EUR", "not an amount"),
    ("12 34 EUR", "not an amount"), ("1250. EUR", "not an amount"), ("-5 EUR", "negative"),
    ("1e5 EUR", "write the amount"), ("1.250,00", "which currency"), ("EUR", "write the amount"),
    ("1.250,00,00 EUR", "not an amount"),
    ("1.250", "which currency"),  # the currency first: the reading is asked once it is there
])
def test_what_cannot_be_read_says_so(typed: str, words: str) -> None:
    with pytest.raises(amounts.AmountError) as caught:
        amounts.parse_money(typed)
    assert words in caught.value.message


def test_a_dollar_sign_is_said_to_be_read_as_us_dollars() -> None:
    money = amounts.parse_money("$ 20")
    assert money.currency == "USD" and "US dollars" in amounts.described(money)
    assert "US dollars" not in amounts.described(amounts.parse_money("20 USD"))[30:]


def test_a_yen_sign_is_said_to_be_read_as_japanese_yen() -> None:
    money = amounts.parse_money("¥1250")  # China writes its yuan with the same sign
    assert money.currency == "JPY" and "write CNY" in amounts.described(money)
    assert "CNY" not in amounts.described(amounts.parse_money("1250 JPY"))


def test_an_amount_is_shown_back_one_way_in_every_convention() -> None:
    assert amounts.shown("1250.00", "EUR") == "1 250.00 EUR"
    assert amounts.shown("1250000", "EUR") == "1 250 000 EUR"
    assert amounts.shown("999.99", "EUR") == "999.99 EUR"
    assert amounts.in_words("1250", "EUR") == "one thousand two hundred fifty euros"
    assert amounts.in_words("21.05", "XYZ") == "twenty-one and 05/100 XYZ"
    assert amounts.number_in_words(1_000_001) == "one million one"
    assert amounts.in_words("1", "EUR") == "one euro"  # not 'one euros'
    assert amounts.in_words("1.00", "USD") == "one US dollar"
    assert amounts.in_words("1.50", "EUR") == "one and 50/100 euros"
    assert amounts.number_in_words(0) == "zero"


# ------------------------------------------------------------------ fuzzed against an oracle
# The oracle below is written independently of evidencekit.amounts: it lists every reading of a
# typed number (each choice of decimal mark and thousands separator that the text obeys) and the
# property is that the parser returns a value only when all readings agree, and then exactly it.

from decimal import Decimal  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ORACLE_DIGITS = "0123456789"
_OTHER_SCRIPTS = {"\u0660": 0, "\u0661": 1, "\u0662": 2, "\u0665": 5, "\uff10": 0, "\uff11": 1,
                  "\uff12": 2, "\uff15": 5, "\u0967": 1, "\u096b": 5}  # Arabic, full width, …


def _oracle_readings(typed: str) -> set[Decimal]:
    text = "".join(str(_OTHER_SCRIPTS[c]) if c in _OTHER_SCRIPTS else c for c in typed)
    text = text.replace("\u00a0", " ").replace("\u202f", " ").strip()
    while "  " in text:
        text = text.replace("  ", " ")
    if not text or any(c not in _ORACLE_DIGITS + ".,' " for c in text):
        return set()
    found: set[Decimal] = set()
    for mark in (None, ".", ","):
        if mark is None:
            whole, fraction = text, ""
        elif text.count(mark) == 1:
            whole, fraction = text.split(mark)
            if not fraction or any(c not in _ORACLE_DIGITS for c in fraction):
                continue
        else:
            continue
        for separator in (None, ".", ",", " ", "'"):
            if separator is not None and separator == mark:
                continue
            if separator is None:
                ok = all(c in _ORACLE_DIGITS for c in whole) and (whole != "" or mark is not None)
                digits = whole or "0"
            else:
                groups = whole.split(separator)
                ok = (len(groups) > 1 and 1 <= len(groups[0]) <= 3 and groups[0][:1] != "0"
                      and all(c in _ORACLE_DIGITS for g in groups for c in g)
                      and all(len(g) == 3 for g in groups[1:]))
                digits = "".join(groups)
            if ok:
                found.add(Decimal(digits + ("." + fraction if fraction else "")))
    return found


def _within_limits(value: Decimal, typed: str) -> bool:
    whole = format(value, "f").partition(".")[0]
    marks = [c for c in typed if c in ".,"]
    decimals = typed.rsplit(marks[-1], 1)[1] if marks else ""
    return len(whole.lstrip("0")) <= amounts.MAX_WHOLE_DIGITS and \
        len(decimals) <= amounts.MAX_DECIMALS


def _check_against_oracle(typed: str) -> None:
    readings = _oracle_readings(typed)
    try:
        stored = amounts.parse_amount(typed)
    except amounts.AmbiguousAmount as caught:
        assert len(readings) > 1 or not readings or caught.thousands.lstrip("0") == "", typed
        assert Decimal(caught.decimal) in readings, (typed, caught.decimal, readings)
        return
    except amounts.AmountError:
        assert len(readings) != 1 or not _within_limits(next(iter(readings)), typed), \
            (typed, readings)
        return
    assert stored.isascii() and stored.replace(".", "", 1).isdigit(), (typed, stored)
    assert len(readings) == 1, (typed, stored, readings)  # never a guess between two readings
    assert Decimal(stored) == next(iter(readings)), (typed, stored, readings)


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet="0123456789.,' \u00a0" + "".join(_OTHER_SCRIPTS), max_size=16))
def test_any_typed_number_is_read_exactly_or_not_at_all(typed: str) -> None:
    _check_against_oracle(typed)


_CONVENTIONS = [(",", "."), (".", ","), (" ", ","), (" ", "."), ("'", "."), ("\u00a0", ","),
                ("", "."), ("", ",")]


@settings(max_examples=1500, deadline=None)
@given(st.integers(0, 10**19), st.text(alphabet="0123456789", max_size=9),
       st.sampled_from(_CONVENTIONS), st.booleans())
def test_numbers_written_in_either_convention(whole: int, fraction: str,
                                              convention: tuple[str, str], group: bool) -> None:
    separator, mark = convention
    digits = str(whole)
    if group and separator:
        parts = []
        while len(digits) > 3:
            parts.insert(0, digits[-3:])
            digits = digits[:-3]
        digits = separator.join([digits, *parts])
    typed = digits + (mark + fraction if fraction else "")
    _check_against_oracle(typed)
    readings = _oracle_readings(typed)
    if len(readings) == 1 and _within_limits(next(iter(readings)), typed):
        assert Decimal(amounts.parse_amount(typed)) == Decimal(f"{whole}.{fraction or '0'}")


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="0123456789.,' -\u2212\u2013²³¹①⑴٫٬", max_size=12))
def test_nothing_but_ascii_digits_is_ever_stored(typed: str) -> None:
    try:
        stored = amounts.parse_amount(typed)
    except amounts.AmountError:
        return
    assert stored.isascii() and not stored.startswith("-"), (typed, stored)
    assert Decimal(stored) >= 0


@pytest.mark.parametrize(("typed", "amount"), [
    ("\u0661\u0662\u0665\u0660 €", "1250"),  # Arabic-Indic digits: the same number
    ("\uff11\uff12\uff15\uff10,50 EUR", "1250.50"),  # full width digits, as some phones type
    ("1\u0662\u0665\u0660 EUR", "1250"),
])
def test_digits_of_other_scripts_are_stored_as_ascii(typed: str, amount: str) -> None:
    assert amounts.parse_money(typed).amount == amount


@pytest.mark.parametrize("typed", ["\u00b2,-", "1\u00b2,- EUR", "\u2460 EUR", "1\u00b3 EUR"])
def test_what_python_calls_a_digit_is_not_one_of_an_amount(typed: str) -> None:
    with pytest.raises(amounts.AmountError):
        amounts.parse_money(typed, default_currency="EUR")


def test_a_long_paste_is_refused_at_once() -> None:
    """The currency patterns take time that grows with the square of the text's length: a
    pasted page (64 000 characters took about 30 s) is refused before they run."""
    import time

    started = time.monotonic()
    for pasted in ("1" + "\t" * 64_000 + "1", "a" * 64_000 + "1 ", "1" + "\u3000" * 64_000):
        with pytest.raises(amounts.AmountError, match="too long"):
            amounts.parse_money(pasted)
    assert time.monotonic() - started < 1
    longest = "CHF 999'999'999'999'999'999.12345678"  # the longest readable, within
    assert len(longest) < amounts.MAX_TYPED and amounts.parse_money(longest).currency == "CHF"
