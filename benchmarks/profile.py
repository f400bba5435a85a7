"""Profile one evidencekit command with py-spy and print where each thread spends its time.

    pip install py-spy
    python benchmarks/profile.py -- evidencekit capture SRC -r age1... --sign-key KEY -o OUT --json
    python benchmarks/profile.py --native -- evidencekit verify OUT -i KEY --json
    python benchmarks/profile.py --subprocesses -- evidencekit capture ...   # libmagic workers too

Samples every thread (idle ones too, so waiting shows as waiting) at 200 Hz and prints, per
thread, the share of samples per innermost function (``--native`` resolves C frames, e.g.
OpenSSL's SHA-256 or libmagic). This is how the profiles in docs/performance.md were made.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def summarize(raw: Path, top: int) -> str:
    per_thread: collections.Counter[str] = collections.Counter()
    per_leaf: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        process = ""
        # --subprocesses: one "process PID:cmdline" frame per level (parent first, then child)
        while frames[0].startswith("process ") and len(frames) > 1:
            process = frames.pop(0).split(":", 1)[0] + " "  # the innermost: "process 1234"
        thread = process + (frames[0].split(":", 1)[-1].strip() or frames[0])
        leaf = frames[-1]
        if len(frames) > 1 and "(" in leaf and ".py:" not in leaf:  # a C frame: name its caller
            callers = [f for f in frames if ".py:" in f]
            if callers:
                leaf = f"{leaf.split(' (')[0]} <- {callers[-1]}"
        per_thread[thread] += int(count)
        per_leaf[(thread, leaf)] += int(count)
    lines = []
    for thread, total in per_thread.most_common():
        lines.append(f"{thread}: {total} samples ({total / 200:.2f} s)")
        leaves = [(leaf, n) for (t, leaf), n in per_leaf.most_common() if t == thread][:top]
        for leaf, n in leaves:
            lines.append(f"  {100 * n / total:5.1f} %  {leaf}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--native", action="store_true", help="include C frames")
    parser.add_argument("--top", type=int, default=8, help="functions shown per thread")
    parser.add_argument("--subprocesses", action="store_true",
                        help="profile child processes too (capture's libmagic workers)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if not command or spy is None:
        parser.error("give a command after --, and install py-spy")
    if command[0] == "evidencekit":
        command[0] = shutil.which("evidencekit", path=str(Path(sys.executable).parent)) or \
            command[0]
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "profile.txt"
        options = ["--idle", "--threads", "--rate", "200", "--format", "raw", "-o", str(raw)]
        if args.native:
            options.append("--native")
        if args.subprocesses:
            options.append("--subprocesses")
        subprocess.run([spy, "record", *options, "--", *command], check=True,
                       stdout=subprocess.DEVNULL)
        print(summarize(raw, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
