"""Build tests/assets/format-v4.evidence: a bundle of format version 4, kept to prove that every
later evidencekit still verifies and opens version-4 bundles (docs/FORMAT.md §9).

Run once per format version:  python tests/assets/make_v4_bundle.py
It holds what version 4 added: a payload compressed with zstd before age encrypted it, as
`capture --device` writes it, here of a small disk image (4 MiB, mostly zeros: the bundle is a
few kilobytes), followed by a custody event appended after it. Sealed with the public test
passphrase below (not a secret: it protects nothing but this fixture); the signing keys are
generated here and thrown away. Do not regenerate these files for an existing version.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from evidencekit.capture import CaptureRequest, CaseInfo, capture
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.custody.events import EventRequest, append_event
from evidencekit.sources.device import DeviceSource

PASSPHRASE = b"evidencekit format v4 test vector"
HERE = Path(__file__).resolve().parent
TARGET = HERE / "format-v4.evidence"
MIB = 1 << 20


def build_image(folder: Path) -> Path:
    """A 4 MiB "stick": a boot sector, a note in the second MiB, zeros everywhere else."""
    image = folder / "stick.img"
    with open(image, "wb") as f:
        f.truncate(4 * MIB)
        f.write(b"\xeb\x3c\x90MSDOS5.0" + bytes(499) + b"\x55\xaa")
        f.seek(MIB + 4096)
        f.write(b"From: bank@examp1e.com\nSubject: urgent\n\nclick\n" * 20)
    return image


def main() -> None:
    if TARGET.exists():
        sys.exit(f"{TARGET} exists; fixtures of a released format version are never rebuilt")
    protection = [age.ScryptRecipient(PASSPHRASE, work_factor=10)]
    with tempfile.TemporaryDirectory() as tmp:
        image = build_image(Path(tmp))
        sealed = Path(tmp) / "sealed.evidence"
        capture(CaptureRequest([], sealed,
                               CaseInfo("COMPAT-V4", "evidencekit test suite",
                                        "format version 4 fixture"),
                               protection, SigningKey.generate("fixture"), ["make_v4_bundle.py"],
                               more_sources=(DeviceSource(str(image), hashes=("md5",)),)))
        append_event(sealed, EventRequest("transferred", "fixture officer",
                                          SigningKey.generate("officer"),
                                          counterparty="Det. Compat, Cyber Unit"))
        shutil.copyfile(sealed, TARGET)
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
