"""A test's own user: no test reads or writes the real ~/.config, nor inherits a passphrase or
any other EVIDENCEKIT_* setting from the shell that started it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

KEPT = ("EVIDENCEKIT_REQUIRE_TOOLS",)  # CI's own switch, not a setting of evidencekit


def isolate(patch: pytest.MonkeyPatch, config: Path) -> Path:
    """Settings in *config* (made if missing, XDG_CONFIG_HOME), no EVIDENCEKIT_* variables."""
    config.mkdir(parents=True, exist_ok=True)
    for name in list(os.environ):
        if name.startswith("EVIDENCEKIT_") and name not in KEPT:
            patch.delenv(name)
    patch.setenv("XDG_CONFIG_HOME", str(config))
    return config


def isolate_user(patch: pytest.MonkeyPatch, folder: Path) -> Path:
    """:func:`isolate`, and a fresh home: HOME (*folder*/home) and XDG_DATA_HOME in *folder*,
    the current folder *folder*. Returns the home folder."""
    home = folder / "home"
    home.mkdir()
    isolate(patch, folder / "config")
    patch.setenv("HOME", str(home))
    patch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    patch.chdir(folder)
    return home


def bare_home(patch: pytest.MonkeyPatch, home: Path) -> Path:
    """HOME an empty *home* (made here) with no XDG_CONFIG/CACHE/DATA_HOME, so that a program
    that writes under the user's home (Chromium: .config/chromium, .cache, .local/share, even
    with --user-data-dir) writes only there, for the test to check it left nothing."""
    home.mkdir()
    patch.setenv("HOME", str(home))
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        patch.delenv(name, raising=False)
    return home


@contextmanager
def isolated(config: Path) -> Iterator[pytest.MonkeyPatch]:
    """:func:`isolate` for longer than one test (a module-scoped fixture)."""
    with pytest.MonkeyPatch.context() as patch:
        isolate(patch, config)
        yield patch
