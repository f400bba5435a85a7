"""Capturing from damaged, odd and hostile file systems: nothing hangs, nothing is lost silently,
the bundle never swallows itself, and a failed write leaves nothing behind.

Through the real CLI where the case can be set up for real (special files, names, deep trees,
links, sparse files, a full disk on a small tmpfs, an unprivileged user for unreadable items), and
through the library with an injected failure where it cannot (as root, permission bits do not stop
reads; a file cannot be made to change at a precise moment otherwise). Interrupting a capture
(Ctrl-C, SIGTERM) is tested in tests/e2e/test_interrupted.py.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from evidencekit.capture import CaptureRequest, CaptureResult, CaseInfo, capture
from evidencekit.clock import rfc3339
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.errors import ExitCode, OutputError
from evidencekit.format.manifest import Manifest
from evidencekit.verify import verify
from tests.support.hostile import Bounded, alarm, assert_terminal_safe, file_hashes, run_bounded, snapshot
from tests.support.tools import NOBODY, skip_or_fail, unprivileged_python

# ------------------------------------------------------------------------------ helpers


def cli_capture(tmp_path: Path, keys: dict[str, Path], *sources: object, out: Path | None = None,
                **run: Any) -> tuple[Bounded, Path]:
    out = out or tmp_path / "case.evidence"
    result = run_bounded("capture", *sources, "-R", keys["recipient"], "--sign-key",
                         keys["signer"], "-o", out, "--json", **run)
    assert "Traceback" not in result.stderr, result.stderr
    return result, out


def cli_manifest(bundle: Path, keys: dict[str, Path], out: Path) -> dict[str, Any]:
    """Extract (which verifies everything) and return the manifest."""
    result = run_bounded("extract", bundle, "-i", keys["identity"], "-o", out, "--json")
    assert result.code == 0, result.stdout + result.stderr
    return json.loads((out / "evidencekit" / "manifest.json").read_bytes())


def by_path(manifest: Manifest | dict[str, Any]) -> dict[bytes, dict[str, Any]]:
    import base64

    entries = {}
    listed = manifest.entries() if isinstance(manifest, Manifest) else manifest["entries"]
    for entry in listed:
        raw = (base64.b64decode(entry["path_b64"]) if "path_b64" in entry
               else entry["path"].encode())
        entries[raw] = entry
    return entries


class Library:
    """Capture in-process (for injected failures) and read back the verified manifest."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.identity = age.X25519Identity.generate()
        self.signer = SigningKey.generate("test")

    def capture(self, *sources: Path, out: Path | None = None) -> CaptureResult:
        out = out or self.tmp_path / f"lib-{time.monotonic_ns()}.evidence"
        request = CaptureRequest([os.fsencode(s) for s in sources], out,
                                 CaseInfo("HOSTILE-CAPTURE", "tester"),
                                 [self.identity.recipient()], self.signer, ["test"])
        return capture(request)

    def manifest(self, bundle: Path) -> dict[bytes, dict[str, Any]]:
        report = verify(bundle, [self.identity])
        assert report.ok, report.findings.items
        assert report.manifest is not None
        return by_path(report.manifest)


@pytest.fixture
def lib(tmp_path: Path) -> Library:
    return Library(tmp_path)


def proc_name(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def hook_reads(monkeypatch: pytest.MonkeyPatch, name: str,
               before: Callable[[int], None] | None = None,
               after: Callable[[int], None] | None = None) -> list[int]:
    """Call *before*/*after* (with the call number) around every content read (``os.read``,
    ``os.readv``: whichever capture uses) of the file whose name is *name*; returns the list of
    byte counts those calls returned (so a test fails loudly if capture reads some other way)."""
    acted: list[int] = []
    for function in ("read", "readv"):
        real = getattr(os, function)

        def wrapper(fd: int, *args: Any, _real: Callable[..., Any] = real) -> Any:
            if not proc_name(fd).endswith("/" + name):
                return _real(fd, *args)
            acted.append(0)
            if before is not None:
                before(len(acted))
            result = _real(fd, *args)
            acted[-1] = result if isinstance(result, int) else len(result)
            if after is not None:
                after(len(acted))
            return result

        monkeypatch.setattr(os, function, wrapper)
    return acted


def hook_os(monkeypatch: pytest.MonkeyPatch, name: str, wrapper: Callable[..., Any]) -> list[int]:
    """Replace ``os.<name>`` (as evidencekit's modules see it) by ``wrapper(real, *args)``;
    returns a list that counts the calls the wrapper acted on (appended by the wrapper)."""
    real = getattr(os, name)
    acted: list[int] = []
    monkeypatch.setattr(os, name, lambda *a, **k: wrapper(real, acted, *a, **k))
    return acted


# ------------------------------------------------------------------- special files, links


def test_fifo_and_socket_are_recorded_never_read(tmp_path, home, keys):
    """Needs nothing special (unlike device nodes, below), so it runs everywhere."""
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "fifo-without-writer")  # reading it would block forever
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(src / "socket"))
    (src / "plain.txt").write_text("plain\n")
    try:
        result, bundle = cli_capture(tmp_path, keys, src, timeout=60)
    finally:
        server.close()
    assert result.code == 0, result.stdout + result.stderr
    assert result.json()["seal"]["counts"]["special"] == 2
    entries = by_path(cli_manifest(bundle, keys, tmp_path / "out"))
    assert entries[b"src/fifo-without-writer"]["kind"] == "fifo"
    assert entries[b"src/socket"]["kind"] == "socket"
    for entry in (entries[b"src/fifo-without-writer"], entries[b"src/socket"]):
        assert entry["error"] is None and "sha256" not in entry
    assert sorted(os.listdir(tmp_path / "out" / "data" / "src")) == ["plain.txt"]


