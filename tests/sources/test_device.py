"""Device imaging (evidencekit.sources.device and .sectors) on real loop devices: over plain
files, and over a FUSE file that fails where a bad disk would (tests/support/badfs.py).

Oracles: GNU ddrescue and dc3dd, run on the same device, must find the same bad sectors and
make an image with the same SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from evidencekit.capture import CaptureRequest, CaptureResult, CaseInfo, capture
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.errors import UsageError
from evidencekit.extract import extract
from evidencekit.report.model import collect
from evidencekit.sources.base import StreamEntry
from evidencekit.sources.device import WINDOW, DeviceSource
from evidencekit.text import plural
from evidencekit.verify import Report, verify
from tests.support.badfs import Faults, bad_disk, loop_device
from tests.support.tools import require_tool

MIB = 1 << 20


def image_of(tmp_path: Path, source: DeviceSource) -> tuple[CaptureResult, Report, Path]:
    """Seal *source*, verify the bundle and extract it; the extracted data/ folder."""
    identity = age.X25519Identity.generate()
    output = tmp_path / "dev.evidence"
    request = CaptureRequest([], output, CaseInfo("DEV-1", "Jane"), [identity.recipient()],
                             SigningKey.generate(), ["test"], more_sources=[source])
    result = capture(request)
    report = verify(output, [identity])
    assert report.ok, report.findings.items
    extract(output, tmp_path / "out", [identity])
    return result, report, tmp_path / "out" / "data"


SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs/schemas/device.schema.json")
                    .read_text())


def document(data: Path, name: str) -> dict[str, Any]:
    """data/NAME.device.json, checked against its JSON Schema."""
    from jsonschema import Draft202012Validator

    loaded: dict[str, Any] = json.loads((data / f"{name}.device.json").read_text())
    Draft202012Validator(SCHEMA).validate(loaded)
    return loaded


def mapfile_runs(path: Path) -> list[tuple[int, int, str]]:
    runs = []
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    for line in lines[1:]:  # the first is the status line
        position, size, status = line.split()
        runs.append((int(position, 16), int(size, 16), status))
    return runs


def patterned(size: int) -> bytes:
    """Content where every sector differs (so that a misplaced sector changes the hash)."""
    return b"".join(hashlib.sha256(i.to_bytes(8, "big")).digest() * 16 for i in range(size // 512))


def test_an_image_file_is_imaged_with_windows_and_a_clean_map(tmp_path: Path) -> None:
    content = os.urandom(WINDOW + 3 * MIB + 100)  # not a whole number of sectors, nor windows
    (tmp_path / "disk.img").write_bytes(content)
    result, report, data = image_of(tmp_path, DeviceSource(str(tmp_path / "disk.img"),
                                                           hashes=["md5", "sha1"]))
    assert result.seal.complete
    assert (data / "disk.img").read_bytes() == content
    assert mapfile_runs(data / "disk.img.mapfile") == [(0, len(content), "+")]
    windows = [line.split() for line in (data / "disk.img.windows").read_text().splitlines()
               if not line.startswith("#")]
    assert windows == [["0", str(WINDOW), hashlib.sha256(content[:WINDOW]).hexdigest()],
                       [str(WINDOW), str(len(content) - WINDOW),
                        hashlib.sha256(content[WINDOW:]).hexdigest()]]
    found = document(data, "disk.img")
    assert found["extra_hashes"] == {"md5": hashlib.md5(content).hexdigest(),
                                     "sha1": hashlib.sha1(content).hexdigest()}
    assert found["identity"]["size"] == {"value": len(content), "origin": "fstat"}
    assert report.manifest is not None
    [record] = report.manifest.get("sources")
    assert record["kind"] == "device" and record["bag_name"] == "disk.img"
    assert record["details"]["bad_sectors"] == 0 and record["details"]["size"] == len(content)


def test_a_loop_device_is_write_blocked_and_identified(tmp_path: Path) -> None:
    content = patterned(4 * MIB)
    (tmp_path / "backing").write_bytes(content)
    with loop_device(tmp_path / "backing", read_only=False) as device:
        name = os.path.basename(device)
        ro = Path(f"/sys/block/{name}/ro")
        assert ro.read_text().strip() == "0"
        result, _, data = image_of(tmp_path, DeviceSource(device))
        assert ro.read_text().strip() == "1"  # BLKROSET: the kernel refuses writes now
        fd = os.open(device, os.O_WRONLY)
        try:
            with pytest.raises(PermissionError):  # EPERM, as after blockdev --setro
                os.write(fd, b"x" * 512)
        finally:
            os.close(fd)
    assert result.seal.complete
    assert (data / f"{name}.raw").read_bytes() == content
    found = document(data, f"{name}.raw")
    identity = found["identity"]
    assert identity["size"] == {"value": len(content), "origin": "ioctl BLKGETSIZE64"}
    assert identity["logical_sector_size"]["value"] == 512
    assert identity["loop_backing_file"]["value"] == str(tmp_path / "backing")
    assert identity["serial"] == {"value": "unknown", "origin": None}  # never invented
    assert identity["transport"]["value"] == "virtual"
    assert identity["hpa_dco"]["checked"] is False
    assert found["write_block"]["done"] is True
    assert found["write_block"]["devices"][0]["read_only_before"] is False
    counters = found["write_counters"]
    assert counters["unchanged"] is True and counters["before"] is not None


def test_no_write_block_is_recorded(tmp_path: Path) -> None:
    (tmp_path / "backing").write_bytes(bytes(MIB))
    with loop_device(tmp_path / "backing", read_only=False) as device:
        _, _, data = image_of(tmp_path, DeviceSource(device, write_block=False))
        assert Path(f"/sys/block/{os.path.basename(device)}/ro").read_text().strip() == "0"
    found = document(data, f"{os.path.basename(device)}.raw")
    assert found["write_block"] == {"done": False, "why": "--no-write-block"}


def test_a_device_mounted_read_write_is_refused(tmp_path: Path) -> None:
    require_tool("mkfs.vfat")
    require_tool("fusefat")
    image = tmp_path / "fat.img"
    with open(image, "wb") as f:
        f.truncate(34 * MIB)
    subprocess.run(["mkfs.vfat", "-F", "32", str(image)], check=True, capture_output=True)
    where = tmp_path / "mnt"
    where.mkdir()
    with loop_device(image, read_only=False) as device:
        subprocess.run(["fusefat", "-o", "rw+", device, str(where)], check=True)
        try:
            with pytest.raises(UsageError, match="mounted read-write"):
                DeviceSource(device)
        finally:
            subprocess.run(["fusermount", "-u", str(where)], capture_output=True)


def bad_sectors_by_ddrescue(device: str, folder: Path) -> tuple[list[tuple[int, int]], str]:
    require_tool("ddrescue")
    subprocess.run(["ddrescue", "-d", "-r2", device, str(folder / "dd.img"),
                    str(folder / "dd.map")], check=True, capture_output=True)
    runs = mapfile_runs(folder / "dd.map")
    digest = hashlib.sha256((folder / "dd.img").read_bytes()).hexdigest()
    return [(p, s) for p, s, status in runs if status == "-"], digest


def bad_sectors_by_dc3dd(device: str, folder: Path) -> tuple[list[tuple[int, int]], str]:
    require_tool("dc3dd")
    subprocess.run(["dc3dd", f"if={device}", f"of={folder / 'dc.img'}", "hash=sha256",
                    f"log={folder / 'dc.log'}"], check=True, capture_output=True)
    log = (folder / "dc.log").read_text()
    bad = []  # "at sector N" for one, "from sector N to sector M" for several
    for one, first, last in re.findall(r"(?:at sector (\d+)|from sector (\d+) to sector (\d+))",
                                       log):
        start, end = (int(one), int(one)) if one else (int(first), int(last))
        bad.append((start * 512, (end - start + 1) * 512))
    [digest] = re.findall(r"([0-9a-f]{64}) \(sha256\)", log)
    return bad, digest


def test_bad_sectors_are_exact_and_agree_with_ddrescue_and_dc3dd(tmp_path: Path) -> None:
    image_and_oracles_agree(tmp_path, [(3 * MIB, 3 * MIB + 1024)])  # two bad sectors


def test_scattered_bad_sectors_are_exact_and_agree_with_ddrescue_and_dc3dd(tmp_path: Path
                                                                           ) -> None:
    # one early (before any sector read well), two across a 4 MiB block boundary
    image_and_oracles_agree(tmp_path, [(512, 1024), (6 * MIB - 512, 6 * MIB + 512)])


def test_a_bad_mib_is_exact_and_agrees_with_ddrescue_and_dc3dd(tmp_path: Path) -> None:
    image_and_oracles_agree(tmp_path, [(2 * MIB, 3 * MIB)])  # 2,048 sectors, each tried 3 times


def test_a_disk_whose_first_sectors_are_all_bad_is_read_to_its_end(tmp_path: Path) -> None:
    # 128 sectors bad from byte 0 (a worn partition table): more than DEAD_AFTER in a row before
    # any sector read, yet the disk answers further on; it was taken for dead and its 8 MiB
    # never read
    image_and_oracles_agree(tmp_path, [(0, 64 << 10)])


def image_and_oracles_agree(tmp_path: Path, bad: list[tuple[int, int]], size: int = 8 * MIB
                            ) -> None:
    """Image a disk *bad* where said, check the image and the bad sectors against ddrescue's
    and dc3dd's."""
    content = patterned(size)
    with bad_disk(tmp_path, content, Faults(bad=bad)) as device:
        result, report, data = image_of(tmp_path, DeviceSource(device))
        by_ddrescue = bad_sectors_by_ddrescue(device, tmp_path)
        by_dc3dd = bad_sectors_by_dc3dd(device, tmp_path)
    name = f"{os.path.basename(device)}.raw"
    expected = [(start, end - start) for start, end in bad]
    image = (data / name).read_bytes()
    zeroed = bytearray(content)
    for start, end in bad:
        zeroed[start:end] = bytes(end - start)
    assert image == bytes(zeroed)  # every sector that read is kept; only the bad ones zeroed
    ours = [(p, s) for p, s, status in mapfile_runs(data / f"{name}.mapfile") if status == "-"]
    digest = hashlib.sha256(image).hexdigest()
    assert ours == expected
    assert by_ddrescue == (expected, digest)
    assert by_dc3dd == (expected, digest)
    assert not result.seal.complete and result.seal.counts["errors"] == 1
    sectors = sum(s for _, s in expected) // 512
    [problem] = result.problems
    assert f"{sectors} bad sector" in problem.problem
    assert report.manifest is not None
    [record] = report.manifest.get("sources")
    assert record["details"]["bad_sectors"] == sectors
    found = document(data, name)
    assert found["read"]["bad_ranges"] == [list(r) for r in expected]
    [line] = collect(report, "dev.evidence", "now").devices  # the report's summary
    assert f"data/{name} imaged from {device}" in line
    assert f"{plural(sectors, 'bad sector')} stored as zeros, the first at byte {bad[0][0]}" \
        in line and f"data/{name}.mapfile" in line
    assert found["read"]["skip_ahead"]["done"] is True


