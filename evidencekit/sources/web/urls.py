"""The URLs evidencekit fetches: http or https, normalised so that a request line can carry them."""

from __future__ import annotations

import urllib.parse

from evidencekit.errors import UsageError

_SAFE_PATH = "/%:@!$&'()*+,;=-._~"


class Unfetchable(ValueError):
    """An address that is not fetched; ``str()`` says why, in words."""


def fetchable(text: str) -> str:
    """*text* as a URL to fetch: http or https, a host, no user name or password in it (they
    would be stored in the manifest), non-ASCII host names in IDNA and non-ASCII paths
    percent-encoded, no fragment. Unfetchable otherwise."""
    try:
        parts = urllib.parse.urlsplit(text.strip())
    except ValueError:  # an IPv6 bracket left open: 'http://[bad/'
        raise Unfetchable("it is not an address that can be read (RFC 3986)") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise Unfetchable("it is not an http:// or https:// address")
    if parts.username is not None or parts.password is not None:
        raise Unfetchable("it holds a user name or password (they would be stored in the "
                          "bundle's records)")
    try:
        host = parts.hostname.encode("idna").decode("ascii")
        port = f":{parts.port}" if parts.port else ""
    except (UnicodeError, ValueError):
        raise Unfetchable("it has no usable host name or port") from None
    if ":" in host:
        host = f"[{host}]"
    path = urllib.parse.quote(parts.path or "/", safe=_SAFE_PATH)
    query = urllib.parse.quote(parts.query, safe=_SAFE_PATH + "?")
    return urllib.parse.urlunsplit((parts.scheme.lower(), host + port, path, query, ""))


def check_url(text: str) -> str:
    """:func:`fetchable` for an address given to ``--url``: UsageError when it is not."""
    try:
        return fetchable(text)
    except Unfetchable as exc:
        raise UsageError(f"--url {text!r} cannot be captured: {exc}",
                         hint="give an http:// or https:// address, without user name or "
                         "password, e.g. --url https://fake-bank.example/login") from None


def check_user_agent(text: str) -> str:
    """*text* as a User-Agent header value: printable ASCII and spaces only. A line end would
    add headers of its own to every request; a character past ASCII (the "…" of an example
    copied as it is) cannot be sent at all. UsageError otherwise."""
    if text and all(" " <= char <= "~" for char in text):
        return text
    raise UsageError(f"--user-agent {text!r} cannot be sent: a User-Agent is printable ASCII "
                     "on one line",
                     hint='copy a browser\'s whole, e.g. --user-agent "Mozilla/5.0 (X11; Linux '
                     'x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 '
                     'Safari/537.36"')
