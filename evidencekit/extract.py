"""Extract: verify while writing into a fresh staging folder; publish it only if all checks pass.

Files are written with O_EXCL | O_NOFOLLOW under names already checked to stay inside ``bag/``;
symbolic links (from the signed manifest, never from the tar) are created last and only when they
point inside the output; original non-UTF-8 names, modes (without set-id bits) and times are then
restored. On any failed check the staging folder is deleted (or kept as ``OUT.UNTRUSTED`` on
request), so nothing unverified is ever presented under the requested name.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evidencekit.clock import parse_rfc3339
from evidencekit.crypto import age
from evidencekit.crypto.keys import PublicKey
from evidencekit.errors import OutputError
from evidencekit.progress import Progress
from evidencekit.records import bytes_from_field
from evidencekit.verify import Report, verify

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class ExtractResult:
    report: Report
    output: Path | None  # None when nothing was published
    untrusted: Path | None = None
    files: int = 0
    symlinks: int = 0
    skipped_links: list[str] = field(default_factory=list)
    renamed: int = 0


class _Writer:
    """Payload visitor that writes the bag into the staging folder as it streams by."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = 0

    def directory(self, name: str, member: tarfile.TarInfo) -> None:
        os.makedirs(self.root / name, mode=0o700, exist_ok=True)

    def file(self, name: str, member: tarfile.TarInfo, chunks: Iterator[bytes]) -> None:
        target = self.root / name
        os.makedirs(target.parent, mode=0o700, exist_ok=True)
        fd = os.open(target, _CREATE, 0o600)
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        self.files += 1


def extract(bundle: Path, output: Path, identities: Sequence[age.Identity],
            trusted_keys: Sequence[PublicKey] = (), keep_untrusted: bool = False,
            progress: Progress | None = None, as_stored: bool = False) -> ExtractResult:
    """Verify *bundle* while extracting it into the new folder *output*.

    By default the original tree is restored (non-UTF-8 names, symbolic links inside the tree);
    with *as_stored* the bag is left exactly as stored, which is always a valid BagIt bag.
    """
    if output.exists() or output.is_symlink():
        raise OutputError(f"{output} already exists; extract writes into a new folder only",
                          hint="choose another folder with -o")
    parent = output.absolute().parent
    if not parent.is_dir():
        raise OutputError(f"the folder {parent} does not exist")
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".partial", dir=parent))
    try:
        writer = _Writer(staging / "bag")
        os.mkdir(writer.root, 0o700)
        report = verify(bundle, identities, trusted_keys, visitor=writer, progress=progress)
        if not report.ok or not report.decrypted or report.manifest is None:
            return _discard(staging, output, report, keep_untrusted)
        result = ExtractResult(report, output, files=writer.files)
        _write_tag_files(writer.root, report)
        _finish_tree(writer.root, report.manifest, result, restore=not as_stored)
        if output.exists():
            raise OutputError(f"{output} appeared while extracting; nothing was written there")
        os.rename(writer.root, output)
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _discard(staging: Path, output: Path, report: Report, keep: bool) -> ExtractResult:
    if keep and report.decrypted:
        untrusted = output.with_name(output.name + ".UNTRUSTED")
        if not untrusted.exists():
            os.rename(staging / "bag", untrusted)
            return ExtractResult(report, None, untrusted=untrusted)
    return ExtractResult(report, None)


def _write_tag_files(root: Path, report: Report) -> None:
    for name, data in (report.tag_files or {}).items():
        target = root / name
        os.makedirs(target.parent, mode=0o700, exist_ok=True)
        with os.fdopen(os.open(target, _CREATE, 0o644), "wb") as out:
            out.write(data)


def _finish_tree(root: Path, manifest: dict[str, Any], result: ExtractResult,
                 restore: bool) -> None:
    """Links, original names, modes and times, deepest first so parents keep their times."""
    entries = sorted(manifest["entries"], key=lambda e: e["bag_path"].count("/"), reverse=True)
    for entry in entries:
        if restore and entry.get("kind") == "symlink" and (
                "target" in entry or "target_b64" in entry):
            _make_link(root, entry, result)
    for entry in entries:
        path = root / entry["bag_path"]
        if not os.path.lexists(path):
            continue
        _restore_metadata(path, entry)
        original = os.path.basename(bytes_from_field(entry, "path"))
        if restore and os.fsencode(path.name) != original:
            os.rename(path, os.path.join(os.fsencode(path.parent), original))
            result.renamed += 1


def _make_link(root: Path, entry: dict[str, Any], result: ExtractResult) -> None:
    link = root / entry["bag_path"]
    target = bytes_from_field(entry, "target")
    resolved = os.path.normpath(os.path.join(os.fsencode(link.parent), target))
    if target.startswith(b"/") or not resolved.startswith(os.fsencode(root) + b"/"):
        result.skipped_links.append(f"{entry['bag_path']} -> {os.fsdecode(target)}")
        return
    os.symlink(target, link)
    result.symlinks += 1


def _restore_metadata(path: Path, entry: dict[str, Any]) -> None:
    try:
        if entry.get("kind") != "symlink" and isinstance(entry.get("mode"), int):
            # Never recreate set-user-ID, set-group-ID or sticky bits from a bundle.
            os.chmod(path, entry["mode"] & 0o777, follow_symlinks=False)
        if "mtime" in entry and "atime" in entry:
            os.utime(path, ns=(parse_rfc3339(entry["atime"]), parse_rfc3339(entry["mtime"])),
                     follow_symlinks=False)
    except (OSError, ValueError, NotImplementedError):
        pass  # metadata is best effort; the content has been verified

