"""Real removable-media file systems for tests: exFAT through exfat-fuse and FAT32 through
fusefat, each on an image file attached to a loop device (CI runs as root).

:func:`mounted` yields the mount point and always unmounts and detaches, whatever the test did.
A missing tool or no root skips locally and fails under EVIDENCEKIT_REQUIRE_TOOLS=1.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.tools import require_tool, skip_or_fail

KINDS = ("exfat", "fat32")
_TOOLS = {"exfat": ("mkfs.exfat", "mount.exfat-fuse"), "fat32": ("mkfs.vfat", "fusefat")}


def _run(*args: object) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def _make_file_system(kind: str, image: Path) -> None:
    if kind == "exfat":
        _run("mkfs.exfat", image)
    else:
        _run("mkfs.vfat", "-F", "32", image)


def _mount(kind: str, device: str, where: Path) -> None:
    if kind == "exfat":
        _run("mount.exfat-fuse", device, where)
    else:
        _run("fusefat", "-o", "rw+", device, where)


def _unmount(where: Path) -> None:
    for attempt in range(20):  # busy for a moment after a killed writer
        done = subprocess.run(["fusermount", "-u", str(where)], capture_output=True)
        if done.returncode == 0 or not os.path.ismount(where):
            return
        time.sleep(0.1 * (attempt + 1))
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


@contextmanager
def mounted(kind: str, folder: Path, size_mib: int = 96) -> Iterator[Path]:
    """A fresh *kind* ("exfat" or "fat32") file system of *size_mib* MiB mounted in *folder*."""
    for tool in (*_TOOLS[kind], "losetup", "fusermount"):
        require_tool(tool)
    if os.geteuid() != 0:
        skip_or_fail("mounting a loop device needs root")
    image = folder / f"{kind}.img"
    with open(image, "wb") as f:
        f.truncate(size_mib << 20)
    _make_file_system(kind, image)
    device = _run("losetup", "--find", "--show", image)
    where = folder / f"{kind}-stick"
    where.mkdir()
    try:
        _mount(kind, device, where)
        try:
            yield where
        finally:
            _unmount(where)
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True)


@contextmanager
def tmpfs(folder: Path, size_mib: int = 64) -> Iterator[Path]:
    """A fresh tmpfs (memory) file system of *size_mib* MiB mounted at *folder*/ram."""
    require_tool("mount")
    if os.geteuid() != 0:
        skip_or_fail("mounting a tmpfs needs root")
    where = folder / "ram"
    where.mkdir()
    _run("mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", where)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], capture_output=True)
        if os.path.ismount(where):
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
