"""Measure evidencekit's start-up cost: the CPU time (user + system) of short commands.

Run from the repository root (the evidencekit under test is the one on PATH next to this Python):

    python benchmarks/startup.py              # 10 runs of each, the minimum kept
    python benchmarks/startup.py --repeat 20
    python benchmarks/startup.py --source DIR # the evidencekit package in DIR instead (an older
                                              # commit: git archive COMMIT evidencekit | tar -x -C DIR)
    python benchmarks/startup.py --source OLD --source NEW   # several, interleaved run by run

CPU time rather than wall time, and the minimum of several runs, because these commands are short
and the machine may be busy: the minimum is the cost that other work did not inflate (the median
and the largest peak RSS of the command's own process are printed beside it). The commands
are ``--version``, ``verify --help``, a capture of one small file and a verify of that bundle, so
most of what is measured is importing Python modules (issue 27, docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
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


def cpu_seconds(command: list[str]) -> tuple[float, float]:
    """The user + system CPU time one run of *command* took, with its children, and the peak
    RSS of its own process (MB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, command)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), \
        usage.ru_maxrss / 1024


def commands(work: Path, evidencekit: list[str]) -> dict[str, list[str]]:
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
    capture[:1] = evidencekit
    return {
        "--version": [*evidencekit, "--version"],
        "verify --help": [*evidencekit, "verify", "--help"],
        # capture refuses an existing output: each run writes a new bundle, removed after it
        "capture (1 small file)": [*capture[:-3], "-o", str(again), "--json"],
        "verify (that bundle)": [*evidencekit, "verify", str(bundle), "-i", str(identity),
                                 "--json"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--source", type=Path, action="append", default=[],
                        help="run the evidencekit package in this folder (repeatable: each is "
                        "run in turn, interleaved)")
    args = parser.parse_args()
    programs = {str(s): from_source(s.resolve()) for s in args.source} or \
        {"installed": EVIDENCEKIT}
    work = Path(tempfile.mkdtemp(prefix="evidencekit-startup-"))
    try:
        runs = {}
        for index, (label, program) in enumerate(programs.items()):
            (work / str(index)).mkdir()
            runs.update({(label, name): command
                         for name, command in commands(work / str(index), program).items()})
        cpu: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
        rss: dict[tuple[str, str], float] = dict.fromkeys(runs, 0.0)
        for _ in range(args.repeat):  # interleaved, so a busy moment touches every command alike
            for key, command in runs.items():
                seconds, peak = cpu_seconds(command)
                cpu[key].append(seconds)
                rss[key] = max(rss[key], peak)
                for again in work.glob("*/again.evidence"):
                    again.unlink()
        print(f"{'':24} {'least':>7} {'median':>7} {'peak RSS':>9}  (CPU s, of {args.repeat} runs)")
        for label in programs:
            if len(programs) > 1:
                print(label)
            for (owner, name), seconds in cpu.items():
                if owner == label:
                    print(f"{name:24} {min(seconds):7.3f} {statistics.median(seconds):7.3f} "
                          f"{rss[owner, name]:6.1f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    sys.exit(main())
