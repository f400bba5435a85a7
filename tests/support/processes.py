"""Child processes for tests that look at the running system (capture --live): started with
known command lines, always stopped (whatever the test does) by the context manager."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Children:
    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *command: str | Path, stdout: int | None = None) -> subprocess.Popen[bytes]:
        child = subprocess.Popen([str(c) for c in command], stdin=subprocess.DEVNULL,
                                 stdout=stdout if stdout is not None else subprocess.DEVNULL)
        self.started.append(child)
        return child

    def sleeper(self, folder: Path, name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        """A copy of sleep(1) named *name*, running ``NAME 600 ARGS…``."""
        program = folder / name
        shutil.copy2(shutil.which("sleep") or "/bin/sleep", program)
        return self.start(program, "600", *args), program

    def listener(self) -> tuple[subprocess.Popen[bytes], int]:
        """A Python process listening on a TCP port of 127.0.0.1 (only); the port it got."""
        child = self.start(sys.executable, "-c",
                           "import socket, time\n"
                           "s = socket.socket()\n"
                           "s.bind(('127.0.0.1', 0))\n"
                           "s.listen()\n"
                           "print(s.getsockname()[1], flush=True)\n"
                           "time.sleep(600)\n", stdout=subprocess.PIPE)
        assert child.stdout is not None
        return child, int(child.stdout.readline())  # answers once it listens

    def stop(self) -> None:
        for child in self.started:
            child.kill()
        for child in self.started:
            child.wait()
            if child.stdout is not None:
                child.stdout.close()


@contextmanager
def children() -> Iterator[Children]:
    running = Children()
    try:
        yield running
    finally:
        running.stop()
