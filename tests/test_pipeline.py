"""The speed machinery (issue 5): pipeline stages, the strict tar reader, the fast tar headers.

BackgroundWriter, ReadAhead, ReadAheadStream and PieceReadAhead must keep order, hand errors from
their threads to the caller, stop when told to, and bound memory; the tar reader must read what
tarfile writes, refuse what evidencekit never writes, and never trust a declared size.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import random
import re
import tarfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from evidencekit.clock import rfc3339
from evidencekit.crypto import age
from evidencekit.errors import AgePayloadError
from evidencekit.format.inner import InnerTarWriter, bag_header, member_header, tarfile_bag_header
from evidencekit.format.tarstream import EXTENDED_LIMIT, TarFormatError, TarReader, pax_records
from evidencekit.pipeline import BackgroundWriter, PieceReadAhead, ReadAhead, ReadAheadStream
from evidencekit.progress import NoProgress, Throttled, throttled
from tests.support.tars import END, canonical_member, tar_member, tar_of


class Collector:
    """An output that records what it was given (as bytes: the blocks are reused)."""

    def __init__(self, fail_at: int | None = None, delay: float = 0.0) -> None:
        self.parts: list[bytes] = []
        self.fail_at = fail_at
        self.delay = delay
        self.calls = 0

    def write(self, data: Any) -> int:
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise OSError(28, "No space left on device")
        if self.delay:
            time.sleep(self.delay)
        self.parts.append(bytes(data))
        return len(data)

    @property
    def data(self) -> bytes:
        return b"".join(self.parts)


# ------------------------------------------------------------------------ BackgroundWriter


def test_background_writer_keeps_order_across_blocks_and_reserve():
    out = Collector()
    writer = BackgroundWriter(out, depth=2, block_size=1000)
    rng = random.Random(1)
    expected = bytearray()
    for _ in range(500):
        if rng.random() < 0.5:
            data = os.urandom(rng.choice([0, 1, 7, 511, 999, 1000, 1001, 4500]))
            assert writer.write(data) == len(data)
            expected += data
        else:
            wanted = rng.choice([1, 300, 1000, 3000])
            room = writer.reserve(wanted)
            assert 1 <= len(room) <= min(wanted, 1000)
            data = os.urandom(rng.randint(0, len(room)))
            room[: len(data)] = data
            writer.commit(len(data))
            expected += data
    writer.close()
    assert out.data == bytes(expected)
    assert all(len(part) <= 1000 for part in out.parts)


def test_background_writer_copies_so_the_caller_may_reuse_its_buffer():
    out = Collector(delay=0.01)
    writer = BackgroundWriter(out, depth=4, block_size=16)
    buffer = bytearray(b"a" * 16)
    writer.write(buffer)
    buffer[:] = b"b" * 16
    writer.write(buffer)
    writer.close()
    assert out.data == b"a" * 16 + b"b" * 16


def test_background_writer_small_writes_become_one_block():
    out = Collector()
    writer = BackgroundWriter(out, depth=2, block_size=1 << 20)
    for _ in range(1000):
        writer.write(b"x" * 100)
    writer.close()
    assert out.calls == 1 and out.data == b"x" * 100_000


def test_background_writer_flush_hands_over_a_partial_block():
    out = Collector()
    writer = BackgroundWriter(out, depth=2, block_size=1000)
    writer.write(b"abc")
    writer.flush()
    deadline = time.monotonic() + 5
    while not out.parts and time.monotonic() < deadline:
        time.sleep(0.01)
    assert out.data == b"abc"
    writer.close()
    assert out.data == b"abc"


def test_background_writer_error_reaches_the_caller():
    out = Collector(fail_at=2)
    writer = BackgroundWriter(out, depth=1, block_size=10)
    with pytest.raises(OSError, match="No space left"):
        # With one block in flight, the producer must see the failure (not wait forever).
        for _ in range(1000):
            writer.write(b"0123456789")
    with pytest.raises(OSError, match="No space left"):
        writer.close()
    assert out.data == b"0123456789"


def test_background_writer_error_raised_at_close():
    out = Collector(fail_at=1)
    writer = BackgroundWriter(out, depth=2, block_size=100)
    writer.write(b"tail")
    with pytest.raises(OSError):
        writer.close()


def test_background_writer_abort_stops_writing_and_returns():
    out = Collector(delay=0.05)
    writer = BackgroundWriter(out, depth=4, block_size=10)
    for _ in range(4):
        writer.write(b"0123456789")
    started = time.monotonic()
    writer.abort()
    assert time.monotonic() - started < 5
    assert len(out.parts) < 4  # queued blocks were dropped, not written
    with pytest.raises(RuntimeError, match="aborted"):
        writer.write(b"more")


def test_background_writer_memory_is_bounded_by_depth():
    release = threading.Event()

    class Slow:
        def write(self, data: Any) -> None:
            release.wait(10)

    writer = BackgroundWriter(Slow(), depth=2, block_size=10)
    done = threading.Event()

    def produce() -> None:
        for _ in range(10):
            writer.write(b"0123456789")
        done.set()

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    assert not done.wait(0.5)  # blocked: every block is in flight, none is allocated beyond
    release.set()
    assert done.wait(10)
    writer.close()


def test_inner_tar_writer_reserve_without_background_writer():
    out = io.BytesIO()
    inner = InnerTarWriter(out)
    room = inner.reserve(5)
    room[:3] = b"abc"
    inner.commit(3)
    assert out.getvalue() == b"abc"


# ------------------------------------------------------------------------- read-ahead


def test_read_ahead_keeps_order_then_raises_after_the_good_items():
    items = iter([1, 2, 3])

    def produce() -> int | None:
        item = next(items, None)
        if item is None:
            raise ValueError("broken after three")
        return item

    ahead = ReadAhead(produce, depth=1)
    assert [ahead.get(), ahead.get(), ahead.get()] == [1, 2, 3]
    with pytest.raises(ValueError, match="broken"):
        ahead.get()
    assert ahead.get() is None
    ahead.close()


def test_read_ahead_close_stops_a_blocked_producer():
    calls = []

    def produce() -> int:
        calls.append(1)
        return len(calls)

    ahead = ReadAhead(produce, depth=2)
    assert ahead.get() == 1
    ahead.close()  # the producer is blocked on a full queue: close must still return
    count = len(calls)
    time.sleep(0.1)
    assert len(calls) == count and ahead.get() is None


def test_read_ahead_stream_reads_everything_in_order_and_supports_readline():
    data = b"line one\nline two\n" + os.urandom(300_000)
    stream = ReadAheadStream(io.BytesIO(data), depth=2, block_size=4096)
    assert stream.readline() == b"line one\n"
    assert stream.readline(4) == b"line"
    rest = bytearray()
    while chunk := stream.read(rand := random.randint(1, 70_000)):
        assert len(chunk) <= rand
        rest += chunk
    assert b"line one\nline" + bytes(rest) == data
    stream.close()


def test_read_ahead_stream_close_early_leaves_the_source_consistent():
    source = io.BytesIO(os.urandom(1 << 20))
    stream = ReadAheadStream(source, depth=2, block_size=4096)
    stream.read(10)
    stream.close()
    position = source.tell()
    assert position % 4096 == 0 and 4096 <= position <= 5 * 4096  # whole blocks, then stopped


def test_piece_read_ahead_tees_and_reports_errors_after_the_good_pieces():
    class Source:
        """Gives 25 good bytes, then fails (as an AgeReader does on a truncated payload)."""

        def __init__(self) -> None:
            self.left = b"a" * 10 + b"b" * 10 + b"c" * 5

        def readinto(self, buffer: bytearray) -> int:
            if not self.left:
                raise AgePayloadError("age payload is truncated")
            count = min(len(buffer), len(self.left))
            buffer[:count] = self.left[:count]
            self.left = self.left[count:]
            return count

    tee = Collector()
    ahead = PieceReadAhead(Source(), block_size=10, tee=tee, depth=1)
    got = [bytes(ahead.read_piece()) for _ in range(3)]  # each valid until the next call
    assert got == [b"a" * 10, b"b" * 10, b"c" * 5]
    with pytest.raises(AgePayloadError):
        ahead.read_piece()
    assert tee.data == b"a" * 10 + b"b" * 10 + b"c" * 5
    ahead.close()


def test_piece_read_ahead_reuses_its_blocks():
    source = io.BytesIO(os.urandom(100_000))
    ahead = PieceReadAhead(source, block_size=1000, depth=2)
    blocks = set()
    received = bytearray()
    while piece := ahead.read_piece():
        assert isinstance(piece, memoryview)
        blocks.add(id(piece.obj))
        received += piece
    assert bytes(received) == source.getvalue()
    assert len(blocks) <= 5  # depth + the one being filled + the one lent, never one per piece
    ahead.close()


def test_age_round_trip_through_the_pipeline_stages():
    identity = age.X25519Identity.generate()
    plaintext = os.urandom(3 * age.CHUNK_SIZE + 123)
    out = io.BytesIO()
    disk = BackgroundWriter(out, depth=2, block_size=100_000)
    encryptor = age.AgeWriter(disk, [identity.recipient()])  # type: ignore[arg-type]
    front = BackgroundWriter(encryptor, depth=2, block_size=70_000)
    for start in range(0, len(plaintext), 50_000):
        front.write(plaintext[start : start + 50_000])
    front.close()
    encryptor.close()
    disk.close()
    assert age.decrypt(out.getvalue(), [identity]) == plaintext
    reader = age.AgeReader(ReadAheadStream(io.BytesIO(out.getvalue()), block_size=10_000),  # type: ignore[arg-type]
                           [identity])
    pieces = PieceReadAhead(reader, block_size=100_000)
    received = b"".join(bytes(piece) for piece in iter(pieces.read_piece, b""))
    assert received == plaintext


# ------------------------------------------------------------------- tar headers (writer)


class _Stat:
    def __init__(self, uid: int, gid: int) -> None:
        self.st_uid, self.st_gid = uid, gid


@pytest.mark.parametrize("seed", range(4))
def test_fast_headers_are_byte_for_byte_what_tarfile_writes(seed: int):
    rng = random.Random(seed)
    alphabet = "abcé€/ \n%\\" + "".join(chr(c) for c in range(32, 127))
    for _ in range(2000):
        name = "data/" + "".join(rng.choice(alphabet) for _ in range(
            rng.choice([1, 90, 94, 95, 96, 99, 100, 101, 300])))
        kind = rng.choice([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.LNKTYPE])
        size = 0 if kind != tarfile.REGTYPE else rng.choice([0, 1, 512, 8**11 - 1, 8**11, 10**13])
        mtime = rng.choice([0, -1, -(10**18), 1_780_000_000_123_456_789, 8**11 * 10**9, 10**20])
        info = rng.choice([None, _Stat(1000, 1000), _Stat(8**7, 5), _Stat(2**32 - 1, 8**7 - 1)])
        mode = rng.randrange(0o10000)
        link = None if kind != tarfile.LNKTYPE else "data/" + "".join(
            rng.choice(alphabet) for _ in range(rng.choice([1, 94, 95, 96, 300])))
        assert bag_header(name, kind, size, mode, mtime, info, link) == \
            tarfile_bag_header(name, kind, size, mode, mtime, info, link), name  # type: ignore[arg-type]
    odd = "data/not-utf8-\udce9"
    assert bag_header(odd, tarfile.REGTYPE, 1, 0o644, 5, None) == \
        tarfile_bag_header(odd, tarfile.REGTYPE, 1, 0o644, 5, None)
    assert bag_header("data/a", tarfile.LNKTYPE, 0, 0o644, 5, None, odd) == \
        tarfile_bag_header("data/a", tarfile.LNKTYPE, 0, 0o644, 5, None, odd)


def test_rfc3339_is_unchanged_by_its_cache():
    for ns in (0, 1, 999_999_999, 1_780_000_000_123_456_789, -1, 253_402_300_799_000_000_000):
        seconds, fraction = divmod(ns, 1_000_000_000)
        stamp = dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        assert rfc3339(ns) == rfc3339(ns) == f"{stamp}.{fraction:09d}Z"


# ------------------------------------------------------------------------- tar reader


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _read_all(data: bytes, piece: int = 1 << 20) -> list[tuple[tarfile.TarInfo, str | None, bytes]]:
    source = _pieces(data, piece)
    reader = TarReader(lambda: next(source, b""))
    result = []
    for info, problem in reader:
        content = b"".join(bytes(p) for p in reader.data()) if info.isreg() and not problem \
            else b""
        result.append((info, problem, content))
    assert reader.nonzero_after_end() == 0
    return result


@pytest.mark.parametrize("piece", [1, 7, 512, 1000, 1 << 20])
def test_reader_reads_what_tarfile_writes_whatever_the_piece_sizes(piece: int):
    long_name = "bag/data/" + "deep/" * 40 + "file.txt"
    members = [
        tar_member("bag/data", kind=tarfile.DIRTYPE, mode=0o755),
        tar_member("bag/data/plain.txt", b"hello\n", uid=1000, gid=1000),
        tar_member(long_name, os.urandom(5000)),
        tar_member("bag/data/Überweisung €.txt", b"unicode"),
        tar_member("bag/data/empty", b""),
        tar_member("bag/data/exact", b"x" * 1024),
    ]
    members[1][0].pax_headers = {"mtime": "1780000000.123456789"}
    read = _read_all(tar_of(members), piece)
    assert [(i.name, c) for i, _, c in read] == [(i.name.rstrip("/"), d) for i, d in members]
    assert read[0][0].isdir() and read[1][0].uid == 1000
    assert read[1][0].mtime == pytest.approx(1780000000.123456789)
    assert all(problem is None for _, problem, _ in read)


def test_reader_refuses_ustar_prefix_and_gnu_headers_it_never_writes():
    """Headers another tar writes (a ustar prefix, GNU magic, no pax mtime): evidencekit's
    writer never does, so they are refused rather than read (issue 19)."""
    name = "bag/data/" + "p" * 120 + "/file"
    info, data = tar_member(name, b"abc")
    info.pax_headers = {}
    with pytest.raises(TarFormatError, match="not in the form evidencekit writes"):
        _read_all(tar_of([(info, data)], tarfile.USTAR_FORMAT))
    with pytest.raises(TarFormatError, match="not in the form evidencekit writes"):
        _read_all(tar_of([tar_member("bag/data/g", b"gnu")], tarfile.GNU_FORMAT))


def test_reader_reads_evidencekit_inner_tar():
    out = io.BytesIO()
    inner = InnerTarWriter(out)
    inner.add_bytes("bagit.txt", b"BagIt-Version: 1.0\n", 1_780_000_000_000_000_001)
    inner.add_directory("data/x" * 30, os.stat("."))
    inner.begin_file("data/é" * 40, 3, os.stat("."))
    inner.write(b"abc")
    inner.end_file(3)
    inner.finish()
    read = _read_all(out.getvalue())
    assert [i.name for i, _, _ in read] == ["bag/bagit.txt", "bag/" + "data/x" * 30,
                                             "bag/" + "data/é" * 40]
    assert read[0][0].pax_headers == {"mtime": "1780000000.000000001"}
    assert read[2][2] == b"abc"


def test_gnu_long_names_stop_reading():
    long_name = "bag/data/" + "../" * 40 + "escaped"
    data = tar_of([tar_member(long_name, b"owned\n"), tar_member("bag/data/after", b"ok")],
                tarfile.GNU_FORMAT)
    with pytest.raises(TarFormatError, match=r"is a GNU long name \(type 'L'\)"):
        _read_all(data)


def _raw_header(name: bytes, size: int, typeflag: bytes, size_field: bytes | None = None,
                magic: bytes = b"ustar\x0000") -> bytes:
    block = bytearray(512)
    block[0 : len(name)] = name
    block[100:108] = b"0000644\0"
    block[108:124] = b"0000000\0" * 2
    block[124:136] = size_field if size_field is not None else b"%011o\0" % size
    block[136:148] = b"%011o\0" % 1_780_000_000
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[257:265] = magic
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _record(keyword: str, value: str) -> bytes:
    body = f" {keyword}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return b"%d" % length + body


def _pax(records: bytes, declared: int | None = None, typeflag: bytes = b"x") -> bytes:
    size = len(records) if declared is None else declared
    field = b"\x80" + size.to_bytes(11, "big") if size >= 8**11 else None
    return _raw_header(b"PaxHeaders/x", size, typeflag, field) + records + \
        bytes(-len(records) % 512)


def _file(name: bytes, data: bytes) -> bytes:
    """A bare ustar member: what tarfile writes without pax records (never for bag/)."""
    return _raw_header(name, len(data), b"0") + data + bytes(-len(data) % 512)


def test_pax_headers_larger_than_the_limit_are_refused_before_reading():
    data = _pax(b"", declared=10**15) + _file(b"bag/data/x", b"x") + END
    with pytest.raises(TarFormatError, match=r"pax\) header declares 1000000000000000 bytes"):
        _read_all(data)
    with pytest.raises(TarFormatError, match="more than the 1048576 allowed"):
        _read_all(_pax(b"", declared=EXTENDED_LIMIT + 1) + bytes(EXTENDED_LIMIT + 1) + END)
    with pytest.raises(TarFormatError, match="GNU long name"):  # refused before its size
        _read_all(_raw_header(b"././@LongLink", 10**15, b"L",
                              b"\x80" + (10**15).to_bytes(11, "big")) + END)


def test_pax_records_are_parsed_strictly_and_in_linear_time():
    assert pax_records(_record("path", "bag/data/x")) == {"path": "bag/data/x"}
    assert pax_records(b"19 path=bag/data/x\n") == {"path": "bag/data/x"}
    for bad in (b"2 " * 1000, b"5 a=b\n", b"x path=1\n", b"9 novalue\n", b"99 path=x\n"):
        with pytest.raises(TarFormatError, match="malformed pax record"):
            pax_records(bad)
    started = time.monotonic()
    with pytest.raises(TarFormatError):
        pax_records(b"2 " * (512 * 1024))
    assert time.monotonic() - started < 2
    assert pax_records(_record("comment", "1" * 1000))["comment"] == "1" * 1000


def test_pax_path_size_and_mtime_apply_to_the_next_member():
    long_path = "bag/data/" + "n" * 120
    read = _read_all(canonical_member(long_path, b"content") + END)
    assert read[0][0].name == long_path and read[0][2] == b"content"
    assert read[0][0].pax_headers["path"] == long_path
    with pytest.raises(TarFormatError, match="malformed pax record"):
        _read_all(_pax(b"12 size=abc\n") + _file(b"bag/data/x", b"x") + END)


@pytest.mark.parametrize("records", [
    _record("mtime", "1780000000.000000000") + _record("path", "bag/data/from-pax"),  # other name
    _record("path", "bag/data/ustar-name"),  # no mtime record
    _record("mtime", "1780000000.000000000") + _record("comment", "x"),  # unknown keyword
    _record("mtime", "1780000000.000000000") * 2,  # a keyword twice
    _record("mtime", "1780000000.5"),  # not nine digits
    _record("mtime", "1780000000.000000000") + _record("size", "7"),  # a size the field holds
], ids=["path-differs", "no-mtime", "unknown-keyword", "repeated", "short-mtime", "small-size"])
def test_a_pax_header_evidencekit_would_not_write_is_refused(records: bytes):
    """Only the canonical header is read: one that GNU tar or bsdtar might read otherwise than
    this reader (a pax path over another ustar name …) stops reading (issue 19)."""
    data = _pax(records) + _file(b"bag/data/ustar-name", b"content") + END
    with pytest.raises(TarFormatError, match="not in the form evidencekit writes"):
        _read_all(data)


@pytest.mark.parametrize(("typeflag", "what"), [
    (b"2", "a symbolic link"), (b"3", "a character device"), (b"6", "a FIFO"),
    (b"\0", "an old-style regular file"), (b"7", "a contiguous file"),
    (b"g", "a pax global header"), (b"K", "a GNU long link name"), (b"V", "(b'V')")])
def test_a_type_evidencekit_never_writes_stops_reading(typeflag: bytes, what: str):
    with pytest.raises(TarFormatError, match=re.escape(what)):
        _read_all(_raw_header(b"bag/data/x", 0, typeflag) + END)


def test_a_folder_or_hard_link_with_a_size_is_refused():
    for kind in (tarfile.DIRTYPE, tarfile.LNKTYPE):
        header = member_header("bag/data/x", kind, 512, 0o755, 1_780_000_000 * 10**9, 0, 0,
                               "bag/data/a" if kind == tarfile.LNKTYPE else None)
        assert header is not None
        with pytest.raises(TarFormatError, match="not in the form evidencekit writes"):
            _read_all(header + bytes(512) + END)


def test_octal_zero_device_fields_of_older_tarfile_are_the_same_header():
    block = bytearray(_file(b"addenda/000002.json", b"{}")[:512])
    block[329:345] = b"0000000\x00" * 2
    block[148:156] = b" " * 8
    block[148:155] = b"%06o\0" % sum(block)
    read = _read_all(bytes(block) + b"{}" + bytes(510) + END)
    assert read[0][0].name == "addenda/000002.json" and read[0][2] == b"{}"
    with pytest.raises(TarFormatError, match="not in the form evidencekit writes"):
        _read_all(_file(b"bag/data/no-pax", b"x") + END)  # bare ustar: the addenda's only


def test_sparse_members_are_refused():
    with pytest.raises(TarFormatError, match="sparse"):
        _read_all(_raw_header(b"bag/data/sparse", 512, b"S") + bytes(512) + END)
    with pytest.raises(TarFormatError, match="sparse"):
        _read_all(_pax(_record("GNU.sparse.major", "1")) + _file(b"bag/data/x", b"x") + END)


def test_a_huge_declared_size_is_never_allocated_only_found_missing():
    data = canonical_member("bag/data/huge", b"tiny\n", size=10**15) + END
    started = time.monotonic()
    with pytest.raises(TarFormatError, match="unexpected end of data"):
        _read_all(data)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("header", [
    _raw_header(b"bag/data/x", 1, b"0", magic=b"xxxxx\x0000"),  # no ustar magic
    b"\x01" * 512,  # random
])
def test_damaged_or_foreign_headers_stop_reading(header: bytes):
    with pytest.raises(TarFormatError, match="not a valid tar"):
        _read_all(header + END)


def test_bad_checksum_is_refused():
    block = bytearray(_raw_header(b"bag/data/x", 1, b"0"))
    block[0] = ord("c")
    with pytest.raises(TarFormatError, match="checksum"):
        _read_all(bytes(block) + bytes(512) + END)


def test_truncation_anywhere_is_an_error_never_a_short_success():
    data = tar_of([tar_member("bag/data/a", os.urandom(3000)), tar_member("bag/data/b", b"b" * 600)])
    end = len(data) - len(data.rstrip(b"\0"))  # trailing zeros: end blocks and record padding
    for cut in range(0, len(data) - end + 512, 512):
        with pytest.raises(TarFormatError, match="not a valid tar"):
            _read_all(data[:cut])
    for cut in (1, 100, 513, 2000):
        with pytest.raises(TarFormatError):
            _read_all(data[:cut])


def test_bytes_after_the_end_are_counted():
    data = canonical_member("bag/data/x", b"x") + END + b"hidden\n" + bytes(100)
    source = _pieces(data, 300)
    reader = TarReader(lambda: next(source, b""))
    assert [i.name for i, _ in reader] == ["bag/data/x"]
    assert reader.nonzero_after_end() == len(b"hidden\n")


# ------------------------------------------------------------------ progress, libmagic


def test_throttled_progress_keeps_exact_totals():
    class Counting:
        wants_totals = True

        def __init__(self) -> None:
            self.files = self.nbytes = self.calls = 0
            self.finished = False

        def start(self, label: str, total_files: int | None, total_bytes: int | None) -> None:
            pass

        def advance(self, files: int = 0, nbytes: int = 0) -> None:
            self.files += files
            self.nbytes += nbytes
            self.calls += 1

        def finish(self) -> None:
            self.finished = True

    inner = Counting()
    progress = throttled(inner)
    assert isinstance(progress, Throttled) and progress.wants_totals
    progress.start("x", None, None)
    for _ in range(10_000):
        progress.advance(files=1, nbytes=3)
    progress.finish()
    assert (inner.files, inner.nbytes, inner.finished) == (10_000, 30_000, True)
    assert inner.calls < 100
    quiet = NoProgress()
    assert throttled(quiet) is quiet


def test_throttled_progress_counts_totals_on_a_thread_and_starts_late():
    events: list[tuple[Any, ...]] = []

    class Recording:
        wants_totals = True

        def start(self, label: str, total_files: int | None, total_bytes: int | None) -> None:
            events.append(("start", label, total_files, total_bytes))

        def advance(self, files: int = 0, nbytes: int = 0) -> None:
            events.append(("advance", files, nbytes))

        def finish(self) -> None:
            events.append(("finish",))

    release = threading.Event()

    def count() -> tuple[int, int]:
        release.wait(5)
        return 7, 700

    progress = Throttled(Recording(), interval=0)
    progress.start_counting("Capturing", count)
    progress.advance(files=1, nbytes=100)  # before the count is known: kept, not passed on
    assert events == []
    release.set()
    progress.finish()
    assert events == [("start", "Capturing", 7, 700), ("advance", 1, 100), ("finish",)]


def test_throttled_progress_shows_a_status_only_once_started():
    # a device read past a bad area says what it does before any byte is stored: those
    # statuses went out before the bar's start (--progress json: label "", the time since boot)
    events: list[tuple[Any, ...]] = []

    class Recording:
        wants_totals = True

        def start(self, label: str, total_files: int | None, total_bytes: int | None) -> None:
            events.append(("start", label))

        def advance(self, files: int = 0, nbytes: int = 0) -> None:
            events.append(("advance", nbytes))

        def status(self, text: str) -> None:
            events.append(("status", text))

        def finish(self) -> None:
            events.append(("finish",))

    release = threading.Event()
    progress = Throttled(Recording(), interval=0)
    progress.start_counting("Capturing", lambda: (release.wait(5), (1, 10))[1])
    progress.status("reading past a bad area")  # counting not done: held
    assert events == []
    release.set()
    while progress._counter is not None and progress._counter.is_alive():
        time.sleep(0.01)
    progress.status("2 bad sectors")  # the bar starts, then shows the latest
    progress.status("3 bad sectors")
    progress.finish()
    assert events == [("start", "Capturing"), ("status", "2 bad sectors"),
                      ("status", "3 bad sectors"), ("finish",)]
    events.clear()
    progress = Throttled(Recording(), interval=0)
    progress.start_counting("Capturing", lambda: (1, 10))
    progress.status("reading past a bad area")  # whether or not counting is done yet
    progress.advance(nbytes=5)
    progress.finish()
    assert events[:2] == [("start", "Capturing"), ("status", "reading past a bad area")]


def test_piece_read_ahead_lets_its_blocks_go_when_closed():
    """verify checks manifest.json after the payload's last block with the reader still in
    scope: its blocks (some 10 MB in verify) must not be held then."""
    block = 1 << 20
    tracemalloc.start()
    try:
        ahead = PieceReadAhead(io.BytesIO(bytes(8 * block)), block_size=block, depth=2)
        while ahead.read_piece():
            pass
        held = tracemalloc.get_traced_memory()[0]
        ahead.close()
        assert held - tracemalloc.get_traced_memory()[0] >= 2 * block
    finally:
        tracemalloc.stop()
