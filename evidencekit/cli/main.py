"""The command line: a thin layer over the library. Errors become one message and an exit code."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from evidencekit import __version__
from evidencekit.capture import CaptureRequest, CaseInfo, capture
from evidencekit.cli import render
from evidencekit.cli.keyring import (
    default_signing_key_path,
    identities_from,
    load_signing,
    recipients_from,
    trusted_from,
)
from evidencekit.cli.secrets import KEY_PASSPHRASE_ENV, PASSPHRASE_ENV, obtain
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.errors import (
    EvidenceKitError,
    ExitCode,
    Interrupted,
    OutputError,
    UsageError,
)
from evidencekit.extract import extract
from evidencekit.format.documents import PAYLOAD
from evidencekit.format.outer import open_member
from evidencekit.format.reader import open_bundle
from evidencekit.hostinfo import user_name
from evidencekit.inspect import inspect_bundle
from evidencekit.verify import verify

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


# ---------------------------------------------------------------------------------- key
@cli.group()
def key() -> None:
    """Create signing keys (OpenSSH ed25519)."""


@key.command("generate")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Where to write the private key; the public key goes to OUTPUT.pub.")
@click.option("--comment", default=None, help="Comment stored with the key (default: user@host).")
@click.option("--passphrase-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Protect the key with the passphrase in this file.")
@click.option("--ask-passphrase", is_flag=True, help="Ask for a passphrase on the terminal.")
@json_option
def key_generate(output: Path, comment: str | None, passphrase_file: Path | None,
                 ask_passphrase: bool, as_json: bool) -> None:
    """Make a new signing key pair (never overwrites; never prompts unless asked)."""

    def body() -> int:
        secret = None
        if passphrase_file or ask_passphrase:
            secret = obtain("the new key", passphrase_file, KEY_PASSPHRASE_ENV,
                            "--passphrase-file", confirm=True)
        signing = _generate_key(output, comment, secret)
        if as_json:
            render.emit_json({"command": "key generate", "ok": True, "exit_code": 0,
                              "private_key": str(output), "public_key": f"{output}.pub",
                              "fingerprint": signing.public.fingerprint,
                              "public_key_line": signing.public.openssh_line()})
        else:
            render.out.print(f"Wrote {output} (private, keep it safe) and {output}.pub")
            render.out.print(f"Fingerprint: {signing.public.fingerprint}")
        return ExitCode.OK

    run("key generate", as_json, body)


def _generate_key(output: Path, comment: str | None, secret: bytes | None) -> SigningKey:
    if output.exists() or Path(f"{output}.pub").exists():
        raise OutputError(f"{output} or {output}.pub already exists; keys are never overwritten")
    output.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    signing = SigningKey.generate(comment or f"{user_name()}@{os.uname().nodename}")
    signing.save(output, secret)
    return signing


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
    signing = _generate_key(default, None, None)
    if not quiet:
        render.err.print(f"Created your personal signing key {default}\n"
                         f"  fingerprint {signing.public.fingerprint}\n"
                         "  (it proves the bundles you make are yours; keep it safe)")
    return signing


# ------------------------------------------------------------------------------ inspect
@cli.command("inspect")
@click.argument("bundle", type=click.Path(path_type=Path, dir_okay=False))
@json_option
def inspect_command(bundle: Path, as_json: bool) -> None:
    """Show what a bundle says about itself (no key needed; use verify to check it)."""

    def body() -> int:
        info = inspect_bundle(bundle)
        if as_json:
            render.emit_json({"command": "inspect", "ok": True, "exit_code": 0,
                              "bundle": str(bundle), "seal": render.seal_json(info.seal),
                              "custody": [render.event_json(e) for e in info.events],
                              "recipients": info.recipient_types,
                              "members": [{"name": m.name, "size": m.size}
                                          for m in info.members]})
            return ExitCode.OK
        seal = info.seal
        render.out.print(f"Bundle      {bundle} (format version {seal.format_version})")
        render.out.print(f"Case        {seal.case_id}")
        render.out.print(f"Sealed      {seal.created} (capture started {seal.capture_started})")
        render.out.print(f"Sealed by   {seal.signer.fingerprint}")
        render.out.print(f"Contents    {seal.counts['files']} files, {seal.total_bytes} bytes, "
                         f"{seal.counts['directories']} folders"
                         + ("" if seal.complete else " (capture incomplete)"))
        render.out.print(f"Root hash   {seal.manifest_root}")
        render.out.print(f"Payload     {seal.payload_size} bytes, SHA-256 {seal.payload_sha256}")
        render.out.print(f"Opens with  {', '.join(info.recipient_types)}")
        render.custody_table(info.events)
        render.out.print("Not verified: run 'evidencekit verify' to check seal and signatures.")
        return ExitCode.OK

    run("inspect", as_json, body)


# ------------------------------------------------------------------------------- verify
def _payload_needs_passphrase(bundle: Path) -> bool:
    opened = open_bundle(bundle)
    try:
        member = opened.by_name.get(PAYLOAD)
        if member is None:
            return False
        header = age.read_header(open_member(opened.file, member)[0])
        return any(s.type == "scrypt" for s in header.stanzas)
    except EvidenceKitError:
        return False  # verify itself reports the damage
    finally:
        opened.close()


def _identities(paths: tuple[Path, ...], passphrase_file: Path | None,
                ask: bool) -> list[age.Identity]:
    """Keys from -i files, plus a passphrase when one was given or should be asked for."""
    identities = identities_from(paths, lambda p: obtain(f"the key {p}", None, KEY_PASSPHRASE_ENV,
                                                         "--passphrase-file", confirm=False))
    if ask or passphrase_file is not None or os.environ.get(PASSPHRASE_ENV):
        secret = obtain("the bundle", passphrase_file, PASSPHRASE_ENV, "--passphrase-file",
                        confirm=False)
        identities.append(age.ScryptIdentity(secret))
    return identities


@cli.command("verify")
@click.argument("bundle", type=click.Path(path_type=Path, dir_okay=False))
@identity_option
@trusted_option
@json_option
def verify_command(bundle: Path, identities: tuple[Path, ...], passphrase_file: Path | None,
                   ask_passphrase: bool, trusted: tuple[str, ...], as_json: bool) -> None:
    """Check a bundle: seal, signatures, custody and payload hash; with a key, every file too."""

    def body() -> int:
        keys = _identities(identities, passphrase_file, ask_passphrase)
        report = verify(bundle, keys, trusted_from(trusted), progress=render.progress_for(as_json))
        code = render.exit_code_for(report)
        if as_json:
            render.emit_json(render.report_json(report, code))
        else:
            render.report_text(report)
        return code

    run("verify", as_json, body)


# ------------------------------------------------------------------------------ extract
@cli.command("extract")
@click.argument("bundle", type=click.Path(path_type=Path, dir_okay=False))
@identity_option
@trusted_option
@click.option("-o", "--output", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="A new folder to extract into (must not exist).")
@click.option("--keep-untrusted", is_flag=True,
              help="If verification fails, keep what was decrypted as OUTPUT.UNTRUSTED.")
@json_option
def extract_command(bundle: Path, identities: tuple[Path, ...], passphrase_file: Path | None,
                    ask_passphrase: bool, trusted: tuple[str, ...], output: Path,
                    keep_untrusted: bool, as_json: bool) -> None:
    """Verify and open a bundle into a new folder; nothing is kept unless every check passes."""

    def body() -> int:
        ask = ask_passphrase or (not identities and _payload_needs_passphrase(bundle))
        keys = _identities(identities, passphrase_file, ask)
        if not keys:
            raise UsageError("a key is needed to open the bundle",
                             hint="give -i KEYFILE (age identity or OpenSSH private key), "
                             "or --passphrase-file FILE for a passphrase-protected bundle")
        result = extract(bundle, output, keys, trusted_from(trusted), keep_untrusted,
                         render.progress_for(as_json))
        code = render.exit_code_for(result.report)
        if code == ExitCode.OK and result.output is None:
            code = ExitCode.EVIDENCE_PROBLEM
        if as_json:
            document = render.report_json(result.report, code, command="extract")
            document.update({"output": str(result.output) if result.output else None,
                             "untrusted": str(result.untrusted) if result.untrusted else None,
                             "files": result.files, "symlinks": result.symlinks,
                             "skipped_links": result.skipped_links,
                             "renamed_to_original": result.renamed})
            render.emit_json(document)
            return code
        render.report_text(result.report)
        if result.output is not None:
            render.out.print(f"Extracted {result.files} files into {result.output}")
            for link in result.skipped_links:
                render.err.print(f"  link not created (points outside the folder): {link}")
        elif result.untrusted is not None:
            render.err.print(f"[red]Nothing trusted was extracted.[/] What was decrypted is in "
                             f"{result.untrusted}: do NOT rely on it.")
        else:
            render.err.print("[red]Nothing was extracted[/] because verification failed.")
        return code

    run("extract", as_json, body)


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
