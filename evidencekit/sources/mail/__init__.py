"""A mailbox read over IMAP (``capture --imap imaps://USER@HOST``), read-only.

- account.py: the address typed, the credential (password or OAuth2 bearer token), the errors;
- server.py: the TLS connection (system trust or a pinned certificate), what the server is
  (address, certificate chain, greeting, CAPABILITY), the login;
- fetch.py: EXAMINE, SEARCH and FETCH with BODY.PEEK[] (nothing is ever marked read), each
  message's raw bytes exactly as served and its record (INTERNALDATE as the server wrote it);
- resume.py: messages already fetched by an interrupted run, kept encrypted on this machine;
- source.py: all of it as a :class:`evidencekit.sources.Source` for the sealing pipeline.

The layout in the bag and every field are in docs/FORMAT.md §4.3 (kind ``mail``).
"""

from evidencekit.sources.mail.account import (
    Account,
    BearerToken,
    Credential,
    MailError,
    Password,
    parse_account,
)
from evidencekit.sources.mail.server import Trust, parse_fingerprint
from evidencekit.sources.mail.source import MailSource, Selection

__all__ = ["Account", "BearerToken", "Credential", "MailError", "MailSource", "Password",
           "Selection", "Trust", "parse_account", "parse_fingerprint"]
