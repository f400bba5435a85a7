"""The command group, shared options, and the one place errors become messages and exit codes."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from evidencekit import __version__
from evidencekit.cli import render
from evidencekit.cli.secrets import PASSPHRASE_ENV
from evidencekit.errors import (
    EvidenceKitError,
    ExitCode,
    Interrupted,
)

F = TypeVar("F", bound=Callable[..., Any])

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON document on stdout (and nothing else there).")


def identity_option(f: F) -> F:
    f = click.option("-p", "--passphrase", "ask_passphrase", is_flag=True,
                     help="The bundle is protected by a passphrase: ask for it.")(f)
    f = click.option("--passphrase-file", type=click.Path(path_type=Path, dir_okay=False),
                     help=f"Read the bundle's passphrase from this file (or set {PASSPHRASE_ENV})."
                     )(f)
    return click.option("-i", "--identity", "identities", multiple=True,
                        type=click.Path(path_type=Path, dir_okay=False),
                        help="Decryption key: an age identity file or an OpenSSH private key. "
                        "Repeatable.")(f)


def trusted_option(f: F) -> F:
    return click.option("--trusted-key", "trusted", multiple=True, metavar="KEY",
                        help="A signer you trust: a .pub file or 'ssh-ed25519 AAAA…'. "
                        "Repeatable.")(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="evidencekit")
def cli() -> None:
    """Preserve digital evidence: capture files into one signed, encrypted bundle that anyone
    holding the key can verify and open, with evidencekit or with standard tools."""


def run(command: str, as_json: bool, body: Callable[[], int]) -> NoReturn:
    """Run a command body; map every outcome to one message and a documented exit code."""
    try:
        code = body()
    except EvidenceKitError as exc:
        render.error(exc, command, as_json)
        code = exc.exit_code
    except KeyboardInterrupt:
        render.error(Interrupted("interrupted; nothing was written",
                                 hint="the source was not changed"), command, as_json)
        code = ExitCode.INTERRUPTED
    except Exception as exc:
        if os.environ.get("EVIDENCEKIT_DEBUG"):
            raise
        render.error(EvidenceKitError(f"internal error: {type(exc).__name__}: {exc}",
                                      hint="this is a bug in evidencekit; run again with "
                                      "EVIDENCEKIT_DEBUG=1 and report the traceback"),
                     command, as_json)
        code = ExitCode.INTERNAL
    sys.exit(code)


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.USAGE)
    except click.exceptions.Abort:
        render.err.print("evidencekit: interrupted")
        sys.exit(ExitCode.INTERRUPTED)