def test_without_sysfs_a_bad_sector_is_not_taken_for_a_vanished_device(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # where /sys does not show the device (not mounted, a container), "is it still there?" was
    # answered no at the first bad sector: the rest of the disk was never read
    import evidencekit.sources.device as device_module

    monkeypatch.setattr(device_module, "_sys_block", lambda info: tmp_path / "no-sysfs")
    content = patterned(4 * MIB)
    with bad_disk(tmp_path, content, Faults(bad=[(MIB, MIB + 512)])) as device:
        result, _, data = image_of(tmp_path, DeviceSource(device, write_block=False))
    image = (data / f"{os.path.basename(device)}.raw").read_bytes()
    assert image == content[:MIB] + bytes(512) + content[MIB + 512:]
    [problem] = result.problems
    assert problem.problem.startswith("1 bad sector") and "never read" not in problem.problem


def test_a_sector_that_fails_once_is_read_again(tmp_path: Path) -> None:
    content = patterned(4 * MIB)
    log = tmp_path / "reads.log"
    with bad_disk(tmp_path, content, Faults(fail_once=[(MIB, MIB + 512)]), log=log) as device:
        result, _, data = image_of(tmp_path, DeviceSource(device))
    assert result.seal.complete
    assert (data / f"{os.path.basename(device)}.raw").read_bytes() == content
    reads = [tuple(map(int, line.split())) for line in log.read_text().splitlines()]
    assert sum(1 for offset, size in reads if offset <= MIB < offset + size) >= 2


def test_a_sector_that_weakens_after_reading_is_not_taken_for_a_vanished_disk(
        tmp_path: Path) -> None:
    # the first sector that read well was the one asked "is the disk still there?" at every
    # failure; once it failed too (a weak sector on a failing disk), the disk was recorded as
    # gone and everything after the next bad sector was never read
    content = patterned(8 * MIB)
    faults = Faults(bad=[(5 * MIB, 5 * MIB + 512)], fail_later=[(0, 512)])
    with bad_disk(tmp_path, content, faults) as device:
        result, _, data = image_of(tmp_path, DeviceSource(device))
    image = (data / f"{os.path.basename(device)}.raw").read_bytes()
    assert image == content[:5 * MIB] + bytes(512) + content[5 * MIB + 512:]
    [problem] = result.problems
    assert problem.problem.startswith("1 bad sector") and "never read" not in problem.problem


def test_a_slow_sector_is_waited_for(tmp_path: Path) -> None:
    content = patterned(2 * MIB)
    with bad_disk(tmp_path, content, Faults(slow=[(MIB, MIB + 512)], slow_seconds=0.5)
                  ) as device:
        result, _, data = image_of(tmp_path, DeviceSource(device))
    assert result.seal.complete
    assert (data / f"{os.path.basename(device)}.raw").read_bytes() == content


def test_a_device_that_vanishes_is_recorded_and_what_was_read_kept(tmp_path: Path) -> None:
    content = patterned(8 * MIB)
    with bad_disk(tmp_path, content, Faults(vanish_at=5 * MIB)) as device:
        result, _, data = image_of(tmp_path, DeviceSource(device))
    name = f"{os.path.basename(device)}.raw"
    image = (data / name).read_bytes()
    runs = mapfile_runs(data / f"{name}.mapfile")
    assert runs[0][2] == "+" and runs[-1][2] == "?" and runs[-1][0] + runs[-1][1] == len(content)
    kept = runs[0][1]
    assert kept >= 4 * MIB and image[:kept] == content[:kept]  # the blocks before it, kept
    assert image[kept:] == bytes(len(content) - kept)
    assert "-" not in [status for _, _, status in runs]  # not taken for bad sectors
    [problem] = result.problems
    assert "stopped answering" in problem.problem and "never read" in problem.problem
    assert not result.seal.complete
    found = document(data, name)
    assert found["read"]["vanished"]["at"] == kept
    # not "finished" (ddrescuelog said so of a device gone after 5 of its 8 MiB): still copying
    require_tool("ddrescuelog")
    said = subprocess.run(["ddrescuelog", "-t", str(data / f"{name}.mapfile")],
                          capture_output=True, text=True, check=True).stdout
    assert "current status: copying" in said
    assert f"\n0x{kept:08X}     ?               1\n" in (data / f"{name}.mapfile").read_text()



@pytest.mark.parametrize("name", [b"cl\xc3\xa9 USB.img", b"two\nlines.img", b"latin-1 \xe9.img"])
def test_an_image_of_any_name_is_imaged_and_its_mapfile_read_by_ddrescuelog(
        tmp_path: Path, name: bytes) -> None:
    # a name that is not plain ASCII ended the capture with an internal error (exit 5) once the
    # whole image had been read; a line feed in it broke the mapfile for ddrescuelog
    image = os.path.join(os.fsencode(tmp_path), name)
    content = patterned(MIB)
    with open(image, "wb") as f:
        f.write(content)
    result, _, data = image_of(tmp_path, DeviceSource(os.fsdecode(image)))
    assert result.seal.complete
    [stored] = [p for p in data.iterdir() if p.name.endswith(".mapfile")]
    require_tool("ddrescuelog")
    said = subprocess.run(["ddrescuelog", "-t", str(stored)], capture_output=True, text=True)
    assert said.returncode == 0 and "rescued:    1048 kB" in said.stdout, said.stderr
    windows = stored.with_name(stored.name[:-len(".mapfile")] + ".windows")
    assert len(windows.read_text("ascii").splitlines()) == 2  # the comment line, one window


def test_a_4kn_disk_is_read_in_its_sectors_and_a_partial_last_one_counted(tmp_path: Path
                                                                        ) -> None:
    # a loop device of 4096-byte logical sectors over a file of 2 MiB + 2560 bytes: the kernel
    # says 2 MiB + 2560 but reads none of the last 2560 (neither does ddrescue); that is one
    # bad sector, not "0 bad sectors" and "every sector read" in the report
    content = bytearray(patterned(2 * MIB + 2560))
    content[510:512] = b"\x55\xaa"
    content[4096:4104] = b"EFI PART"  # GPT header in the second (4096-byte) sector
    (tmp_path / "disk").write_bytes(content)
    with loop_device(tmp_path / "disk", sector_size=4096) as device:
        result, report, data = image_of(tmp_path, DeviceSource(device))
    name = f"{os.path.basename(device)}.raw"
    assert (data / name).read_bytes() == bytes(content[:2 * MIB]) + bytes(2560)
    found = document(data, name)
    assert found["identity"]["logical_sector_size"]["value"] == 4096
    assert found["identity"]["partition_table"]["value"] == "gpt"
    assert found["read"]["bad_ranges"] == [[2 * MIB, 2560]]
    [problem] = result.problems
    assert problem.problem.startswith("1 bad sector (2560 bytes")
    assert report.manifest is not None
    assert report.manifest.get("sources")[0]["details"]["bad_sectors"] == 1


def test_an_empty_image_is_documented_as_read(tmp_path: Path) -> None:
    # the pipeline never reads an empty image: its counts were left out of the source record
    # (the report did not say "every sector read"), no window and no --hash values were given
    (tmp_path / "empty.img").write_bytes(b"")
    _, report, data = image_of(tmp_path, DeviceSource(str(tmp_path / "empty.img"),
                                                      hashes=["md5"]))
    assert report.manifest is not None
    assert report.manifest.get("sources")[0]["details"]["bad_sectors"] == 0
    empty = hashlib.sha256(b"").hexdigest()
    assert (data / "empty.img.windows").read_text().splitlines()[1:] == [f"0 0 {empty}"]
    assert document(data, "empty.img")["extra_hashes"] == {"md5": hashlib.md5(b"").hexdigest()}


@pytest.mark.parametrize(("first", "kind"), [
    ({510: b"\x55\xaa"}, "mbr"),
    ({510: b"\x55\xaa", 512: b"EFI PART"}, "gpt"),  # a protective MBR, then the GPT header
    ({}, "none found"),
])
def test_the_partition_table_is_named(tmp_path: Path, first: dict[int, bytes], kind: str
                                      ) -> None:
    # (this kernel finds no partitions on loop devices, so the partitions' write blocking is
    # not tested here; the table's kind comes from the image's own first bytes)
    content = bytearray(MIB)
    for offset, data in first.items():
        content[offset:offset + len(data)] = data
    (tmp_path / "disk.img").write_bytes(content)
    _, _, data = image_of(tmp_path, DeviceSource(str(tmp_path / "disk.img")))
    assert document(data, "disk.img")["identity"]["partition_table"]["value"] == kind


def test_a_device_that_never_answers_is_not_read_sector_by_sector(tmp_path: Path) -> None:
    content = patterned(8 * MIB)
    log = tmp_path / "reads.log"
    with bad_disk(tmp_path, content, Faults(bad=[(0, 8 * MIB)]), log=log) as device:
        result, _, data = image_of(tmp_path, DeviceSource(device))
    name = f"{os.path.basename(device)}.raw"
    assert (data / name).read_bytes() == bytes(len(content))
    runs = mapfile_runs(data / f"{name}.mapfile")
    # what was found bad from the start, and the rest left as the passes had it (non-scraped,
    # here), never marked read
    assert runs[0][0] == 0 and runs[0][2] == "-" and runs[0][1] >= 32 * 512
    assert "+" not in [status for _, _, status in runs]
    assert runs[-1][0] + runs[-1][1] == len(content)
    assert len(log.read_text().splitlines()) < 1000  # not 16,384 sectors x 3 tries
    [problem] = result.problems
    assert "does not answer" in problem.problem


@pytest.mark.parametrize(("options", "refused"), [
    ("rw,relatime", True),
    ("ro,relatime", False),
    # a read-only bind mount of a file system whose super block is read-write
    ("ro,relatime shared:1 - ext4 DEVICE rw", True),
])
def test_a_mount_of_the_device_is_read_from_mountinfo(tmp_path: Path, options: str,
                                                      refused: bool) -> None:
    # (a kernel file system cannot be mounted here; its mountinfo line is what is checked)
    (tmp_path / "backing").write_bytes(bytes(MIB))
    with loop_device(tmp_path / "backing", read_only=False) as device:
        rdev = os.stat(device).st_rdev
        mountinfo = tmp_path / "mountinfo"
        line = f"36 25 {os.major(rdev)}:{os.minor(rdev)} / /media/stick {options}"
        if " - " not in options:
            line += f" shared:1 - vfat {device} {options.split(',')[0]}"
        mountinfo.write_text(line.replace("DEVICE", device) + "\n")
        if refused:
            with pytest.raises(UsageError, match="mounted read-write at /media/stick"):
                DeviceSource(device, mountinfo=mountinfo)
        else:  # imaged, and the mount recorded
            source = DeviceSource(device, write_block=False, mountinfo=mountinfo)
            _, _, data = image_of(tmp_path, source)
            [mount] = document(data, f"{os.path.basename(device)}.raw")["mounts"]
            assert mount == {"mountpoint": "/media/stick", "options": "ro,relatime",
                             "fstype": "vfat", "source": device, "super_options": "ro"}


def test_a_device_in_use_as_swap_is_refused(tmp_path: Path) -> None:
    # it was imaged (exit 0) and set read-only under the kernel's swapping
    (tmp_path / "backing").write_bytes(bytes(MIB))
    with loop_device(tmp_path / "backing", read_only=False) as device:
        swaps = tmp_path / "swaps"
        swaps.write_text("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
                         f"{device}                              partition\t1020\t\t0\t\t-2\n")
        with pytest.raises(UsageError, match=f"in use as swap space \\({device}\\)"):
            DeviceSource(device, swaps=swaps)
        assert not _read_only(device)  # refused before it was set read-only
        DeviceSource(device, write_block=False, swaps=tmp_path / "no-swaps")


def test_a_device_under_a_volume_mounted_read_write_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # an LVM or dm-crypt volume on it mounted read-write (/dev/mapper/…, a dm-N of its own) was
    # not seen: the device was imaged, and set read-only under the volume's file system
    # (this kernel has no device mapper: sysfs's holders/ links are made by hand, as it has them)
    import evidencekit.sources.device as device_module

    sys = tmp_path / "sys"
    (sys / "dm-7").mkdir(parents=True)
    (sys / "dm-7" / "dev").write_text("253:7\n")
    (sys / "disk" / "disk1" / "holders").mkdir(parents=True)  # the volume is on a partition
    (sys / "disk" / "disk1" / "partition").write_text("1\n")
    (sys / "disk" / "disk1" / "holders" / "dm-7").symlink_to(sys / "dm-7")
    monkeypatch.setattr(device_module, "_sys_block", lambda info: sys / "disk")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("36 25 253:7 / /srv rw,relatime - ext4 /dev/mapper/vg-srv rw\n")
    (tmp_path / "backing").write_bytes(bytes(MIB))
    with loop_device(tmp_path / "backing") as device:
        with pytest.raises(UsageError, match="mounted read-write at /srv"):
            DeviceSource(device, mountinfo=mountinfo)
        mountinfo.write_text("36 25 253:7 / /srv ro,relatime - ext4 /dev/mapper/vg-srv ro\n")
        DeviceSource(device, write_block=False, mountinfo=mountinfo)


def _read_only(device: str) -> bool:
    return Path(f"/sys/class/block/{os.path.basename(device)}/ro").read_text().strip() == "1"


def test_the_same_bytes_mounted_read_write_another_way_are_refused(tmp_path: Path) -> None:
    # an image file is the disk of a loop device, and a file may have two loop devices over it:
    # a read-write mount of any of them is the same moving target (both were imaged, exit 0)
    (tmp_path / "backing").write_bytes(bytes(MIB))
    with loop_device(tmp_path / "backing", read_only=False) as mounted, \
            loop_device(tmp_path / "backing") as other:
        rdev = os.stat(mounted).st_rdev
        mountinfo = tmp_path / "mountinfo"
        mountinfo.write_text(f"36 25 {os.major(rdev)}:{os.minor(rdev)} / /media/disk "
                             f"rw,relatime shared:1 - ext4 {mounted} rw\n")
        for given in (str(tmp_path / "backing"), other):
            with pytest.raises(UsageError, match="mounted read-write at /media/disk"):
                DeviceSource(given, mountinfo=mountinfo)


def test_an_image_file_still_being_written_is_refused(tmp_path: Path) -> None:
    # e.g. ddrescue still writing the image an examiner starts to capture
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(MIB))
    writer = subprocess.Popen(["python3", "-c", "import sys, time; f = open(sys.argv[1], 'r+b');"
                               " print(flush=True); time.sleep(60)", str(image)],
                              stdout=subprocess.PIPE)
    try:
        assert writer.stdout is not None and writer.stdout.readline()  # it has the file open
        with pytest.raises(UsageError, match=r"python3 \(process \d+\) has it open for writing"):
            DeviceSource(str(image))
    finally:
        writer.kill()
        writer.wait()
    DeviceSource(str(image))  # once it is done


