"""evidencekit custody add|show, reseal, receipt: the chain of custody."""

from __future__ import annotations

import os
from pathlib import Path

import click

from evidencekit import fs
from evidencekit.cli import render
from evidencekit.cli.app import (
    NEW_PASSPHRASE,
    Signer,
    bundle_argument,
    cli,
    encryption_for,
    identity_option,
    is_stdout,
    json_option,
    new_recipient_options,
    output_option,
    progress_option,
    refuse_stdout,
    run,
    signer_options,
    trusted_option,
)
from evidencekit.cli.cmd_open import identities_for
from evidencekit.cli.keyring import trusted_from
from evidencekit.cli.options import TEXT
from evidencekit.custody.events import APPENDABLE, EventRequest, append_event, counterparty_for, event_summary
from evidencekit.custody.receipt import receipt_text
from evidencekit.custody.resealing import NewRecipients, ResealResult, reseal
from evidencekit.errors import BundleError, ExitCode, NoMatchingKey, OutputError
from evidencekit.incident import NoteContent
from evidencekit.progress import Progress
from evidencekit.protection import Keys, keys_given, wrong_key_for
from evidencekit.verify import verify


@cli.group()
def custody() -> None:
    """Record and show the chain of custody (no decryption key needed)."""


@custody.command("add",
                 short_help="Append a signed event to the custody log (evidence untouched).")
@bundle_argument
@click.option("--action", required=True, type=click.Choice(APPENDABLE),
              help="What happened to the bundle.")
@click.option("--to", "to_party", type=TEXT, help="transferred: to whom it was handed (required there).")
@click.option("--from", "from_party", type=TEXT, help="received: who handed it over (required there).")
@click.option("--note", default="", help="Free text: how, why, receipt or parcel numbers.")
@signer_options
@json_option
def custody_add(bundle: Path, action: str, to_party: str | None, from_party: str | None,
                note: str, signer: Signer, as_json: bool) -> None:
    """Append a signed event to the bundle's custody log (the evidence is not touched)."""

    def body() -> int:
        counterparty = counterparty_for(action, to_party, from_party)
        key, name = signer.resolve(as_json)
        request = EventRequest(action, name, key, note, counterparty)
        event = append_event(bundle, request, waiting=render.waiting_for_writer(bundle),
                             linked=render.other_names_left(bundle))
        if as_json:
            render.emit_json({"command": "custody add", "ok": True, "exit_code": 0,
                              "bundle": str(bundle), "event": event_summary(event)})
        else:
            render.out.print(f"Added custody event #{event.sequence} ({event.action}) to "
                             f"{render.escape(str(bundle))}, signed by "
                             f"{event.actor.fingerprint}")
        return ExitCode.OK

    run("custody add", as_json, body)


@custody.command("show")
@bundle_argument
@trusted_option
@json_option
def custody_show(bundle: Path, trusted: tuple[str, ...], as_json: bool) -> None:
    """Show the custody log, checked: signatures, chain and payload links."""

    def body() -> int:
        report = verify(bundle, trusted_keys=trusted_from(trusted), check_payload_hash=False)
        code = render.exit_code_for(report)
        if as_json:
            render.emit_json({"command": "custody show", "ok": report.ok and code == 0,
                              "exit_code": code, "bundle": str(bundle),
                              "custody": [event_summary(e) for e in report.events],
                              **render.trust_json(report),
                              "findings": [f.to_json() for f in report.findings.items]})
        else:
            render.custody_table(report.events, report)
            for finding in report.findings.items:
                render.print_finding(finding)
            if report.ok and report.untrusted_entries:
                render.out.print("[bold yellow]Custody log intact, but not every signer is "
                                 "trusted[/]: the events signed by keys you did not list with "
                                 "--trusted-key are marked (exit code 6).")
            elif report.ok:
                render.out.print("[green]Custody log intact[/]: every event is signed by the key "
                                 "it names and chained to the one before. (The payload itself "
                                 "was not read: 'evidencekit verify' checks it too.)")
        return code

    run("custody show", as_json, body)


