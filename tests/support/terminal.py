"""Running a tool on a pseudo-terminal, as a person would: age reads a passphrase from the
terminal only (/dev/tty), never from standard input; evidencekit asks on the terminal only."""

from __future__ import annotations

import io
import os
import pty
import select
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


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


def evidencekit_on_a_pty(args: Sequence[object], *, cwd: Path, env: Mapping[str, object] = {},
                         columns: int = 200, timeout: float = 60) -> Any:
    """``evidencekit ARGS`` on a pseudo-terminal (a pexpect child, to expect prompts and answer
    them), in *cwd*, with *env* added to this environment: plain output *columns* wide, and no
    EVIDENCEKIT_PASSPHRASE (what is asked must be asked). All it showed is kept in
    ``child.logfile_read`` (a StringIO)."""
    import pexpect

    full = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": str(columns),
            **{name: str(value) for name, value in env.items()}}
    full.pop("EVIDENCEKIT_PASSPHRASE", None)
    child = pexpect.spawn(sys.executable, ["-m", "evidencekit", *map(str, args)], cwd=str(cwd),
                          env=full, encoding="utf-8", timeout=timeout, dimensions=(50, columns))
    child.logfile_read = io.StringIO()
    return child