def test_a_loop_devices_file_written_to_directly_is_said(tmp_path: Path) -> None:
    # written to directly (a virtual machine using the disk image), not through the device:
    # the device's write counters stay still, and the image was sealed as complete (exit 0)
    (tmp_path / "backing").write_bytes(patterned(2 * MIB))
    with loop_device(tmp_path / "backing") as device:
        source = DeviceSource(device)
        with open(tmp_path / "backing", "r+b") as f:  # after the device was looked at
            f.write(b"changed")
        os.utime(tmp_path / "backing", ns=(0, 10**18))
        result, _, _ = image_of(tmp_path, source)
    assert not result.seal.complete
    [problem] = result.problems
    assert f"the loop device's file {tmp_path / 'backing'} was modified while being read" \
        in problem.problem


def test_writes_to_the_device_while_it_is_read_are_said(tmp_path: Path) -> None:
    (tmp_path / "backing").write_bytes(patterned(8 * MIB))
    with loop_device(tmp_path / "backing", read_only=False) as device:
        source = DeviceSource(device, write_block=False)
        source.place(0, set())
        entries = source.entries(set())
        image = next(entries)
        assert isinstance(image, StreamEntry)
        buffer = memoryview(bytearray(MIB))
        assert image.content.readinto(buffer) == MIB
        assert image.content.changes() == []
        fd = os.open(device, os.O_WRONLY)  # someone else writes meanwhile
        try:
            os.pwrite(fd, b"x" * 4096, 6 * MIB)
            os.fsync(fd)
        finally:
            os.close(fd)
        while image.content.readinto(buffer):
            pass
        said = image.content.changes()  # (and its file's modification time moved)
        assert any("the kernel wrote to the device while it was read" in s for s in said)
        entries.close()


