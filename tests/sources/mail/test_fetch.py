"""sources/mail/fetch.py and source.py helpers that need no server."""

from __future__ import annotations

import pytest

from evidencekit.errors import UsageError
from evidencekit.sources.mail.fetch import attributes, batches, internaldate_rfc3339, uid_set
from evidencekit.sources.mail.source import Selection, headers_of, imap_date, selection_from


def test_internaldate_keeps_its_offset() -> None:
    assert internaldate_rfc3339("07-Dec-2026 05:00:00 +0100") == "2026-12-07T05:00:00+01:00"
    assert internaldate_rfc3339(" 7-Dec-2026 23:59:59 -0530") == "2026-12-07T23:59:59-05:30"
    for bad in ("", "07-Dec-2026 05:00:00", "07-Foo-2026 05:00:00 +0100", "32-Dec-2026 1:2:3 +0000"):
        assert internaldate_rfc3339(bad) is None


def test_uid_sets_are_runs() -> None:
    assert uid_set([5, 1, 2, 3, 7, 8, 10]) == "1:3,5,7:8,10"
    assert uid_set([4]) == "4"


def test_batches_are_bounded_by_size_and_a_big_message_goes_alone() -> None:
    sizes = {1: 3 << 20, 2: 3 << 20, 3: 3 << 20, 4: 30 << 20, 5: 10}
    assert list(batches([1, 2, 3, 4, 5], sizes)) == [[1, 2], [3], [4], [5]]
    assert [len(b) for b in batches(list(range(1, 1202)), {})] == [500, 500, 201]


def test_what_is_asked_follows_what_the_server_offers() -> None:
    assert attributes(["IMAP4REV1"]) == ["UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE"]
    assert attributes(["CONDSTORE", "X-GM-EXT-1"])[4:] == ["MODSEQ", "X-GM-MSGID", "X-GM-THRID",
                                                           "X-GM-LABELS"]


def test_dates_and_criteria() -> None:
    assert imap_date("2026-11-01") == "1-Nov-2026"
    assert imap_date("01-nov-2026") == "1-Nov-2026"
    with pytest.raises(UsageError, match="--since needs a date"):
        imap_date("yesterday")
    assert Selection().criteria() == "ALL"
    assert Selection(since="1-Nov-2026", search="FROM x").criteria() == "SINCE 1-Nov-2026 (FROM x)"
    with pytest.raises(UsageError, match="not both"):
        selection_from(["INBOX"], True, None, None)


def test_headers_are_decoded_for_lists() -> None:
    raw = ("Subject: =?utf-8?q?Rechnung_f=C3=BCr_Sie?=\r\nFrom: Bänk <b@example.net>\r\n"
           "Date: Sun, 06 Dec 2026 10:00:00 -0500\r\n\r\nBody: not a header\r\n").encode()
    assert headers_of(raw) == {"subject": "Rechnung für Sie", "from": "Bänk <b@example.net>",
                               "date": "Sun, 06 Dec 2026 10:00:00 -0500"}
    assert headers_of(b"Subject: caf\xe9\r\n\r\n") == {"subject": "café"}  # Latin-1, not lost


def test_a_gmail_fetch_answer_keeps_its_labels_and_raw_date() -> None:
    """A FETCH answer as Gmail writes it (X-GM-EXT-1), read as fetch() reads the server's."""
    from imapclient.response_parser import gen_parsed_response

    from evidencekit.sources.mail.fetch import message_from_fetch

    line = (b'7 (X-GM-THRID 1822340000000000001 X-GM-MSGID 1822340000000000002 '
            b'X-GM-LABELS ("\\\\Important" "&AMk-v&AOk-nements" Scam) UID 42 MODSEQ (9001) '
            b'INTERNALDATE " 7-Dec-2026 05:00:00 +0100" FLAGS (\\Seen $Phishing) '
            b'RFC822.SIZE 10 BODY[] {10}')
    tokens = gen_parsed_response([(line, b"Hello\r\nBye"), b")"])
    assert next(tokens) == 7
    message = message_from_fetch(next(tokens))
    assert message is not None and message.uid == 42 and message.modseq == 9001
    assert message.internaldate == " 7-Dec-2026 05:00:00 +0100"  # as written, day padding too
    assert message.flags == ["\\Seen", "$Phishing"] and message.rfc822_size == 10
    assert message.body == b"Hello\r\nBye"
    assert message.gmail == {"msgid": "1822340000000000002", "thrid": "1822340000000000001",
                             "labels": ["\\Important", "Événements", "Scam"]}
