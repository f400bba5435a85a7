"""Turn command-line key arguments into library objects: recipients, identities, trusted keys."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING

from evidencekit.crypto import age
from evidencekit.crypto.keys import (
    PublicKey,
    SigningKey,
    load_public_key_file,
    load_signing_key,
    private_key_is_encrypted,
)
from evidencekit.errors import InputError, KeyFileError, OutputError, RecipientError
from evidencekit.fs.noatime import read_user_file
from evidencekit.hostinfo import user_name
from evidencekit.publictext import check_line

if TYPE_CHECKING:  # the walk is imported by capture, not by every command
    from evidencekit.sources.files.walk import Source

OPENSSH_PRIVATE = b"-----BEGIN OPENSSH PRIVATE KEY-----"
AGE_SECRET = "AGE-SECRET-KEY-"


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "evidencekit"


def default_signing_key_path() -> Path:
    return config_dir() / "id_ed25519"


def folder_changed_by_creating(path: Path) -> Path:
    """The existing folder that creating *path* (and any missing folders above it) writes into."""
    folder = path.absolute().parent
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return folder


def refuse_new_key_inside(path: Path, sources: Collection[Source]) -> None:
    """Creating the personal signing key on first use writes into its folder: refuse when that
    folder is being captured (e.g. capturing the whole home folder, ~/.config included)."""
    from evidencekit.sources.files.walk import source_reaching

    inside = source_reaching(folder_changed_by_creating(path), sources)
    if inside is not None:
        raise OutputError(f"evidencekit would create your personal signing key {path} inside "
                          f"{os.fsdecode(inside.given)}, a folder being captured: that would "
                          "change the evidence",
                          hint="keep your key outside what you capture: evidencekit key "
                          "generate -o /path/to/the/stick/my-key, then capture with --sign-key "
                          "/path/to/the/stick/my-key; or create it in its usual place first (it "
                          "is then part of the folder before the capture, and recorded there): "
                          f"evidencekit key generate -o {path}")


def recipients_from(inline: tuple[str, ...], files: tuple[Path, ...]) -> list[age.Recipient]:
    """Parse ``--recipient`` values and ``--recipient-file`` files (one key per line, # comments)."""
    recipients = [_inline_recipient(value.strip()) for value in inline]
    for path in files:
        try:
            data = read_user_file(path)
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RecipientError(f"cannot read the recipient file {path}: {exc}") from None
        _refuse_private_key_file(path, data)
        lines = [line.strip() for line in text.splitlines()]
        found = [age.parse_recipient(line) for line in lines if line and not line.startswith("#")]
        if not found:
            raise RecipientError(f"the recipient file {path} holds no public key")
        recipients.extend(found)
    return recipients


def _inline_recipient(value: str) -> age.Recipient:
    """One ``--recipient`` value; a file name or a secret key given there is named as such (a
    secret key is never repeated in the message)."""
    if value.startswith(AGE_SECRET):
        raise RecipientError("the value given as a public key is a secret key "
                             "(AGE-SECRET-KEY-…): it was not used, and should not be shared",
                             hint="give the public key (age1…) instead: 'age-keygen -y FILE' "
                             "prints it")
    if value.startswith(("age1", "ssh-")):
        return age.parse_recipient(value)
    if os.path.isfile(value):
        raise RecipientError(f"{value!r} is a file, not a public key",
                             hint=f"to encrypt to the public keys in a file, use -R {value} "
                             "(--recipient-file); -r takes the key itself (age1… or "
                             "'ssh-ed25519 AAAA…')")
    if value.endswith((".pub", ".txt", ".key")) or os.sep in value:
        raise RecipientError(f"{value!r} is not a public key, and no such file exists",
                             hint="-R FILE (--recipient-file) reads the public keys in a file; "
                             "-r takes the key itself (age1… or 'ssh-ed25519 AAAA…')")
    return age.parse_recipient(value)


def _refuse_private_key_file(path: Path, data: bytes) -> None:
    """A private key given as recipient file: say so and point at its public key, without ever
    quoting the secret."""
    if OPENSSH_PRIVATE in data:
        public = Path(f"{path}.pub")
        raise RecipientError(f"{path} is a private key; encrypting needs the public key",
                             hint=f"use -R {public} (the public key next to it)" if
                             public.is_file() else f"use its public key: 'ssh-keygen -y -f "
                             f"{path} > {public}' writes it, then -R {public}")
    if AGE_SECRET.encode() in data:
        try:
            publics = [str(i.recipient()) for i in age.parse_identity_file(data)]
        except KeyFileError:
            publics = []
        raise RecipientError(f"{path} is an age identity (a secret key); encrypting needs the "
                             "public key", hint=f"use -r {publics[0]} (its public key)"
                             if len(publics) == 1 else
                             f"use its public key (age1…): 'age-keygen -y {path}' prints it")


def load_signing(path: Path, passphrase: Callable[[], bytes]) -> SigningKey:
    """Load a signing key, asking for its passphrase only when the key is protected."""
    try:
        data = read_user_file(path)
    except FileNotFoundError:
        raise KeyFileError(f"signing key not found: {path}",
                           hint="create one with: evidencekit key generate -o PATH") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read the signing key {path}: {exc.strerror}") from None
    secret = passphrase() if private_key_is_encrypted(data) else None
    return load_signing_key(path, secret)


def identities_from(paths: tuple[Path, ...], passphrase: Callable[[Path], bytes]
                    ) -> list[age.Identity]:
    """Load ``-i`` files: age identity files and OpenSSH ed25519 private keys."""
    identities: list[age.Identity] = []
    for path in paths:
        try:
            data = read_user_file(path)
        except OSError as exc:
            raise KeyFileError(f"cannot read the key file {path}: {exc.strerror}") from None
        if OPENSSH_PRIVATE in data:
            secret = passphrase(path) if private_key_is_encrypted(data) else None
            identities.append(age.SshEd25519Identity(load_signing_key(path, secret).key))
        elif b"AGE-SECRET-KEY-" in data:
            identities.extend(age.parse_identity_file(data))
        else:
            raise KeyFileError(f"{path} is neither an age identity file nor an OpenSSH private key",
                               hint="give the private key (not the .pub file)")
    return identities


def trusted_from(values: tuple[str, ...]) -> list[PublicKey]:
    """``--trusted-key`` values: a .pub file or an inline ``ssh-ed25519 AAAA…`` line."""
    keys = []
    for value in values:
        if value.startswith("ssh-"):
            keys.append(PublicKey.from_openssh_line(value))
        elif os.path.exists(value):
            keys.append(load_public_key_file(Path(value)))
        else:
            raise InputError(f"--trusted-key {value!r} is neither a file nor an ssh-ed25519 key")
    return keys


def generate_key_files(output: Path, comment: str | None, secret: bytes | None) -> SigningKey:
    if comment:  # the name custody events are signed in by default: one a reader can read back
        check_line(comment, "--comment", hint="give a shorter name, e.g. your own")
    if output.exists() or Path(f"{output}.pub").exists():
        raise OutputError(f"{output} or {output}.pub already exists; keys are never overwritten")
    output.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    signing = SigningKey.generate(comment or f"{user_name()}@{os.uname().nodename}")
    signing.save(output, secret)
    return signing
