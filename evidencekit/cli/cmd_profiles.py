"""evidencekit profiles list|show, and how ``capture --profile`` turns a profile into sources."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from click.shell_completion import CompletionItem
from rich.table import Table

from evidencekit.cli import render
from evidencekit.cli.app import DetailedError, cli, json_option, run
from evidencekit.cli.keyring import config_dir
from evidencekit.errors import EvidenceKitError, ExitCode, UsageError
from evidencekit.sources.files.profiles import (
    OS_NAMES,
    Profile,
    Resolution,
    current_os,
    find_profile,
    list_profiles,
    resolve,
)
from evidencekit.sources.files.selection import Filters
from evidencekit.text import exact_size


def user_profile_dirs() -> list[Path]:
    return [config_dir() / "profiles"]


def complete_profile(ctx: click.Context, param: click.Parameter, incomplete: str
                     ) -> list[CompletionItem]:
    """Shell completion: profile names (a path completes as a file)."""
    if "/" in incomplete:
        return [CompletionItem(incomplete, type="file")]
    try:
        profiles = list_profiles(user_profile_dirs())
    except EvidenceKitError:
        return []
    return [CompletionItem(p.name, help=p.description) for p in profiles
            if p.name.startswith(incomplete)]


# ------------------------------------------------------------------ used by capture --profile
@dataclass
class ProfileSelection:
    profile: Profile
    resolution: Resolution

    @property
    def filters(self) -> Filters | None:
        return self.profile.filters(self.resolution.os)

    def case_fields(self, given: dict[str, Any]) -> dict[str, Any]:
        """Fill case fields the user left at their built-in default from the profile's ``case``.

        Precedence: flags > EVIDENCEKIT_* variables > configuration file > profile > built-in.
        """
        ctx = click.get_current_context()
        filled = dict(given)
        for key, value in self.profile.case.items():
            if ctx.get_parameter_source(key) in (None, ParameterSource.DEFAULT):
                filled[key] = value
        return filled

    @property
    def paths(self) -> list[Path]:
        """What capture is given: the sources found, then those the system refused to reach
        (which capture records as problems, see :attr:`unreachable`)."""
        return [Path(p) for p in self.resolution.sources] + [
            Path(u.path) for u in self.resolution.unreachable]

    @property
    def unreachable(self) -> list[tuple[bytes, str]]:
        """What capture records as problems: (path, what went wrong) for each refused lookup."""
        return [(os.fsencode(u.path), u.problem) for u in self.resolution.unreachable]

    def to_json(self) -> dict[str, Any]:
        return {**profile_identity(self.profile), **resolution_json(self.resolution)}

    def record(self) -> dict[str, str]:
        """Which profile the bundle was made with, for the signed manifest (docs/FORMAT.md)."""
        return {"name": self.profile.name, "origin": self.profile.origin,
                "sha256": self.profile.sha256}


class ProfileFoundNothing(DetailedError, UsageError):
    """The profile names nothing that exists on this machine; its --json document says what
    was looked for (``profile``: the resolution, as in a capture's document)."""


def select_profile(name: str, os_name: str | None, other_sources: bool, quiet: bool
                   ) -> ProfileSelection:
    """Find the profile, resolve its paths here, report what is missing (stderr unless quiet)."""
    profile = find_profile(name, user_profile_dirs())
    selection = ProfileSelection(profile, resolve(profile, os_name or current_os(), os.environ))
    if not quiet:
        _print_resolution(selection)
    resolution = selection.resolution
    if not resolution.sources and not resolution.unreachable and not other_sources:
        oses = profile.operating_systems()
        raise ProfileFoundNothing(
            f"the profile {profile.name} found nothing to capture on this machine (rules for "
            f"{resolution.os}; {len(resolution.missing)} path(s) looked for)",
            hint=(f"'evidencekit profiles show {_show_argument(profile)}' lists what it looks for"
                  + ("" if resolution.os in oses else
                     f"; it has rules only for {', '.join(oses)}")),
            fields={"profile": selection.to_json()})
    return selection


def _print_resolution(selection: ProfileSelection) -> None:
    profile, resolution = selection.profile, selection.resolution
    render.err.print(f"Profile {profile.name} ({profile.origin}, rules for {resolution.os}): "
                     f"{len(resolution.sources)} path(s) to capture, "
                     f"{len(resolution.missing)} not present here"
                     + (f", {len(resolution.unreachable)} not reachable"
                        if resolution.unreachable else ""))
    for missing in resolution.missing:
        render.err.print(f"  [dim]not captured ({render.escape(missing.target)}): "
                         f"{render.escape(missing.path or missing.pattern)}: "
                         f"{render.escape(missing.reason)}[/]")
    for source in resolution.sources:
        note = resolution.link_note(source)
        if note is not None:
            render.err.print(f"  [dim]link: {render.escape(source)}: "
                             f"{render.escape(note.reason)}[/]")
    for refused in resolution.unreachable:
        render.err.print(f"  [yellow]not reachable ({render.escape(refused.target)}):[/] "
                         f"{render.escape(refused.problem)}")


def _show_argument(profile: Profile) -> str:
    # A profile given as a file is shown by its path: its name would find another one, or none.
    return shlex.quote(profile.file) if profile.origin == "file" else profile.name


def profile_identity(profile: Profile) -> dict[str, Any]:
    return {"name": profile.name, "origin": profile.origin, "file": profile.file,
            "sha256": profile.sha256}


def resolution_json(resolution: Resolution) -> dict[str, Any]:
    notes = {source: resolution.link_note(source) for source in resolution.sources}
    return {"os": resolution.os, "sources": resolution.sources,
            "links": [{"source": source, "target": note.target, "followed": note.followed,
                       "reason": note.reason}
                      for source, note in notes.items() if note is not None],
            "found": [{"target": f.target, "pattern": f.pattern, "path": f.path}
                      for f in resolution.found],
            "missing": [{"target": m.target, "pattern": m.pattern, "path": m.path or None,
                         "reason": m.reason} for m in resolution.missing],
            "unreachable": [{"target": u.target, "pattern": u.pattern, "path": u.path,
                             "problem": u.problem} for u in resolution.unreachable]}


def profile_json(profile: Profile) -> dict[str, Any]:
    return {"name": profile.name, "description": profile.description, "origin": profile.origin,
            "file": profile.file, "sha256": profile.sha256,
            "operating_systems": profile.operating_systems(),
            "case": profile.case, "include": list(profile.include),
            "exclude": list(profile.exclude),
            "limits": {"max_file_size": profile.max_file_size,
                       "max_total": profile.max_total_bytes},
            "live": profile.live,
            "targets": [{"name": t.name, "description": t.description,
                         "paths": {o: list(t.paths[o]) for o in OS_NAMES if o in t.paths}}
                        for t in profile.targets]}


# ----------------------------------------------------------------------------- commands
@cli.group("profiles", short_help="Collection profiles: what capture --profile NAME collects.")
def profiles_group() -> None:
    """Collection profiles: what 'capture --profile NAME' collects on each system."""


@profiles_group.command("list", short_help="List the built-in profiles and your own.")
@json_option
def profiles_list(as_json: bool) -> None:
    """List the built-in profiles and your own (in the profiles folder of your config)."""

    def body() -> int:
        profiles = list_profiles(user_profile_dirs())
        if as_json:
            render.emit_json({"command": "profiles list", "ok": True, "exit_code": 0,
                              "os": current_os(),
                              "user_profile_dirs": [str(d) for d in user_profile_dirs()],
                              "profiles": [{"name": p.name, "description": p.description,
                                            "origin": p.origin, "file": p.file,
                                            "operating_systems": p.operating_systems(),
                                            "targets": [t.name for t in p.targets]}
                                           for p in profiles]})
            return ExitCode.OK
        table = Table(title="Collection profiles")
        for column in ("name", "from", "systems", "collects"):
            table.add_column(column, overflow="fold")
        for p in profiles:
            table.add_row(p.name, p.origin, ", ".join(p.operating_systems()), p.description)
        render.out.print(table)
        render.out.print(f"Your own profiles go in {user_profile_dirs()[0]}/NAME.yaml; "
                         "'evidencekit profiles show NAME' shows one.")
        return ExitCode.OK

    run("profiles list", as_json, body)


@profiles_group.command("show", short_help="Show a profile and what it finds on this machine.")
@click.argument("name", shell_complete=complete_profile)
@click.option("--os", "os_name", type=click.Choice(OS_NAMES),
              help="Resolve the rules for this system (default: this machine's).")
@json_option
def profiles_show(name: str, os_name: str | None, as_json: bool) -> None:
    """Show a profile (NAME or a .yaml file; checked) and what it finds on this machine."""

    def body() -> int:
        profile = find_profile(name, user_profile_dirs())
        resolution = resolve(profile, os_name or current_os(), os.environ)
        if as_json:
            render.emit_json({"command": "profiles show", "ok": True, "exit_code": 0,
                              "profile": profile_json(profile),
                              "resolved": resolution_json(resolution)})
            return ExitCode.OK
        _show_text(profile, resolution)
        return ExitCode.OK

    run("profiles show", as_json, body)


def _show_text(profile: Profile, resolution: Resolution) -> None:
    esc = render.escape  # found names are outside text: no control characters printed
    render.out.print(f"[bold]{esc(profile.name)}[/]: {esc(profile.description)}")
    render.out.print(f"  from {esc(profile.file)} ({profile.origin})")
    if profile.case:
        render.out.print("  case defaults: " + ", ".join(f"{k}={esc(v)!r}"
                                                        for k, v in profile.case.items()))
    if profile.include:
        render.out.print("  reads only:    " + esc(", ".join(profile.include)))
    if profile.exclude:
        render.out.print("  skips:         " + esc(", ".join(profile.exclude)))
    limits = [f"{k} {exact_size(v)}" for k, v in (("max_file_size", profile.max_file_size),
                                                    ("max_total", profile.max_total_bytes)) if v]
    if limits:
        render.out.print("  limits:        " + ", ".join(limits))
    if profile.live:
        render.out.print("  live state:    collected first, as with capture --live")
    for target in profile.targets:
        render.out.print(f"[bold]{esc(target.name)}[/]" + (f" — {esc(target.description)}"
                                                          if target.description else ""))
        for os_name in OS_NAMES:
            for pattern in target.paths.get(os_name, ()):
                render.out.print(f"  {os_name:<8}{esc(pattern)}")
    render.out.print(f"On this machine (rules for {resolution.os}): "
                     f"{len(resolution.sources)} path(s) to capture")
    for source in resolution.sources:
        render.out.print(f"  [green]found[/]    {esc(source)}{esc(_link_note(resolution, source))}")
    for missing in resolution.missing:
        render.out.print(f"  [dim]missing  {esc(missing.path or missing.pattern)} "
                         f"({esc(missing.reason)})[/]")
    for refused in resolution.unreachable:
        render.out.print(f"  [yellow]refused[/]  {esc(refused.problem)}")


def _link_note(resolution: Resolution, source: str) -> str:
    note = resolution.link_note(source)
    return "" if note is None else f" ({note.reason})"


