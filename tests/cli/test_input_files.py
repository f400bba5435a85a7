"""Files handed to capture (keys, recipients, a profile) may lie in a folder being captured."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.cli import invoke
from tests.support.tools import atimes, stale_atimes


def test_keys_recipients_and_profile_are_read_keeping_their_access_times(tmp_path: Path, keys):
    downloads = tmp_path / "Downloads"
    downloads.mkdir()
    recipient = downloads / "investigator.txt"
    shutil.copy(keys["recipient"], recipient)
    signer = downloads / "signer"
    shutil.copy(keys["signer"], signer)
    profile = downloads / "triage.yaml"
    profile.write_text(f"description: t\ntargets:\n  - name: d\n    linux: ['{downloads}']\n")
    (downloads / "note.txt").write_text("evidence")
    inputs = [recipient, signer, profile]
    before = stale_atimes(*inputs)
    out = tmp_path / "case.evidence"
    result = invoke("capture", "--profile", profile, "--profile-os", "linux", "-R", recipient,
                    "--sign-key", signer, "-o", out, "--json")
    assert result.code == 0, result.stderr
    assert atimes(*inputs) == before


def test_the_settings_file_is_read_keeping_its_access_time(tmp_path: Path, keys):
    """~/.config/evidencekit/config.yaml lies in the home folder, which may be captured."""
    config = tmp_path / "home" / ".config"
    (config / "evidencekit").mkdir(parents=True)
    settings = config / "evidencekit" / "config.yaml"
    settings.write_text("examiner: Jane Settings\n")
    (tmp_path / "evidence.txt").write_text("x")
    before = stale_atimes(settings)
    result = invoke("capture", tmp_path / "evidence.txt", "-R", keys["recipient"], "--sign-key",
                    keys["signer"], "-o", tmp_path / "s.evidence", "--json",
                    env={"XDG_CONFIG_HOME": str(config)})
    assert result.code == 0, result.stderr
    assert "Jane Settings" in result.stdout  # it was read
    assert atimes(settings) == before
