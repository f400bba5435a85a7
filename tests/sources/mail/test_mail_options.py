"""capture's mailbox options, refused without --imap before anything is read (no server)."""

from __future__ import annotations

import pytest

from tests.support.cli import invoke


@pytest.mark.parametrize(("extra", "said"), [
    (("--folder", "INBOX"), "--folder is for a mailbox"),
    (("--all-folders",), "--all-folders is for a mailbox"),
    (("--since", "2026-11-01"), "--since is for a mailbox"),
    (("--search", "FROM x@example.net"), "--search is for a mailbox"),
    (("--imap-fingerprint", "SHA256:x", "--folder", "INBOX"), "--folder is for a mailbox"),
])
def test_mailbox_options_without_imap_are_named_as_typed(extra: tuple[str, ...], said: str,
                                                         user: object) -> None:
    result = invoke("capture", *extra, "/etc/hostname", "--json")
    assert result.code == 2, result.stdout + result.stderr
    message = result.json()["error"]["message"]
    assert message.startswith(said) and "it needs --imap" in message, message
