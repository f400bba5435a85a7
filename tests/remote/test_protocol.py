"""The framed stream of capture --remote (evidencekit.remote.protocol), without SSH: a real
capture written through FramedWriter, received into a file, byte for byte the bundle."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from evidencekit.capture import CaptureRequest, CaseInfo, capture
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.errors import BundleError
from evidencekit.remote import protocol
from evidencekit.remote.receive import verified_on_arrival
from evidencekit.remote.ssh import Endpoint
from evidencekit.verify import verify
from tests.support.writing import refuse_o_direct_writes


class _Target:
    """capture's stream_to, framing into memory (as serve-capture frames onto stdout)."""

    location = "(memory)"
    queue_blocks = 8

    def __init__(self) -> None:
        self.stream = io.BytesIO()

    def check(self) -> None:
        pass

    def public_details(self) -> dict[str, str]:
        return {}

    def open(self):  # type: ignore[no-untyped-def]
        from contextlib import contextmanager

        @contextmanager
        def opened():  # type: ignore[no-untyped-def]
            writer = protocol.FramedWriter(self.stream)
            yield writer
            writer.finish()

        return opened()


@pytest.fixture(scope="module")
def framed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("framed")
    (folder / "a.txt").write_text("evidence\n")
    (folder / "b.bin").write_bytes(os.urandom(300_000))
    return _frame_capture_of(folder)


def _receive(data: bytes, into: Path, mode: str = "wb") -> protocol.Received:
    """*mode* "w+b": a plain file as capture --remote stages it, whose bytes go straight to disk
    (O_DIRECT, evidencekit.fs.direct) where the file system takes it; "wb" through the cache."""
    with into.open(mode) as out:
        return protocol.receive(io.BytesIO(data), out, lambda n: None, 1 << 40)


def _frame_capture_of(folder: Path) -> bytes:
    target = _Target()
    capture(CaptureRequest([os.fsencode(folder)], folder / "unused.evidence",
                           CaseInfo("T-1", "tester"), [age.X25519Identity.generate().recipient()],
                           SigningKey.generate("test"), command_line=["test"],
                           stream_to=target))
    return target.stream.getvalue()


