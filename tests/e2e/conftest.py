"""Fixtures for end-to-end tests: a realistic evidence tree, keys, and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)


def run_cli(*args: object, env: dict[str, str] | None = None, stdin: str | None = None,
            cwd: Path | None = None) -> Run:
    """Run the real command (python -m evidencekit) without a terminal, as a script would."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "evidencekit", *map(str, args)],
                          capture_output=True, text=True, env=full_env, cwd=cwd,
                          input=stdin if stdin is not None else "", timeout=300)
    return Run(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated config folder, so no test touches the real ~/.config."""
    config = tmp_path / "config"
    config.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.delenv("EVIDENCEKIT_PASSPHRASE", raising=False)
    return config


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """A signing key (OpenSSH) and an age identity, generated for this test only."""
    folder = tmp_path / "keys"
    folder.mkdir()
    signer = SigningKey.generate("examiner@test")
    signer.save(folder / "signer")
    identity = age.X25519Identity.generate()
    (folder / "identity.txt").write_text(f"# test identity\n{identity}\n")
    (folder / "recipient.txt").write_text(f"{identity.recipient()}\n")
    return {"signer": folder / "signer", "signer_pub": folder / "signer.pub",
            "identity": folder / "identity.txt", "recipient": folder / "recipient.txt"}


def make_tree(root: Path, big: int = 50 * 1024 * 1024) -> Path:
    """The realistic tree the core issue asks for."""
    src = root / "evidence"
    (src / "mail" / "inbox").mkdir(parents=True)
    (src / "empty-folder").mkdir()
    (src / "mail" / "inbox" / "scam.eml").write_bytes(b"From: a@b\n\nPay now\n")
    (src / "empty.txt").write_bytes(b"")
    (src / "Überweisung €.txt").write_text("unicode name\n", encoding="utf-8")
    (src / "line\nbreak.txt").write_text("newline in name\n")
    (src / "100% sure.txt").write_text("percent\n")
    with open(os.fsencode(src) + b"/latin1-\xe9t\xe9.txt", "wb") as f:
        f.write(b"not utf-8 name\n")
    os.symlink("mail/inbox/scam.eml", src / "link-to-scam")
    os.symlink("/etc/passwd", src / "link-outside")
    os.mkfifo(src / "a-fifo")
    with open(src / "big.bin", "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(big >> 20):
            f.write(block)
        f.write(b"tail")
    return src
