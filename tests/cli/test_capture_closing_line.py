"""The line a capture ends with names the command that checks the bundle's files too, not only
its seal: 'evidencekit verify BUNDLE' alone cannot decrypt a passphrase bundle (nor one made
for a key), and said nothing of it."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.support.cli import invoke
from tests.support.keys import BUNDLE_PASSPHRASE, make_keys


def advised(stdout: str) -> list[str]:
    """The command the closing line advises, as words (the bundle's path has no spaces)."""
    [line] = [line for line in stdout.splitlines() if line.startswith("Keep this bundle")]
    command = line.split(" with: ", 1)[1].split(" (", 1)[0]
    return shlex.split(command)


@pytest.mark.parametrize("protection", ["passphrase", "key"])
def test_the_closing_line_names_the_command_that_checks_every_file(
        tmp_path: Path, protection: str) -> None:
    """Run as the closing line says, the command decrypts the bundle and checks its file."""
    keys = make_keys(tmp_path)
    (tmp_path / "note.txt").write_text("evidence\n")
    bundle = tmp_path / "b.evidence"
    protect = (["--passphrase-file", keys["passphrase"]] if protection == "passphrase" else
               ["-R", keys["recipient"]])
    done = invoke("capture", tmp_path / "note.txt", *protect, "--sign-key", keys["signer"],
                  "-o", bundle)
    assert done.code == 0, done.stderr
    words = advised(done.stdout)
    env: dict[str, str] = {}
    if protection == "passphrase":
        assert words == ["evidencekit", "verify", "-p", str(bundle)]
        env = {"EVIDENCEKIT_PASSPHRASE": BUNDLE_PASSPHRASE}
    else:
        assert words == ["evidencekit", "verify", "-i", "KEYFILE", str(bundle)]
        assert "KEYFILE: the private key of one of its recipients" in done.stdout
        words[words.index("KEYFILE")] = str(keys["identity"])
    checked = invoke(*words[1:], "--json", env=env)
    assert checked.code == 0 and checked.json()["decrypted"] is True, checked.stderr
    assert checked.json()["files_checked"] == 1
