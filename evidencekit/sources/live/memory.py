"""Item 2: RAM, through an acquisition tool the examiner names (``--memory-tool PATH``).

evidencekit reads no memory itself and loads nothing into the kernel: it runs the tool as
``PATH OUTPUT``, where OUTPUT is a named pipe in a private temporary folder (mode 0700), and
streams what the tool writes there into the bundle (evidencekit.sources.base.Content): the image
never lies on disk in the clear (the sealing pipeline holds a stream of unknown length in its
encrypted spool). AVML takes its output file this way; a tool that needs other arguments is
called through a small wrapper script.

Recorded in ``memory.json``: the tool's path, SHA-256, version (``PATH --version``, bounded),
command line, exit status, its messages, the image's SHA-256, size and format (from its first
bytes). A tool that cannot start, fails, ends having written nothing, or writes nothing for
``idle_timeout`` seconds (then stopped, with everything it started) leaves the image entry with
an error: the capture is incomplete, never silently without memory.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import select
import shutil
import signal
import subprocess
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from evidencekit.clock import Clock, rfc3339
from evidencekit.fs import leftovers
from evidencekit.sources.live.common import Document, Gaps, envelope, reason, text

DEFAULT_IDLE_TIMEOUT = 120.0  # seconds without a byte from the tool before it is stopped
_VERSION_TIMEOUT = 10.0
_KEPT_OUTPUT = 64 << 10  # of the tool's own messages (stdout and stderr)
_POLL = 0.2
# The first bytes of the image formats tools write (recorded, not checked).
_MAGIC = {b"EMiL": "lime", b"AVML": "avml", b"\x7fELF": "elf-core", b"PMEM": "pmem"}


def tool_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def tool_version(path: Path, folder: str, timeout: float) -> str:
    """What ``PATH --version`` prints (first 4 KiB), bounded in time like the tool itself (then
    stopped with all it started), run in the private *folder*: a tool that takes ``--version``
    for a file name writes it there."""
    try:
        process = subprocess.Popen([str(path), "--version"], stdin=subprocess.DEVNULL, cwd=folder,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    except OSError as exc:
        return f"unknown: {reason(exc)}"
    try:
        said, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_group(process)
        process.communicate()
        return f"unknown: '--version' did not answer within {timeout:g} s"
    shown = text(said[:4096]).strip()
    if process.returncode == 0 and shown:
        return shown
    return f"unknown: '--version' exited with status {process.returncode}" + \
        (f": {shown}" if shown else "")


def _abandon(process: subprocess.Popen[bytes], folder: str) -> None:
    _stop_group(process)
    shutil.rmtree(folder, ignore_errors=True)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop *process* and everything it started (its own session, which outlives the tool when
    the tool left something running): TERM, up to 5 s for the tool to end, then KILL what is
    left. A group whose every process ended is not there to signal."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    process.wait()


class MemoryImage:
    """The tool's run, as the Content of the image entry; :meth:`document` after it was read."""

    def __init__(self, tool: Path, clock: Clock, idle_timeout: float) -> None:
        self._tool = tool.absolute()
        self._clock = clock
        self._idle_timeout = idle_timeout
        self._gaps = Gaps()
        self._started = clock()
        self._facts: dict[str, Any] = {"tool": str(self._tool), "tool_version": None,
                                       "idle_timeout_ms": round(idle_timeout * 1000)}
        self._facts["tool_sha256"] = self._gaps.attempt("tool_sha256",
                                                        lambda: tool_sha256(self._tool))
        self._digest = hashlib.sha256()
        self._size = 0
        self._head = b""
        self._folder: str | None = None
        self._read_fd = self._write_fd = -1
        self._process: subprocess.Popen[bytes] | None = None
        self._output = bytearray()
        self._reader: threading.Thread | None = None
        self._problem: str | None = None
        self._last_byte = time.monotonic()
        self._finished = False
        try:
            self._start()
        except OSError as exc:
            self._problem = f"the memory tool could not be started: {reason(exc)}"
            self._cleanup()

    @property
    def size(self) -> int | None:
        return None  # known only at the end: the pipeline holds it in its encrypted spool

    def _start(self) -> None:
        # mode 0700; named with this process's id: one a kill -9 left is removed by the next
        self._folder = leftovers.working_folder("evidencekit-memory")
        pipe = os.path.join(self._folder, "image")
        self._facts["tool_version"] = tool_version(self._tool, self._folder,
                                                     min(_VERSION_TIMEOUT, self._idle_timeout))
        os.mkfifo(pipe, 0o600)
        self._read_fd = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        # our own writer keeps the pipe from reading as ended before the tool opens it
        self._write_fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        command = [str(self._tool), pipe]
        self._facts["command_line"] = command
        self._facts["started"] = rfc3339(self._clock())
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         cwd=self._folder)
        self._facts["pid"] = self._process.pid
        # however the capture ends (an error, Ctrl-C, the interpreter exiting with the reading
        # never finished): no tool left running, no folder left behind
        weakref.finalize(self, _abandon, self._process, self._folder)
        self._reader = threading.Thread(target=self._keep_output, name="evidencekit-memory-log",
                                        daemon=True)
        self._reader.start()
        self._last_byte = time.monotonic()

    def _keep_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in iter(lambda: self._process.stdout.read(4096), b""):  # type: ignore[union-attr]
            if len(self._output) < _KEPT_OUTPUT:
                self._output += line[: _KEPT_OUTPUT - len(self._output)]

    def readinto(self, buffer: memoryview) -> int:
        if self._finished:
            return 0
        if self._problem is not None and self._read_fd < 0:
            raise OSError(errno.EIO, self._problem)
        while True:
            ready, _, _ = select.select([self._read_fd], [], [], _POLL)
            if ready:
                try:
                    count = os.readv(self._read_fd, [buffer])
                except BlockingIOError:
                    continue
                if count:
                    self._took(buffer[:count])
                    return count
                self._end()
                if self._problem is not None:
                    raise OSError(errno.EIO, self._problem)
                return 0
            self._watch()

    def _took(self, data: memoryview) -> None:
        self._digest.update(data)
        if len(self._head) < 8:
            self._head += bytes(data[: 8 - len(self._head)])
        self._size += len(data)
        self._last_byte = time.monotonic()

    def _watch(self) -> None:
        """Between reads: the tool ended (let the pipe drain to its end), or nothing came for
        the idle time: stop the tool and what it started, and end the image there. Also once
        the tool ended: what it left running may hold the pipe open and write nothing (the
        capture waited for it for ever), or hold it from outside the tool's session (so the
        image ends here, not when the pipe does)."""
        assert self._process is not None
        ended = self._process.poll() is not None
        if ended:
            self._close_writer()
        if time.monotonic() - self._last_byte <= self._idle_timeout:
            return
        self._problem = (f"the memory tool wrote nothing for {self._idle_timeout:g} s and was "
                         f"stopped after {self._size} bytes" if not ended else
                         f"the memory tool ended, but what it left running kept its output open "
                         f"and wrote nothing for {self._idle_timeout:g} s: stopped after "
                         f"{self._size} bytes")
        self._stop()
        self._close_writer()
        self._end()
        raise OSError(errno.EIO, self._problem)

    def _stop(self) -> None:
        assert self._process is not None
        _stop_group(self._process)

    def _close_writer(self) -> None:
        if self._write_fd >= 0:
            os.close(self._write_fd)
            self._write_fd = -1

    def _end(self) -> None:
        assert self._process is not None
        try:
            status = self._process.wait(timeout=self._idle_timeout)
        except subprocess.TimeoutExpired:  # closed its output but did not exit
            self._problem = self._problem or "the memory tool closed its output but did not exit"
            self._stop()
            status = self._process.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        self._facts["exit_status"] = status if status >= 0 else None
        if status < 0:
            self._facts["signal"] = signal.Signals(-status).name
        if status != 0 and self._problem is None:
            self._problem = (f"the memory tool exited with status {status}" if status > 0 else
                             f"the memory tool was ended by {signal.Signals(-status).name}")
        if self._size == 0 and self._problem is None:  # "success" without an image is none
            self._problem = "the memory tool exited with status 0 but wrote nothing"
        self._finished = True
        self._cleanup()

    def _cleanup(self) -> None:
        for fd in (self._read_fd, self._write_fd):
            if fd >= 0:
                os.close(fd)
        self._read_fd = self._write_fd = -1
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def changes(self) -> list[str]:
        return []

    def close(self) -> None:
        """Whatever happened to the reading: no tool left running, no pipe left behind."""
        if self._process is not None:
            if self._process.poll() is None:
                self._problem = self._problem or "the capture stopped before the memory tool ended"
            self._stop()  # also what it left running once it ended
        self._cleanup()

    def document(self) -> Document:
        facts = dict(self._facts)
        facts.update({"finished": rfc3339(self._clock()), "image_bytes": self._size,
                      "image_sha256": self._digest.hexdigest() if self._finished else None,
                      "image_format": _MAGIC.get(self._head[:4], "unknown"),
                      "problem": self._problem, "tool_output": text(bytes(self._output))})
        facts.setdefault("exit_status", None)
        facts.setdefault("command_line", None)
        return envelope("memory", self._clock, self._started, self._gaps, facts)
