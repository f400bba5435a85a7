"""sources/mail/account.py and server.parse_fingerprint: what --imap and --imap-fingerprint take."""

from __future__ import annotations

import pytest

from evidencekit.errors import UsageError
from evidencekit.sources.mail import BearerToken, Password, parse_account, parse_fingerprint


def test_an_address_names_user_host_and_port() -> None:
    account = parse_account("imaps://jane@mail.example.com")
    assert (account.user, account.host, account.port) == ("jane", "mail.example.com", 993)
    assert account.url == "imaps://jane@mail.example.com:993"
    assert account.name == "jane@mail.example.com"
    whole = parse_account("imaps://jane%40example.com@imap.example.com:1993")
    assert (whole.user, whole.port) == ("jane@example.com", 1993)
    assert whole.url == "imaps://jane%40example.com@imap.example.com:1993"
    assert parse_account("imaps://jane@example.com@imap.example.com").user == "jane@example.com"
    assert not account.starttls and not whole.starttls


def test_imap_means_starttls_required() -> None:
    plain = parse_account("imap://jane@mail.example.com")
    assert (plain.port, plain.starttls) == (143, True)
    assert plain.url == "imap://jane@mail.example.com:143"
    assert plain.name == "jane@mail.example.com"  # the same files in the bag as over imaps://


@pytest.mark.parametrize(("text", "says"), [
    ("imaps://jane:secret@mail.example.com", "do not put the password"),
    ("imap://jane:secret@mail.example.com", "do not put the password"),
    ("https://jane@mail.example.com", "needs an address like"),
    ("imaps://mail.example.com", "names no user"),
    ("imaps://jane@mail.example.com/INBOX", "only the user and the server"),
    ("imaps://jane@mail.example.com:99999", "port"),
])
def test_other_addresses_are_refused(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        parse_account(text)


def test_a_refused_address_with_a_password_never_repeats_it() -> None:
    with pytest.raises(UsageError) as refused:
        parse_account("imaps://jane:hunter2@mail.example.com")
    assert "hunter2" not in str(refused.value) and "hunter2" not in (refused.value.hint or "")


def test_credentials_never_show_themselves() -> None:
    assert "hunter2" not in repr(Password("hunter2")) + repr(BearerToken("hunter2"))


def test_fingerprints_are_read_as_openssl_and_openssh_print_them() -> None:
    digest = bytes(range(32))
    colons = "SHA256:" + ":".join(f"{b:02X}" for b in digest)
    assert parse_fingerprint(colons) == digest
    assert parse_fingerprint(digest.hex()) == digest
    assert parse_fingerprint("sha256:" + digest.hex().upper()) == digest
    assert parse_fingerprint("SHA256:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8") == digest
    for bad in ("SHA256:abcd", "MD5:00", "", "SHA256:" + "zz" * 32):
        with pytest.raises(UsageError, match="not a SHA-256 certificate fingerprint"):
            parse_fingerprint(bad)
