"""Format version 4's zstd layer (evidencekit/format/compression.py): what `zstd -d` reads and
nothing else, bounded, with the output of each call no larger than asked."""

from __future__ import annotations

import io
import os
import shutil
import subprocess

import pytest

from evidencekit.errors import BundleError
from evidencekit.format.compression import Compressing, Decompressing
from tests.support.tools import require_tool

SKIPPABLE = (0x184D2A50).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"abc"


def compressed(data: bytes) -> bytes:
    out = io.BytesIO()
    writer = Compressing(out)
    for start in range(0, len(data), 100_000):  # written in pieces, as capture does
        writer.write(memoryview(data)[start:start + 100_000])
    writer.close()
    return out.getvalue()


def read_all(data: bytes, limit: int = 1 << 40, size: int = 1 << 16) -> bytes:
    reader = Decompressing(io.BytesIO(data), limit)
    pieces = []
    buffer = bytearray(size)
    while count := reader.readinto(buffer):
        assert count <= size
        pieces.append(bytes(buffer[:count]))
    return b"".join(pieces)


def test_what_is_compressed_comes_back_and_zeros_shrink() -> None:
    data = os.urandom(300_000) + bytes(5_000_000) + b"end"
    frame = compressed(data)
    assert len(frame) < 320_000  # the zeros take almost nothing, the random bytes their size
    assert read_all(frame) == data


def test_the_zstd_tool_reads_what_is_written_and_the_reader_what_it_writes() -> None:
    require_tool("zstd")
    data = os.urandom(70_000) + bytes(1_000_000)
    tool = shutil.which("zstd")
    assert tool is not None
    out = subprocess.run([tool, "-d", "-c"], input=compressed(data), capture_output=True,
                         check=True).stdout
    assert out == data
    written = subprocess.run([tool, "-1", "-c"], input=data, capture_output=True,
                             check=True).stdout
    assert read_all(written) == data


@pytest.mark.parametrize("damage", ["cut", "garbage after", "not zstd"])
def test_damage_is_refused(damage: str) -> None:
    frame = compressed(os.urandom(1000) + bytes(100_000))
    data = {"cut": frame[:-5], "garbage after": frame + b"garbage!", "not zstd": b"x" * 100}
    with pytest.raises(BundleError) as raised:
        read_all(data[damage])
    assert ("middle of a zstd frame" if damage == "cut" else "not the zstd data") in \
        raised.value.message


def test_a_bomb_stops_at_the_limit_with_memory_flat() -> None:
    writer_out = io.BytesIO()
    writer = Compressing(writer_out)
    zeros = bytes(1 << 20)
    for _ in range(64):
        writer.write(zeros)
    writer.close()
    frame = writer_out.getvalue()
    assert len(frame) < 10_000  # 64 MiB in a few kilobytes
    reader = Decompressing(io.BytesIO(frame), 10 << 20)
    buffer = bytearray(1 << 20)
    read = 0
    with pytest.raises(BundleError) as raised:
        while count := reader.readinto(buffer):
            assert count <= len(buffer)  # never more than asked, whatever a block expands to
            read += count
    assert read <= 10 << 20
    assert "decompresses to more than the 10 MiB" in raised.value.message
    assert "decompression bomb" in raised.value.message


def test_exactly_the_limit_is_allowed() -> None:
    data = bytes(12345)
    assert read_all(compressed(data), limit=12345) == data


def _frame_with_window(data: bytes, window_log: int) -> bytes:
    from tests.support.craft import zstd_window
    return zstd_window(data, window_log, 0)


def test_a_window_beyond_8_mib_is_refused_before_it_is_allocated() -> None:
    """RFC 8878 §3.1.1.1.2: decoders support windows up to 8 MiB, encoders stay within it;
    a larger one (zstd allows 128 MiB by default) would be memory a crafted frame takes."""
    data = os.urandom(1000) + bytes(100_000)
    assert read_all(_frame_with_window(data, 23)) == data
    with pytest.raises(BundleError) as raised:
        read_all(_frame_with_window(data, 24))
    assert "zstd window" in raised.value.message and "8 MiB" in raised.value.message


@pytest.mark.parametrize("after", ["a second frame", "a skippable frame", "an empty frame"])
def test_anything_after_the_one_frame_is_refused(after: str) -> None:
    """evidencekit writes one frame: what follows it would be bytes no reader shows (a
    skippable frame), or a decoder set up again per frame of a few bytes."""
    follows = {"a second frame": compressed(b"two"), "a skippable frame": SKIPPABLE,
               "an empty frame": compressed(b"")}[after]
    with pytest.raises(BundleError) as raised:
        read_all(compressed(b"one ") + follows)
    assert "after its zstd frame" in raised.value.message


def test_a_skippable_frame_first_is_refused() -> None:
    with pytest.raises(BundleError) as raised:
        read_all(SKIPPABLE + compressed(b"one"))
    assert "skippable frame" in raised.value.message
