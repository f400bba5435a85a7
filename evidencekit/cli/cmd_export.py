"""evidencekit export: what investigators' tools read (evidencekit.export: CASE, hashdeep, report)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from evidencekit import __version__
from evidencekit import export as exports
from evidencekit.cli import render
from evidencekit.cli.app import (
    Signer,
    bundle_argument,
    cli,
    identity_option,
    is_stdout,
    json_option,
    output_option,
    progress_option,
    run,
    stdout_binary,
    trusted_option,
)
from evidencekit.cli.cmd_open import identities_for, record_option
from evidencekit.cli.cmd_timestamp import roots_from, tsa_ca_option
from evidencekit.cli.keyring import trusted_from
from evidencekit.clock import rfc3339, system_clock
from evidencekit.custody.append import check_appendable
from evidencekit.custody.events import EventRequest, append_event, event_summary
from evidencekit.errors import EvidenceKitError, ExitCode, UsageError
from evidencekit.text import plural


def _format_help() -> str:
    return "; ".join(f"{name}: {exports.get(name).title}" for name in exports.names())


@cli.command("export", short_help="Export for investigators' tools (CASE, DFXML, E01, hashdeep).")
@bundle_argument
@identity_option
@trusted_option
@click.option("--format", "fmt", required=True, type=click.Choice(exports.names()),
              help=_format_help())
@output_option("The file to write (never overwritten), or - for standard output (not e01; "
               "pdf not to a terminal), once every check passed.")
@tsa_ca_option
@record_option
@progress_option
@json_option
def export_command(bundle: Path, identities: tuple[Path, ...], passphrase_file: Path | None,
                   ask_passphrase: bool, trusted: tuple[str, ...], fmt: str, output: Path,
                   tsa_ca: Path | None, record: bool, signer: Signer, progress: str,
                   as_json: bool) -> None:
    """Decrypt and verify a bundle, and export it in a format investigators' tools read.

    Nothing is written unless every check passes. The export is made from the decrypted
    payload as it is read: no other copy of the evidence is put on disk. With --record, a
    signed 'exported' custody event names the format and the export's SHA-256.
    """

    def body() -> int:
        chosen = exports.get(fmt)
        to_stdout = is_stdout(output)
        if to_stdout:
            if as_json:
                raise UsageError("--json and -o - would both write to standard output",
                                 hint="name the export's file with -o, or leave out --json")
            exports.refuse_format_on_stdout(chosen, terminal=sys.stdout.isatty())
        target = stdout_binary() if to_stdout else output  # (refused now if it is closed)
        tsa_roots = roots_from(tsa_ca)
        if record:
            check_appendable(bundle)  # asked now, not after a long export
        key = signer.key(as_json) if record else None
        keys = identities_for(bundle, identities, passphrase_file, ask_passphrase, required=True)
        context = exports.ExportContext(bundle, rfc3339(system_clock()),
                                        f"evidencekit {__version__}",
                                        None if to_stdout else output)
        done = exports.export(bundle, chosen, target,
                              context, keys, trusted_from(trusted),
                              progress=render.progress_for(as_json, progress),
                              tsa_roots=tsa_roots)
        event = None
        if key is not None:
            details = {"format": done.format, "sha256": done.sha256, "size": str(done.size)}
            try:
                event = append_event(bundle, EventRequest("exported", signer.name(key), key,
                                                          details=details), done.report,
                                     waiting=render.waiting_for_writer(bundle),
                                     linked=render.other_names_left(bundle))
            except EvidenceKitError as exc:  # the export is there: say so, not only the error
                raise _written_not_recorded(exc, done) from None
        code = render.exit_code_for(done.report) or \
            (ExitCode.CAPTURE_INCOMPLETE if done.written.left_out else ExitCode.OK)
        if as_json:
            render.emit_json({"command": "export", "ok": code == ExitCode.OK,
                              "exit_code": code, "bundle": str(bundle), "format": done.format,
                              "output": str(output), "sha256": done.sha256,
                              "size": done.size, "left_out": done.written.left_out,
                              "notices": done.written.notices,
                              "recorded": None if event is None else event_summary(event),
                              **render.trust_json(done.report),
                              "findings": [f.to_json() for f in done.report.findings.items]})
            return code
        untrusted = done.report.untrusted_entries
        headline = ("[bold yellow]VERIFIED, BUT NOT ALL SIGNERS ARE TRUSTED[/]" if untrusted
                    else "[bold green]VERIFIED[/]")
        where = "standard output" if done.output is None else render.escape(str(done.output))
        # Standard output holds the export itself: what is said about it goes to stderr.
        (render.err if done.output is None else render.out).print(
            f"{headline} and exported {done.format} to {where} (SHA-256 {done.sha256}).")
        if untrusted:  # exit 6 must not come with nothing but "VERIFIED" to read
            render.err.print(
                f"[yellow]evidencekit: warning:[/] {plural(len(untrusted), 'entry')} (custody "
                "events, notes, encrypted additions) signed by keys you did not list with "
                "--trusted-key, and in the export as such: "
                f"{render.escape(', '.join(untrusted))} (exit code 6)")
        for notice in done.written.notices:
            render.err.print(f"[yellow]evidencekit: warning:[/] {render.escape(notice)}")
        for item in done.written.left_out[:20]:
            render.err.print(f"  left out: {render.escape(repr(item))}")
        if event is not None:
            render.err.print(f"recorded as custody event #{event.sequence} (exported)")
        return code

    run("export", as_json, body)


def _written_not_recorded(exc: EvidenceKitError, done: exports.Exported) -> EvidenceKitError:
    """*exc* (the custody event could not be added: a full disk, another writer) saying that
    the export itself was written: a script reading the exit code alone would think not."""
    where = "to standard output" if done.output is None else str(done.output)
    exc.message = (f"{exc.message}. The export {where} was written (SHA-256 "
                   f"{done.sha256}) but is not recorded in the custody log")
    exc.args = (exc.message,)
    exc.hint = (f"{exc.hint}; then record it: " if exc.hint else "record it: ") + \
        f"evidencekit custody add BUNDLE --action exported --note 'format {done.format}, " \
        f"SHA-256 {done.sha256}'"
    return exc
