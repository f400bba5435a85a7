"""Small sealed bundles: for export tests (:func:`seal`), made through the CLI; for the library's
unit tests (:func:`sealed_by_library`), made by ``capture()`` itself."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from evidencekit.capture import CaptureRequest, CaseInfo, capture
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from tests.support.cli import Run, run_cli


@dataclass
class Sealed:
    bundle: Path
    signer: Path
    identity: Path
    evidence: Path
    env: dict[str, str]

    def cli(self, *args: object) -> Run:
        return run_cli(*args, env=self.env)

    def export(self, fmt: str, output: Path, *more: object) -> Run:
        return self.cli("export", self.bundle, "-i", self.identity, "--format", fmt,
                        "-o", output, *more)


def make_evidence(root: Path, *, odd_names: bool = True) -> Path:
    evidence = root / "evidence"
    (evidence / "mail").mkdir(parents=True)
    (evidence / "empty-folder").mkdir()
    (evidence / "mail" / "scam.eml").write_bytes(b"From: a@b\nSubject: pay\n\nPay now\n")
    (evidence / "empty.txt").write_bytes(b"")
    (evidence / "Überweisung €, 100% sure.txt").write_text("unicode name\n", encoding="utf-8")
    (evidence / "statement.csv").write_bytes(os.urandom(70_000))
    os.link(evidence / "statement.csv", evidence / "statement-copy.csv")
    os.symlink("mail/scam.eml", evidence / "link-to-scam")
    if odd_names:
        with open(os.fsencode(evidence) + b"/latin1-\xe9t\xe9.txt", "wb") as f:
            f.write(b"not utf-8 name\n")
    return evidence


def seal(root: Path, *, odd_names: bool = True, extra: tuple[str, ...] = ()) -> Sealed:
    keys = root / "keys"
    keys.mkdir()
    signer = SigningKey.generate("Det. Example")
    signer.save(keys / "signer")
    identity = age.X25519Identity.generate()
    (keys / "identity.txt").write_text(f"{identity}\n")
    (keys / "recipient.txt").write_text(f"{identity.recipient()}\n")
    config = root / "config"
    config.mkdir()
    env = {"XDG_CONFIG_HOME": str(config)}
    evidence = make_evidence(root, odd_names=odd_names)
    bundle = root / "case.evidence"
    done = run_cli("capture", evidence, "-o", bundle, "--case", "CASE-25",
                   "--examiner", "Det. Example", "--organisation", "Cyber Unit",
                   "--description", "phishing", "--legal-basis", "Warrant 12/2026",
                   "-r", identity.recipient(), "--sign-key", keys / "signer", *extra, env=env)
    assert done.code == 0, done.stderr
    return Sealed(bundle, keys / "signer", keys / "identity.txt", evidence, env)


def sealed_by_library(folder: Path, case_id: str, big: int) -> tuple[Path, age.X25519Identity]:
    """*folder*/case.evidence, sealed by ``capture()`` for a new X25519 identity (returned):
    a small file, a random one of *big* bytes in a subfolder, and a second name of the first
    (a hard link)."""
    src = folder / "evidence"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"first file\n")
    (src / "sub" / "b.bin").write_bytes(os.urandom(big))
    os.link(src / "a.txt", src / "sub" / "another-name.txt")
    identity = age.X25519Identity.generate()
    bundle = folder / "case.evidence"
    capture(CaptureRequest([os.fsencode(src)], bundle, CaseInfo(case_id, "Jane"),
                           [identity.recipient()], SigningKey.generate(), ["test"]))
    return bundle, identity
