"""Times before 1970 with a fraction of a second, as GNU tar reads the payload's pax ``mtime``
records (docs/FORMAT.md §4.2): -1.5 s was written ``-2.500000000``, which tar reads as -2.5 s,
so a by-hand ``tar -x`` dated the file a second early while evidencekit called it right."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.keys import KeyFiles
from tests.support.tools import require_tool

pytestmark = pytest.mark.interop

TIMES_NS = {  # the last is the folder, dated after its files are made
    "old/minus-1.5s.txt": -1_500_000_000,
    "old/minus-1ns.txt": -1,
    "old/minus-2s.txt": -2_000_000_000,
    "old/1960.txt": -315_619_199_750_000_000,  # 1960-01-01T00:00:00.25Z
    "old": -250_000_000,
}


def dated_tree(root: Path) -> Path:
    src = root / "evidence"
    (src / "old").mkdir(parents=True)
    for name, mtime in TIMES_NS.items():
        if not (src / name).exists():
            (src / name).write_text(f"dated {mtime} ns\n")
        os.utime(src / name, ns=(mtime, mtime))
    return src


def test_gnu_tar_extracts_times_before_1970_as_captured(tmp_path: Path, home: Path,
                                                       keys: KeyFiles) -> None:
    tar, age = require_tool("tar"), require_tool("age")
    bundle = tmp_path / "old.evidence"
    done = run_cli("capture", dated_tree(tmp_path), "-R", keys["recipient"], "--sign-key",
                   keys["signer"], "--case", "PRE-1970", "-o", bundle)
    assert done.code == 0, done.stderr
    payload = subprocess.run([tar, "-xOf", bundle, "payload.age"], capture_output=True,
                             check=True).stdout
    plain = subprocess.run([age, "-d", "-i", keys["identity"]], input=payload,
                           capture_output=True, check=True).stdout
    assert b"mtime=-1.500000000\n" in plain and b"mtime=-0.250000000\n" in plain
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([tar, "-xf", "-"], input=plain, cwd=out, capture_output=True, check=True)
    found = {name: os.stat(out / "bag" / "data" / "evidence" / name).st_mtime_ns
             for name in TIMES_NS}
    assert found == TIMES_NS
    verified = run_cli("verify", bundle, "-i", keys["identity"])
    assert verified.code == 0, verified.stdout + verified.stderr
