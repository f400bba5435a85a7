"""Adding members to a finished bundle: custody events (events.py) and trusted timestamps
(evidencekit.stamping) are appended the same way. Appending never decrypts or rewrites the
payload and needs no key: the new members replace the outer tar's end-of-archive blocks, nothing
before them changes, and the whole file is replaced at once (evidencekit.fs.replace_end), so a
kill or a full disk at any instant leaves the bundle whole, with or without them.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

from evidencekit import fs
from evidencekit.errors import BundleError, EvidenceKitError, InputError, OutputError
from evidencekit.format.outer import END_OF_ARCHIVE, OuterWriter
from evidencekit.text import human_size

if TYPE_CHECKING:
    from evidencekit.verify import Report


def require_intact(report: Report) -> None:
    """Refuse to add to a bundle whose public parts do not verify: the event would vouch for it."""
    if not report.findings.ok or report.seal is None or report.payload_sha256 is None:
        first = report.findings.errors[0] if report.findings.errors else None
        where = f" ({first.where}: {first.problem})" if first else ""
        raise BundleError(f"the bundle does not verify{where}; no custody event was added",
                          hint="run 'evidencekit verify' to see every problem")


def check_appendable(bundle: Path) -> None:
    """Refuse now (OutputError) a bundle that a custody event could not be added to later
    (read-only, in a folder that cannot be written): asked before a long extract --record."""
    appendable(bundle)


def appendable(bundle: Path) -> Path:
    """The file to replace: a symbolic link's target (the link stays a link), and one that may
    be written (a bundle made read-only on purpose is not changed behind its owner's back)."""
    target = Path(os.path.realpath(bundle))
    # No write bit at all is read-only on purpose, also for root, whom os.access lets write
    # anything (a 0444 bundle was replaced by 'export --record' run as root).
    if target.exists() and (not os.access(target, os.W_OK) or
                            not target.stat().st_mode & 0o222):
        raise OutputError(f"cannot write to {bundle}: it is read-only",
                          hint="custody events are added to the bundle file itself")
    if target.exists() and not os.access(target.parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to the folder {target.parent}",
                          hint="custody events are added by replacing the bundle with a copy "
                          "that holds them, in the same folder")
    return target


def append_failed(bundle: Path, what: str, exc: OSError, space_hint: str) -> EvidenceKitError:
    """What to tell people when adding *what* ("the custody event", "the timestamp") to
    *bundle* failed on the disk (evidencekit.fs.replace_end): the bundle is as it was."""
    if isinstance(exc, fs.NotEnoughSpace):
        return OutputError(f"not enough free space next to {bundle} to add {what}: it needs "
                           f"{human_size(exc.needed)} (a copy of the bundle), "
                           f"{human_size(exc.free)} are free; the bundle was left as it was",
                           hint=space_hint)
    if isinstance(exc, FileNotFoundError):
        return InputError(f"cannot read {bundle}: it does not exist")
    return OutputError(f"could not add {what} to {bundle}: {exc.strerror or exc}; the bundle "
                       "was left as it was", hint="check free space and permissions")


def append_outer_members(bundle: Path, fd: int, members: list[tuple[str, bytes, int]]) -> None:
    """The bundle (open as *fd*, under the lock) with its end-of-archive blocks replaced by
    *members* (name, data, header mtime in seconds) and a new end: every byte before the old
    end stays as it was; the whole file is replaced at once (evidencekit.fs.replace_end)."""
    end = os.fstat(fd).st_size
    if end < len(END_OF_ARCHIVE) or \
            os.pread(fd, len(END_OF_ARCHIVE), end - len(END_OF_ARCHIVE)) != END_OF_ARCHIVE:
        raise BundleError("the bundle does not end with a tar end-of-archive marker")
    encoded = io.BytesIO()
    writer = OuterWriter(encoded)
    for name, data, mtime in members:
        writer.add_bytes(name, data, mtime)
    writer.finish()
    fs.replace_end(bundle, fd, end - len(END_OF_ARCHIVE), encoded.getvalue())
