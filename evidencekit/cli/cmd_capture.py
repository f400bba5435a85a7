"""evidencekit capture."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from evidencekit import timestamps
from evidencekit.capture import (
    CaseInfo,
    check_case,
    check_output,
)
from evidencekit.cli import capture_mail, capture_remote, capture_web, incident_options, render
from evidencekit.cli.app import (
    actor_name,
    cli,
    closed_at_start,
    encryption_for,
    flags_over_defaults,
    given_on_command_line,
    json_option,
    progress_option,
    refuse_stdout,
    run,
)
from evidencekit.cli.capture_request import capture_request, chosen, signing_key_for
from evidencekit.cli.capture_web import web_options, web_sources
from evidencekit.cli.cmd_store import BUNDLE_OR_STORE, capture_target, lock_options, say_stored
from evidencekit.cli.cmd_timestamp import (
    checked_urls,
    roots_from,
    say_stamped,
    stamped_json,
    tsa_ca_option,
    tsa_option,
)
from evidencekit.cli.keyring import recipients_from
from evidencekit.cli.live import live_options, live_sources
from evidencekit.cli.live import say_done as say_live_done
from evidencekit.cli.options import (
    FILE_PATH,
    TEXT,
    NamedPath,
    refuse_an_option_as_value,
    refuse_given_without,
)
from evidencekit.cli.secrets import (
    KEY_PASSPHRASE_ENV,
    PASSPHRASE_ENV,
    interactive,
)
from evidencekit.crypto import age
from evidencekit.errors import (
    EvidenceKitError,
    ExitCode,
    UsageError,
)
from evidencekit.hostinfo import user_name
from evidencekit.progress import show_status, throttled
from evidencekit.sources import StdinSource
from evidencekit.sources.base import Source as EvidenceSource
from evidencekit.sources.files.profile_terms import OS_NAMES
from evidencekit.stamping import Stamped, add_timestamps, later_command

if TYPE_CHECKING:
    from evidencekit.cli.cmd_profiles import ProfileSelection
    from evidencekit.cli.guided import GuidedDefaults


def _complete_profile(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """cmd_profiles.complete_profile, imported when a shell asks: the profiles package (12 ms)
    is not needed to build capture's options (issue 27)."""
    from evidencekit.cli.cmd_profiles import complete_profile

    return complete_profile(ctx, param, incomplete)


def _select_profile(profile: str, profile_os: str | None, sources_given: bool, as_json: bool
                    ) -> ProfileSelection:
    from evidencekit.cli.cmd_profiles import select_profile  # only when --profile is given

    return select_profile(profile, profile_os, sources_given, as_json)


# ------------------------------------------------------------------------------ capture
@cli.command("capture", short_help="Capture files and folders into a signed, encrypted bundle.")
@click.argument("sources", nargs=-1, type=NamedPath(readable=False))
@click.option("-o", "--output", type=BUNDLE_OR_STORE,
              help="The bundle to write (default: CASE.evidence in the current folder), or "
              "s3://BUCKET/PREFIX/ to write it straight to a store (see 'store put').")
@click.option("--case", "case_id", type=TEXT, help="Case or reference number (default: EK-date-time).")
@click.option("--examiner", type=TEXT, help="Who is capturing (default: your signing key's name, its "
              "comment; else your user name).")
@click.option("--description", default="",
              help="A short neutral label for the case, printed in the PUBLIC custody log that "
              "anyone with the bundle can read (e.g. 'phishing, reported to the police'). Put "
              "private details in --narrative instead, which is encrypted.")
@click.option("--legal-basis", default="", help="Authorisation or legal basis, if any.")
@click.option("--organisation", default="", help="Organisation capturing the evidence.")
@click.option("-r", "--recipient", "recipients", multiple=True, type=TEXT, metavar="KEY",
              help="Encrypt to this public key (age1… or 'ssh-ed25519 AAAA…'). Repeatable.")
@click.option("-R", "--recipient-file", "recipient_files", multiple=True,
              type=FILE_PATH,
              help="Encrypt to the public keys in this file (e.g. investigator.pub). Repeatable.")
@click.option("-p", "--passphrase", "use_passphrase", is_flag=True,
              help="Encrypt with a passphrase instead (asked twice on the terminal).")
@click.option("--passphrase-file", type=FILE_PATH,
              help=f"Encrypt with the passphrase in this file (or set {PASSPHRASE_ENV}).")
