"""What protects a bundle's payload, and what to tell a person whose key or passphrase does not
open it.

The age layer's own message ("none of the 1 key(s) or passphrase(s) given opens this age file
(its recipient stanzas are of type scrypt)") stays the technical record (``--json``'s
``no_matching_key``); people read :func:`wrong_key` instead: what protects the bundle, in plain
words, and the next step.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from evidencekit.crypto import age
from evidencekit.errors import EvidenceKitError, InputError
from evidencekit.format.documents import PAYLOAD
from evidencekit.format.outer import open_member
from evidencekit.format.reader import OuterBundle, open_bundle

PASSPHRASE = "scrypt"  # the age stanza type of a passphrase
KEY_KINDS = {"X25519": "an age key (age1…)", "ssh-ed25519": "an SSH key (ssh-ed25519)",
             "ssh-rsa": "an SSH key (ssh-rsa)"}
ASK = "ask the person who made the bundle"
NAMED_AT_MOST = 5  # recipients named in a wrong-key message


@dataclass(frozen=True)
class Advice:
    """What to tell a person: *summary* (one clause), *details* (what the bundle opens with and
    what was tried, each a phrase) and the next step (*hint*)."""

    summary: str
    hint: str
    details: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        """The summary, then its details: one line, for an error message."""
        return self.message_with("")

    def message_with(self, consequence: str) -> str:
        """:attr:`message` with *consequence* (", so no report was made") after the summary."""
        return self.summary + consequence + (f": {'; '.join(self.details)}" if self.details
                                             else "")


# A 4-byte tag in canonical unpadded base64: 5 characters, then one holding the last 2 bits.
_KEY_TAG = re.compile(r"[A-Za-z0-9+/]{5}[AQgw]")


@dataclass(frozen=True)
class RecipientInfo:
    """What one recipient stanza of the payload's age header reveals about who can open it.

    An ssh-ed25519 stanza carries a tag of the key (the first 4 bytes of SHA-256 of its SSH wire
    form), which also starts its ``SHA256:`` fingerprint; an X25519 stanza reveals nothing about
    the key (age hides recipients on purpose); scrypt is a passphrase.
    """

    type: str
    key_tag: str | None = None

    @property
    def fingerprint_start(self) -> str | None:
        """``SHA256:`` and the first 5 characters every fingerprint of the tagged key has."""
        return f"SHA256:{self.key_tag[:5]}" if self.key_tag else None

    @property
    def identifies_key(self) -> bool:
        return self.key_tag is not None

    def describe(self) -> str:
        """In plain words (the type comes from the bundle: escape it before printing)."""
        if self.type == PASSPHRASE:
            return "a passphrase"
        if self.type == "ssh-ed25519":
            if self.key_tag is None:
                return "an SSH key (ssh-ed25519) whose key tag is malformed"
            return (f"the SSH key whose fingerprint starts {self.fingerprint_start} "
                    f"(key tag {self.key_tag})")
        if self.type == "X25519":
            return "an age key (age1…), the bundle does not reveal which"
        return f"a key of type {self.type}, which evidencekit does not support"

    def to_json(self) -> dict[str, object]:
        return {"type": self.type, "key_tag": self.key_tag,
                "fingerprint_start": self.fingerprint_start,
                "identifies_key": self.identifies_key, "description": self.describe()}


def recipients_in(stanzas: Iterable[age.Stanza]) -> list[RecipientInfo]:
    """One :class:`RecipientInfo` per stanza, in the header's order."""
    found = []
    for stanza in stanzas:
        tag = stanza.args[0] if stanza.type == "ssh-ed25519" and stanza.args else None
        found.append(RecipientInfo(stanza.type, tag if tag and _KEY_TAG.fullmatch(tag) else None))
    return found


