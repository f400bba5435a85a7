"""Running evidencekit on hostile input in tests: bounded in time and memory, with checks that it
failed cleanly, printed nothing dangerous and left the file system as it was."""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.tools import unprivileged_python

GIB = 1 << 30


TIME_LIMIT = 60  # seconds; every hostile case must finish far below this


# What must never reach a terminal from a name or a bundle: C0 controls (ESC, CR, BS, TAB, a
# newline inside a line …), DEL, C1 controls (0x9b is a one-byte CSI), and the bidirectional
# overrides and isolates that reorder what a line seems to say.
TERMINAL_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@dataclass
class Bounded:
    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss: int | None = None  # bytes, the child's own maximum resident set (run_measured)

    def json(self) -> dict:
        return json.loads(self.stdout)

    def message(self) -> str:
        """Every one-line problem the command reported (findings, error, no-key message)."""
        document = self.json()
        lines = [f["problem"] for f in document.get("findings") or []]
        if document.get("error"):
            lines.append(document["error"]["message"])
        if document.get("no_matching_key"):
            lines.append(document["no_matching_key"])
        return "\n".join(lines)


def _limit_memory(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run_bounded(*args: object, env: dict[str, str] | None = None, memory: int | None = None,
                timeout: float = TIME_LIMIT, user: str | None = None) -> Bounded:
    """Run ``python -m evidencekit`` with a time limit, optionally under RLIMIT_AS or as user
    nobody (*user* ``"nobody"``: see tests.support.tools.unprivileged_python)."""
    python = [sys.executable]
    if user is not None:
        assert user == "nobody", "only user nobody is set up for tests"
        python = unprivileged_python()
    command = [*python, "-m", "evidencekit", *map(str, args)]
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})}, timeout=timeout,
                          preexec_fn=(lambda: _limit_memory(memory)) if memory else None)
    return Bounded(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def run_measured(*args: object, env: dict[str, str] | None = None, memory: int | None = GIB,
                 timeout: float = TIME_LIMIT) -> Bounded:
    """run_bounded, plus the peak resident memory of that one child process.

    The child is reaped with ``wait4``, which returns its own resource usage: unlike
    ``getrusage(RUSAGE_CHILDREN)`` (the maximum over every child ever waited for) it is exact
    even when other commands run in parallel.
    """
    command = [sys.executable, "-m", "evidencekit", *map(str, args)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.monotonic()
        proc = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                text=True, env={**os.environ, **(env or {})},
                                preexec_fn=(lambda: _limit_memory(memory)) if memory else None)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - started > timeout:
                proc.kill()
                os.wait4(proc.pid, 0)
                proc.returncode = -9
                pytest.fail(f"{' '.join(map(str, args))} took more than {timeout} s")
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        # ru_maxrss is in KiB on Linux
        return Bounded(proc.returncode, out.read(), err.read(), seconds, usage.ru_maxrss * 1024)


def run_driver(runs: list[dict], scratch: Path, memory: int | None = None,
               timeout: float = 600) -> dict[str, Bounded]:
    """Run many command lines in one process (tests/hostile/cli_driver.py)."""
    spec = scratch / f"runs-{os.getpid()}-{id(runs)}.json"
    out = spec.with_suffix(".results.json")
    spec.write_text(json.dumps(runs))
    try:
        subprocess.run([sys.executable, "-m", "tests.hostile.cli_driver", spec, out],
                       check=True, timeout=timeout, stdin=subprocess.DEVNULL,
                       cwd=Path(__file__).parents[2],
                       preexec_fn=(lambda: _limit_memory(memory)) if memory else None)
        raw = json.loads(out.read_text())
    finally:
        spec.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
    return {key: Bounded(r["code"], r["stdout"], r["stderr"], r["seconds"])
            for key, r in raw.items()}


def assert_clean_failure(result: Bounded, codes: tuple[int, ...] = (1, 2)) -> None:
    """An expected exit code, one JSON document, no traceback, every message on one line, and
    nothing on stderr that a terminal would act on."""
    assert result.code in codes, f"exit {result.code}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    assert "Traceback" not in result.stderr, result.stderr
    assert "internal error" not in result.stdout + result.stderr
    assert_terminal_safe(result.stderr)
    document = result.json()
    assert document["exit_code"] == result.code
    message = result.message()
    assert message, f"no message: {result.stdout[-2000:]}"
    for line in message.splitlines():
        assert line.strip() and len(line) < 1000, line


def assert_terminal_safe(text: str) -> None:
    """*text*, as printed for people, holds no control character but the newline ending each
    line: a hostile name can neither start a forged line nor move the cursor or recolour."""
    lines = text.split("\n")
    assert lines[-1] == "", f"output does not end with a newline: {text[-200:]!r}"
    for line in lines[:-1]:
        found = TERMINAL_CONTROLS.search(line)
        assert found is None, f"control character {found.group()!r} printed raw: {line!r}"


def snapshot(folder: Path, skip: set[str] = frozenset()) -> dict[bytes, tuple[int, int, int]]:
    """Every path under *folder* (not following links): mode, size, mtime. Names in *skip* at the
    top level are left out."""
    found: dict[bytes, tuple[int, int, int]] = {}
    for relative, info in walk_fd(folder, skip=skip):
        found[relative] = (info.st_mode, info.st_size if not stat.S_ISDIR(info.st_mode) else 0,
                           info.st_mtime_ns)
    return found


def walk_fd(folder: Path, skip: set[str] = frozenset()) -> Iterator[tuple[bytes, os.stat_result]]:
    """Walk through directory descriptors: works below PATH_MAX and never follows a link."""
    root = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield b".", os.fstat(root)
        yield from _walk_fd(root, b"", {os.fsencode(s) for s in skip})
    finally:
        os.close(root)


def _walk_fd(fd: int, prefix: bytes, skip: set[bytes]) -> Iterator[tuple[bytes, os.stat_result]]:
    for name in sorted(os.listdir(fd)):
        raw = os.fsencode(name)
        if not prefix and raw in skip:
            continue
        info = os.stat(raw, dir_fd=fd, follow_symlinks=False)
        relative = prefix + raw
        yield relative, info
        if stat.S_ISDIR(info.st_mode):
            child = os.open(raw, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            try:
                yield from _walk_fd(child, relative + b"/", set())
            finally:
                os.close(child)


def file_hashes(folder: Path) -> dict[bytes, str]:
    """sha256 of every regular file under *folder*, by raw relative path (deep trees too)."""
    hashes = {}
    root = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for relative, info in walk_fd(folder):
            if stat.S_ISREG(info.st_mode):
                hashes[relative] = _hash_at(root, relative)
    finally:
        os.close(root)
    return hashes


def _hash_at(root: int, relative: bytes) -> str:
    *folders, name = relative.split(b"/")
    fd = os.dup(root)
    try:
        for part in folders:
            following = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = following
        file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
    finally:
        os.close(fd)
    digest = hashlib.sha256()
    with os.fdopen(file_fd, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def alarm(seconds: int) -> Iterator[None]:
    """Fail instead of hanging: a blocking open or read is interrupted by SIGALRM."""
    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"blocked for more than {seconds} s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
