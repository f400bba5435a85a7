"""Check that a restructuring changes no byte of a bundle: seal the same evidence with several
versions of evidencekit, with a fixed clock, fixed randomness and fixed keys, and compare.

Run from the repository root (issue 21: "no change in behaviour or in the format"):

    python benchmarks/same_bytes.py 5ac717d HEAD        # git revisions; all must agree
    python benchmarks/same_bytes.py --work /tmp/same main HEAD

Each revision's ``evidencekit/`` is exported as benchmarks/compare.py does and run with this
Python, in turn, on one tree built once in ``--work``: folders, a 3 MiB file, an empty file,
a file with three names (hard links: one left out by a filter), a symbolic link, a FIFO, files
a profile's filters leave out (a pattern, max_file_size and max_total), and a source of two
streams besides the file walk (one whose type is given). The capture is
benchmarks/identical.py's (``capture_fixed``: its clock, randomness, keys and working folder)
with those filters, that source and a profile added. The host's name, the user and the tools
are the same for every revision in one run, so they drop out.

Prints each revision's SHA-256 of the bundle and exits 1 when they differ.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from identical import capture_fixed

MTIME = 1_700_000_000_000_000_000


class Notes:
    """Two streams, the second with its type given (libmagic not asked). evidencekit is imported
    where it is used: this runs with the revision under test on the path."""

    index = 0
    name = "notes"

    def place(self, first: int, taken: set[str]) -> None:
        self.index = first
        taken.add(self.name)

    def records(self) -> list[Any]:
        from evidencekit.sources import SourceRecord

        return [SourceRecord(self.index, b"notes", b"notes", self.name, kind="test-notes")]

    def estimate(self, skip: object) -> tuple[int, None]:
        return 2, None

    def entries(self, skip: object) -> Iterator[Any]:
        from evidencekit.sources import BytesContent, StreamEntry

        yield StreamEntry(self.index, b"notes/a.txt", f"data/{self.name}/a.txt",
                          BytesContent(b"a note\n"), MTIME)
        yield StreamEntry(self.index, b"notes/b.json", f"data/{self.name}/b.json",
                          BytesContent(b"{}\n"), MTIME, mime="application/json")


def seal_here(tree: Path, out: Path) -> str:
    """The capture compared, with the evidencekit on this process's path."""
    from evidencekit.capture import CaseInfo

    try:  # where it is since issue 21, and before
        from evidencekit.sources.files.selection import Filters
    except ImportError:
        from evidencekit.selection import Filters  # type: ignore[no-redef]

    filters = Filters(exclude=("*.skip",), max_file_size=4500, max_total_bytes=(3 << 20) + 3000)
    return capture_fixed([tree], out, case=CaseInfo("SAME-1", "Jane", "same bytes"),
                         command=("same_bytes.py",), filters=filters, more_sources=[Notes()],
                         profile={"name": "t", "origin": "test", "sha256": "0" * 64})


def build_tree(tree: Path) -> None:
    """The evidence, made once: its times must not change between the revisions' runs."""
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "one.txt").write_text("hello world\n" * 100)
    (tree / "a" / "b" / "big.bin").write_bytes(bytes(range(256)) * (3 << 12))
    (tree / "a" / "empty").write_bytes(b"")
    (tree / "a" / "x.skip").write_text("left out by a pattern")
    (tree / "a" / "linked1").write_bytes(b"%PDF-1.4 three names\n")
    os.link(tree / "a" / "linked1", tree / "a" / "b" / "linked2")
    os.link(tree / "a" / "linked1", tree / "linked3.skip")
    (tree / "a" / "toolarge.dat").write_bytes(b"z" * 5000)
    (tree / "a" / "b" / "after.txt").write_text("x" * 4000)
    (tree / "c").mkdir()
    for number in range(30):
        (tree / "c" / f"f{number:02d}.txt").write_text(f"file {number}\n" * (number + 1))
    os.symlink("a/one.txt", tree / "link")
    os.mkfifo(tree / "fifo")


def seal(package: Path, tree: Path, out: Path) -> str:
    """Run ``seal_here`` in a new process with *package* (a revision's export) on the path:
    PYTHONPATH comes before an editable install's path hook, and this script's folder (first
    on the path) holds no evidencekit."""
    done = subprocess.run([sys.executable, __file__, "--seal", str(tree), str(out)], check=True,
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(package)})
    out.unlink()
    return done.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revisions", nargs="*", help="git revisions, all compared")
    parser.add_argument("--work", type=Path, help="a folder for the trees (default: temporary)")
    parser.add_argument("--seal", nargs=2, type=Path, metavar=("TREE", "OUT"),
                        help=argparse.SUPPRESS)  # one revision's run, in its own process
    args = parser.parse_args()
    if args.seal:
        print(seal_here(*args.seal))
        return 0
    if not args.revisions:
        parser.error("name at least one git revision")
    from compare import export

    with tempfile.TemporaryDirectory(prefix="same-bytes-") as temporary:
        work = (args.work or Path(temporary)).resolve()
        evidence = Path(tempfile.mkdtemp(prefix="evidence-", dir=work)) / "tree"
        build_tree(evidence)
        # A first seal, not compared: reading a symbolic link (readlink) sets its access time
        # when that is not after its modification time (relatime), as it is in a new tree, and
        # the manifest records a link's access time. Later reads leave it.
        seal(export(args.revisions[0], work / "trees"), evidence, evidence.parent / "out.evidence")
        found = {revision: seal(export(revision, work / "trees"), evidence,
                                evidence.parent / "out.evidence")
                 for revision in args.revisions}
    for revision, digest in found.items():
        print(f"{revision:<12} {digest}")
    same = len(set(found.values())) == 1
    print("same bytes" if same else "DIFFERENT bytes")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