def test_device_nodes_are_recorded_never_read(tmp_path, home, keys):
    """/dev/zero's numbers (reading would never end) and a block device: needs mknod (root)."""
    src = tmp_path / "src"
    src.mkdir()
    devices = {"zero-device": (stat.S_IFCHR, 1, 5), "loop-device": (stat.S_IFBLK, 7, 254)}
    try:
        for name, (kind, major, minor) in devices.items():
            os.mknod(src / name, kind | 0o600, os.makedev(major, minor))
    except PermissionError:
        skip_or_fail("cannot create device nodes here (not root, or a restricted container)")
    (src / "plain.txt").write_text("plain\n")
    result, bundle = cli_capture(tmp_path, keys, src, timeout=60)
    assert result.code == 0, result.stdout + result.stderr
    assert result.json()["seal"]["counts"]["special"] == 2
    entries = by_path(cli_manifest(bundle, keys, tmp_path / "out"))
    zero, loop = entries[b"src/zero-device"], entries[b"src/loop-device"]
    assert (zero["kind"], zero["rdev_major"], zero["rdev_minor"]) == ("char-device", 1, 5)
    assert (loop["kind"], loop["rdev_major"], loop["rdev_minor"]) == ("block-device", 7, 254)
    for entry in (zero, loop):
        assert entry["error"] is None and "sha256" not in entry
    assert sorted(os.listdir(tmp_path / "out" / "data" / "src")) == ["plain.txt"]


