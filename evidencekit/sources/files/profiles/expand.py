"""Turn a profile's path patterns into concrete paths on one machine.

The operating system and the environment are parameters, so that the Windows and macOS rules can be
exercised anywhere (and so that a Windows or macOS home mounted on Linux can be collected with the
rules of its own system: ``USERPROFILE=/mnt/c/Users/jane`` and ``--profile-os windows``).
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import stat
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from evidencekit.fs.noatime import scan_directory
from evidencekit.sources.files.profiles.model import VARIABLES, Profile
from evidencekit.sources.files.walk import (
    is_within,
    link_owner,
    resolves_through_trusted_links,
    trusted_part,
)

_BRACED = re.compile(r"\{([a-z]+)\}")
_PERCENT = re.compile(r"%([A-Za-z_][A-Za-z0-9_()]*)%")
# What "the path is not there" looks like; any other error means it may be there, unreachable.
_ABSENT = (FileNotFoundError, NotADirectoryError)
# A glob character made literal by glob.escape (as in a variable's value: a home "h[x]").
_ESCAPED = re.compile(r"\[([*?\[])\]")
LINK_NOT_FOLLOWED = "a symbolic link: not followed below the pattern's first wildcard"
LINK_BY_STRANGER = "a symbolic link made by another user (uid {uid}), not by you or root"
LINK_NOT_TRUSTED = LINK_BY_STRANGER + ": not followed"
LINK_THROUGH_STRANGER = ("a symbolic link whose target goes through a link made by another user, "
                         "not by you or root")


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
    # The leading folders of *path* written out in the pattern (before its first wildcard): a
    # link among them is followed, as the profile's author named them. Below, none is. When it
    # is *path* itself (a pattern without wildcards, or the folder ``**`` starts at), the pattern
    # names all of it, and *path* is followed too, like a source named on the command line.
    followed: str = "/"


@dataclass(frozen=True)
class Missing:
    target: str
    pattern: str  # as written in the profile
    path: str  # after expanding variables ("" when a variable could not be expanded)
    reason: str


@dataclass(frozen=True)
class Unreachable:
    """A lookup the system refused (a folder that may not be searched or listed): what the
    pattern names may well be there. Not "missing": capture records it as a problem."""

    target: str
    pattern: str  # as written in the profile
    path: str  # the path that could not be looked up, or the folder that could not be listed
    problem: str  # e.g. "could not reach /home/bob/.bash_history: Permission denied"


@dataclass(frozen=True)
class LinkNote:
    """A source that is a symbolic link: where it points, and whether capture goes there."""

    target: str  # as the link holds it
    followed: bool
    reason: str  # in plain words


@dataclass
class Resolution:
    """What a profile selects on one machine."""

    os: str
    # to capture: unique, none inside another whose walk reaches it (a link followed as its
    # own source may lie in another: that one's walk records the link alone)
    sources: list[str] = field(default_factory=list)
    found: list[Found] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    unreachable: list[Unreachable] = field(default_factory=list)  # none inside a source
    _is_link: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)

    def followed(self, path: str) -> str:
        """The part of the source *path* in which links may be followed: all of it when a
        pattern names it in full (``{home}/Pictures/Screenshots``, though
        ``{home}/Pictures/Screenshot*`` matched it too), else the shortest of its patterns'."""
        parts = [f.followed for f in self.found if f.path == path]
        return path if path in parts else min(parts, key=len, default="/")

    def link_note(self, source: str) -> LinkNote | None:
        """What capture does with *source* if it is a symbolic link (walk.resolve_sources)."""
        try:
            target = os.readlink(source)
        except OSError:
            return None  # not a link
        if self.followed(source) == source:
            if os.path.exists(source):
                return LinkNote(target, True, f"a link to {os.path.realpath(source)}: "
                                              "captured through it")
            return LinkNote(target, False, "a broken link: recorded as the link")
        stranger = _stranger(source)
        if stranger is not None:
            return LinkNote(target, False, stranger + ": recorded as the link, not followed")
        return LinkNote(target, False, "a symbolic link: recorded as the link, not followed")

    def _reached_by(self, path: str, folder: str) -> bool:
        """Whether capturing *folder* captures *path* (inside it) as capturing *path* would: no
        link on the way, and *path* is not a link that is followed as a source."""
        if not is_within(path, folder):
            return False
        if path == folder:
            return True
        recorded = self.link_note(folder) if self._link(folder) else None
        if recorded is not None and not recorded.followed:
            return False  # recorded as the link: its walk lists nothing
        on_the_way = folder
        for part in path[len(folder.rstrip("/")) + 1:].split("/")[:-1]:
            on_the_way = os.path.join(on_the_way, part)
            if self._link(on_the_way):
                return False
        note = self.link_note(path) if self._link(path) else None
        return note is None or not note.followed

    def _link(self, path: str) -> bool:
        # cached: `{home}/**` finds every path of a home, each checked against its folders
        if path not in self._is_link:
            self._is_link[path] = os.path.islink(path)
        return self._is_link[path]


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
    """Every concrete path the profile names on this machine, every pattern that found nothing,
    and every lookup the system refused.

    Matches are sorted; a path found twice, or inside another found folder, is captured once.
    """
    result = Resolution(os_name)
    refused: list[Unreachable] = []
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
            matches = _matches(expanded)
            result.missing.extend(Missing(target.name, pattern, link, reason)
                                  for link, reason in matches.links)
            if not matches.paths and not matches.refused and not matches.links:
                result.missing.append(Missing(target.name, pattern, expanded,
                                              "no match" if _has_wildcard(expanded)
                                              else "not found"))
            result.found.extend(Found(target.name, pattern, m, matches.followed)
                                for m in matches.paths)
            refused.extend(Unreachable(target.name, pattern, path, problem)
                           for path, problem in matches.refused)
    chosen: list[str] = []
    for path in sorted({f.path for f in result.found}, key=lambda p: (len(p), p)):
        if not any(result._reached_by(path, folder) for folder in chosen):
            chosen.append(path)
    order = {f.path: i for i, f in reversed(list(enumerate(result.found)))}
    result.sources = sorted(chosen, key=lambda p: order[p])
    # A refusal inside a source is met again by the capture's own walk, which records it there.
    seen: set[str] = set()
    for item in refused:
        if item.path not in seen and not any(is_within(item.path, folder) for folder in chosen):
            seen.add(item.path)
            result.unreachable.append(item)
    return result


