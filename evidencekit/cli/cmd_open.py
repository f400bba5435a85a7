"""evidencekit inspect, verify, extract: reading bundles."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from evidencekit.cli import render
from evidencekit.cli.app import (
    F,
    Signer,
    actor_option,
    bundle_argument,
    cli,
    gather_signer,
    identity_option,
    json_option,
    output_option,
    progress_option,
    refuse_stdout,
    run,
    signing_options,
    trusted_option,
)
from evidencekit.cli.cmd_store import (
    BUNDLE_OR_STORE,
    endpoint_option,
    judge_stored_name,
    open_stored,
)
from evidencekit.cli.cmd_timestamp import roots_from, tsa_ca_option
from evidencekit.cli.keyring import identities_from, trusted_from
from evidencekit.cli.options import FILE_PATH, TEXT
from evidencekit.cli.secrets import KEY_PASSPHRASE_ENV, PASSPHRASE_ENV, interactive, obtain
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.custody.append import check_appendable
from evidencekit.custody.events import EventRequest, append_event
from evidencekit.custody.receipt import ReceiptCheck, check_receipt, parse_receipt
from evidencekit.errors import (
    EvidenceKitError,
    ExitCode,
    InputError,
    NoMatchingKey,
    UsageError,
)
from evidencekit.extract import extract
from evidencekit.findings import Findings
from evidencekit.fs.staging import StaleStaging
from evidencekit.inspect import inspect_bundle
from evidencekit.payload import PayloadReaders
from evidencekit.protection import (
    Keys,
    keys_given,
    needs_passphrase,
    passphrase_opens,
    recipients_in,
    wrong_key,
)
from evidencekit.text import plural
from evidencekit.verify import Report, verify

if TYPE_CHECKING:
    from evidencekit.against import Comparison


# ------------------------------------------------------------------------------ inspect
@cli.command("inspect", short_help="Show what a bundle says about itself (no key needed).")
@bundle_argument
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
                              "recipient_details": [r.to_json() for r in info.recipients],
                              "members": [{"name": m.name, "size": m.size}
                                          for m in info.members]})
            return ExitCode.OK
        seal = info.seal
        # Everything below comes from the bundle (or names it) and nothing here is verified: a
        # case id, a fingerprint or a stanza type may hold terminal escapes or rich markup.
        esc = render.escape
        render.out.print(f"Bundle      {esc(str(bundle))} (format version {seal.format_version})")
        render.out.print(f"Case        {esc(seal.case_id)}")
        render.out.print(f"Sealed      {esc(seal.created)} "
                         f"(capture started {esc(seal.capture_started)})")
        render.out.print(f"Sealed by   {esc(seal.signer.fingerprint)}")
        render.out.print(f"Contents    {seal.counts['files']} files, {seal.total_bytes} bytes, "
                         f"{seal.counts['directories']} folders"
                         + ("" if seal.complete else " (capture incomplete)"))
        live = info.events[0].details.get("live") if info.events else None
        if live is not None:  # counts only, as the sealer's first custody event states them
            render.out.print(f"Live state  {esc(live)}")
        render.out.print(f"Root hash   {seal.manifest_root}")
        render.out.print(f"Payload     {seal.payload_size} bytes, SHA-256 {seal.payload_sha256}")
        render.out.print(f"Opens with  {esc(', '.join(info.recipient_types))}")
        for number, recipient in enumerate(info.recipients, start=1):
            render.out.print(f"  {number}. {esc(recipient.describe())}")
        render.custody_table(info.events)
        render.out.print("Not verified: run 'evidencekit verify' to check seal and signatures.")
        return ExitCode.OK

    run("inspect", as_json, body)


# ------------------------------------------------------------------------------- verify
def identities_for(bundle: Path, paths: tuple[Path, ...], passphrase_file: Path | None,
                   ask: bool, required: bool = False) -> Keys:
    """Keys from -i files, plus a passphrase when one was given or should be asked for.

    With *required*, a passphrase-protected bundle opened without -i asks for its passphrase
    (or fails with exit code 2 naming --passphrase-file when there is no terminal). Whether it
    is, and whether a typed passphrase opens it, the payload's header says: such keys are a
    :class:`BundleKeys`, asked by verify (or reseal) once it has opened the bundle.
    """
    identities = identities_from(paths, lambda p: obtain(f"the key {p}", None, KEY_PASSPHRASE_ENV,
                                                         "--passphrase-file", confirm=False))
    if passphrase_file is not None or os.environ.get(PASSPHRASE_ENV):
        identities.append(_asked_passphrase(passphrase_file))  # never asked again: as given
        return identities
    if ask and not interactive():
        _asked_passphrase(None)  # PassphraseRequired, naming --passphrase-file
    if ask or (required and not paths):
        return BundleKeys(identities, ask, required)
    return identities


def _asked_passphrase(passphrase_file: Path | None) -> age.ScryptIdentity:
    """The bundle's passphrase from the file, the variable or the terminal."""
    return age.ScryptIdentity(obtain("the bundle", passphrase_file, PASSPHRASE_ENV,
                                     "--passphrase-file", confirm=False))


