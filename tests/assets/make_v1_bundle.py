"""Build tests/assets/format-v1.evidence: a bundle of format version 1, kept to prove that every
later evidencekit still verifies and opens version-1 bundles (docs/FORMAT.md, "changing the format").

Run once per format version:  python tests/assets/make_v1_bundle.py
The bundle is sealed with the public test passphrase below (not a secret: it protects nothing but
this fixture); the signing key is generated here and thrown away, only its public half is kept
inside the bundle. Do not regenerate this file for an existing version.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from evidencekit.capture import CaptureRequest, CaseInfo, capture
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey

PASSPHRASE = b"evidencekit format v1 test vector"
HERE = Path(__file__).resolve().parent
TARGET = HERE / "format-v1.evidence"


def build_tree(root: Path) -> Path:
    src = root / "evidence"
    (src / "mail").mkdir(parents=True)
    (src / "empty-folder").mkdir()
    (src / "mail" / "phish.eml").write_bytes(b"From: bank@examp1e.com\nSubject: urgent\n\nclick\n")
    (src / "empty.txt").write_bytes(b"")
    (src / "Überweisung 100%.txt").write_text("unicode and percent\n", encoding="utf-8")
    (src / "line\nbreak.txt").write_text("newline in name\n")
    with open(os.fsencode(src) + b"/latin1-\xe9.txt", "wb") as f:
        f.write(b"not utf-8\n")
    os.symlink("mail/phish.eml", src / "link")
    return src


def main() -> None:
    if TARGET.exists():
        sys.exit(f"{TARGET} exists; fixtures of a released format version are never rebuilt")
    with tempfile.TemporaryDirectory() as tmp:
        src = build_tree(Path(tmp))
        request = CaptureRequest([os.fsencode(src)], TARGET,
                                 CaseInfo("COMPAT-V1", "evidencekit test suite",
                                          "format version 1 fixture"),
                                 [age.ScryptRecipient(PASSPHRASE, work_factor=10)],
                                 SigningKey.generate("fixture"), ["make_v1_bundle.py"])
        capture(request)
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
