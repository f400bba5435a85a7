"""Time capture and verify of several versions of evidencekit on the same data, in the same run.

A restructuring must not make evidencekit slower (issue 21), and on a shared machine only runs
interleaved in one session can be compared. Run from the repository root:

    python benchmarks/compare.py 155c0cd 2d27bff HEAD          # git revisions, the first is the base
    python benchmarks/compare.py --files 20000 --big-mib 1024 --repeat 3 main HEAD

Each revision's ``evidencekit/`` is exported (``git archive``) and run with this Python, so the
dependencies are the ones installed here: ``python -S``, the revision first on the path, then this
Python's site-packages, so that nothing else can be imported as evidencekit (not the working
folder, nor an editable install's path hook); the libmagic workers are started with ``-S`` too.
The data sets are run.py's (20,000 files of 2-5 KB of random bytes in 100 folders, and one file
of random bytes), built once in ``--work`` and kept there. Every round runs every
revision once on each data set, in turn; the fastest wall time and the least CPU time (user +
system, of the command and every process it waited for) of each are kept (run.py's ``run_once``:
GNU time) and printed with their ratios to the first revision. On a machine shared with other
work, the CPU time is the steadier of the two.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from run import Measurement, MiB, run_once, warm, write_random_file, write_tree

ROOT = Path(__file__).resolve().parents[1]


def export(revision: str, trees: Path) -> Path:
    """The ``evidencekit/`` package of *revision*, under *trees* (a folder named by its hash)."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", revision],
                            check=True, capture_output=True, text=True).stdout.strip()
    target = trees / commit
    if not target.exists():
        target.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "evidencekit"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "xf", "-", "-C", str(target)], input=archive, check=True)
    return target


def build(work: Path, files: int, big: int) -> dict[str, Path]:
    data = work / "data"
    sets = {"tree": data / "tree" / "evidence", "big": data / "big" / "big.bin"}
    stamp = data / "stamp.json"
    wanted = json.dumps({"files": files, "big": big})
    if not (stamp.exists() and stamp.read_text() == wanted):
        shutil.rmtree(data, ignore_errors=True)
        print(f"building data sets in {data} ...", file=sys.stderr)
        write_tree(sets["tree"], files, 100, 1)
        write_random_file(sets["big"], big)
        stamp.write_text(wanted)
    return sets


def keys(work: Path, tree: Path) -> tuple[str, Path, Path]:
    folder = work / "keys"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    identity = folder / "identity.txt"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(identity)], check=True,
                               capture_output=True, text=True).stdout.strip()
    sign_key = folder / "signer"
    subprocess.run(f"{_command(shlex.quote(sys.executable), tree)} key generate -o "
                   f"{shlex.quote(str(sign_key))} --json", shell=True, check=True,
                   capture_output=True)
    return recipient, identity, sign_key


def _command(python: str, tree: Path) -> str:
    """The shell words that run the evidencekit package in *tree* (arguments to follow)."""
    site = [p for p in sys.path if p.endswith("site-packages")]
    code = (f"import sys; sys.path[:0] = {[str(tree), *site]!r}; sys.argv[0] = 'evidencekit'; "
            "from evidencekit.cli.main import main; main()")
    return f"{python} -S -c {shlex.quote(code)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revisions", nargs="+", help="git revisions; ratios are to the first")
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, help="keep the data sets here and reuse them")
    parser.add_argument("--no-verify", action="store_true", help="time capture only")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="evidencekit-compare-"))
    sets = build(work, args.files, args.big_mib * MiB)
    trees = {revision: export(revision, work / "trees") for revision in args.revisions}
    recipient, identity, sign_key = keys(work, trees[args.revisions[0]])
    out = work / "out"
    out.mkdir(exist_ok=True)
    python = shlex.quote(sys.executable)
    results: dict[str, Measurement] = {}
    try:
        for round_number in range(args.repeat):
            print(f"round {round_number + 1} of {args.repeat}", file=sys.stderr)
            for data, source in sets.items():
                warm(source)
                for revision, tree in trees.items():
                    bundle = out / f"{tree.name}-{data}.evidence"
                    bundle.unlink(missing_ok=True)
                    prefix = _command(python, tree)
                    commands = {"capture": (f"{prefix} capture {shlex.quote(str(source))} -r "
                                            f"{recipient} --sign-key {shlex.quote(str(sign_key))} "
                                            f"--case BENCH -o {shlex.quote(str(bundle))} --json")}
                    if not args.no_verify:
                        commands["verify"] = (f"{prefix} verify {shlex.quote(str(bundle))} -i "
                                              f"{shlex.quote(str(identity))} --json")
                    for step, command in commands.items():
                        name = f"{step} {data} {revision}"
                        sample = run_once(command, work)
                        if sample.code != 0:
                            print(f"  {name}: exit {sample.code}", file=sys.stderr)
                        results.setdefault(name, Measurement(name, command)).samples.append(sample)
                        print(f"  {name:40} {sample.wall:8.3f} s  cpu "
                              f"{sample.user + sample.system:7.2f} s  rss "
                              f"{sample.max_rss_mb:7.1f} MB", file=sys.stderr)
                    bundle.unlink(missing_ok=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{'measurement':36} {'best wall':>10} {'ratio':>6} {'least CPU':>10} {'ratio':>6} "
          f"{'peak RSS':>9}")
    base = args.revisions[0]
    for name, measurement in results.items():
        step, data, revision = name.split(" ", 2)
        first = results[f"{step} {data} {base}"]
        print(f"{name:36} {measurement.wall:9.3f}s {measurement.wall / first.wall:6.3f} "
              f"{_cpu(measurement):9.3f}s {_cpu(measurement) / _cpu(first):6.3f} "
              f"{measurement.rss:7.1f}MB")
    return 0


def _cpu(measurement: Measurement) -> float:
    return min(sample.user + sample.system for sample in measurement.samples)


if __name__ == "__main__":
    sys.exit(main())