def test_a_large_bad_area_is_read_past_and_the_good_data_after_it_read_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a bad area across a block boundary: before, it was split and retried sector by sector
    # where it was found, and a dying disk could die before the good data after it was read.
    # The reads are evidencekit's own, as it asked them: the test disk's log holds the pieces
    # the kernel cut them into (a loop device reads one piece per physically contiguous run of
    # the buffer's pages, so a 4 MiB block may arrive as a 4 KiB read, at random: taken for a
    # sector read, that failed this test once in 30 runs on a loaded machine)
    from evidencekit.sources.sectors import SectorReader

    asked: list[tuple[int, int]] = []
    pread = SectorReader._pread

    def recorded(reader: SectorReader, view: memoryview, position: int) -> int:
        asked.append((position, len(view)))
        return pread(reader, view, position)

    monkeypatch.setattr(SectorReader, "_pread", recorded)
    bad = (7 * MIB // 2, 9 * MIB // 2)
    image_and_oracles_agree(tmp_path, [bad], size=16 * MIB)
    last_mib = min(i for i, (offset, size) in enumerate(asked) if offset + size > 15 * MIB)
    sector_reads = [i for i, (offset, size) in enumerate(asked)
                    if size <= 4096 and bad[0] <= offset < bad[1]]
    assert sector_reads and last_mib < sector_reads[0]
    # each bad sector tried three times in all (the first try, then --retries 2), no more
    tries = [offset for offset, size in asked if size == 512 and bad[0] <= offset < bad[1]]
    assert max(tries.count(offset) for offset in set(tries)) <= 3


def test_a_device_that_vanishes_while_reading_past_a_bad_area_leaves_an_honest_mapfile(
        tmp_path: Path) -> None:
    # the map says, in ddrescue's statuses, what was still unread when the device went: the
    # failed block not trimmed (*), what was skipped and what was never reached (?)
    content = patterned(16 * MIB)
    faults = Faults(bad=[(2 * MIB, 3 * MIB)], vanish_at=12 * MIB)
    with bad_disk(tmp_path, content, faults) as device:
        result, _, data = image_of(tmp_path, DeviceSource(device))
    name = f"{os.path.basename(device)}.raw"
    image = (data / name).read_bytes()
    runs = mapfile_runs(data / f"{name}.mapfile")
    assert sum(size for _, size, _ in runs) == len(content)
    for position, size, status in runs:  # read: as on the disk; anything else: zeros
        expected = content if status == "+" else bytes(len(content))
        assert image[position:position + size] == expected[position:position + size], status
    statuses = [status for _, _, status in runs]
    assert "*" in statuses and "?" in statuses and "+" in statuses
    assert runs[0] == (0, 4 * MIB, "*")  # the first block failed, and was not come back to
    found = document(data, name)
    assert found["read"]["skip_ahead"] == {"done": True, "from": 0, "why": None}
    assert found["read"]["non_trimmed_ranges"] == [[0, 4 * MIB]]
    [problem] = result.problems
    unread = sum(size for _, size, status in runs if status in "?*/")
    assert f"{unread} bytes were never read" in problem.problem
    require_tool("ddrescuelog")
    said = subprocess.run(["ddrescuelog", "-t", str(data / f"{name}.mapfile")],
                          capture_output=True, text=True, check=True).stdout
    assert "current status: copying" in said and "non-trimmed:" in said


def test_without_room_to_read_past_a_bad_area_it_is_read_where_found(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import evidencekit.sources.rescue as rescue

    monkeypatch.setattr(rescue, "spool_room", lambda folder, rest, **_: "no room, as a test says")
    content = patterned(8 * MIB)
    bad = [(512, 1024), (6 * MIB - 512, 6 * MIB + 512)]
    with bad_disk(tmp_path, content, Faults(bad=bad)) as device:
        result, _, data = image_of(tmp_path, DeviceSource(device))
    name = f"{os.path.basename(device)}.raw"
    zeroed = bytearray(content)
    for start, end in bad:
        zeroed[start:end] = bytes(end - start)
    assert (data / name).read_bytes() == bytes(zeroed)
    found = document(data, name)
    assert found["read"]["skip_ahead"] == {"done": False, "from": 0,
                                           "why": "no room, as a test says"}
    assert found["read"]["bad_ranges"] == [[s, e - s] for s, e in bad]
    assert not result.seal.complete


def test_a_4kn_disk_read_past_a_bad_sector_near_its_partial_end(tmp_path: Path) -> None:
    # trimming a failed area backwards from the image's end, which falls inside a 4096-byte
    # sector here, must ask for whole sectors (O_DIRECT) and still stop: the bad sector before
    # the end and the partial last one, nothing else
    content = patterned(4 * MIB + 2560)
    bad = (4 * MIB - 8192, 4 * MIB - 4096)
    with bad_disk(tmp_path, content, Faults(bad=[bad]), sector_size=4096) as device:
        result, _, data = image_of(tmp_path, DeviceSource(device))
    name = f"{os.path.basename(device)}.raw"
    zeroed = bytearray(content)
    zeroed[bad[0]:bad[1]] = bytes(4096)
    zeroed[4 * MIB:] = bytes(2560)
    assert (data / name).read_bytes() == bytes(zeroed)
    found = document(data, name)
    assert found["read"]["bad_ranges"] == [[bad[0], 4096], [4 * MIB, 2560]]
    assert found["read"]["skip_ahead"]["done"] is True
    [problem] = result.problems
    assert problem.problem.startswith("2 bad sectors")


def test_many_scattered_bad_sectors_read_past_agree_with_ddrescue_and_dc3dd(tmp_path: Path
                                                                           ) -> None:
    # a failing disk of many small defects: most blocks fail, so nearly every part of the map
    # goes through every pass (skipped, trimmed, scraped, retried); one of 8 sectors at the
    # start of the second MiB, a pair across each MiB boundary after, a run of 40 near the end
    bad = [(MIB + n * 4096, MIB + n * 4096 + 512) for n in range(0, 256, 8)]
    bad += [(m * MIB - 512, m * MIB + 512) for m in range(3, 15)]
    bad += [(15 * MIB + 4096, 15 * MIB + 4096 + 40 * 512)]
    image_and_oracles_agree(tmp_path, bad, size=16 * MIB)


def test_a_read_map_in_pages_mostly_out_of_memory_gives_the_same_image_and_mapfile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the map of a disk with millions of bad sectors is kept in pages, most of them in a
    # temporary file: here pages of 4 runs, 2 held, so that every pass over the 45 bad ranges
    # goes through pages written out and read back, split, and runs merged across them
    import evidencekit.sources.sectors as sectors

    monkeypatch.setattr(sectors, "PAGE_RUNS", 4)
    monkeypatch.setattr(sectors, "PAGES_HELD", 2)
    made: list[sectors.ReadMap] = []
    real = sectors.ReadMap

    def watched(*args: int) -> sectors.ReadMap:
        made.append(real(*args))
        return made[-1]

    monkeypatch.setattr(sectors, "ReadMap", watched)
    bad = [(MIB + n * 4096, MIB + n * 4096 + 512) for n in range(0, 256, 8)]
    bad += [(m * MIB - 512, m * MIB + 512) for m in range(3, 15)]
    image_and_oracles_agree(tmp_path, bad, size=16 * MIB)
    [found] = made
    assert found._spill is not None and len(found._pages) > 20  # it really was paged


@pytest.mark.parametrize(("failures", "said"), [
    (300, "could not be read (not tried again: the device stopped answering first)"),
    (2400, "could not be read after at most 2 retries (the device stopped answering during "
           "them)")])
def test_bad_sectors_of_a_device_that_vanished_before_its_retries_are_not_said_retried(
        tmp_path: Path, failures: int, said: str) -> None:
    # the device dies while its bad MiB is read sector by sector (300 failed reads), or while
    # those sectors are tried again (2,400): the problem said they "could not be read after 2
    # retries", which had not been made
    content = patterned(8 * MIB)
    faults = Faults(bad=[(2 * MIB, 3 * MIB)], vanish_after_failures=failures)
    with bad_disk(tmp_path, content, faults) as device:
        result, _, data = image_of(tmp_path, DeviceSource(device))
    [problem] = result.problems
    assert said in problem.problem and "the device stopped answering at byte" in problem.problem
    runs = mapfile_runs(data / f"{os.path.basename(device)}.raw.mapfile")
    assert any(status == "-" for _, _, status in runs)


def partitioned(path: Path, size: int = 12 * MIB) -> None:
    """An MBR disk image with two partitions (1-5 MiB and 5 MiB to the end), made by sfdisk."""
    sfdisk = require_tool("sfdisk")
    with open(path, "wb") as f:
        f.truncate(size)
    subprocess.run([sfdisk, "-q", str(path)], input="label: dos\n,4M\n,\n", text=True,
                   check=True, capture_output=True)


def _flags(device: str) -> list[bool]:
    """Whether the kernel takes *device* and each of its partitions as read-only (sysfs, as
    BLKROGET: a partition is also read-only while its disk is)."""
    name = os.path.basename(device)
    folder = Path(f"/sys/block/{name}")
    return [(folder / "ro").read_text().strip() == "1"] + [
        (part / "ro").read_text().strip() == "1" for part in sorted(folder.glob(f"{name}p*"))]


def test_a_partitioned_device_and_its_partitions_are_write_blocked_and_listed(
        tmp_path: Path) -> None:
    partitioned(tmp_path / "disk")
    with loop_device(tmp_path / "disk", read_only=False, partitions=True) as device:
        assert _flags(device) == [False, False, False]
        source = DeviceSource(device)
        assert _flags(device) == [True, True, True]  # before the first byte is read
        fd = os.open(f"{device}p2", os.O_WRONLY)
        try:
            with pytest.raises(PermissionError):  # EPERM: the kernel refuses the write
                os.write(fd, b"x" * 512)
        finally:
            os.close(fd)
        result, _, data = image_of(tmp_path, source)
        # left read-only afterwards (docs/decisions/device-write-block.md), until
        # blockdev --setrw
        assert _flags(device) == [True, True, True]
        # each partition has a flag of its own, set too: `blockdev --setrw` of the disk alone
        # leaves them read-only
        subprocess.run([require_tool("blockdev"), "--setrw", device], check=True)
        assert _flags(device) == [False, True, True]
    assert result.seal.complete
    name = os.path.basename(device)
    assert (data / f"{name}.raw").read_bytes() == (tmp_path / "disk").read_bytes()
    found = document(data, f"{name}.raw")
    assert found["identity"]["partition_table"]["value"] == "mbr"
    assert found["identity"]["partitions"]["value"] == [
        {"name": f"{name}p1", "number": 1, "start": MIB, "size": 4 * MIB},
        {"name": f"{name}p2", "number": 2, "start": 5 * MIB, "size": 7 * MIB}]
    # each flag as it was before any was set (the disk's flag makes BLKROGET of its
    # partitions say read-only)
    assert [(d["device"], d["read_only_before"], d["read_only_after"])
            for d in found["write_block"]["devices"]] == [
        (device, False, True), (f"{device}p1", False, True), (f"{device}p2", False, True)]
    assert found["write_counters"]["unchanged"] is True


def test_a_partition_mounted_read_write_by_fuse_is_refused(tmp_path: Path) -> None:
    # a FUSE file system (fusefat, exfat-fuse, ntfs-3g) has device numbers of its own, and
    # mountinfo does not say it is read-write: the partition is found held open for writing
    mkfs, fusefat = require_tool("mkfs.vfat"), require_tool("fusefat")
    partitioned(tmp_path / "disk")
    where = tmp_path / "mnt"
    where.mkdir()
    with loop_device(tmp_path / "disk", read_only=False, partitions=True) as device:
        subprocess.run([mkfs, f"{device}p1"], check=True, capture_output=True)
        subprocess.run([fusefat, "-o", "rw+", f"{device}p1", str(where)], check=True)
        try:
            with pytest.raises(UsageError, match=r"fusefat \(process \d+\) has it open for "
                               "writing"):
                DeviceSource(device)
            assert _flags(device) == [False, False, False]
        finally:
            subprocess.run(["fusermount", "-u", str(where)], capture_output=True)


def test_a_partition_mounted_read_write_is_refused_before_anything_is_set(
        tmp_path: Path) -> None:
    mkfs = require_tool("mkfs.ext4")
    partitioned(tmp_path / "disk")
    where = tmp_path / "mnt"
    where.mkdir()
    with loop_device(tmp_path / "disk", read_only=False, partitions=True) as device:
        subprocess.run([mkfs, "-q", f"{device}p2"], check=True, capture_output=True)
        subprocess.run(["mount", f"{device}p2", str(where)], check=True, capture_output=True)
        try:
            with pytest.raises(UsageError, match=f"mounted read-write at {where}"):
                DeviceSource(device)
            assert _flags(device) == [False, False, False]
            subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True,
                           capture_output=True)
            source = DeviceSource(device)  # mounted read-only: imaged, and the mount recorded
            assert [m["mountpoint"] for m in source._mounts] == [str(where)]
            assert _flags(device) == [True, True, True]
        finally:
            subprocess.run(["umount", str(where)], capture_output=True)


def test_the_image_and_its_documents_are_typed_without_starting_libmagic(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # libmagic's worker (a process of some 23 MB, most of the 100 MB allowed to imaging) says
    # nothing of a disk image that its source does not know: it is not started
    from evidencekit import identify

    started: list[object] = []
    real = identify._Worker
    monkeypatch.setattr(identify, "_Worker", lambda *a: started.append(a) or real(*a))
    (tmp_path / "disk.img").write_bytes(os.urandom(MIB))
    image_of(tmp_path, DeviceSource(str(tmp_path / "disk.img")))
    manifest = json.loads((tmp_path / "out" / "evidencekit" / "manifest.json").read_text())
    assert [(e["path"], e["mime"]) for e in manifest["entries"]] == [
        ("disk.img", "application/octet-stream"), ("disk.img.mapfile", "text/plain"),
        ("disk.img.windows", "text/plain"), ("disk.img.device.json", "application/json")]
    assert started == []


def test_a_disk_filling_up_under_the_spool_stops_the_capture_plainly_and_keeps_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the room for reading past a bad area is counted once, at the first bad area: when the
    # disk fills meanwhile, the spool stops before its last bytes, and no bundle is left
    import evidencekit.capture as capturing
    import evidencekit.sources.rescue as rescue
    from evidencekit.errors import OutputError
    from tests.support.mounts import tmpfs

    # the room asked for by capture and by the spool, scaled down to a 10 MiB disk
    monkeypatch.setattr(capturing._OutputRoom, "MARGIN", MIB)
    monkeypatch.setattr(capturing._RoomWatch, "STEP", MIB)
    monkeypatch.setattr(rescue, "spool_room", lambda folder, rest, **_: None)  # "there was room"
    monkeypatch.setattr(rescue, "MARGIN", 4 * MIB)
    monkeypatch.setattr(rescue, "LOOK_EVERY", MIB)
    content = patterned(16 * MIB)
    with tmpfs(tmp_path, size_mib=10) as small, \
            bad_disk(tmp_path, content, Faults(bad=[(512, 1024)])) as device:
        identity = age.X25519Identity.generate()
        request = CaptureRequest([], small / "dev.evidence", CaseInfo("DEV-1", "Jane"),
                                 [identity.recipient()], SigningKey.generate(), ["test"],
                                 more_sources=[DeviceSource(device, spool_folder=small)])
        with pytest.raises(OutputError, match=r"ram is full \(.*\): the encrypted temporary"):
            capture(request)
        assert list(small.iterdir()) == []


def test_a_bundle_written_elsewhere_leaves_the_spools_disk_to_the_spool(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """capture --device -o s3://: the bundle goes to the store (here: another disk), so a disk
    with room for the spool alone is enough to read past a bad area; it was refused, the image
    counted a second time for a bundle that is not written there."""
    import evidencekit.sources.rescue as rescue
    from tests.support.mounts import tmpfs

    monkeypatch.setattr(rescue, "MARGIN", 4 * MIB)
    monkeypatch.setattr(rescue, "LOOK_EVERY", MIB)
    content = patterned(16 * MIB)
    found: dict[bool, dict[str, Any]] = {}
    with tmpfs(tmp_path, size_mib=24) as small, \
            bad_disk(tmp_path, content, Faults(bad=[(512, 1024)])) as device:
        for beside in (True, False):
            (tmp_path / f"beside-{beside}").mkdir()
            _, _, data = image_of(tmp_path / f"beside-{beside}", DeviceSource(
                device, spool_folder=small, bundle_beside=beside))
            found[beside] = document(data, f"{os.path.basename(device)}.raw")["read"]
    assert found[True]["skip_ahead"]["done"] is False
    assert "would be needed" in found[True]["skip_ahead"]["why"]
    assert found[False]["skip_ahead"]["done"] is True, found[False]["skip_ahead"]


def test_a_bundle_beside_the_spool_needs_room_for_the_image_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rest of the image was counted twice at the first bad area (the spool, and the
    bundle's copy of it), and held twice until the end: the spool now gives each block back
    as it is read into the bundle, so a disk with room for the image once (and the margins)
    reads past the bad area. Random content: the bundle does not shrink it. (Margins scaled
    down to a 26 MiB disk; the image is 16 MiB.)"""
    import evidencekit.capture as capturing
    import evidencekit.sources.rescue as rescue
    from tests.support.mounts import tmpfs

    monkeypatch.setattr(rescue, "MARGIN", 4 * MIB)
    monkeypatch.setattr(rescue, "LOOK_EVERY", MIB)
    monkeypatch.setattr(capturing._OutputRoom, "MARGIN", MIB)
    monkeypatch.setattr(capturing._RoomWatch, "STEP", MIB)
    monkeypatch.setattr(capturing, "LEAST_FREE_BESIDE_BUNDLE", 2 * MIB)
    content = os.urandom(16 * MIB)
    bad = (512, 1024)
    with tmpfs(tmp_path, size_mib=26) as small, \
            bad_disk(tmp_path, content, Faults(bad=[bad])) as device:
        identity = age.X25519Identity.generate()
        output = small / "dev.evidence"
        request = CaptureRequest([], output, CaseInfo("DEV-1", "Jane"), [identity.recipient()],
                                 SigningKey.generate(), ["test"],
                                 more_sources=[DeviceSource(device, spool_folder=small)])
        capture(request)
        assert verify(output, [identity]).ok
        extract(output, tmp_path / "out", [identity])
    name = f"{os.path.basename(device)}.raw"
    data = tmp_path / "out" / "data"
    assert document(data, name)["read"]["skip_ahead"] == {"done": True, "from": 0, "why": None}
    expected = bytearray(content)
    expected[bad[0]:bad[1]] = bytes(bad[1] - bad[0])
    assert (data / name).read_bytes() == bytes(expected)
