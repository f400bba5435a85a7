"""Staging folders of extract (evidencekit.fs.staging): one left by a run killed outright is
recognised by its free lock and removed by the next run for the same output; nothing else is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from evidencekit.fs.staging import LOCK_NAME, StagingFolder, remove_stale


def left_by_a_killed_run(output: Path) -> Path:
    """A staging folder whose process died with SIGKILL while it held it (with a read-only
    folder inside, as extract leaves when it restored modes)."""
    program = ("import os, signal, sys\nfrom pathlib import Path\n"
               "from evidencekit.fs.staging import StagingFolder\n"
               "folder = StagingFolder(Path(sys.argv[1]))\n"
               "(folder.path / 'bag' / 'data').mkdir(parents=True)\n"
               "(folder.path / 'bag' / 'data' / 'secret.txt').write_text('decrypted')\n"
               "os.chmod(folder.path / 'bag' / 'data', 0o500)\n"
               "print(folder.path, flush=True)\n"
               "os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", program, str(output)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == -9, done.stderr
    return Path(done.stdout.strip())


def test_a_folder_left_by_a_killed_run_is_removed(tmp_path: Path) -> None:
    output = tmp_path / "opened"
    left = left_by_a_killed_run(output)
    assert left.is_dir() and left.name.startswith(".opened.") and left.name.endswith(".partial")
    found = remove_stale(output)
    assert found.removed == [left] and found.unknown == []
    assert list(tmp_path.iterdir()) == []


def test_a_folder_in_use_is_left_alone(tmp_path: Path) -> None:
    output = tmp_path / "opened"
    working = StagingFolder(output)  # another extract to the same folder, at work
    try:
        found = remove_stale(output)
        assert (found.removed, found.unknown) == ([], [])
        assert (working.path / LOCK_NAME).exists()
    finally:
        working.remove()
    assert list(tmp_path.iterdir()) == []


def test_a_folder_without_a_lock_is_named_not_removed(tmp_path: Path) -> None:
    output = tmp_path / "opened"
    old = tmp_path / ".opened.ab3_x9zq.partial"  # as an evidencekit without the lock made it
    (old / "bag").mkdir(parents=True)
    old.chmod(0o700)
    found = remove_stale(output)
    assert (found.removed, found.unknown) == ([], [old])
    assert (old / "bag").is_dir()


def test_only_this_outputs_folders_made_by_this_user_are_considered(tmp_path: Path) -> None:
    output = tmp_path / "opened"
    others = [tmp_path / ".opened.b.ab3_x9zq.partial",  # the output opened.b's
              tmp_path / ".opened.ab3_x9zq.partial-e01",  # not a staging folder's name
              tmp_path / ".opened.ab3_x9zq.partial"]  # mode 0755: not one evidencekit made
    for path in others:
        path.mkdir(mode=0o755)
        path.chmod(0o755)
    os.symlink(others[2], tmp_path / ".opened.zzzzzzzz.partial")
    found = remove_stale(output)
    assert (found.removed, found.unknown) == ([], [])
    assert all(path.exists() for path in others)