@click.option("--sign-key", type=FILE_PATH,
              help="Your signing key (default: your personal key, created on first use).")
@click.option("--sign-key-passphrase-file", type=FILE_PATH,
              help=f"Passphrase of the signing key (or set {KEY_PASSPHRASE_ENV}).")
@click.option("--profile", type=TEXT, metavar="NAME|FILE", shell_complete=_complete_profile,
              help="Collect what this profile names on this machine (a built-in or your own "
              "profile, or a .yaml file); see 'evidencekit profiles list'.")
@click.option("--stdin", "stdin_name", metavar="NAME",
              help="Also capture what is piped in, as the file NAME (e.g. 'journalctl -o export "
              "| evidencekit capture --stdin journal.export …').")
@click.option("--device", "devices", multiple=True, type=TEXT, metavar="DEVICE|IMAGE",
              help="Image this whole block device (e.g. /dev/sdb: set read-only first) or raw "
              "disk image file, bad sectors and all. Repeatable.")
@click.option("--retries", type=click.IntRange(0, 100), default=2, show_default=True,
              help="With --device: how many more times to try a sector that would not read.")
@click.option("--no-write-block", is_flag=True,
              help="With --device: do not set the device read-only in the kernel (recorded).")
@click.option("--hash", "extra_hashes", default="", metavar="md5,sha1",
              help="With --device: hashes of the image beside SHA-256 (which is the one sealed).")
@click.option("--profile-os", type=click.Choice(OS_NAMES),
              help="Use the profile's rules for this system (default: this machine's), e.g. "
              "for a mounted Windows home with USERPROFILE set.")
