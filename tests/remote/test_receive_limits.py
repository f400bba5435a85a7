"""How far a received stream may grow (evidencekit.remote.receive.StreamLimit): a host that
sends without end never fills the disk here."""

from __future__ import annotations

from pathlib import Path

import pytest

from evidencekit.progress import NoProgress
from evidencekit.remote import protocol
from evidencekit.remote.receive import DISK_RESERVE, StreamLimit, free_bytes

MiB = 1 << 20


def test_a_stream_is_stopped_before_the_free_space_falls_below_the_reserve(
        tmp_path: Path) -> None:
    disk = {"free": DISK_RESERVE + 100 * MiB}

    def free(folder: Path) -> int:
        assert folder == tmp_path
        return disk["free"]

    limit = StreamLimit(tmp_path, None, NoProgress(), free)
    with pytest.raises(protocol.Refused, match=r"has only 59\.0 MiB free left after 105\.0 MiB"):
        for _ in range(200):  # 1 MiB frames, each written to the disk
            disk["free"] -= MiB
            limit.advance(MiB)
    assert disk["free"] >= DISK_RESERVE - 8 * MiB  # looked at every 8 MiB


def test_a_stream_is_stopped_past_max_size_and_not_before(tmp_path: Path) -> None:
    limit = StreamLimit(tmp_path, 3 * MiB, NoProgress(), lambda folder: 1 << 40)
    limit.advance(2 * MiB)
    limit.advance(MiB)  # exactly --max-size: still allowed
    with pytest.raises(protocol.Refused, match=r"past --max-size \(3 MiB\)"):
        limit.advance(1)


def test_the_free_space_is_the_file_systems(tmp_path: Path) -> None:
    free = free_bytes(tmp_path)
    assert free is not None and free > 0
    assert free_bytes(tmp_path / "missing") is None


def test_a_small_bundle_fits_on_a_disk_with_less_free_than_the_reserve(tmp_path: Path) -> None:
    """A USB stick with 20 MiB free took a local capture of 1 MiB, but a remote one of 1.5 KiB
    was refused at its first frame ('only 20.0 MiB free left'): on such a disk the reserve is
    half of what was free when the stream began."""
    disk = {"free": 20 * MiB}

    def free(folder: Path) -> int:
        return disk["free"]

    limit = StreamLimit(tmp_path, None, NoProgress(), free)
    for _ in range(9):  # 9 MiB of a bundle that ends there
        disk["free"] -= MiB
        limit.advance(MiB)
    with pytest.raises(protocol.Refused, match=r"has only 9\.0 MiB free left after 11\.0 MiB"):
        for _ in range(20):  # a flood goes on: stopped once half the free space is used
            disk["free"] -= MiB
            limit.advance(MiB)
