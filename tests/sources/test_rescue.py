"""The read map (evidencekit.sources.sectors.ReadMap) and the spool that holds what is read past a
bad area (evidencekit.sources.rescue.ImageSpool). The passes themselves are tested on a disk with
bad sectors, against ddrescue, in test_device.py."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest

from evidencekit.errors import OutputError
from evidencekit.sources.rescue import SPOOL_BLOCK, ImageSpool
from evidencekit.sources.sectors import BAD, READ, UNTRIED, ReadMap
from tests.support.tools import skip_or_fail


def expanded(found: ReadMap) -> list[str]:
    return [status for _, size, status in found.runs() for _ in range(size)]


@pytest.mark.parametrize(("page_runs", "held"), [(0, 0), (3, 2)])
def test_the_map_changed_anywhere_stays_exact_merged_and_counted(page_runs: int, held: int
                                                                 ) -> None:
    # also in pages of a few runs, most of them in the spill file: the same map, merged across
    # pages, counted the same
    chooser = random.Random(22)
    found, expected = ReadMap(page_runs, held), ["?"] * 300
    found.add(0, 300, UNTRIED)
    for _ in range(2000):
        position, size = chooser.randrange(300), chooser.randrange(1, 40)
        status = chooser.choice("+-?*/")
        found.set(position, size, status)
        expected[position:position + size] = [status] * len(expected[position:position + size])
        runs = list(found.runs())
        assert expanded(found) == expected
        assert all(a[2] != b[2] for a, b in pairwise(runs))  # merged
        for kind in "+-?*/":
            assert found.count(kind) == expected.count(kind)
            assert found.range_count(kind) == sum(1 for run in runs if run[2] == kind)
    assert found.overlap("-?", 100, 200) == sum(s in "-?" for s in expected[100:200])
    for position in range(0, 300, 7):  # what a pass finds next, without a list
        at = next((i for i in range(position, 300) if expected[i] == "-"), None)
        size = None if at is None else next(
            (i for i in range(at, 300) if expected[i] != "-"), 300) - at
        assert found.next_run("-", position) == (None if at is None else (at, size))


STRESS = """
from evidencekit.sources.sectors import BAD, READ, ReadMap
found = ReadMap()
for number in range(1_000_000):
    found.add(number * 1024, 512, READ)
    found.add(number * 1024 + 512, 512, BAD)
text = found.mapfile(["a test"])
buffer = memoryview(bytearray(1 << 20))
total = 0
while count := text.readinto(buffer):
    total += count
assert total == text.size > 50_000_000 and found.range_count(BAD) == 1_000_000
# this process's own peak (VmHWM): ru_maxrss keeps the parent's across fork and exec, and
# pytest's process is over 64 MB after the device tests
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""


def test_a_million_bad_ranges_take_a_few_megabytes_and_the_mapfile_is_never_held_whole(
) -> None:
    # a disk with a bad sector every other sector: the map held a list of three Python
    # objects per run and the mapfile was made whole in memory: 553 MB peak for a million bad
    # ranges; then 9 bytes a run in memory and a mapfile made as it is stored (40.6 MB peak,
    # growing with the runs); now a few pages of runs in memory, the others in a temporary
    # file (27.7 MB peak, the interpreter's 18 MB included, whatever the number of runs)
    done = subprocess.run([sys.executable, "-c", STRESS], capture_output=True, text=True,
                          check=True)
    peak_kib = int(done.stdout)
    assert peak_kib < 36 * 1024, f"peak RSS {peak_kib} KiB"


def test_the_mapfile_streamed_is_the_mapfile_whole() -> None:
    found = ReadMap()
    for number in range(10_000):
        found.add(number * 1024, 512, READ)
        found.add(number * 1024 + 512, 512, BAD)
    text = found.mapfile(["a test"], phase="*", at=4096)
    buffer = memoryview(bytearray(4000))  # smaller than a batch of lines
    pieces = []
    while count := text.readinto(buffer):
        pieces.append(bytes(buffer[:count]))
    assert b"".join(pieces) == text.read() and len(text.read()) == text.size
    assert b"\n0x00001000     *               1\n" in text.read()


