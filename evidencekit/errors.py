"""One error hierarchy. Each error carries a message for people and the exit code the CLI uses.

The CLI catches only :class:`EvidenceKitError`; anything else is a bug and is reported as such.
"""

from __future__ import annotations


class ExitCode:
    """Documented process exit codes (README, "Exit codes")."""

    OK = 0
    EVIDENCE_PROBLEM = 1  # verification failed, bundle damaged or tampered with
    USAGE = 2  # bad arguments, unreadable input, bad key file
    CAPTURE_INCOMPLETE = 3  # bundle written, but some items were unreadable or changed
    NO_MATCHING_KEY = 4  # none of the given keys or passphrases opens the payload
    INTERNAL = 5  # a bug in evidencekit
    # verify/extract/report/custody show with --trusted-key: intact, but some custody events,
    # notes or encrypted additions are signed by keys not listed (shown by key, not counted)
    UNTRUSTED_SIGNERS = 6
    # capture --tsa / timestamp: the bundle is written and whole, but a timestamp asked for could
    # not be added (TSA unreachable or its answer refused); the command to add it is printed
    TIMESTAMP_MISSING = 7
    INTERRUPTED = 130  # Ctrl-C / SIGTERM


class EvidenceKitError(Exception):
    """Base class: ``str(err)`` is the one-line message for people; ``hint`` the next step."""

    exit_code: int = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(EvidenceKitError):
    """The command was called wrongly (missing or conflicting options)."""

    exit_code = ExitCode.USAGE


class InputError(EvidenceKitError):
    """An input file (source, key, recipient file) cannot be used."""

    exit_code = ExitCode.USAGE


class KeyFileError(InputError):
    """A key file is missing, unreadable or not a supported key."""


class PassphraseRequired(KeyFileError):
    """A passphrase is needed (for a key file or a bundle) and none could be obtained."""


class BadPassphrase(KeyFileError):
    """The passphrase given for a private key file is wrong."""


class RecipientError(InputError):
    """A recipient string or file is not an age1… or ssh-ed25519 public key."""


class BundleError(EvidenceKitError):
    """The bundle is damaged, tampered with, or not an evidencekit bundle."""

    exit_code = ExitCode.EVIDENCE_PROBLEM


class SignatureError(BundleError):
    """An SSH signature is malformed or does not verify."""


class AgeError(BundleError):
    """Base for age format problems (see evidencekit.crypto.age)."""


class AgeHeaderError(AgeError):
    """The age header is malformed (CCTV 'header failure')."""


class AgeHeaderMacError(AgeError):
    """The age header MAC does not verify (CCTV 'HMAC failure')."""


class AgePayloadError(AgeError):
    """The age payload is truncated, tampered with or malformed (CCTV 'payload failure')."""


class AgeArmorError(AgeError):
    """The ASCII armor around an age file is malformed (CCTV 'armor failure')."""


class NoMatchingKey(EvidenceKitError):
    """None of the identities or passphrases given can open the payload (CCTV 'no match')."""

    exit_code = ExitCode.NO_MATCHING_KEY

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or (
            "the key or passphrase did not match: try again (check for typing mistakes), or ask "
            "the person who made the bundle which key or passphrase it was made for"))


class OutputError(EvidenceKitError):
    """The output cannot be written (exists, unwritable directory, disk full)."""

    exit_code = ExitCode.USAGE


class StoreError(EvidenceKitError):
    """An evidence store (S3) cannot be reached, refuses the credentials or the request, or
    lacks the protection asked for; nothing was stored or fetched."""

    exit_code = ExitCode.USAGE


class Interrupted(EvidenceKitError):
    """The user interrupted the work (Ctrl-C or SIGTERM)."""

    exit_code = ExitCode.INTERRUPTED


class RemoteError(EvidenceKitError):
    """A remote capture (capture --remote) could not be made: the host could not be reached or
    its host key is not the one pinned, or the capture there failed or was cut off; nothing
    that looks like a bundle was kept. *exit_code* is the remote evidencekit's own when it
    failed there (its message is passed on)."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None,
                 exit_code: int | None = None) -> None:
        super().__init__(message, hint=hint)
        if exit_code is not None:
            self.exit_code = exit_code
