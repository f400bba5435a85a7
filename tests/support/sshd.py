"""A real OpenSSH server for tests, on 127.0.0.1 only, logging in a user that is not root.

Everything lives in a temporary folder: the server's own configuration (``sshd -f FILE``, nothing
of /etc/ssh), a host key made here (its fingerprint is what the tests pin), the client's key and
an authorized_keys file. When the tests run as root (CI), the server runs as the unprivileged
account :data:`USER`, made here once if missing (an sshd that is not root logs in only its own
user, and needs no privilege separation folder); otherwise it runs as, and logs in, the user
running the tests. :func:`running` waits until the server answers and stops it whatever happens.
A missing sshd skips locally and fails in CI (tests/support/tools.skip_or_fail).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import importlib.metadata
import itertools
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.tools import require_tool, skip_or_fail

ACCOUNT_PREFIX = "ek-remote"  # ek-remote-PID-N: the accounts made when the tests run as root
_STALE = re.compile(rf"{ACCOUNT_PREFIX}(?:-(\d+)-\d+)?")  # bare: the name used until 2026-12
_made = itertools.count(1)
SSHD = "/usr/sbin/sshd"


@dataclass
class Sshd:
    root: Path  # the temporary folder, owned by the login user
    port: int
    user: str
    client_key: Path  # private key the client logs in with
    host_key_line: str  # "ssh-ed25519 AAAA…"
    fingerprint: str  # SHA256:… of the host key
    process: subprocess.Popen[bytes]
    _command: str = field(default="", init=False, repr=False)  # evidencekit_command's answer

    @property
    def remote(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def owned(self, path: Path) -> Path:
        """*path* (made under :attr:`root`) and what it holds, given to the login user."""
        info = pwd.getpwnam(self.user)
        if os.geteuid() == 0:
            for folder, dirs, files in os.walk(path):
                os.chown(folder, info.pw_uid, info.pw_gid)
                for name in dirs + files:
                    os.lchown(os.path.join(folder, name), info.pw_uid, info.pw_gid)
        return path

    def ssh(self, *command: str) -> subprocess.CompletedProcess[bytes]:
        """Run *command* there (host key not checked: this is the test's own server)."""
        return subprocess.run(["ssh", "-T", "-i", str(self.client_key), "-p", str(self.port),
                               "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                               "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                               f"{self.user}@127.0.0.1", *command],
                              capture_output=True, check=False, timeout=60)


    def evidencekit_command(self) -> str:
        """How the login user runs this worktree's evidencekit there: the tests' interpreter if
        that user may run it, else the system's Python of the same version, given the tests'
        packages (compiled for that version) on PYTHONPATH. Found once per server."""
        if not self._command:
            self._command = self._find_evidencekit_command()
        return self._command

    def _find_evidencekit_command(self) -> str:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        for python, path in ((os.path.realpath(sys.executable), tests_python_path()),
                             (f"/usr/bin/python{version}", tests_python_path()),
                             (f"/usr/bin/python{version}", readable_python_path())):
            command = shlex.join(["env", f"PYTHONPATH={path}", python, "-m", "evidencekit"])
            if self.ssh(command + " --version").returncode == 0:
                return command
        skip_or_fail(f"no Python {version} that {self.user} may run evidencekit with")


WORKTREE = Path(__file__).resolve().parents[2]


def tests_python_path() -> str:
    """This checkout and the tests' packages, as the tests' own interpreter finds them."""
    return ":".join([str(WORKTREE), *(p for p in sys.path if p.endswith("site-packages"))])


_readable: list[Path] = []  # the copy readable_python_path made (once per test session)


def readable_python_path() -> str:
    """A PYTHONPATH another user may read: a checkout cloned into a private (0700) folder is
    out of the login user's reach, so evidencekit, its run-time dependencies and the stdlib-only
    test servers (tests/support/hostile_*.py) are linked, or copied, once into a 0755
    temporary folder, removed when the tests end."""
    if not _readable:
        root = Path(tempfile.mkdtemp(prefix="evidencekit-readable-python-"))
        os.chmod(root, 0o755)
        _readable.append(root)
        atexit.register(shutil.rmtree, root, True)
        _share_tree(WORKTREE / "evidencekit", root / "evidencekit")
        for relative in ("tests/__init__.py", "tests/support/__init__.py",
                         "tests/support/hostile_sftp.py", "tests/support/hostile_sender.py"):
            _share_file(WORKTREE / relative, root / relative)
        for distribution in _runtime_distributions("evidencekit", extras=("s3",)):
            for file in distribution.files or ():
                source = Path(str(distribution.locate_file(file)))
                if source.is_file() and not file.parts[0].startswith(".."):
                    _share_file(source, root / file)
    return str(_readable[0])


def _runtime_distributions(name: str,
                           extras: tuple[str, ...] = ()) -> list[importlib.metadata.Distribution]:
    """*name*'s distribution and every one its run-time requirements reach, with *name*'s
    *extras* (a fleet's hosts capture with `-o s3://`: boto3 comes with the `s3` extra)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    waiting = [(name, ("", *extras))]
    while waiting:
        wanted, with_extras = waiting.pop()
        wanted = canonicalize_name(wanted)
        if wanted in found:
            continue
        distribution = importlib.metadata.distribution(wanted)
        found[wanted] = distribution
        for line in distribution.requires or ():
            requirement = Requirement(line)
            if requirement.marker is None or any(requirement.marker.evaluate({"extra": extra})
                                                 for extra in with_extras):
                waiting.append((requirement.name, ("",)))
    return list(found.values())


def _share_tree(source: Path, target: Path) -> None:
    for folder, _dirs, files in os.walk(source):
        for file in files:
            if not file.endswith(".pyc"):
                path = Path(folder) / file
                _share_file(path, target / path.relative_to(source))


def _share_file(source: Path, target: Path) -> None:
    """A hard link where the file system allows one (no copy of 100 MB of libraries), else a
    copy; readable by all, like the folders leading to it. A file shared already is left: an
    editable install's metadata (evidencekit.egg-info in the checkout) lists the checkout's own
    files, linked already by _share_tree."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    for folder in (target.parent, *target.parent.parents):
        if folder == Path(tempfile.gettempdir()):
            break
        os.chmod(folder, 0o755)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    if os.stat(target).st_mode & 0o444 != 0o444:
        shutil.copy2(source, target.with_name(target.name + ".tmp"))
        os.replace(target.with_name(target.name + ".tmp"), target)
        os.chmod(target, 0o644 | (os.stat(target).st_mode & 0o111))


def fingerprint_of(line: str) -> str:
    digest = hashlib.sha256(base64.b64decode(line.split()[1])).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


@contextmanager
def _login_user(home: Path) -> Iterator[str]:
    """The user the server logs in: the tests' own, or (as root) an account made for this server
    alone, removed afterwards."""
    if os.geteuid() != 0:
        yield pwd.getpwuid(os.geteuid()).pw_name
        return
    _remove_stale_accounts()
    name = f"{ACCOUNT_PREFIX}-{os.getpid()}-{next(_made)}"
    subprocess.run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh",
                    name], check=True, capture_output=True)
    try:
        yield name
    finally:
        _remove_account(name, end_its_processes=True)


