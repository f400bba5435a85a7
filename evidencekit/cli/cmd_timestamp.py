"""evidencekit timestamp: add RFC 3161 trusted timestamps to a bundle (also used by capture)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from evidencekit import timestamps
from evidencekit.cli import render
from evidencekit.cli.app import bundle_argument, cli, json_option, run
from evidencekit.cli.options import FILE_PATH
from evidencekit.errors import ExitCode, UsageError
from evidencekit.stamping import Stamped, add_timestamps, later_command

tsa_option = click.option(
    "--tsa", "tsa_urls", multiple=True, metavar="URL",
    help="An RFC 3161 time stamping authority to countersign the seal (repeatable).")
tsa_ca_option = click.option(
    "--tsa-ca", type=FILE_PATH,
    help="The root certificate (PEM) a timestamp's TSA must chain to.")


def checked_urls(urls: Sequence[str]) -> list[str]:
    """Only http(s) URLs: a file: or ftp: URL is not a TSA (refused before any work)."""
    for url in urls:
        if not url.lower().startswith(("http://", "https://")):
            raise UsageError(f"--tsa {url}: a TSA is an http:// or https:// URL")
    return list(urls)


def roots_from(path: Path | None) -> list[timestamps.Certificate] | None:
    return None if path is None else timestamps.load_roots(str(path))


def stamped_json(stamped: Stamped) -> dict[str, Any]:
    return {"added": [{"member": name, "tsa": url, "time": _time(token), "policy": token.policy,
                       "serial": str(token.serial), "tsa_name": token.tsa}
                      for name, url, token in stamped.added],
            "failed": [{"tsa": url, "problem": why} for url, why in stamped.failed]}


def _time(token: timestamps.Token) -> str:
    return token.gen_time.strftime("%Y-%m-%dT%H:%M:%SZ")


def say_stamped(bundle: Path, stamped: Stamped) -> None:
    """One line per timestamp added, a warning per TSA that failed, and the command that adds
    the missing ones later."""
    for name, url, token in stamped.added:
        render.out.print(f"Timestamped by {render.escape(token.tsa or url)} at {_time(token)} "
                         f"({name})")
    for url, why in stamped.failed:
        render.err.print(f"[yellow]evidencekit: warning:[/] no timestamp from "
                         f"{render.escape(url)}: {render.escape(why)}")
    if stamped.failed:
        command = later_command(bundle, [url for url, _ in stamped.failed])
        render.err.print("[yellow]evidencekit: hint:[/] the bundle is complete without it; add "
                         f"the timestamp later with: {render.escape(command)}")


@cli.command("timestamp", short_help="Add a trusted (RFC 3161) timestamp to a bundle.")
@bundle_argument
@tsa_option
@tsa_ca_option
@json_option
def timestamp_command(bundle: Path, tsa_urls: tuple[str, ...], tsa_ca: Path | None,
                      as_json: bool) -> None:
    """Ask each TSA to countersign the bundle's seal signature, and add its answer to the
    bundle (nothing else changes; no decryption key is needed)."""

    def body() -> int:
        if not tsa_urls:
            raise UsageError("name a time stamping authority with --tsa URL")
        urls = checked_urls(tsa_urls)
        stamped = add_timestamps(bundle, urls, roots_from(tsa_ca),
                                 waiting=render.waiting_for_writer(bundle))
        code = ExitCode.TIMESTAMP_MISSING if stamped.failed else ExitCode.OK
        if as_json:
            render.emit_json({"command": "timestamp", "ok": code == ExitCode.OK,
                              "exit_code": code, "bundle": str(bundle),
                              **stamped_json(stamped),
                              "later": later_command(bundle, [u for u, _ in stamped.failed])
                              if stamped.failed else None})
        else:
            say_stamped(bundle, stamped)
        return code

    run("timestamp", as_json, body)
