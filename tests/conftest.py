"""Shared test helpers.

Interop tests need real tools (age, ssh-keygen, tar, sha256sum, bagit). Locally a missing tool
skips the test; CI sets EVIDENCEKIT_REQUIRE_TOOLS=1 so that a missing tool fails instead.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str) -> str:
    """Return the path of an external tool, or skip (locally) / fail (CI) when it is missing."""
    path = shutil.which(name)
    if path is None:
        message = f"external tool {name!r} is not installed"
        if os.environ.get("EVIDENCEKIT_REQUIRE_TOOLS") == "1":
            pytest.fail(message + " (EVIDENCEKIT_REQUIRE_TOOLS=1: CI must run every interop test)")
        pytest.skip(message)
    return path


def require_env_dir(variable: str) -> str:
    """Return a directory named by an environment variable, or skip (locally) / fail (CI)."""
    value = os.environ.get(variable)
    if not value or not os.path.isdir(value):
        message = f"{variable} is not set to a directory"
        if os.environ.get("EVIDENCEKIT_REQUIRE_TOOLS") == "1":
            pytest.fail(message + " (EVIDENCEKIT_REQUIRE_TOOLS=1)")
        pytest.skip(message)
    return value