def _remove_stale_accounts() -> None:
    """Accounts made by runs that ended without removing them (killed): the process that made
    one is gone, and nothing runs as it."""
    for entry in pwd.getpwall():
        match = _STALE.fullmatch(entry.pw_name)
        if match and not (match.group(1) and psutil.pid_exists(int(match.group(1)))):
            # what still runs as an account of a dead run is its leftovers; the bare name may
            # be in use by a run of the code before accounts were removed: left alone then
            _remove_account(entry.pw_name, end_its_processes=bool(match.group(1)))


def _remove_account(name: str, end_its_processes: bool) -> None:
    """The account and its group (userdel refuses while a process runs as it: then a later
    run removes it). Its processes are the server's sessions and what they left running (a
    remote command whose shell a test killed)."""
    uid = pwd.getpwnam(name).pw_uid
    running = [p for p in psutil.process_iter(["uids"])
               if p.info["uids"] is not None and uid in p.info["uids"]]
    if running and not end_its_processes:
        return
    for process in running:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(running, timeout=10)
    legacy = name == ACCOUNT_PREFIX  # had a home of its own under /home; later ones: the server's
    subprocess.run(["userdel", *(["--remove"] if legacy else []), name], check=False,
                   capture_output=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_answering(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd stopped: {log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not answer on 127.0.0.1:{port}")


@contextmanager
def running(sftp: str = "internal-sftp", config: str = "") -> Iterator[Sshd]:
    """The server; *sftp*: the command it runs as its SFTP subsystem (through the login user's
    shell); *config*: more sshd_config lines (e.g. a bastion's ``PermitOpen``)."""
    with contextlib.ExitStack() as stack:  # the account, if one is made, outlives the server
        yield from _running(stack, sftp, config)


def _running(stack: contextlib.ExitStack, sftp: str, config: str) -> Iterator[Sshd]:
    if not os.path.exists(SSHD):
        skip_or_fail("OpenSSH's server is not installed (Debian: openssh-server)")
    for tool in ("ssh", "ssh-keygen", "ssh-keyscan"):
        require_tool(tool)
    root = Path(tempfile.mkdtemp(prefix="evidencekit-sshd-"))
    os.chmod(root, 0o755)
    process: subprocess.Popen[bytes] | None = None
    client: Path | None = None
    try:
        user = stack.enter_context(_login_user(root))
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name,
                            "-f", str(root / name)], check=True)
        shutil.copy(root / "client_key.pub", root / "authorized_keys")
        port = _free_port()
        (root / "sshd_config").write_text(
            f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {root / 'host_key'}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile none\n"
            "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin no\n"
            f"Subsystem sftp {sftp}\n{config}")
        client = Path(tempfile.mkdtemp(prefix="evidencekit-ssh-client-"))
        shutil.move(root / "client_key", client / "client_key")  # the test's, not the user's
        host_line = (root / "host_key.pub").read_text().strip()
        sshd = Sshd(root, port, user, client / "client_key", " ".join(host_line.split()[:2]),
                    fingerprint_of(host_line), None)  # type: ignore[arg-type]
        sshd.owned(root)
        info = pwd.getpwnam(user)
        log = root / "sshd.log"
        as_user = {"user": info.pw_uid, "group": info.pw_gid, "extra_groups": []} \
            if os.geteuid() == 0 else {}
        with log.open("wb") as log_file:
            process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")],
                                       stdin=subprocess.DEVNULL, stdout=log_file,
                                       stderr=subprocess.STDOUT, **as_user)  # type: ignore[call-overload]
        sshd.process = process
        _wait_until_answering(port, process, log)
        yield sshd
    finally:
        if process is not None:
            _stop_with_sessions(process)
        shutil.rmtree(root, ignore_errors=True)
        if client is not None:
            shutil.rmtree(client, ignore_errors=True)


def _stop_with_sessions(process: subprocess.Popen[bytes]) -> None:
    """The server and every process it started (sessions left by a test that cut one)."""
    try:
        started = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        started = []
    process.terminate()
    for child in started:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    psutil.wait_procs(started, timeout=10)
