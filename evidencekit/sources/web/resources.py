"""What a page asks the browser to load with it: what its HTML names (images, style sheets,
scripts, icons, media, and the ``url(…)`` of its ``<style>`` blocks and ``style`` attributes),
what its style sheets name in turn (``@import``, fonts, background pictures), and where a
``<meta http-equiv="refresh">`` sends it: absolute http(s) URLs, in the page's order; and, apart,
what it names under a scheme evidencekit does not fetch (``file:``, ``ftp:``, ...), to be
recorded as not fetched rather than dropped.

What a script loads is not read here (scripts are not run by the capture): the browser that
makes the pictures asks for it, and render.py records it (FORMAT.md §4.3).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from html.parser import HTMLParser

_LINK_RELS = {"stylesheet", "icon", "shortcut", "apple-touch-icon", "preload", "modulepreload",
              "manifest"}
_SOURCES = {"img": ("src",), "script": ("src",), "iframe": ("src",), "embed": ("src",),
            "source": ("src",), "video": ("src", "poster"), "audio": ("src",),
            "input": ("src",), "object": ("data",)}


_PIECE = 1 << 16  # characters of the page given to the parser at a time
# schemes whose address names nothing to fetch: the content is in the page itself (data:,
# blob:) or is no content at all (about:blank, javascript:); a browser fetches nothing there
IN_THE_PAGE = ("data", "blob", "about", "javascript")
REFUSED_LISTED_AT_MOST = 1000  # addresses under a scheme not fetched, listed; past it counted
UNREADABLE = "it is not an address that can be read (RFC 3986)"


def joined(base: str, reference: str) -> str | None:
    """*reference* read against *base*, without its fragment; None when urllib cannot read it
    ('http://[bad/', an IPv6 bracket left open: ValueError, which ended capture --url as an
    internal error, exit 5, whatever page named it)."""
    try:
        return urllib.parse.urldefrag(urllib.parse.urljoin(base, reference))[0]
    except ValueError:
        return None


def scheme_of(url: str) -> str | None:
    """*url*'s scheme in lower case; None when urllib cannot read *url*."""
    try:
        return urllib.parse.urlsplit(url).scheme.lower()
    except ValueError:
        return None


@dataclass
class PageLinks:
    """What a page's HTML sends the browser to: its resources, and a ``<meta>`` refresh."""

    resources: list[str] = field(default_factory=list)
    refresh: str | None = None  # the URL of the first <meta http-equiv="refresh"> naming one
    # what it names under a scheme that is not fetched: (URL, "resource" or "<meta> refresh")
    refused: list[tuple[str, str]] = field(default_factory=list)
    refused_unlisted: int = 0  # those past REFUSED_LISTED_AT_MOST, counted


