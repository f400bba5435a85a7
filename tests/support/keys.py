"""Key files for tests, generated in the test (never committed): :func:`make_keys`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey

BUNDLE_PASSPHRASE = "bundle secret"  # in keys["passphrase"]
KEY_PASSPHRASE = b"key secret"  # of keys["protected"]


class KeyFiles(dict[str, Path | str]):
    """Paths of key files by role. The ones few tests need are made when first asked for
    (``protected`` costs a bcrypt derivation, a third of a second)."""

    def __init__(self, folder: Path, files: dict[str, Path | str],
                 later: dict[str, Callable[[Path], Path]]) -> None:
        super().__init__(files)
        self._folder = folder
        self._later = later

    def __missing__(self, role: str) -> Path | str:
        make = self._later.get(role)
        if make is None:
            raise KeyError(role)
        self[role] = made = make(self._folder)
        return made


def make_keys(folder: Path, comment: str = "examiner@test") -> KeyFiles:
    """In *folder*/keys: a signing key (OpenSSH, named *comment*), an age identity and its
    recipient, another identity, a file with a bundle passphrase; on first use also a signing
    key protected by KEY_PASSPHRASE (``protected``) and a stranger's signing key."""
    keys_dir = folder / "keys"
    keys_dir.mkdir()
    SigningKey.generate(comment).save(keys_dir / "signer")
    identity = age.X25519Identity.generate()
    (keys_dir / "identity.txt").write_text(f"# test identity\n{identity}\n")
    (keys_dir / "recipient.txt").write_text(f"{identity.recipient()}\n")
    (keys_dir / "other.txt").write_text(f"{age.X25519Identity.generate()}\n")
    (keys_dir / "passphrase.txt").write_text(BUNDLE_PASSPHRASE + "\n")
    files: dict[str, Path | str] = {
        "signer": keys_dir / "signer", "signer_pub": keys_dir / "signer.pub",
        "identity": keys_dir / "identity.txt", "recipient": keys_dir / "recipient.txt",
        "recipient_line": str(identity.recipient()), "other": keys_dir / "other.txt",
        "passphrase": keys_dir / "passphrase.txt"}
    return KeyFiles(keys_dir, files, {"protected": _protected, "stranger_pub": _stranger})


def _protected(folder: Path) -> Path:
    SigningKey.generate("protected@test").save(folder / "protected", KEY_PASSPHRASE)
    return folder / "protected"


def _stranger(folder: Path) -> Path:
    SigningKey.generate("stranger@test").save(folder / "stranger")
    return folder / "stranger.pub"
