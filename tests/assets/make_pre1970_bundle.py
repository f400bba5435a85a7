"""Build tests/assets/format-v3-pre1970.evidence: a bundle of format version 3 written before
the payload's pax ``mtime`` records of times before 1970 were corrected (docs/FORMAT.md §4.2),
kept to prove that every later evidencekit still verifies and opens such bundles.

Run once, with the evidencekit that wrote the old encoding:
    python tests/assets/make_pre1970_bundle.py
Its files and folder are dated before 1970 with a fraction of a second (1969-12-31 23:59:58.5
UTC is -1.5 s): that writer stored -1.5 s as ``-2.500000000`` (whole seconds rounded down, then
the fraction above them), which tar reads as -2.5 s; the manifest holds the right times. Sealed
with the public test passphrase below (not a secret: it protects nothing but this fixture); the
signing key is generated here and thrown away. Never rebuild it: the old writer is gone.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from evidencekit.capture import CaptureRequest, CaseInfo, capture
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey

PASSPHRASE = b"evidencekit pre-1970 times test vector"
HERE = Path(__file__).resolve().parent
TARGET = HERE / "format-v3-pre1970.evidence"
TIMES_NS = {  # path in the evidence folder: mtime (ns since 1970, UTC)
    "old/minus-1.5s.txt": -1_500_000_000,
    "old/minus-1ns.txt": -1,
    "old/minus-2s.txt": -2_000_000_000,
    "old/1960.txt": -315_619_199_750_000_000,  # 1960-01-01T00:00:00.25Z
    "old": -250_000_000,  # the folder, set last
}


def build_tree(root: Path) -> Path:
    src = root / "evidence"
    (src / "old").mkdir(parents=True)
    for name, mtime in TIMES_NS.items():
        path = src / name
        if not path.exists():
            path.write_text(f"dated {mtime} ns\n")
        os.utime(path, ns=(mtime, mtime))
    return src


def main() -> None:
    if TARGET.exists():
        sys.exit(f"{TARGET} exists; it is never rebuilt")
    protection = [age.ScryptRecipient(PASSPHRASE, work_factor=10)]
    with tempfile.TemporaryDirectory() as tmp:
        src = build_tree(Path(tmp))
        capture(CaptureRequest([os.fsencode(src)], TARGET,
                               CaseInfo("COMPAT-PRE1970", "evidencekit test suite",
                                        "times before 1970, old pax encoding"),
                               protection, SigningKey.generate("fixture"),
                               ["make_pre1970_bundle.py"]))
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