def test_a_fifo_swapped_in_before_opening_never_blocks(tmp_path, lib, monkeypatch):
    """Listed as a file, a FIFO by the time it is opened: opened non-blocking, refused."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "victim").write_text("was a file\n")

    def swap(real, acted, path, flags, mode=0o777, *, dir_fd=None):
        if path == b"victim" and not flags & os.O_DIRECTORY:
            os.unlink(path, dir_fd=dir_fd)
            os.mkfifo(path, dir_fd=dir_fd)
            acted.append(1)
        return real(path, flags, mode, dir_fd=dir_fd)

    acted = hook_os(monkeypatch, "open", swap)
    with alarm(20):
        result = lib.capture(src)
    monkeypatch.undo()
    assert acted
    assert not result.seal.complete
    entry = lib.manifest(result.output)[b"src/victim"]
    assert entry["error"] == "replaced by something else between listing and opening"


def test_a_folder_replaced_before_opening_is_not_listed_as_itself(tmp_path, lib, monkeypatch):
    """Looked up, then renamed away and another folder put in its place before it is opened:
    the other folder's files must not be recorded under the first one's metadata."""
    src = tmp_path / "src"
    (src / "inbox").mkdir(parents=True)
    (src / "inbox" / "real.eml").write_text("the real mail\n")
    (tmp_path / "planted").mkdir()
    (tmp_path / "planted" / "fake.eml").write_text("planted\n")

    def swap(real, acted, path, flags, mode=0o777, *, dir_fd=None):
        if path == b"inbox" and flags & os.O_DIRECTORY and not acted:
            os.rename(src / "inbox", tmp_path / "inbox.away")
            os.rename(tmp_path / "planted", src / "inbox")
            acted.append(1)
        return real(path, flags, mode, dir_fd=dir_fd)

    acted = hook_os(monkeypatch, "open", swap)
    result = lib.capture(src)
    monkeypatch.undo()
    assert acted and not result.seal.complete
    entries = lib.manifest(result.output)
    assert entries[b"src/inbox"]["error"] == ("not listed: replaced by another folder between "
                                              "being looked up and opened")
    assert b"src/inbox/fake.eml" not in entries and b"src/inbox/real.eml" not in entries


def test_symlink_loops_and_links_outside_are_recorded_not_followed(tmp_path, home, keys):
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    (src / "dir" / "file.txt").write_text("inside\n")
    os.symlink("loop-b", src / "loop-a")
    os.symlink("loop-a", src / "loop-b")
    os.symlink("self", src / "self")
    os.symlink("..", src / "dir" / "up")
    os.symlink("/etc", src / "outside-dir")
    os.symlink("../../../../../../../../etc/passwd", src / "climbing")
    os.symlink("dir/file.txt", src / "inside")
    result, bundle = cli_capture(tmp_path, keys, src, timeout=60)
    assert result.code == 0, result.stdout
    entries = by_path(cli_manifest(bundle, keys, tmp_path / "out"))
    targets = {p: e.get("target") for p, e in entries.items() if e["kind"] == "symlink"}
    assert targets == {b"src/loop-a": "loop-b", b"src/loop-b": "loop-a", b"src/self": "self",
                       b"src/dir/up": "..", b"src/outside-dir": "/etc",
                       b"src/climbing": "../../../../../../../../etc/passwd",
                       b"src/inside": "dir/file.txt"}
    # never followed: nothing below a link was walked
    assert not [p for p in entries if p.startswith((b"src/outside-dir/", b"src/dir/up/"))]
    restored = tmp_path / "out" / "data" / "src"
    assert os.readlink(restored / "inside") == "dir/file.txt"
    assert not os.path.lexists(restored / "outside-dir")
    assert not os.path.lexists(restored / "climbing")


# ------------------------------------------------------- unreadable items (injected, as root)


def test_unreadable_folder_and_file_are_recorded_and_capture_goes_on(tmp_path, lib, monkeypatch):
    src = tmp_path / "src"
    for folder in ("unlistable", "unopenable", "fine"):
        (src / folder).mkdir(parents=True)
        (src / folder / "inside.txt").write_text("x\n")
    (src / "unreadable.txt").write_text("secret\n")

    def deny_open(real, acted, path, flags, mode=0o777, *, dir_fd=None):
        if path in (b"unreadable.txt", b"unopenable"):
            acted.append(1)
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real(path, flags, mode, dir_fd=dir_fd)

    def deny_list(real, acted, path="."):
        if isinstance(path, int) and proc_name(path).endswith("/unlistable"):
            acted.append(1)
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real(path)

    opened, listed = hook_os(monkeypatch, "open", deny_open), hook_os(monkeypatch, "listdir",
                                                                      deny_list)
    result = lib.capture(src)
    monkeypatch.undo()
    assert opened and listed
    assert not result.seal.complete and result.seal.counts["errors"] == 3
    assert {p.path for p in result.problems} == {"src/unlistable", "src/unopenable",
                                                 "src/unreadable.txt"}
    entries = lib.manifest(result.output)
    assert entries[b"src/unreadable.txt"]["error"] == "could not open: Permission denied"
    assert entries[b"src/unlistable"]["error"] == "could not list the folder: Permission denied"
    assert entries[b"src/unopenable"]["error"] == "could not open the folder: Permission denied"
    assert entries[b"src/fine/inside.txt"]["sha256"] == hashlib.sha256(b"x\n").hexdigest()
    assert b"src/unlistable/inside.txt" not in entries


def test_read_error_in_the_middle_of_a_file_is_recorded(tmp_path, lib, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    content = os.urandom(3 << 20)
    (src / "flaky.bin").write_bytes(content)

    def fail_second(call: int) -> None:
        if call == 2:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    acted = hook_reads(monkeypatch, "flaky.bin", before=fail_second)
    result = lib.capture(src)
    monkeypatch.undo()
    assert len(acted) >= 2, "the reader hook was never called: capture reads some other way"
    entry = lib.manifest(result.output)[b"src/flaky.bin"]
    first = acted[0]  # the first read succeeded, the second failed
    assert entry["error"].startswith(f"read error at byte {first}: Input/output error")
    stored = content[:first] + bytes(len(content) - first)
    assert entry["sha256"] == hashlib.sha256(stored).hexdigest()
    assert not result.seal.complete and result.seal.counts["errors"] == 1


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder an unprivileged user can reach (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="evidencekit-hostile-test-", dir="/tmp"))
    os.chmod(folder, 0o755)
    try:
        yield folder
    finally:
        subprocess.run(["chmod", "-R", "u+rwx", folder], check=False)
        shutil.rmtree(folder, ignore_errors=True)


def _give_to_nobody(*paths: Path) -> None:
    if os.geteuid() == 0:
        for path in paths:
            os.chown(path, NOBODY, NOBODY)


def test_unreadable_items_for_real_as_an_unprivileged_user(shared_tmp, keys):
    """Permission bits for real: capture run as nobody (setpriv/runuser) records both items,
    goes on, and exits 3; an output folder it may not write to is exit 2, nothing created."""
    unprivileged_python()  # skips (locally) when there is no way to drop privileges
    src, out_dir, config = shared_tmp / "src", shared_tmp / "out", shared_tmp / "config"
    for folder in (src / "locked", out_dir, config):
        folder.mkdir(parents=True)
    (src / "locked" / "hidden.txt").write_text("cannot be listed\n")
    (src / "secret.txt").write_text("cannot be read\n")
    (src / "readable.txt").write_text("fine\n")
    signer, recipient = shared_tmp / "signer", shared_tmp / "recipient.txt"
    shutil.copy(keys["signer"], signer)
    shutil.copy(keys["recipient"], recipient)
    _give_to_nobody(out_dir, config, signer, src / "secret.txt", src / "locked")
    os.chmod(src / "locked", 0o000)
    os.chmod(src / "secret.txt", 0o000)
    env = {"XDG_CONFIG_HOME": str(config), "HOME": str(config)}
    bundle = out_dir / "case.evidence"
    result = run_bounded("capture", src, "-R", recipient, "--sign-key", signer, "-o", bundle,
                         "--json", env=env, user="nobody")
    assert result.code == ExitCode.CAPTURE_INCOMPLETE, result.stdout + result.stderr
    problems = {p["path"]: p["problem"] for p in result.json()["problems"]}
    assert problems == {"src/locked": "could not open the folder: Permission denied",
                        "src/secret.txt": "could not open: Permission denied"}
    os.chmod(src / "locked", 0o755)
    entries = by_path(cli_manifest(bundle, keys, shared_tmp / "opened"))
    assert entries[b"src/readable.txt"]["sha256"] == hashlib.sha256(b"fine\n").hexdigest()
    assert entries[b"src/secret.txt"]["error"] == "could not open: Permission denied"

    # A source whose folder may be searched but not listed (mode 711): captured all the same.
    search_only = shared_tmp / "search-only"
    search_only.mkdir()
    (search_only / "inside.txt").write_text("reachable by name\n")
    os.chmod(search_only, 0o711)
    reached = run_bounded("capture", search_only / "inside.txt", "-R", recipient, "--sign-key",
                          signer, "-o", out_dir / "search-only.evidence", "--json", env=env,
                          user="nobody")
    assert reached.code == 0, reached.stdout + reached.stderr

    root_owned = shared_tmp / "root-owned"
    root_owned.mkdir(mode=0o755)
    denied = run_bounded("capture", src / "readable.txt", "-R", recipient, "--sign-key", signer,
                         "-o", root_owned / "x.evidence", "--json", env=env, user="nobody")
    assert denied.code == ExitCode.USAGE and "cannot write to the folder" in denied.stderr
    assert os.listdir(root_owned) == []


def test_a_named_source_that_cannot_be_read_is_recorded_not_refused(shared_tmp, keys):
    """A file or folder named on the command line that the user may not read is recorded, as
    one inside a folder is (exit 3, the rest captured): it ended the whole capture with click's
    "Path '…' is not readable" (exit 2), nothing kept of what could be read."""
    unprivileged_python()
    src, out_dir, config = shared_tmp / "src", shared_tmp / "out", shared_tmp / "config"
    for folder in (src / "locked", out_dir, config):
        folder.mkdir(parents=True)
    (src / "secret.txt").write_text("cannot be read\n")
    (src / "readable.txt").write_text("fine\n")
    signer, recipient = shared_tmp / "signer", shared_tmp / "recipient.txt"
    shutil.copy(keys["signer"], signer)
    shutil.copy(keys["recipient"], recipient)
    _give_to_nobody(out_dir, config, signer)
    os.chmod(src / "locked", 0o000)
    os.chmod(src / "secret.txt", 0o000)
    env = {"XDG_CONFIG_HOME": str(config), "HOME": str(config)}
    result = run_bounded("capture", src / "readable.txt", src / "secret.txt", src / "locked",
                         "-R", recipient, "--sign-key", signer, "-o", out_dir / "named.evidence",
                         "--json", env=env, user="nobody")
    assert result.code == ExitCode.CAPTURE_INCOMPLETE, result.stdout + result.stderr
    problems = {p["path"]: p["problem"] for p in result.json()["problems"]}
    assert problems == {"secret.txt": "could not open: Permission denied",
                        "locked": "could not open the folder: Permission denied"}


# ----------------------------------------------------------- files that change while read


def _hooked_capture(tmp_path: Path, lib: Library, monkeypatch: pytest.MonkeyPatch, name: str,
                    change: Callable[[Path], None]) -> tuple[dict[str, Any], int]:
    src = tmp_path / "src"
    src.mkdir()
    path = src / name
    path.write_bytes(os.urandom(3 << 20))
    os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))

    def after_first(call: int) -> None:
        if call == 1:
            change(path)  # after the first chunk was read

    acted = hook_reads(monkeypatch, name, after=after_first)
    result = lib.capture(src)
    monkeypatch.undo()
    assert acted, "the reader hook was never called: capture reads some other way"
    assert not result.seal.complete and result.seal.counts["changed"] == 1
    entry = lib.manifest(result.output)[f"src/{name}".encode()]
    assert entry["changed_during_read"] is True
    return entry, acted[0]


def test_file_that_grows_while_read(tmp_path, lib, monkeypatch):
    def grow(path: Path) -> None:
        with open(path, "ab") as f:
            f.write(b"appended while being read")
    entry, _ = _hooked_capture(tmp_path, lib, monkeypatch, "growing.log", grow)
    assert entry["size"] == 3 << 20  # stored at the size it had when opened
    assert any(c.startswith(f"file grew while being read (from {3 << 20} to {(3 << 20) + 25} "
                            "bytes)") for c in entry["changes"])
    assert any("modification time changed" in c for c in entry["changes"])


def test_file_that_shrinks_while_read(tmp_path, lib, monkeypatch):
    entry, first = _hooked_capture(tmp_path, lib, monkeypatch, "shrinking.db",
                                   lambda path: os.truncate(path, 1000))
    assert entry["changes"][0] == (f"file shrank while being read: only {first} of {3 << 20} "
                                   "bytes could be read; the rest is stored as zeros")


def test_file_that_changes_in_place_while_read(tmp_path, lib, monkeypatch):
    def rewrite(path: Path) -> None:
        with open(path, "r+b") as f:
            f.seek(2 << 20)
            f.write(b"tampered")
    entry, _ = _hooked_capture(tmp_path, lib, monkeypatch, "changing.doc", rewrite)
    assert len(entry["changes"]) == 1
    assert entry["changes"][0].startswith("modification time changed while being read "
                                          "(2020-09-13T12:26:40.000000000Z → ")


def test_file_written_by_another_process_during_capture_cli(tmp_path, home, keys):
    """No hook: a thread keeps appending to a big file while the real CLI captures it."""
    src = tmp_path / "src"
    src.mkdir()
    busy = src / "busy.log"
    with open(busy, "wb") as f:
        f.truncate(96 << 20)  # sparse: takes a moment to read, costs no disk
    stop = threading.Event()

    def append() -> None:
        while not stop.is_set():
            with open(busy, "ab") as f:
                f.write(b"x")
            time.sleep(0.002)

    writer = threading.Thread(target=append)
    writer.start()
    try:
        result, _ = cli_capture(tmp_path, keys, src, timeout=120)
    finally:
        stop.set()
        writer.join()
    assert result.code == ExitCode.CAPTURE_INCOMPLETE, result.stdout + result.stderr
    problems = result.json()["problems"]
    assert [p["path"] for p in problems] == ["src/busy.log"]
    assert "changed while being read" in problems[0]["problem"] or "grew" in problems[0]["problem"]


def test_deleted_between_listing_and_reading(tmp_path, lib, monkeypatch):
    src = tmp_path / "src"
    (src / "vanishing-dir").mkdir(parents=True)
    (src / "vanishing.txt").write_text("here when listed\n")
    (src / "gone-before-stat.txt").write_text("here when listed\n")
    (src / "stays.txt").write_text("stays\n")

    def delete_first(real, acted, path, flags, mode=0o777, *, dir_fd=None):
        if path in (b"vanishing.txt", b"vanishing-dir"):
            acted.append(1)
            (os.rmdir if flags & os.O_DIRECTORY else os.unlink)(path, dir_fd=dir_fd)
        return real(path, flags, mode, dir_fd=dir_fd)

    def stat_after_delete(real, acted, path, *args, dir_fd=None, follow_symlinks=True):
        if path == b"gone-before-stat.txt":
            acted.append(1)
            os.unlink(path, dir_fd=dir_fd)
        return real(path, *args, dir_fd=dir_fd, follow_symlinks=follow_symlinks)

    opened = hook_os(monkeypatch, "open", delete_first)
    statted = hook_os(monkeypatch, "stat", stat_after_delete)
    result = lib.capture(src)
    monkeypatch.undo()
    assert opened and statted
    entries = lib.manifest(result.output)
    assert entries[b"src/vanishing.txt"]["error"] == "could not open: No such file or directory"
    assert entries[b"src/vanishing-dir"]["error"] == ("could not open the folder: No such file "
                                                      "or directory")
    assert entries[b"src/gone-before-stat.txt"]["kind"] == "unknown"
    assert entries[b"src/gone-before-stat.txt"]["error"] == "No such file or directory"
    assert entries[b"src/stays.txt"]["error"] is None
    assert not result.seal.complete and result.seal.counts["errors"] == 3


# ---------------------------------------------------------------------- names and depth

ODD_NAMES = [b"latin1-\xe9t\xe9.txt", b"line\nbreak", b"tab\there", b"back\\slash",
             b"100% sure", b"literal-%0A-not-a-newline", b"%25", b"carriage\rreturn",
             b"a" * 255, "é".encode() * 127, b"\xff" * 255, b"\xff", b"\\xff", b" leading space",
             b"-dash", b"*?[glob]", b"'quotes\"", "emoji-\U0001f4a5".encode()]


def _make_deep(root: Path, depth_bytes: int) -> bytes:
    """Folders of 200-byte names nested beyond *depth_bytes*, built through dir fds (a path that
    long cannot be passed to the kernel whole). Returns the relative path of the file at the end."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    relative = b""
    level = 0
    try:
        while len(relative) <= depth_bytes:
            name = b"%03d-" % level + b"d" * 196
            os.mkdir(name, dir_fd=fd)
            following = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = following
            relative += name + b"/"
            level += 1
        file_fd = os.open(b"bottom.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(file_fd, b"at the bottom of a very deep tree\n")
        os.close(file_fd)
    finally:
        os.close(fd)
    return relative + b"bottom.txt"


def test_odd_names_long_names_and_deep_paths_round_trip(tmp_path, home, keys):
    src = tmp_path / "src"
    src.mkdir()
    raw = os.fsencode(src)
    for number, name in enumerate(ODD_NAMES):
        with open(raw + b"/" + name, "wb") as f:
            f.write(b"content %d\n" % number)
    os.mkdir(raw + b"/" + b"\xfe" * 200)  # a folder with an escaped name too
    with open(raw + b"/" + b"\xfe" * 200 + b"/" + b"\xfd" * 255, "wb") as f:
        f.write(b"nested non-UTF-8\n")
    deep = _make_deep(src, 4200)
    assert len(os.fsencode(src) + b"/" + deep) > 4096
    before = file_hashes(src)
    result, bundle = cli_capture(tmp_path, keys, src, timeout=120)
    assert result.code == 0, result.stdout + result.stderr
    assert run_bounded("verify", bundle, "-i", keys["identity"], "--json").code == 0
    entries = by_path(cli_manifest(bundle, keys, tmp_path / "out"))
    assert b"src/" + deep in entries and entries[b"src/" + deep]["error"] is None
    for name in ODD_NAMES:
        assert b"src/" + name in entries, name
    assert file_hashes(tmp_path / "out" / "data" / "src") == before  # byte-exact names
    assert file_hashes(src) == before  # source untouched


def test_sparse_file_hash_is_of_the_logical_content(tmp_path, home, keys):
    src = tmp_path / "src"
    src.mkdir()
    sparse = src / "disk.img"
    size = 64 << 20
    with open(sparse, "wb") as f:
        f.truncate(size)
        for offset in (0, 32 << 20, size - 5):
            f.seek(offset)
            f.write(b"DATA!")
    assert os.stat(sparse).st_blocks * 512 < size // 4  # really sparse
    (src / "full.bin").write_bytes(os.urandom(1 << 20))
    logical = hashlib.sha256()
    with open(sparse, "rb") as f:
        while chunk := f.read(1 << 20):
            logical.update(chunk)
    result, bundle = cli_capture(tmp_path, keys, src, timeout=120)
    assert result.code == 0, result.stdout
    entries = by_path(cli_manifest(bundle, keys, tmp_path / "out"))
    entry = entries[b"src/disk.img"]
    assert entry["size"] == size and entry["sha256"] == logical.hexdigest()
    # Recorded as sparse: what it occupied on disk (FORMAT.md §4.3); stored with its holes as
    # zeros all the same (§8), so the hash is of the logical content.
    assert entry["allocated_bytes"] == os.stat(sparse).st_blocks * 512 < size // 4
    assert file_hashes(tmp_path / "out" / "data" / "src")[b"disk.img"] == logical.hexdigest()
    # A file that fills its blocks carries no such field.
    assert "allocated_bytes" not in entries[b"src/full.bin"]


@pytest.mark.parametrize("field", ["allocated_bytes", "reported_size"])
def test_allocated_bytes_is_checked_like_every_integer_field(field):
    """An optional field: absent is fine (older bundles), a non-negative integer is fine,
    anything else is a malformed entry."""
    from evidencekit.format.entries import entry_problems

    base = {"source": 0, "bag_path": "data/src/f", "kind": "file", "error": None,
            "path": "src/f", "size": 10}
    assert list(entry_problems([base])) == []
    assert list(entry_problems([{**base, field: 4096}])) == []
    for bad in ("4096", -1, True, 1.5):
        problems = [p for _, p in entry_problems([{**base, field: bad}])]
        assert problems and field in problems[0], bad


def _kernel_made_files() -> list[Path]:
    """Files of Linux's /proc (reporting 0 bytes) and /sys (4096) whose content stays the same."""
    found = [Path("/proc/version"), Path("/sys/class/net/lo/mtu")]
    missing = [str(path) for path in found if not path.is_file()]
    if missing:
        skip_or_fail(f"{', '.join(missing)} not here: /proc or /sys is not mounted")
    return found


def test_files_whose_size_lies_are_stored_as_read_to_their_end(tmp_path, home, keys):
    """/proc/version reports 0 bytes, /sys/class/net/lo/mtu 4096; each holds a line. Stored at
    the length read to the end (not empty, not padded with zeros), with what the system reported
    in reported_size; no 'grew from 0 to 0 bytes', exit 0. An empty file stays empty."""
    proc, sys_file = _kernel_made_files()
    assert (os.stat(proc).st_size, os.stat(sys_file).st_size) == (0, 4096)
    (tmp_path / "empty.txt").touch()
    expected = {b"version": proc.read_bytes(), b"mtu": sys_file.read_bytes(),
                b"empty.txt": b""}
    assert expected[b"version"] and len(expected[b"mtu"]) < 4096
    result, bundle = cli_capture(tmp_path, keys, proc, sys_file, tmp_path / "empty.txt")
    assert result.code == 0, result.stdout + result.stderr
    assert result.json()["problems"] == []
    entries = by_path(cli_manifest(bundle, keys, tmp_path / "out"))
    for name, reported in ((b"version", 0), (b"mtu", 4096), (b"empty.txt", None)):
        entry, content = entries[name], expected[name]
        assert entry["size"] == len(content), name
        assert entry["sha256"] == hashlib.sha256(content).hexdigest(), name
        assert entry.get("reported_size") == reported, name
        assert "allocated_bytes" not in entry and not entry["changed_during_read"], name
        assert (tmp_path / "out" / "data" / name.decode()).read_bytes() == content


def test_a_file_that_reports_no_size_and_never_ends_is_stored_up_to_the_limit(lib, monkeypatch):
    """/proc/self/pagemap reports 0 bytes and gives gigabytes; whatever reports no size is read
    to its end only up to kernel_files.READ_TO_END_LIMIT (held in memory): the first bytes are
    stored and the error says why (here with the limit lowered, on /proc/self/maps)."""
    from evidencekit.sources.files import kernel_files

    proc_maps = Path("/proc/self/maps")
    if not proc_maps.is_file():
        skip_or_fail("/proc is not mounted")
    monkeypatch.setattr(kernel_files, "READ_TO_END_LIMIT", 100)
    result = lib.capture(proc_maps)
    entry = lib.manifest(result.output)[b"maps"]
    assert entry["size"] == 100 and entry["reported_size"] == 0
    assert entry["error"] == ("not read to its end: the file system reported 0 bytes, and it "
                              "still gave more after 100 bytes; the first 100 bytes are stored")
    assert not result.seal.complete and result.seal.counts["errors"] == 1


def test_the_file_systems_that_make_files_as_read_are_found_in_mountinfo():
    from evidencekit.sources.files.kernel_files import kernel_made

    lines = [b"22 28 0:21 / /proc rw,nosuid shared:12 - proc proc rw",
             b"23 28 0:22 / /sys rw,nosuid shared:2 master:1 - sysfs sysfs rw",
             b"28 1 254:0 / / rw,relatime - ext4 /dev/vda rw",
             b"40 23 0:35 / /sys/kernel/debug rw - debugfs debugfs rw",
             b"41 28 0:36 / /odd\\040name rw - cgroup2 cgroup2 rw",
             b"broken line", b""]
    assert kernel_made(lines) == {os.makedev(0, 21), os.makedev(0, 22), os.makedev(0, 35),
                                   os.makedev(0, 36)}


def test_hard_links_are_stored_once_and_linked_the_second_time(tmp_path, home, keys):
    src = tmp_path / "src"
    (src / "b").mkdir(parents=True)
    content = os.urandom(1 << 20)  # walked in byte order: a-original.bin comes first
    (src / "a-original.bin").write_bytes(content)
    os.link(src / "a-original.bin", src / "b" / "second.bin")
    os.link(src / "a-original.bin", src / "third.bin")
    result, bundle = cli_capture(tmp_path, keys, src, timeout=60)
    assert result.code == 0 and result.json()["seal"]["counts"]["files"] == 3
    assert bundle.stat().st_size < 1.5 * len(content)  # one copy, not three
    entries = by_path(cli_manifest(bundle, keys, tmp_path / "out"))
    first = entries[b"src/a-original.bin"]
    assert "link_to" not in first and first["nlink"] == 3
    for name in (b"src/b/second.bin", b"src/third.bin"):
        entry = entries[name]
        assert entry["link_to"] == "data/src/a-original.bin" and entry["kind"] == "file"
        assert (entry["inode"], entry["sha256"], entry["size"]) == \
            (first["inode"], first["sha256"], first["size"])
    restored = tmp_path / "out" / "data" / "src"
    assert (restored / "b" / "second.bin").read_bytes() == content
    assert os.stat(restored / "a-original.bin").st_ino == os.stat(restored / "third.bin").st_ino
    assert os.stat(restored / "a-original.bin").st_nlink == 3  # linked again, not copied


def test_a_name_of_a_changed_file_is_not_linked(tmp_path):
    """Another name is linked only when its inode, size and times are those of the stored
    file: a reused inode, or a file changed between the two names, is read again."""
    from dataclasses import replace

    from evidencekit.format.entries import ManifestEntry, StatFields, Stored
    from evidencekit.sources.files.source import FileSource
    from evidencekit.sources.files.walk import resolve_sources

    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"one")
    os.link(src / "a", src / "b")

    def second_name_links_to(stored: ManifestEntry) -> str | None:
        """What the files source says src/b is a link to, once src/a was stored as *stored*."""
        source = FileSource(resolve_sources([os.fsencode(src)]))
        source.place(0, set())
        for entry in source.entries(set()):
            if entry.path == b"src/a":
                source.stored(entry, stored)
            elif entry.path == b"src/b":
                return entry.link_to
        raise AssertionError("src/b was not walked")

    info = os.lstat(src / "a")
    status = StatFields(0o644, 0, 0, None, None, rfc3339(info.st_mtime_ns), rfc3339(0),
                        rfc3339(info.st_ctime_ns), None, info.st_ino, info.st_dev, 2)
    record = ManifestEntry(0, "data/src/a", "file", b"src/a", stat=status, size=info.st_size,
                           stored=Stored("0" * 64))
    assert second_name_links_to(record) == "data/src/a"
    for changed in (replace(record, size=4), replace(record, stat=replace(status, mtime=rfc3339(0))),
                    replace(record, stat=replace(status, ctime=rfc3339(0))),
                    replace(record, stat=replace(status, inode=info.st_ino + 1)),
                    # a file that changed while read, or not read whole, is no one's original
                    replace(record, stored=Stored("0" * 64, ("grew",))),
                    replace(record, error="read error at byte 1")):
        assert second_name_links_to(changed) is None, changed


