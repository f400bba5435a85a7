"""Real tools, root-only tricks and access times in tests.

Interop tests need real tools (age, ssh-keygen, tar, sha256sum, bagit), hostile tests root-only
tricks (mknod, mount, chattr, setpriv). Locally a missing one skips the test; CI sets
EVIDENCEKIT_REQUIRE_TOOLS=1 so that it fails instead (:func:`skip_or_fail`).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import NoReturn

import pytest

import evidencekit

NOBODY = 65534  # uid and gid of the unprivileged user the permission tests run as


def skip_or_fail(message: str) -> NoReturn:
    """A test that cannot run here: skip it locally, fail it in CI (EVIDENCEKIT_REQUIRE_TOOLS=1),
    so that no case of the suite is lost there without anyone noticing."""
    if os.environ.get("EVIDENCEKIT_REQUIRE_TOOLS") == "1":
        pytest.fail(message + " (EVIDENCEKIT_REQUIRE_TOOLS=1: CI must run every test)")
    pytest.skip(message)


def require_tool(name: str) -> str:
    """Return the path of an external tool, or skip (locally) / fail (CI) when it is missing."""
    path = shutil.which(name)
    if path is None:
        skip_or_fail(f"external tool {name!r} is not installed")
    return path


def require_python_tool(name: str, package: str) -> str:
    """The path of a command a PyPI *package* installs (the test extra): beside this Python
    first (a venv not activated), else on PATH; skip (locally) / fail (CI) when missing."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        skip_or_fail(f"{name!r} (PyPI {package}, in the test extra) is not installed")
    return found


def require_env_dir(variable: str) -> str:
    """Return a directory named by an environment variable, or skip (locally) / fail (CI)."""
    value = os.environ.get(variable)
    if not value or not os.path.isdir(value):
        skip_or_fail(f"{variable} is not set to a directory")
    return value


def stale_atimes(*paths: str | os.PathLike[str]) -> dict[str, int]:
    """Give *paths* (folders or files) an access time older than their last change (so that
    listing a folder or reading a file updates it, with relatime as with strictatime) and
    return it, to compare afterwards with ``atimes``.

    Fails when that does not update the access time here at all (a noatime mount): then a
    test of keeping access times could not fail, and proves nothing.
    """
    first = os.fspath(paths[0])
    probe = os.path.join(first if os.path.isdir(first) else os.path.dirname(first),
                         ".atime-probe")
    with open(probe, "w") as f:
        f.write("x")
    os.utime(probe, ns=(1_000_000_000, os.stat(probe).st_mtime_ns))
    with open(probe) as f:
        f.read()
    updates = os.stat(probe).st_atime_ns != 1_000_000_000
    os.unlink(probe)
    if not updates:
        skip_or_fail("reading does not update access times on this file system")
    stale = {}
    for path in paths:
        os.utime(path, ns=(1_000_000_000, os.stat(path).st_mtime_ns))
        stale[os.fspath(path)] = 1_000_000_000
    return stale


def atimes(*paths: str | os.PathLike[str]) -> dict[str, int]:
    return {os.fspath(path): os.stat(path).st_atime_ns for path in paths}


def unprivileged_python() -> list[str]:
    """The command that runs Python as user nobody (uid and gid 65534) with evidencekit and its
    dependencies importable, wherever the checkout lives; append ``-m evidencekit …``.

    Run by root, it drops to nobody (setpriv, or runuser), and the Python it starts is a copy
    (`_readable_runtime`): the checkout and its .venv may be in a folder that only root may enter
    (a clone in /root), where nobody could neither start the venv's python nor import the
    package. Run by anyone else it is this Python, as this (already unprivileged) user.
    Skips (locally) or fails (CI) when there is no way to run as nobody.
    """
    if os.geteuid() != 0:
        return [sys.executable]
    if shutil.which("setpriv"):
        drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    elif shutil.which("runuser"):
        drop = ["runuser", "-u", "nobody", "--"]
    else:
        skip_or_fail("neither setpriv nor runuser is installed: cannot run as an unprivileged user")
    python = _readable_runtime(tuple(drop))
    # -I: no current folder on sys.path (it may be the checkout, or one nobody may not list)
    return [*drop, str(python), "-I"]


@functools.cache
def _readable_runtime(drop: tuple[str, ...]) -> Path:
    """A virtual environment that anyone may read, made once per test session in /tmp: this
    environment's site-packages (hard links where the file is world-readable and the file
    system allows, else copies) and the evidencekit package itself (copied from the checkout,
    whatever the kind of install), run by a Python interpreter of the same version that *drop*
    can start."""
    base = Path(tempfile.mkdtemp(prefix="evidencekit-runtime-",
                                 dir="/tmp" if os.path.isdir("/tmp") else None))
    atexit.register(shutil.rmtree, base, True)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    site = base / "lib" / f"python{version}" / "site-packages"
    package = Path(evidencekit.__file__).parent
    for installed in dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]):
        if os.path.isdir(installed):
            shutil.copytree(installed, site, symlinks=True, dirs_exist_ok=True,
                            ignore=_this_checkout_installed, copy_function=_link_or_copy)
    shutil.copytree(package, site / "evidencekit", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"), copy_function=_link_or_copy)
    for folder, _, _ in os.walk(base):
        os.chmod(folder, 0o755)
    (base / "bin").mkdir(mode=0o755)
    tried = []
    for interpreter in _interpreters(version):
        (base / "bin" / "python").unlink(missing_ok=True)
        (base / "bin" / "python").symlink_to(interpreter)
        (base / "pyvenv.cfg").write_text(f"home = {os.path.dirname(interpreter)}\n"
                                         "include-system-site-packages = false\n"
                                         f"version = {version}\n")
        probe = subprocess.run([*drop, str(base / "bin" / "python"), "-I", "-c",
                                "import evidencekit.cli.main"], capture_output=True, text=True,
                               cwd=base, stdin=subprocess.DEVNULL, timeout=120)
        if probe.returncode == 0:
            return base / "bin" / "python"
        said = probe.stderr.strip().splitlines()
        tried.append(f"{interpreter}: {said[-1] if said else f'exit {probe.returncode}'}")
    skip_or_fail(f"user nobody cannot run a Python {version} that imports evidencekit "
                 f"(tried {'; '.join(tried) or 'none found'})")


def _interpreters(version: str) -> list[str]:
    """Python interpreters of this version, this one's first (as the venv names it, then as
    its real path): pyenv's or a venv's may be in a folder nobody may enter."""
    base = getattr(sys, "_base_executable", sys.executable)
    found = [base, os.path.realpath(sys.executable), os.path.realpath(base)]
    for folder in ("/usr/local/bin", "/usr/bin", "/bin"):
        found.append(os.path.join(folder, f"python{version}"))
    return [path for path in dict.fromkeys(found) if os.path.isfile(path)]


def _this_checkout_installed(folder: str, names: list[str]) -> set[str]:
    """What an install of this checkout left in site-packages: its editable hooks (they point
    into the checkout) and its metadata; the package itself is copied separately."""
    return {name for name in names
            if name.startswith(("__editable__", "evidencekit-")) or name == "evidencekit"
            or name == "__pycache__" or (name.endswith((".pth", ".egg-link")) and
                                         "evidencekit" in name)}


def _link_or_copy(source: str, target: str) -> str:
    """A hard link when the file is already world-readable (free, and the same bytes), else a
    copy that is."""
    if os.stat(source).st_mode & stat.S_IROTH:
        try:
            os.link(source, target)
            return target
        except OSError:
            pass
    shutil.copy2(source, target)
    os.chmod(target, os.stat(target).st_mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    return target
