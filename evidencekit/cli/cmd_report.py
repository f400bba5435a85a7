"""evidencekit report (HTML/PDF for police, banks, insurers) and evidencekit note (add to the
incident record later, as a signed, public custody event; or, with --private, encrypted inside
a new bundle as an addendum, docs/FORMAT.md §4.6)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click
from click.core import ParameterSource
from rich.markup import escape

from evidencekit import addenda, fs
from evidencekit import incident as inc
from evidencekit.cli import app, render
from evidencekit.cli.cmd_custody import resealed
from evidencekit.cli.cmd_open import identities_for
from evidencekit.cli.cmd_timestamp import roots_from, tsa_ca_option
from evidencekit.cli.keyring import trusted_from
from evidencekit.cli.secrets import PASSPHRASE_ENV, interactive, obtain
from evidencekit.clock import rfc3339, system_clock
from evidencekit.crypto import age
from evidencekit.custody.events import EventRequest, append_event, checked_for_note, event_summary
from evidencekit.errors import ExitCode, UsageError
from evidencekit.export import refuse_unless_verified
from evidencekit.incident import NoteContent
from evidencekit.payload import PayloadReaders
from evidencekit.protection import needs_passphrase, payload_protection
from evidencekit.report import collect, report_format, write_report
from evidencekit.report.model import ReportData
from evidencekit.report.previews import FEW_EMAILS, MAX_EMAILS, PreviewCollector
from evidencekit.text import plural
from evidencekit.verify import verify


# -------------------------------------------------------------------------------- report
@app.cli.command("report", short_help="A printable report for police, banks and insurers.")
@app.bundle_argument
@app.identity_option
@app.trusted_option
@app.output_option("The report to write: report.html or report.pdf (never overwritten).")
@click.option("--format", "fmt", type=click.Choice(["html", "pdf"]),
              help="html or pdf (default: from the output's name).")
@click.option("--force", is_flag=True,
              help="Make the report even if the bundle fails verification; it then says "
              "VERIFICATION FAILED in large red letters, on every page.")
@click.option("--full-headers", "marks", multiple=True, metavar="NAME",
              help="Show the whole header block (Received, DKIM, …) of the e-mails with this "
              "file name, as the report lists it; * stands for any characters "
              "('*.INBOX.42.eml'); repeatable. Without it, every e-mail's headers are shown "
              f"when there are at most {FEW_EMAILS}.")
@click.option("--all-emails", is_flag=True,
              help=f"List every e-mail (sender, date, subject), not only the first {MAX_EMAILS}.")
@tsa_ca_option
@app.json_option
def report_command(bundle: Path, identities: tuple[Path, ...], passphrase_file: Path | None,
                   ask_passphrase: bool, trusted: tuple[str, ...], output: Path,
                   fmt: str | None, force: bool, marks: tuple[str, ...], all_emails: bool,
                   tsa_ca: Path | None, as_json: bool) -> None:
    """A printable report for police, banks and insurers (decrypts and verifies first).

    It lists what happened (the incident record and notes added later), the losses, small
    copies of the pictures and the senders and subjects of the e-mails (and the full headers
    of those asked for), every evidence item with its SHA-256, the chain of custody, who
    signed, and how to verify the bundle. By default no report is made from a bundle that
    fails verification.
    """

    def body() -> int:
        app.refuse_stdout(output, "this command's report", hint="'evidencekit export --format html "
                      "-o -' writes the report to standard output; or name the file with -o")
        kind = report_format(output, fmt)
        fs.require_new(output)  # before any passphrase is asked
        tsa_roots = roots_from(tsa_ca)
        keys = identities_for(bundle, identities, passphrase_file, ask_passphrase, required=True)
        # pictures and e-mails, from the decrypted payload itself
        seen = PreviewCollector(marks, email_limit=None if all_emails else MAX_EMAILS)
        checked = verify(bundle, keys, trusted_from(trusted),
                         progress=render.progress_for(as_json), readers=PayloadReaders(files=seen),
                         tsa_roots=tsa_roots)
        refuse_unless_verified(checked, bundle, keys, outcome="no report was made", force=force,
                               forcing="--force makes a report anyway, marked VERIFICATION "
                               "FAILED on every page")
        data = collect(checked, bundle.name, rfc3339(system_clock()), seen)
        write_report(data, output, kind)
        # Verified: 0, or 6 when --trusted-key was given and not every signer is listed.
        code = render.exit_code_for(checked) if data.verified else (
            render.exit_code_for(checked) or ExitCode.EVIDENCE_PROBLEM)
        if as_json:
            render.emit_json({"command": "report", "ok": code == ExitCode.OK,
                              "exit_code": code, "bundle": str(bundle), "output": str(output),
                              "format": kind, "verified": data.verified,
                              "files": data.seal.counts["files"],
                              "not_counted": data.not_counted,
                              "totals": data.totals, **render.trust_json(checked),
                              "emails": _emails_json(data),
                              "findings": [f.to_json() for f in checked.findings.items]})
        elif data.verified:
            render.out.print(f"[bold green]VERIFIED[/] and wrote the report {escape(str(output))}"
                             f" ({plural(data.seal.counts['files'], 'file')}, "
                             f"{plural(len(data.custody), 'custody event')}).")
            if data.not_counted:
                render.err.print(f"[yellow]evidencekit: warning:[/] {escape(data.notices[0])}")
            for mark in data.previews.marks_unmatched:
                render.err.print(f"[yellow]evidencekit: warning:[/] --full-headers {mark!r} "
                                 "names no e-mail in the evidence")
        else:
            render.err.print(f"[bold red]VERIFICATION FAILED[/]: wrote {escape(str(output))} "
                             "anyway (--force); it is marked as failed on every page.")
        return code

    app.run("report", as_json, body)


def _emails_json(data: ReportData) -> dict[str, object]:
    found = data.previews
    return {"listed": len(found.emails), "not_listed": found.emails_left_out,
            "full_headers": [h.bag_path for h in found.headers],
            "full_headers_not_shown": found.headers_left_out,
            "unmatched": list(found.marks_unmatched)}


# ---------------------------------------------------------------------------------- note
PUBLIC_WARNING = (
    "[bold yellow]This note will be public.[/] Notes are kept outside the encryption: anyone "
    "who has the bundle file can read it, without any key or passphrase. It is signed by you "
    "and cannot be taken back later (removing it would break the custody log).")
PRIVATE_ALTERNATIVE = (
    "To keep it private instead, answer no and add it inside the encryption. This writes a new "
    "bundle holding the note, signed by you (it needs the bundle's {needs}); the existing "
    "bundle stays as it is:")
PRIVATE_OPTIONS = ("identities", "passphrase_file", "ask_passphrase", "recipients",
                   "recipient_files", "new_passphrase_file", "output")
# The note's own fields, by their click names (as NoteRequest names them, but --time: "when").
NOTE_FIELD_OPTIONS = {name: name for name in inc.NOTE_OPTIONS if name != "time"}


@dataclass(frozen=True)
class _PrivateTarget:
    """note --private: the bundle's key, who can open the new bundle, and its name."""

    identities: tuple[Path, ...]
    passphrase_file: Path | None
    ask_passphrase: bool
    recipients: tuple[str, ...]
    recipient_files: tuple[Path, ...]
    new_passphrase_file: Path | None
    output: Path | None