def test_empty_folders_are_kept(tmp_path, home, keys):
    src = tmp_path / "src"
    (src / "empty").mkdir(parents=True)
    (src / "nested" / "empty" / "deeper").mkdir(parents=True)
    result, bundle = cli_capture(tmp_path, keys, src, timeout=60)
    assert result.code == 0
    cli_manifest(bundle, keys, tmp_path / "out")
    restored = tmp_path / "out" / "data" / "src"
    assert os.listdir(restored / "empty") == []
    assert os.listdir(restored / "nested" / "empty" / "deeper") == []


# ------------------------------------------------------------ the output and the source


@pytest.mark.parametrize("where", ["the source itself", "a folder below it", "a link to it"])
def test_output_inside_the_source_is_refused_and_the_source_untouched(tmp_path, home, keys, where):
    src = tmp_path / "src"
    (src / "mail").mkdir(parents=True)
    (src / "evidence.txt").write_bytes(os.urandom(20_000))
    (tmp_path / "link").symlink_to(src)
    folder = {"the source itself": src, "a folder below it": src / "mail",
              "a link to it": tmp_path / "link"}[where]
    before = {path: os.lstat(path) for path in (src, src / "mail")}
    result, _ = cli_capture(tmp_path, keys, src, out=folder / "case.evidence", timeout=60)
    assert result.code == 2, result.stdout + result.stderr
    error = result.json()["error"]
    assert error["kind"] == "OutputError" and "would change the evidence" in error["message"]
    assert "-o /path/to/the/stick/case.evidence" in error["hint"]
    assert sorted(os.listdir(src)) == ["evidence.txt", "mail"] and os.listdir(src / "mail") == []
    for path, info in before.items():  # not even a temporary file came and went
        assert (os.lstat(path).st_mtime_ns, os.lstat(path).st_ctime_ns) == (
            info.st_mtime_ns, info.st_ctime_ns)


