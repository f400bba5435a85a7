"""Include/exclude globs and size limits (evidencekit.sources.files.selection)."""

from __future__ import annotations

import pytest

from evidencekit.sources.files.selection import (
    EXCLUDED,
    TOO_LARGE,
    Filters,
    GlobError,
    compile_glob,
    relative_to_source,
)


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("*.txt", "a.txt", True),
    ("*.txt", "dir/a.txt", True),  # a bare name matches at any depth
    ("Cache", "Default/Cache/data_0", True),  # ... and excludes a whole folder
    ("Cache", "Default/NotCache/x", False),
    ("Default/Cache", "Default/Cache/data_0", True),  # anchored
    ("Default/Cache", "Other/Default/Cache/x", False),
    ("**/Cache", "a/b/Cache/x", True),
    ("**/Service Worker/CacheStorage", "Default/Service Worker/CacheStorage/1/x", True),
    ("places.sqlite*", "abc.default/places.sqlite-wal", True),
    ("History", "Default/History", True),
    ("History", "Default/History-journal", False),
    ("a?c", "abc", True),
    ("a?c", "a/c", False),
    ("[!x]y", "ay", True),
    ("[!x]y", "xy", False),
    ("logs/**", "logs/2026/01/app.log", True),
    ("*.[ch]", "src/main.c", True),
])
def test_glob_rules(pattern, path, matches):
    filters = Filters(exclude=(pattern,))
    reason = filters.skip_reason(path.encode(), 1, 0)
    assert (reason is not None) == matches, (pattern, path, reason)


@pytest.mark.parametrize(("pattern", "problem"), [
    ("[z-a]", "bad character range z-a"),
    ("logs/[z-a]*.log", "bad character range z-a"),
    ("a[^]", "unterminated character set"),
])
def test_a_pattern_that_cannot_match_is_a_glob_error(pattern, problem):
    """Not re.error from deep inside a capture: GlobError, saying what is wrong in the glob."""
    with pytest.raises(GlobError) as caught:
        compile_glob(pattern)
    assert str(caught.value) == problem


def test_case_insensitive_for_windows_and_macos():
    assert compile_glob("History", case_sensitive=False).fullmatch("HISTORY")
    assert not compile_glob("History").fullmatch("HISTORY")


def test_reasons_name_the_rule_and_the_limit():
    filters = Filters(include=("*.db",), exclude=("cache",), max_file_size=100, max_total_bytes=250)
    assert filters.skip_reason(b"x/cache/a.db", 1, 0) == f"{EXCLUDED} (exclude 'cache')"
    assert filters.skip_reason(b"notes.txt", 1, 0) == f"{EXCLUDED} (matches no include pattern)"
    too_big = filters.skip_reason(b"a.db", 101, 0)
    assert too_big is not None and too_big.startswith(TOO_LARGE) and "max_file_size" in too_big
    assert filters.skip_reason(b"a.db", 100, 150) is None
    over_total = filters.skip_reason(b"b.db", 100, 151)
    assert over_total is not None and over_total.startswith(TOO_LARGE) and "max_total" in over_total
    assert EXCLUDED.startswith("skipped: ") and TOO_LARGE.startswith("skipped: ")


def test_relative_to_source():
    assert relative_to_source(b"google-chrome/Default/History") == b"Default/History"
    assert relative_to_source(b".bash_history") == b".bash_history"