@app.cli.command("note", short_help="Add to the incident record later (a signed note).")
@app.bundle_argument
@click.option("--text", default="", help="The note: what happened, or what this entry is.")
@click.option("--kind", type=click.Choice(inc.NOTE_KINDS), default="note", show_default=True,
              help="timeline: a dated event (--time); identifier: a suspicious contact or "
              "reference (--id-kind, --value); loss: money lost (--amount, --currency, ...).")
@click.option("--time", "when", metavar="TIME",
              help="timeline: when it happened, 'YYYY-MM-DD HH:MM' (+01:00 or a zone name if "
              "not local time).")
@click.option("--time-zone", metavar="ZONE", help="Time zone of --time when it has none.")
@click.option("--id-kind", "identifier_kind", type=click.Choice(list(inc.IDENTIFIER_KINDS)),
              help="identifier: what kind it is.")
@click.option("--value", help="identifier: the phone number, address, account, … as seen.")
@click.option("--amount", help="loss: the amount, e.g. 499.90 or 1.250,00 (an amount that "
              "reads two ways, such as 1.250, is refused: write 1250 or 1.25).")
@click.option("--currency", help="loss: ISO 4217 code, e.g. EUR.")
@click.option("--date", help="loss: YYYY-MM-DD or DD.MM.YYYY.")
@click.option("--institution", default="", help="loss: the bank or service.")
@click.option("--reference", default="", help="loss: the transaction reference.")
@click.option("--yes", "confirmed", is_flag=True,
              help="Write without asking, accepting that the note is public (needed without "
              "a terminal).")
