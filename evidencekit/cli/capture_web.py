"""The web page options of ``capture`` (``--url`` and its limits), kept out of cmd_capture.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.markup import escape

from evidencekit.cli import render
from evidencekit.cli.options import TEXT, option_group, refuse_given_without
from evidencekit.sources.web_limits import DEFAULT_USER_AGENT, Limits

if TYPE_CHECKING:  # the web source itself is imported when --url is given (issue 27)
    from evidencekit.sources.web import WebSource

F = TypeVar("F", bound=Callable[..., Any])
_DEFAULTS = Limits()
_PICTURES = {"screenshot": "screenshot", "pdf": "PDF"}
_KEYS = ("urls", "url_timeout", "url_max_size", "user_agent")


def web_options(f: F) -> F:
    options = [
        click.option("--url", "urls", multiple=True, metavar="URL",
                     help="Also capture this web page (http or https) with its images, style "
                     "sheets and scripts, as WARC, with a screenshot and PDF made by Chromium "
                     "if installed. Repeatable."),
        click.option("--url-timeout", type=click.FloatRange(0.1, 3600), metavar="SECONDS",
                     default=_DEFAULTS.timeout, show_default=True,
                     help="Time allowed for each request of --url (a server that does not "
                     "answer, or answers forever, is recorded as such)."),
        click.option("--url-max-size", type=click.IntRange(1024, 1 << 32), metavar="BYTES",
                     default=_DEFAULTS.max_response, show_default=True,
                     help="Largest answer kept for each request of --url (larger ones are "
                     "kept cut, and recorded as cut)."),
        click.option("--user-agent", type=TEXT, metavar="TEXT", default=DEFAULT_USER_AGENT,
                     help="The User-Agent sent with --url (default: evidencekit's own, which "
                     "says what it is; a site that hides from robots may need a browser's)."),
    ]
    return option_group(options)(f)


def web_sources(options: dict[str, Any]) -> tuple[WebSource, ...]:
    """The web source the options ask for (none without --url); the options are taken out of
    *options* (the command's remaining keyword arguments)."""
    urls, timeout, max_size, user_agent = (options.pop(key) for key in _KEYS)
    if not urls:  # the guided session's pages have the default limits
        refuse_given_without(_KEYS[1:], "a web page", "--url URL")
        return ()
    from evidencekit.sources.web import WebSource

    limits = Limits(timeout=timeout, max_response=max_size, user_agent=user_agent)
    return (WebSource(list(urls), limits),)  # checks every URL before anything is read


def summary(sources: Sequence[WebSource]) -> list[dict[str, Any]] | None:
    """For ``capture --json``: each page captured (null without --url)."""
    if not sources:
        return None
    return [page.to_json() for source in sources for page in source.captured]


def say_done(sources: Sequence[WebSource]) -> None:
    """Each page in a few plain lines on stderr: where it went, what is missing and why."""
    from evidencekit.sources.web import WARC_NAME

    for source in sources:
        for page in source.captured:
            found = page.to_json()
            status = f"HTTP {found['status']}" if found["status"] else "no answer"
            moved = f" → {found['final_url']}" if found["final_url"] != found["url"] else ""
            pictures = ("a screenshot and a PDF made from the capture"
                        if found["screenshot"] and found["pdf"] else "no screenshot or PDF"
                        if not (found["screenshot"] or found["pdf"]) else
                        "a screenshot" if found["screenshot"] else "a PDF")
            render.err.print(f"Web page {escape(found['url'])}{escape(moved)}: {status}, "
                             f"{found['requests']} request{'s' if found['requests'] != 1 else ''}"
                             f", {pictures}; stored as {found['files'][0].removesuffix(WARC_NAME)}*")
            if found["certificate_error"]:
                render.err.print("  [yellow]Its certificate is not trusted "
                                 f"({escape(found['certificate_error'])}):[/] recorded, and the "
                                 "page captured anyway, as it was served.")
            for problem in found["problems"]:
                render.err.print(f"  [yellow]Missing:[/] {escape(problem)}")
            for what, why in sorted(found["absent"].items()):
                render.err.print(f"  No {_PICTURES.get(what, what)}: {escape(why)}")
