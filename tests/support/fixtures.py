"""The fixtures every test folder shares (tests/conftest.py makes them visible everywhere):
an isolated user, key files, a small evidence tree and a bundle made from it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from evidencekit.capture import CaptureRequest, CaseInfo, capture
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from tests.support.cli import invoke
from tests.support.env import isolate, isolate_user, isolated
from tests.support.keys import BUNDLE_PASSPHRASE, KeyFiles, make_keys


@pytest.fixture
def user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh user: HOME and XDG_CONFIG_HOME in tmp_path, no EVIDENCEKIT_* variables, cwd there."""
    return isolate_user(monkeypatch, tmp_path)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated config folder (returned), so no test touches the real ~/.config."""
    return isolate(monkeypatch, tmp_path / "config")


@pytest.fixture(scope="module")
def isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """:func:`home` for a whole module (``pytestmark = pytest.mark.usefixtures(...)``)."""
    with isolated(tmp_path_factory.mktemp("config")):
        yield


@pytest.fixture
def keys(tmp_path: Path) -> KeyFiles:
    """Key files made for this test only (tests.support.keys.make_keys)."""
    return make_keys(tmp_path)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "evidence"
    (src / "mail").mkdir(parents=True)
    (src / "mail" / "scam.eml").write_bytes(b"From: a@b\n\nPay now\n")
    (src / "notes.txt").write_text("what happened\n")
    return src


@pytest.fixture
def bundle(tmp_path: Path, user: Path, keys: KeyFiles, tree: Path) -> Path:
    out = tmp_path / "case.evidence"
    result = invoke("capture", tree, "--case", "CASE-1", "-R", keys["recipient"],
                    "--sign-key", keys["signer"], "-o", out, "--json")
    assert result.code == 0, result.stderr
    return out


@pytest.fixture
def passphrase_bundle(tmp_path: Path, tree: Path) -> Path:
    """A bundle protected by a passphrase (low scrypt work factor: fast)."""
    out = tmp_path / "pass.evidence"
    capture(CaptureRequest([os.fsencode(tree)], out, CaseInfo("CASE-P", "tester"),
                           [age.ScryptRecipient(BUNDLE_PASSPHRASE.encode(), work_factor=10)],
                           SigningKey.generate("t@test"), command_line=["test"]))
    return out