class _Finder(HTMLParser):
    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.found: list[str] = []
        self.refresh: str | None = None
        self._refreshed = False  # a browser obeys the first refresh only
        self._style: list[str] | None = None  # a <style> block's text so far, inside one
        self._noscript = 0  # inside <noscript>: what a browser running scripts does not read
        self._seen: set[str] = set()  # "not in found" was quadratic: a page of 40,000 tags, 23 s
        self._asked: set[tuple[str, str]] = set()  # (base, reference) already resolved
        self.refused: list[tuple[str, str]] = []
        self.refused_unlisted = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value for name, value in attrs if value}
        if tag == "base" and "href" in values:
            self.base = joined(self.base, values["href"] or "") or self.base
        elif tag == "link" and _LINK_RELS & set((values.get("rel") or "").lower().split()):
            self.add(values.get("href"))
        elif tag == "meta" and (values.get("http-equiv") or "").strip().lower() == "refresh" \
                and not self._noscript:  # a cloaking kit sends browsers without scripts away
            self._meta_refresh(values.get("content") or "")
        elif tag == "noscript":
            self._noscript += 1
        for name in _SOURCES.get(tag, ()):
            self.add(values.get(name))
        if tag in ("img", "source") and "srcset" in values:
            for candidate in values["srcset"].split(","):
                self.add(candidate.strip().split(" ")[0])
        if "style" in values:
            for reference in _css_references(values["style"], imports=False):
                self.add(reference)
        if tag == "style":
            self._style = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "noscript":
            self._noscript = max(0, self._noscript - 1)
        self.end_style()

    def handle_data(self, data: str) -> None:
        if self._style is not None:  # a <style> block comes whole or in pieces: kept whole
            self._style.append(data)

    def in_style(self) -> bool:
        return self._style is not None

    def end_style(self) -> None:
        if self._style is not None:
            for reference in _css_references("".join(self._style)):
                self.add(reference)
            self._style = None

    def _meta_refresh(self, content: str) -> None:
        if self._refreshed:
            return
        self._refreshed = True
        target = refresh_target(content)
        if target:
            url = joined(self.base, target)
            if url is not None and scheme_of(url) in ("http", "https"):
                self.refresh = url
            else:
                self._refuse(target if url is None else url, "<meta> refresh")

    def add(self, reference: str | None) -> None:
        if not reference or (self.base, reference) in self._asked or \
                reference.lstrip()[:5].lower() == "data:":  # in the page itself: not fetched
            return
        # the same name again is not resolved again: "url(a)" 3 million times in a style
        # sheet of 18 MB took 15 s of urljoin
        self._asked.add((self.base, reference))
        url = joined(self.base, reference.strip())
        if url is None:
            self._refuse(reference.strip(), "resource")
            return
        if url in self._seen:
            return
        self._seen.add(url)
        if scheme_of(url) in ("http", "https"):
            self.found.append(url)
        else:
            self._refuse(url, "resource")

    def _refuse(self, url: str, how: str) -> None:
        """*url* is not fetched for its scheme: listed (nothing silent), unless the scheme names
        nothing to fetch; past REFUSED_LISTED_AT_MOST, counted (a page may name millions)."""
        if scheme_of(url) in IN_THE_PAGE:
            return
        if len(self.refused) < REFUSED_LISTED_AT_MOST:
            self.refused.append((url, how))
        else:
            self.refused_unlisted += 1

    def links(self, at_most: int | None = None) -> PageLinks:
        found = self.found if at_most is None else self.found[:at_most]
        return PageLinks(found, self.refresh, self.refused, self.refused_unlisted)


def _decoded(data: bytes, charset: str | None) -> str:
    try:
        return data.decode(charset or "utf-8", errors="replace")
    except (LookupError, UnicodeError):  # a codec that refuses "replace" (idna, punycode)
        return data.decode("utf-8", errors="replace")


def read_page(html: bytes, url: str, charset: str | None = None,
              at_most: int | None = None) -> PageLinks:
    """The resources *html* (served at *url*) names, absolute, each once, in order, and where
    its refresh sends the browser; the first *at_most* resources only (the rest of the page is
    not read: 20 MiB of tags took minutes)."""
    finder = _Finder(url)
    text = _decoded(html, charset)
    for at in range(0, len(text), _PIECE):
        finder.feed(text[at:at + _PIECE])
        if at_most is not None and len(finder.found) >= at_most:
            return finder.links(at_most)
        if len(finder.rawdata) > HELD_AT_MOST:
            break  # an opening never closed: what follows is inside it, for a browser too
    _finish(finder)
    return finder.links()


# What html.parser holds unparsed (from a tag, comment or end tag never closed, to the end) is
# parsed again at every piece fed, and its close() reads what it holds in quadratic time: a
# page of "</" repeated took 16 s for 500 KB (days for the 20 MiB an answer may hold), "<a b b
# b…" 6 s for 2 MB. A browser reads such a rest as the inside of what was never closed (no
# tag in it is loaded); the parser is given it only when it is short, and a <style> never
# closed keeps its text (what it names is loaded; html.parser's close() dropped it).
HELD_AT_MOST = 1 << 20  # characters held unparsed: the rest of the page is not fed
CLOSED_AT_MOST = _PIECE  # characters held unparsed that close() is given to read