def test_a_bundle_already_in_the_source_is_captured_as_evidence(tmp_path, home, keys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "evidence.txt").write_bytes(os.urandom(20_000))
    first, bundle = cli_capture(tmp_path, keys, src, out=tmp_path / "case.evidence", timeout=60)
    assert first.code == 0
    os.rename(bundle, src / "case.evidence")  # e.g. an earlier capture copied back
    second, bundle2 = cli_capture(tmp_path, keys, src, out=tmp_path / "case2.evidence",
                                  timeout=60)
    assert second.code == 0
    entries = by_path(cli_manifest(bundle2, keys, tmp_path / "out2"))
    assert entries[b"src/case.evidence"]["sha256"] == hashlib.sha256(
        (src / "case.evidence").read_bytes()).hexdigest()


def test_the_output_file_itself_as_source_is_refused(tmp_path, home, keys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    _, bundle = cli_capture(tmp_path, keys, src, timeout=60)
    before = bundle.read_bytes()
    again, _ = cli_capture(tmp_path, keys, bundle, out=bundle, timeout=60)
    assert again.code == ExitCode.USAGE and "already exists" in again.json()["error"]["message"]
    assert bundle.read_bytes() == before


def _write_failure_leaves_nothing(result: Bounded, out_dir: Path, src: Path,
                                  before: dict[bytes, tuple[int, int, int]], text: str) -> None:
    assert result.code == ExitCode.USAGE, result.stdout + result.stderr
    message = result.json()["error"]["message"]
    assert text in message and "\n" not in message and "Traceback" not in result.stderr
    assert os.listdir(out_dir) == [] or os.listdir(out_dir) == ["lost+found"]
    assert snapshot(src) == before  # the source untouched


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if proc.returncode != 0:
        skip_or_fail("cannot mount a tmpfs here; test_disk_full_injected covers the case")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _capture_onto_a_full_disk(tmp_path: Path, keys, disk: Path, size: int) -> None:
    """A capture of *size* random bytes into *disk*, which has less room: it ends plainly and
    leaves nothing there, the source untouched."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(size))
    before = snapshot(src)
    result, _ = cli_capture(tmp_path, keys, src, out=disk / "case.evidence", timeout=60)
    _write_failure_leaves_nothing(result, disk, src, before, "No space left on device")


def test_disk_full_during_capture_on_a_small_tmpfs(tmp_path, home, keys, tiny_tmpfs):
    _capture_onto_a_full_disk(tmp_path, keys, tiny_tmpfs, 3 << 20)


def test_disk_full_during_extract_on_a_small_tmpfs(tmp_path, home, keys, tiny_tmpfs):
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(3 << 20))
    result, bundle = cli_capture(tmp_path, keys, src, timeout=60)
    assert result.code == 0
    extracted = run_bounded("extract", bundle, "-i", keys["identity"], "-o",
                            tiny_tmpfs / "out", "--json")
    assert extracted.code == ExitCode.USAGE, extracted.stdout + extracted.stderr
    assert "No space left on device" in extracted.json()["error"]["message"]
    assert os.listdir(tiny_tmpfs) == []


def test_a_sparse_file_larger_than_the_free_space_is_not_read_not_a_full_disk(
        tmp_path, home, keys, tiny_tmpfs):
    """A 1 TiB sparse file holding 5 bytes (like /var/log/lastlog) would be stored in full:
    instead of filling the disk it is recorded as not read, and the rest is still captured."""
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "lastlog", "wb") as f:
        f.truncate(1 << 40)
        f.write(b"DATA!")
    (src / "note.txt").write_text("still captured\n")
    before = snapshot(src)
    result, bundle = cli_capture(tmp_path, keys, src, out=tiny_tmpfs / "case.evidence", timeout=60)
    assert result.code == ExitCode.CAPTURE_INCOMPLETE, result.stdout + result.stderr
    assert snapshot(src) == before
    problems = {p["path"]: p["problem"] for p in result.json()["problems"]}
    assert problems["src/lastlog"].startswith("not read: 1.0 TiB (a sparse file, ")
    assert "does not fit in the" in problems["src/lastlog"]
    entries = by_path(cli_manifest(bundle, keys, tmp_path / "out"))
    assert entries[b"src/lastlog"]["size"] == 1 << 40 and "sha256" not in entries[b"src/lastlog"]
    assert "sha256" in entries[b"src/note.txt"]


class _FullDisk:
    """A file object that fails with ENOSPC once *room* bytes were written."""

    def __init__(self, inner: Any, room: int) -> None:
        self._inner, self._room = inner, room

    def write(self, data: Any) -> int:
        self._room -= len(data)
        if self._room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written: int = self._inner.write(data)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.close()


def test_disk_full_injected(tmp_path, lib, monkeypatch):
    """The same without a tmpfs: the bundle file fails with ENOSPC after 100 kB."""
    import evidencekit.capture as capture_module

    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(1 << 20))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    real_fdopen = os.fdopen
    monkeypatch.setattr(capture_module.os, "fdopen",
                        lambda fd, *a, **k: _FullDisk(real_fdopen(fd, *a, **k), 100_000))
    with pytest.raises(OutputError, match="No space left on device"):
        lib.capture(src, out=out_dir / "case.evidence")
    monkeypatch.undo()
    assert os.listdir(out_dir) == []


def test_unwritable_output_folder_even_for_root(tmp_path, home, keys):
    """An immutable folder (chattr +i) refuses even root: exit 2, for capture and extract."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    captured, bundle = cli_capture(tmp_path, keys, src, timeout=60)
    assert captured.code == 0
    locked = tmp_path / "locked"
    locked.mkdir()
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True,
                      check=False).returncode != 0:
        skip_or_fail("chattr +i is not available here; the unprivileged test covers the case")
    try:
        before = snapshot(src)
        denied, _ = cli_capture(tmp_path, keys, src, out=locked / "case.evidence", timeout=60)
        _write_failure_leaves_nothing(denied, locked, src, before, "cannot write to the folder")
        extracted = run_bounded("extract", bundle, "-i", keys["identity"], "-o",
                                locked / "out", "--json")
        assert extracted.code == ExitCode.USAGE, extracted.stdout + extracted.stderr
        assert "Traceback" not in extracted.stderr and os.listdir(locked) == []
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=False)