def read_payload_header(bundle: OuterBundle) -> age.Header | None:
    """The age header of an opened bundle's payload, read alone (the payload is not); None when
    the bundle has no payload. The one place the header is peeked at (inspect, verify's
    questions, the advice on a wrong key). A read error there (EIO from a damaged disk) is the
    input's fault, named like verify's own reads of the payload: InputError, not a bug."""
    member = bundle.by_name.get(PAYLOAD)
    if member is None:
        return None
    try:
        return age.read_header(open_member(bundle.file, member)[0])
    except OSError as exc:
        raise InputError(f"cannot read {bundle.path}: {exc.strerror or exc}") from None


def payload_header(bundle: Path | str) -> age.Header | None:
    """The age header of the payload of the bundle at *bundle*; None when it has no payload or
    its header cannot be read (verification reports why). What ``open_bundle`` raises when the
    bundle itself cannot be opened is raised."""
    opened = open_bundle(Path(bundle))
    try:
        return read_payload_header(opened)
    except EvidenceKitError:
        return None
    finally:
        opened.close()


def payload_recipients(bundle: Path | str) -> list[RecipientInfo]:
    """The recipients of the bundle's payload; empty when the bundle cannot be read that far
    (verification reports why)."""
    try:
        header = payload_header(bundle)
    except EvidenceKitError:
        return []
    return [] if header is None else recipients_in(header.stanzas)


def protection_of(recipients: Sequence[RecipientInfo] | None, bundle: Path | str
                  ) -> frozenset[str]:
    """The stanza types of *recipients* (the payload's, already read); read from *bundle* when
    they were not."""
    if recipients is None:
        return payload_protection(bundle)
    return frozenset(recipient.type for recipient in recipients)


def payload_protection(bundle: Path | str) -> frozenset[str]:
    """The age stanza types of the bundle's payload ('scrypt', 'X25519', …); empty when the
    bundle cannot be read that far (verification reports why)."""
    return frozenset(recipient.type for recipient in payload_recipients(bundle))


def describe_identity(identity: age.Identity) -> str:
    """A key or passphrase given, by what identifies it without revealing it."""
    if isinstance(identity, age.SshEd25519Identity):
        return f"the SSH key {identity.fingerprint} (key tag {identity.key_tag})"
    if isinstance(identity, age.X25519Identity):
        return f"the age key {identity.recipient()}"
    if isinstance(identity, age.ScryptIdentity):
        return "a passphrase"
    return "a key"


def needs_passphrase(kinds: Collection[str]) -> bool:
    return PASSPHRASE in kinds


def wrong_key(kinds: Collection[str], gave_passphrase: bool | None = None,
              gave_keys: bool | None = None, *, recipients: Sequence[RecipientInfo] = (),
              tried: Sequence[age.Identity] = ()) -> Advice:
    """The message and next step when nothing given opens a payload protected by *kinds*.

    *gave_passphrase* / *gave_keys*: what the person gave, when the caller knows (None: the
    wording holds either way). *recipients* (the payload's, when read) and *tried* (the keys
    given) add what the bundle opens with and which keys were tried, each by what identifies it.
    """
    if not kinds:
        return Advice("the key or passphrase given does not open this bundle",
                      f"check that it is the right one, or {ASK} what it was made for")
    if needs_passphrase(kinds):
        return _passphrase_needed(gave_passphrase, gave_keys)
    advice = _key_needed(kinds, gave_passphrase, gave_keys)
    details = _key_details(recipients, tried)
    if not details:
        return advice
    hint = advice.hint
    if any(r.identifies_key for r in recipients):
        hint += " ('ssh-keygen -lf KEYFILE' shows the fingerprint of an SSH key)"
    return Advice(advice.summary, hint, details)


