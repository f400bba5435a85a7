"""The URLs evidencekit fetches: http or https, normalised so that a request line can carry them."""

from __future__ import annotations

import urllib.parse

from evidencekit.errors import UsageError

_SAFE_PATH = "/%:@!$&'()*+,;=-._~"


def check_url(text: str) -> str:
    """*text* as the URL to fetch: http or https, a host, no user name or password in it (they
    would be stored in the manifest), non-ASCII host names in IDNA and non-ASCII paths
    percent-encoded. UsageError otherwise."""
    parts = urllib.parse.urlsplit(text.strip())
    hint = "e.g. --url https://fake-bank.example/login"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--url needs an http:// or https:// address, not {text!r}", hint=hint)
    if parts.username is not None or parts.password is not None:
        raise UsageError("--url: leave the user name and password out of the address (they "
                         "would be stored in the bundle's records)", hint=hint)
    try:
        host = parts.hostname.encode("idna").decode("ascii")
        port = f":{parts.port}" if parts.port else ""
    except (UnicodeError, ValueError):
        raise UsageError(f"--url: the address {text!r} has no usable host name or port",
                         hint=hint) from None
    if ":" in host:
        host = f"[{host}]"
    path = urllib.parse.quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = urllib.parse.quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    return urllib.parse.urlunsplit((parts.scheme.lower(), host + port, path, query, ""))
