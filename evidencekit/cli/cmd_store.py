"""evidencekit store put|list|get: bundles in an evidence store (S3 with object lock), or copied
to a local file; each delivery recorded in the bundle's custody log."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from evidencekit import fs
from evidencekit.cli import render
from evidencekit.cli.app import (
    Signer,
    bundle_argument,
    cli,
    json_option,
    output_option,
    progress_option,
    refuse_stdout,
    run,
    signer_options,
)
from evidencekit.cli.options import FILE_PATH, NAMED, TEXT
from evidencekit.errors import (
    EvidenceKitError,
    ExitCode,
    InputError,
    Interrupted,
    OutputError,
    UsageError,
)

if TYPE_CHECKING:  # capture declares this module's options: it imports deliver when it stores
    from evidencekit.custody.events import EventRequest
    from evidencekit.deliver import Delivery, Destination

F = TypeVar("F", bound=Callable[..., Any])

endpoint_option = click.option(
    "--endpoint", type=TEXT, metavar="URL",
    help="An S3-compatible store's address (default: AWS, or $AWS_ENDPOINT_URL). Credentials "
    "come from the usual AWS places: environment, profile, instance role.")


@cli.group(short_help="Keep bundles in an S3 evidence store with object lock.")
def store() -> None:
    """Keep bundles in an evidence store (S3 with object lock): put, list, get."""


def lock_options(f: F) -> F:
    """How a bundle is kept in an s3:// store (store put, capture -o s3://)."""
    f = endpoint_option(f)
    f = click.option("--no-lock", is_flag=True, help="s3://: accept a bucket without object "
                     "lock (recorded in the custody event).")(f)
    f = click.option("--legal-hold", is_flag=True, help="s3://: also place a legal hold (kept "
                     "until someone allowed to lifts it).")(f)
    f = click.option("--retain-days", type=int, metavar="N",
                     help="s3://: ... or for N days from now.")(f)
    return click.option("--retain-until", type=TEXT, metavar="DATE",
                        help="s3://: nobody may delete or "
                        "change the bundle before this date (YYYY-MM-DD, UTC).")(f)


@store.command("put", short_help="Upload a bundle, locked, and record it in its custody log.")
@bundle_argument
@click.argument("destination", type=NAMED)
@lock_options
@click.option("--note", default="", help="Free text for the custody event (why, who asked).")
@signer_options
@progress_option
@json_option
def store_put(bundle: Path, destination: str, retain_until: str | None,
              retain_days: int | None, legal_hold: bool, no_lock: bool, endpoint: str | None,
              note: str, signer: Signer, progress: str, as_json: bool) -> None:
    """Copy BUNDLE to DESTINATION (s3://BUCKET/PREFIX/ or a local path), check the copy, and
    add a signed 'transferred' event to BUNDLE naming where it went."""

    def body() -> int:
        from evidencekit.custody.events import EventRequest
        from evidencekit.deliver import already_recorded, checked_facts

        if _mistyped_store(bundle):  # s3://B/K, which the path folded to s3:/B/K
            raise UsageError(f"{bundle}: store put sends a bundle on this machine",
                             hint="to copy one from a store, fetch it first: evidencekit "
                             "store get s3://BUCKET/KEY -o FILE")
        target = _destination(destination, retain_until, retain_days, legal_hold, no_lock,
                              endpoint)
        key, name = signer.resolve(as_json)
        request = EventRequest("transferred", name, key, note)
        _require_recordable(bundle)
        facts, report = checked_facts(bundle)
        delivery = target.deliver(bundle, facts, render.progress_for(as_json, progress))
        event = None
        if not already_recorded(report, delivery):
            event = _record(bundle, delivery, request, report)
        _say_put(bundle, delivery, event.sequence if event else None, as_json)
        return ExitCode.OK

    run("store put", as_json, body)


