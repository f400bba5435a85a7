"""capture's device options (--hash, --retries, --no-write-block) without --device are refused
before anything is read, as the mailbox and remote options are: 'capture DIR --hash md5' ended
with exit 0 and no MD5 anywhere, unsaid."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import invoke
from tests.support.keys import KeyFiles


@pytest.mark.parametrize("extra", [("--hash", "md5"), ("--retries", "2"), ("--no-write-block",)])
def test_device_options_without_a_device_are_refused(extra: tuple[str, ...], tmp_path: Path,
                                                     user: Path, keys: KeyFiles,
                                                     tree: Path) -> None:
    out = tmp_path / "files.evidence"
    result = invoke("capture", tree, *extra, "-R", keys["recipient"], "--sign-key",
                    keys["signer"], "-o", out, "--json")
    assert result.code == 2, result.stdout + result.stderr
    message = result.json()["error"]["message"]
    assert message == f"{extra[0]} is for a device image: it needs --device DEVICE|IMAGE"
    assert not out.exists()
