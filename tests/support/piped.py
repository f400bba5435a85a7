"""Capturing piped data in end-to-end tests, as a playbook runs it (``capture … --json``), and
reading a captured member back with the standard tools alone (:func:`by_hand`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.tools import require_tool


def capture(tmp_path: Path, keys: dict[str, Path], *args: object, stdin: Any = None,
            feed: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """``evidencekit capture … --json`` to tmp_path/out.evidence, as a playbook runs it."""
    command = [sys.executable, "-m", "evidencekit", "capture", "--case", "PIPE-1",
               "-R", keys["recipient"], "--sign-key", keys["signer"],
               "-o", tmp_path / "out.evidence", "--json", *args]
    return subprocess.run([str(a) for a in command], input=feed, stdin=stdin,
                          capture_output=True, timeout=300)


def evidencekit(*args: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "evidencekit", *map(str, args)],
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=300)


def by_hand(bundle: Path, identity: Path, folder: Path, member: str,
            compressed: bool = False) -> str:
    """The sha256sum of *member* in the payload, found with the standard tools alone (with
    `zstd -d` for a *compressed* payload: format version 4)."""
    for tool in ("tar", "age", "sha256sum", "sh", *(("zstd",) if compressed else ())):
        require_tool(tool)
    folder.mkdir()
    unpack = "zstd -d -c | tar -xf - -C \"$3\"" if compressed else "tar -xf - -C \"$3\""
    subprocess.run(["sh", "-c", f'tar -xOf "$1" payload.age | age -d -i "$2" | {unpack}',
                    "sh", bundle, identity, folder], check=True, timeout=300)
    out = subprocess.run(["sha256sum", "--", f"bag/{member}"], cwd=folder, check=True,
                         capture_output=True, timeout=300).stdout.decode()
    return out.split()[0]


def manifest(folder: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((folder / "bag/evidencekit/manifest.json").read_bytes())
    return document
