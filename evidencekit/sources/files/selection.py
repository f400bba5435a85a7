"""Which files inside the sources have their content captured: include/exclude globs, size limits.

A :class:`Filters` never hides anything: a file it turns away is still recorded in the manifest
(name, size, times, owner…) with the reason in its ``error`` field ("skipped: …") and counted as
skipped. Folders, links and special files are always recorded; filters decide only about the
content of regular files.

Glob patterns are matched against the path relative to the source (``/``-separated; for a source
that is itself a file, its name):

- ``*`` matches within one path segment, ``?`` one character, ``[abc]`` one of a set;
- ``**`` matches any number of whole segments, including none (``**/Cache/**``);
- a pattern without ``/`` matches the name of the file or of any folder above it
  (``Cache`` excludes everything in any folder named Cache);
- a pattern with ``/`` is anchored at the source: it matches the whole relative path or one of the
  folders on it (``Default/Cache`` excludes that folder's content).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache

EXCLUDED = "skipped: excluded by profile rule"
TOO_LARGE = "skipped: larger than the profile's limit"


class GlobError(ValueError):
    """A glob pattern that cannot be matched (e.g. the range ``[z-a]``); ``str()`` says why."""


@dataclass(frozen=True)
class Filters:
    """Which files of the sources to read. Empty ``include`` means every file."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_file_size: int | None = None
    max_total_bytes: int | None = None
    case_sensitive: bool = True

    def skip_reason(self, relative: bytes, size: int, captured_bytes: int) -> str | None:
        """Why the file at *relative* (inside its source) must not be read, or None to read it.

        *captured_bytes* is what the capture holds so far (for ``max_total_bytes``).
        """
        path = os.fsdecode(relative).strip("/")
        for pattern in self.exclude:
            if self._matches(pattern, path):
                return f"{EXCLUDED} (exclude {pattern!r})"
        if self.include and not any(self._matches(p, path) for p in self.include):
            return f"{EXCLUDED} (matches no include pattern)"
        if self.max_file_size is not None and size > self.max_file_size:
            return f"{TOO_LARGE} ({size} bytes; max_file_size is {self.max_file_size} bytes)"
        if self.max_total_bytes is not None and captured_bytes + size > self.max_total_bytes:
            return (f"{TOO_LARGE} ({size} bytes would take the capture past max_total of "
                    f"{self.max_total_bytes} bytes)")
        return None

    def _matches(self, pattern: str, path: str) -> bool:
        regex = compile_glob(pattern, self.case_sensitive)
        parts = path.split("/")
        if "/" not in pattern.strip("/"):
            # A bare name: the file's name, or the name of a folder above it.
            return any(regex.fullmatch(part) for part in parts)
        # Anchored: the whole path, or a folder on it.
        return any(regex.fullmatch("/".join(parts[:n])) for n in range(len(parts), 0, -1))


def relative_to_source(entry_path: bytes) -> bytes:
    """The walk's entry path (which starts with the source's own name) relative to the source.

    For the source itself (a file given directly), its own name.
    """
    head, sep, rest = entry_path.partition(b"/")
    return rest if sep else head


@lru_cache(maxsize=512)
def compile_glob(pattern: str, case_sensitive: bool = True) -> re.Pattern[str]:
    """A regular expression for a glob pattern (see the module docstring for the rules).

    Raise GlobError for a pattern that has none (profiles are checked with this when read, so
    that a bad pattern is an error in the file, not a crash in the middle of a capture).
    """
    pattern = pattern.strip("/")
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")  # any number of whole segments, including none
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "]") else i + 1)
            if end < 0:
                out.append(re.escape(c))
                i += 1
                continue
            body = pattern[i + 1:end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    try:
        return re.compile("".join(out), 0 if case_sensitive else re.IGNORECASE)
    except re.error as exc:
        raise GlobError(_glob_problem(exc)) from None


def _glob_problem(exc: re.error) -> str:
    # re's wording ("bad character range z-a at position 5") points into the regular expression,
    # which the user never wrote: keep what is wrong, drop where it is in the translation.
    return re.sub(r" at position \d+$", "", exc.msg)