def _require_recordable(bundle: Path) -> None:
    """Refused before anything is stored: a bundle whose custody log cannot take the delivery's
    event (read-only, in a folder that cannot be written). It was uploaded first, and locked
    in the store for years, unrecorded until someone made it writable."""
    from evidencekit.custody.append import check_appendable

    try:
        check_appendable(bundle)
    except OSError as exc:  # a name too long, a folder not ours to enter: not exit 5
        raise InputError(f"cannot read {bundle}: {exc.strerror or exc}") from None
    except EvidenceKitError as exc:
        exc.message += ("; nothing was stored: the delivery could not be recorded in its "
                        "custody log")
        exc.args = (exc.message,)
        exc.hint = (f"make it writable for the time of 'store put' (chmod u+w {bundle}, or "
                    "its folder), or copy it where it can be written")
        raise


def _record(bundle: Path, delivery: Delivery, request: EventRequest, report: Any) -> Any:
    """The delivery's custody event; when it cannot be added (a full disk), the error says that
    the copy exists all the same (it may be locked for years) and how to record it later."""
    from evidencekit.deliver import record_delivery

    try:
        return record_delivery(bundle, delivery, request, report,
                               waiting=render.waiting_for_writer(bundle))
    except EvidenceKitError as exc:
        exc.message = (f"{bundle} is now at {delivery.location}, but its custody log could not "
                       f"record that: {exc.message}")
        exc.args = (exc.message,)
        exc.hint = ((exc.hint + "; then ") if exc.hint else "") + (
            "run the same 'evidencekit store put' again: it finds the stored copy, stores "
            "nothing twice, and records it")
        raise
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after {bundle} was stored at {delivery.location}; its "
                          "custody log does not record that (it was left as it was)",
                          hint="run the same 'evidencekit store put' again: it finds the "
                          "stored copy, stores nothing twice, and records it") from None


def _destination(text: str, retain_until: str | None, retain_days: int | None,
                 legal_hold: bool, no_lock: bool, endpoint: str | None) -> Destination:
    from evidencekit.deliver import LocalFile, s3

    if not s3.is_s3_url(text):
        refuse_a_mistyped_store(text, "DESTINATION")
        if retain_until or retain_days is not None or legal_hold or no_lock or endpoint:
            raise UsageError("--retain-until, --retain-days, --legal-hold, --no-lock and "
                             "--endpoint are for an s3:// store")
        return LocalFile(Path(text), folder=text.endswith(("/", os.sep)))
    lock = s3.Lock.from_options(retain_until, retain_days, legal_hold, no_lock,
                                datetime.now(timezone.utc))
    return s3.S3Store(s3.S3Url.parse(text), lock, endpoint)


def refuse_a_mistyped_store(text: str, where: str) -> None:
    """A local path that is an s3:// location typed wrong (s3:/bucket/, s3:bucket/): taken
    for a path, it was a local copy into a folder 's3:' (or 'the folder s3:/evidence does not
    exist'), and with the lock options the message said they were 'for an s3:// store', as if
    none had been named."""
    if _mistyped_store(Path(text)):
        raise UsageError(f"{where} {text!r} is not an S3 location: one starts with s3://",
                         hint="write s3://BUCKET/PREFIX/, e.g. s3://evidence/CASE-1/ (for a "
                         "local file of that name, give its full path: /…/s3:…)")


def _mistyped_store(path: Path) -> bool:
    """Whether *path*, as typed, begins like an s3:// location but is not one ('s3/' may be a
    folder of that name, 's3:' hardly)."""
    text = str(path).lower()
    return text.startswith("s3:") and not text.startswith("s3://")


