"""A whole block device (a USB stick, an SD card, a disk) or a raw disk image file, imaged into
the bundle (``capture --device /dev/sdb`` or ``--device disk.img``).

Before reading, a block device or image file is refused if one of its file systems is mounted
read-write (an image file through a loop device) or a program has it open for writing, and a
block device and its partitions are set read-only in the kernel (BLKROSET, as ``blockdev --setro`` does)
unless ``--no-write-block``; its write counters (/sys/block/X/stat) are read before and after.
Its identity comes from ioctls and sysfs (udev is often absent), each value with where it came
from, "unknown" when absent.

The image is read by :mod:`evidencekit.sources.sectors` (O_DIRECT, bad sectors split down to
the logical sector and retried, zeros only where nothing read). The source stores, under
``data/``:

- ``NAME`` the raw image (``sdb.raw`` for /dev/sdb; an image file keeps its name);
- ``NAME.mapfile`` a GNU ddrescue mapfile of what read (``+``), what did not (``-``) and what
  was still unread when the device vanished (``?``, ``*``, ``/``);
- ``NAME.windows`` the SHA-256 of every window of :data:`WINDOW` bytes (``offset size sha256``
  per line), so that ``verify --against`` can name the parts of a device that differ;
- ``NAME.device.json`` identity, write blocking, write counters, read summary, extra hashes
  (docs/schemas/device.schema.json).

The manifest's source record has ``kind: "device"`` and ``details`` with the counts (FORMAT.md
§4.3).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import stat
import struct
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

from evidencekit import __version__, canonical
from evidencekit.clock import Clock, rfc3339, system_clock
from evidencekit.errors import UsageError
from evidencekit.sources.base import BytesContent, Content, Skip, SourceRecord, StreamEntry
from evidencekit.sources.files.walk import Entry, escape_name
from evidencekit.sources.sectors import (
    BAD,
    DEFAULT_RETRIES,
    NON_SCRAPED,
    NON_TRIMMED,
    NOT_READ,
    READ,
    UNTRIED,
    MapfileText,
    SectorReader,
    printable,
)

KIND = "device"
WINDOW = 16 << 20  # bytes per hash window: 4,096 lines for 64 GiB, a change found to 16 MiB
EXTRA_HASHES = ("md5", "sha1")
UNKNOWN = "unknown"
DOCUMENTS = (".mapfile", ".windows", ".device.json")
# The manifest's types, known without libmagic (whose worker process, some 23 MB, is then not
# started): what libmagic says of these documents, and of a raw image of a disk, partitioned
# or not, whatever its file systems (their kind is in NAME.device.json's identity instead).
IMAGE_MIME = "application/octet-stream"
DOCUMENT_MIMES = {".mapfile": "text/plain", ".windows": "text/plain",
                  ".device.json": "application/json"}
# ranges of each kind listed in NAME.device.json: a disk with millions of bad ranges must not
# make a document of hundreds of megabytes, built in memory; the .mapfile lists every one
LISTED = 10_000

BLKROSET = 0x125D
BLKROGET = 0x125E
BLKSSZGET = 0x1268
BLKPBSZGET = 0x127B
BLKGETSIZE64 = 0x80081272
_NOATIME = getattr(os, "O_NOATIME", 0)
_DIRECT = getattr(os, "O_DIRECT", 0)


def parse_hashes(text: str) -> tuple[str, ...]:
    """``--hash md5,sha1``: the extra hashes asked for (SHA-256 is always made)."""
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    wrong = [n for n in names if n not in EXTRA_HASHES and n != "sha256"]
    if wrong:
        raise UsageError(f"--hash: unknown hash {wrong[0]!r}",
                         hint="choose among md5, sha1 (SHA-256 is always made), e.g. --hash "
                         "md5,sha1")
    return tuple(n for n in names if n != "sha256")


def _field(value: Any, origin: str | None) -> dict[str, Any]:
    if value is None or value == "":
        return {"value": UNKNOWN, "origin": None}
    return {"value": value, "origin": origin}


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip() or None
    except OSError:
        return None


def ioctl_int(fd: int, request: int, fmt: str) -> int | None:
    try:
        raw = fcntl.ioctl(fd, request, bytes(struct.calcsize(fmt)))
    except OSError:
        return None
    value: int = struct.unpack(fmt, raw)[0]
    return value


class DeviceSource:
    """The device or image file at *given*, as a Source of one image and its three documents.

    Everything that can be refused is refused here, before the bundle is begun: not a block
    device or regular file, unreadable, a file system of it mounted read-write."""

    def __init__(self, given: str, *, write_block: bool = True, retries: int = DEFAULT_RETRIES,
                 hashes: Sequence[str] = (), clock: Clock = system_clock,
                 mountinfo: Path = Path("/proc/self/mountinfo"),
                 swaps: Path = Path("/proc/swaps"),
                 status: Callable[[str], None] | None = None,
                 spool_folder: Path | None = None, bundle_beside: bool = True) -> None:
        if retries < 0:
            raise UsageError("--retries must be 0 or more")
        self._given = given
        self._retries = retries
        self._hashes = tuple(hashes)
        self._clock = clock
        self._status = status  # for the progress bar: "2 bad sectors" as soon as known
        # where the rest of the image waits, encrypted, while a bad area is read past and come
        # back to (evidencekit.sources.rescue): the bundle's folder from the CLI
        self._spool_folder = spool_folder or Path(tempfile.gettempdir())
        self._bundle_beside = bundle_beside  # False: the bundle goes to a store, not this disk
        self._path = os.path.realpath(given)
        try:
            info = os.stat(self._path)
        except OSError as exc:
            raise UsageError(f"--device {given}: {exc.strerror}",
                             hint="name a block device (e.g. /dev/sdb) or a raw image file"
                             ) from None
        self._block = stat.S_ISBLK(info.st_mode)
        if not self._block and not stat.S_ISREG(info.st_mode):
            raise UsageError(f"--device {given}: neither a block device nor a file",
                             hint="name a block device (e.g. /dev/sdb) or a raw image file")
        self._sys = _sys_block(info) if self._block else None
        # where sysfs does not show it (not mounted, a container), its absence says nothing
        self._sys_shown = self._sys is not None and self._sys.exists()
        self._mounts = _refuse_mounted_read_write(given, info, self._sys, mountinfo, swaps)
        self._fd, self._direct = _open(self._path, given, direct=self._block)
        self._info = os.fstat(self._fd)
        # the file whose change changes the image: the image file, or a loop device's backing
        # file (written to directly, not through the device, the device's counters stay still)
        self._watched = (self._path, self._info) if not self._block else _loop_file(self._sys)
        self.identity = self._identify()
        self.size: int = self.identity["size"]["value"]
        self.sector: int = self.identity["logical_sector_size"]["value"]
        self.write_block = self._block_writes(write_block)
        self._index = 0
        raw_name = os.fsencode(os.path.basename(self._path))  # any bytes: not always UTF-8
        self._name = escape_name(raw_name + b".raw" if self._block else raw_name)
        self._reader: SectorReader | None = None
        self._content: DeviceContent | None = None
        self._counters_before = _write_counters(self._sys)
        self._counters_after: dict[str, int] | None = None
        self._started = ""
        self._finished = ""

    # --- Source ---------------------------------------------------------------------------
    def place(self, first_index: int, taken: set[str]) -> None:
        self._index = first_index
        base = self._name
        name = base
        number = 0
        while name in taken or any(name + suffix in taken for suffix in DOCUMENTS):
            number += 1
            name = f"{base}~{number}"  # as walk.unique_name names, for all four names at once
        self._name = name
        taken.update([name, *(name + suffix for suffix in DOCUMENTS)])

    def records(self) -> list[SourceRecord]:
        return [SourceRecord(self._index, os.fsencode(self._given), os.fsencode(self._path),
                             self._name, kind=KIND, details=self._details())]

    def estimate(self, skip: Skip) -> tuple[int, int | None]:
        return 1 + len(DOCUMENTS), self.size

    def required_bytes(self) -> int:
        return self.size

    def entries(self, skip: Skip) -> Iterator[Entry | StreamEntry]:
        self._reader = SectorReader(self._fd, self.size, self.sector, direct=self._direct,
                                    retries=self._retries, still_there=self._still_there,
                                    spool_folder=self._spool_folder,
                                    bundle_beside=self._bundle_beside)
        self._reader.tell = self._status
        self._content = DeviceContent(self._reader, self._hashes, self._watched, self._status,
                                      partial(_write_counters, self._sys) if self._sys else None)
        self._started = rfc3339(self._clock())
        try:
            yield StreamEntry(self._index, self._name.encode(), f"data/{self._name}",
                              self._content, mtime_ns=self._clock(), mime=IMAGE_MIME)
        finally:  # also when the capture stops here (Ctrl-C, a full disk)
            self._content.close()
            self._reader.close()
            os.close(self._fd)
        # The image is stored: what reading it taught follows, in documents of its own.
        self._content.finish()
        self._finished = rfc3339(self._clock())
        self._counters_after = _write_counters(self._sys)
        now = self._clock()
        documents: list[tuple[str, Content]] = [
            (".mapfile", self._mapfile()), (".windows", BytesContent(self._windows())),
            (".device.json", BytesContent(self._document()))]
        for suffix, content in documents:
            yield StreamEntry(self._index, (self._name + suffix).encode(),
                              f"data/{self._name}{suffix}", content, mtime_ns=now,
                              mime=DOCUMENT_MIMES[suffix])

    # --- what is learned -------------------------------------------------------------------
    def _details(self) -> dict[str, Any]:
        details: dict[str, Any] = {"size": self.size, "logical_sector_size": self.sector,
                                   "block_device": self._block, "window_size": WINDOW,
                                   "model": self.identity.get("model", _field(None, None))["value"],
                                   "serial": self.identity.get("serial",
                                                               _field(None, None))["value"]}
        if self._reader is not None and self._content is not None and self._content.done:
            found = self._reader.map
            details.update(bad_sectors=found.sectors(BAD, self.sector),
                           bad_bytes=found.count(BAD), first_bad_byte=found.first(BAD),
                           untried_bytes=found.count(UNTRIED),
                           non_trimmed_bytes=found.count(NON_TRIMMED),
                           non_scraped_bytes=found.count(NON_SCRAPED),
                           read_bytes=found.count(READ),
                           vanished=self._reader.vanished is not None)
        return details

    def _mapfile(self) -> MapfileText:
        assert self._reader is not None
        return self._reader.map.mapfile([
            f"Mapfile. Created by evidencekit {__version__} (GNU ddrescue mapfile format)",
            f"Command line: evidencekit capture --device {self._given}",
            f"Start time:   {self._started}",
            f"Current time: {self._finished}",
            "Finished" if self._reader.vanished is None else
            f"Interrupted: {self._reader.vanished.how}"], self._reader.phase,
            None if self._reader.vanished is None else self._reader.vanished.at)

    def _windows(self) -> bytes:
        assert self._content is not None
        lines = [f"# SHA-256 of each window of {WINDOW} bytes of {printable(self._name)} (the "
                 "last may be shorter), as stored (zeros where nothing read): offset size sha256"]
        lines += [f"{offset} {size} {digest}" for offset, size, digest in self._content.windows]
        return ("\n".join(lines) + "\n").encode("ascii")

    def _document(self) -> bytes:
        assert self._reader is not None and self._content is not None
        reader = self._reader
        document: dict[str, Any] = {
            "type": "evidencekit.device", "version": 1,
            # names as bytes may be any (the manifest's source record keeps them exactly)
            "given": escape_name(os.fsencode(self._given)),
            "path": escape_name(os.fsencode(self._path)), "image": f"data/{self._name}",
            "block_device": self._block,
            "identity": {**self.identity, "partition_table": self._content.partition_table},
            "write_block": self.write_block,
            # file systems of it mounted read-only when reading began (read-write is refused)
            "mounts": self._mounts,
            "write_counters": {"before": self._counters_before, "after": self._counters_after,
                               "origin": None if self._sys is None else
                               f"{self._sys}/stat"},
            "read": {"started": self._started, "finished": self._finished,
                     "o_direct": self._direct, "block_size": reader.block_size,
                     "retries": reader.retries, "failed_reads": reader.reads_failed,
                     "skip_ahead": reader.skip_ahead,
                     "bad_ranges": _listed(reader.map.ranges(BAD)),
                     "bad_range_count": reader.map.range_count(BAD),
                     "bad_bytes": reader.map.count(BAD),
                     "untried_ranges": _listed(reader.map.ranges(UNTRIED)),
                     "non_trimmed_ranges": _listed(reader.map.ranges(NON_TRIMMED)),
                     "non_scraped_ranges": _listed(reader.map.ranges(NON_SCRAPED)),
                     "ranges_listed_at_most": LISTED,
                     "vanished": None if reader.vanished is None else
                     {"at": reader.vanished.at, "how": reader.vanished.how}},
            "window_size": WINDOW,
            # SHA-256 of the whole image is the manifest entry's, sealed; these are beside it
            "extra_hashes": self._content.extra,
        }
        document["write_counters"]["unchanged"] = (
            None if self._counters_before is None or self._counters_after is None else
            all(self._counters_before[key] == self._counters_after[key]
                for key in ("writes_completed", "sectors_written")))
        return canonical.dumps(document)

    # --- before reading ---------------------------------------------------------------------
    def _identify(self) -> dict[str, Any]:
        fd, sys_dir = self._fd, self._sys
        if not self._block:
            return {"size": _field(self._info.st_size, "fstat"),
                    "logical_sector_size": _field(512, "assumed for an image file"),
                    "physical_sector_size": _field(None, None)}
        size = ioctl_int(fd, BLKGETSIZE64, "Q")
        identity: dict[str, Any] = {
            "size": _field(size, "ioctl BLKGETSIZE64"),
            "logical_sector_size": _field(ioctl_int(fd, BLKSSZGET, "i"), "ioctl BLKSSZGET"),
            "physical_sector_size": _field(ioctl_int(fd, BLKPBSZGET, "I"), "ioctl BLKPBSZGET"),
        }
        if identity["logical_sector_size"]["value"] == UNKNOWN:
            identity["logical_sector_size"] = _field(512, "assumed: BLKSSZGET failed")
        if size is None:
            raise UsageError(f"--device {self._given}: its size cannot be read (BLKGETSIZE64)")
        assert sys_dir is not None
        # a partition (/dev/sdb1) has no model or serial of its own: its disk's are given
        disk = sys_dir.parent if (sys_dir / "partition").exists() else sys_dir
        for name, places in _SYSFS_FIELDS.items():
            identity[name] = _field(None, None)
            for place in places:
                where = sys_dir if place in ("ro", "stat") else disk
                value = _read_text(where / place)
                if value is not None:
                    identity[name] = _field(value, f"{where}/{place}")
                    break
        identity["transport"] = _field(*_transport(sys_dir))
        identity["partitions"] = _field(_partitions(sys_dir), f"{sys_dir}/*/partition")
        identity["hpa_dco"] = _hpa_dco(self._path, identity["transport"]["value"])
        return identity

    def _block_writes(self, wanted: bool) -> dict[str, Any]:
        if not self._block:
            return {"done": False, "why": "an image file: opened read-only, nothing to block"}
        if not wanted:
            return {"done": False, "why": "--no-write-block"}
        assert self._sys is not None
        devices = [self._path] + [f"/dev/{p['name']}" for p in _partitions(self._sys)]
        # Every flag is read before any is set: once the disk is read-only the kernel reports
        # its partitions read-only too (BLKROGET), which would record them as read-only before.
        before = {path: _read_only_flag(path) for path in devices}
        results = [_set_read_only(path, before[path]) for path in devices]
        return {"done": all(r["read_only_after"] for r in results), "how": "ioctl BLKROSET",
                "devices": results}

    def _still_there(self) -> bool:
        return self._sys is None or not self._sys_shown or self._sys.exists()


_SYSFS_FIELDS = {
    "model": ("device/model",),
    "vendor": ("device/vendor",),
    "revision": ("device/rev", "device/firmware_rev"),
    "serial": ("device/serial", "serial"),
    "wwid": ("wwid", "device/wwid"),
    "removable": ("removable",),
    "kernel_read_only": ("ro",),
    "loop_backing_file": ("loop/backing_file",),
}


def _sys_block(info: os.stat_result) -> Path:
    """/sys/class/block/NAME of the device (a whole disk or a partition)."""
    link = Path(f"/sys/dev/block/{os.major(info.st_rdev)}:{os.minor(info.st_rdev)}")
    return Path(os.path.realpath(link))


def _transport(sys_dir: Path) -> tuple[str | None, str | None]:
    real = str(sys_dir)
    for marker, name in (("/usb", "usb"), ("/nvme", "nvme"), ("/mmc", "mmc"), ("/ata", "ata"),
                         ("/virtio", "virtio"), ("/devices/virtual/", "virtual")):
        if marker in real:
            return name, f"sysfs path {real}"
    return None, None


def _partitions(sys_dir: Path) -> list[dict[str, Any]]:
    """The partitions the kernel found: name, start and size in bytes (sysfs counts in 512-byte
    units whatever the sector size)."""
    found = []
    for child in sorted(sys_dir.iterdir()) if sys_dir.is_dir() else []:
        number = _read_text(child / "partition")
        if number is None:
            continue
        start, size = _read_text(child / "start"), _read_text(child / "size")
        found.append({"name": child.name, "number": int(number),
                      "start": int(start) * 512 if start else None,
                      "size": int(size) * 512 if size else None})
    return found


def _hpa_dco(path: str, transport: object) -> dict[str, Any]:
    """Host protected area and device configuration overlay, through hdparm on ATA disks only."""
    if transport != "ata":
        return {"checked": False, "why": "not checked: hdparm -N applies to ATA disks only"}
    hdparm = shutil.which("hdparm")
    if hdparm is None:
        return {"checked": False, "why": "not checked: hdparm is not installed"}
    said = {}
    for option in ("-N", "--dco-identify"):
        try:
            done = subprocess.run([hdparm, option, path], capture_output=True, text=True,
                                  timeout=30)
            said[option] = (done.stdout + done.stderr).strip()
        except (OSError, subprocess.SubprocessError) as exc:
            said[option] = f"failed: {exc}"
    return {"checked": True, "how": "hdparm -N, hdparm --dco-identify", "output": said}


def _read_only_flag(path: str) -> bool | None:
    """The kernel's read-only flag of the block device *path* (BLKROGET); None if unknown."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        flag = ioctl_int(fd, BLKROGET, "i")
    finally:
        os.close(fd)
    return None if flag is None else bool(flag)


