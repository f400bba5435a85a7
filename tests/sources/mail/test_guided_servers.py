"""cli/guided_mail.py: the server guessed from an address, and what counts as an address."""

from __future__ import annotations

from evidencekit.cli.guided_mail import guess_server, is_address


def test_the_large_providers_servers_are_guessed() -> None:
    assert guess_server("jane@gmail.com") == ("Google", "imap.gmail.com", guess_server(
        "x@googlemail.com")[2])  # type: ignore[index]
    assert guess_server("Jane@Outlook.com")[1] == "outlook.office365.com"  # type: ignore[index]
    assert guess_server("j@icloud.com")[1] == "imap.mail.me.com"  # type: ignore[index]
    assert guess_server("j@example.org") is None


def test_only_an_address_is_taken_for_a_mailbox() -> None:
    assert is_address("jane@example.org") and is_address(" jane.doe+x@mail.example.co.uk ")
    for other in ("~/Documents/seller.eml", "https://fake-bank.example/login", "jane@", "@x.org",
                  "jane@localhost", "/home/jane@x.org/file", "a b@x.org"):
        assert not is_address(other), other
