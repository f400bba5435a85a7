"""Check that a restructuring changes no byte of a bundle: seal the same evidence with several
versions of evidencekit, with a fixed clock, fixed randomness and fixed keys, and compare.

Run from the repository root (issue 21: "no change in behaviour or in the format"):

    python benchmarks/same_bytes.py 5ac717d HEAD        # git revisions; all must agree
    python benchmarks/same_bytes.py --work /tmp/same main HEAD

Each revision's ``evidencekit/`` is exported as benchmarks/compare.py does and run with this
Python, in turn, on one tree built once in ``--work``: folders, a 3 MiB file, an empty file,
a file with three names (hard links: one left out by a filter), a symbolic link, a FIFO, files
a profile's filters leave out (a pattern, max_file_size and max_total), and a source of two
streams besides the file walk (one whose type is given). The host's name, the user, the working
folder and the tools are the same for every revision in one run, so they drop out; times come
from a clock that ticks one second a call and randomness from SHAKE-256 of a counter.

Prints each revision's SHA-256 of the bundle and exits 1 when they differ.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from compare import export

SEAL = r'''
import hashlib, os, sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidencekit.capture import CaptureRequest, CaseInfo, capture
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.sources import BytesContent, SourceRecord, StreamEntry

try:  # where it is since issue 21, and before
    from evidencekit.sources.files.selection import Filters
except ImportError:
    from evidencekit.selection import Filters

tree, out = Path(sys.argv[1]), Path(sys.argv[2])
MTIME = 1_700_000_000_000_000_000


class Notes:
    """Two streams, the second with its type given (libmagic not asked)."""

    def place(self, first, taken):
        self.index, self.name = first, "notes"
        taken.add(self.name)

    def records(self):
        return [SourceRecord(self.index, b"notes", b"notes", self.name, kind="test-notes")]

    def estimate(self, skip):
        return 2, None

    def entries(self, skip):
        yield StreamEntry(self.index, b"notes/a.txt", f"data/{self.name}/a.txt",
                          BytesContent(b"a note\n"), MTIME)
        yield StreamEntry(self.index, b"notes/b.json", f"data/{self.name}/b.json",
                          BytesContent(b"{}\n"), MTIME, mime="application/json")


now = [1_750_000_000_000_000_000]


def clock():
    now[0] += 1_000_000_000
    return now[0]


drawn = [0]


def random(count):
    drawn[0] += 1
    return hashlib.shake_256(b"%d" % drawn[0]).digest(count)


key = SigningKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))), "same-bytes")
recipient = age.X25519Identity(bytes(range(32, 64))).recipient()
filters = Filters(exclude=("*.skip",), max_file_size=4500, max_total_bytes=(3 << 20) + 3000)
capture(CaptureRequest([os.fsencode(tree)], out, CaseInfo("SAME-1", "Jane", "same bytes"),
                       [recipient], key, ["same_bytes.py"], clock=clock, random=random,
                       filters=filters, more_sources=[Notes()],
                       profile={"name": "t", "origin": "test", "sha256": "0" * 64}))
print(hashlib.sha256(out.read_bytes()).hexdigest())
'''


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
    done = subprocess.run([sys.executable, "-c", SEAL, str(tree), str(out)], check=True,
                          capture_output=True, text=True, cwd=tree.parent,
                          env={**os.environ, "PYTHONPATH": str(package)})
    out.unlink()
    return done.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revisions", nargs="+", help="git revisions, all compared")
    parser.add_argument("--work", type=Path, help="a folder for the trees (default: temporary)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="same-bytes-") as temporary:
        work = args.work or Path(temporary)
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