@cli.command("reseal", short_help="Re-encrypt a bundle for a new holder; custody log kept.")
@bundle_argument
@identity_option
@new_recipient_options
@output_option("The new bundle to write.")
@click.option("--note", default="", help="Why it is resealed (e.g. MLA request number).")
@signer_options
@progress_option
@json_option
def reseal_command(bundle: Path, identities: tuple[Path, ...], passphrase_file: Path | None,
                   ask_passphrase: bool, recipients: tuple[str, ...],
                   recipient_files: tuple[Path, ...], new_passphrase_file: Path | None,
                   output: Path, note: str, signer: Signer, progress: str, as_json: bool
                   ) -> None:
    """Re-encrypt a bundle for a new holder; evidence, seal and custody log carry over."""

    def body() -> int:
        refuse_stdout(output, "a bundle")
        keys = identities_for(bundle, identities, passphrase_file, ask_passphrase, required=True)
        new_recipients = encryption_for(recipients, recipient_files, False, new_passphrase_file,
                                        passphrase_option=NEW_PASSPHRASE)
        result = resealed(bundle, output, keys, new_recipients, signer, note,
                          render.progress_for(as_json, progress), as_json)
        if as_json:
            render.emit_json({"command": "reseal", "ok": True, "exit_code": 0,
                              "bundle": str(bundle), "output": str(result.output),
                              "files_checked": result.report.files_checked,
                              "event": event_summary(result.event)})
        else:
            render.out.print(f"Resealed {bundle} → {result.output}: all "
                             f"{result.report.files_checked} files verified and re-encrypted")
            render.out.print(f"New payload SHA-256 {result.event.payload_sha256}; custody event "
                             f"#{result.event.sequence} signed by {result.event.actor.fingerprint}")
        return ExitCode.OK

    run("reseal", as_json, body)


def resealed(bundle: Path, output: Path, keys: Keys, new_recipients: NewRecipients,
             signer: Signer, note: str, progress: Progress, quiet: bool,
             addendum: NoteContent | None = None) -> ResealResult:
    """reseal, and note --private (with its *addendum*): *bundle* re-encrypted into *output*
    for *new_recipients*, the "resealed" event signed by *signer*; keys that open nothing are
    refused saying what protects the bundle, in plain words."""
    signing, name = signer.resolve(quiet)
    request = EventRequest("resealed", name, signing, note)
    try:
        return reseal(bundle, output, keys, new_recipients, request, progress=progress,
                      addendum=addendum)
    except NoMatchingKey:
        advice = wrong_key_for(bundle, keys_given(keys))
        raise NoMatchingKey(advice.message, hint=advice.hint) from None


def _write_receipt(output: Path, text: str) -> None:
    """Whole or not at all, never over another file; 0600 whatever the umask, as the bundle
    and every export: a receipt names the case, the people and the files handed over."""
    if os.path.lexists(output):
        raise OutputError(f"{output} already exists")
    try:
        with fs.staged(output, 0o600) as stage:
            stage.file.write(text.encode("utf-8"))
    except FileExistsError:
        raise OutputError(f"{output} already exists") from None
    except OSError as exc:
        raise OutputError(f"could not write {output}: {exc.strerror or exc}") from None


@cli.command("receipt", short_help="A printable receipt of the bundle handed over.")
@bundle_argument
@output_option("Write the receipt to this file (default, or -: print it).", required=False)
@json_option
def receipt_command(bundle: Path, output: Path | None, as_json: bool) -> None:
    """A short printable receipt proving later which bundle was handed over."""

    def body() -> int:
        file = None if is_stdout(output) else output  # -o -: printed, as without -o
        report = verify(bundle)
        if not report.ok or not report.events:
            raise BundleError("the bundle does not verify; no receipt was made",
                              hint="run 'evidencekit verify' to see every problem")
        text = receipt_text(report, bundle.name)
        if file is not None:
            _write_receipt(file, text)
        if as_json:
            render.emit_json({"command": "receipt", "ok": True, "exit_code": 0,
                              "bundle": str(bundle), "output": str(file) if file else None,
                              "receipt": text})
        elif file is None:
            render.out.print(text, markup=False)
        else:
            render.out.print(f"Wrote {file}")
        return ExitCode.OK

    run("receipt", as_json, body)
