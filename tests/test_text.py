"""Counts in plain words (evidencekit.text)."""

from __future__ import annotations

from evidencekit.text import plural


def test_plural_of_a_noun_ending_in_a_consonant_and_y() -> None:
    # "2 entrys (custody events, notes, encrypted additions) signed by keys you did not list"
    assert plural(2, "entry") == "2 entries"
    assert plural(1, "entry") == "1 entry"
    assert plural(3, "key") == "3 keys"
    assert plural(1_200, "file") == "1,200 files"
