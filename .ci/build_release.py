#!/usr/bin/env python3
"""Build a release without a package index: dist/evidencekit-X-py3-none-any.whl, the sdist
dist/evidencekit-X.tar.gz, and dist/evidencekit.pyz, one file that runs with Python 3.10 or newer
on the kind of system it was built on (``python3 evidencekit.pyz capture``).

    python3 .ci/build_release.py [--outdir dist] [--this-python-only]

Needs ``build`` (pip install build) and pip; the packages come from the configured index or
cache. The .pyz holds evidencekit and its dependencies as installed for this Python, and, for
each other Python from 3.10 on, what that version gets otherwise (its builds of cffi, Pillow,
PyYAML, cryptography …, a dependency only it needs); a version whose wheels cannot be had is
left out, and the build says which versions the .pyz serves. ``--this-python-only`` skips
them (offline builds).
See docs/decisions/release.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipapp
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")


def main() -> int:
    try:
        return build()
    except subprocess.CalledProcessError as exc:
        print(f"build_release: error: {' '.join(map(str, exc.cmd[:4]))} … failed (exit "
              f"{exc.returncode}); what it said is above", file=sys.stderr)
        return 1


def build() -> int:
    if importlib.util.find_spec("build") is None:
        print(f"build_release: error: the 'build' package is missing for {sys.executable}; "
              "install it (python3 -m pip install build, or a venv with the test extras: "
              ".venv/bin/pip install -e '.[test]', then .venv/bin/python .ci/build_release.py)",
              file=sys.stderr)
        return 1
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outdir", type=Path, default=ROOT / "dist")
    parser.add_argument("--this-python-only", action="store_true",
                        help="a .pyz for this Python's version only (no wheels fetched for others)")
    args = parser.parse_args()
    outdir = args.outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    for old in [*outdir.glob("evidencekit-*"), outdir / "evidencekit.pyz"]:
        old.unlink(missing_ok=True)
    run(sys.executable, "-m", "build", "--outdir", outdir, ROOT)
    wheel = next(outdir.glob("evidencekit-*-py3-none-any.whl"))
    with tempfile.TemporaryDirectory(prefix="evidencekit-pyz-") as scratch:
        stage = Path(scratch) / "app"
        pythons = stage_app(wheel, stage, args.this_python_only)
        pyz = outdir / "evidencekit.pyz"
        zipapp.create_archive(stage, pyz, interpreter="/usr/bin/env python3", compressed=True)
    print(f"built {', '.join(sorted(p.name for p in outdir.glob('evidencekit*')))} in {outdir}")
    print(f"evidencekit.pyz serves Python {', '.join(pythons)} on {sysconfig.get_platform()}")
    return 0


def stage_app(wheel: Path, stage: Path, this_python_only: bool) -> list[str]:
    """Lay out the .pyz's files: __main__.py, evidencekit_pyz.json, lib/common (everything, as
    installed for this Python) and lib/cpXY for each other Python: what it gets otherwise (a
    build of a compiled dependency for that version, a dependency only that version needs).
    Returns the Python versions served."""
    common = stage / "lib" / "common"
    pip_install("--target", common, wheel)
    this = f"{sys.version_info.major}.{sys.version_info.minor}"
    served = [this]
    for python in PYTHONS:
        if python == this or this_python_only:
            continue
        own = stage / "for" / python
        try:
            install_for(python, own, [str(wheel)])
            # pip decides environment markers (typing-extensions; python_version < "3.11") by
            # the Python it runs on, not by --python-version: add what that version needs.
            while missing := needed_for(python, own):
                install_for(python, own, missing)
        except subprocess.CalledProcessError:
            print(f"note: evidencekit's dependencies have no wheels for Python {python} here: "
                  "left out")
            continue
        move_differing(own, common, stage / "lib" / f"cp{python.replace('.', '')}")
        served.append(python)
    shutil.rmtree(stage / "for", ignore_errors=True)
    served.sort(key=version_tuple)
    shutil.copy(ROOT / ".ci" / "pyz_main.py", stage / "__main__.py")
    (stage / "evidencekit_pyz.json").write_text(json.dumps(
        {"build": build_id(stage / "lib"), "platform": sysconfig.get_platform(),
         "pythons": served}, indent=1) + "\n")
    return served


def install_for(python: str, target: Path, requirements: list[str]) -> None:
    pip_install("--target", target, "--only-binary=:all:", "--implementation", "cp",
                "--python-version", python,
                *[arg for tag in platform_tags() for arg in ("--platform", tag)],
                *requirements, quiet_failure=True)


def needed_for(python: str, target: Path) -> list[str]:
    """The requirements of the distributions in *target* that Python *python* needs (markers
    evaluated for that version) and that are not installed there yet."""
    from packaging.markers import default_environment
    from packaging.metadata import Metadata
    from packaging.utils import canonicalize_name

    environment = {key: str(value) for key, value in default_environment().items()}
    environment.update(python_version=python, python_full_version=f"{python}.0", extra="")
    installed = {canonicalize_name(info.name.split("-")[0]) for info in target.glob("*.dist-info")}
    missing: dict[str, str] = {}
    for info in sorted(target.glob("*.dist-info")):
        metadata = Metadata.from_email((info / "METADATA").read_bytes(), validate=False)
        for requirement in metadata.requires_dist or []:
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue
            name = canonicalize_name(requirement.name)
            if name not in installed:
                requirement.marker = None
                missing.setdefault(name, str(requirement))
    return sorted(missing.values())


def move_differing(own: Path, common: Path, target: Path) -> None:
    """Move into *target* each distribution of *own* that *common* lacks in the same build
    (same name, version and wheel tags: then the files are the same)."""
    for info in sorted(own.glob("*.dist-info")):
        if (common / info.name).is_dir() and wheel_tags(common / info.name) == wheel_tags(info):
            continue
        with open(info / "RECORD", newline="") as record:
            listed = [row[0] for row in csv.reader(record) if row]
        for relative in listed:
            source = own / relative
            if relative.startswith("..") or not source.is_file():
                continue  # console scripts (bin/), and files RECORD names but pip did not keep
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, target / relative)


def wheel_tags(info: Path) -> list[str]:
    return sorted(line.split(":", 1)[1].strip()
                  for line in (info / "WHEEL").read_text().splitlines() if line.startswith("Tag:"))


def version_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def platform_tags() -> list[str]:
    """The wheel platform tags this system accepts (manylinux_2_X_…, macosx_…, win_…)."""
    from packaging import tags  # pip's dependency; also installed with the test extras

    return list(dict.fromkeys(tag.platform for tag in tags.sys_tags()))


def build_id(lib: Path) -> str:
    """The SHA-256 of every file the .pyz unpacks (names and bytes): a new build unpacks anew."""
    digest = hashlib.sha256()
    for path in sorted(p for p in lib.rglob("*") if p.is_file()):
        digest.update(path.relative_to(lib).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def pip_install(*args: object, quiet_failure: bool = False) -> None:
    run(sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
        "--disable-pip-version-check", *args, quiet_failure=quiet_failure)


def run(*command: object, quiet_failure: bool = False) -> None:
    # Started in an empty folder: "python -m build" imports from the current folder first, and
    # the repository holds a build/ folder after any "pip install ." (setuptools' scratch
    # folder), which it then took for the package ("No module named build.__main__").
    with tempfile.TemporaryDirectory(prefix="evidencekit-release-") as elsewhere:
        done = subprocess.run([str(c) for c in command], capture_output=quiet_failure,
                              text=True, cwd=elsewhere)
    done.check_returncode()


if __name__ == "__main__":
    sys.exit(main())
