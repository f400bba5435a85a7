"""capture --device end to end: the real command on a loop device with two bad sectors (exit 3,
everything else kept), then verify, extract, and the same bytes found by hand (tar, age -d,
tar -x, sha256sum), the bad ranges read back by GNU ddrescue's own ddrescuelog."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.badfs import Faults, bad_disk, loop_device
from tests.support.by_hand import by_hand as documented
from tests.support.by_hand import passed, toolbox_in
from tests.support.piped import by_hand, capture, evidencekit, manifest
from tests.support.schemas import assert_valid
from tests.support.tools import require_tool, skip_or_fail

MIB = 1 << 20


def test_a_disk_with_bad_sectors_is_imaged_incomplete_and_checkable_by_hand(
        tmp_path: Path, keys: dict[str, Path], home: Path) -> None:
    content = os.urandom(6 * MIB)
    bad = (2 * MIB + 4096, 2 * MIB + 5120)
    with bad_disk(tmp_path, content, Faults(bad=[bad])) as device:
        done = capture(tmp_path, keys, "--device", device, "--hash", "md5", "--progress", "json")
    name = f"{os.path.basename(device)}.raw"
    assert done.returncode == 3, done.stderr  # incomplete: two sectors never read
    result = json.loads(done.stdout)
    assert not result["seal"]["complete"] and result["seal"]["counts"]["errors"] == 1
    assert result["seal"]["format_version"] == 4  # a compressed payload (FORMAT.md §9)
    [problem] = result["problems"]
    assert "2 bad sectors" in problem["problem"] and problem["path"] == name
    lines = [json.loads(line) for line in done.stderr.decode().splitlines() if line.startswith("{")]
    said = [line.get("status") for line in lines]
    assert said[-1] == "2 bad sectors"

    checked = evidencekit("verify", tmp_path / "out.evidence", "-i", keys["identity"], "--json")
    assert checked.returncode == 0 and json.loads(checked.stdout)["ok"], checked.stdout
    extracted = evidencekit("extract", tmp_path / "out.evidence", "-i", keys["identity"],
                            "-o", tmp_path / "out")
    assert extracted.returncode == 0, extracted.stderr
    expected = content[:bad[0]] + bytes(bad[1] - bad[0]) + content[bad[1]:]
    assert (tmp_path / "out/data" / name).read_bytes() == expected

    reported = evidencekit("report", tmp_path / "out.evidence", "-i", keys["identity"], "-o",
                           tmp_path / "report.html")
    assert reported.returncode == 0, reported.stderr
    page = (tmp_path / "report.html").read_text()
    assert "Device image" in page and f"2 bad sectors stored as zeros, the first at byte {bad[0]}" \
        in page

    digest = hashlib.sha256(expected).hexdigest()
    assert by_hand(tmp_path / "out.evidence", keys["identity"], tmp_path / "hand",
                   f"data/{name}", compressed=True) == digest
    # the whole procedure of FORMAT.md §7.2 too: the image and its documents are flat in data/
    output = passed(documented(toolbox_in(tmp_path / "toolbox"), tmp_path / "out.evidence",
                               "-i", keys["identity"]))
    assert "the 0 folders manifest.json lists are there, and no others" in output
    found = manifest(tmp_path / "hand")
    record = found["sources"][0]
    assert record["kind"] == "device" and record["details"]["bad_sectors"] == 2
    require_tool("ddrescuelog")
    listed = subprocess.run(["ddrescuelog", "-l-", "-b512",
                             str(tmp_path / "hand/bag/data" / f"{name}.mapfile")],
                            capture_output=True, text=True, check=True).stdout.split()
    assert listed == [str(bad[0] // 512), str(bad[0] // 512 + 1)]


def test_a_missing_device_is_a_usage_error(tmp_path: Path, keys: dict[str, Path],
                                          home: Path) -> None:
    done = capture(tmp_path, keys, "--device", tmp_path / "nothing")
    assert done.returncode == 2
    assert "No such file" in json.loads(done.stdout)["error"]["message"]
    assert not (tmp_path / "out.evidence").exists()


def test_a_mostly_empty_image_makes_a_small_bundle(tmp_path: Path, keys: dict[str, Path],
                                                   home: Path) -> None:
    # format version 4: the image is compressed; a sparse image of 64 MiB holding 1 MiB of
    # data makes a bundle of about that megabyte, not of 64 MiB
    image = tmp_path / "disk.img"
    data = os.urandom(MIB)
    with open(image, "wb") as f:
        f.truncate(64 * MIB)
        f.seek(40 * MIB)
        f.write(data)
    done = capture(tmp_path, keys, "--device", image)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.evidence").stat().st_size < 2 * MIB
    seal = json.loads(done.stdout)["seal"]
    assert seal["format_version"] == 4 and seal["total_bytes"] > 64 * MIB
    checked = evidencekit("verify", tmp_path / "out.evidence", "-i", keys["identity"], "--json")
    assert checked.returncode == 0, checked.stdout
    assert by_hand(tmp_path / "out.evidence", keys["identity"], tmp_path / "hand",
                   "data/disk.img", compressed=True) == hashlib.sha256(image.read_bytes()).hexdigest()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 300 MiB: room to start a device capture (272 MiB), not for 300 MiB that do
    not compress."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300m", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        skip_or_fail(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_an_image_that_does_not_compress_enough_stops_before_the_disk_is_full(
        tmp_path: Path, keys: dict[str, Path], home: Path, small_disk: Path) -> None:
    # the bundle's size is known only once the image is read (format version 4): the capture
    # starts, looks at the free space every 256 MiB written, and stops with 272 MiB left
    image = tmp_path / "photos.img"
    with open(image, "wb") as f:
        for _ in range(300):
            f.write(os.urandom(MIB))
    done = capture(tmp_path, keys, "--device", image, "-o", small_disk / "photos.evidence")
    assert done.returncode == 2, done.stderr
    message = json.loads(done.stdout)["error"]["message"]
    assert "does not compress enough to fit; nothing was kept" in message
    assert os.listdir(small_disk) == []


def test_a_disk_with_too_little_room_for_any_bundle_is_refused_before_reading(
        tmp_path: Path, keys: dict[str, Path], home: Path, small_disk: Path) -> None:
    (small_disk / "filler").write_bytes(bytes(100 * MIB))
    image = tmp_path / "stick.img"
    with open(image, "wb") as f:
        f.truncate(64 * MIB)
    done = capture(tmp_path, keys, "--device", image, "-o", small_disk / "stick.evidence")
    assert done.returncode == 2, done.stderr
    assert "too little for any bundle of a disk image" in json.loads(done.stdout)["error"]["message"]
    assert os.listdir(small_disk) == ["filler"]


def test_an_empty_image_is_the_same_as_itself(tmp_path: Path, keys: dict[str, Path],
                                              home: Path) -> None:
    (tmp_path / "empty.img").write_bytes(b"")
    assert capture(tmp_path, keys, "--device", tmp_path / "empty.img").returncode == 0
    same = evidencekit("verify", tmp_path / "out.evidence", "-i", keys["identity"],
                       "--against", tmp_path / "empty.img", "--json")
    assert same.returncode == 0, same.stdout
    assert json.loads(same.stdout)["against"]["same"] is True


def test_verify_against_names_the_windows_that_differ(tmp_path: Path, keys: dict[str, Path],
                                                      home: Path) -> None:
    image = tmp_path / "stick.img"
    content = bytearray(os.urandom(33 * MIB))  # three windows of 16 MiB, the last of 1 MiB
    image.write_bytes(content)
    os.utime(image, ns=(10**18, image.stat().st_mtime_ns))  # an access time before it changed
    assert capture(tmp_path, keys, "--device", image).returncode == 0
    bundle = tmp_path / "out.evidence"

    same = evidencekit("verify", bundle, "-i", keys["identity"], "--against", image, "--json")
    assert same.returncode == 0, same.stdout
    assert image.stat().st_atime_ns == 10**18  # read twice, its access time never updated
    assert json.loads(same.stdout)["against"]["same"] is True
    text = evidencekit("verify", bundle, "-i", keys["identity"], "--against", image)
    assert b"SAME" in text.stdout and b"all 3 hash windows" in text.stdout

    content[20 * MIB] ^= 1  # one bit in the second window
    (tmp_path / "changed.img").write_bytes(content)
    changed = evidencekit("verify", bundle, "-i", keys["identity"], "--against",
                          tmp_path / "changed.img", "--json")
    assert changed.returncode == 1
    result = json.loads(changed.stdout)
    assert [(w["offset"], w["size"]) for w in result["against"]["differing"]] == \
        [(16 * MIB, 16 * MIB)]
    text = evidencekit("verify", bundle, "-i", keys["identity"], "--against",
                       tmp_path / "changed.img")
    assert text.returncode == 1
    assert b"VERIFIED" in text.stdout  # the bundle is sound: the device is what changed
    assert b"DIFFERENT" in text.stdout and f"bytes {16 * MIB}".encode() in text.stdout

    # nothing to compare without the key (the windows are in the payload): a usage error, said
    # before the bundle is read, not exit 1 as if the device differed
    without_key = evidencekit("verify", bundle, "--against", image, "--json")
    assert without_key.returncode == 2
    assert "key is needed" in json.loads(without_key.stdout)["error"]["message"]


def test_verify_against_what_cannot_be_compared_is_refused_before_verifying(
        tmp_path: Path, keys: dict[str, Path], home: Path) -> None:
    (tmp_path / "stick.img").write_bytes(os.urandom(MIB))
    assert capture(tmp_path, keys, "--device", tmp_path / "stick.img").returncode == 0
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    for target, said in ((tmp_path / "fifo", "neither a block device nor a file"),
                         (tmp_path / "folder", "neither a block device nor a file"),
                         (tmp_path / "missing", "No such file")):
        done = evidencekit("verify", tmp_path / "out.evidence", "-i", keys["identity"],
                           "--against", target, "--json", "--progress", "json")
        assert done.returncode == 2, done.stdout
        assert said in json.loads(done.stdout)["error"]["message"]
        assert b"\"start\"" not in done.stderr  # refused before the bundle was read


def test_verify_against_the_same_loop_device(tmp_path: Path, keys: dict[str, Path],
                                             home: Path) -> None:
    (tmp_path / "backing").write_bytes(os.urandom(2 * MIB))
    with loop_device(tmp_path / "backing") as device:
        assert capture(tmp_path, keys, "--device", device).returncode == 0
        same = evidencekit("verify", tmp_path / "out.evidence", "-i", keys["identity"],
                           "--against", device, "--json")
    assert same.returncode == 0, same.stdout
    assert json.loads(same.stdout)["against"] == {
        "target": device, "image": f"data/{os.path.basename(device)}.raw",
        "image_size": 2 * MIB, "target_size": 2 * MIB, "windows": 1, "differing": [],
        "same": True, "stopped": None}


def test_verify_against_a_device_that_stops_answering_says_so(tmp_path: Path,
                                                             keys: dict[str, Path],
                                                             home: Path) -> None:
    # the windows it could not read again are not a device that changed: each says how much of
    # it was not read, and the device's stopping is said (all three windows were "differing",
    # the last two with nothing unread, as if their bytes had been altered)
    content = os.urandom(40 * MIB)
    (tmp_path / "disk.img").write_bytes(content)
    assert capture(tmp_path, keys, "--device", tmp_path / "disk.img").returncode == 0
    with bad_disk(tmp_path, content, Faults(vanish_at=20 * MIB)) as device:
        done = evidencekit("verify", tmp_path / "out.evidence", "-i", keys["identity"],
                           "--against", device, "--json")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert_valid(result, "verify")
    against = result["against"]
    assert "stopped answering at byte" in against["stopped"] and against["same"] is False
    unread = {w["offset"]: w["unread_now"] for w in against["differing"]}
    assert unread == {16 * MIB: 12 * MIB, 32 * MIB: 8 * MIB}  # the first window still the same
    assert any("stopped answering while it was read again" in f["problem"]
               for f in result["findings"])


def test_verify_against_says_which_differences_were_unreadable_at_capture(
        tmp_path: Path, keys: dict[str, Path], home: Path) -> None:
    # a sector bad at capture (stored as zeros) that reads now differs; without the mapfile's
    # word an examiner saw only "differs", as if the device had been altered
    content = os.urandom(2 * MIB)
    with bad_disk(tmp_path, content, Faults(bad=[(MIB, MIB + 512)])) as device:
        assert capture(tmp_path, keys, "--device", device).returncode == 3
    (tmp_path / "now.img").write_bytes(content)  # the same disk, every sector reading now
    done = evidencekit("verify", tmp_path / "out.evidence", "-i", keys["identity"],
                       "--against", tmp_path / "now.img", "--json")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert_valid(result, "verify")
    [window] = result["against"]["differing"]
    assert (window["unread_now"], window["unread_at_capture"]) == (0, 512)
    assert any("could not be read at capture" in f["problem"] for f in result["findings"])
    text = evidencekit("verify", tmp_path / "out.evidence", "-i", keys["identity"],
                       "--against", tmp_path / "now.img")
    assert b"512 bytes were unreadable at capture" in text.stdout


def _imaging_started(device: str | Path, keys: dict[str, Path],
                     out: Path) -> subprocess.Popen[str]:
    """`capture --device` run in the background, once it has begun writing into *out*."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "evidencekit", "capture", "--device", device, "-R",
         keys["recipient"], "--sign-key", keys["signer"], "-o", out / "disk.evidence"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not _writes_into(proc.pid, out) and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