def _finish(finder: _Finder) -> None:
    held = finder.rawdata
    if finder.in_style():  # html.parser's close() would drop its text
        finder.handle_data(held)
    elif len(held) <= CLOSED_AT_MOST:
        finder.close()
    finder.end_style()  # a <style> never closed


def page_resources(html: bytes, url: str, charset: str | None = None,
                   at_most: int | None = None) -> list[str]:
    """The resources of :func:`read_page`."""
    return read_page(html, url, charset, at_most).resources


_REFRESH = re.compile(r"^\s*[0-9.]*\s*[;,]?\s*(?:url\s*=\s*)?(.*)$", re.IGNORECASE | re.DOTALL)


def refresh_target(content: str) -> str | None:
    """The address in a refresh's ``content`` ("0; url=/next", "5;URL='/next'", "0, /next"),
    as the HTML standard reads it; None when it only reloads the page ("30")."""
    found = _REFRESH.match(content)
    target = found.group(1).strip() if found else ""
    if target[:1] in ("'", '"'):
        quote = target[0]
        target = target[1:].split(quote, 1)[0]
    return target.strip() or None


# comments out first (a commented-out url() is not loaded); then, in the sheet's order,
# @import "…" and url(…) quoted or not (the url(…) form of @import is a url(…) too).
# Read in linear time whatever the sheet: a style sheet of "url(" repeated (an unquoted url
# holds no "(", as in CSS), or "url(" and spaces without end, took 10 s for 80 KB and would
# take days for 20 MiB. (?=(?P<x>…))(?P=x) is an atomic group: once taken, the spaces are
# not given back one by one to try again (Python 3.10 has no possessive quantifier).
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|$)", re.DOTALL)
_CSS_REFERENCE = re.compile(
    r"""@import(?=(?P<s1>\s+))(?P=s1)(?:"(?P<i1>[^"]*)"|'(?P<i2>[^']*)')"""
    r"""|url\((?=(?P<s2>\s*))(?P=s2)"""
    r"""(?:"(?P<u1>[^"]*)"|'(?P<u2>[^']*)'|(?=(?P<u3>[^()"'\s]*))(?P=u3))"""
    r"""(?=(?P<s3>\s*))(?P=s3)\)""",
    re.IGNORECASE)
_CSS_NAMED = ("i1", "i2", "u1", "u2", "u3")


def _css_references(text: str, imports: bool = True) -> list[str]:
    """What CSS *text* names, in its order (*imports*: @import too; not in a style attribute)."""
    found = []
    for match in _CSS_REFERENCE.finditer(_CSS_COMMENT.sub(" ", text)):
        if not imports and match.group(0)[0] == "@":
            continue
        reference = next(match[name] for name in _CSS_NAMED
                         if match[name] is not None).strip()
        if reference:
            found.append(reference)
    return found


def stylesheet_links(css: bytes, url: str, charset: str | None = None,
                     at_most: int | None = None) -> PageLinks:
    """What a style sheet (served at *url*) names: ``@import``, fonts, pictures (absolute, each
    once, in order; the first *at_most*), and what it names under a scheme not fetched.
    Relative names are read against the style sheet's own address, as browsers do."""
    finder = _Finder(url)
    for reference in _css_references(_decoded(css, charset)):
        finder.add(reference)  # the same resolving, each once
        if at_most is not None and len(finder.found) >= at_most:
            break
    return finder.links()


def stylesheet_resources(css: bytes, url: str, charset: str | None = None,
                         at_most: int | None = None) -> list[str]:
    """The resources of :func:`stylesheet_links`."""
    return stylesheet_links(css, url, charset, at_most).resources


def is_css(content_type: str | None, url: str) -> bool:
    """A style sheet: by its Content-Type, or, without one, by its name."""
    if content_type:
        return content_type.split(";")[0].strip().lower() == "text/css"
    return urllib.parse.urlsplit(url).path.lower().endswith(".css")


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
