"""evidencekit capture."""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
from pathlib import Path

import click

from evidencekit.capture import CaptureRequest, CaseInfo, capture
from evidencekit.cli import render
from evidencekit.cli.app import cli, json_option, run
from evidencekit.cli.keyring import (
    default_signing_key_path,
    generate_key_files,
    load_signing,
    recipients_from,
)
from evidencekit.cli.secrets import KEY_PASSPHRASE_ENV, PASSPHRASE_ENV, obtain
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.errors import (
    ExitCode,
    UsageError,
)
from evidencekit.hostinfo import user_name


# ------------------------------------------------------------------------------ capture
@cli.command("capture")
@click.argument("sources", nargs=-1, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="The bundle to write (default: CASE.evidence in the current folder).")
@click.option("--case", "case_id", help="Case or reference number (default: EK-date-time).")
@click.option("--examiner", help="Who is capturing (default: your user name).")
@click.option("--description", default="", help="What happened, in a sentence or two.")
@click.option("--legal-basis", default="", help="Authorisation or legal basis, if any.")
@click.option("--organisation", default="", help="Organisation capturing the evidence.")
@click.option("-r", "--recipient", "recipients", multiple=True, metavar="KEY",
              help="Encrypt to this public key (age1… or 'ssh-ed25519 AAAA…'). Repeatable.")
@click.option("-R", "--recipient-file", "recipient_files", multiple=True,
              type=click.Path(path_type=Path, dir_okay=False),
              help="Encrypt to the public keys in this file (e.g. investigator.pub). Repeatable.")
@click.option("-p", "--passphrase", "use_passphrase", is_flag=True,
              help="Encrypt with a passphrase instead (asked twice on the terminal).")
@click.option("--passphrase-file", type=click.Path(path_type=Path, dir_okay=False),
              help=f"Encrypt with the passphrase in this file (or set {PASSPHRASE_ENV}).")
@click.option("--sign-key", type=click.Path(path_type=Path, dir_okay=False),
              help="Your signing key (default: your personal key, created on first use).")
@click.option("--sign-key-passphrase-file", type=click.Path(path_type=Path, dir_okay=False),
              help=f"Passphrase of the signing key (or set {KEY_PASSPHRASE_ENV}).")
@json_option
def capture_command(sources: tuple[Path, ...], output: Path | None, case_id: str | None,
                    examiner: str | None, description: str, legal_basis: str, organisation: str,
                    recipients: tuple[str, ...], recipient_files: tuple[Path, ...],
                    use_passphrase: bool, passphrase_file: Path | None, sign_key: Path | None,
                    sign_key_passphrase_file: Path | None, as_json: bool) -> None:
    """Capture files and folders into a signed, encrypted evidence bundle.

    The sources are only read, never changed. Every file is hashed (SHA-256) as it is copied.
    """

    def body() -> int:
        if not sources:
            raise UsageError("nothing to capture: name the files and folders to preserve",
                             hint="evidencekit capture ~/Downloads/invoice.pdf --passphrase "
                             "-o case.evidence")
        case = CaseInfo(case_id or _default_case_id(), examiner or user_name(), description,
                        legal_basis, organisation)
        chosen = _encryption(recipients, recipient_files, use_passphrase, passphrase_file)
        signing = _signing_key(sign_key, sign_key_passphrase_file, as_json)
        target = output or Path(_safe_filename(case.case_id) + ".evidence")
        request = CaptureRequest([os.fsencode(s) for s in sources], target, case, chosen, signing,
                                 command_line=list(sys.argv),
                                 progress=render.progress_for(as_json))
        result = capture(request)
        code = ExitCode.OK if result.seal.complete else ExitCode.CAPTURE_INCOMPLETE
        if as_json:
            render.emit_json(render.capture_json(result, code))
        else:
            render.capture_text(result)
        return code

    run("capture", as_json, body)


def _default_case_id() -> str:
    return "EK-" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")


def _safe_filename(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "evidence"


def _encryption(recipients: tuple[str, ...], files: tuple[Path, ...], use_passphrase: bool,
                passphrase_file: Path | None) -> list[age.Recipient]:
    by_key = recipients_from(recipients, files)
    wants_passphrase = use_passphrase or passphrase_file is not None or (
        not by_key and bool(os.environ.get(PASSPHRASE_ENV)))
    if by_key and wants_passphrase:
        raise UsageError("choose either public keys (--recipient) or a passphrase, not both",
                         hint="the age format allows a passphrase only on its own")
    if by_key:
        return by_key
    if not wants_passphrase:
        raise UsageError("no way to encrypt the bundle was given; evidencekit never writes "
                         "evidence unencrypted",
                         hint="add --recipient age1… (the investigator's key), --recipient-file "
                         "FILE, or --passphrase")
    secret = obtain("the bundle", passphrase_file, PASSPHRASE_ENV, "--passphrase-file",
                    confirm=True)
    return [age.ScryptRecipient(secret)]


def _signing_key(path: Path | None, passphrase_file: Path | None, quiet: bool) -> SigningKey:
    def passphrase() -> bytes:
        return obtain("the signing key", passphrase_file, KEY_PASSPHRASE_ENV,
                      "--sign-key-passphrase-file", confirm=False)

    if path is not None:
        return load_signing(path, passphrase)
    default = default_signing_key_path()
    if default.exists():
        return load_signing(default, passphrase)
    signing = generate_key_files(default, None, None)
    if not quiet:
        render.err.print(f"Created your personal signing key {default}\n"
                         f"  fingerprint {signing.public.fingerprint}\n"
                         "  (it proves the bundles you make are yours; keep it safe)")
    return signing