def _writes_into(pid: int, folder: Path) -> bool:
    """Whether process *pid* has a file in *folder* open: writing has begun. (The bundle is a
    file without a name until it is finished, O_TMPFILE: the folder itself shows nothing.)"""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(f"{folder}/"):
                return True
    return False


def test_an_interrupted_imaging_leaves_nothing(tmp_path: Path, keys: dict[str, Path],
                                               home: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    slow = Faults(slow=[(0, 8 * MIB)], slow_seconds=0.1)  # every read waits: seconds in all
    with bad_disk(tmp_path, os.urandom(8 * MIB), slow) as device:
        proc = _imaging_started(device, keys, out)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert os.listdir(out) == []


def test_an_imaging_interrupted_while_reading_past_a_bad_area_leaves_nothing(
        tmp_path: Path, keys: dict[str, Path], home: Path) -> None:
    # the rest of the disk waits in a spool beside the bundle, read on a thread of its own:
    # Ctrl-C stops that thread at its next read, and the spool has no name to leave behind
    out = tmp_path / "out"
    out.mkdir()
    faults = Faults(bad=[(MIB, 7 * MIB)])  # 12,288 sectors to read one by one, three times
    with bad_disk(tmp_path, os.urandom(8 * MIB), faults) as device:
        proc = _imaging_started(device, keys, out)
        time.sleep(1)
        assert proc.poll() is None  # still reading the bad area
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - started < 15  # not after the whole bad area
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert os.listdir(out) == []


def test_verify_against_reads_past_a_failing_window_and_comes_back_to_it(
        tmp_path: Path, keys: dict[str, Path], home: Path) -> None:
    # the device was read in order, a failing block split and retried where it was found: a
    # dying disk could die there before the windows after it were compared; now the rest is
    # compared first, then the failing window again, sector by sector, as at capture
    content = os.urandom(48 * MIB)
    (tmp_path / "disk.img").write_bytes(content)
    assert capture(tmp_path, keys, "--device", tmp_path / "disk.img").returncode == 0
    bad = (2 * MIB, 2 * MIB + 4096)  # 8 bad sectors in the first window
    log = tmp_path / "reads.log"
    with bad_disk(tmp_path, content, Faults(bad=[bad]), log=log) as device:
        done = evidencekit("verify", tmp_path / "out.evidence", "-i", keys["identity"],
                           "--against", device, "--json")
    assert done.returncode == 1, done.stdout
    result = json.loads(done.stdout)
    assert_valid(result, "verify")
    [window] = result["against"]["differing"]  # the others are the same
    assert (window["offset"], window["unread_now"]) == (0, 4096)  # exactly the bad sectors
    reads = [(int(offset), int(size)) for offset, size in
             (line.split() for line in log.read_text().splitlines())]
    last_window = min(i for i, (offset, _) in enumerate(reads) if offset >= 32 * MIB)
    # The test disk sees our reads in the pieces the kernel cut them into, one a physically
    # contiguous run of the buffer's pages: a block may arrive as a single 4 KiB page, at
    # random (taken for a sector read, that failed a test once in 30 loaded runs). A piece
    # smaller than a page is a read of ours smaller than a page: the split down to sectors.
    sector_reads = [i for i, (offset, size) in enumerate(reads)
                    if size < 4096 and bad[0] <= offset < bad[1]]
    assert sector_reads and last_window < sector_reads[0]
    tries = [offset for offset, size in reads if size == 512 and bad[0] <= offset < bad[1]]
    assert max(tries.count(offset) for offset in set(tries)) <= 3  # --retries 2, as capture
