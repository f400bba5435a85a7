"""Shared test helpers.

Interop tests need real tools (age, ssh-keygen, tar, sha256sum, bagit), hostile tests root-only
tricks (mknod, mount, chattr, setpriv). Locally a missing one skips the test; CI sets
EVIDENCEKIT_REQUIRE_TOOLS=1 so that it fails instead (:func:`skip_or_fail`).
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def skip_or_fail(message: str) -> NoReturn:
    """A test that cannot run here: skip it locally, fail it in CI (EVIDENCEKIT_REQUIRE_TOOLS=1),
    so that no case of the suite is lost there without anyone noticing."""
    if os.environ.get("EVIDENCEKIT_REQUIRE_TOOLS") == "1":
        pytest.fail(message + " (EVIDENCEKIT_REQUIRE_TOOLS=1: CI must run every test)")
    pytest.skip(message)


def require_tool(name: str) -> str:
    """Return the path of an external tool, or skip (locally) / fail (CI) when it is missing."""
    path = shutil.which(name)
    if path is None:
        skip_or_fail(f"external tool {name!r} is not installed")
    return path


def require_env_dir(variable: str) -> str:
    """Return a directory named by an environment variable, or skip (locally) / fail (CI)."""
    value = os.environ.get(variable)
    if not value or not os.path.isdir(value):
        skip_or_fail(f"{variable} is not set to a directory")
    return value


def stale_atimes(*paths: str | os.PathLike[str]) -> dict[str, int]:
    """Give *paths* (folders or files) an access time older than their last change (so that
    listing a folder or reading a file updates it, with relatime as with strictatime) and
    return it, to compare afterwards with ``atimes``.

    Fails when that does not update the access time here at all (a noatime mount): then a
    test of keeping access times could not fail, and proves nothing.
    """
    first = os.fspath(paths[0])
    probe = os.path.join(first if os.path.isdir(first) else os.path.dirname(first),
                         ".atime-probe")
    with open(probe, "w") as f:
        f.write("x")
    os.utime(probe, ns=(1_000_000_000, os.stat(probe).st_mtime_ns))
    with open(probe) as f:
        f.read()
    updates = os.stat(probe).st_atime_ns != 1_000_000_000
    os.unlink(probe)
    if not updates:
        skip_or_fail("reading does not update access times on this file system")
    stale = {}
    for path in paths:
        os.utime(path, ns=(1_000_000_000, os.stat(path).st_mtime_ns))
        stale[os.fspath(path)] = 1_000_000_000
    return stale


def atimes(*paths: str | os.PathLike[str]) -> dict[str, int]:
    return {os.fspath(path): os.stat(path).st_atime_ns for path in paths}
