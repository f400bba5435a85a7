"""Collection profiles: what they hold, and the checks that make a YAML file one.

The format is documented in docs/playbooks.md and, as JSON Schema, in
docs/schemas/profile.schema.json; this module is the checker evidencekit runs (it names the file
and line of every problem).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from evidencekit.sources.files.profile_terms import OS_NAMES, parse_size
from evidencekit.sources.files.selection import Filters, GlobError, compile_glob
from evidencekit.yamlfile import Document, PathKey, YamlFileError, load

CASE_FIELDS = ("examiner", "description", "organisation", "legal_basis")
PROFILE_KEYS = ("name", "description", "version", "case", "limits", "include", "exclude",
                "targets", "live")
TARGET_KEYS = ("name", "description", *OS_NAMES)
LIMIT_KEYS = ("max_file_size", "max_total")
NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

# Variables a path may use, per operating system (values: evidencekit.sources.files.profiles.expand).
VARIABLES: dict[str, tuple[str, ...]] = {
    "linux": ("home", "userprofile", "appdata", "localappdata", "tmp", "user"),
    "macos": ("home", "userprofile", "appdata", "localappdata", "library", "tmp", "user"),
    "windows": ("home", "userprofile", "appdata", "localappdata", "tmp", "user", "programdata",
                "systemroot"),
}
_BRACED = re.compile(r"\{([^{}]*)\}")
_PERCENT = re.compile(r"%([A-Za-z_][A-Za-z0-9_()]*)%")


class ProfileError(YamlFileError):
    """A profile file is not valid (the message names file, line and problem)."""


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    paths: dict[str, tuple[str, ...]]  # OS name → path patterns


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    file: str  # where it was read from
    origin: str  # "built-in", "user" or "file"
    targets: tuple[Target, ...]
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_file_size: int | None = None
    max_total_bytes: int | None = None
    case: dict[str, str] = field(default_factory=dict)
    sha256: str = ""  # of the YAML text (UTF-8): which version of the profile a bundle used
    live: bool = False  # also collect the running system's state (capture --live)

    def filters(self, os_name: str) -> Filters | None:
        """What capture applies to the files inside the profile's sources (None: nothing)."""
        if not (self.include or self.exclude or self.max_file_size is not None
                or self.max_total_bytes is not None):
            return None
        return Filters(self.include, self.exclude, self.max_file_size, self.max_total_bytes,
                       case_sensitive=os_name == "linux")

    def operating_systems(self) -> list[str]:
        return [o for o in OS_NAMES if any(t.paths.get(o) for t in self.targets)]


def read_profile(text: str, file: str, origin: str, default_name: str | None = None,
                 name_must_match: bool = False) -> Profile:
    """Check *text* (the YAML of a profile read from *file*) and build the profile.

    *text* must be the file's content exactly (no newline translation): the profile's
    ``sha256`` is that of its UTF-8 encoding, so that it equals ``sha256sum FILE``.

    Without a ``name`` key the profile is called *default_name* (its file name); with
    *name_must_match* (profiles found by name) a ``name`` key must equal it.
    """
    doc = load(text, file, ProfileError)
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error((), "a profile is a mapping with at least 'description' and 'targets'",
                        hint="see docs/playbooks.md, 'Writing a profile'")
    _unknown_keys(doc, (), data, PROFILE_KEYS)
    if default_name is not None and not name_must_match:
        default_name = re.sub(r"[^a-z0-9._-]+", "-", default_name.lower()).strip("-._")[:64]
    name = data.get("name", default_name)
    if not name:
        raise doc.error((), "'name' is missing")
    _text(doc, ("name",), name)
    if not NAME_RE.fullmatch(name):
        raise doc.error(("name",), f"{name!r} is not a valid profile name: use lower-case letters, "
                        "digits, '.', '_' and '-' (at most 64)")
    if name_must_match and "name" in data and name != default_name:
        raise doc.error(("name",), f"the name {name!r} differs from the file name "
                        f"{default_name!r}: make them the same")
    if "version" in data and data["version"] != 1:
        raise doc.error(("version",), f"unsupported profile version {data['version']!r}; this "
                        "evidencekit reads version 1")
    if "description" not in data:
        raise doc.error((), "'description' is missing: say in a sentence what the profile "
                        "collects")
    description = _text(doc, ("description",), data["description"])
    case = _case(doc, data.get("case"))
    max_file, max_total = _limits(doc, data.get("limits"))
    include = _globs(doc, ("include",), data.get("include"))
    exclude = _globs(doc, ("exclude",), data.get("exclude"))
    if "targets" not in data:
        raise doc.error((), "'targets' is missing: list what to collect")
    targets = data["targets"]
    if not isinstance(targets, list) or not targets:
        raise doc.error(("targets",), "expected a non-empty list of targets "
                        f"(each with a name and paths per OS), found {_kind(targets)}")
    parsed = tuple(_target(doc, ("targets", i), t) for i, t in enumerate(targets))
    names = [t.name for t in parsed]
    for i, target_name in enumerate(names):
        if target_name in names[:i]:
            raise doc.error(("targets", i, "name"), f"a target named {target_name!r} is already "
                            "defined above")
    live = data.get("live", False)
    if not isinstance(live, bool):
        raise doc.error(("live",), f"expected true or false, found {_kind(live)}")
    return Profile(name, description, file, origin, parsed, include, exclude, max_file, max_total,
                   case, hashlib.sha256(text.encode("utf-8")).hexdigest(), live)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a true/false value ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"text ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _unknown_keys(doc: Document, path: PathKey, data: dict[Any, Any],
                  allowed: tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            raise doc.error((*path, str(key)), f"unknown key {str(key)!r}; allowed here: "
                            f"{', '.join(allowed)}", where=path)