PASSPHRASE_TRIES = 3


class BundleKeys:
    """The keys of -i (*files*), and a passphrase asked for once the payload's header is known
    (a protection.KeySource): with -p (*ask*), or, when *required* and no -i was given, when the
    header shows that a passphrase protects the payload; else, *required* with no key at all is
    a usage error (exit code 2). Verify asks before its progress bar starts."""

    def __init__(self, files: list[age.Identity], ask: bool, required: bool) -> None:
        self._files = files
        self._ask = ask
        self._required = required
        self._given: list[age.Identity] | None = None

    @property
    def given(self) -> list[age.Identity]:
        return self._files if self._given is None else self._given

    def keys_for(self, header: age.Header | None) -> list[age.Identity]:
        if self._given is None:
            self._given = self._keys(header)
        return self._given

    def _keys(self, header: age.Header | None) -> list[age.Identity]:
        protected = header is not None and needs_passphrase({s.type for s in header.stanzas})
        if self._ask and header is not None and not protected:
            return self._not_a_passphrase(header)
        if self._ask or (self._required and not self._files and protected):
            return [*self._files, _typed_passphrase(header)]
        if self._required and not self._files:
            raise UsageError("a key is needed to open the bundle",
                             hint="give -i KEYFILE (age identity or OpenSSH private key), "
                             "or --passphrase-file FILE for a passphrase-protected bundle")
        return self._files

    def _not_a_passphrase(self, header: age.Header) -> list[age.Identity]:
        """-p for a bundle made for keys: no passphrase can open it, so none is asked; the keys
        of -i, if any, are tried, else NoMatchingKey says which key opens it."""
        if self._files:
            return self._files
        advice = wrong_key({s.type for s in header.stanzas}, gave_passphrase=True,
                           gave_keys=False, recipients=recipients_in(header.stanzas))
        raise NoMatchingKey(advice.message, hint=advice.hint)


def _typed_passphrase(header: age.Header | None) -> age.ScryptIdentity:
    """The bundle's passphrase, typed on the terminal (without one: PassphraseRequired, naming
    --passphrase-file). It is checked against the payload's *header* at once and asked again
    when it does not open it (a few tries), as a login would: a typing mistake must not end the
    command."""
    typed = interactive()
    identity, tries = _asked_passphrase(None), 1
    while typed and tries < PASSPHRASE_TRIES and passphrase_opens(header, identity) is False:
        left = PASSPHRASE_TRIES - tries
        render.err.print("[yellow]That passphrase does not open this bundle.[/] Check Caps Lock "
                         "and the keyboard layout, and try again "
                         f"({left} {'try' if left == 1 else 'tries'} left).")
        identity, tries = _asked_passphrase(None), tries + 1
    return identity  # the last one, right or not: verification then says what opens the bundle


def record_option(f: F) -> F:
    f = signing_options(actor_option(gather_signer(f)))
    return click.option("--record", is_flag=True,
                        help="Add a signed custody event saying you did this (needs your "
                        "signing key).")(f)


def _record(bundle: Path, report: Report, action: str, signer: Signer, key: SigningKey,
            details: dict[str, str]) -> str | None:
    """Append a 'verified'/'accessed' event; return its summary line, or why it was not added."""
    if not report.ok:
        return "not recorded in the custody log: verification failed"
    event = append_event(bundle, EventRequest(action, signer.name(key), key,
                                              details=details), report,
                         waiting=render.waiting_for_writer(bundle),
                         linked=render.other_names_left(bundle))
    return f"recorded as custody event #{event.sequence} ({action})"


@cli.command("verify", short_help="Check a bundle: seal, signatures, custody log, files.")
@click.argument("bundle", type=BUNDLE_OR_STORE)
@identity_option
@trusted_option
@click.option("--receipt", "receipt_file", type=FILE_PATH,
              help="Also check the bundle against a receipt made by 'evidencekit receipt'.")
@tsa_ca_option
@click.option("--against", type=TEXT, metavar="DEVICE|IMAGE",
              help="Read this device (or an image of it) again and say which parts of the "
              "device image in the bundle it no longer matches (needs -i).")
