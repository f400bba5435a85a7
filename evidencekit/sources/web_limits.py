"""The web source's limits and User-Agent (``capture --url``), apart from the web package.

``capture``'s options show these defaults in their help, so the CLI reads them for every
capture; here they cost nothing, where importing evidencekit.sources.web (sockets, TLS, HTML
parsing, WARC) took some 20 ms of every capture's start-up (issue 27). The web package uses
these same objects (fetch.Limits, page.DEFAULT_USER_AGENT).
"""

from __future__ import annotations

from dataclasses import dataclass

from evidencekit import __version__

DEFAULT_USER_AGENT = (f"evidencekit/{__version__} (evidence preservation: one page and its own "
                      "resources)")


@dataclass(frozen=True)
class Limits:
    """How long and how much (documented in README and FORMAT.md §4.3)."""

    timeout: float = 30.0  # seconds for one exchange: resolve, connect, TLS, request, response
    max_response: int = 20 << 20  # bytes of one response (headers and body as received)
    max_resources: int = 100  # images, style sheets, scripts... of one page
    max_page: int = 100 << 20  # bytes of all a page's answers: no resource asked for past it
    max_redirects: int = 10
    user_agent: str = ""
