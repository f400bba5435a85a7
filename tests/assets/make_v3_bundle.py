"""Build tests/assets/format-v3.evidence: a bundle of format version 3, kept to prove that every
later evidencekit still verifies and opens version-3 bundles (docs/FORMAT.md §9).

Run once per format version:  python tests/assets/make_v3_bundle.py
It holds what version 3 added: a trusted (RFC 3161) timestamp of the seal, from a TSA run here
on 127.0.0.1 by tests/support/tsa_server.py (openssl ts -reply, a test CA made for this run), followed by
a custody event appended after it. The TSA's root certificate is kept beside it as
format-v3-tsa-root.pem (public; the CA's private key is thrown away), so the timestamp can be
checked against it (--tsa-ca). Sealed with the public test passphrase below (not a secret: it
protects nothing but this fixture); the signing keys are generated here and thrown away. Do not
regenerate these files for an existing version.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from evidencekit.capture import CaptureRequest, CaseInfo, capture
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.custody.events import EventRequest, append_event
from evidencekit.stamping import add_timestamps
from tests.support.tsa_server import running_tsa

PASSPHRASE = b"evidencekit format v3 test vector"
HERE = Path(__file__).resolve().parent
TARGET = HERE / "format-v3.evidence"
ROOT = HERE / "format-v3-tsa-root.pem"


def build_tree(root: Path) -> Path:
    src = root / "evidence"
    (src / "mail").mkdir(parents=True)
    (src / "mail" / "phish.eml").write_bytes(b"From: bank@examp1e.com\nSubject: urgent\n\nclick\n")
    os.link(src / "mail" / "phish.eml", src / "phish-copy.eml")
    (src / "statement.csv").write_text("date,amount\n2026-12-06,-120.00\n")
    with open(os.fsencode(src) + b"/latin1-\xe9.txt", "wb") as f:
        f.write(b"not utf-8\n")
    return src


def main() -> None:
    if TARGET.exists() or ROOT.exists():
        sys.exit(f"{TARGET} exists; fixtures of a released format version are never rebuilt")
    protection = [age.ScryptRecipient(PASSPHRASE, work_factor=10)]
    with tempfile.TemporaryDirectory() as tmp:
        src = build_tree(Path(tmp))
        sealed = Path(tmp) / "sealed.evidence"
        capture(CaptureRequest([os.fsencode(src)], sealed,
                               CaseInfo("COMPAT-V3", "evidencekit test suite",
                                        "format version 3 fixture"),
                               protection, SigningKey.generate("fixture"), ["make_v3_bundle.py"]))
        with running_tsa(Path(tmp) / "pki") as tsa:
            stamped = add_timestamps(sealed, [tsa.url])
            if stamped.failed or len(stamped.added) != 1:
                sys.exit(f"the local TSA did not answer: {stamped.failed}")
            shutil.copyfile(tsa.root, ROOT)
        append_event(sealed, EventRequest("transferred", "fixture officer",
                                          SigningKey.generate("officer"),
                                          counterparty="Det. Compat, Cyber Unit"))
        shutil.copyfile(sealed, TARGET)
    print(f"wrote {TARGET} and {ROOT}")


if __name__ == "__main__":
    main()
