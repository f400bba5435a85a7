"""Measure evidencekit's start-up cost: the CPU time (user + system) of short commands.

Run from the repository root (the evidencekit under test is the one on PATH next to this Python):

    python benchmarks/startup.py              # 10 runs of each, the minimum kept
    python benchmarks/startup.py --repeat 20
    python benchmarks/startup.py --source DIR # the evidencekit package in DIR instead (an older
                                              # commit: git archive COMMIT evidencekit | tar -x -C DIR)

CPU time rather than wall time, and the minimum of several runs, because these commands are short
and the machine may be busy: the minimum is the cost that other work did not inflate. The commands
are ``--version``, ``verify --help``, a capture of one small file and a verify of that bundle, so
most of what is measured is importing Python modules (issue 27, docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

EVIDENCEKIT = [str(Path(sys.executable).with_name("evidencekit"))]


def from_source(folder: Path) -> list[str]:
    """A command running the evidencekit package in *folder* with this Python's libraries: ``-S``
    so that the editable install's path hook (a .pth file) does not bring the working tree's."""
    site = [p for p in sys.path if p.endswith("site-packages")]
    code = (f"import sys; sys.path[:0] = {[str(folder), *site]!r}; sys.argv[0] = 'evidencekit'; "
            "from evidencekit.cli.main import main; main()")
    return [sys.executable, "-S", "-c", code]


def cpu_seconds(command: list[str]) -> float:
    """The user + system CPU time one run of *command* took, with its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def commands(work: Path) -> dict[str, list[str]]:
    identity = work / "identity.txt"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(identity)], check=True,
                               capture_output=True, text=True).stdout.strip()
    sign_key = work / "signer"
    subprocess.run([*EVIDENCEKIT, "key", "generate", "-o", str(sign_key), "--json"], check=True,
                   capture_output=True)
    data = work / "data"
    data.mkdir()
    (data / "note.txt").write_text("a small file\n")
    bundle = work / "tiny.evidence"
    capture = [*EVIDENCEKIT, "capture", str(data), "-r", recipient, "--sign-key", str(sign_key),
               "--case", "BENCH", "-o", str(bundle), "--json"]
    subprocess.run(capture, check=True, capture_output=True)
    again = work / "again.evidence"
    return {
        "--version": [*EVIDENCEKIT, "--version"],
        "verify --help": [*EVIDENCEKIT, "verify", "--help"],
        # capture refuses an existing output: each run writes a new bundle, removed after it
        "capture (1 small file)": [*capture[:-3], "-o", str(again), "--json"],
        "verify (that bundle)": [*EVIDENCEKIT, "verify", str(bundle), "-i", str(identity),
                                 "--json"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--source", type=Path, help="run the evidencekit package in this folder")
    args = parser.parse_args()
    if args.source is not None:
        EVIDENCEKIT[:] = from_source(args.source.resolve())
    work = Path(tempfile.mkdtemp(prefix="evidencekit-startup-"))
    try:
        runs = commands(work)
        best = {name: float("inf") for name in runs}
        for _ in range(args.repeat):  # interleaved, so a busy moment touches every command alike
            for name, command in runs.items():
                best[name] = min(best[name], cpu_seconds(command))
                (work / "again.evidence").unlink(missing_ok=True)
        for name, seconds in best.items():
            print(f"{name:24} {seconds:.3f} s CPU (minimum of {args.repeat})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    sys.exit(main())
