"""Capture: walk the sources once, hash and stream every file into a signed, encrypted bundle.

One read of each file feeds SHA-256, libmagic (first block only) and the payload tar. The payload
tar is encrypted (age) and hashed on a second thread while the next buffer is read and hashed.
The bundle is written under a temporary name in the output's directory and only linked to its
final name once complete and flushed to disk, so an interrupted capture never leaves a file that
looks like a bundle.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import tempfile
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from evidencekit import __version__, canonical, identify, records
from evidencekit import incident as incident_record
from evidencekit.clock import Clock, clock_source, rfc3339, system_clock
from evidencekit.crypto import age, sshsig
from evidencekit.crypto.keys import SigningKey
from evidencekit.errors import OutputError, UsageError
from evidencekit.format import bag
from evidencekit.format.documents import (
    FORMAT_VERSION,
    MANIFEST_TYPE,
    PAYLOAD,
    README,
    SEAL,
    SEAL_SIG,
    CustodyEvent,
    Seal,
    Signer,
    custody_member,
)
from evidencekit.format.inner import InnerTarWriter
from evidencekit.format.outer import OuterWriter
from evidencekit.hostinfo import host_name, operating_system, tool_versions, user_name
from evidencekit.pipeline import BackgroundWriter
from evidencekit.progress import NoProgress, Progress
from evidencekit.walk import Entry, Source, resolve_sources, walk

CHUNK = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_NOATIME = getattr(os, "O_NOATIME", 0)


@dataclass(frozen=True)
class CaseInfo:
    case_id: str
    examiner: str
    description: str = ""
    legal_basis: str = ""
    organisation: str = ""


@dataclass
class CaptureRequest:
    sources: list[bytes]
    output: Path
    case: CaseInfo
    recipients: Sequence[age.Recipient]
    signing_key: SigningKey
    command_line: list[str]
    clock: Clock = system_clock
    random: age.RandomSource = os.urandom
    progress: Progress = field(default_factory=NoProgress)
    incident: bytes | None = None  # bag/evidencekit/incident.json (evidencekit.incident)
    # Files never to capture (e.g. the private signing key, should it lie inside a source).
    exclude_paths: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Problem:
    path: str
    problem: str


@dataclass
class CaptureResult:
    output: Path
    seal: Seal
    seal_sha256: str
    event_sha256: str
    problems: list[Problem]
    warnings: list[str]


@dataclass
class _Tally:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("files", "directories", "symlinks", "special", "errors", "changed", "skipped"), 0))
    total_bytes: int = 0
    problems: list[Problem] = field(default_factory=list)
    manifest_lines: list[bytes] = field(default_factory=list)
    entries: list[bytes] = field(default_factory=list)  # canonical JSON of each record

    def problem(self, record: dict[str, Any], text: str) -> None:
        path = record.get("path") or records.bytes_from_field(record, "path").decode(
            "utf-8", "backslashreplace")
        self.problems.append(Problem(str(path), text))


def capture(request: CaptureRequest) -> CaptureResult:
    """Make the bundle described by *request*; raise EvidenceKitError on failure (nothing left)."""
    _check_case_id(request.case.case_id)
    sources = resolve_sources(request.sources)
    _check_output(request.output)
    if request.incident is not None:
        incident_record.check_record(request.incident)  # refuse a malformed record early
    started = request.clock()
    fd, temp_name = tempfile.mkstemp(prefix=f".{request.output.name}.", suffix=".partial",
                                     dir=request.output.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w+b") as out:
            skip = {(os.fstat(out.fileno()).st_dev, os.fstat(out.fileno()).st_ino)}
            skip.update(_identities_of(request.exclude_paths))
            result = _write_bundle(request, sources, out, started, skip)
            out.flush()
            os.fsync(out.fileno())
        _publish(temp, request.output)
        return result
    except OSError as exc:
        raise OutputError(f"could not write {request.output}: {exc.strerror or exc}",
                          hint="check free space and permissions; nothing was left behind") from exc
    finally:
        with suppress(FileNotFoundError):
            temp.unlink()


def _check_case_id(case_id: str) -> None:
    """A case id is matched exactly later (receipts, reports): no hidden spaces or controls."""
    if not case_id or case_id != case_id.strip() or not case_id.isprintable():
        raise UsageError(f"the case id {case_id!r} is empty, starts or ends with spaces, or holds "
                         "control characters", hint="use e.g. --case FRAUD-2026-0117")


def _identities_of(paths: tuple[Path, ...]) -> set[tuple[int, int]]:
    found = set()
    for path in paths:
        with suppress(OSError):
            info = os.stat(path)
            found.add((info.st_dev, info.st_ino))
    return found


def _check_output(output: Path) -> None:
    if output.exists() or output.is_symlink():
        raise OutputError(f"{output} already exists; evidencekit never overwrites a bundle",
                          hint="choose another name with -o")
    if not output.parent.is_dir():
        raise OutputError(f"the folder {output.parent} does not exist")
    if not os.access(output.parent, os.W_OK):
        raise OutputError(f"cannot write to the folder {output.parent}",
                          hint="choose a folder you can write to with -o")


def _publish(temp: Path, output: Path) -> None:
    """Give the finished bundle its name without ever replacing an existing file."""
    try:
        os.link(temp, output)
    except FileExistsError:
        raise OutputError(f"{output} appeared while capturing; the bundle was not saved") from None
    dir_fd = os.open(output.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _write_bundle(request: CaptureRequest, sources: list[Source], out: BinaryIO, started: int,
                  skip: set[tuple[int, int]]) -> CaptureResult:
    outer = OuterWriter(out)
    mtime = started // 1_000_000_000
    readme = readme_text(request.case.case_id, rfc3339(started)).encode("utf-8")
    outer.add_bytes(README, readme, mtime)
    tally = _Tally()
    if getattr(request.progress, "wants_totals", False):
        total_files, total_bytes = scan_totals(sources, skip)
        request.progress.start("Capturing", total_files, total_bytes)
    else:
        request.progress.start("Capturing", None, None)
    with outer.add_stream(PAYLOAD, mtime) as payload_sink:
        encryptor = age.AgeWriter(cast(BinaryIO, payload_sink), request.recipients,
                                  random=request.random)
        background = BackgroundWriter(encryptor)
        try:
            inner = InnerTarWriter(background)
            manifest_json, root = _write_bag(request, sources, inner, tally, started, skip)
            background.close()
        except BaseException:
            background.abort()
            raise
        encryptor.close()
    request.progress.finish()
    finished = request.clock()
    seal = Seal(
        case_id=request.case.case_id, created=rfc3339(finished), capture_started=rfc3339(started),
        readme_sha256=_sha256(readme), payload_size=payload_sink.size,
        payload_sha256=payload_sink.hexdigest(), manifest_root=root,
        manifest_sha256=_sha256(manifest_json), counts=tally.counts,
        total_bytes=tally.total_bytes,
        complete=tally.counts["errors"] == 0 and tally.counts["changed"] == 0,
        signer=_signer(request.signing_key), tool_version=__version__,
    )
    seal_json = seal.to_json()
    seal_mtime = finished // 1_000_000_000
    outer.add_bytes(SEAL, seal_json, seal_mtime)
    outer.add_bytes(SEAL_SIG, sshsig.sign(request.signing_key, seal_json), seal_mtime)
    event = first_event(request, seal, _sha256(seal_json), finished)
    event_json = event.to_json()
    outer.add_bytes(custody_member(1), event_json, seal_mtime)
    outer.add_bytes(custody_member(1) + ".sig", sshsig.sign(request.signing_key, event_json),
                    seal_mtime)
    outer.finish()
    warnings = [w for w in [identify.unavailable_reason()] if w]
    return CaptureResult(request.output, seal, _sha256(seal_json), _sha256(event_json),
                         tally.problems, warnings)


def _signer(key: SigningKey) -> Signer:
    public = key.public
    return Signer(_line_without_comment(public.openssh_line()), public.fingerprint)


def _line_without_comment(line: str) -> str:
    return " ".join(line.split()[:2])


def first_event(request: CaptureRequest, seal: Seal, seal_sha256: str, now: int) -> CustodyEvent:
    return CustodyEvent(
        case_id=seal.case_id, sequence=1, action="captured", time=rfc3339(now),
        clock_source=clock_source(), actor_name=request.case.examiner,
        actor=_signer(request.signing_key), host=host_name(),
        note=request.case.description, payload_sha256=seal.payload_sha256,
        previous_sha256=seal_sha256,
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def scan_totals(sources: list[Source], skip: set[tuple[int, int]]) -> tuple[int, int]:
    """Count files and bytes for the progress bar (metadata only; content is read once, later)."""
    files = size = 0
    for entry in walk(sources, skip):
        if entry.kind == "file" and entry.lstat is not None and entry.error is None:
            files += 1
            size += entry.lstat.st_size
    return files, size


def _write_bag(request: CaptureRequest, sources: list[Source], inner: InnerTarWriter,
               tally: _Tally, started: int, skip: set[tuple[int, int]]) -> tuple[bytes, str]:
    """Write the whole bag into *inner*; return the signed manifest JSON and the root hash."""
    tag_digests: list[bytes] = []

    def tag(name: str, data: bytes) -> None:
        inner.add_bytes(name, data, started)
        tag_digests.append(bag.manifest_line(_sha256(data), name))

    tag(bag.BAGIT, bag.BAGIT_TXT)
    for entry in walk(sources, skip):
        _capture_entry(entry, inner, tally, request.progress)
    manifest = b"".join(tally.manifest_lines)
    root = _sha256(manifest)
    tag(bag.MANIFEST, manifest)
    tag(bag.BAG_INFO, _bag_info(request.case, tally, started))
    if request.incident is not None:
        tag(bag.EK_INCIDENT, request.incident)
    manifest_json = _manifest_json(request, sources, tally, started, root)
    tag(bag.EK_MANIFEST, manifest_json)
    tag(bag.EK_MANIFEST_SIG, sshsig.sign(request.signing_key, manifest_json))
    inner.add_bytes(bag.TAGMANIFEST, b"".join(tag_digests), started)
    inner.finish()
    return manifest_json, root


def _bag_info(case: CaseInfo, tally: _Tally, started: int) -> bytes:
    fields = [
        ("Bag-Software-Agent", f"evidencekit {__version__}"),
        ("Bagging-Date", rfc3339(started)[:10]),
        ("External-Identifier", case.case_id),
        ("Contact-Name", case.examiner),
        ("Payload-Oxum", f"{tally.total_bytes}.{tally.counts['files']}"),
    ]
    if case.organisation:
        fields.insert(0, ("Source-Organization", case.organisation))
    if case.description:
        fields.append(("External-Description", case.description))
    return bag.bag_info(fields)


def _manifest_json(request: CaptureRequest, sources: list[Source], tally: _Tally, started: int,
                   root: str) -> bytes:
    """The signed evidencekit manifest. Entries are pre-encoded to keep memory small."""
    head: dict[str, Any] = {
        "type": MANIFEST_TYPE,
        "format_version": FORMAT_VERSION,
        "case": {"case_id": request.case.case_id, "examiner": request.case.examiner,
                 "description": request.case.description,
                 "legal_basis": request.case.legal_basis,
                 "organisation": request.case.organisation},
        "capture": {"started": rfc3339(started), "finished": rfc3339(request.clock()),
                    "clock_source": clock_source(), "host": host_name(), "user": user_name(),
                    "os": operating_system(), "command_line": request.command_line,
                    "tools": tool_versions(), "cwd": os.getcwd(),
                    "python_executable": sys.executable},
        "sources": [_source_record(s) for s in sources],
        "incident_sha256": None if request.incident is None else _sha256(request.incident),
        "summary": {"counts": tally.counts, "total_bytes": tally.total_bytes,
                    "manifest_root": root},
        "entries": [],
    }
    encoded = canonical.dumps(head)
    # Splice the pre-encoded entries into the (sorted, canonical) "entries" list.
    prefix, suffix = encoded.split(b'"entries":[]', 1)
    return prefix + b'"entries":[' + b",".join(tally.entries) + b"]" + suffix


def _source_record(source: Source) -> dict[str, Any]:
    record: dict[str, Any] = {"index": source.index, "bag_name": source.bag_name,
                              "via_symlink": source.via_symlink}
    record.update(records.bytes_field("given", source.given))
    record.update(records.bytes_field("path", source.path))
    return record


def _capture_entry(entry: Entry, inner: InnerTarWriter, tally: _Tally, progress: Progress) -> None:
    if entry.kind == "file" and entry.error is None:
        record = _capture_file(entry, inner, tally, progress)
    else:
        record = records.special_record(entry)
        if entry.kind == "directory" and entry.lstat is not None and entry.error is None:
            tally.counts["directories"] += 1
            inner.add_directory(entry.bag_path, entry.lstat)
            record["xattrs"] = records.read_xattrs(entry)
            if entry.children_error:
                record["error"] = entry.children_error
        elif entry.kind == "symlink":
            tally.counts["symlinks"] += 1
        elif entry.kind not in ("file", "directory", "unknown"):
            tally.counts["special"] += 1
    if record.get("error"):
        key = "skipped" if str(record["error"]).startswith("skipped") else "errors"
        tally.counts[key] += 1
        tally.problem(record, str(record["error"]))
    tally.entries.append(canonical.dumps(record).rstrip(b"\n"))


def _open_readonly(entry: Entry) -> int:
    """Open without following links, without blocking, and without touching the access time."""
    try:
        return os.open(entry.name, _OPEN_FLAGS | _NOATIME, dir_fd=entry.dir_fd)
    except PermissionError:
        if not _NOATIME:
            raise
        # O_NOATIME is refused for files we do not own; open plainly (atime may then change on
        # file systems mounted strictatime; recorded as a limitation in docs/FORMAT.md).
        return os.open(entry.name, _OPEN_FLAGS, dir_fd=entry.dir_fd)


def _capture_file(entry: Entry, inner: InnerTarWriter, tally: _Tally,
                  progress: Progress) -> dict[str, Any]:
    record = records.base_record(entry)
    assert entry.lstat is not None
    try:
        fd = _open_readonly(entry)
    except OSError as exc:
        record["error"] = f"could not open: {exc.strerror or exc}"
        progress.advance(files=1, nbytes=entry.lstat.st_size)
        return record
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode) or before.st_ino != entry.lstat.st_ino:
            record["error"] = "replaced by something else between listing and opening"
            return record
        record.update(records.stat_fields(before, entry))
        record["size"] = before.st_size  # what is stored, even if it changed since the listing
        record["xattrs"] = records.read_xattrs(entry, fd)
        _stream_file(fd, before, entry, inner, record, tally, progress)
    finally:
        os.close(fd)
    return record


def _stream_file(fd: int, before: os.stat_result, entry: Entry, inner: InnerTarWriter,
                 record: dict[str, Any], tally: _Tally, progress: Progress) -> None:
    size = before.st_size
    with suppress(OSError, AttributeError):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    inner.begin_file(entry.bag_path, size, before)
    digest = hashlib.sha256()
    changes: list[str] = []
    left = size
    first = b""
    while left:
        try:
            chunk = os.read(fd, min(CHUNK, left))
        except OSError as exc:
            record["error"] = (f"read error at byte {size - left}: {exc.strerror}; the remaining "
                               f"{left} bytes are stored as zeros")
            chunk = b""
        if not chunk:
            if "error" not in record or record["error"] is None:
                changes.append(f"file shrank while being read: only {size - left} of {size} bytes "
                               "could be read; the rest is stored as zeros")
            _zero_fill(left, digest, inner, progress)
            break
        if not first:
            first = chunk
        digest.update(chunk)
        inner.write(chunk)
        left -= len(chunk)
        progress.advance(nbytes=len(chunk))
    inner.end_file(size)
    _check_unchanged(fd, before, changes)
    record["mime"] = identify.mime_type(first)
    record["sha256"] = digest.hexdigest()
    record["changed_during_read"] = bool(changes)
    record["changes"] = changes
    tally.counts["files"] += 1
    tally.total_bytes += size
    tally.manifest_lines.append(bag.manifest_line(record["sha256"], entry.bag_path))
    if changes:
        tally.counts["changed"] += 1
        tally.problem(record, "; ".join(changes))
    progress.advance(files=1)


def _zero_fill(count: int, digest: Any, inner: InnerTarWriter, progress: Progress) -> None:
    while count:
        block = bytes(min(CHUNK, count))
        digest.update(block)
        inner.write(block)
        count -= len(block)
        progress.advance(nbytes=len(block))


def _check_unchanged(fd: int, before: os.stat_result, changes: list[str]) -> None:
    """Compare the file's state after reading with before; note every difference."""
    try:
        grew = bool(os.pread(fd, 1, before.st_size))
    except OSError:
        grew = False
    after = os.fstat(fd)
    if grew or after.st_size > before.st_size:
        changes.append(f"file grew while being read (from {before.st_size} to {after.st_size} "
                       f"bytes); the first {before.st_size} bytes are stored")
    elif after.st_size < before.st_size and not changes:
        changes.append(f"file shrank while being read (from {before.st_size} to "
                       f"{after.st_size} bytes)")
    if after.st_mtime_ns != before.st_mtime_ns:
        changes.append(f"modification time changed while being read ({rfc3339(before.st_mtime_ns)}"
                       f" → {rfc3339(after.st_mtime_ns)})")
    elif after.st_ctime_ns != before.st_ctime_ns:
        changes.append("status change time changed while being read")


def readme_text(case_id: str, created: str) -> str:
    return f"""This file is an evidencekit evidence bundle.

Case: {case_id}
Sealed from: {created}

It is a tar archive. It holds:
  payload.age         the evidence, encrypted with age (https://age-encryption.org)
  seal.json           public facts about the evidence: sizes, hashes, who sealed it
  seal.json.sig       the sealer's SSH signature over seal.json
  custody/*.json      the chain-of-custody log, each event signed (.sig)

Do not change, rename or re-pack this file: any change makes it fail verification.

To check it:   evidencekit verify BUNDLE            (no key needed)
To open it:    evidencekit extract BUNDLE -i KEY -o FOLDER
Without evidencekit: see "Verifying by hand" in evidencekit's docs/FORMAT.md
(tar, ssh-keygen -Y check-novalidate -n evidencekit, sha256sum, age -d).
Format: evidencekit bundle format version {FORMAT_VERSION}.
"""