@click.option("--private", is_flag=True,
              help="Keep the note encrypted instead: write a new bundle (-o) whose payload holds "
              "it, signed by you, as 'reseal' does (needs the bundle's key, -i, or passphrase, "
              "-p; the new bundle is for -r/-R, or a new passphrase).")
@app.identity_option
@app.new_recipient_options
@app.output_option("--private: the new bundle to write (never overwritten).", required=False)
@app.signer_options
@app.progress_option
@app.json_option
@app.gathered("asked", inc.NoteRequest, {"kind": "kind", "text": "text", "when": "time",
                                     "time_zone": "time_zone", **NOTE_FIELD_OPTIONS})
@app.gathered("target", _PrivateTarget, {name: name for name in PRIVATE_OPTIONS})
def note_command(bundle: Path, asked: inc.NoteRequest, confirmed: bool, private: bool,
                 target: _PrivateTarget, signer: app.Signer, progress: str, as_json: bool) -> None:
    """Add to the incident record later, as a signed custody note (no key needed).

    The note is public metadata: it is NOT encrypted. You are asked to confirm on a terminal;
    scripts must pass --yes. With --private the note is kept encrypted instead, in a new bundle
    (-o) that holds it inside its payload (docs/FORMAT.md §4.6).
    """

    def body() -> int:
        asked.check_options()
        if not private:
            _refuse_private_options()
        content = asked.content(inc.local_zone()[0])
        if private:
            app.refuse_stdout(target.output, "a bundle")
            return _private_note(bundle, content, target, signer, progress, as_json)
        checked = checked_for_note(bundle)
        if not confirmed and not _confirm_public(content.text, content.details, as_json, bundle):
            render.err.print("Nothing was written.")
            return ExitCode.OK
        key, actor = signer.resolve(as_json)
        event = append_event(bundle, EventRequest("note", actor, key, content.text,
                                                  details=content.details), checked,
                             waiting=render.waiting_for_writer(bundle),
                             linked=render.other_names_left(bundle))
        if as_json:
            render.emit_json({"command": "note", "ok": True, "exit_code": 0, "private": False,
                              "bundle": str(bundle), "event": event_summary(event)})
        else:
            render.out.print(f"Added note #{event.sequence} ({content.details['kind']}) to "
                             f"{escape(str(bundle))}, signed by {event.actor.fingerprint}. "
                             "It is public: anyone with the bundle can read it.")
        return ExitCode.OK

    app.run("note", as_json, body)


def _refuse_private_options() -> None:
    """-o, -i, -r … typed without --private: the person meant an encrypted note, not this."""
    ctx = click.get_current_context()
    typed = [param for param in ctx.command.params if param.name in PRIVATE_OPTIONS and
             ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE]
    if typed:
        raise UsageError(f"{', '.join(p.opts[-1] for p in typed)}: only with --private (an "
                         "encrypted note, written into a new bundle)",
                         hint="add --private to keep the note encrypted, or leave them out for "
                         "a public note")


