import io
import tarfile

import pytest

from evidencekit.errors import BundleError
from evidencekit.format.outer import (
    HEADER_LEN,
    OuterWriter,
    member_header,
    read_member,
    read_members,
)


def build(tmp_path, members=(("README.txt", b"hello"),), stream=b"x" * 70000):
    path = tmp_path / "b.tar"
    with open(path, "wb") as f:
        writer = OuterWriter(f)
        for name, data in members:
            writer.add_bytes(name, data, 1_700_000_000)
        with writer.add_stream("payload.age", 1_700_000_001) as sink:
            sink.write(stream)
        writer.finish()
    return path


def test_header_is_fixed_size_whatever_the_size():
    for size in (0, 1, 8**11 - 1, 8**11, 10**15):
        assert len(member_header("payload.age", size, 0)) == HEADER_LEN


def test_standard_tar_reads_what_we_write(tmp_path):
    path = build(tmp_path)
    with tarfile.open(path) as tar:
        names = [(m.name, m.size, m.mtime, m.mode) for m in tar]
    assert names == [("README.txt", 5, 1_700_000_000, 0o444),
                     ("payload.age", 70000, 1_700_000_001, 0o444)]


def test_large_size_goes_to_pax_record():
    header = member_header("payload.age", 9 * 2**30, 0)
    info = tarfile.TarFile(fileobj=io.BytesIO(header + b"\0" * 1024), mode="r")
    member = info.next()
    assert member is not None and member.size == 9 * 2**30


def test_reader_round_trip(tmp_path):
    path = build(tmp_path)
    with open(path, "rb") as f:
        members = read_members(f)
        assert [m.name for m in members] == ["README.txt", "payload.age"]
        assert read_member(f, members[0], 100) == b"hello"
        with pytest.raises(BundleError, match="more than"):
            read_member(f, members[1], 100)


@pytest.mark.parametrize("offset", [0, 100, 124, 136, 148, 257, 512, 600, 1024 + 100, 1024 + 300, 1024 + 511])
def test_any_changed_header_byte_is_detected(tmp_path, offset):
    path = build(tmp_path)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with open(path, "rb") as f, pytest.raises(BundleError):
        read_members(f)


def test_truncation_at_every_block_is_detected(tmp_path):
    path = build(tmp_path)
    data = path.read_bytes()
    for cut in range(0, len(data), 512):
        path.write_bytes(data[:cut])
        with open(path, "rb") as f, pytest.raises(BundleError):
            read_members(f)


def test_trailing_garbage_and_dirty_padding_are_detected(tmp_path):
    path = build(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data + b"\0" * 512)
    with open(path, "rb") as f, pytest.raises(BundleError, match="unexpected bytes"):
        read_members(f)
    dirty = bytearray(data)
    dirty[HEADER_LEN + 5] = 1  # padding after README.txt's 5 bytes
    path.write_bytes(bytes(dirty))
    with open(path, "rb") as f, pytest.raises(BundleError, match="padding"):
        read_members(f)
