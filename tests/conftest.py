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


def stale_atimes(*folders: str | os.PathLike[str]) -> dict[str, int]:
    """Give *folders* an access time older than their last change (so that listing them by path
    updates it, with relatime as with strictatime) and return it, to compare afterwards.

    Fails when listing a folder does not update its access time here at all (a noatime mount):
    then a test of keeping access times could not fail, and proves nothing.
    """
    probe = os.path.join(os.fspath(folders[0]), ".atime-probe")
    os.mkdir(probe)
    os.utime(probe, ns=(1_000_000_000, os.stat(probe).st_mtime_ns))
    os.listdir(probe)
    updates = os.stat(probe).st_atime_ns != 1_000_000_000
    os.rmdir(probe)
    if not updates:
        skip_or_fail("listing a folder does not update its access time on this file system")
    stale = {}
    for folder in folders:
        os.utime(folder, ns=(1_000_000_000, os.stat(folder).st_mtime_ns))
        stale[os.fspath(folder)] = 1_000_000_000
    return stale


def atimes(*folders: str | os.PathLike[str]) -> dict[str, int]:
    return {os.fspath(folder): os.stat(folder).st_atime_ns for folder in folders}
