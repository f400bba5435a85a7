"""A disk with bad sectors, for tests: a FUSE file system (mfusepy, Debian's libfuse2) holding one
file, ``disk``, whose reads fail with EIO on chosen byte ranges, and a read-only loop device
over it (``losetup -r``). O_DIRECT reads of that /dev/loopN fail exactly where the ranges are,
as a failing disk's would (docs: /work/shared/notes/standards.md, "Block devices").

:func:`bad_disk` mounts it and yields the loop device; it always detaches and unmounts, whatever
the test did. A missing tool, module or device node, or no root, skips locally and fails under
EVIDENCEKIT_REQUIRE_TOOLS=1.

The file system runs as its own process (``python -m tests.support.badfs SPEC MOUNTPOINT``),
told what to do by a JSON spec:

- ``image``: the file whose bytes ``disk`` shows;
- ``bad``: ``[start, end)`` byte ranges whose every read fails;
- ``fail_once``: ranges whose first read fails, later reads work;
- ``fail_later``: ranges whose first read works, later reads fail (a weak sector);
- ``slow``: ranges whose reads take ``slow_seconds`` each;
- ``vanish_at``: once a read reaches this byte, every read fails (a disk pulled out);
- ``vanish_after_failures``: once this many reads failed on ``bad``, every read fails (a disk
  that dies while it is asked again and again for its bad sectors);
- ``log``: a file where each read is appended as ``offset size``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Range = tuple[int, int]


@dataclass
class Faults:
    bad: list[Range] = field(default_factory=list)
    fail_once: list[Range] = field(default_factory=list)
    fail_later: list[Range] = field(default_factory=list)
    slow: list[Range] = field(default_factory=list)
    slow_seconds: float = 0.3
    vanish_at: int | None = None
    vanish_after_failures: int | None = None


def _touches(ranges: list[Range], offset: int, size: int) -> list[Range]:
    return [(start, end) for start, end in ranges if start < offset + size and offset < end]


def serve(spec_path: str, mountpoint: str) -> None:
    """Run the file system in the foreground until unmounted."""
    import errno
    import stat
    import threading

    import mfusepy as fuse  # type: ignore[import-untyped]

    spec = json.loads(Path(spec_path).read_text())
    image = os.open(spec["image"], os.O_RDONLY)
    size = os.fstat(image).st_size
    bad = [tuple(r) for r in spec.get("bad", [])]
    once = [tuple(r) for r in spec.get("fail_once", [])]
    later = [tuple(r) for r in spec.get("fail_later", [])]
    read_once: set[tuple[int, int]] = set()
    slow = [tuple(r) for r in spec.get("slow", [])]
    vanish_at = spec.get("vanish_at")
    vanish_after = spec.get("vanish_after_failures")
    failed_once: set[tuple[int, int]] = set()
    lock = threading.Lock()
    state = {"gone": False, "failures": 0}
    log = open(spec["log"], "a", buffering=1) if spec.get("log") else None  # noqa: SIM115

    class Disk(fuse.Operations):  # type: ignore[misc]
        use_ns = True

        def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
            if path == "/":
                return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
            if path == "/disk":
                return {"st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_size": size}
            raise fuse.FuseOSError(errno.ENOENT)

        def readdir(self, path: str, fh: Any) -> list[str]:
            return [".", "..", "disk"]

        def open(self, path: str, flags: int) -> int:
            if path != "/disk":
                raise fuse.FuseOSError(errno.ENOENT)
            return 0

        def read(self, path: str, length: int, offset: int, fh: Any) -> bytes:
            if log is not None:
                log.write(f"{offset} {length}\n")
            with lock:
                if vanish_at is not None and offset + length > vanish_at:
                    state["gone"] = True
                if state["gone"]:
                    raise fuse.FuseOSError(errno.EIO)
                if _touches(bad, offset, length):
                    state["failures"] += 1
                    if vanish_after is not None and state["failures"] >= vanish_after:
                        state["gone"] = True
                    raise fuse.FuseOSError(errno.EIO)
                fresh = [r for r in _touches(once, offset, length) if r not in failed_once]
                if fresh:
                    failed_once.update(fresh)
                    raise fuse.FuseOSError(errno.EIO)
                weak = _touches(later, offset, length)
                if any(r in read_once for r in weak):
                    raise fuse.FuseOSError(errno.EIO)
                read_once.update(weak)
            if _touches(slow, offset, length):
                time.sleep(spec.get("slow_seconds", 0.3))
            return os.pread(image, length, offset)

    fuse.FUSE(Disk(), mountpoint, foreground=True, ro=True, direct_io=True, nothreads=True)


def _run(*args: object) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def require_loop_and_fuse() -> None:
    """Skip (locally) or fail (CI) where loop devices or FUSE cannot be used."""
    from tests.support.tools import require_tool, skip_or_fail

    for tool in ("losetup", "fusermount"):
        require_tool(tool)
    if os.geteuid() != 0:
        skip_or_fail("loop devices need root")
    for node in ("/dev/loop-control", "/dev/fuse"):
        if not os.path.exists(node):
            skip_or_fail(f"{node} is missing: no loop devices or no FUSE here")
    try:
        import mfusepy  # type: ignore[import-untyped]  # noqa: F401
    except (ImportError, OSError) as exc:  # OSError: libfuse itself is missing
        skip_or_fail(f"mfusepy cannot be used ({exc}): pip install mfusepy; apt install libfuse2")


@contextmanager
def loop_device(image: Path, read_only: bool = True, sector_size: int | None = None,
                partitions: bool = False) -> Iterator[str]:
    """A loop device over *image* (with logical sectors of *sector_size* bytes: 4096 for a
    "4Kn" disk), detached afterwards whatever happened (its partitions go with it).

    *partitions*: the partitions of *image*'s partition table become /dev/loopNpM. The
    kernels of these machines have no partition-table parsers (``losetup -P`` finds none), so
    ``partx -a`` reads the table and tells the kernel, as it does where there are."""
    require_loop_and_fuse()
    device = _run("losetup", "--find", "--show", *(["-r"] if read_only else []),
                  *(["--sector-size", sector_size] if sector_size else []),
                  *(["-P"] if partitions else []), image)
    try:
        name = os.path.basename(device)
        if partitions and not any(Path(f"/sys/block/{name}").glob(f"{name}p*")):
            from tests.support.tools import require_tool

            _run(require_tool("partx"), "-a", device)
        yield device
    finally:
        _writable_again(device)
        subprocess.run(["losetup", "-d", device], capture_output=True)


def _writable_again(device: str) -> None:
    """Undo a BLKROSET (what device imaging does): the kernel keeps that flag on /dev/loopN
    after it is detached, and the next test (or helper) to attach it would get a read-only
    device."""
    import fcntl
    import struct

    fd = os.open(device, os.O_RDONLY | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, 0x125D, struct.pack("i", 0))  # BLKROSET 0
    finally:
        os.close(fd)


@contextmanager
def bad_disk(folder: Path, content: bytes, faults: Faults, log: Path | None = None,
             sector_size: int | None = None) -> Iterator[str]:
    """A read-only /dev/loopN showing *content*, failing as *faults* says (with logical
    sectors of *sector_size* bytes: 4096 for a "4Kn" disk)."""
    require_loop_and_fuse()
    image = folder / "badfs-image"
    image.write_bytes(content)
    where = folder / "badfs-mount"
    where.mkdir()
    spec = folder / "badfs-spec.json"
    spec.write_text(json.dumps({"image": str(image), "bad": faults.bad,
                                "fail_once": faults.fail_once, "slow": faults.slow,
                                "fail_later": faults.fail_later,
                                "slow_seconds": faults.slow_seconds,
                                "vanish_at": faults.vanish_at,
                                "vanish_after_failures": faults.vanish_after_failures,
                                "log": str(log) if log else None}))
    root = Path(__file__).resolve().parents[2]
    server = subprocess.Popen([sys.executable, "-m", "tests.support.badfs", str(spec), str(where)],
                              cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_mounted(where, server)
        with loop_device(where / "disk", sector_size=sector_size) as device:
            yield device
    finally:
        _unmount(where)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_mounted(where: Path, server: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if os.path.ismount(where) and (where / "disk").exists():
            return
        if server.poll() is not None:
            said = server.stderr.read().decode(errors="replace") if server.stderr else ""
            raise RuntimeError(f"the test file system did not start: {said.strip()}")
        time.sleep(0.05)
    raise RuntimeError("the test file system did not mount within 10 s")


def _unmount(where: Path) -> None:
    for attempt in range(20):
        done = subprocess.run(["fusermount", "-u", str(where)], capture_output=True)
        if done.returncode == 0 or not os.path.ismount(where):
            return
        time.sleep(0.1 * (attempt + 1))
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
