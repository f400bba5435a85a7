"""Staging folders of extract (evidencekit.fs.staging): one left by a run killed outright is
recognised by its free lock and removed by the next run for the same output; nothing else is."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from evidencekit.fs.staging import LOCK_NAME, StagingFolder, StaleStaging, remove_stale, remove_tree
from tests.support.mounts import KINDS, mounted
from tests.support.tools import require_tool, skip_or_fail


def left_by_a_killed_run(output: Path) -> Path:
    """A staging folder whose process died with SIGKILL while it held it (with a read-only
    folder inside, as extract leaves when it restored modes)."""
    program = ("import os, signal, sys\nfrom pathlib import Path\n"
               "from evidencekit.fs.staging import StagingFolder\n"
               "folder = StagingFolder(Path(sys.argv[1]))\n"
               "(folder.path / 'bag' / 'data').mkdir(parents=True)\n"
               "(folder.path / 'bag' / 'data' / 'secret.txt').write_text('decrypted')\n"
               "try:\n    os.chmod(folder.path / 'bag' / 'data', 0o500)\n"
               "except OSError:\n    pass  # fusefat has no chmod\n"
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


def mount_bind(source: Path, target: Path) -> None:
    if os.geteuid() != 0:
        skip_or_fail("a bind mount needs root")
    require_tool("mount")
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True)


def test_a_file_system_mounted_inside_a_left_folder_is_not_emptied(tmp_path: Path) -> None:
    # someone looking into what a killed extract left mounted something inside it: the next
    # extract removed the folder's files, and those of the mounted file system with them (and
    # made its folders 0700), then said nothing about the folder it could not remove
    output = tmp_path / "opened"
    left = left_by_a_killed_run(output)
    precious = tmp_path / "precious"
    (precious / "inner").mkdir(parents=True)
    (precious / "inner" / "keep.txt").write_text("not evidencekit's")
    precious.chmod(0o755)
    (left / "bag" / "data").chmod(0o700)
    point = left / "bag" / "data" / "mnt"
    point.mkdir()
    mount_bind(precious, point)
    try:
        found = remove_stale(output)
    finally:
        subprocess.run(["umount", str(point)], check=True)
    assert (precious / "inner" / "keep.txt").read_text() == "not evidencekit's"
    assert stat.S_IMODE(precious.stat().st_mode) == 0o755
    assert found.removed == [] and [path for path, _ in found.kept] == [left]
    assert f"{point} inside it is a mount point" in found.kept[0][1]
    assert (left / LOCK_NAME).exists()  # left whole: the next run says it again
    assert remove_stale(output).removed == [left]  # once unmounted, it goes


def test_a_left_folder_that_is_itself_a_mount_point_is_not_emptied(tmp_path: Path) -> None:
    output = tmp_path / "opened"
    (tmp_path / "other").mkdir()
    elsewhere = left_by_a_killed_run(tmp_path / "other" / "x")  # a folder like it, not it
    target = tmp_path / ".opened.ab3_x9zq.partial"
    target.mkdir(mode=0o700)
    mount_bind(elsewhere, target)  # the same file system: same device number
    try:
        found = remove_stale(output)
        assert found.removed == [] and [path for path, _ in found.kept] == [target]
    finally:
        subprocess.run(["umount", str(target)], check=True)
    assert (elsewhere / LOCK_NAME).exists()


def test_a_left_folder_that_could_not_be_removed_is_named(tmp_path: Path) -> None:
    # a file the owner cannot delete (immutable): the folder stayed and nothing was said
    output = tmp_path / "opened"
    left = left_by_a_killed_run(output)
    stuck = left / "bag" / "data" / "secret.txt"
    chattr = require_tool("chattr")
    if subprocess.run([chattr, "+i", str(stuck)], capture_output=True).returncode != 0:
        skip_or_fail(f"this file system does not take chattr +i: {tmp_path}")
    try:
        found = remove_stale(output)
    finally:
        subprocess.run([chattr, "-i", str(stuck)], check=True)
    assert found.removed == [] and [path for path, _ in found.kept] == [left]
    assert f"{stuck} (and what else is left) could not be removed" in found.kept[0][1]


def test_a_folder_being_made_is_not_taken_for_stale(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # the lock file was made, then locked: a run looking for stale folders in between found
    # it free and removed the folder of an extract about to start writing into it
    import evidencekit.fs.staging as staging

    output = tmp_path / "opened"
    real_flock = fcntl.flock
    looked: list[StaleStaging] = []

    def another_run_looks_first(fd: int, operation: int) -> None:
        if not looked:
            looked.append(remove_stale(output))
        real_flock(fd, operation)

    monkeypatch.setattr(staging.fcntl, "flock", another_run_looks_first)
    working = StagingFolder(output)
    monkeypatch.undo()
    try:
        assert looked[0].removed == [] and working.path.is_dir()
        assert remove_stale(output).removed == []  # and locked, once made
    finally:
        working.remove()


def test_removing_never_follows_a_link_put_in_the_folders_place(tmp_path: Path) -> None:
    # (a folder others may write to: the staging folder renamed away and a link put in its
    # place between the check and the removal) walk followed the link and made 0700 every
    # folder it points to
    target = tmp_path / "someone-elses"
    (target / "shared").mkdir(parents=True, mode=0o755)
    (target / "shared").chmod(0o755)
    link = tmp_path / ".opened.ab3_x9zq.partial"
    link.symlink_to(target)
    remove_tree(link)
    assert stat.S_IMODE((target / "shared").stat().st_mode) == 0o755
    assert link.is_symlink() and (target / "shared").is_dir()


def test_a_fifo_in_place_of_the_lock_does_not_hang_the_run(tmp_path: Path) -> None:
    output = tmp_path / "opened"
    folder = tmp_path / ".opened.ab3_x9zq.partial"
    folder.mkdir(mode=0o700)
    os.mkfifo(folder / LOCK_NAME)
    done = subprocess.run([sys.executable, "-c", "import sys\nfrom pathlib import Path\n"
                           "from evidencekit.fs.staging import remove_stale\n"
                           "print(remove_stale(Path(sys.argv[1])))", str(output)],
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    assert folder.is_dir()


@pytest.mark.parametrize("kind", KINDS)
def test_a_folder_left_on_a_usb_stick_is_removed(tmp_path: Path, kind: str) -> None:
    # exFAT shows every folder 0777 (no Unix modes): the folder a killed extract left there was
    # taken for "not one evidencekit made", neither removed nor named, its decrypted files left
    # on the stick for good
    with mounted(kind, tmp_path) as stick:
        output = stick / "opened"
        left = left_by_a_killed_run(output)
        found = remove_stale(output)
        assert found.removed == [left] and (found.unknown, found.kept) == ([], [])
        assert not left.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_a_folder_removed_on_a_usb_stick_leaves_nothing(tmp_path: Path, kind: str) -> None:
    # the lock file, removed while open, became .fuse_hiddenNNNN on exfat-fuse: the folder could
    # not be removed, and every extract to a stick left an empty .OUT.XXXXXXXX.partial behind
    with mounted(kind, tmp_path) as stick:
        working = StagingFolder(stick / "opened")
        (working.path / "bag" / "data").mkdir(parents=True)
        (working.path / "bag" / "data" / "secret.txt").write_text("decrypted")
        working.remove()
        assert os.listdir(stick) == []


def test_a_folder_without_a_lock_holding_a_mount_point_is_not_said_to_rm_rf(tmp_path: Path
                                                                            ) -> None:
    # 'delete it: rm -rf FOLDER' was advised, and rm -rf deletes the mounted file system's files
    output = tmp_path / "opened"
    old = tmp_path / ".opened.ab3_x9zq.partial"  # as an evidencekit without the lock made it
    (old / "bag").mkdir(parents=True)
    old.chmod(0o700)
    precious = tmp_path / "precious"
    precious.mkdir()
    mount_bind(precious, old / "bag")
    try:
        found = remove_stale(output)
    finally:
        subprocess.run(["umount", str(old / "bag")], check=True)
    assert found.unknown == [] and [path for path, _ in found.kept] == [old]
    assert "inside it is a mount point" in found.kept[0][1]


def test_an_output_folder_with_a_long_name_is_staged_and_cleaned(tmp_path: Path) -> None:
    """A folder name of 250 bytes is allowed (NAME_MAX 255); its staging folder's name adds 18
    more, so the name's part of it is cut: extract into such a folder failed ('File name too
    long'), and the folder of a killed run must still be found by the next."""
    output = tmp_path / ("é" * 60 + "o" * 130)
    assert len(os.fsencode(output.name)) == 250
    folder = StagingFolder(output)
    assert len(os.fsencode(folder.path.name)) <= 255
    folder.remove()
    left = left_by_a_killed_run(output)
    assert remove_stale(output).removed == [left]
    assert list(tmp_path.iterdir()) == []
