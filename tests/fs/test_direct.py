"""fs.direct.DiskWriter on real file systems: the bytes given are the bytes in the file, on the
direct path (unaligned start, stages written on the writer's thread), after a refusal of
O_DIRECT at the first write, and a full disk under the writer's thread is an OSError with no
thread left behind."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from evidencekit.fs.direct import DiskWriter
from tests.support.mounts import tmpfs
from tests.support.writing import refuse_o_direct_writes

MIB = 1 << 20


def _write(path: Path, data: bytes, head: bytes = b"H" * 1000) -> DiskWriter:
    """*head* written as the bundle's first bytes, then *data* through a DiskWriter in
    pieces that cross its stages, then one byte after it (the seal's place)."""
    with path.open("w+b") as out:
        out.write(head)
        writer = DiskWriter(out)
        try:
            for at in range(0, len(data), 300_001):
                writer.write(memoryview(data)[at:at + 300_001])
            writer.finish()
            out.write(b"T")
        finally:
            writer.close()
    return writer


def test_the_bytes_written_are_the_bytes_given(tmp_path: Path) -> None:
    data = os.urandom(5 * MIB + 777)
    _write(tmp_path / "out", data)
    assert (tmp_path / "out").read_bytes() == b"H" * 1000 + data + b"T"


def test_o_direct_refused_at_the_first_write_falls_back_to_normal_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As a file system that opens a file O_DIRECT but refuses its writes (EINVAL): nothing
    lost, nothing written twice."""
    refuse_o_direct_writes(monkeypatch)
    data = os.urandom(3 * MIB + 5)
    writer = _write(tmp_path / "out", data)
    assert (tmp_path / "out").read_bytes() == b"H" * 1000 + data + b"T"
    assert not writer._direct_works


def test_a_full_disk_is_an_oserror_and_leaves_no_thread(tmp_path: Path) -> None:
    before = threading.active_count()
    with tmpfs(tmp_path, size_mib=4) as ram, pytest.raises(OSError) as raised:
        _write(ram / "out", os.urandom(12 * MIB))
    assert raised.value.errno == errno.ENOSPC
    assert threading.active_count() == before