def _set_read_only(path: str, before: bool | None) -> dict[str, Any]:
    result: dict[str, Any] = {"device": path}
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        return {**result, "read_only_before": before, "read_only_after": False,
                "error": f"could not open: {exc.strerror}"}
    try:
        result["read_only_before"] = before
        try:
            fcntl.ioctl(fd, BLKROSET, struct.pack("i", 1))
        except OSError as exc:
            result["error"] = f"BLKROSET refused: {exc.strerror}"
        result["read_only_after"] = bool(ioctl_int(fd, BLKROGET, "i"))
    finally:
        os.close(fd)
    return result


def _write_counters(sys_dir: Path | None) -> dict[str, int] | None:
    """From /sys/block/X/stat (Documentation/block/stat.rst): writes completed and sectors
    written; None for an image file or when unreadable."""
    if sys_dir is None:
        return None
    text = _read_text(sys_dir / "stat")
    if text is None:
        return None
    fields = text.split()
    return {"writes_completed": int(fields[4]), "sectors_written": int(fields[6]),
            "reads_completed": int(fields[0])}


def _refuse_mounted_read_write(given: str, info: os.stat_result, sys_dir: Path | None,
                               mountinfo: Path, swaps: Path) -> list[dict[str, str]]:
    """A file system mounted read-write on the device (or one of its partitions) writes to it;
    a read-only mount may too (journal replay), but that is the user's choice, recorded: the
    read-only mounts found are returned, for the device document.

    The same bytes can also be reached another way: an image file through a loop device over
    it, a loop device through another loop device over the same file. A read-write mount of
    any of them, or a program writing to any of them, is refused the same way."""
    names = {os.path.realpath(given)}
    numbers = {f"{os.major(info.st_rdev)}:{os.minor(info.st_rdev)}"} if sys_dir else set()
    if sys_dir is not None and sys_dir.is_dir():
        for child in sys_dir.iterdir():
            dev = _read_text(child / "dev")
            if dev and (child / "partition").exists():
                numbers.add(dev)
                names.add(f"/dev/{child.name}")
    if sys_dir is not None:
        for holder in _holders(sys_dir):  # LVM, dm-crypt, md RAID built on it
            dev = _read_text(holder / "dev")
            if dev:
                numbers.add(dev)
            names.add(f"/dev/{holder.name}")
    backing = _loop_backing(sys_dir) if sys_dir is not None else (info.st_dev, info.st_ino)
    if backing is not None:
        for loop, dev, file in _loops_over(backing):
            numbers.add(dev)
            names.update({f"/dev/{loop}", file})
    _refuse_swap(given, numbers, names, swaps)
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return []
    mounted = []
    for line in lines:
        # proc(5): ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS…] - FSTYPE SOURCE SUPER
        fields = line.split()
        after = fields[fields.index("-") + 1:] if "-" in fields else []
        if len(fields) < 6 or len(after) < 3:
            continue
        source = os.path.realpath(after[1]) if after[1].startswith("/") else None
        # a FUSE file system (ntfs-3g, exfat-fuse) has numbers of its own: its source names it
        if fields[2] not in numbers and source not in names:
            continue
        # read-write either in this mount's options or in the file system's own (SUPER): a
        # read-only bind mount of a file system mounted read-write is still written to (its
        # journal, ext4's lazy inode table initialisation), and can be made writable again
        if "rw" in fields[5].split(",") or "rw" in after[2].split(","):
            raise UsageError(f"--device {given}: a file system on it is mounted read-write at "
                             f"{fields[4]}; imaging it now would copy a moving target, and the "
                             "system may write to it",
                             hint=f"unmount it first (umount {fields[4]}), then capture again")
        mounted.append({"mountpoint": fields[4], "options": fields[5], "fstype": after[0],
                        "source": after[1], "super_options": after[2]})
    writer = _open_for_writing(names)
    if writer is not None:
        raise UsageError(f"--device {given}: {writer} has it open for writing (a FUSE file "
                         "system such as ntfs-3g or exfat-fuse mounted read-write shows only "
                         "this way); imaging it now would copy a moving target",
                         hint="unmount it or stop that program, then capture again")
    return mounted