@record_option
@endpoint_option
@progress_option
@json_option
def verify_command(bundle: Path | str, identities: tuple[Path, ...],
                   passphrase_file: Path | None, ask_passphrase: bool, trusted: tuple[str, ...],
                   receipt_file: Path | None, record: bool, signer: Signer, progress: str,
                   as_json: bool, tsa_ca: Path | None, endpoint: str | None,
                   against: str | None) -> None:
    """Check a bundle: seal, signatures, custody and payload hash; with a key, every file too.
    BUNDLE may be s3://BUCKET/KEY: it is read in place, never copied to disk."""
    if isinstance(bundle, str):
        if against:
            run("verify", as_json, _against_needs_a_local_bundle)
            return
        _verify_stored(bundle, identities, passphrase_file, ask_passphrase, trusted, record,
                       receipt_file, endpoint, progress, as_json, tsa_ca)

    def body() -> int:
        assert isinstance(bundle, Path)
        # --against compares with hash windows inside the payload: without a key there is
        # nothing to compare, which is a usage error (2), not a device that differs (1)
        keys = identities_for(bundle, identities, passphrase_file, ask_passphrase,
                              required=bool(against))
        receipt = _read_receipt(receipt_file) if receipt_file else None
        tsa_roots = roots_from(tsa_ca)
        # Asked for (and checked) before the work, not once it is done.
        key = signer.key(as_json) if record else None
        windows = None
        if against:
            # here: comparing with a device reads sectors (sources.sectors and the sources
            # package: 25 ms of start-up that every other verify would pay)
            from evidencekit.against import WindowsCollector, check_target

            check_target(against)
            windows = WindowsCollector()
        report = verify(bundle, keys, trusted_from(trusted),
                        progress=render.progress_for(as_json, progress), tsa_roots=tsa_roots,
                        readers=PayloadReaders(files=windows))
        against_findings = Findings()
        compared = None
        if against is not None and windows is not None:
            from evidencekit.against import compare

            compared = compare(report, windows, against, against_findings,
                               render.progress_for(as_json, progress))
        checked = None if receipt is None else check_receipt(report, receipt, report.findings)
        recorded = None
        if record:
            details = {"result": "ok", "decrypted": str(report.decrypted).lower(),
                       "files_checked": str(report.files_checked)}
            assert key is not None
            recorded = _record(bundle, report, "verified", signer, key, details)
        code = render.exit_code_for(report)
        if against_findings.errors and code == ExitCode.OK:
            code = ExitCode.EVIDENCE_PROBLEM  # the bundle is sound; the device is not the same
        _say_verified(report, code, keys_given(keys),
                      None if checked is None else (receipt_file, checked), as_json, recorded,
                      None if against is None else (compared, against_findings))
        return code

    run("verify", as_json, body)


def _verify_stored(location: str, identities: tuple[Path, ...], passphrase_file: Path | None,
                   ask_passphrase: bool, trusted: tuple[str, ...], record: bool,
                   receipt_file: Path | None, endpoint: str | None, progress: str,
                   as_json: bool, tsa_ca: Path | None) -> None:
    """verify s3://BUCKET/KEY: the object is read by ranges as verification goes, once."""

    def body() -> int:
        if record:
            raise UsageError("--record adds to the bundle itself, and a stored bundle cannot "
                             "change", hint="'evidencekit store get' it first, then verify "
                             "the copy with --record")
        keys = identities_for(Path(location), identities, passphrase_file, ask_passphrase)
        receipt = _read_receipt(receipt_file) if receipt_file else None
        opened = open_stored(location, endpoint)
        try:
            report = verify(opened.path, keys, trusted_from(trusted),
                            progress=render.progress_for(as_json, progress), opened=opened,
                            tsa_roots=roots_from(tsa_ca))
        finally:
            opened.close()
        judge_stored_name(location, report)
        report.bundle = location
        checked = None if receipt is None else check_receipt(report, receipt, report.findings)
        code = render.exit_code_for(report)
        _say_verified(report, code, keys_given(keys),
                      None if checked is None else (receipt_file, checked), as_json)
        return code

    run("verify", as_json, body)


def _say_verified(report: Report, code: int, keys: Sequence[age.Identity],
                  receipt: tuple[Path | None, ReceiptCheck] | None, as_json: bool,
                  recorded: str | None = None,
                  against: tuple[Comparison | None, Findings] | None = None) -> None:
    """What verify found, as text or one JSON document: with the *receipt* file checked and
    what it found, the ``verified`` event *recorded* (--record), what *against* found (the
    comparison and its findings, --against)."""
    if as_json:
        if against is not None:
            report.findings.items += against[1].items
        document = render.report_json(report, code)
        document["recorded"] = recorded
        document["against"] = None if against is None or against[0] is None else \
            against[0].to_json()
        document["receipt"] = None if receipt is None else {
            "file": str(receipt[0]), **receipt[1].to_json()}
        render.emit_json(document)
        return
    render.report_text(report, keys, None if receipt is None else (str(receipt[0]), receipt[1]))
    if against is not None:
        render.against_text(*against)
    if recorded:
        render.err.print(recorded)


def _against_needs_a_local_bundle() -> int:
    raise UsageError("--against needs a bundle on this machine, not one in a store",
                     hint="fetch it first: evidencekit store get … -o FILE")