@live_options
@web_options
@capture_mail.imap_options
@capture_remote.remote_options
@tsa_option
@tsa_ca_option
@lock_options
@progress_option
@incident_options.incident_options
@json_option
def capture_command(sources: tuple[Path, ...], output: Path | str | None, case_id: str | None,
                    examiner: str | None, description: str, legal_basis: str, organisation: str,
                    recipients: tuple[str, ...], recipient_files: tuple[Path, ...],
                    use_passphrase: bool, passphrase_file: Path | None, sign_key: Path | None,
                    sign_key_passphrase_file: Path | None, as_json: bool, profile: str | None,
                    profile_os: str | None, progress: str, stdin_name: str | None,
                    tsa_urls: tuple[str, ...], tsa_ca: Path | None, devices: tuple[str, ...],
                    retries: int, no_write_block: bool, extra_hashes: str,
                    live: bool, memory_tool: Path | None, memory_timeout: float,
                    retain_until: str | None, retain_days: int | None, legal_hold: bool,
                    no_lock: bool, endpoint: str | None, **incident_args: Any) -> None:
    """Capture files and folders into a signed, encrypted evidence bundle.

    The sources are only read, never changed. Every file is hashed (SHA-256) as it is copied.
    Run it with no sources on a terminal for a guided session.
    """

    def body() -> int:
        refuse_stdout(output, "a bundle", hint="give the bundle's name with -o (a bundle is "
                      "written to a file, then completed at its start), or s3://BUCKET/PREFIX/")
        refuse_an_option_as_value("--stdin", stdin_name, "--stdin journal.export -R key.pub")
        remote = capture_remote.requested()
        if remote is not None:  # made on another host, over SSH (cli/capture_remote.py)
            capture_remote.refuse_local_only(stdin=stdin_name, device=devices, tsa=tsa_urls,
                                             memory_tool=memory_tool, profile_os=profile_os,
                                             url=incident_args.get("urls"),
                                             output_to_a_store=not isinstance(output, Path | None),
                                             incident=capture_remote.incident_given(incident_args),
                                             passphrase=use_passphrase or bool(passphrase_file))
            case = CaseInfo(case_id or _default_case_id(), examiner or "", description,
                            legal_basis, organisation)
            return capture_remote.run_remote(
                remote, sources, cast(Path, output) or Path(_safe_filename(case.case_id)
                                                             + ".evidence"), case,
                encryption_for(recipients, recipient_files, use_passphrase, passphrase_file,
                               passphrase_option=None),
                sign_key, sign_key_passphrase_file, profile, live, as_json, progress)
        if not profile:
            refuse_given_without(("profile_os",), "a profile", "--profile NAME|FILE")
        selection = _select_profile(profile, profile_os, bool(sources), as_json) if profile else None
        paths = [*sources, *selection.paths] if selection else list(sources)
        given: dict[str, Any] = {"examiner": examiner, "description": description,
                                 "legal_basis": legal_basis, "organisation": organisation}
        fields = selection.case_fields(given) if selection else given
        case = CaseInfo(case_id or _default_case_id(), fields["examiner"] or user_name(),
                        fields["description"], fields["legal_basis"], fields["organisation"])
        check_case(case)  # what the bundle could not be read back with: refused before anything
        urls = checked_urls(tsa_urls)
        store = capture_target(output, case.case_id, retain_until, retain_days, legal_hold,
                               no_lock, endpoint, bool(urls))
        local = output if isinstance(output, Path) else None
        tsa_roots = roots_from(tsa_ca)
        web = web_sources(incident_args)  # its options out of the incident's; URLs checked
        record = incident_options.incident_record(incident_args)  # checked before any question
        piped: tuple[EvidenceSource, ...] = () if stdin_name is None else (
            StdinSource(stdin_name, closed_at_start=closed_at_start(0)),)  # refuses a terminal
        hashes = _device_hashes(extra_hashes, devices)
        # throttled here, not only in capture: a device's status (reading past a bad area, long
        # before a byte is stored) then starts the bar, with its label and time
        bar = throttled(render.progress_for(as_json, progress))
        # what is read past a bad area waits beside the bundle, encrypted (not in /tmp, often
        # a file system in memory)
        spool_folder = local.absolute().parent if local else Path.cwd() if output is None \
            else None
        if devices:
            from evidencekit.sources.device import DeviceSource

            piped += tuple(DeviceSource(device, write_block=not no_write_block,
                                        retries=retries, hashes=hashes,
                                        status=partial(show_status, bar),
                                        spool_folder=spool_folder,
                                        bundle_beside=store is None)
                           for device in devices)
        live_state = live_sources(live or bool(selection and selection.profile.live),
                                  memory_tool, memory_timeout)
        piped += live_state
        piped += web
        mail = capture_mail.requested()  # asks for the password now, before any other work
        if (not paths and not piped and not mail and interactive() and not as_json
                and store is None):
            from evidencekit.cli import guided  # the session's prompts: only when it runs

            defaults = guided.GuidedDefaults(
                local, incident=record, incident_source=incident_options.incident_source(
                    incident_args), examiner_given=given_on_command_line("examiner"),
                tsa_urls=tuple(urls), tsa_roots=tsa_roots)
            protection_defaults(defaults, recipients, recipient_files, use_passphrase,
                                 passphrase_file)
            return guided.guided_capture(guided.RichPrompter(), defaults, case,
                                         _safe_filename(case.case_id), sign_key,
                                         sign_key_passphrase_file)
        if not paths and not piped and not mail:
            raise UsageError("nothing to capture: name the files and folders to preserve",
                             hint="evidencekit capture ~/Downloads/invoice.pdf --passphrase "
                             "-o case.evidence (or run 'evidencekit capture' on a terminal "
                             "for a guided session)")
        incident = None if record.empty else record.to_json()
        protection = encryption_for(recipients, recipient_files, use_passphrase, passphrase_file)
        files = chosen([os.fsencode(s) for s in paths],
                       selection.unreachable if selection else (),
                       _found_by_profile(selection, sources))
        target = local or Path(_safe_filename(case.case_id) + ".evidence")
        if store is None:
            check_output(target, files.roots, default_place=output is None)  # before any key
        signing = signing_key_for(files, sign_key, sign_key_passphrase_file, as_json)
        if not fields["examiner"]:  # the key's own name, as every custody event does
            case = dataclasses.replace(case, examiner=actor_name(None, signing, "--examiner"))
        mailbox = capture_mail.connected(mail, signing, as_json) if mail else None
        request = capture_request(files, target, case, protection, signing, sign_key,
                                  progress=bar, incident=incident, more_sources=piped,
                                  filters=selection.filters if selection else None,
                                  profile=selection.record() if selection else None,
                                  stream_to=store)
        result = capture_mail.capture_with(request, [mailbox] if mailbox else [])
        stamped = _timestamp(result.output, urls, tsa_roots, as_json)
        code = ExitCode.OK if result.seal.complete else ExitCode.CAPTURE_INCOMPLETE
        if code == ExitCode.OK and stamped.failed:
            code = ExitCode.TIMESTAMP_MISSING
        if as_json:
            document = render.capture_json(result, code)
            document["case"] = dataclasses.asdict(case)
            document["profile"] = selection.to_json() if selection else None
            document["timestamps"] = stamped_json(stamped)
            document["mail"] = capture_mail.summary(mailbox) if mailbox else None
            document["web"] = capture_web.summary(web)
            document["timestamps"]["later"] = later_command(
                result.output, [u for u, _ in stamped.failed]) if stamped.failed else None
            if store is not None and store.delivery is not None:
                document["store"] = store.delivery.details
            render.emit_json(document)
        else:
            render.capture_text(result, protection, store.delivery.details["endpoint"]
                                if store is not None and store.delivery is not None else "")
            say_live_done(live_state)
            if mailbox is not None:
                capture_mail.say_done(mailbox)
            capture_web.say_done(web)
            if store is not None and store.delivery is not None:
                say_stored(store.delivery)
            say_stamped(result.output, stamped)
        return code

    run("capture", as_json, body)


