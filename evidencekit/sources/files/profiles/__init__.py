"""Collection profiles: named, per-OS lists of what to collect, as YAML files.

Built-in profiles ship in ``evidencekit/sources/files/profiles/builtin/``; a user's own live in
``$XDG_CONFIG_HOME/evidencekit/profiles/`` (found by name, before the built-in ones) or anywhere
(``--profile ./mine.yaml``).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from evidencekit.errors import InputError
from evidencekit.fs.noatime import read_user_file, scan_directory
from evidencekit.sources.files.profile_terms import OS_NAMES
from evidencekit.sources.files.profiles.expand import (
    Found,
    Missing,
    Resolution,
    Unreachable,
    current_os,
    resolve,
    variables,
)
from evidencekit.sources.files.profiles.model import Profile, ProfileError, Target, read_profile

__all__ = ["OS_NAMES", "Found", "Missing", "Profile", "ProfileError", "Resolution", "Target",
           "Unreachable", "builtin_names", "current_os", "find_profile", "list_profiles",
           "load_file", "resolve", "variables"]

SUFFIXES = (".yaml", ".yml")


def builtin_names() -> list[str]:
    folder = resources.files(__name__).joinpath("builtin")
    return sorted(entry.name.rsplit(".", 1)[0] for entry in folder.iterdir()
                  if entry.name.endswith(SUFFIXES))


def _builtin(name: str) -> Profile | None:
    folder = resources.files(__name__).joinpath("builtin")
    for suffix in SUFFIXES:
        entry = folder.joinpath(name + suffix)
        if entry.is_file():
            return read_profile(entry.read_bytes().decode("utf-8"),
                                f"built-in profile {name}{suffix}",
                                "built-in", name, name_must_match=True)
    return None


def load_file(path: Path, origin: str = "file", by_name: bool = False) -> Profile:
    """A profile from a file; *by_name*: found by its name, which a ``name`` key must match."""
    try:
        text = read_user_file(path).decode("utf-8")  # as it is: its SHA-256 is recorded
    except FileNotFoundError:
        raise InputError(f"profile file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the profile {path}: {exc}") from None
    return read_profile(text, str(path), origin, path.stem, name_must_match=by_name)


def looks_like_file(name: str) -> bool:
    return "/" in name or "\\" in name or name.endswith(SUFFIXES)


def find_profile(name: str, user_dirs: Sequence[Path] = ()) -> Profile:
    """A profile by file path (``./mine.yaml``) or by name: the user's folders, then built-in."""
    if looks_like_file(name):
        return load_file(Path(name))
    for folder in user_dirs:
        for suffix in SUFFIXES:
            candidate = folder / (name + suffix)
            if candidate.is_file():
                return load_file(candidate, "user", by_name=True)
    found = _builtin(name)
    if found is None:
        known = sorted(set(builtin_names()) | {p.stem for d in user_dirs for p in _yaml_in(d)})
        raise InputError(f"no profile named {name!r}",
                         hint=f"known profiles: {', '.join(known)}; or give a file: "
                         "--profile ./mine.yaml ('evidencekit profiles list' shows them all)")
    return found


def _yaml_in(folder: Path) -> list[Path]:
    try:  # listed keeping its access time, like every folder the user may capture
        with scan_directory(folder, follow=True) as entries:
            return sorted(folder / e.name for e in entries
                          if Path(e.name).suffix in SUFFIXES and e.is_file())
    except OSError:
        return []


def list_profiles(user_dirs: Sequence[Path] = ()) -> list[Profile]:
    """Every profile found by name: the user's (first) and the built-in ones not overridden."""
    profiles: dict[str, Profile] = {}
    for folder in user_dirs:
        for path in _yaml_in(folder):
            profiles.setdefault(path.stem, load_file(path, "user", by_name=True))
    for name in builtin_names():
        if name not in profiles:
            profile = _builtin(name)
            assert profile is not None
            profiles[name] = profile
    return [profiles[k] for k in sorted(profiles)]
