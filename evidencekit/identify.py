"""File types with libmagic, from bytes already read (never a second open of the evidence).

During a capture libmagic runs in worker processes (`worker_command`: this module), for two
reasons. libmagic is a C parser and the evidence may be hostile (a malware sample, a crafted
document): a crash in it must cost one file's type, not the capture. And it is the largest cost
per file in a folder of small files (about 0.2 ms for binary data, 1 ms for text, whatever the
size); on threads it fought the reading thread for the GIL at every system call, in processes it
runs beside it.

Protocol on the worker's stdin and stdout (big-endian lengths):

* the worker starts with ``READY``, or ``UNAVAILABLE`` and a reason, each as one frame;
* a request is a count, then that many blocks, each a 4-byte length and the bytes;
* the answer is one frame (4-byte length, then UTF-8): the MIME types joined with newlines.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, BinaryIO

from evidencekit.libc import libc

MAGIC_BYTES = 1 << 20  # libmagic's own default read size
FALLBACK = "application/octet-stream"  # what libmagic says of data it cannot type
EMPTY = "inode/x-empty"

_lock = threading.Lock()
_magic: Any = None
_unavailable: str | None = None
_LENGTH = struct.Struct(">I")
PIPE_BYTES = 1 << 20  # Linux's default limit for an unprivileged process
_READY = b"READY"
_UNAVAILABLE = b"UNAVAILABLE "


_SONAME = "libmagic.so.1"  # the name python-magic's own loader tries last on Linux


def import_magic() -> Any:
    """python-magic, with libmagic loaded by its soname rather than through `ldconfig -p`.

    python-magic's loader asks ctypes.util.find_library('magic') first, which on Linux forks
    and execs `ldconfig -p` (twice: the package and its compat module each load the library):
    four processes for a capture of one file, two in each libmagic worker and two in the
    capture's version lookup (issue 27). While magic is imported, find_library('magic')
    answers the soname when the dynamic linker loads it by that name; that is the name
    find_library would return there, so the same library is loaded. Anywhere else (another
    system, another soname) find_library runs as before. Raises ImportError or OSError as
    ``import magic`` does."""
    import ctypes.util

    original = ctypes.util.find_library

    def find_library(name: str) -> str | None:
        if name == "magic" and sys.platform.startswith("linux"):
            try:
                ctypes.CDLL(_SONAME)
                return _SONAME
            except OSError:
                pass
        return original(name)

    ctypes.util.find_library = find_library
    try:
        import magic
    finally:
        ctypes.util.find_library = original
        loader = sys.modules.get("magic.loader")
        if getattr(loader, "find_library", None) is find_library:  # it kept the name it saw
            loader.find_library = original  # type: ignore[union-attr]
    return magic


def _load() -> Any:
    global _magic, _unavailable
    if _magic is None and _unavailable is None:
        try:
            _magic = import_magic().Magic(mime=True)
        except (ImportError, OSError) as exc:  # libmagic missing: degrade, say so once
            _unavailable = f"libmagic is not available ({exc})"
    return _magic


def unavailable_reason() -> str | None:
    _load()
    return _unavailable


def _ask(handle: Any, first_block: bytes) -> str:
    if not first_block:
        return EMPTY
    if handle is None:
        return FALLBACK
    try:
        return str(handle.from_buffer(first_block[:MAGIC_BYTES])).replace("\n", " ")
    except Exception:  # a libmagic failure on odd input must not stop a capture
        return FALLBACK


def mime_type(first_block: bytes) -> str:
    """The MIME type of a file whose first bytes are *first_block*, in this process."""
    if not first_block:
        return EMPTY
    with _lock:  # one libmagic handle is not safe to share between threads
        return _ask(_load(), first_block)


class Pending:
    """The MIME type of one file, decided later by an `Identifier`.

    ``result()`` is the type, or ``None`` when libmagic crashed on this very file (the caller
    records it as `FALLBACK` and says so).
    """

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: _Batch, index: int) -> None:
        self._batch = batch
        self._index = index

    def done(self) -> bool:
        """Whether the type is known, asking the worker only now and then: a caller typically
        asks once per file read while a batch of up to BATCH_FILES is typed (each question was a
        poll and a Python round of its own; the answer only comes sooner or later, never
        different)."""
        batch = self._batch
        if batch.answers is not None:
            return True
        if not batch.sent:
            return False
        batch.questions += 1
        return batch.questions % _ASK_EVERY == 1 and batch.owner.collect_ready(batch)

    def result(self) -> str | None:
        return self._batch.owner.wait(self._batch)[self._index]


class _Batch:
    def __init__(self, owner: Identifier) -> None:
        self.owner = owner
        self.blocks: list[bytes] = []
        self.size = 0
        self.sent = False
        self.worker: _Worker | None = None  # the one it was sent to
        self.answers: list[str | None] | None = None
        self.questions = 0  # Pending.done() calls since it was sent

    def answered(self, answers: list[str | None]) -> None:
        """Keep the answers; the blocks are no longer needed (a batch outlives its answer in
        Identifier's table of known contents, which must not hold the files' bytes)."""
        self.answers = answers
        self.blocks = []


_ASK_EVERY = 8  # Pending.done() polls the worker at the first call and every 8th after


def _widen_pipe(fd: int) -> int:
    """Room in the pipe for the batches in flight: with the default 64 KiB, sending a batch
    waited until the worker had finished the one before (Linux only; elsewhere it just waits).
    Returns what the pipe holds: a batch is sent to a busy worker only if it fits (can_take)."""
    with _suppressed():
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    try:
        return int(fcntl.fcntl(fd, getattr(fcntl, "F_GETPIPE_SZ", 1032)))
    except OSError:
        return 1 << 16  # POSIX promises less; every system in use gives at least this


class _Worker:
    """One worker process and the batches it has been sent, oldest first."""

    def __init__(self, command: Sequence[str], hang_seconds: float) -> None:
        self.hang_seconds = hang_seconds
        self.process = subprocess.Popen(
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, bufsize=0, cwd="/")  # not the evidence (see main)
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin: BinaryIO = self.process.stdin  # type: ignore[assignment]
        self.pipe_bytes = _widen_pipe(self.stdin.fileno())
        self.out_fd = self.process.stdout.fileno()
        self.buffer = bytearray()
        self.ready: bool | None = None  # None until its first frame
        self.in_flight: deque[_Batch] = deque()
        self.dead = False
        self.untrusted = False  # it answered what it was not asked: nothing more is read

    def can_take(self, batch: _Batch, in_flight_limit: int) -> bool:
        """Whether *batch* may be sent now without risking a write that never ends.

        The worker reads a whole batch before it types any of it, so while it works on one (and
        perhaps hangs in libmagic) the pipe holds only what was sent after: a second batch is
        sent only if it fits there. Writing is then never stuck behind a hung worker, and the
        hang is found by read_some's timeout."""
        if not self.in_flight:
            return True
        return len(self.in_flight) < in_flight_limit and _frame_size(batch) <= self.pipe_bytes

    def send(self, batch: _Batch) -> bool:
        parts = [_LENGTH.pack(len(batch.blocks))]
        for block in batch.blocks:
            parts += [_LENGTH.pack(len(block)), block]
        data = memoryview(b"".join(parts))
        try:
            while data:  # a raw write may stop short (a signal in the middle of a large one)
                data = data[self.stdin.write(data) or 0:]
        except OSError:  # BrokenPipeError: it died
            self.dead = True
            return False
        self.in_flight.append(batch)
        batch.worker = self
        return True

    def readable(self) -> bool:
        return self._wait_readable(0)

    def _wait_readable(self, seconds: float) -> bool:
        # poll, not select: select refuses descriptors from 1024 on, and a deep tree's walk
        # may hold that many (the CLI raises the open-file limit for it)
        poller = select.poll()
        poller.register(self.out_fd, select.POLLIN)
        return bool(poller.poll(seconds * 1000))

    def read_some(self) -> None:
        """Read what has arrived (waiting until something does) and hand out whole answers.

        A worker silent for *hang_seconds* while it owes an answer is stuck in libmagic (a file
        built to make its patterns backtrack, say): it is killed, and so counts as dead."""
        try:
            if not self._wait_readable(self.hang_seconds):
                self.process.kill()
            data = os.read(self.out_fd, 1 << 16)
        except OSError:
            data = b""
        if not data:
            self.dead = True
            return
        self.buffer += data
        self._take_frames()

    def drain(self) -> None:
        """After its end: take in what it wrote before it died (READY, finished answers)."""
        self.process.kill()  # if it is not dead yet (a broken pipe, a garbled answer)
        self.process.wait()
        while True:
            try:
                data = os.read(self.out_fd, 1 << 16)
            except OSError:
                return
            if not data:
                return
            self.buffer += data
            self._take_frames()

    def _take_frames(self) -> None:
        while len(self.buffer) >= 4 and not self.untrusted:
            (length,) = _LENGTH.unpack_from(self.buffer)
            if len(self.buffer) < 4 + length:
                break
            frame = bytes(self.buffer[4:4 + length])
            del self.buffer[:4 + length]
            self._take(frame)

    def _take(self, frame: bytes) -> None:
        if self.ready is None:
            self.ready = frame == _READY
            return
        if not self.in_flight:  # an answer to nothing: this worker is not to be trusted
            self.dead = self.untrusted = True
            return
        batch = self.in_flight.popleft()
        answers: list[str | None] = list(frame.decode("utf-8", "replace").split("\n"))
        if len(answers) != len(batch.blocks):  # a garbled answer: trust none of it
            answers = [None] * len(batch.blocks)
        batch.answered(answers)

    def close(self, wait: float = 5.0) -> None:
        self.hang_up()
        self.finish(wait)

    def hang_up(self) -> None:
        """Close its input: an idle worker then leaves."""
        with _suppressed():
            self.stdin.close()

    def finish(self, wait: float) -> None:
        """Give it *wait* seconds to leave (one stuck in libmagic never does), then kill it."""
        try:
            self.process.wait(timeout=max(wait, 0.0))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with _suppressed():
            assert self.process.stdout is not None
            self.process.stdout.close()