@pytest.mark.parametrize("made_as", ["without a name", "named"])
def test_temporary_file_creation_failure_is_exit_2_not_a_crash(tmp_path, lib, monkeypatch,
                                                               made_as):
    """access() may say yes and creating the file still fail (ACLs, races, read-only mounts):
    the file without a name (O_TMPFILE), or the named one where there is none."""
    import importlib

    publish_module = importlib.import_module("evidencekit.fs.publish")  # fs.publish is a function

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    real_open = os.open

    def refuse_without_a_name(path, flags, *args, **kwargs):
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            refuse()
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(publish_module.tempfile, "mkstemp", refuse)
    if made_as == "named":
        monkeypatch.setattr(publish_module, "_nameless_in", lambda folder: None)
    else:
        monkeypatch.setattr(os, "open", refuse_without_a_name)
    with pytest.raises(OutputError, match="cannot write to the folder"):
        lib.capture(src)


def test_interrupted_capture_is_covered_elsewhere():
    """Ctrl-C and SIGTERM mid-capture: tests/e2e/test_interrupted.py (exit 130, nothing left)."""
    here = Path(__file__).parents[1] / "e2e" / "test_interrupted.py"
    assert "test_signal_mid_capture_leaves_nothing" in here.read_text()


# ------------------------------------------------------------------- what people are shown