def _read_receipt(path: Path) -> dict[str, str]:
    try:
        return parse_receipt(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the receipt {path}: {exc}") from None


# ------------------------------------------------------------------------------ extract
@cli.command("extract", short_help="Verify a bundle and open it into a new folder.")
@bundle_argument
@identity_option
@trusted_option
@output_option("A new folder to extract into (must not exist).", folder=True)
@click.option("--keep-untrusted", is_flag=True,
              help="If verification fails, keep what was decrypted as OUTPUT.UNTRUSTED.")
@click.option("--as-stored", is_flag=True,
              help="Keep the bag exactly as stored (escaped names, no symbolic links): always a "
              "valid BagIt bag. By default original names and in-tree links are restored.")
@record_option
@progress_option
@json_option
def extract_command(bundle: Path, identities: tuple[Path, ...], passphrase_file: Path | None,
                    ask_passphrase: bool, trusted: tuple[str, ...], output: Path,
                    keep_untrusted: bool, as_stored: bool, record: bool, signer: Signer,
                    progress: str, as_json: bool) -> None:
    """Verify and open a bundle into a new folder; nothing is kept unless every check passes."""

    def body() -> int:
        refuse_stdout(output, "a folder", hint="give the new folder's name with -o")
        keys = identities_for(bundle, identities, passphrase_file, ask_passphrase, required=True)
        # Asked for (and checked) before extracting: a key that cannot be used must not leave
        # a finished folder behind an error.
        key = signer.key(as_json) if record else None
        if record:
            check_appendable(bundle)
        result = extract(bundle, output, keys, trusted_from(trusted), keep_untrusted,
                         render.progress_for(as_json, progress), as_stored)
        code = render.exit_code_for(result.report)
        if code == ExitCode.OK and result.output is None:
            code = ExitCode.EVIDENCE_PROBLEM
        recorded = None
        if key is not None and result.output is not None:
            try:
                recorded = _record(bundle, result.report, "accessed", signer, key,
                                   {"operation": "extract", "files": str(result.files)})
            except EvidenceKitError as exc:  # never silent about the folder that is there
                exc.message = (f"{result.output} was extracted (complete and verified), but no "
                               f"custody event was added: {exc.message}")
                exc.args = (exc.message,)
                raise
        if as_json:
            document = render.report_json(result.report, code, command="extract")
            document.update({"output": str(result.output) if result.output else None,
                             "untrusted": str(result.untrusted) if result.untrusted else None,
                             "files": result.files, "symlinks": result.symlinks,
                             "skipped_links": result.skipped_links,
                             "renamed_to_original": result.renamed, "recorded": recorded,
                             "stale_staging_removed": [str(p) for p in result.stale.removed],
                             "stale_staging_left": [str(p) for p in result.stale.unknown]
                             + [str(p) for p, _ in result.stale.kept]})
            render.emit_json(document)
            return code
        _say_stale(result.stale)
        render.report_text(result.report, keys_given(keys))
        if result.output is not None:
            render.out.print(f"Extracted {plural(result.files, 'file')} into "
                             f"{render.escape(str(result.output))}")
            for link in result.skipped_links:  # name and target as the bundle's manifest says
                render.err.print("  link not created (points outside the folder): "
                                 f"{render.escape(link)}")
            if recorded:
                render.err.print(recorded)
        elif result.untrusted is not None:
            render.err.print(f"[red]Nothing trusted was extracted.[/] What was decrypted is in "
                             f"{render.escape(str(result.untrusted))}: do NOT rely on it.")
        else:
            render.err.print("[red]Nothing was extracted[/] because verification failed.")
        return code

    run("extract", as_json, body)


def _say_stale(stale: StaleStaging) -> None:
    """What an extract to the same folder, killed outright (kill -9, a power cut), left: the
    staging folders removed, and those without a lock to tell whether their run still works."""
    for path in stale.removed:
        render.err.print(f"Removed {render.escape(str(path))}: left by an extract to the same "
                         "folder that was stopped before it could clean up (decrypted files, "
                         "not all verified).")
    for path in stale.unknown:
        render.err.print(f"[yellow]evidencekit: warning:[/] {render.escape(str(path))} was left "
                         "by an extract to the same folder that was stopped (kill -9, a power "
                         "cut) or by one still running from an older evidencekit: it holds "
                         "decrypted files, not all verified. Once no other extract runs, "
                         f"delete it: rm -rf {render.escape(shlex.quote(str(path)))}")
    for path, why in stale.kept:
        render.err.print(f"[yellow]evidencekit: warning:[/] {render.escape(str(path))} was left "
                         "by an extract to the same folder that was stopped before it could "
                         "clean up (decrypted files, not all verified), and was not removed: "
                         f"{render.escape(why)}.")