def _text(doc: Document, path: PathKey, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise doc.error(path, f"expected text, found {_kind(value)}")
    return value


def _case(doc: Document, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise doc.error(("case",), f"expected a mapping of case fields ({', '.join(CASE_FIELDS)})"
                        f", found {_kind(value)}")
    _unknown_keys(doc, ("case",), value, CASE_FIELDS)
    return {key: _text(doc, ("case", key), v) for key, v in value.items()}


def _limits(doc: Document, value: Any) -> tuple[int | None, int | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise doc.error(("limits",), f"expected a mapping (max_file_size, max_total), found "
                        f"{_kind(value)}")
    _unknown_keys(doc, ("limits",), value, LIMIT_KEYS)
    sizes: list[int | None] = []
    for key in LIMIT_KEYS:
        if key not in value:
            sizes.append(None)
            continue
        size = parse_size(value[key])
        if size is None:
            raise doc.error(("limits", key), f"expected a size such as 500MB, 2GiB or a number "
                            f"of bytes, found {_kind(value[key])}")
        sizes.append(size)
    return sizes[0], sizes[1]


def _globs(doc: Document, path: PathKey, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise doc.error(path, f"expected a list of glob patterns, found {_kind(value)}")
    patterns = []
    for i, item in enumerate(value):
        pattern = _text(doc, (*path, i), item)
        if "\\" in pattern:
            raise doc.error((*path, i), f"{pattern!r}: write patterns with '/' (they are matched "
                            "against paths inside the source, on every system)")
        try:
            compile_glob(pattern)
        except GlobError as exc:
            raise doc.error((*path, i), f"{pattern!r} is not a valid pattern: {exc}") from None
        patterns.append(pattern)
    return tuple(patterns)


def _target(doc: Document, path: PathKey, value: Any) -> Target:
    if not isinstance(value, dict):
        raise doc.error(path, f"expected a target (a mapping with name and linux/macos/windows "
                        f"paths), found {_kind(value)}")
    _unknown_keys(doc, path, value, TARGET_KEYS)
    if "name" not in value:
        raise doc.error(path, "the target has no 'name'")
    name = _text(doc, (*path, "name"), value["name"])
    description = _text(doc, (*path, "description"), value["description"]) \
        if "description" in value else ""
    paths: dict[str, tuple[str, ...]] = {}
    for os_name in OS_NAMES:
        if os_name not in value:
            continue
        items = value[os_name]
        if not isinstance(items, list) or not items:
            raise doc.error((*path, os_name), f"expected a non-empty list of paths, found "
                            f"{_kind(items)}")
        paths[os_name] = tuple(_path(doc, (*path, os_name, i), os_name, item)
                               for i, item in enumerate(items))
    if not paths:
        raise doc.error(path, f"target {name!r} has no paths: give at least one of "
                        f"{', '.join(OS_NAMES)}")
    return Target(name, description, paths)


def _path(doc: Document, path: PathKey, os_name: str, value: Any) -> str:
    pattern = _text(doc, path, value)
    for match in _BRACED.finditer(pattern):
        variable = match.group(1)
        if variable not in VARIABLES[os_name]:
            raise doc.error(path, f"unknown variable {{{variable}}} in {pattern!r} for {os_name}; "
                            f"known: {', '.join('{' + v + '}' for v in VARIABLES[os_name])}")
    if "~" in pattern and not (pattern == "~" or pattern.startswith(("~/", "~\\"))):
        raise doc.error(path, f"{pattern!r}: '~' is only understood at the start, as '~/…'")
    if not is_absolute_pattern(pattern):
        raise doc.error(path, f"{pattern!r} is not an absolute path: start with '/', '~/', a "
                        "drive letter or a variable such as {home} or %USERPROFILE%")
    return pattern


def is_absolute_pattern(pattern: str) -> bool:
    return (pattern.startswith(("/", "~", "{", "%", "\\\\"))
            or re.match(r"[A-Za-z]:[\\/]", pattern) is not None)