def capture_target(output: Path | str | None, case_id: str, retain_until: str | None,
                   retain_days: int | None, legal_hold: bool, no_lock: bool,
                   endpoint: str | None, timestamps: bool) -> Any:
    """``capture -o s3://…``: the store the bundle is written to (deliver.s3.S3Capture), or
    None for a local file (then the store's options are refused)."""
    if not isinstance(output, str):
        if output is not None:
            refuse_a_mistyped_store(str(output), "-o")
        if retain_until or retain_days is not None or legal_hold or no_lock or endpoint:
            raise UsageError("--retain-until, --retain-days, --legal-hold, --no-lock and "
                             "--endpoint are for -o s3://BUCKET/PREFIX/")
        return None
    import secrets

    from evidencekit.deliver import s3
    from evidencekit.hostinfo import host_name

    if timestamps:
        raise UsageError("--tsa cannot be used with -o s3://: a timestamp is added to the "
                         "bundle, and a stored bundle cannot change",
                         hint="capture to a file with --tsa, then 'evidencekit store put' it")
    now = datetime.now(timezone.utc)
    lock = s3.Lock.from_options(retain_until, retain_days, legal_hold, no_lock, now)
    url = s3.S3Url.parse(output)
    return s3.S3Capture(s3.S3Store(url, lock, endpoint), case_id, host_name(), now,
                        secrets.token_hex(4))


def _say_put(bundle: Path, delivery: Delivery, sequence: int | None, as_json: bool) -> None:
    if as_json:
        render.emit_json({"command": "store put", "ok": True, "exit_code": 0,
                          "bundle": str(bundle), "location": delivery.location,
                          "already_there": delivery.already_there,
                          "details": delivery.details, "custody_event": sequence})
        return
    said = "was already" if delivery.already_there else "is now"
    render.out.print(f"{render.escape(str(bundle))} {said} at "
                     f"{render.escape(delivery.location)}")
    say_stored(delivery)
    if sequence is not None:
        render.out.print(f"Recorded as custody event #{sequence} (transferred).")
    else:
        render.out.print("Its custody log already records this delivery; nothing was added.")


def say_stored(delivery: Delivery) -> None:
    """How an object in a store is kept: its version and lock."""
    d = delivery.details
    if d.get("destination") != "s3":
        return
    lock = (f"locked (COMPLIANCE) until {d['retain_until']}" if d["retention_mode"]
            else "[bold yellow]not locked[/]: it can be deleted or replaced")
    hold = ", legal hold on" if d["legal_hold"] == "on" else ""
    version = (f"version {render.escape(d['version_id'])}" if d["version_id"] else
               "no version (the bucket keeps none)")
    render.out.print(f"  stored as {render.escape(delivery.location)}, {version}, {lock}{hold}")


@store.command("list", short_help="List the bundles under an s3:// prefix, with their locks.")
@click.argument("location")
@endpoint_option
@json_option
def store_list(location: str, endpoint: str | None, as_json: bool) -> None:
    """List the objects under LOCATION (s3://BUCKET/PREFIX/): size, version, lock."""

    def body() -> int:
        from evidencekit.deliver import s3

        url = s3.S3Url.parse(location)
        objects = s3.list_objects(s3.make_client(endpoint), url)
        now = s3.rfc3339(datetime.now(timezone.utc))
        if as_json:
            render.emit_json({"command": "store list", "ok": True, "exit_code": 0,
                              "location": str(url), "objects": [o.to_json() for o in objects]})
            return ExitCode.OK
        if not objects:
            render.out.print(f"Nothing under {render.escape(str(url))}")
        for item in objects:
            lock = "" if item.missing else _lock_said(item, now)
            hold = ", legal hold" if item.legal_hold else ""
            over = (f"  [bold red]WRITTEN OVER[/] ({item.versions} versions and delete markers:"
                    " the newest, described here, is not the one stored)"
                    if item.versions > 1 else "")
            problem = f"  [bold red]{render.escape(item.problem)}[/]" if item.problem else ""
            render.out.print(f"{render.escape(item.key)}  {item.size:,} bytes  "
                             f"{item.last_modified}  {lock}{hold}{over}{problem}")
        return ExitCode.OK

    run("store list", as_json, body)


def _lock_said(item: Any, now: str) -> str:
    """An object's lock as of *now* (both RFC 3339 UTC, compared as text): a retention whose
    date has passed protects nothing, though the store still reports its mode (before:
    'locked until 2020-01-01T00:00:00Z')."""
    if not item.retention_mode:
        return "not locked"
    if item.retain_until and item.retain_until <= now:
        return (f"[bold yellow]lock expired[/] on {item.retain_until}: it can be deleted or "
                "replaced")
    return f"locked until {item.retain_until}"