class _suppressed:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], OSError)  # type: ignore[arg-type]


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (a container, taskset)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_command() -> list[str]:
    """How a worker is started: isolated (-I), with this process's import path given explicitly.

    ``python -m`` (or ``-c``) would put the working folder first on the path, and that may be
    the evidence (``cd /mnt/suspect && evidencekit capture .``): a ``magic.py`` there would run.
    So the worker gets this process's absolute path entries, less the working folder."""
    here = os.getcwd()
    path = [p for p in sys.path if os.path.isabs(p) and p != here]
    home = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # holds evidencekit
    if home not in path:
        path.insert(0, home)
    code = (f"import sys; sys.path[:] = {path!r}; "
            f"from evidencekit.identify import main; main(parent={os.getpid()})")
    # -S: no site module. The path is set above whole (site's directories, added in this
    # process, are in it), and the .pth files' path hooks (an editable install's) are not
    # wanted: `home` is on the path. Site's imports cost each worker 14 ms of its 48 ms of CPU
    # at start (issue 27). benchmarks/compare.py runs a revision's package with -S for the same
    # reason: no hook that could bring another evidencekit.
    return [sys.executable, "-I", "-S", "-c", code]


class Identifier:
    """libmagic in worker processes, in walk order, with the same answers as `mime_type`.

    Files go over in batches (up to BATCH_FILES or BATCH_BYTES) so that a folder of small files
    costs one hand-over per batch, not per file; each worker has at most IN_FLIGHT batches, so
    memory stays bounded and neither side can block the other on a full pipe. When a worker dies
    in the middle of a batch, the batch's files are asked again one at a time in a new worker,
    which tells the file that crashed libmagic (``None``) from the ones that did not. Where no
    worker can be started, libmagic runs in this process (`mime_type`).
    """

    BATCH_FILES = 64
    BATCH_BYTES = 256 << 10
    IN_FLIGHT = 2
    MAX_CRASHES = 16  # files libmagic may crash on before the rest go untyped too
    KNOWN_CONTENTS = 4096  # contents whose type is remembered (64 bytes of key each)

    def __init__(self, workers: int | None = None, command: Sequence[str] | None = None,
                 hang_seconds: float = 60.0) -> None:
        # libmagic takes milliseconds per file: a worker silent for a minute is stuck
        self._hang_seconds = hang_seconds
        self._max_workers = workers or max(1, min(4, _usable_cpus()))
        self._command = list(command or worker_command())
        self._workers: list[_Worker] = []
        self._in_process = False  # no worker could be started: libmagic runs here
        self._batch = _Batch(self)
        self.crashes = 0  # files libmagic crashed on
        self._known: dict[str, Pending] = {}  # SHA-256 of a small file's content: its type
        # The first worker starts with the first file to type (it loads libmagic, about 50 ms,
        # while the caller reads on), not here: a capture whose sources know every type (a
        # device image and its documents) starts none, and saves a process of some 23 MB and
        # its start-up.

    def get_ready(self) -> None:
        """Start the first worker now, if none was: a file is about to be read, and its worker
        loads libmagic while it is. A file is typed once read; a large file's first bytes (a
        megabyte) do not fit in the worker's pipe, so without this the last of the file waited
        for a worker's start (0.1 s) before the bundle could be finished (one file of a
        gigabyte, the usual remote capture)."""
        if not self._workers and not self._in_process:
            self._start()

    def identify(self, first_block: bytes, content_sha256: str | None = None) -> Pending | str:
        """The MIME type of a file whose first bytes are *first_block*, decided in the background.

        *content_sha256*, the SHA-256 of *first_block* when it is the whole file, lets a file
        with the same bytes as one typed before take its answer (libmagic answers from the bytes
        alone): copies of one file are common in evidence (mail attachments, installed
        packages, backups), and libmagic is the largest cost of a small file."""
        if content_sha256 is not None:
            known = self._known.get(content_sha256)
            if known is not None:
                answer = known.result() if known.done() else None
                return known if answer is None else answer  # (None: it crashed libmagic)
        pending = self._ask(first_block)
        if content_sha256 is not None:
            if len(self._known) >= self.KNOWN_CONTENTS:
                del self._known[next(iter(self._known))]  # the oldest
            self._known[content_sha256] = pending
        return pending

    def _ask(self, first_block: bytes) -> Pending:
        if not self._workers and not self._in_process:
            self._start()  # while this batch fills
        batch = self._batch
        block = first_block[:MAGIC_BYTES]
        batch.blocks.append(block)
        batch.size += len(block)
        pending = Pending(batch, len(batch.blocks) - 1)
        if len(batch.blocks) >= self.BATCH_FILES or batch.size >= self.BATCH_BYTES:
            self.flush()
        return pending

    def flush(self) -> None:
        """Send the files collected so far to a worker."""
        batch = self._batch
        if batch.blocks:
            self._batch = _Batch(self)
            self._send(batch)

    def collect_ready(self, batch: _Batch) -> bool:
        """Take in what *batch*'s worker has answered, without waiting; True when *batch* has
        its answers. (Only that worker is asked: a poll for every file of a folder of small
        files, of every worker, cost 4 % of the capture.)"""
        worker = batch.worker
        while batch.answers is None and worker is not None and not worker.dead and \
                worker.readable():
            worker.read_some()
        if worker is not None and worker.dead:
            self._recover(worker)
        return batch.answers is not None

    def wait(self, batch: _Batch) -> list[str | None]:
        """The answers for *batch*, waiting for them (and sending it first if need be)."""
        if not batch.sent:
            if batch is self._batch:
                self.flush()
            else:  # pragma: no cover - every batch is sent when it is replaced
                self._send(batch)
        while batch.answers is None:
            worker = batch.worker
            assert worker is not None  # sent, and not answered: some worker has it
            worker.read_some()
            if worker.dead:
                self._recover(worker)
        return batch.answers

    def _send(self, batch: _Batch) -> None:
        batch.sent = True
        while True:
            worker = self._worker()
            if worker is None:
                batch.answered([mime_type(block) for block in batch.blocks])
                return
            while not worker.dead and not worker.can_take(batch, self.IN_FLIGHT):
                worker.read_some()
            if not worker.dead and worker.send(batch):
                return
            self._recover(worker)

    def _worker(self) -> _Worker | None:
        """The least busy worker, starting one while all are busy and there is room for more."""
        if self._in_process:
            return None
        idle = [w for w in self._workers if not w.in_flight]
        if idle:
            return idle[0]
        if len(self._workers) < self._max_workers:
            worker = self._start()
            if worker is not None:
                return worker
            if not self._workers:
                return None
        return min(self._workers, key=lambda w: len(w.in_flight))

    def _start(self) -> _Worker | None:
        """A new worker (it loads libmagic while the first batch is on its way); None, and
        libmagic in this process from then on, when none can be started."""
        try:
            worker = _Worker(self._command, self._hang_seconds)
        except OSError:
            self._in_process = True
            return None
        self._workers.append(worker)
        return worker

    def _recover(self, dead: _Worker) -> None:
        """Ask a dead worker's batches again: one file at a time in a fresh worker when it died
        at work, in this process when it never got libmagic loaded (nothing to do with a file)."""
        if dead in self._workers:
            self._workers.remove(dead)
        dead.hang_up()
        # Its death may have been noticed at a write (a broken pipe) before anything it wrote
        # was read: READY, and answers it finished, are still in the pipe.
        dead.drain()
        dead.finish(0)
        if dead.ready is not True:  # it never got libmagic loaded: nothing to do with a file
            self._in_process = True
        batches = list(dead.in_flight)
        dead.in_flight.clear()
        for batch in batches:
            batch.answered([self._ask_alone(block) for block in batch.blocks])

    def _ask_alone(self, block: bytes) -> str | None:
        if self.crashes >= self.MAX_CRASHES:  # something is wrong with libmagic itself
            return None
        single = _Batch(self)
        single.blocks, single.sent = [block], True
        worker = self._worker()
        if worker is None:
            return mime_type(block)
        while worker.in_flight and not worker.dead:  # keep the retry's answer unambiguous
            worker.read_some()
        if worker.dead or not worker.send(single):
            self._recover(worker)
            return self._ask_alone(block)
        while single.answers is None and not worker.dead:
            worker.read_some()
        if single.answers is None:
            if not worker.ready:  # it never started: not this file's doing
                self._recover(worker)
                return mime_type(block)
            self._workers.remove(worker)  # it died on this very file
            worker.in_flight.clear()
            worker.close()
            self.crashes += 1
            return None
        return single.answers[0]

    def unavailable_reason(self) -> str | None:
        """Why files were not typed (libmagic missing), or None."""
        return unavailable_reason() if self._in_process else None  # workers report only READY

    def close(self) -> None:
        """End the workers: all are told at once, and given 5 s together (not each) to leave."""
        for worker in self._workers:
            worker.hang_up()
        deadline = time.monotonic() + 5.0
        for worker in self._workers:
            worker.finish(deadline - time.monotonic())
        self._workers.clear()


