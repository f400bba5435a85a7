"""What protects a bundle's payload, and what to tell a person whose key or passphrase does not
open it.

The age layer's own message ("none of the 1 key(s) or passphrase(s) given opens this age file
(its recipient stanzas are of type scrypt)") stays the technical record (``--json``'s
``no_matching_key``); people read :func:`wrong_key` instead: what protects the bundle, in plain
words, and the next step.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from evidencekit.crypto import age
from evidencekit.errors import EvidenceKitError
from evidencekit.format.documents import PAYLOAD
from evidencekit.format.outer import open_member
from evidencekit.format.reader import open_bundle

PASSPHRASE = "scrypt"  # the age stanza type of a passphrase
KEY_KINDS = {"X25519": "an age key (age1…)", "ssh-ed25519": "an SSH key (ssh-ed25519)",
             "ssh-rsa": "an SSH key (ssh-rsa)"}
ASK = "ask the person who made the bundle"


@dataclass(frozen=True)
class Advice:
    message: str
    hint: str


def payload_protection(bundle: Path | str) -> frozenset[str]:
    """The age stanza types of the bundle's payload ('scrypt', 'X25519', …); empty when the
    bundle cannot be read that far (verification reports why)."""
    try:
        opened = open_bundle(Path(bundle))
    except EvidenceKitError:
        return frozenset()
    try:
        member = opened.by_name.get(PAYLOAD)
        if member is None:
            return frozenset()
        header = age.read_header(open_member(opened.file, member)[0])
        return frozenset(stanza.type for stanza in header.stanzas)
    except EvidenceKitError:
        return frozenset()
    finally:
        opened.close()


def needs_passphrase(kinds: Collection[str]) -> bool:
    return PASSPHRASE in kinds


def wrong_key(kinds: Collection[str], gave_passphrase: bool | None = None,
              gave_keys: bool | None = None) -> Advice:
    """The message and next step when nothing given opens a payload protected by *kinds*.

    *gave_passphrase* / *gave_keys*: what the person gave, when the caller knows (None: the
    wording holds either way).
    """
    if not kinds:
        return Advice("the key or passphrase given does not open this bundle",
                      f"check that it is the right one, or {ASK} what it was made for")
    if needs_passphrase(kinds):
        return _passphrase_needed(gave_passphrase, gave_keys)
    return _key_needed(kinds, gave_passphrase, gave_keys)


def _passphrase_needed(gave_passphrase: bool | None, gave_keys: bool | None) -> Advice:
    if gave_passphrase is False or (gave_keys and gave_passphrase is None):
        return Advice("this bundle is protected by a passphrase, not a key",
                      f"use -p (you are asked for the passphrase) or --passphrase-file FILE, or "
                      f"{ASK} for the passphrase")
    if gave_passphrase:
        return Advice("the passphrase does not open this bundle",
                      "try again and check for typing mistakes (Caps Lock, keyboard layout), or "
                      f"{ASK} for the passphrase")
    return Advice("this bundle is protected by a passphrase (not a key), and what was given "
                  "does not open it",
                  "try again with -p and check for typing mistakes (Caps Lock, keyboard "
                  f"layout), or {ASK} for the passphrase")


def _key_needed(kinds: Collection[str], gave_passphrase: bool | None,
                gave_keys: bool | None) -> Advice:
    which = " or ".join(sorted({KEY_KINDS.get(kind, "a key") for kind in kinds}))
    if gave_passphrase and not gave_keys:
        return Advice(f"this bundle is protected by a key, not a passphrase: {which}",
                      f"give the private key file with -i KEYFILE, or {ASK} which key it was "
                      "made for")
    given = "none of the keys given (-i) opens it" if gave_keys else \
        "what was given does not open it"
    return Advice(f"this bundle is protected by {which}, not a passphrase, and {given}",
                  "give the private key it was made for with -i KEYFILE, or "
                  f"{ASK} which key that is")


def wrong_key_for(bundle: Path | str, identities: Sequence[age.Identity]) -> Advice:
    """:func:`wrong_key` for a bundle that none of *identities* opens (what was given is known)."""
    passphrases = [isinstance(identity, age.ScryptIdentity) for identity in identities]
    return wrong_key(payload_protection(bundle), any(passphrases),
                     not all(passphrases) if passphrases else False)