def _key_details(recipients: Sequence[RecipientInfo], tried: Sequence[age.Identity]
                 ) -> tuple[str, ...]:
    """'it opens with …' and 'tried …', for a bundle protected by keys."""
    details = []
    keys = [r for r in recipients if r.type != PASSPHRASE]
    named = [r.describe() for r in keys if r.type != "X25519"]
    unnamed = sum(r.type == "X25519" for r in keys)
    if unnamed:
        named.append("an age key (age1…), the bundle does not reveal which" if unnamed == 1 else
                     f"any of {unnamed} age keys (age1…), the bundle does not reveal which")
    if named:
        details.append("it opens with " + ", or ".join(
            _at_most(named, "more keys ('evidencekit inspect' lists them all)")))
    tags = {r.key_tag for r in keys if r.key_tag}
    given = []
    for identity in tried:
        if isinstance(identity, age.ScryptIdentity):
            continue
        if isinstance(identity, age.SshEd25519Identity) and keys:
            match = ("the bundle's, yet it does not open it" if identity.key_tag in tags
                     else "not the bundle's")
            given.append(f"the SSH key {identity.fingerprint} (key tag {identity.key_tag}, "
                         f"{match})")
        else:
            given.append(describe_identity(identity))
    if given:
        details.append("tried " + ", and ".join(_at_most(given, "more keys")))
    return tuple(details)


def _at_most(phrases: list[str], more: str) -> list[str]:
    """The first few *phrases*, then how many more: a header may hold 1024 stanzas, and an
    identity file as many keys; the message must stay a line."""
    if len(phrases) <= NAMED_AT_MOST:
        return phrases
    return [*phrases[:NAMED_AT_MOST - 1], f"{len(phrases) - NAMED_AT_MOST + 1} {more}"]


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


def wrong_key_for(bundle: Path | str, identities: Sequence[age.Identity],
                  recipients: Sequence[RecipientInfo] | None = None) -> Advice:
    """:func:`wrong_key` for a bundle that none of *identities* opens (what was given is known).
    *recipients*: the payload's, when already read (verify's report has them); else read here."""
    passphrases = [isinstance(identity, age.ScryptIdentity) for identity in identities]
    if recipients is None:
        recipients = payload_recipients(bundle)
    return wrong_key({r.type for r in recipients}, any(passphrases),
                     not all(passphrases) if passphrases else False,
                     recipients=recipients, tried=identities)


def passphrase_opens(header: age.Header | None, identity: age.ScryptIdentity) -> bool | None:
    """Whether *identity* opens a payload whose age header is *header* (no payload is read).
    None when that cannot be told from it: no passphrase protects the payload, or the header is
    damaged or missing (verification then says what is wrong)."""
    try:
        if header is None or not needs_passphrase({stanza.type for stanza in header.stanzas}):
            return None
        return identity.unwrap(header.stanzas) is not None
    except EvidenceKitError:
        return None


class KeySource(Protocol):
    """Keys that are asked for once the payload's age header is known, from the bundle that is
    being read (never opened again for it): a passphrase asked only when the header shows one
    protects the payload, and a typed one checked against it at once (:func:`passphrase_opens`).
    *header* is None when the bundle has no payload or its header cannot be read."""

    def keys_for(self, header: age.Header | None) -> Sequence[age.Identity]: ...

    @property
    def given(self) -> Sequence[age.Identity]:
        """What :meth:`keys_for` gave (the advice on a wrong key names them); before it was
        asked, the keys known already."""


Keys = Sequence[age.Identity] | KeySource  # what verify, extract and reseal open a payload with


def keys_given(keys: Keys) -> Sequence[age.Identity]:
    """The keys *keys* are, or gave when asked."""
    return keys if isinstance(keys, Sequence) else keys.given


def keys_for_bundle(keys: Keys, bundle: OuterBundle) -> Sequence[age.Identity]:
    """*keys* as given, or those a KeySource gives for the header of *bundle* (already open)."""
    if isinstance(keys, Sequence):
        return keys
    try:
        header = read_payload_header(bundle)
    except EvidenceKitError:  # a read error there: verification reports it
        header = None
    return keys.keys_for(header)
