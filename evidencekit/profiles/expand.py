"""Turn a profile's path patterns into concrete paths on one machine.

The operating system and the environment are parameters, so that the Windows and macOS rules can be
exercised anywhere (and so that a Windows or macOS home mounted on Linux can be collected with the
rules of its own system: ``USERPROFILE=/mnt/c/Users/jane`` and ``--profile-os windows``).
"""

from __future__ import annotations

import glob
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from evidencekit.profiles.model import VARIABLES, Profile

_BRACED = re.compile(r"\{([a-z]+)\}")
_PERCENT = re.compile(r"%([A-Za-z_][A-Za-z0-9_()]*)%")


def current_os() -> str:
    if sys.platform == "darwin":
        return "macos"
    if sys.platform.startswith(("win", "cygwin", "msys")):
        return "windows"
    return "linux"


@dataclass(frozen=True)
class Found:
    target: str
    pattern: str
    path: str


@dataclass(frozen=True)
class Missing:
    target: str
    pattern: str  # as written in the profile
    path: str  # after expanding variables ("" when a variable could not be expanded)
    reason: str


@dataclass
class Resolution:
    """What a profile selects on one machine."""

    os: str
    sources: list[str] = field(default_factory=list)  # to capture: unique, none inside another
    found: list[Found] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)


def variables(os_name: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The values of ``{home}``, ``{appdata}``… for *os_name*, from *environ* (absent: unset)."""
    env = _environment(os_name, environ)
    values: dict[str, str] = {}
    if os_name == "windows":
        home = env.get("USERPROFILE") or (
            env["HOMEDRIVE"] + env["HOMEPATH"] if env.get("HOMEDRIVE") and env.get("HOMEPATH")
            else "")
        if home:
            values.update(home=home, userprofile=home,
                          appdata=env.get("APPDATA") or _join(home, "AppData", "Roaming"),
                          localappdata=env.get("LOCALAPPDATA") or _join(home, "AppData", "Local"))
        else:
            values.update({k: env[v] for k, v in (("appdata", "APPDATA"),
                                                  ("localappdata", "LOCALAPPDATA")) if env.get(v)})
        tmp = env.get("TEMP") or env.get("TMP") or (
            _join(values["localappdata"], "Temp") if "localappdata" in values else "")
        if tmp:
            values["tmp"] = tmp
        values["programdata"] = env.get("PROGRAMDATA") or "C:\\ProgramData"
        values["systemroot"] = env.get("SYSTEMROOT") or env.get("WINDIR") or "C:\\Windows"
        if env.get("USERNAME"):
            values["user"] = env["USERNAME"]
        return values
    home = env.get("HOME", "")
    if home:
        values.update(home=home, userprofile=home)
        if os_name == "macos":
            library = _join(home, "Library")
            support = _join(library, "Application Support")
            values.update(library=library, appdata=support, localappdata=support)
        else:
            values.update(appdata=env.get("XDG_CONFIG_HOME") or _join(home, ".config"),
                          localappdata=env.get("XDG_DATA_HOME") or _join(home, ".local", "share"))
    values["tmp"] = env.get("TMPDIR") or "/tmp"
    user = env.get("USER") or env.get("LOGNAME")
    if user:
        values["user"] = user
    return values


def _environment(os_name: str, environ: Mapping[str, str]) -> dict[str, str]:
    # Windows variable names are case-insensitive.
    if os_name == "windows":
        return {k.upper(): v for k, v in environ.items()}
    return dict(environ)


def _join(*parts: str) -> str:
    return "/".join(p.rstrip("/\\") for p in parts)


class UnsetVariable(Exception):
    pass


def expand_pattern(pattern: str, os_name: str, environ: Mapping[str, str]) -> str:
    """Expand ``{name}``, ``%NAME%`` and a leading ``~``; glob characters in values are escaped.

    Windows patterns come back with '/' separators. Raise UnsetVariable naming what is missing.
    """
    values = variables(os_name, environ)
    env = _environment(os_name, environ)

    def braced(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in VARIABLES[os_name]:
            raise UnsetVariable(f"{{{name}}} is not defined on {os_name}")
        if name not in values:
            raise UnsetVariable(f"{{{name}}} has no value here (its environment variable is not "
                                "set)")
        return glob.escape(values[name])

    def percent(match: re.Match[str]) -> str:
        name = match.group(1)
        key = name.upper() if os_name == "windows" else name
        if not env.get(key):
            raise UnsetVariable(f"the environment variable %{name}% is not set")
        return glob.escape(env[key])

    expanded = pattern
    if expanded == "~" or expanded.startswith(("~/", "~\\")):
        if "home" not in values:
            raise UnsetVariable("'~' has no value here (HOME/USERPROFILE is not set)")
        expanded = "{home}" + expanded[1:]
    expanded = _PERCENT.sub(percent, _BRACED.sub(braced, expanded))
    if os_name == "windows":
        expanded = expanded.replace("\\", "/") if not expanded.startswith("\\\\") \
            else expanded
    return expanded


def resolve(profile: Profile, os_name: str, environ: Mapping[str, str]) -> Resolution:
    """Every concrete path the profile names on this machine, and every pattern that found nothing.

    Matches are sorted; a path found twice, or inside another found folder, is captured once.
    """
    result = Resolution(os_name)
    for target in profile.targets:
        for pattern in target.paths.get(os_name, ()):
            try:
                expanded = expand_pattern(pattern, os_name, environ)
            except UnsetVariable as exc:
                result.missing.append(Missing(target.name, pattern, "", str(exc)))
                continue
            if not os.path.isabs(expanded):
                result.missing.append(Missing(target.name, pattern, expanded,
                                              "not an absolute path on this machine"))
                continue
            matches, reason = _matches(expanded)
            if not matches:
                result.missing.append(Missing(target.name, pattern, expanded, reason))
            result.found.extend(Found(target.name, pattern, m) for m in matches)
    chosen: list[str] = []
    for path in sorted({f.path for f in result.found}, key=lambda p: (len(p), p)):
        if not any(path == c or path.startswith(c.rstrip("/") + "/") for c in chosen):
            chosen.append(path)
    order = {f.path: i for i, f in reversed(list(enumerate(result.found)))}
    result.sources = sorted(chosen, key=lambda p: order[p])
    return result


def _matches(pattern: str) -> tuple[list[str], str]:
    if not glob.has_magic(pattern):
        path = os.path.normpath(pattern) if pattern not in ("/", "//") else pattern
        try:
            os.lstat(path)
        except FileNotFoundError:
            return [], "not found"
        except NotADirectoryError:
            return [], "not found"
        except OSError as exc:
            return [], f"cannot be reached: {exc.strerror or exc}"
        return [path], ""
    found = sorted(os.path.normpath(p) for p in glob.glob(pattern, recursive=True))
    return found, "" if found else "no match"
