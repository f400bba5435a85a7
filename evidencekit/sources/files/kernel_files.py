"""Files whose size says nothing about their content: the kernel makes it as they are read.

Every file in /proc reports a size of 0, every attribute in /sys 4096 (a page), whatever they hold;
debugfs, tracefs, cgroup and configfs do the same. Stored at the size they report, they would be
stored empty, or padded with zeros that were never there. Capture reads such a file to its end
instead (at most `READ_TO_END_LIMIT` bytes, held in memory because a tar header names the size
before the content) and stores what was read (FORMAT.md §4.3, ``reported_size``).

Which files: any that reports a size of 0 (on every system: an empty file costs one read that
returns nothing), and any on one of `KERNEL_FILE_SYSTEMS` (Linux, from /proc/self/mountinfo).
"""

from __future__ import annotations

import functools
import os

READ_TO_END_LIMIT = 16 << 20  # /proc/kallsyms, the largest common one, is about 6 MiB
KERNEL_FILE_SYSTEMS = frozenset({
    b"proc", b"sysfs", b"debugfs", b"tracefs", b"securityfs", b"cgroup", b"cgroup2",
    b"configfs", b"binfmt_misc", b"nfsd", b"rpc_pipefs"})


def read_to_end(info: os.stat_result) -> bool:
    """Whether the file with this ``fstat`` must be read to its end rather than to its size."""
    if info.st_size == 0:
        return True
    return info.st_size <= READ_TO_END_LIMIT and info.st_dev in kernel_made_devices()


@functools.cache
def kernel_made_devices() -> frozenset[int]:
    """The device numbers (``st_dev``) of the mounted `KERNEL_FILE_SYSTEMS`; none where
    /proc/self/mountinfo cannot be read (another system, a locked-down container). Read once:
    such mounts are made at boot."""
    try:
        with open("/proc/self/mountinfo", "rb") as table:
            lines = table.read().splitlines()
    except OSError:
        return frozenset()
    return frozenset(kernel_made(lines))


def kernel_made(lines: list[bytes]) -> set[int]:
    found = set()
    for line in lines:
        # "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw": the optional fields
        # end at "-", the file system type follows it
        fields = line.split(b" ")
        try:
            fs_type = fields[fields.index(b"-", 6) + 1]
        except (ValueError, IndexError):
            continue
        major, _, minor = fields[2].partition(b":")
        if fs_type in KERNEL_FILE_SYSTEMS and major.isdigit() and minor.isdigit():
            found.add(os.makedev(int(major), int(minor)))
    return found