def _frame_size(batch: _Batch) -> int:
    return 4 + 4 * len(batch.blocks) + batch.size


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        piece = stream.read(size - len(data))
        if not piece:
            return None
        data += piece
    return bytes(data)


def _write_frame(stream: BinaryIO, payload: bytes) -> None:
    stream.write(_LENGTH.pack(len(payload)) + payload)
    stream.flush()


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The worker: answer requests until stdin closes."""
    handle = _load()
    if handle is None:
        _write_frame(stdout, _UNAVAILABLE + (_unavailable or "").encode())
        return
    _write_frame(stdout, _READY)
    while (header := _read_exact(stdin, 4)) is not None:
        (count,) = _LENGTH.unpack(header)
        blocks = []
        for _ in range(count):  # the whole batch first: the pipe is then free (Worker.can_take)
            size = _read_exact(stdin, 4)
            block = _read_exact(stdin, _LENGTH.unpack(size)[0]) if size is not None else None
            if block is None:
                return
            blocks.append(block)
        answers = [_ask(handle, block) for block in blocks]
        _write_frame(stdout, "\n".join(answers).encode("utf-8"))


def _die_with(parent: int) -> None:
    """Be killed when the capture ends, however it ends (Linux): a worker stuck in libmagic
    would otherwise never notice, and run on."""
    if sys.platform.startswith("linux"):
        with _suppressed():
            libc().prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it ended before that took effect
        os._exit(0)


def main(parent: int | None = None) -> None:
    if parent is not None:
        _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the capture, which closes us
    serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
