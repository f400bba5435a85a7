"""Print the SHA-256 of a bundle captured with a fixed clock, fixed randomness and fixed keys.

A change meant to make capture faster must not change a byte of its output. Capture the same
tree with two versions and compare the digests (run from the repository root):

    PYTHONPATH=CHECKOUT_A python benchmarks/identical.py TREE
    PYTHONPATH=CHECKOUT_B python benchmarks/identical.py TREE

with the same Python for both (the manifest records its path); PYTHONPATH comes before an
editable install's path hook, so the checkout named there is the one run. Everything that
varies from one capture to the next is fixed here: the clock (a counter of nanoseconds from
2026-01-01), the age file key, nonce and ephemeral share (SHA-256 in counter mode), the Ed25519
signing key and the age recipient, the working folder (/). What
remains comes from the machine (host and user names, the clock's source, the tools' versions)
and from the tree itself (names, contents, times: reading it with anything that updates access
times changes them), which must not change between the two runs.

``capture_fixed`` is that capture as a function: benchmarks/same_bytes.py runs it with each of
several git revisions (and more of capture's options) on a tree of its own.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def counter_random(seed: bytes) -> Callable[[int], bytes]:
    counter = itertools.count()

    def random(size: int) -> bytes:
        out = b""
        while len(out) < size:
            out += hashlib.sha256(seed + next(counter).to_bytes(8, "big")).digest()
        return out[:size]

    return random


def counter_clock() -> Callable[[], int]:
    ticks = itertools.count()
    start = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z

    def clock() -> int:
        return start + next(ticks) * 1_000_003

    return clock


def capture_fixed(paths: list[Path], output: Path, *, case: Any = None,
                  command: tuple[str, ...] = ("evidencekit", "capture"), **options: Any) -> str:
    """Capture *paths* into *output* with the fixed clock, randomness and keys, from the folder /;
    return the bundle's SHA-256 (hex). *options* go to ``CaptureRequest`` as they are (filters,
    more_sources, profile, ...). evidencekit is imported here, not above: the caller chooses
    which checkout is on the path."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from evidencekit.capture import CaptureRequest, CaseInfo, capture
    from evidencekit.crypto.age.x25519 import X25519Identity
    from evidencekit.crypto.keys import SigningKey

    identity = X25519Identity(hashlib.sha256(b"identical: age").digest())
    signer = SigningKey(Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(b"identical: ed25519").digest()), "identical")
    sources = [os.fsencode(path.resolve()) for path in paths]
    output = output.resolve()
    os.chdir("/")  # recorded in the manifest (capture.cwd)
    capture(CaptureRequest(sources, output,
                           case or CaseInfo("IDENTICAL-1", "Bench"), [identity.recipient()],
                           signer, list(command), clock=counter_clock(),
                           random=counter_random(b"identical"), **options))
    return hashlib.sha256(output.read_bytes()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tree", type=Path)
    parser.add_argument("--keep", type=Path, help="write the bundle here instead of a temporary file")
    args = parser.parse_args()
    keep = args.keep.resolve() if args.keep else None
    with tempfile.TemporaryDirectory(prefix="evidencekit-identical-") as folder:
        print(capture_fixed([args.tree], keep or Path(folder) / "out.evidence"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
