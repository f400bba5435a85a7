"""The request a capture of files is sealed from, built one way for the command line
(cmd_capture) and the guided session (guided.make_bundle): the paths resolved once, the signing
key that may be made on first use (never inside them), then the :class:`CaptureRequest`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from evidencekit.capture import CaptureRequest, CaseInfo
from evidencekit.cli.app import resolve_signing_key
from evidencekit.cli.keyring import default_signing_key_path
from evidencekit.cli.secrets import recorded_command_line
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.progress import Progress
from evidencekit.sources.base import Source as EvidenceSource
from evidencekit.sources.files.selection import Filters
from evidencekit.sources.files.source import sources_of
from evidencekit.sources.files.walk import Source

if TYPE_CHECKING:  # a package whose __init__ imports custody and verify, which capture needs not
    from evidencekit.deliver.target import StreamTarget


@dataclass(frozen=True)
class Chosen:
    """The files and folders asked for, resolved once (:func:`chosen`): the checks made before
    the capture (where the output goes, where a new signing key would go) and the capture itself
    walk the same roots."""

    paths: list[bytes]
    roots: list[Source]
    # what a profile found but could not reach, and what its patterns found (sources_of)
    unreachable: Sequence[tuple[bytes, str]] = ()
    found_by_profile: Mapping[bytes, bytes] = field(default_factory=dict)


def chosen(paths: Sequence[bytes], unreachable: Sequence[tuple[bytes, str]] = (),
           found_by_profile: Mapping[bytes, bytes] | None = None) -> Chosen:
    """*paths* resolved; InputError for one that does not exist (or no longer does, when it
    was chosen in the guided session's questions): refused, never silently left out."""
    found = dict(found_by_profile or {})
    return Chosen(list(paths), sources_of(paths, unreachable, found), unreachable, found)


def signing_key_for(files: Chosen, sign_key: Path | None, passphrase_file: Path | None,
                    quiet: bool) -> SigningKey:
    """The key that signs the capture: *sign_key*, else the personal key, made now on first
    use unless it would be written into one of the files' roots."""
    return resolve_signing_key(sign_key, passphrase_file, quiet, files.roots, may_create=True)


def capture_request(files: Chosen, output: Path, case: CaseInfo,
                    recipients: Sequence[age.Recipient], signing: SigningKey,
                    sign_key: Path | None, *, progress: Progress, incident: bytes | None,
                    more_sources: Sequence[EvidenceSource] = (), filters: Filters | None = None,
                    profile: dict[str, str] | None = None,
                    stream_to: StreamTarget | None = None) -> CaptureRequest:
    """The request for a capture of *files* (already resolved: capture does not resolve them
    again) and *more_sources*, as this command line records it; the signing key's file is never
    captured, should it lie inside a source."""
    return CaptureRequest(files.paths, output, case, recipients, signing,
                          command_line=recorded_command_line(), progress=progress,
                          filters=filters, unreachable=files.unreachable, profile=profile,
                          found_by_profile=files.found_by_profile, roots=files.roots,
                          exclude_paths=(sign_key or default_signing_key_path(),),
                          incident=incident, more_sources=more_sources, stream_to=stream_to)