@pytest.fixture(scope="module")
def framed_large(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A stream of a few MiB: several of fs.direct's 1 MiB stages, written on its thread,
    before the payload's header comes back at the payload's end."""
    folder = tmp_path_factory.mktemp("framed-large")
    (folder / "big.bin").write_bytes(os.urandom(3 * (1 << 20) + 12_345))
    return _frame_capture_of(folder)


def _bundle_of(framed: bytes) -> bytes:
    """The bundle a stream carries, put together here from its frames alone (no fs.direct)."""
    bundle = bytearray()
    at = len(protocol.MAGIC)
    while True:
        kind, offset, length = struct.unpack(">cQI", framed[at:at + 13])
        at += 13
        if kind == protocol.END:
            return bytes(bundle)
        bundle[offset:offset + length] = framed[at:at + length]
        at += length


@pytest.mark.parametrize("mode", ["wb", "w+b"])
def test_a_changed_byte_in_a_large_stream_is_refused_however_it_is_written(
        framed_large: bytes, mode: str, tmp_path: Path) -> None:
    changed = bytearray(framed_large)
    changed[len(changed) // 2] ^= 1  # in the payload, within a stage written on the thread
    bundle = tmp_path / "changed.evidence"
    received = _receive(bytes(changed), bundle, mode)
    with pytest.raises(BundleError, match="is not the one its seal names"):
        verified_on_arrival(bundle, received, Endpoint("admin", "web-17.example"))


def test_a_large_stream_cut_short_is_refused_and_the_writer_thread_ends(
        framed_large: bytes, tmp_path: Path) -> None:
    before = threading.active_count()
    with pytest.raises(protocol.StreamBroken):
        _receive(framed_large[:len(framed_large) // 2], tmp_path / "cut", "w+b")
    assert threading.active_count() == before


@pytest.mark.parametrize("mode", ["wb", "w+b"])
@pytest.mark.parametrize("stream", ["framed", "framed_large"])
def test_a_received_stream_is_the_bundle_with_its_payload_hashed_on_arrival(
        stream: str, mode: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Small, and large (several of fs.direct's stages written straight to disk on its thread):
    byte for byte the bundle, verified on arrival."""
    framed: bytes = request.getfixturevalue(stream)
    bundle = tmp_path / "got.evidence"
    received = _receive(framed, bundle, mode)
    assert bundle.read_bytes() == _bundle_of(framed)
    arrived = verified_on_arrival(bundle, received, Endpoint("admin", "web-17.example"))
    assert arrived.findings.ok, arrived.findings.errors
    assert received.size == bundle.stat().st_size and received.wire_bytes == len(framed)
    report = verify(bundle)
    assert report.findings.ok, report.findings.errors
    assert report.seal is not None
    assert received.payload_sha256 == report.seal.payload_sha256
    assert received.payload_size == report.seal.payload_size


@pytest.mark.parametrize("cut", [0, 5, len(protocol.MAGIC) + 7, 4000, -14, -1])
def test_a_stream_cut_anywhere_is_refused(framed: bytes, cut: int, tmp_path: Path) -> None:
    with pytest.raises(protocol.StreamBroken):
        _receive(framed[:cut], tmp_path / "cut")


def test_bytes_after_the_end_are_refused(framed: bytes, tmp_path: Path) -> None:
    with pytest.raises(protocol.StreamBroken, match="after its end"):
        _receive(framed + b"x", tmp_path / "more")


def test_something_else_than_evidencekit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(protocol.StreamBroken, match="did not answer as evidencekit"):
        _receive(b"Welcome to web-17!\n" + bytes(100), tmp_path / "motd")


def test_a_frame_past_what_arrived_is_refused(tmp_path: Path) -> None:
    stream = protocol.MAGIC + struct.pack(">cQI", b"D", 10, 3) + b"abc"
    with pytest.raises(protocol.StreamBroken, match="breaks the protocol"):
        _receive(stream, tmp_path / "gap")


def test_an_end_that_names_another_size_is_refused(tmp_path: Path) -> None:
    stream = (protocol.MAGIC + struct.pack(">cQI", b"D", 0, 3) + b"abc"
              + struct.pack(">cQI", b"E", 4, 0))
    with pytest.raises(protocol.StreamBroken, match="names 4 bytes, 3 arrived"):
        _receive(stream, tmp_path / "short")


def test_a_changed_byte_in_the_payload_is_refused_on_arrival(
        framed: bytes, tmp_path: Path) -> None:
    changed = bytearray(framed)
    changed[len(changed) // 2] ^= 1  # inside the payload's ciphertext (a data frame)
    bundle = tmp_path / "changed.evidence"
    received = _receive(bytes(changed), bundle)
    assert received.payload_sha256 is not None
    assert received.payload_sha256 != hashlib.sha256(b"").hexdigest()
    with pytest.raises(BundleError, match="is not the one its seal names"):
        verified_on_arrival(bundle, received, Endpoint("admin", "web-17.example"))
    intact = tmp_path / "intact.evidence"
    report = verified_on_arrival(intact, _receive(framed, intact), Endpoint("admin", "web-17.example"))
    assert report.payload_sha256 == _receive(framed, tmp_path / "again").payload_sha256


def test_a_stream_that_stops_moving_is_given_up(framed: bytes, tmp_path: Path) -> None:
    """Half the stream, then the pipe held open, nothing written: received for ever."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, framed[:len(framed) // 2][:60_000])
        with open(read_end, "rb", closefd=False) as source, (tmp_path / "stalled").open(
                "w+b") as out, pytest.raises(protocol.Stalled,
                                             match=r"arrived (for|in) 0\.3 seconds"):
            protocol.receive(source, out, lambda n: None, 1 << 40, stall=0.3)
    finally:
        os.close(read_end)
        os.close(write_end)


def _trickled(data: bytes, every: float) -> tuple[int, threading.Thread]:
    """A pipe's read end, *data* written into it a byte every *every* seconds by a thread
    (which stops when the reader closes it)."""
    read_end, write_end = os.pipe()

    def trickle() -> None:
        with contextlib.suppress(OSError):
            for at in range(len(data)):
                os.write(write_end, data[at:at + 1])
                time.sleep(every)
        os.close(write_end)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    return read_end, thread


def test_a_stream_trickled_a_byte_at_a_time_is_stalled(framed: bytes, tmp_path: Path) -> None:
    """Never 0.5 s without a byte, but far less than STALL_LEAST in 0.5 s: a host sending one
    byte per stall period was received for as long as it liked."""
    read_end, thread = _trickled(framed, 0.02)
    started = time.monotonic()
    with open(read_end, "rb") as source, (tmp_path / "t").open("w+b") as out, \
            pytest.raises(protocol.Stalled, match=r"only \d+ bytes arrived in 0\.5 seconds"):
        protocol.receive(source, out, lambda n: None, 1 << 40, stall=0.5)
    assert time.monotonic() - started < 5
    thread.join(5)


def test_a_stream_not_ended_by_its_deadline_is_timed_out(framed: bytes, tmp_path: Path) -> None:
    read_end, thread = _trickled(framed, 0.02)
    deadline = time.monotonic() + 0.4
    with open(read_end, "rb") as source, (tmp_path / "t").open("w+b") as out, \
            pytest.raises(protocol.TimedOut):
        protocol.receive(source, out, lambda n: None, 1 << 40, stall=None,
                         deadline=deadline)
    assert time.monotonic() - deadline < 2
    thread.join(5)


def test_a_stream_moving_enough_is_not_stalled(framed: bytes, tmp_path: Path) -> None:
    """STALL_LEAST bytes in every stall period is moving, however long it takes in all. (A
    piece every 0.2 s, stalled after 2 s: a loaded machine may wake the sender late, by far
    less than 1.8 s.)"""
    read_end, write_end = os.pipe()
    piece = protocol.STALL_LEAST * 4

    def send() -> None:
        for at in range(0, len(framed), piece):
            os.write(write_end, framed[at:at + piece])
            time.sleep(0.2)
        os.close(write_end)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    with open(read_end, "rb") as source, (tmp_path / "t").open("w+b") as out:
        got = protocol.receive(source, out, lambda n: None, 1 << 40, stall=2)
    thread.join(5)
    assert got.size > 0


def test_what_the_receiver_refuses_on_the_way_ends_the_stream(framed: bytes,
                                                               tmp_path: Path) -> None:
    def refuse(count: int) -> None:
        raise protocol.Refused("no room")

    with (tmp_path / "x").open("w+b") as out, pytest.raises(protocol.Refused, match="no room"):
        protocol.receive(io.BytesIO(framed), out, refuse, 1 << 40)


def test_the_sender_holds_bytes_back_at_most_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """The remote's standard output is buffered (1 MiB): a slow capture's bytes would wait
    there, and the receiver would take it for a stalled one."""
    now = [100.0]
    monkeypatch.setattr("evidencekit.remote.protocol.time.monotonic", lambda: now[0])

    class Out(io.BytesIO):
        flushes = 0

        def flush(self) -> None:
            Out.flushes += 1

    out = Out()
    writer = protocol.FramedWriter(out)
    assert Out.flushes == 1  # the magic line goes at once
    writer.write(b"a")
    assert Out.flushes == 1
    now[0] += 1.0
    writer.write(b"b")
    assert Out.flushes == 2


class _Flood(io.RawIOBase):
    """A hostile sender's stream: the magic, one byte of data, then frames that never make the
    bundle grow (each going back over that byte, or empty) for *count* frames, then an end."""

    def __init__(self, frame: bytes, count: int) -> None:
        start = protocol.MAGIC + struct.pack(">cQI", b"D", 0, 1) + b"x"
        self._parts = [start]
        self._frame = frame
        self._left = count
        self.frames_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        if not self._parts:
            if self._left:
                self._left -= 1
                self.frames_read += 1
                self._parts.append(self._frame)
            else:
                self._parts.append(struct.pack(">cQI", b"E", 1, 0))
        part = self._parts[0]
        count = min(len(buffer), len(part))
        buffer[:count] = part[:count]
        self._parts[0] = part[count:]
        if not self._parts[0]:
            self._parts.pop(0)
        return count


@pytest.mark.parametrize("frame", [struct.pack(">cQI", b"D", 0, 1) + b"y",
                                   struct.pack(">cQI", b"D", 1, 0)],
                         ids=["going-back", "empty"])
def test_frames_that_never_grow_the_bundle_are_not_taken_without_end(
        frame: bytes, tmp_path: Path) -> None:
    """Such frames pass --max-size and the free-space guard (the bundle does not grow) and
    reset the stall timeout: a host sending them for ever was received for ever. The sender
    sends one frame going back (payload.age's header) and never an empty one."""
    flood = _Flood(frame, 100_000)
    with (tmp_path / "flood").open("wb") as out, \
            pytest.raises(protocol.StreamBroken, match="breaks the protocol"):
        protocol.receive(flood, out, lambda n: None, 1 << 40)  # type: ignore[arg-type]
    assert flood.frames_read <= 2


def test_serve_capture_widens_its_standard_output_and_its_stream_is_received(
        tmp_path: Path) -> None:
    """The remote end's pipe to sshd made 1 MiB deep, as the receiving end's from ssh: at 64 KiB
    the sender and sshd took turns every few pieces (52,000 context switches for 1 GiB)."""
    (tmp_path / "note.txt").write_text("evidence\n")
    identity = age.X25519Identity.generate()
    process = subprocess.Popen(
        [sys.executable, "-m", "evidencekit", protocol.SERVE_COMMAND, "--case", "T-1",
         "--examiner", "tester", "-r", str(identity.recipient()), "--",
         str(tmp_path / "note.txt")],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    try:
        with (tmp_path / "got.evidence").open("w+b") as out:
            received = protocol.receive(process.stdout, out, lambda n: None, 1 << 40, stall=60)
        assert process.wait(timeout=60) == 0
        assert fcntl.fcntl(process.stdout.fileno(), fcntl.F_GETPIPE_SZ) == protocol.PIPE_SIZE
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
    report = verify(tmp_path / "got.evidence", [identity])
    assert report.ok and report.files_checked == 1
    assert report.seal is not None and received.payload_sha256 == report.seal.payload_sha256


def test_a_stream_received_where_o_direct_is_refused_at_the_first_write_is_whole(
        framed_large: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system that opens a file O_DIRECT but refuses its first write (EINVAL): the bytes
    of the frame that filled the first stage, past it, were left staged and never written
    (fs.direct fell back, then went on staging): every received bundle 'did not verify'."""
    refuse_o_direct_writes(monkeypatch)
    bundle = tmp_path / "got.evidence"
    received = _receive(framed_large, bundle, "w+b")
    monkeypatch.undo()
    assert bundle.read_bytes() == _bundle_of(framed_large)
    assert verified_on_arrival(bundle, received, Endpoint("admin", "web-17.example")).findings.ok