def _holders(sys_dir: Path, depth: int = 0) -> Iterator[Path]:
    """The sysfs folders of the devices built on this one or its partitions (an LVM volume, a
    dm-crypt mapping, an md RAID array), and of those built on them: a file system mounted on
    any of them writes to this device."""
    if depth > 16 or not sys_dir.is_dir():
        return
    places = [sys_dir] + [c for c in sorted(sys_dir.iterdir()) if (c / "partition").exists()]
    for place in places:
        folder = place / "holders"
        for link in sorted(folder.iterdir()) if folder.is_dir() else []:
            holder = link.resolve()
            yield holder
            yield from _holders(holder, depth + 1)


def _refuse_swap(given: str, numbers: set[str], names: set[str], swaps: Path) -> None:
    """Swap space on it is written to at any moment, and setting it read-only would make the
    kernel's swapping fail (processes killed on a live server): refused like a read-write
    mount."""
    try:
        lines = swaps.read_text().splitlines()[1:]  # after the heading line
    except OSError:
        return
    for line in lines:
        # proc(5): Filename Type Size Used Priority (spaces in a name as \040)
        fields = line.split()
        if not fields:
            continue
        where = fields[0].replace("\\040", " ")
        try:
            info = os.stat(where)
            number = f"{os.major(info.st_rdev)}:{os.minor(info.st_rdev)}" \
                if stat.S_ISBLK(info.st_mode) else None
        except OSError:
            number = None
        if os.path.realpath(where) in names or number in numbers:
            raise UsageError(f"--device {given}: it is in use as swap space ({where}); imaging "
                             "it now would copy a moving target, and making it read-only would "
                             "make the system's swapping fail",
                             hint=f"stop using it first (swapoff {where}), then capture again")


