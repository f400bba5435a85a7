"""Without a terminal nothing ever prompts: every command that may want a secret (or a
confirmation) exits with code 2 naming the flag or variable to use, at once.

Real processes (python -m evidencekit) with stdin on /dev/null, or really closed (``<&-``: file
descriptor 0 not open at all, so sys.stdin is None), and a new session, so there is no
controlling terminal either (getpass could otherwise open /dev/tty).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from evidencekit.cli import secrets
from evidencekit.crypto.keys import SigningKey

TIMEOUT = 60


def _close_stdin() -> None:
    os.close(0)  # in the child, before exec: like `exec <&-` in a shell


STDIN: dict[str, dict[str, Any]] = {
    "/dev/null": {"stdin": subprocess.DEVNULL},
    "closed": {"preexec_fn": _close_stdin},
}


@pytest.mark.parametrize("stdin", sorted(STDIN))
def test_every_secret_is_asked_for_by_name_never_prompted(tmp_path: Path, user, keys, tree,
                                                          bundle, passphrase_bundle, stdin):
    protected = keys["protected"]
    protected_age_key = tmp_path / "protected_ssh_identity"
    SigningKey.generate("p").save(protected_age_key, b"secret")
    out = tmp_path / "out"
    cases: dict[str, tuple[list[object], tuple[str, ...]]] = {
        "capture -p": (["capture", tree, "-p", "-o", out / "a.evidence"],
                       ("--passphrase-file", "EVIDENCEKIT_PASSPHRASE")),
        "capture, protected signing key": (
            ["capture", tree, "-R", keys["recipient"], "--sign-key", protected,
             "-o", out / "b.evidence"],
            ("--sign-key-passphrase-file", "EVIDENCEKIT_KEY_PASSPHRASE")),
        "capture without sources (no guided session)": (["capture"], ("nothing to capture",)),
        "key generate --ask-passphrase": (["key", "generate", "-o", out / "k",
                                           "--ask-passphrase"],
                                          ("--passphrase-file", "EVIDENCEKIT_KEY_PASSPHRASE")),
        "verify -p": (["verify", passphrase_bundle, "-p"],
                      ("--passphrase-file", "EVIDENCEKIT_PASSPHRASE")),
        "verify, protected identity": (["verify", bundle, "-i", protected_age_key],
                                       ("--passphrase-file", "EVIDENCEKIT_KEY_PASSPHRASE")),
        "verify --record, protected signing key": (
            ["verify", bundle, "--record", "--sign-key", protected],
            ("--sign-key-passphrase-file", "EVIDENCEKIT_KEY_PASSPHRASE")),
        "extract a passphrase bundle": (["extract", passphrase_bundle, "-o", out / "x"],
                                        ("--passphrase-file", "EVIDENCEKIT_PASSPHRASE")),
        # the signing key is given: it is loaded before the bundle is opened
        "reseal a passphrase bundle": (["reseal", passphrase_bundle, "-r",
                                        keys["recipient_line"], "--sign-key", keys["signer"],
                                        "-o", out / "r.evidence"],
                                       ("--passphrase-file", "EVIDENCEKIT_PASSPHRASE")),
        "custody add, protected signing key": (
            ["custody", "add", bundle, "--action", "received", "--from", "Bob", "--sign-key",
             protected],
            ("--sign-key-passphrase-file", "EVIDENCEKIT_KEY_PASSPHRASE")),
        "note without --yes": (["note", bundle, "--text", "x", "--sign-key", keys["signer"]],
                               ("--yes",)),
        "report on a passphrase bundle": (["report", passphrase_bundle, "-o", out / "r.html"],
                                          ("--passphrase-file", "EVIDENCEKIT_PASSPHRASE")),
    }
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCEKIT_")}
    started = time.monotonic()
    running = {
        name: subprocess.Popen([sys.executable, "-m", "evidencekit", *map(str, args)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True, **STDIN[stdin])
        for name, (args, _) in cases.items()}
    for name, process in running.items():
        _, stderr = process.communicate(timeout=TIMEOUT)
        assert process.returncode == 2, f"{name} (stdin {stdin}): exit {process.returncode}\n" \
            f"{stderr}"
        for word in cases[name][1]:
            assert word in stderr, f"{name}: {word!r} not named in\n{stderr}"
        assert "Passphrase for" not in stderr and "[y/N]" not in stderr, name
    assert time.monotonic() - started < TIMEOUT
    assert not any(out.iterdir()), "nothing may be written"


def test_a_missing_stream_is_no_terminal(monkeypatch: pytest.MonkeyPatch):
    """sys.stdin or sys.stderr is None when its descriptor was closed before start."""
    monkeypatch.setattr("sys.stdin", None)
    assert secrets.interactive() is False
    monkeypatch.undo()
    monkeypatch.setattr("sys.stderr", None)
    assert secrets.interactive() is False