EVIL_NAMES = (b"evil\nVERIFIED: everything fine", b"esc\x1b[2K\rVERIFIED: all 9 files fine",
              "rtl\u202etxt.exe".encode(), b"csi\xc2\x9b31m")  # U+009B, a one-byte CSI


def _assert_shown_not_sent(stderr: str) -> None:
    assert_terminal_safe(stderr)
    for line in stderr.splitlines():
        assert not line.lstrip().startswith("VERIFIED"), line
    assert "evil[LF]VERIFIED: everything fine" in stderr
    assert "esc[U+001B][2K[U+000D]VERIFIED: all 9 files fine" in stderr
    assert "rtl[U+202E]txt.exe" in stderr and "csi[U+009B]31m" in stderr


def test_unreadable_files_with_hostile_names_are_listed_safely(tmp_path, lib, monkeypatch,
                                                               capsys):
    """Capture lists what it could not read on stderr: names with LF, ESC [2K, CR, a
    right-to-left override or a C1 CSI are shown ([LF], [U+001B] …), never sent raw."""
    from evidencekit.cli import render

    src = tmp_path / "src"
    src.mkdir()
    for name in EVIL_NAMES:
        with open(os.fsencode(src) + b"/" + name, "wb") as f:
            f.write(b"x\n")

    def deny_open(real, acted, path, flags, mode=0o777, *, dir_fd=None):
        if path in EVIL_NAMES:
            acted.append(1)
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real(path, flags, mode, dir_fd=dir_fd)

    acted = hook_os(monkeypatch, "open", deny_open)
    result = lib.capture(src)
    monkeypatch.undo()
    assert acted and len(result.problems) == len(EVIL_NAMES)
    capsys.readouterr()
    render.capture_text(result, [])
    _assert_shown_not_sent(capsys.readouterr().err)