def test_the_spool_gives_back_what_was_written_in_any_order(tmp_path: Path) -> None:
    start, size = 3 * SPOOL_BLOCK, 7 * SPOOL_BLOCK + 1536
    image = os.urandom(size)
    spool = ImageSpool(tmp_path, start, size)
    try:
        pieces = [(p, min(p + SPOOL_BLOCK // 2 + 512, size))
                  for p in range(start, size, SPOOL_BLOCK // 2 + 512)]
        random.Random(1).shuffle(pieces)
        holes = pieces[:2]  # never written: zeros
        for low, high in pieces[2:]:
            spool.write(low, memoryview(image)[low:high])
        spool.write(pieces[3][0], memoryview(image)[pieces[3][0]:pieces[3][1]])  # again
        expected = bytearray(image)
        for low, high in holes:
            expected[low:high] = bytes(high - low)
        back = bytearray(size - start)
        spool.read(start, memoryview(back))
        assert bytes(back) == bytes(expected[start:])
        assert list(tmp_path.iterdir()) == []  # the file has no name: nothing left behind
    finally:
        spool.close()


def test_a_spool_changed_on_disk_is_refused(tmp_path: Path) -> None:
    spool = ImageSpool(tmp_path, 0, 2 * SPOOL_BLOCK)
    try:
        spool.write(0, memoryview(os.urandom(2 * SPOOL_BLOCK)))
        fd = spool._file.fileno()
        changed = bytes([os.pread(fd, 1, 100)[0] ^ 1])
        os.pwrite(fd, changed, 100)  # in the first block's ciphertext
        with pytest.raises(OutputError, match="changed or cut short"):
            spool.read(0, memoryview(bytearray(SPOOL_BLOCK)))
    finally:
        spool.close()


def test_a_spool_that_cannot_be_written_stops_the_capture_not_the_device(tmp_path: Path
                                                                         ) -> None:
    # a full disk under the spool (ENOSPC) reached the pipeline as an OSError, which it takes
    # for the device's read error: "the remaining bytes are stored as zeros", sealed
    spool = ImageSpool(tmp_path, 0, SPOOL_BLOCK)
    try:
        spool._file.close()
        spool._file = open(os.devnull, "rb")  # noqa: SIM115 (closed by the spool)
        with pytest.raises(OutputError, match="could not be written"):
            spool.write(0, memoryview(bytes(SPOOL_BLOCK)))
        assert not isinstance(OutputError("x"), OSError)
    finally:
        spool.close()


def test_a_spool_block_cut_short_by_a_full_disk_is_said_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a disk that fills up in the middle of a block takes part of it and says nothing (write()
    # returns fewer bytes); the block was counted as stored, the passes went on over the rest
    # of the disk, and the read back at the end said the copy was "changed or cut short while
    # the capture was running", as if someone had tampered with it
    import evidencekit.sources.rescue as rescue

    monkeypatch.setattr(rescue, "MARGIN", 0)  # the watch aside: the disk full before it looks
    if os.geteuid() != 0:
        skip_or_fail("mounting a small tmpfs needs root")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        spool = ImageSpool(small, 0, 2 * SPOOL_BLOCK)  # a block and its 28 bytes: > 1 MiB
        try:
            with pytest.raises(OutputError, match="could not be written: No space left"):
                spool.write(0, memoryview(bytes(SPOOL_BLOCK)))
        finally:
            spool.close()
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_a_spool_filling_the_disk_is_stopped_before_it_takes_the_last_of_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the room was counted once, before the first bad area: the spool then wrote until ENOSPC,
    # taking the last bytes of a disk the system (or the bundle's own end) may need
    import evidencekit.sources.rescue as rescue
    from tests.support.mounts import tmpfs

    monkeypatch.setattr(rescue, "MARGIN", 3 * SPOOL_BLOCK)
    monkeypatch.setattr(rescue, "LOOK_EVERY", SPOOL_BLOCK)
    with tmpfs(tmp_path, size_mib=8) as small:
        spool = ImageSpool(small, 0, 16 * SPOOL_BLOCK)
        try:
            written = 0
            with pytest.raises(OutputError, match=r"is full \(.* free\).* was stopped before"):
                for index in range(16):
                    spool.write(index * SPOOL_BLOCK, memoryview(bytes(SPOOL_BLOCK)))
                    written += 1
            assert 3 <= written <= 5  # stopped with about 3 MiB left, not at ENOSPC
        finally:
            spool.close()


@pytest.mark.parametrize(("bundle_beside", "room"), [(True, False), (False, True)])
def test_the_room_to_read_past_counts_the_bundle_only_where_it_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bundle_beside: bool,
        room: bool) -> None:
    """With -o s3:// the bundle goes to the store: only the spool is written here. Counting
    the image twice refused a spool that fitted (read where found instead, slowly)."""
    import shutil

    from evidencekit.sources import rescue

    rest = 10 << 30
    free = rest + (rest // SPOOL_BLOCK) * 28 + rescue.MARGIN + (1 << 30)  # the spool, not two
    usage = shutil.disk_usage(tmp_path)._replace(free=free)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage)
    why = rescue.spool_room(tmp_path, rest, bundle_beside=bundle_beside)
    assert (why is None) == room, why


REST = 10 << 30
SPOOL = REST + (REST // SPOOL_BLOCK) * 28  # the rest of the image, encrypted in blocks


@pytest.mark.parametrize(("free", "frees_as_read", "room"), [
    # the bundle's watch (capture._RoomWatch) stops a capture below 272 MiB free: a spool
    # leaving 100 MiB was taken, and the capture stopped at its end, hours later
    (SPOOL + REST + (REST >> 10) + (100 << 20), False, False),
    (SPOOL + REST + (REST >> 10) + (300 << 20), False, True),
    # a spool giving each block back as it is read back: the image once, not twice
    (SPOOL + SPOOL_BLOCK + (300 << 20), True, True),
    (SPOOL + SPOOL_BLOCK + (300 << 20), False, False),
    (SPOOL + SPOOL_BLOCK + (100 << 20), True, False)],
    ids=["beside-short-of-the-bundle-watch", "beside-twice", "beside-freed-once",
         "beside-not-freed-once", "beside-freed-short-of-the-watch"])
def test_the_room_to_read_past_beside_the_bundle_is_what_is_really_needed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, free: int, frees_as_read: bool,
        room: bool) -> None:
    import shutil

    from evidencekit.sources import rescue

    usage = shutil.disk_usage(tmp_path)._replace(free=free)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage)
    why = rescue.spool_room(tmp_path, REST, bundle_beside=True, frees_as_read=frees_as_read)
    assert (why is None) == room, why


def test_the_spool_gives_each_block_back_once_read_back(tmp_path: Path) -> None:
    """The rest of the image was held twice until the end (the spool, the bundle's copy): each
    block's space is now given back to the file system once it is read back (a real tmpfs),
    and a block asked for again is an error, never zeros."""
    from tests.support.mounts import tmpfs

    with tmpfs(tmp_path, size_mib=96) as ram:  # (the spool stops below 64 MiB free)
        image = os.urandom(6 * SPOOL_BLOCK)
        spool = ImageSpool(ram, 0, len(image))
        try:
            assert spool.frees_as_read
            spool.write(0, memoryview(image))
            held = [_used(ram)]
            back = bytearray(len(image))
            for index in range(6):
                piece = slice(index * SPOOL_BLOCK, (index + 1) * SPOOL_BLOCK)
                spool.read(piece.start, memoryview(back)[piece])
                held.append(_used(ram))
            assert bytes(back) == image
            assert held[0] >= 6 * SPOOL_BLOCK and held[-1] < SPOOL_BLOCK // 4, held
            assert all(later < earlier for earlier, later in pairwise(held)), held
            with pytest.raises(OutputError, match="asked for again after it was read back"):
                spool.read(0, memoryview(bytearray(16)))
        finally:
            spool.close()


def test_the_spool_read_back_keeps_no_block_of_the_file_system(tmp_path: Path) -> None:
    """Spool blocks (1 MiB and 28 bytes) do not start on the file system's blocks: each hole
    punched exactly left the file system block it shares with the block before allocated (4 KiB
    a MiB: 0.4 % of the rest of the image, 4 GB of a terabyte, beyond what spool_room counts
    and the bundle's watch keeps free). Each hole now reaches back over the block before,
    already given back."""
    from tests.support.mounts import tmpfs

    with tmpfs(tmp_path, size_mib=96) as ram:
        image = os.urandom(5 * SPOOL_BLOCK + 1000)
        spool = ImageSpool(ram, 0, len(image))
        try:
            spool.write(0, memoryview(image))
            back = bytearray(len(image))
            spool.read(0, memoryview(back)[:SPOOL_BLOCK + 5])  # pieces across the blocks
            spool.read(SPOOL_BLOCK + 5, memoryview(back)[SPOOL_BLOCK + 5:])
            assert bytes(back) == image
            assert os.fstat(spool._file.fileno()).st_blocks == 0
        finally:
            spool.close()


def _used(folder: Path) -> int:
    found = os.statvfs(folder)
    return (found.f_blocks - found.f_bfree) * found.f_frsize


def test_a_map_that_cannot_be_written_out_stops_the_capture_not_taken_for_the_device(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the read engine takes an OSError for the device's (a bad sector): a full disk under the
    # map's temporary file must be said as what it is, and stop the capture
    from types import SimpleNamespace

    import evidencekit.sources.sectors as sectors

    monkeypatch.setattr(sectors, "tempfile", SimpleNamespace(
        TemporaryFile=lambda **_: open("/dev/full", "r+b"),  # noqa: SIM115 (the map's)
        gettempdir=lambda: "/full"))
    found = ReadMap(2, 2)
    with pytest.raises(OutputError, match=r"map of what was read \(in /full\) could not be "
                       r"written: No space left"):
        for number in range(100):
            found.add(number * 1024, 512, READ)
            found.add(number * 1024 + 512, 512, BAD)
    assert not issubclass(OutputError, OSError)
