"""Where passphrases come from: a file, an environment variable, or a terminal prompt.

Never a prompt without a terminal: a script that forgot a secret gets exit code 2 and the name of
the flag or variable to use, instead of hanging.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TextIO

import click

from evidencekit.errors import InputError, PassphraseRequired
from evidencekit.fs.noatime import read_user_file

PASSPHRASE_ENV = "EVIDENCEKIT_PASSPHRASE"
KEY_PASSPHRASE_ENV = "EVIDENCEKIT_KEY_PASSPHRASE"
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]*@")


def recorded_command_line() -> list[str]:
    """The command line as a capture records it (signed, in the manifest, for good): without the
    user name and password a URL may carry (``--endpoint https://KEY:SECRET@store/``)."""
    return [_URL_USERINFO.sub(r"\1", argument) for argument in sys.argv]


def interactive() -> bool:
    """Whether a question can be asked: stdin and stderr are both terminals."""
    return _is_terminal(sys.stdin) and _is_terminal(sys.stderr)


def _is_terminal(stream: TextIO | None) -> bool:
    # A descriptor closed before start (``<&-``) leaves the stream None, not a closed file: that
    # is no terminal either, and must fail like /dev/null, naming the flag, never crash.
    return stream is not None and stream.isatty()


def read_passphrase_file(path: Path) -> bytes:
    """The first line of *path*, without its line ending."""
    try:
        data = read_user_file(path)
    except OSError as exc:
        raise InputError(f"cannot read the passphrase file {path}: {exc.strerror}") from None
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    if not line:
        raise InputError(f"the passphrase file {path} is empty")
    return line


def obtain(purpose: str, file: Path | None, env: str, flag: str, *, confirm: bool) -> bytes:
    """A passphrase for *purpose* from --…-passphrase-file, then $env, then a prompt."""
    if file is not None:
        return read_passphrase_file(file)
    if os.environ.get(env):
        return os.environ[env].encode("utf-8")
    if not interactive():
        raise PassphraseRequired(
            f"a passphrase is needed for {purpose}, and there is no terminal to ask on",
            hint=f"pass {flag} FILE or set the environment variable {env}")
    value: str = click.prompt(f"Passphrase for {purpose}", hide_input=True,
                              confirmation_prompt=confirm, err=True)
    if not value:
        raise InputError("the passphrase is empty")
    return value.encode("utf-8")