def test_unreadable_files_with_hostile_names_for_real(shared_tmp, keys):
    """The same through the CLI, run as nobody so that the files really cannot be read."""
    unprivileged_python()
    src, out_dir, config = shared_tmp / "src", shared_tmp / "out", shared_tmp / "config"
    for folder in (src, out_dir, config):
        folder.mkdir()
    for name in EVIL_NAMES:
        path = os.fsencode(src) + b"/" + name
        with open(path, "wb") as f:
            f.write(b"secret\n")
        os.chmod(path, 0o000)
    signer, recipient = shared_tmp / "signer", shared_tmp / "recipient.txt"
    shutil.copy(keys["signer"], signer)
    shutil.copy(keys["recipient"], recipient)
    _give_to_nobody(out_dir, config, signer)
    result = run_bounded("capture", src, "-R", recipient, "--sign-key", signer, "-o",
                         out_dir / "case.evidence", env={"XDG_CONFIG_HOME": str(config),
                                                         "HOME": str(config)}, user="nobody")
    assert result.code == ExitCode.CAPTURE_INCOMPLETE, result.stdout + result.stderr
    _assert_shown_not_sent(result.stderr)
    assert_terminal_safe(result.stdout)


def test_an_unreadable_config_folder_is_not_a_traceback(shared_tmp, home, keys):
    """HOME is a folder the user may not enter (``sudo -u``, a service account, HOME=/root):
    looking for the config file there raised PermissionError out of
    evidencekit/config.py ``load_config`` (``default_config_file(config_dir).is_file()``),
    outside the error mapping: a traceback, exit 1. Either answer is fine as long as it is
    one: go on without a config file (verify exits 0), or refuse with exit 2 naming the folder.
    """
    unprivileged_python()
    src = shared_tmp / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    bundle = shared_tmp / "case.evidence"
    captured = run_bounded("capture", src, "-R", keys["recipient"], "--sign-key", keys["signer"],
                           "-o", bundle, "--json")
    assert captured.code == 0, captured.stdout + captured.stderr
    # The bundle is written 0600 (root's): nobody must be able to read it, or click refuses the
    # BUNDLE argument before the configuration is ever looked for.
    os.chmod(bundle, 0o644)
    locked_home = shared_tmp / "home"
    (locked_home / ".config" / "evidencekit").mkdir(parents=True)
    # nobody (and, when the suite runs unprivileged, the owner itself) may not enter it
    os.chmod(locked_home, 0o000)
    env = {"HOME": str(locked_home), "XDG_CONFIG_HOME": "", "EVIDENCEKIT_CONFIG": ""}
    result = run_bounded("verify", bundle, "--json", env=env, user="nobody")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.code in (ExitCode.OK, ExitCode.USAGE), result.stdout + result.stderr
    if result.code == ExitCode.USAGE:
        assert str(locked_home) in result.json()["error"]["message"]


def test_no_hostile_case_is_skipped_silently(monkeypatch):
    """Every "cannot do that here" goes through tests.support.tools.skip_or_fail, which fails in CI
    (EVIDENCEKIT_REQUIRE_TOOLS=1) instead of skipping."""
    bare = "pytest." + "skip("
    offenders = [path.name for path in Path(__file__).parent.glob("*.py")
                 if bare in path.read_text()]
    assert offenders == []
    monkeypatch.setenv("EVIDENCEKIT_REQUIRE_TOOLS", "1")
    with pytest.raises(pytest.fail.Exception, match="cannot here"):
        skip_or_fail("cannot here")
    monkeypatch.delenv("EVIDENCEKIT_REQUIRE_TOOLS")
    with pytest.raises(pytest.skip.Exception, match="cannot here"):
        skip_or_fail("cannot here")


def test_disk_full_during_direct_writes_on_a_small_ext4(tmp_path, home, keys):
    # ext4 takes O_DIRECT, so the payload's stages are written by a thread of their own while
    # the next one fills: a full disk there must still end the capture plainly, leaving nothing
    from tests.support.tools import require_tool

    for tool in ("mkfs.ext4", "mount", "umount"):
        require_tool(tool)
    if os.geteuid() != 0:
        skip_or_fail("mounting an ext4 image needs root")
    image, disk = tmp_path / "ext4.img", tmp_path / "ext4"
    with open(image, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    disk.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(disk)], check=True)
    try:
        _capture_onto_a_full_disk(tmp_path, keys, disk, 24 << 20)
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
