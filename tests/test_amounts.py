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
])
def test_what_cannot_be_read_says_so(typed: str, words: str) -> None:
    with pytest.raises(amounts.AmountError) as caught:
        amounts.parse_money(typed)
    assert words in caught.value.message


def test_a_dollar_sign_is_said_to_be_read_as_us_dollars() -> None:
    money = amounts.parse_money("$ 20")
    assert money.currency == "USD" and "US dollars" in amounts.described(money)
    assert "US dollars" not in amounts.described(amounts.parse_money("20 USD"))[30:]


def test_an_amount_is_shown_back_one_way_in_every_convention() -> None:
    assert amounts.shown("1250.00", "EUR") == "1 250.00 EUR"
    assert amounts.shown("1250000", "EUR") == "1 250 000 EUR"
    assert amounts.shown("999.99", "EUR") == "999.99 EUR"
    assert amounts.in_words("1250", "EUR") == "one thousand two hundred fifty euros"
    assert amounts.in_words("21.05", "XYZ") == "twenty-one and 05/100 XYZ"
    assert amounts.number_in_words(1_000_001) == "one million one"
    assert amounts.number_in_words(0) == "zero"