def _device_hashes(extra_hashes: str, devices: tuple[str, ...]) -> tuple[str, ...]:
    """``--hash``'s names, checked; the device module is imported only when asked for (issue 27:
    a capture of files does not pay for it at start-up). The options of --device given
    without it are refused: a capture asked for an MD5 must not end without one, unsaid."""
    if not devices:
        refuse_given_without(("extra_hashes", "retries", "no_write_block"), "a device image",
                             "--device DEVICE|IMAGE")
        return ()
    from evidencekit.sources.device import parse_hashes

    return parse_hashes(extra_hashes)


def protection_defaults(defaults: GuidedDefaults, recipients: tuple[str, ...],
                         recipient_files: tuple[Path, ...], use_passphrase: bool,
                         passphrase_file: Path | None) -> None:
    """Put the protection the command line (or the settings) chose into *defaults*, so that the
    guided session does not ask for it again. Problems (an unreadable key file, -p with -r) are
    usage errors now, before the first question."""
    from_env = bool(os.environ.get(PASSPHRASE_ENV))
    if use_passphrase and passphrase_file is None and not from_env:
        # -p alone: the session asks for the passphrase itself (with its explanations), after
        # the same check encryption_for makes before it would prompt.
        if recipients_from(*flags_over_defaults(recipients, recipient_files)):
            raise UsageError("choose either public keys (--recipient) or a passphrase, not both",
                             hint="the age format allows a passphrase only on its own")
        defaults.ask_passphrase = True
        return
    if not (recipients or recipient_files or use_passphrase or passphrase_file or from_env):
        return  # nothing chosen: the session asks
    defaults.recipients = encryption_for(recipients, recipient_files, use_passphrase,
                                         passphrase_file)
    if isinstance(defaults.recipients[0], age.ScryptRecipient):
        defaults.protection = (f"the passphrase in the file {passphrase_file}" if passphrase_file
                               else f"the passphrase in {PASSPHRASE_ENV}")
    else:
        shown = str(defaults.recipients[0])
        more = len(defaults.recipients) - 1
        defaults.protection = f"the key {shown[:24]}…" + (f" and {more} more" if more else "")


def _timestamp(bundle: Path, urls: list[str], roots: list[timestamps.Certificate] | None,
               as_json: bool) -> Stamped:
    """Timestamps for a bundle just written: whatever goes wrong here, the capture stands (a
    TSA that cannot be reached, or even a failure to add its answer, is only reported)."""
    if not urls:
        return Stamped()
    if not as_json:
        render.err.print(f"Asking {len(urls)} time stamping authorit"
                         f"{'y' if len(urls) == 1 else 'ies'} to countersign the seal…")
    try:
        return add_timestamps(bundle, urls, roots)
    except EvidenceKitError as exc:
        return Stamped(failed=[(url, str(exc)) for url in urls])


def _default_case_id() -> str:
    return "EK-" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")


def _safe_filename(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "evidence"


def _found_by_profile(selection: ProfileSelection | None, typed: tuple[Path, ...]
                      ) -> dict[bytes, bytes]:
    """The profile's sources that the user did not also name (those are followed if links),
    each with the leading folders its pattern names (where links are followed)."""
    if selection is None:
        return {}
    named = {os.fsencode(os.fspath(path)) for path in typed}
    found = {os.fsencode(path): os.fsencode(selection.resolution.followed(path))
             for path in selection.resolution.sources}
    return {path: followed for path, followed in found.items() if path not in named}
