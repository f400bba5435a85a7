"""Keys as people give them: a recipient string, an age identity file."""

from __future__ import annotations

from evidencekit.crypto.age.sshed25519 import SshEd25519Recipient
from evidencekit.crypto.age.stanza import Recipient, shorten
from evidencekit.crypto.age.x25519 import X25519Identity, X25519Recipient
from evidencekit.errors import KeyFileError, RecipientError


def parse_recipient(text: str) -> Recipient:
    """Parse an ``age1…`` or ``ssh-ed25519 AAAA… [comment]`` recipient."""
    stripped = text.strip()
    if stripped.startswith("age1"):
        return X25519Recipient.from_string(stripped)
    if stripped.split(None, 1)[0:1] == ["ssh-ed25519"]:
        return SshEd25519Recipient.from_ssh_line(stripped)
    raise RecipientError(
        f"{shorten(stripped)!r} is not an age1… or ssh-ed25519 public key "
        "(ssh-rsa, post-quantum and plugin recipients are not supported)"
    )


def parse_identity_file(data: bytes) -> list[X25519Identity]:
    """Parse an age identity file: ``#`` comments, blank lines and AGE-SECRET-KEY-1… lines."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError("the age identity file is not UTF-8 text") from None
    identities: list[X25519Identity] = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("AGE-SECRET-KEY-1"):
            kind = (
                "a post-quantum key"
                if line.startswith("AGE-SECRET-KEY-PQ-")
                else ("a plugin key" if line.startswith("AGE-PLUGIN-") else "not an age identity")
            )
            raise KeyFileError(f"age identity file line {number} is {kind} (unsupported)")
        try:
            identities.append(X25519Identity.from_string(line))
        except KeyFileError as err:
            raise KeyFileError(f"age identity file line {number}: {err}") from None
    if not identities:
        raise KeyFileError("the age identity file contains no AGE-SECRET-KEY-1… line")
    return identities