def _private_note(bundle: Path, content: NoteContent, target: _PrivateTarget, signer: app.Signer,
                  progress: str, as_json: bool) -> int:
    """note --private: a reseal whose new payload holds the note as a signed addendum."""
    if target.output is None:
        raise UsageError("--private writes a new bundle: give its name with -o",
                         hint=f"e.g. -o {_private_name(bundle)}")
    keys = identities_for(bundle, target.identities, target.passphrase_file,
                          target.ask_passphrase, required=True)

    def new_recipients(opened_with: Sequence[age.Identity]) -> list[age.Recipient]:
        return _new_protection(opened_with, target.recipients, target.recipient_files,
                               target.new_passphrase_file)

    result = resealed(bundle, target.output, keys, new_recipients, signer, addenda.RESEAL_NOTE,
                      render.progress_for(as_json, progress), as_json, addendum=content)
    added = result.addendum
    assert added is not None
    digest = result.event.details[addenda.DETAIL]
    if as_json:
        render.emit_json({"command": "note", "ok": True, "exit_code": 0, "private": True,
                          "bundle": str(bundle), "output": str(result.output),
                          "files_checked": result.report.files_checked,
                          "event": event_summary(result.event),
                          "addendum": {"sequence": added.sequence, "time": added.time,
                                       "author": added.author_name,
                                       "fingerprint": added.author.fingerprint,
                                       "details": added.details, "text": added.text,
                                       "sha256": digest}})
    else:
        render.out.print(f"Wrote {escape(str(result.output))} with the note "
                         f"({content.details['kind']}) inside its encryption, as "
                         f"{addenda.addendum_member(added.sequence)}, signed by "
                         f"{added.author.fingerprint}; all {result.report.files_checked} files "
                         "verified and re-encrypted.")
        render.out.print(f"Its public custody log only says that event #{added.sequence} "
                         "resealed it with an encrypted addition. The original bundle "
                         f"{escape(str(bundle))} is unchanged: hand over the new one.")
    return ExitCode.OK


def _new_protection(keys: Sequence[age.Identity], recipients: tuple[str, ...],
                    recipient_files: tuple[Path, ...], new_passphrase_file: Path | None
                    ) -> list[age.Recipient]:
    """Who can open the new bundle: -r/-R/--new-passphrase-file as for reseal; without them, a
    bundle opened with a passphrase gets a passphrase again (asked twice on a terminal, or
    EVIDENCEKIT_PASSPHRASE)."""
    ctx = click.get_current_context()
    given = any(ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
                for name in ("recipients", "recipient_files", "new_passphrase_file"))
    if given or not any(isinstance(k, age.ScryptIdentity) for k in keys):
        return app.encryption_for(recipients, recipient_files, False, new_passphrase_file,
                                  passphrase_option=app.NEW_PASSPHRASE)
    secret = obtain("the new bundle (it may be the same as before)", None, PASSPHRASE_ENV,
                    "--new-passphrase-file", confirm=True)
    return [age.ScryptRecipient(secret)]


def _private_name(bundle: Path) -> str:
    return bundle.with_name(f"{bundle.stem}-private{bundle.suffix or '.evidence'}").name


def private_command(bundle: Path, text: str, details: dict[str, str]) -> str:
    """The command that adds the same note encrypted (note --private), ready to copy."""
    needs = "-p" if needs_passphrase(payload_protection(bundle)) else "-i KEY -r RECIPIENT"
    words = ["evidencekit", "note", str(bundle), "--private", *needs.split(), "-o",
             str(bundle.with_name(_private_name(bundle)))]
    kind = details.get("kind", "note")
    if kind != "note":
        words += ["--kind", kind]
    for key, flag in inc.NOTE_OPTIONS.items():
        if details.get(key):
            words += [flag, details[key]]
    if text:
        words += ["--text", text]
    return " ".join(word if word in ("KEY", "RECIPIENT") else shlex.quote(word)
                    for word in words)


def _confirm_public(text: str, details: dict[str, str], as_json: bool, bundle: Path) -> bool:
    if as_json or not interactive():
        raise UsageError("a note is public (it is not encrypted), so it is only written when "
                         "you confirm",
                         hint="add --yes to confirm that this note may be read by anyone who "
                         "has the bundle, or use --private to keep it encrypted (in a new "
                         "bundle: --private -i KEY or -p, -o NEW.evidence)")
    render.err.print(PUBLIC_WARNING)
    render.err.print("  The note: " + escape(text or "(no text)"))
    for key, value in details.items():
        if key != "kind" and value:  # (fields left out are empty: "institution: " said nothing)
            render.err.print(f"    {escape(key)}: {escape(value)}")
    needs = "passphrase" if needs_passphrase(payload_protection(bundle)) else \
        "key, and the new holder's public key"
    render.err.print(f"[dim]{PRIVATE_ALTERNATIVE.format(needs=needs)}[/]")
    render.err.print("  " + render.escape(private_command(bundle, text, details)))
    return click.confirm("Write this public note?", default=False, err=True)