@dataclass
class _Matches:
    paths: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (path, problem)
    followed: str = "/"  # the pattern's folders before its first wildcard (Found.followed)
    links: list[tuple[str, str]] = field(default_factory=list)  # (link, why not followed)

    def may_follow(self, path: str) -> bool:
        """Whether a link at *path* may be followed: it is one of the pattern's named folders
        (or what it names in full), none of them reached through another user's link."""
        return is_within(self.followed, path)

    def note_link(self, path: str) -> None:
        stranger = _stranger(path)
        self.links.append((path, LINK_NOT_FOLLOWED if stranger is None
                           else stranger + ": not followed"))


def _stranger(link: str) -> str | None:
    """Why the link *link* is not followed if another user made it, or a link in its target."""
    owner = link_owner(link)
    if owner is not None:
        return LINK_BY_STRANGER.format(uid=owner)
    if not resolves_through_trusted_links(link):
        return LINK_THROUGH_STRANGER
    return None


def _matches(pattern: str) -> _Matches:
    """The paths *pattern* (absolute, '/'-separated, maybe a glob) names, and every lookup on the
    way that failed for a reason other than absence.

    glob.glob would do the matching, but it treats every error as "no such file": a home folder
    that may not be searched would silently look empty.
    """
    found = _Matches()
    # "." and ".." are taken by name, as capture takes its sources (os.path.abspath): matched
    # through a link instead, "Documents/../l*" would find names that capture cannot reach.
    # That may leave no wildcard at all ("{home}/*/.." is {home}).
    normalized = os.path.normpath(pattern)
    if normalized.startswith("//"):  # POSIX keeps a leading "//" ({home} = "/"): one root here
        normalized = "/" + normalized.lstrip("/")
    if not _has_wildcard(normalized):
        path = _unescaped(normalized)
        found.followed = trusted_part(path)
        if found.followed != path and found.followed != os.path.dirname(path):
            # another user's link among the folders on the way: capture does not go through it
            found.note_link(_next_part(found.followed, path))
        elif _lookup(path, found, must_be_folder=False, follow=True):
            found.paths.append(path)
        return found
    parts = [p for p in normalized.split("/") if p]
    first = next(index for index, part in enumerate(parts) if _has_wildcard(part))
    # Up to the first wildcard, the bases are folders the pattern names, and a link among them
    # is followed (unless another user made it); past it, they are what the wildcards matched,
    # and no link among them is: someone else's link (/home/*/.local → /root/.local) must not
    # take the capture there.
    found.followed = trusted_part("/" + "/".join(_unescaped(part) for part in parts[:first]))
    bases = ["/"]
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        bases = [path for base in bases for path in _step(base, part, last, found)]
    found.paths = sorted(set(bases))
    return found


