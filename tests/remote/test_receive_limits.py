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
