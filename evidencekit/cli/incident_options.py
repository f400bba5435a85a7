"""The incident record's options of ``capture`` (``--incident`` and the flags), apart from the
guided session: every capture declares them, and the session (a large module, with its prompts)
is imported only when it runs (issue 27, start-up)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from evidencekit import incident as inc
from evidencekit.cli.options import FILE_PATH, option_group
from evidencekit.errors import InputError
from evidencekit.fs.noatime import read_user_file

F = TypeVar("F", bound=Callable[..., Any])


def incident_options(f: F) -> F:
    """The incident-record options of ``capture`` (all optional, combinable with --incident)."""
    options = [
        click.option("--incident", "incident_file", type=FILE_PATH,
                     help="Read the incident record from this YAML file (see docs/victims.md)."),
        click.option("--incident-type", type=click.Choice(list(inc.INCIDENT_TYPES)),
                     help="What happened."),
        click.option("--narrative", help="What happened, in your own words: kept encrypted "
                     "inside the bundle (unlike --description, which is public)."),
        click.option("--started", metavar="TIME", help="When it started: 'YYYY-MM-DD HH:MM' "
                     "(+01:00 or a zone name if not local time)."),
        click.option("--noticed", metavar="TIME", help="When it was noticed."),
        click.option("--time-zone", metavar="ZONE", help="Time zone of times without one "
                     "(e.g. Europe/Berlin; default: this computer's)."),
        click.option("--timeline", "timeline_entries", nargs=2, multiple=True,
                     metavar="TIME TEXT", help="A dated event. Repeatable."),
        click.option("--identifier", "identifier_entries", nargs=2, multiple=True,
                     metavar="KIND VALUE", help="A suspicious identifier; KIND is one of "
                     f"{', '.join(inc.IDENTIFIER_KINDS)}. Repeatable."),
        click.option("--loss", "loss_entries", multiple=True,
                     metavar="'AMOUNT CUR[; DATE[; INSTITUTION[; REF]]]'",
                     help="Money lost, e.g. '499.90 EUR; 2026-11-16; Example Bank; TX-4411'. "
                     "Repeatable."),
        click.option("--affected-account", "affected_accounts", multiple=True,
                     help="An affected account. Repeatable."),
        click.option("--affected-device", "affected_devices", multiple=True,
                     help="An affected device. Repeatable."),
    ]
    return option_group(options)(f)


def incident_from_options(options: dict[str, Any]) -> bytes | None:
    """The canonical incident.json bytes from --incident and the incident flags, or None."""
    record = incident_record(options)
    return None if record.empty else record.to_json()


def incident_source(options: dict[str, Any]) -> str:
    """Where the prepared record comes from, for people: 'incident.yaml', 'the command line'."""
    source = options.get("incident_file")
    flags = any(value for key, value in options.items() if key != "incident_file")
    if source is None:
        return "the command line" if flags else ""
    return f"{Path(source).name}" + (" and the command line" if flags else "")


def incident_record(options: dict[str, Any]) -> inc.Incident:
    """The incident record from --incident and the incident flags, validated (raises
    IncidentError, a usage error, naming the file or flag and the field)."""
    data: dict[str, Any] = {}
    source = options.get("incident_file")
    if source is not None:
        try:
            text = read_user_file(source).decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the incident file {source}: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
        loaded = inc.load_yaml(text, str(source))  # validates the file on its own first
        data = _input_form(loaded)
    zone = options.get("time_zone") or data.get("time_zone") or ""
    default_zone = inc.zone_named(zone, "--time-zone") if zone else inc.local_zone()[0]
    for flag, key in (("incident_type", "incident_type"), ("narrative", "description"),
                      ("time_zone", "time_zone")):
        if options.get(flag):
            data[key] = options[flag]
    for flag in ("started", "noticed"):
        if options.get(flag):
            data[flag] = inc.parse_moment(options[flag], f"--{flag}", default_zone).local
    for time, text in options.get("timeline_entries") or ():
        moment = inc.parse_moment(time, "--timeline", default_zone)
        data.setdefault("timeline", []).append({"time": moment.local, "description": text})
    for kind, value in options.get("identifier_entries") or ():
        found = inc.identifier({"kind": kind, "value": value}, "--identifier")
        data.setdefault("identifiers", []).append(found.to_json())
    for spec in options.get("loss_entries") or ():
        data.setdefault("losses", []).append(inc.parse_loss_spec(spec).to_json())
    for key in ("affected_accounts", "affected_devices"):
        data[key] = [*data.get(key, []), *(options.get(key) or ())]
    return inc.from_input(data, default_zone)


def _input_form(record: inc.Incident) -> dict[str, Any]:
    """An Incident back in the input (YAML) shape, so flags can be merged into it."""
    document = record.to_document()
    del document["type"], document["format_version"]
    for key in ("started", "noticed"):  # a moment's time as entered (a date alone stays one)
        document[key] = document[key]["time"] if document[key] else None
    document["timeline"] = [{"time": e["time"], "description": e["description"]}
                            for e in document["timeline"]]
    return document
