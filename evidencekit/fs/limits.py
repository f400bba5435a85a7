"""What a destination folder's file system can hold, known before anything is written.

FAT32 (most small USB sticks) cannot hold a file of 4 GiB or more. Finding that out after an
hour of capture, when the write fails, would waste the victim's time and leave them with nothing:
capture and reseal ask first (docs/decisions/atomic-publish.md).
"""

from __future__ import annotations

import os
from pathlib import Path

from evidencekit.text import exact_size

FAT32_LARGEST = (1 << 32) - 1
# File system types as /proc/self/mountinfo names them: the kernel's own FAT drivers and FUSE
# ones (fusefat). exFAT (kernel "exfat", FUSE "fuseblk") holds files of any size.
_FAT_TYPES = frozenset({"vfat", "msdos", "umsdos", "fat", "fuse.fusefat", "fusefat"})


# File systems without Unix modes: each file shows the modes the mount gives all (exfat-fuse:
# 0777; the kernel's vfat and exFAT drivers: its umask), whatever was asked at creation. FUSE's
# "fuseblk" is exfat-fuse or ntfs-3g (without its "permissions" option), both of that kind.
_NO_MODE_TYPES = _FAT_TYPES | {"exfat", "fuseblk", "ntfs", "ntfs3"}


def file_system_type(folder: Path) -> str | None:
    """The type of the file system *folder* lies on ("ext4", "vfat", "fuse.fusefat" …), from
    /proc/self/mountinfo (Linux); None where that cannot be told."""
    try:
        return _type_of_device(os.stat(folder).st_dev)
    except OSError:
        return None


def on_fuse(fd: int) -> bool:
    """Whether the open file *fd* lies on a FUSE file system (exfat-fuse, fusefat, sshfs …).
    Some of those do not keep a file's O_DIRECT writes and its cached ones apart: a bundle
    written both ways came out garbled on fusefat."""
    try:
        kind = _type_of_device(os.fstat(fd).st_dev)
    except OSError:
        return False
    return kind is not None and (kind in ("fuse", "fuseblk") or kind.startswith("fuse."))


def _type_of_device(device: int) -> str | None:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    wanted = f"{os.major(device)}:{os.minor(device)}"
    found = None
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or fields[2] != wanted or "-" not in fields[6:]:
            continue
        found = fields[fields.index("-", 6) + 1]  # the last mount of that device wins
    return found


def keeps_modes(folder: Path) -> bool:
    """Whether *folder*'s file system keeps the modes files are made with (False on FAT and
    exFAT, the file systems of USB sticks and SD cards); True where that cannot be told."""
    return file_system_type(folder) not in _NO_MODE_TYPES


def largest_file(folder: Path) -> int | None:
    """The largest file *folder*'s file system can hold, when it has a limit we know of."""
    kind = file_system_type(folder)
    return FAT32_LARGEST if kind in _FAT_TYPES else None


def describe_limit(size: int) -> str:
    """A destination's limit in words, never rounded ('4 GiB'): evidencekit.text.exact_size."""
    return exact_size(size)