def _loop_file(sys_dir: Path | None) -> tuple[str, os.stat_result] | None:
    """The file a loop device reads and how it is now; None for any other device."""
    path = _read_text(sys_dir / "loop" / "backing_file") if sys_dir is not None else None
    try:
        return None if path is None else (path, os.stat(path))
    except OSError:
        return None


def _loop_backing(sys_dir: Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file a loop device reads, None for any other device."""
    path = _read_text(sys_dir / "loop" / "backing_file")
    try:
        found = os.stat(path) if path is not None else None
    except OSError:
        return None
    return None if found is None else (found.st_dev, found.st_ino)


def _loops_over(backing: tuple[int, int]) -> Iterator[tuple[str, str, str]]:
    """(name, MAJ:MIN, backing file) of every loop device over the file *backing* names."""
    for loop in sorted(Path("/sys/block").glob("loop*")):
        dev = _read_text(loop / "dev")
        path = _read_text(loop / "loop" / "backing_file")
        if dev is not None and path is not None and _loop_backing(loop) == backing:
            yield loop.name, dev, os.path.realpath(path)


def _open_for_writing(names: set[str]) -> str | None:
    """The first other process that holds one of *names* open for writing (/proc/PID/fdinfo
    flags), as "NAME (process PID)"; None when none does or /proc cannot say."""
    for pid in (p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") not in names:
                    continue
                flags = Path(f"/proc/{pid}/fdinfo/{fd}").read_text().split("flags:")[1].split()[0]
            except (OSError, IndexError):
                continue
            if int(flags, 8) & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR):
                command = _read_text(Path(f"/proc/{pid}/comm")) or "a program"
                return f"{command} (process {pid})"
    return None


def _open(path: str, given: str, direct: bool) -> tuple[int, bool]:
    """Read-only, a device with O_DIRECT where the kernel takes it (a device's bad sector then
    fails alone, not with its readahead window), an image file through the page cache (it may
    be there already; its own disk's errors are the file system's) without updating its
    access time where allowed."""
    for flags, with_direct in ((os.O_RDONLY | _DIRECT | _NOATIME, True),
                               (os.O_RDONLY | _DIRECT, True),
                               (os.O_RDONLY | _NOATIME, False), (os.O_RDONLY, False)):
        if with_direct and not (direct and _DIRECT):
            continue
        try:
            return os.open(path, flags), with_direct
        except OSError as exc:
            last = exc
    raise UsageError(f"--device {given}: cannot be opened: {last.strerror}",
                     hint="imaging a device needs root (sudo)")


def _listed(ranges: Iterator[tuple[int, int]]) -> list[list[int]]:
    return [[position, size] for position, size in islice(ranges, LISTED)]


def partition_table(first: bytes, sector: int) -> dict[str, Any]:
    """The kind of partition table the image starts with: "gpt" (the signature "EFI PART" at
    the start of the second sector), "mbr" (0x55AA at byte 510), or "none found"."""
    origin = "the image's first bytes (0x55AA at byte 510; 'EFI PART' at the second sector)"
    if first[sector:sector + 8] == b"EFI PART" and len(first) >= sector + 8:
        return _field("gpt", origin)
    if first[510:512] == b"\x55\xaa":
        return _field("mbr", origin)
    return _field("none found", origin)


class DeviceContent:
    """The image as the pipeline reads it, hashed per window (and with --hash) on the way.

    The window hashes are a second SHA-256 over every byte (the pipeline makes the first, the
    image's): they are made on the thread that reads the device (sectors.Blocks), over each
    block as it is read, while the pipeline copies and hashes the blocks before it, so that
    imaging stays at the speed of one hash."""

    def __init__(self, reader: SectorReader, hashes: Sequence[str],
                 watched: tuple[str, os.stat_result] | None,
                 status: Callable[[str], None] | None = None,
                 counters: Callable[[], dict[str, int] | None] | None = None) -> None:
        self._reader = reader
        self._counters = counters  # the device's write counters now (None: an image file)
        self._counters_before = counters() if counters is not None else None
        self._status = status
        self._said = ""
        self._blocks = reader.blocks()
        self._blocks.on_block = self._hash_block
        self._extra = {name: hashlib.new(name) for name in hashes}
        self._window: Any = hashlib.sha256()
        self._window_start = 0
        self._watched = watched  # (path, stat before reading) of the file behind the image
        self.windows: list[tuple[int, int, str]] = []
        self.partition_table: dict[str, Any] = _field(None, None)
        self.done = False
        self.extra: dict[str, str] = {}

    @property
    def size(self) -> int:
        return self._reader.size

    def readinto(self, buffer: memoryview) -> int:
        count = self._blocks.readinto(buffer)
        if self._status is not None:  # (on this thread: the progress bar is not shared)
            self._say_status()
        if self._blocks.exhausted:  # the pipeline stops at the known size
            self.finish()
        return count

    def finish(self) -> None:
        """The last window and the extra hashes, once every byte was handed out (at once for an
        empty image, which the pipeline never asks to read)."""
        if self.done or not self._blocks.exhausted:
            return
        self.close()
        self._close_window(self._reader.size)
        self.done = True
        self.extra = {name: digest.hexdigest() for name, digest in self._extra.items()}

    def close(self) -> None:
        """Stop the thread that reads the device (also when interrupted)."""
        self._blocks.close()

    def _say_status(self) -> None:
        """Bad sectors so far (and a vanished device), for the progress bar."""
        assert self._status is not None
        bad = self._reader.map.sectors(BAD, self._reader.sector)
        text = f"{bad} bad sector{'' if bad == 1 else 's'}" if bad else ""
        if self._reader.vanished is not None:
            text = (text + "; " if text else "") + "device gone"
        if text != self._said:
            self._said = text
            self._status(text)

    def _hash_block(self, position: int, block: memoryview) -> None:
        if position == 0:
            self.partition_table = partition_table(bytes(block[: 2 * self._reader.sector]),
                                                   self._reader.sector)
        try:
            if position - self._window_start >= WINDOW:
                self._close_window(position)
            self._window.update(block)
            for digest in self._extra.values():
                digest.update(block)
        finally:
            block.release()

    def _close_window(self, end: int) -> None:
        if end > self._window_start or not self.windows:
            self.windows.append((self._window_start, end - self._window_start,
                                 self._window.hexdigest()))
        self._window = hashlib.sha256()
        self._window_start = end

    def changes(self) -> list[str]:
        return self._file_changed() + self._writes_meanwhile()

    def _file_changed(self) -> list[str]:
        if self._watched is None:
            return []
        path, before = self._watched
        what = "the image file" if self._counters is None else f"the loop device's file {path}"
        try:
            after = os.stat(path)
        except OSError as exc:
            return [f"{what} could not be looked at after reading: {exc.strerror}"]
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            return [f"{what} was modified while being read"]
        return []

    def _writes_meanwhile(self) -> list[str]:
        """A device the kernel wrote to while it was read (possible with --no-write-block, or
        where BLKROSET was refused) may not hold, at the end, what was read at the start."""
        if self._counters is None or self._counters_before is None:
            return []
        after = self._counters()
        if after is None:
            return []
        writes = after["writes_completed"] - self._counters_before["writes_completed"]
        sectors = after["sectors_written"] - self._counters_before["sectors_written"]
        if writes or sectors:
            return [f"the kernel wrote to the device while it was read ({writes} writes, "
                    f"{sectors} sectors of 512 bytes; /sys/block/…/stat): parts of the image "
                    "may be from before them, parts from after"]
        return []

    def unread(self) -> str | None:
        reader = self._reader
        found = reader.map
        bad = found.count(BAD)
        unread = sum(found.count(status) for status in NOT_READ)
        said = []
        if bad:
            ranges = found.range_count(BAD)
            sectors = found.sectors(BAD, reader.sector)
            said.append(f"{sectors} bad sector{'s' if sectors != 1 else ''}"
                        f" ({bad} bytes in {ranges} range{'s' if ranges != 1 else ''}, "
                        f"the first at byte {found.first(BAD)}) could not be read"
                        f"{_retried(reader)}")
        if reader.vanished is not None:
            said.append(f"{reader.vanished.how}; {unread} bytes were never read")
        if not said:
            return None
        return "; ".join(said) + "; stored as zeros (see the .mapfile beside the image)"


def _retried(reader: SectorReader) -> str:
    """How often the bad sectors were tried again. Read past (rescue), they are tried again in
    the last pass: a device that stopped answering before or during it did not get them all."""
    if reader.vanished is None or not reader.skip_ahead.get("done"):
        return f" after {reader.retries} retries"  # (in place: each retried where it failed)
    if reader.phase == BAD:
        return (f" after at most {reader.retries} retries (the device stopped answering "
                "during them)")
    return " (not tried again: the device stopped answering first)"