def _next_part(folder: str, path: str) -> str:
    """The path one component deeper than *folder* on the way to *path* (below it)."""
    rest = path[len(folder.rstrip("/")) + 1:]
    return os.path.join(folder, rest.split("/", 1)[0])


def _step(base: str, part: str, last: bool, found: _Matches) -> Iterator[str]:
    """The paths one pattern component leads to from the folder *base* (folders only, unless
    it is the *last* component), with glob's rules: ``*`` and ``?`` skip names starting with
    '.' unless the component starts with one, ``**`` is any number of folders. A link is
    followed only among the pattern's named folders (found.may_follow)."""
    if part == "**":
        yield base
        yield from _below(base, last, found, found.may_follow(base))
    elif _has_wildcard(part):
        # base may be the named folder itself, after a "**" that matched no folder
        for name, is_folder, is_link in _listing(base, found,
                                                 follow_folder=found.may_follow(base)):
            hidden = name.startswith(".") and not part.startswith(".")
            if hidden or not fnmatch.fnmatchcase(name, part):
                continue
            if last or is_folder:
                yield os.path.join(base, name)
            elif is_link:
                found.note_link(os.path.join(base, name))
    else:
        path = os.path.join(base, _unescaped(part))
        if _lookup(path, found, must_be_folder=not last, follow=found.may_follow(path)):
            yield path


def _below(folder: str, everything: bool, found: _Matches, named: bool) -> Iterator[str]:
    """What lies below *folder* for ``**``: its folders (and with *everything* its files too),
    at any depth, hidden names left out. Links to folders are not followed: no cycles."""
    for name, is_folder, _ in _listing(folder, found, follow_folder=named):
        if name.startswith("."):
            continue
        path = os.path.join(folder, name)
        if is_folder or everything:
            yield path
        if is_folder:
            yield from _below(path, everything, found, named=False)


def _listing(folder: str, found: _Matches, follow_folder: bool
             ) -> list[tuple[str, bool, bool]]:
    """(name, is a folder (not following links), is a link) for each entry of *folder*; a
    refusal is noted in *found*. The folder itself is followed if it is a link only when
    *follow_folder* (one the pattern names: ~/Documents may be a link the user made). Access
    times are kept: this runs before the capture, on the user's own folders."""
    try:
        with scan_directory(folder, follow=follow_folder) as entries:
            return sorted((e.name, _is_folder(e), e.is_symlink()) for e in entries)
    except OSError as exc:
        if not follow_folder and os.path.islink(folder):
            found.note_link(folder)  # the named folder is a link capture will not follow
            return []
        if isinstance(exc, _ABSENT):
            return []
        found.refused.append((folder, f"could not list the folder {folder}: {_reason(exc)}"))
        return []


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _lookup(path: str, found: _Matches, must_be_folder: bool, follow: bool) -> bool:
    """Whether *path* exists (a folder, when *must_be_folder*: a link to one only if *follow*);
    a refusal is noted in *found*."""
    try:
        info = os.stat(path) if must_be_folder and follow else os.lstat(path)
        if must_be_folder and stat.S_ISLNK(info.st_mode):
            found.note_link(path)
            return False
    except _ABSENT:
        return False
    except OSError as exc:
        found.refused.append((path, f"could not reach {path}: {_reason(exc)}"))
        return False
    return not must_be_folder or stat.S_ISDIR(info.st_mode)


def _has_wildcard(pattern: str) -> bool:
    """Whether *pattern* matches more than one name: escaped glob characters do not count."""
    return glob.has_magic(_ESCAPED.sub("", pattern))


def _unescaped(part: str) -> str:
    return _ESCAPED.sub(r"\1", part)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
