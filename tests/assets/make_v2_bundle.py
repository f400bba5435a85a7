"""Build tests/assets/format-v2.evidence: a bundle of format version 2, kept to prove that every
later evidencekit still verifies and opens version-2 bundles (docs/FORMAT.md §9).

Run once per format version:  python tests/assets/make_v2_bundle.py
It holds what version 2 added: a file with three names (stored once, two tar hard links) and an
encrypted addendum added by a reseal. Sealed with the public test passphrase below (not a
secret: it protects nothing but this fixture); the signing keys are generated here and thrown
away. Do not regenerate this file for an existing version.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from evidencekit import incident
from evidencekit.capture import CaptureRequest, CaseInfo, capture
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.custody.events import EventRequest
from evidencekit.custody.resealing import reseal
from evidencekit.incident import NoteContent

PASSPHRASE = b"evidencekit format v2 test vector"
HERE = Path(__file__).resolve().parent
TARGET = HERE / "format-v2.evidence"
ADDENDUM_TEXT = "the second charge was refunded on 2026-12-01"


def build_tree(root: Path) -> Path:
    src = root / "evidence"
    (src / "mail").mkdir(parents=True)
    (src / "mail" / "phish.eml").write_bytes(b"From: bank@examp1e.com\nSubject: urgent\n\nclick\n")
    os.link(src / "mail" / "phish.eml", src / "phish-copy.eml")  # two more names, one file
    os.link(src / "mail" / "phish.eml", src / "zz-third-name.eml")
    (src / "statement.csv").write_text("date,amount\n2026-11-30,-499.90\n")
    with open(os.fsencode(src) + b"/latin1-\xe9.txt", "wb") as f:
        f.write(b"not utf-8\n")
    return src


def main() -> None:
    if TARGET.exists():
        sys.exit(f"{TARGET} exists; fixtures of a released format version are never rebuilt")
    protection = [age.ScryptRecipient(PASSPHRASE, work_factor=10)]
    with tempfile.TemporaryDirectory() as tmp:
        src = build_tree(Path(tmp))
        sealed = Path(tmp) / "sealed.evidence"
        capture(CaptureRequest([os.fsencode(src)], sealed,
                               CaseInfo("COMPAT-V2", "evidencekit test suite",
                                        "format version 2 fixture"),
                               protection, SigningKey.generate("fixture"), ["make_v2_bundle.py"]))
        note = NoteContent(incident.note_details("note"), incident.note_text(ADDENDUM_TEXT))
        reseal(sealed, TARGET, [age.ScryptIdentity(PASSPHRASE)], protection,
               EventRequest("resealed", "fixture officer", SigningKey.generate("officer")),
               addendum=note)
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
