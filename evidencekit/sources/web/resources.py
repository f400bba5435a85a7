"""The page's own resources, one level deep: what its HTML names for the browser to load with it
(images, style sheets, scripts, icons, media), as absolute http(s) URLs in the page's order.

What those resources name in turn (a style sheet's fonts, what a script loads) is not followed:
the capture is the page as served and what it asks for directly (FORMAT.md §4.3).
"""

from __future__ import annotations

import urllib.parse
from html.parser import HTMLParser

_LINK_RELS = {"stylesheet", "icon", "shortcut", "apple-touch-icon", "preload", "modulepreload",
              "manifest"}
_SOURCES = {"img": ("src",), "script": ("src",), "iframe": ("src",), "embed": ("src",),
            "source": ("src",), "video": ("src", "poster"), "audio": ("src",),
            "input": ("src",), "object": ("data",)}


_PIECE = 1 << 16  # characters of the page given to the parser at a time


class _Finder(HTMLParser):
    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.found: list[str] = []
        self._seen: set[str] = set()  # "not in found" was quadratic: a page of 40,000 tags, 23 s

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value for name, value in attrs if value}
        if tag == "base" and "href" in values:
            self.base = urllib.parse.urljoin(self.base, values["href"])
        elif tag == "link" and _LINK_RELS & set((values.get("rel") or "").lower().split()):
            self._add(values.get("href"))
        for name in _SOURCES.get(tag, ()):
            self._add(values.get(name))
        if tag in ("img", "source") and "srcset" in values:
            for candidate in values["srcset"].split(","):
                self._add(candidate.strip().split(" ")[0])

    def _add(self, reference: str | None) -> None:
        if not reference:
            return
        url = urllib.parse.urljoin(self.base, reference.strip())
        url = urllib.parse.urldefrag(url)[0]
        if urllib.parse.urlsplit(url).scheme in ("http", "https") and url not in self._seen:
            self._seen.add(url)
            self.found.append(url)


def page_resources(html: bytes, url: str, charset: str | None = None,
                   at_most: int | None = None) -> list[str]:
    """The resources *html* (served at *url*) names, absolute, each once, in order; the
    first *at_most* only (the rest of the page is not read: 20 MiB of tags took minutes)."""
    finder = _Finder(url)
    try:
        text = html.decode(charset or "utf-8", errors="replace")
    except (LookupError, UnicodeError):  # a codec that refuses "replace" (idna, punycode)
        text = html.decode("utf-8", errors="replace")
    for at in range(0, len(text), _PIECE):
        finder.feed(text[at:at + _PIECE])
        if at_most is not None and len(finder.found) >= at_most:
            return finder.found[:at_most]
    finder.close()
    return finder.found


def is_html(content_type: str | None, body: bytes) -> bool:
    if content_type:
        return content_type.split(";")[0].strip().lower() in ("text/html",
                                                              "application/xhtml+xml")
    start = body[:512].lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html"))


def charset_of(content_type: str | None) -> str | None:
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            name = value.strip().strip('"')
            try:  # a text encoding Python knows ("undefined" raises UnicodeError at once)
                "".encode(name)
            except (LookupError, UnicodeError):
                return None
            return name
    return None