@store.command("get", short_help="Download a bundle from an s3:// store to a new file.")
@click.argument("location")
@output_option("The new file to write (never replaced).")
@endpoint_option
@progress_option
@json_option
def store_get(location: str, output: Path, endpoint: str | None, progress: str,
              as_json: bool) -> None:
    """Download the object at LOCATION (s3://BUCKET/KEY) to OUTPUT, checking its SHA-256
    against the one recorded when it was uploaded."""

    def body() -> int:
        from evidencekit.deliver import s3
        from evidencekit.fs.direct import DiskWriter

        refuse_stdout(output, "a bundle")
        url = s3.S3Url.parse(location)
        if not url.key or url.key.endswith("/"):
            raise UsageError(f"{location}: name one object (s3://BUCKET/KEY); "
                             "'evidencekit store list' shows them")
        client = s3.make_client(endpoint)
        try:
            with fs.staged(output) as stage:
                # the payload is hashed as it is written: verifying the copy then reads only
                # its small members again, not the whole bundle (a few seconds per GiB); the
                # file is written past the page cache (O_DIRECT, on a thread of its own), as
                # capture writes a bundle, so that the final fsync has little left to wait for
                watch = s3.PayloadWatch()
                disk = DiskWriter(stage.file)
                try:
                    digest, recorded = s3.download(client, url, disk,
                                                   render.progress_for(as_json, progress),
                                                   watch)
                    disk.finish()
                finally:
                    disk.close()
                stage.file.flush()
                s3.check_downloaded(url, stage.path, render.progress_for(as_json, progress),
                                    watch.hashed())
        except FileExistsError:
            raise OutputError(f"{output} exists; nothing was written",
                              hint="choose another name with -o") from None
        except OSError as exc:
            raise OutputError(f"could not write {output}: {exc.strerror or exc}") from None
        _say_get(url, output, digest, recorded, as_json)
        return ExitCode.OK

    run("store get", as_json, body)


def _say_get(url: Any, output: Path, digest: str, recorded: str, as_json: bool) -> None:
    if as_json:
        render.emit_json({"command": "store get", "ok": True, "exit_code": 0,
                          "location": str(url), "output": str(output), "sha256": digest,
                          "sha256_checked": bool(recorded)})
        return
    render.out.print(f"Wrote {render.escape(str(output))} (SHA-256 {digest})")
    render.out.print("  verified: seal, signatures, custody log and payload hash intact, and it "
                     "is the bundle its name in the store says")
    if recorded:
        render.out.print("  same SHA-256 as the object's metadata records (written with it)")
    else:
        render.out.print("  no SHA-256 recorded at upload (as for a bundle written by 'capture "
                         "-o s3://'): the verification above is what checked the copy")


class BundleOrStore(click.ParamType):  # type: ignore[type-arg]
    """A bundle's path, or ``s3://BUCKET/KEY`` (kept as text: a Path would fold its '//').

    A path is checked as every other command's BUNDLE is (a folder refused in the same words
    by verify, extract, inspect, report...)."""

    name = "BUNDLE"
    _local = FILE_PATH

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Path | str:
        # s3.is_s3_url, without importing the store (deliver imports custody and verify) for
        # every local bundle a capture writes
        if isinstance(value, str) and value.lower().startswith("s3://"):
            return value
        return self._local.convert(value, param, ctx)


BUNDLE_OR_STORE = BundleOrStore()


def open_stored(location: str, endpoint: str | None) -> Any:
    """The bundle at an s3:// location, opened to be read in place (verify)."""
    from evidencekit.deliver import s3

    return s3.open_remote_bundle(s3.make_client(endpoint), s3.S3Url.parse(location))


def judge_stored_name(location: str, report: Any) -> None:
    """verify s3://…: whether the bundle read is the one the object's name says."""
    from evidencekit.deliver import s3

    s3.judge_name(location, report)
