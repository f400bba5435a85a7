"""The release as people get it, without a package index (README "Install", docs/victims.md):
.ci/build_release.py builds the wheel, the sdist and evidencekit.pyz; the wheel installs into a
fresh virtual environment, and the .pyz alone captures and verifies, with this Python and with
every other Python it says it serves that is installed here."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from evidencekit import __version__

ROOT = Path(__file__).resolve().parents[2]


def run(*command: object, env: dict[str, str] | None = None, timeout: float = 900,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=cwd,
                          stdin=subprocess.DEVNULL)


def base_python() -> str:
    """This Python without this virtual environment (whose site-packages would hide a
    dependency missing from the .pyz)."""
    return getattr(sys, "_base_executable", sys.executable)


def other_pythons(versions: list[str]) -> dict[str, str]:
    """An interpreter for each of *versions* (other than this one) that is installed here."""
    found = {}
    this = f"{sys.version_info.major}.{sys.version_info.minor}"
    for version in versions:
        if version == this:
            continue
        candidates = [shutil.which(f"python{version}") or "",
                      *sorted(glob.glob(os.path.expanduser(
                          f"~/.pyenv/versions/{version}.*/bin/python{version}")))]
        for candidate in candidates:
            if candidate and run(candidate, "-c", "pass", timeout=60).returncode == 0:
                found[version] = candidate
                break
    return found


def test_the_install_instructions_name_this_release():
    """README and victims.md tell people to install the wheel of this version, never a package
    no index has (`pipx install evidencekit`)."""
    wheel = f"./evidencekit-{__version__}-py3-none-any.whl"
    for doc in (ROOT / "README.md", ROOT / "docs" / "victims.md"):
        text = doc.read_text("utf-8")
        assert f"pipx install {wheel}" in text and "python3 evidencekit.pyz capture" in text, doc
        assert "pipx install evidencekit`" not in text and "--user evidencekit`" not in text
        assert "evidencekit-0." not in text.replace(f"evidencekit-{__version__}", ""), doc


@pytest.mark.slow
def test_the_release_installs_and_runs_without_a_package_index(tmp_path: Path, keys):
    dist = tmp_path / "dist"
    built = run(sys.executable, ROOT / ".ci" / "build_release.py", "--outdir", dist,
                timeout=1800)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheel = dist / f"evidencekit-{__version__}-py3-none-any.whl"
    sdist = dist / f"evidencekit-{__version__}.tar.gz"
    pyz = dist / "evidencekit.pyz"
    assert sorted(p.name for p in dist.iterdir()) == sorted([wheel.name, sdist.name, pyz.name])
    with tarfile.open(sdist) as source:  # the sdist holds what a build from it needs
        names = source.getnames()
    assert f"evidencekit-{__version__}/pyproject.toml" in names
    profile = "evidencekit/sources/files/profiles/builtin/browser-history.yaml"
    assert f"evidencekit-{__version__}/{profile}" in names

    # The wheel, into a fresh virtual environment (what pipx does).
    venv = tmp_path / "venv"
    assert run(base_python(), "-m", "venv", venv).returncode == 0
    installed = run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel)
    assert installed.returncode == 0, installed.stderr[-3000:]
    version = run(venv / "bin" / "evidencekit", "--version", cwd=tmp_path)
    assert version.returncode == 0 and __version__ in version.stdout, version.stderr

    # The .pyz: which Pythons it serves, then capture -> verify through it alone.
    with zipfile.ZipFile(pyz) as app:
        served = json.loads(app.read("evidencekit_pyz.json"))["pythons"]
    this = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert this in served
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "statement.txt").write_text("Transfer of 1,250.00 EUR to an unknown account\n")
    (evidence / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    env = {"HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "PYTHONPATH": ""}
    # -S: no site-packages at all; whatever the app imports comes from the .pyz
    app = [base_python(), "-S", pyz]
    bundle = tmp_path / "case.evidence"
    captured = run(*app, "capture", evidence, "-R", keys["recipient"], "--sign-key",
                   keys["signer"], "-o", bundle, "--json", env=env, cwd=tmp_path)
    assert captured.returncode == 0, captured.stdout[-3000:] + captured.stderr[-3000:]
    assert json.loads(captured.stdout)["seal"]["counts"]["files"] == 2
    verified = run(*app, "verify", bundle, "-i", keys["identity"], "--trusted-key",
                   keys["signer_pub"], "--json", env=env, cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]
    # libmagic was reached from the .pyz too (its worker processes import the unpacked app)
    assert not [w for w in json.loads(captured.stdout)["warnings"] if "libmagic" in w]

    # Every other Python it serves that is installed here runs it too; one it does not serve
    # is told so, with the way out, instead of failing on an import.
    for version, python in other_pythons(served).items():
        other = run(python, "-S", pyz, "--version", env=env, cwd=tmp_path)
        assert other.returncode == 0 and __version__ in other.stdout, (version, other.stderr)
    for version, python in other_pythons(["3.8", "3.9"]).items():
        refused = run(python, pyz, "--version", env=env, cwd=tmp_path)
        assert refused.returncode == 2, (version, refused.stderr)
        assert f"made for Python {', '.join(served)}" in refused.stderr
        assert "pipx install ./evidencekit-" in refused.stderr


def _release_script() -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_release", ROOT / ".ci" / "build_release.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_build_does_not_take_a_build_folder_for_the_package(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    # "pip install ." leaves build/ in the repository; "python -m build" started there imported
    # it ("No module named build.__main__") and the release script ended in a traceback
    (tmp_path / "build").mkdir()
    monkeypatch.chdir(tmp_path)
    script = _release_script()
    script.run(sys.executable, "-c",  # type: ignore[attr-defined]
               "import os, sys; sys.exit(1 if os.path.exists('build') else 0)")


def test_a_missing_build_package_is_said_without_a_traceback(tmp_path: Path) -> None:
    done = run(base_python(), "-S", ROOT / ".ci" / "build_release.py", "--outdir", tmp_path)
    assert done.returncode == 1
    assert "the 'build' package is missing" in done.stderr and "Traceback" not in done.stderr
