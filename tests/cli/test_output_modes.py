"""Every file evidencekit writes that holds case details is private (0600, a folder 0700)
whatever the umask: the bundle, a receipt, a report, an export, a local store copy, an extracted
folder, a private key. Under the usual umask 022 the receipt was 0644 (readable by every user)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import run_cli


@pytest.fixture
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_output_is_private_under_umask_022(tmp_path: Path, keys: dict[str, Path],
                                                 home: Path, tree: Path,
                                                 usual_umask: None) -> None:
    bundle = tmp_path / "case.evidence"
    sign = ("--sign-key", keys["signer"])
    opened = ("-i", keys["identity"])
    steps = {
        bundle: ("capture", tree, "--case", "MODES-1", "-R", keys["recipient"], *sign, "-o",
                 bundle),
        tmp_path / "receipt.txt": ("receipt", bundle, "-o", tmp_path / "receipt.txt"),
        tmp_path / "report.html": ("report", bundle, *opened, "-o", tmp_path / "report.html"),
        tmp_path / "files.xml": ("export", bundle, *opened, "--format", "dfxml", "-o",
                                 tmp_path / "files.xml"),
        tmp_path / "resealed.evidence": ("reseal", bundle, *opened, "-R", keys["recipient"],
                                         *sign, "-o", tmp_path / "resealed.evidence"),
        tmp_path / "opened": ("extract", bundle, *opened, "-o", tmp_path / "opened"),
        tmp_path / "new-key": ("key", "generate", "-o", tmp_path / "new-key"),
    }
    for output, command in steps.items():
        done = run_cli(*command)
        assert done.code == 0, (command[0], done.stderr)
        expected = 0o700 if output.is_dir() else 0o600
        assert _mode(output) == expected, (command[0], oct(_mode(output)))
    assert _mode(tmp_path / "new-key.pub") == 0o644  # a public key is for giving away
    copied = run_cli("store", "put", bundle, tmp_path / "copy.evidence", *sign)
    assert copied.code == 0, copied.stderr
    assert _mode(tmp_path / "copy.evidence") == 0o400  # a read-only copy, still private
