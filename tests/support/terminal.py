"""Running a tool on a pseudo-terminal, as a person would: age reads a passphrase from the
terminal only (/dev/tty), never from standard input."""

from __future__ import annotations

import os
import pty
import select
import time
from pathlib import Path


def on_a_terminal(argv: list[str], answers: list[str], *, prompt: bytes = b"passphrase",
                  cwd: Path | None = None, env: dict[str, str] | None = None,
                  timeout: float = 120) -> tuple[int, str]:
    """Run *argv* with a pseudo-terminal as its controlling terminal, typing the n-th of
    *answers* once *prompt* (in any case) has appeared n times; its exit code and all it wrote
    there (standard output and error both)."""
    pid, fd = pty.fork()
    if pid == 0:  # child: the pty is its controlling terminal, so /dev/tty works
        try:
            if cwd is not None:
                os.chdir(cwd)
            if env is None:
                os.execvp(argv[0], argv)
            else:
                os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    output = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            output += data
            if pending and output.lower().count(prompt.lower()) > len(answers) - len(pending):
                os.write(fd, pending.pop(0).encode() + b"\n")
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")
