"""evidencekit.spool: content of unknown length held in memory, then on disk only encrypted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evidencekit.errors import OutputError
from evidencekit.spool import BLOCK, Spool


def spool_files(folder: Path) -> list[str]:
    """What this process holds open in *folder*: where an unnamed temporary file is seen."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder) + "/"):
            found.append(f"/proc/self/fd/{fd}")
    return found


def written(spool: Spool, data: bytes, piece: int) -> None:
    for start in range(0, len(data), piece):
        spool.write(memoryview(data)[start:start + piece])


def test_a_short_stream_stays_in_memory(tmp_path: Path) -> None:
    data = os.urandom(BLOCK + 12345)
    with Spool(tmp_path) as spool:
        written(spool, data, 70_000)
        assert spool.size == len(data)
        assert spool_files(tmp_path) == []
        assert b"".join(spool.blocks()) == data
    assert os.listdir(tmp_path) == []


def test_past_the_limit_it_is_on_disk_encrypted_and_read_back_exactly(tmp_path: Path) -> None:
    data = os.urandom(5 * BLOCK + 777)
    with Spool(tmp_path, memory_limit=2 * BLOCK) as spool:
        written(spool, data, 333_333)
        [on_disk] = spool_files(tmp_path)
        with open(on_disk, "rb") as raw:
            stored = raw.read()
        assert len(stored) == 3 * (BLOCK + 16)  # blocks 3 to 5, each with its tag
        # none of the plaintext that went to disk is there in clear
        for start in range(2 * BLOCK, 5 * BLOCK, BLOCK // 2):
            assert data[start:start + 64] not in stored
        assert b"".join(spool.blocks()) == data
        assert all(len(block) <= BLOCK for block in spool.blocks())
    assert spool_files(tmp_path) == [] and os.listdir(tmp_path) == []


def test_nothing_is_left_when_reading_fails_half_way(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), Spool(tmp_path, memory_limit=0) as spool:
        written(spool, os.urandom(2 * BLOCK), BLOCK)
        raise RuntimeError("the source failed")
    assert spool_files(tmp_path) == [] and os.listdir(tmp_path) == []


@pytest.mark.parametrize("damage", ["flip", "cut"])
def test_a_spool_changed_on_disk_is_refused(tmp_path: Path, damage: str) -> None:
    with Spool(tmp_path, memory_limit=0) as spool:
        written(spool, os.urandom(3 * BLOCK), BLOCK)
        [on_disk] = spool_files(tmp_path)
        with open(on_disk, "r+b") as raw:
            if damage == "flip":
                raw.seek(BLOCK + 16 + 5)
                byte = raw.read(1)
                raw.seek(-1, os.SEEK_CUR)
                raw.write(bytes([byte[0] ^ 1]))
            else:
                raw.truncate(2 * (BLOCK + 16) + 100)
        with pytest.raises(OutputError, match="changed or cut short"):
            b"".join(spool.blocks())


def test_a_spool_that_cannot_be_written_says_where(tmp_path: Path) -> None:
    """The stream's folder is named, not the bundle's (with -o s3:// there is no bundle file)."""
    missing = tmp_path / "gone"
    with Spool(missing, memory_limit=0) as spool, \
            pytest.raises(OutputError, match=f"cannot hold the stream in {missing}"):
        spool.write(bytes(BLOCK))
