"""A local file as a destination: a copy of the bundle published with evidencekit.fs (never over
another file, never half-written), read back and compared before it gets its name."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import BinaryIO

from evidencekit import fs
from evidencekit.deliver.base import BundleFacts, Delivery
from evidencekit.errors import BundleError, EvidenceKitError, InputError, OutputError
from evidencekit.progress import Progress

_CHUNK = 1 << 20


class LocalFile:
    """Deliver to the file *path* (or into the folder *path*, under the bundle's own name)."""

    def __init__(self, path: Path, folder: bool = False) -> None:
        self.path = path
        self.folder = folder  # typed with a trailing "/": a folder, never a file of that name

    def target(self, bundle: Path) -> Path:
        try:
            is_folder = self.path.is_dir()
        except OSError as exc:  # a name too long, a folder not ours to enter: not exit 5
            raise OutputError(f"cannot use {self.path}: {exc.strerror or exc}; nothing was "
                              "copied") from None
        if self.folder and not is_folder:
            # (it made a file named as the folder: 'store put B copies/' wrote 'copies')
            raise OutputError(f"the folder {self.path}/ does not exist; nothing was copied",
                              hint="make it first, or name the copy's file")
        # absolute: the custody event is read later, elsewhere, where a relative path names
        # nothing
        return (self.path / bundle.name if is_folder else self.path).absolute()

    def deliver(self, bundle: Path, facts: BundleFacts, progress: Progress) -> Delivery:
        target = self.target(bundle)
        if _same_file(bundle, target):
            # it verifies as this bundle, and was taken for an earlier copy: a 'transferred'
            # event recorded a copy that does not exist
            raise OutputError(f"{target} is the bundle itself, not a copy; nothing was copied",
                              hint="name another file or folder for the copy")
        if os.path.lexists(target):
            earlier = _recorded_copy(target, facts)  # a retry after success: hashed, not verified again
            if earlier is not None:
                return earlier
            return self._found(target, facts, progress)
        try:
            with bundle.open("rb") as source, fs.staged(target, 0o400) as stage:
                digest, size = _copy(source, stage.file, progress)
                stage.file.flush()
                stage.file.seek(0)
                if _sha256_of(stage.file) != digest:
                    raise BundleError(f"the copy at {target} differs from {bundle} when read "
                                      "back; it was not kept", hint="check the disk")
                if facts.changed_since_verified(bundle):
                    raise BundleError(f"{bundle} changed while it was being verified or "
                                      f"copied; nothing was left at {target}",
                                      hint="let whatever writes to it finish, then try again")
        except FileExistsError:
            raise OutputError(f"{target} appeared while copying; nothing was copied") from None
        except FileNotFoundError:
            raise InputError(f"cannot read {bundle}: it does not exist") from None
        except OSError as exc:
            raise OutputError(f"could not copy {bundle} to {target}: {exc.strerror or exc}; "
                              "nothing was left there") from None
        return _delivery(target, digest, size, facts)

    def _found(self, target: Path, facts: BundleFacts, progress: Progress) -> Delivery:
        """A file at *target* already: an earlier copy of this bundle (a 'store put' whose
        recording failed or was interrupted: its error says to run it again, which then said
        'exists; nothing was copied' and never recorded it) when it verifies as this bundle as
        it is or was; anything else is left alone and refused (OutputError)."""
        from evidencekit.verify import verify

        if not target.is_file() or target.is_symlink():
            why_not: str | None = "it is not a file"
        else:
            try:
                why_not = facts.why_not_a_copy(verify(target, progress=progress))
            except EvidenceKitError as exc:  # (not a bundle at all)
                why_not = exc.message
        if why_not is not None:
            raise OutputError(f"{target} exists and is not a copy of this bundle ({why_not}); "
                              "nothing was copied", hint="choose another name or folder")
        with target.open("rb") as copy:
            digest, size = _sha256_of(copy), target.stat().st_size
        return _delivery(target, digest, size, facts, already_there=True)


def _same_file(bundle: Path, target: Path) -> bool:
    """Whether *target* is *bundle* (the same path, a link, another name of it)."""
    try:
        return os.path.samefile(bundle, target)
    except OSError:  # (nothing there yet)
        return False


def _delivery(target: Path, digest: str, size: int, facts: BundleFacts,
              already_there: bool = False) -> Delivery:
    return Delivery(str(target), f"a copy at {target}",
                    {"destination": "file", "path": str(target), "sha256": digest,
                     "size": str(size), "payload_sha256": facts.payload_sha256}, already_there)


def _recorded_copy(target: Path, facts: BundleFacts) -> Delivery | None:
    """A retry of a delivery that succeeded, as a store's retry finds its object: the bundle's
    own signed log has a 'transferred' event naming this very file, and the file still has the
    SHA-256 recorded there (a retry was refused: 'exists; nothing was copied')."""
    recorded = [details for details in (_details(event) for event in facts.custody)
                if details.get("destination") == "file" and details.get("path") == str(target)
                and details.get("payload_sha256") == facts.payload_sha256]
    if not recorded or not target.is_file() or target.is_symlink():
        return None  # (a named pipe there, opened to be hashed, held the put forever)
    try:
        with target.open("rb") as f:
            digest = _sha256_of(f)
    except OSError:
        return None
    for details in recorded:
        if details.get("sha256") == digest:
            return Delivery(str(target), f"a copy at {target}", dict(details),
                            already_there=True)
    return None


def _details(event: bytes) -> dict[str, str]:
    details = json.loads(event).get("details")
    return details if isinstance(details, dict) else {}


def _copy(source: BinaryIO, out: BinaryIO, progress: Progress) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    progress.start("Copying", None, None)
    while block := source.read(_CHUNK):
        digest.update(block)
        out.write(block)
        size += len(block)
        progress.advance(nbytes=len(block))
    progress.finish()
    return digest.hexdigest(), size


def _sha256_of(f: BinaryIO) -> str:
    digest = hashlib.sha256()
    while block := f.read(_CHUNK):
        digest.update(block)
    return digest.hexdigest()
