"""Capture: read every source once (evidencekit.sources), hash and stream it into a signed,
encrypted bundle.

One read of each file feeds SHA-256, libmagic (first block only) and the payload tar. The payload
tar is encrypted (age) and hashed on a second thread while the next buffer is read and hashed.
The bundle is written under a temporary name in the output's directory and only linked to its
final name once complete and flushed to disk, so an interrupted capture never leaves a file that
looks like a bundle.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import os
import stat
import sys
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from evidencekit import __version__, fs, identify, publictext
from evidencekit import incident as incident_record
from evidencekit.clock import Clock, clock_source, rfc3339, system_clock
from evidencekit.crypto import age, sshsig
from evidencekit.crypto.keys import SigningKey
from evidencekit.errors import OutputError, UsageError
from evidencekit.format import bag
from evidencekit.format.compression import ZSTD
from evidencekit.format.documents import (
    COMPRESSED_VERSION,
    FORMAT_VERSION,
    PAYLOAD,
    README,
    SEAL,
    SEAL_SIG,
    CustodyEvent,
    Seal,
    Signer,
    custody_member,
)
from evidencekit.format.entries import ManifestEntry, Stored
from evidencekit.format.inner import InnerTarWriter
from evidencekit.format.layers import PayloadLayers
from evidencekit.format.manifest import ManifestHead, ManifestWriter
from evidencekit.format.outer import OuterWriter
from evidencekit.format.tree import STREAM_MODE
from evidencekit.fs.direct import DiskWriter
from evidencekit.hostinfo import host_name, operating_system, tool_versions, user_name
from evidencekit.pipeline import BackgroundWriter
from evidencekit.progress import NoProgress, Progress, Throttled, throttled
from evidencekit.sources import FileSource, PartlyRead, Skip, StreamEntry, WholeOrNothing
from evidencekit.sources import Source as EvidenceSource  # walk.Source: one root of FileSource
from evidencekit.sources.files import records
from evidencekit.sources.files.selection import Filters
from evidencekit.sources.files.source import Replaced, open_regular, repeat_warnings, scan_totals, sources_of
from evidencekit.sources.files.walk import (
    Entry,
    Source,
    source_reaching,
)
from evidencekit.spool import Spool
from evidencekit.text import human_size

if TYPE_CHECKING:  # a package whose __init__ imports custody and verify, which capture needs not
    from evidencekit.deliver.target import StreamTarget

CHUNK = 1 << 20
_MAX_PENDING = 1024  # records waiting for libmagic
_MAX_PENDING_BYTES = 32 << 20  # and the first blocks they hold
DISK_QUEUE = 8  # blocks of 1 MiB queued for the thread that writes the bundle


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
    # Which files' content to read (a profile's include/exclude/limits); the others are recorded
    # as skipped, with the reason.
    filters: Filters | None = None
    # Sources (among ``sources``) a profile named but the system refused to look up, e.g. behind
    # a folder that may not be searched: (path, what went wrong). Each is recorded as a source
    # whose one entry holds the error, so the capture is incomplete rather than silently smaller.
    unreachable: Sequence[tuple[bytes, str]] = ()
    # The profile used, if any: name, origin, sha256 (manifest.json capture.profile).
    profile: dict[str, str] | None = None
    # Sources (among ``sources``) that a profile's patterns found rather than the user named,
    # each with the leading folders its pattern names: a symbolic link is followed only there,
    # and a source that is a link is recorded as the link (walk.resolve_sources).
    found_by_profile: Mapping[bytes, bytes] = field(default_factory=dict)
    # ``sources`` as the caller resolved them with the three fields above (sources_of), for
    # checks of its own before the capture (cmd_capture: the output, a new signing key), so that
    # they are resolved once; None: capture resolves them.
    roots: Sequence[Source] | None = None
    # Evidence other than files, captured after them (evidencekit.sources: e.g. StdinSource).
    more_sources: Sequence[EvidenceSource] = ()
    # Where the bundle goes instead of the file *output* (deliver.s3.S3Capture: straight to a
    # store, nothing on local disk); its public details join the first custody event's.
    stream_to: StreamTarget | None = None


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
    location: str = ""  # where it went, when not the file *output* (s3://BUCKET/KEY)


class _OutputRoom:
    """The free space left where the bundle is being written, asked before each large file.

    The bag stores a file's full logical size (a sparse file's holes as zeros, FORMAT.md §8), so
    a 16 TiB sparse file holding a few kilobytes would fill the disk and end the whole capture
    in "disk full". A file that cannot fit is skipped instead, with the reason in the manifest,
    and the rest of the evidence is still captured (the capture is then incomplete: an error,
    exit 3, not a skip by rule).
    """

    CHECK_FROM = 64 << 20  # smaller files are left to the disk-full handling
    MARGIN = 16 << 20  # for the headers, the manifest and age's 16 bytes per 64 KiB

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def refusal(self, info: os.stat_result) -> str | None:
        size = info.st_size
        if size < self.CHECK_FROM:
            return None
        try:
            found = os.statvfs(self._folder)
        except OSError:
            return None  # unknown: try, and let a real disk-full say so
        free = found.f_bavail * found.f_frsize
        needed = size + size // 4096 + self.MARGIN
        if needed <= free:
            return None
        sparse = records.allocated_bytes(info)
        why = "" if sparse is None else (f" (a sparse file, {human_size(sparse)} on disk: the bundle "
                                          "stores its full logical size)")
        return (f"not read: {human_size(size)}{why} does not fit in the {human_size(free)} free "
                "where the bundle is written")


@dataclass
class _Waiting:
    """A manifest entry on its way into the manifest: encoded once libmagic has typed it."""

    record: ManifestEntry
    mime: identify.Pending | None = None  # its MIME type, while libmagic decides it
    first_size: int = 0  # the bytes of its first block that libmagic holds (a hard link: none)


@dataclass
class _Tally:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("files", "directories", "symlinks", "special", "errors", "changed", "skipped"), 0))
    total_bytes: int = 0
    problems: list[Problem] = field(default_factory=list)
    manifest_lines: list[bytes] = field(default_factory=list)
    entries: ManifestWriter = field(default_factory=ManifestWriter)
    identifier: identify.Identifier | None = None  # libmagic in worker processes
    type_warnings: list[str] = field(default_factory=list)  # files libmagic crashed on
    # Records not yet encoded, in walk order: a file's waits for its MIME type (identify.Pending).
    pending: deque[_Waiting] = field(default_factory=deque)
    pending_bytes: int = 0  # first blocks held for libmagic by pending records
    # Files with more than one name, by bag path: a later name a source yields with ``link_to``
    # is stored as a tar hard link to it, with its hash and type (FORMAT.md §4.2).
    linked: dict[str, _Waiting] = field(default_factory=dict)
    unread: Skip = field(default_factory=set)  # files no source reads: not in the estimate
    room: _OutputRoom | None = None  # free space where the bundle is written
    spool_folder: Path = Path(".")  # where a stream of unknown length waits, encrypted

    def problem(self, record: ManifestEntry, text: str) -> None:
        self.problems.append(Problem(record.shown_path(), text))

    def mime(self, first_block: bytes, content_sha256: str | None = None) -> str | identify.Pending:
        """*content_sha256*: the SHA-256 of *first_block* when it is the whole file."""
        if self.identifier is None or not first_block:
            return identify.mime_type(first_block)
        mime = self.identifier.identify(first_block, content_sha256)
        if isinstance(mime, identify.Pending):
            self.pending_bytes += len(first_block)
        return mime

    def add_entry(self, waiting: _Waiting) -> None:
        """Encode *waiting*'s record into the manifest's entries, in walk order, once its MIME
        is known."""
        self.pending.append(waiting)
        while self.pending:
            mime = self.pending[0].mime
            if mime is not None and not mime.done() and \
                    len(self.pending) < _MAX_PENDING and self.pending_bytes < _MAX_PENDING_BYTES:
                return
            self._encode(self.pending.popleft())

    def finish_entries(self) -> None:
        while self.pending:
            self._encode(self.pending.popleft())

    def _encode(self, waiting: _Waiting) -> None:
        record = waiting.record
        if waiting.mime is not None:
            record.mime = waiting.mime.result()
            if record.mime is None:  # the content is stored all the same; only its type is lost
                record.mime = identify.FALLBACK
                self.type_warnings.append(f"{record.shown_path()}: libmagic crashed or hung on this file, "
                                          f"so its type is recorded as {identify.FALLBACK}")
            self.pending_bytes -= waiting.first_size
        self.entries.add(record)


def capture(request: CaptureRequest) -> CaptureResult:
    """Make the bundle described by *request*; raise EvidenceKitError on failure (nothing left)."""
    check_case(request.case)
    sources = list(request.roots) if request.roots is not None else \
        sources_of(request.sources, request.unreachable, request.found_by_profile)
    if request.stream_to is None:
        check_output(request.output, sources)
    else:
        request.stream_to.check()
    if request.incident is not None:
        incident_record.check_record(request.incident)  # refuse a malformed record early
    if request.stream_to is None:
        whole = sum(s.required_bytes() for s in request.more_sources
                    if isinstance(s, WholeOrNothing))
        if payload_compression(request) is None:
            _refuse_too_big_for_destination(request.output, sources, request.exclude_paths, whole)
            _refuse_without_room(request.output, whole)
        else:  # how far a disk image compresses is known only once it is read: _RoomWatch
            _refuse_too_big_for_destination(request.output, sources, request.exclude_paths)
            _refuse_without_room(request.output, whole, compressed=True)
    request = dataclasses.replace(request, progress=throttled(request.progress))
    started = request.clock()
    try:
        with _opened_output(request) as out:
            skip = _identity_of(out)
            skip.update(_identities_of(request.exclude_paths))
            result = _write_bundle(request, sources, out, started, skip)
        if request.stream_to is not None:
            result.location = request.stream_to.location
        return result
    except fs.NameNotAllowed as exc:
        raise OutputError(f"cannot write {request.output}: {exc.strerror}; nothing was written",
                          hint="choose another name with -o") from None
    except fs.CannotCreate as exc:  # e.g. an immutable or read-only folder that access() let through
        raise OutputError(f"cannot write to the folder {request.output.parent}: "
                          f"{exc.strerror or exc}",
                          hint="choose a folder you can write to with -o") from exc
    except FileExistsError:
        raise OutputError(f"{request.output} appeared while capturing; the bundle was not saved"
                          ) from None
    except OSError as exc:
        raise OutputError(f"could not write {request.output}: {exc.strerror or exc}",
                          hint=_write_failed_hint(exc, request.output)) from exc


@contextmanager
def _opened_output(request: CaptureRequest) -> Iterator[BinaryIO]:
    """The file the bundle is written to: a temporary file published under *output* at the end
    (fs.staged), or the stream of *stream_to*, committed at the end; on failure, nothing."""
    if request.stream_to is not None:
        with request.stream_to.open() as stream:
            yield stream
    else:
        with fs.staged(request.output) as stage:
            yield stage.file


def _identity_of(out: BinaryIO) -> set[tuple[int, int]]:
    """The bundle's own file, never captured into itself (none for a stream to a store)."""
    try:
        info = os.fstat(out.fileno())
    except (OSError, io.UnsupportedOperation):
        return set()
    return {(info.st_dev, info.st_ino)}


# Per file in the bundle besides its content: tar headers (a pax header for long or non-ASCII
# names), the manifest line and the BagIt manifest line. Generous: the estimate only decides
# whether to refuse a destination that cannot hold the bundle.
_BYTES_PER_FILE = 4096


def _refuse_too_big_for_destination(output: Path, sources: list[Source],
                                    exclude: tuple[Path, ...], whole: int = 0) -> None:
    """On FAT32 (most small USB sticks) a file cannot reach 4 GiB: refuse before reading any
    evidence when the bundle would be larger (estimated from the sources' sizes, and the
    *whole* bytes of disk images)."""
    largest = fs.largest_file(output.absolute().parent)
    if largest is None:
        return
    files, size = scan_totals(sources, _identities_of(exclude))
    plaintext = size + whole + files * _BYTES_PER_FILE + (1 << 20)
    estimate = plaintext + (plaintext // age.CHUNK_SIZE + 1) * age.TAG_SIZE
    if estimate > largest:
        raise OutputError(too_big_message(output, estimate, largest),
                          hint="save it on a stick formatted as exFAT or NTFS, or in another "
                          "folder (your computer's disk), with -o")


def payload_compression(request: CaptureRequest) -> str | None:
    """"zstd" when the bundle holds a disk image (format version 4: an empty or mostly-zero
    device must not make a bundle of its whole size); None for every other capture, which
    stays a version 3 bundle byte for byte (docs/decisions/device-image-size.md)."""
    if any(isinstance(s, WholeOrNothing) for s in request.more_sources):
        return ZSTD
    return None


def _refuse_without_room(output: Path, whole: int, compressed: bool = False) -> None:
    """Disk images (*whole* bytes in all) that cannot fit in the free space where the bundle is
    written: refused before anything is read, as a capture of a 1 TB disk onto 500 GB would
    otherwise end in "disk full" hours later. A *compressed* image (format version 4) may make a
    bundle of kilobytes: only less room than any bundle needs is refused here, and the bundle
    is watched as it is written (_RoomWatch)."""
    if not whole:
        return
    try:
        found = os.statvfs(output.absolute().parent)
    except OSError:
        return  # unknown: try, and let a real disk-full say so
    free = found.f_bavail * found.f_frsize
    if compressed:
        if free < _OutputRoom.MARGIN + _RoomWatch.STEP:
            raise OutputError(f"only {human_size(free)} is free in {output.absolute().parent}, "
                              "too little for any bundle of a disk image; nothing was written",
                              hint="write the bundle to a larger disk with -o")
        return
    if whole + whole // 4096 + _OutputRoom.MARGIN > free:
        raise OutputError(f"the disk image ({human_size(whole)}) does not fit in the "
                          f"{human_size(free)} free in {output.absolute().parent}; nothing was "
                          "written", hint="write the bundle to a larger disk with -o (the image "
                          "is stored whole, zeros included)")


def too_big_message(output: Path, estimate: int, largest: int) -> str:
    return (f"the bundle would be about {_gib(estimate)}, but {output.absolute().parent} is on a "
            f"FAT32 file system, which cannot hold a file of {fs.describe_limit(largest + 1)} or "
            "more; nothing was written")


def _gib(size: int) -> str:
    return f"{size / (1 << 30):.1f} GiB" if size >= 1 << 30 else f"{size / (1 << 20):.0f} MiB"


def _write_failed_hint(exc: OSError, output: Path) -> str:
    if exc.errno == errno.EFBIG:
        return ("the destination cannot hold a file that large (FAT32 stops at 4 GiB): use an "
                "exFAT or NTFS stick, or another folder, with -o")
    return "check free space and permissions; nothing was left behind"


def check_case(case: CaseInfo) -> None:
    """Refuse, before anything is read, case fields a reader could not read back or would show
    wrongly: they go into the public seal and first custody event (docs/FORMAT.md §6)."""
    _check_case_id(case.case_id)
    publictext.check_line(case.examiner, "--examiner")
    publictext.check_text(case.description, "--description")
    publictext.check_text(case.legal_basis, "--legal-basis")
    publictext.check_line(case.organisation, "--organisation")


def _check_case_id(case_id: str) -> None:
    """A case id is matched exactly later (receipts, reports): no hidden spaces or controls."""
    if not case_id or case_id != case_id.strip() or not case_id.isprintable():
        raise UsageError(f"the case id {case_id[:100]!r} is empty, starts or ends with spaces, or "
                         "holds control characters", hint="use e.g. --case FRAUD-2026-0117")
    publictext.check_line(case_id, "--case", hint="use e.g. --case FRAUD-2026-0117")


def _identities_of(paths: tuple[Path, ...]) -> set[tuple[int, int]]:
    found = set()
    for path in paths:
        with suppress(OSError):
            info = os.stat(path)
            found.add((info.st_dev, info.st_ino))
    return found


def check_output(output: Path, sources: list[Source], default_place: bool = False) -> None:
    """Refuse an *output* that exists, lies in a missing or read-only folder, or in a folder being
    captured (*default_place*: the current folder was chosen for the user, so the error says
    so)."""
    try:
        taken, folder_there = output.exists() or output.is_symlink(), output.parent.is_dir()
    except OSError as exc:  # a name too long, a folder not ours to enter: not exit 5
        raise OutputError(f"cannot use {output}: {exc.strerror or exc}",
                          hint="choose another name or folder with -o") from None
    if taken:
        raise OutputError(f"{output} already exists; evidencekit never overwrites a bundle",
                          hint="choose another name with -o")
    if not folder_there:
        raise OutputError(f"the folder {output.parent} does not exist")
    _refuse_output_inside(output, sources, default_place)
    if not os.access(output.parent, os.W_OK):
        raise OutputError(f"cannot write to the folder {output.parent}",
                          hint="choose a folder you can write to with -o")


def _refuse_output_inside(output: Path, sources: list[Source], default_place: bool) -> None:
    """Writing the bundle (and its temporary file) into a folder being captured would change the
    evidence, that folder's times and list of names, before the walk records it."""
    folder = output.absolute().parent  # "." would not tell a person where
    inside = source_reaching(folder, sources)
    if inside is not None:
        where = f"the current folder, {folder}" if default_place else str(folder)
        raise OutputError(f"the bundle would be saved in {where}, {_part_of(folder, inside)}: "
                          "saving it there would change the evidence",
                          hint="save it outside what you capture with -o, for example on a USB "
                          f"stick: -o /path/to/the/stick/{output.name}")


def _part_of(folder: Path, source: Source) -> str:
    """``a folder being captured``, or which captured folder it lies in."""
    if os.path.samefile(folder, os.fsdecode(source.path)):
        return "a folder being captured"
    return f"which is inside {os.fsdecode(source.given)}, a folder being captured"


def _write_bundle(request: CaptureRequest, sources: list[Source], out: BinaryIO, started: int,
                  skip: set[tuple[int, int]]) -> CaptureResult:
    outer = OuterWriter(out)
    mtime = started // 1_000_000_000
    readme = readme_text(request.case.case_id, rfc3339(started),
                         compressed=payload_compression(request) is not None).encode("utf-8")
    outer.add_bytes(README, readme, mtime)
    tally = _Tally()
    files = FileSource(sources, request.unreachable, request.filters, lambda: tally.total_bytes)
    evidence = _placed([files, *request.more_sources])
    if getattr(request.progress, "wants_totals", False):
        if isinstance(request.progress, Throttled):  # count while capturing, not before
            request.progress.start_counting("Capturing", lambda: _estimate(evidence, skip))
        else:
            total_files, total_bytes = _estimate(evidence, skip)
            request.progress.start("Capturing", total_files, total_bytes)
    else:
        request.progress.start("Capturing", None, None)
    # Three stages (evidencekit.pipeline): this thread reads and hashes the evidence, one thread
    # encrypts it, one hashes the ciphertext (for the seal) and writes it to the bundle file.
    # The ciphertext's SHA-256 is on the disk thread, which otherwise only waits for the disk:
    # on the encrypting thread, beside ChaCha20 (which holds the GIL) and zstd, it made that
    # thread the slowest stage of a device image (docs/performance.md).
    disk_file = DiskWriter(out)
    compression = payload_compression(request)
    watched = _RoomWatch(disk_file, request.output) if compression and not request.stream_to \
        else disk_file
    ciphertext = _Hashed(watched)
    disk = BackgroundWriter(ciphertext, name="evidencekit-disk", depth=DISK_QUEUE
                            if request.stream_to is None else request.stream_to.queue_blocks)
    try:
        with outer.add_stream(PAYLOAD, mtime, through=disk, hashing=False) as payload_sink:
            # Format version 4 (a disk image): the tar is compressed on the encrypting thread,
            # just before age (zstd at level 1 stores what does not compress at memory speed).
            layers = PayloadLayers(cast(BinaryIO, payload_sink), request.recipients,
                                   request.random, compressed=compression is not None)
            background = BackgroundWriter(layers.top, name="evidencekit-encrypt")
            try:
                inner = InnerTarWriter(background)
                manifest_sha256, root = _write_bag(request, evidence, inner, tally, started,
                                                   skip)
                background.close()
            except BaseException:
                background.abort()
                raise
            layers.close()
            disk.close()  # all of the payload is in the file before its header is completed
            disk_file.finish()
    except BaseException:
        disk.abort()
        raise
    finally:
        disk_file.close()
    request.progress.finish()
    finished = request.clock()
    seal = Seal(
        case_id=request.case.case_id, created=rfc3339(finished), capture_started=rfc3339(started),
        readme_sha256=_sha256(readme), payload_size=payload_sink.size,
        payload_sha256=ciphertext.hexdigest(), manifest_root=root,
        manifest_sha256=manifest_sha256, counts=tally.counts,
        total_bytes=tally.total_bytes,
        complete=tally.counts["errors"] == 0 and tally.counts["changed"] == 0,
        signer=_signer(request.signing_key), tool_version=__version__,
        format_version=FORMAT_VERSION if compression is None else COMPRESSED_VERSION,
        payload_compression=compression,
    )
    seal_json = seal.to_json()
    seal_mtime = finished // 1_000_000_000
    outer.add_bytes(SEAL, seal_json, seal_mtime)
    outer.add_bytes(SEAL_SIG, sshsig.sign(request.signing_key, seal_json), seal_mtime)
    event = first_event(request, seal, _sha256(seal_json), finished,
                        {**_public_details(evidence),
                         **(request.stream_to.public_details() if request.stream_to else {})})
    event_json = event.to_json()
    publictext.check_readable(event_json, custody_member(1))
    outer.add_bytes(custody_member(1), event_json, seal_mtime)
    outer.add_bytes(custody_member(1) + ".sig", sshsig.sign(request.signing_key, event_json),
                    seal_mtime)
    outer.finish()
    unavailable = tally.identifier.unavailable_reason() if tally.identifier else None
    warnings = (repeat_warnings(request.sources) + [w for w in [unavailable] if w]
                + tally.type_warnings)
    return CaptureResult(request.output, seal, _sha256(seal_json), _sha256(event_json),
                         tally.problems, warnings)


class _Hashed:
    """Passes the payload on to *out* and SHA-256-hashes it on the way (on the disk thread)."""

    def __init__(self, out: DiskWriter | _RoomWatch) -> None:
        self._out = out
        self._hash = hashlib.sha256()

    def write(self, data: memoryview) -> None:
        self._hash.update(data)
        self._out.write(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class _RoomWatch:
    """Passes the payload on to *out* (on the disk thread), and stops the capture when the free
    space where the bundle is written falls below the margin: a compressed disk image's bundle
    has no size known in advance (zeros make kilobytes, random data the image's size), so it is
    watched as it grows rather than refused. Stopping leaves nothing (fs.staged), and the disk
    is not filled to its last byte, which the system on it may need."""

    STEP = 256 << 20  # bytes written between two looks at the free space

    def __init__(self, out: DiskWriter, output: Path) -> None:
        self._out = out
        self._folder = output.absolute().parent
        self._unchecked = 0

    def write(self, data: memoryview) -> None:
        self._unchecked += len(data)
        if self._unchecked >= self.STEP:
            self._unchecked = 0
            self._check()
        self._out.write(data)

    def _check(self) -> None:
        try:
            found = os.statvfs(self._folder)
        except OSError:
            return  # unknown: let a real disk-full say so
        free = found.f_bavail * found.f_frsize
        if free < _OutputRoom.MARGIN + self.STEP:
            raise OutputError(f"the disk in {self._folder} is nearly full ({human_size(free)} "
                              "free): the disk image does not compress enough to fit; nothing "
                              "was kept", hint="write the bundle to a larger disk with -o")


# The free space _RoomWatch wants at each look (or it stops the capture): what a source
# writing beside the bundle must leave (sources.rescue.spool_room).
LEAST_FREE_BESIDE_BUNDLE = _OutputRoom.MARGIN + _RoomWatch.STEP


def _signer(key: SigningKey) -> Signer:
    public = key.public
    return Signer(_line_without_comment(public.openssh_line()), public.fingerprint)


def _line_without_comment(line: str) -> str:
    return " ".join(line.split()[:2])


def first_event(request: CaptureRequest, seal: Seal, seal_sha256: str, now: int,
                details: dict[str, str] | None = None) -> CustodyEvent:
    return CustodyEvent(
        case_id=seal.case_id, sequence=1, action="captured", time=rfc3339(now),
        clock_source=clock_source(), actor_name=request.case.examiner,
        actor=_signer(request.signing_key), host=host_name(),
        note=request.case.description, payload_sha256=seal.payload_sha256,
        previous_sha256=seal_sha256, details=details or {},
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _placed(evidence: list[EvidenceSource]) -> list[EvidenceSource]:
    """*evidence* numbered and named in order: the file walk first (its sources as given), then
    each other source after the ones before it."""
    taken: set[str] = set()
    index = 0
    for source in evidence:
        source.place(index, taken)
        index += len(source.records())
    return evidence


def _collection_order(evidence: list[EvidenceSource]) -> list[EvidenceSource]:
    """The order sources are read in: a volatile one (the live system's state, which changes by
    the second) before the rest, as RFC 3227 asks; the manifest lists entries as read."""
    return sorted(evidence, key=lambda source: not getattr(source, "volatile", False))


def _public_details(evidence: list[EvidenceSource]) -> dict[str, str]:
    """What sources say in public, in the first custody event (counts only, e.g. live)."""
    details: dict[str, str] = {}
    for source in evidence:
        said = getattr(source, "public_details", None)
        if callable(said):
            details.update(said())
    return details


def _estimate(evidence: list[EvidenceSource], skip: set[tuple[int, int]]
              ) -> tuple[int, int | None]:
    """Files and bytes to expect, for the progress bar (bytes None when a stream's is unknown)."""
    files, size = 0, 0
    known = True
    for source in evidence:
        more_files, more_bytes = source.estimate(skip)
        files += more_files
        known = known and more_bytes is not None
        size += more_bytes or 0
    return files, size if known else None


def _write_bag(request: CaptureRequest, evidence: list[EvidenceSource], inner: InnerTarWriter,
               tally: _Tally, started: int, skip: set[tuple[int, int]]) -> tuple[str, str]:
    """Write the whole bag into *inner*; return the SHA-256 of the signed manifest.json and the
    root hash."""
    tag_digests: list[bytes] = []

    def tag(name: str, data: bytes) -> None:
        inner.add_bytes(name, data, started)
        tag_digests.append(bag.manifest_line(_sha256(data), name))

    tag(bag.BAGIT, bag.BAGIT_TXT)
    tally.identifier = identify.Identifier()
    try:
        # a bundle streamed to a store takes no room on this disk: no file is refused for it
        tally.room = None if request.stream_to else _OutputRoom(request.output.absolute().parent)
        # outside the sources, writable (streamed to a store: the current folder, where
        # 'request.output' names no file)
        tally.spool_folder = request.output.absolute().parent
        tally.unread = skip
        for source in _collection_order(evidence):
            told = getattr(source, "stored", None)  # a source that learns from what was stored
            for entry in source.entries(skip):
                record = _capture_entry(entry, inner, tally, request.progress)
                if told is not None:
                    told(entry, record)
        tally.finish_entries()
    finally:
        tally.identifier.close()
    manifest = b"".join(tally.manifest_lines)
    root = _sha256(manifest)
    tag(bag.MANIFEST, manifest)
    tag(bag.BAG_INFO, _bag_info(request.case, tally, started))
    if request.incident is not None:
        tag(bag.EK_INCIDENT, request.incident)
    # manifest.json is written, hashed and signed piece by piece: for 100,000 files it is some
    # 60 MB, and joining it (then copying it to sign it) would double the peak memory.
    pieces, size = tally.entries.document(_manifest_head(request, evidence, tally, started, root))
    digest, signed = hashlib.sha256(), hashlib.sha512()  # sha512: what SSHSIG signs

    def hashed() -> Iterator[bytes]:
        for piece in pieces:
            digest.update(piece)
            signed.update(piece)
            yield piece

    inner.add_chunks(bag.EK_MANIFEST, hashed(), size, started)
    tag_digests.append(bag.manifest_line(digest.hexdigest(), bag.EK_MANIFEST))
    tag(bag.EK_MANIFEST_SIG, sshsig.sign_digest(request.signing_key, signed.digest(), "sha512"))
    inner.add_bytes(bag.TAGMANIFEST, b"".join(tag_digests), started)
    inner.finish()
    return digest.hexdigest(), root


def _bag_info(case: CaseInfo, tally: _Tally, started: int) -> bytes:
    return bag.evidencekit_bag_info(
        tool_version=__version__, bagging_date=rfc3339(started)[:10], case_id=case.case_id,
        examiner=case.examiner, organisation=case.organisation, description=case.description,
        total_bytes=tally.total_bytes, files=tally.counts["files"])


def _manifest_head(request: CaptureRequest, evidence: list[EvidenceSource], tally: _Tally,
                   started: int, root: str) -> ManifestHead:
    """The signed evidencekit manifest but its entries (written one by one, in tally.entries)."""
    return ManifestHead(
        case={"case_id": request.case.case_id, "examiner": request.case.examiner,
              "description": request.case.description, "legal_basis": request.case.legal_basis,
              "organisation": request.case.organisation},
        capture={"started": rfc3339(started), "finished": rfc3339(request.clock()),
                 "clock_source": clock_source(), "host": host_name(), "user": user_name(),
                 "os": operating_system(), "command_line": request.command_line,
                 "tools": tool_versions(), "cwd": os.getcwd(),
                 "python_executable": sys.executable,
                 **({} if request.profile is None else {"profile": request.profile})},
        sources=[record.to_json() for source in evidence for record in source.records()],
        incident_sha256=None if request.incident is None else _sha256(request.incident),
        counts=tally.counts, total_bytes=tally.total_bytes, manifest_root=root)


def _capture_entry(entry: Entry | StreamEntry, inner: InnerTarWriter, tally: _Tally,
                   progress: Progress) -> ManifestEntry:
    """Store *entry* and put its record in the manifest's entries; return that record."""
    if isinstance(entry, StreamEntry):
        waiting = _capture_stream(entry, inner, tally, progress)
        _add_record(waiting, tally)
        return waiting.record
    first = tally.linked.get(entry.link_to) if entry.link_to is not None else None
    if entry.kind == "file" and entry.lstat is not None:
        if first is None and tally.room is not None and entry.error is None:
            entry.error = tally.room.refusal(entry.lstat)  # "not read: …" or None
        info = entry.lstat
        if entry.error is not None and (info.st_dev, info.st_ino) not in tally.unread:
            progress.advance(files=1, nbytes=info.st_size)  # not read (a filter, no room)
    if entry.kind == "file" and entry.error is None:
        if first is not None:
            waiting = _capture_hard_link(entry, first, inner, tally, progress)
        else:
            waiting = _capture_file(entry, inner, tally, progress)
            _remember_if_linked(waiting, tally)
    else:
        record = records.special_record(entry)  # with its xattrs
        if entry.kind == "directory" and entry.lstat is not None and entry.error is None:
            tally.counts["directories"] += 1
            inner.add_directory(entry.bag_path, entry.lstat)
            if entry.children_error:
                record.error = entry.children_error
        elif entry.kind == "symlink":
            tally.counts["symlinks"] += 1
        elif entry.kind not in ("file", "directory", "unknown"):
            tally.counts["special"] += 1
        waiting = _Waiting(record)
    _add_record(waiting, tally)
    return waiting.record


def _add_record(waiting: _Waiting, tally: _Tally) -> None:
    """Count the record's error, if any, and put it in the manifest's entries."""
    error = waiting.record.error
    if error:
        tally.counts["skipped" if error.startswith("skipped") else "errors"] += 1
        tally.problem(waiting.record, error)
    tally.add_entry(waiting)


def _remember_if_linked(waiting: _Waiting, tally: _Tally) -> None:
    """A file with other names, stored whole and unchanged: what a later name may link to."""
    record = waiting.record
    if record.stat is not None and record.stat.nlink > 1 and record.error is None and \
            record.stored is not None and not record.stored.changes:
        tally.linked[record.bag_path] = waiting


def _capture_hard_link(entry: Entry, first: _Waiting, inner: InnerTarWriter,
                       tally: _Tally, progress: Progress) -> _Waiting:
    """Another name of a file already stored: recorded in full, stored as a tar hard link to
    the first name (no second copy, and the content is not read again)."""
    assert entry.lstat is not None and first.record.stored is not None
    record = records.base_record(entry)
    record.allocated_bytes = records.allocated_bytes(entry.lstat)
    record.xattrs = records.read_xattrs(entry)
    inner.add_hard_link(entry.bag_path, first.record.bag_path, entry.lstat)
    record.link_to = first.record.bag_path
    record.stored = Stored(first.record.stored.sha256)
    # Its type is the first name's: known, or still being decided (the same Pending).
    record.mime = first.record.mime
    waiting = _Waiting(record, mime=first.mime if record.mime is None else None)
    tally.counts["files"] += 1
    tally.total_bytes += entry.lstat.st_size
    tally.manifest_lines.append(bag.manifest_line(record.stored.sha256, entry.bag_path))
    progress.advance(files=1, nbytes=entry.lstat.st_size)
    return waiting


def _capture_file(entry: Entry, inner: InnerTarWriter, tally: _Tally,
                  progress: Progress) -> _Waiting:
    record = records.base_record(entry, with_stat=False)  # stat fields: from fstat, below
    assert entry.lstat is not None
    try:
        opened = open_regular(entry)
    except OSError as exc:
        records.add_listing(record, entry)
        record.error = f"could not open: {exc.strerror or exc}"
        progress.advance(files=1, nbytes=entry.lstat.st_size)
        return _Waiting(record)
    except Replaced as exc:
        records.add_listing(record, entry)
        record.error = str(exc)
        return _Waiting(record)
    with opened:
        opened.describe(record, entry)
        if opened.size and tally.identifier is not None:
            tally.identifier.get_ready()  # (only an empty file needs no libmagic)
        changes: list[str] = []
        stored = _store_sized(opened.readinto, opened.size, opened.before, entry.bag_path, inner,
                              record, changes, progress)
        changes.extend(opened.changes())
        opened.described_after_reading(record)
        return _file_stored(record, entry.bag_path, stored, changes, tally, progress)


def _file_stored(record: ManifestEntry, bag_path: str, stored: tuple[Any, bytes, int],
                 changes: list[str], tally: _Tally, progress: Progress,
                 known_mime: str | None = None) -> _Waiting:
    """Complete the *record* of a file whose content is now in the bag: *stored* is its hash,
    first bytes (for libmagic, unless its type is *known_mime*) and size; *changes* what
    reading it found."""
    digest, first, size = stored
    waiting = _Waiting(record)
    sha256 = digest.hexdigest()
    # (the first bytes are the whole file when it is small and was read in full: no zeros)
    mime = known_mime or tally.mime(first, sha256 if len(first) == size else None)
    if isinstance(mime, identify.Pending):  # maybe Pending: see _Tally.add_entry
        waiting.mime, waiting.first_size = mime, len(first)
    else:
        record.mime = mime
    record.stored = Stored(sha256, tuple(changes))
    tally.counts["files"] += 1
    tally.total_bytes += size
    tally.manifest_lines.append(bag.manifest_line(record.stored.sha256, bag_path))
    if changes:
        tally.counts["changed"] += 1
        tally.problem(record, "; ".join(changes))
    progress.advance(files=1)
    return waiting


def _store_sized(read: Callable[[memoryview], int], size: int, tar_info: os.stat_result,
                 bag_path: str, inner: InnerTarWriter, record: ManifestEntry, changes: list[str],
                 progress: Progress) -> tuple[Any, bytes, int]:
    """Store *size* bytes from *read* (like ``readinto``), streamed (FORMAT.md §4.3: what is
    missing at the end as zeros), under a tar header made from *tar_info*; returns the hash,
    the first bytes and that size."""
    inner.begin_file(bag_path, size, tar_info)
    digest = hashlib.sha256()
    left = size
    first = bytearray()  # the first bytes, for libmagic
    while left:
        # Read straight into the block that will be encrypted (no copy), hash the same bytes.
        room = inner.reserve(min(CHUNK, left))
        try:
            count = read(room)
        except OSError as exc:
            record.error = (f"read error at byte {size - left}: {exc.strerror}; the remaining "
                            f"{left} bytes are stored as zeros")
            count = 0
        if not count:
            if record.error is None:
                changes.append(f"file shrank while being read: only {size - left} of {size} bytes "
                               "could be read; the rest is stored as zeros")
            _zero_fill(left, digest, inner, progress)
            break
        _hash_and_peek(room[:count], digest, first)
        inner.commit(count)
        left -= count
        progress.advance(nbytes=count)
    inner.end_file(size)
    return digest, bytes(first), size


def _hash_and_peek(data: memoryview, digest: Any, first: bytearray) -> None:
    """Hash *data*, the next bytes of a file, keeping its first bytes for libmagic in *first*."""
    if len(first) < identify.MAGIC_BYTES:
        first += data[: identify.MAGIC_BYTES - len(first)]
    digest.update(data)


def _zero_fill(count: int, digest: Any, inner: InnerTarWriter, progress: Progress) -> None:
    while count:
        block = bytes(min(CHUNK, count))
        digest.update(block)
        inner.write(block)
        count -= len(block)
        progress.advance(nbytes=len(block))


def _capture_stream(entry: StreamEntry, inner: InnerTarWriter, tally: _Tally,
                    progress: Progress) -> _Waiting:
    """Store a file whose content is a stream (evidencekit.sources), read once: at its size when
    that is known, like any file; else held until its end (evidencekit.spool)."""
    record = ManifestEntry(entry.source, entry.bag_path, "file", entry.path)
    changes: list[str] = []
    size = entry.content.size
    if size is None:
        stored = _store_spooled(entry, inner, record, tally.spool_folder, progress)
    else:
        stored = _store_sized(entry.content.readinto, size, _tar_info(entry, size),
                              entry.bag_path, inner, record, changes, progress)
    changes.extend(entry.content.changes())
    # (hasattr first: an isinstance of a runtime Protocol costs 30 µs, per message of a mailbox)
    if hasattr(entry.content, "unread") and isinstance(entry.content, PartlyRead) and \
            record.error is None:
        record.error = entry.content.unread()  # gaps the content filled with zeros itself
    record.size = stored[2]
    return _file_stored(record, entry.bag_path, stored, changes, tally, progress, entry.mime)


def _store_spooled(entry: StreamEntry, inner: InnerTarWriter, record: ManifestEntry,
                   folder: Path, progress: Progress) -> tuple[Any, bytes, int]:
    """Read the stream to its end into a Spool (hashed as it is read), then store it; a read
    error keeps what was read before it (and ``error`` says so)."""
    digest = hashlib.sha256()
    first = bytearray()
    buffer = memoryview(bytearray(CHUNK))
    with Spool(folder) as spool:
        while True:
            try:
                count = entry.content.readinto(buffer)
            except OSError as exc:
                record.error = (f"read error at byte {spool.size}: {exc.strerror}; the "
                                f"{spool.size} bytes read before it are stored")
                break
            if not count:
                break
            _hash_and_peek(buffer[:count], digest, first)
            spool.write(buffer[:count])
            progress.advance(nbytes=count)
        inner.begin_file(entry.bag_path, spool.size, _tar_info(entry, spool.size))
        for block in spool.blocks():
            inner.write(block)
        inner.end_file(spool.size)
        return digest, bytes(first), spool.size


def _tar_info(entry: StreamEntry, size: int) -> os.stat_result:
    """What the payload tar header of a stream says: mode 0600, owner 0, *size*, its time."""
    seconds = entry.mtime_ns // 1_000_000_000
    return os.stat_result((stat.S_IFREG | STREAM_MODE, 0, 0, 1, 0, 0, size, seconds, seconds,
                           seconds), {"st_mtime_ns": entry.mtime_ns})


def readme_text(case_id: str, created: str, compressed: bool = False) -> str:
    if compressed:  # format version 4
        payload = "the evidence, compressed with zstd, then encrypted with age"
        version, opening = COMPRESSED_VERSION, "age -d, zstd -d"
    else:
        payload = "the evidence, encrypted with age (https://age-encryption.org)"
        version, opening = FORMAT_VERSION, "age -d"
    return f"""This file is an evidencekit evidence bundle.

Case: {case_id}
Sealed from: {created}

It is a tar archive. It holds:
  payload.age         {payload}
  seal.json           public facts about the evidence: sizes, hashes, who sealed it
  seal.json.sig       the sealer's SSH signature over seal.json
  custody/*.json      the chain-of-custody log, each event signed (.sig)

Do not change, rename or re-pack this file: any change makes it fail verification.

To check it:   evidencekit verify BUNDLE            (no key needed)
To open it:    evidencekit extract BUNDLE -i KEY -o FOLDER
Without evidencekit: see "Verifying by hand" in evidencekit's docs/FORMAT.md
(tar, ssh-keygen -Y check-novalidate -n evidencekit, sha256sum, {opening}).
Format: evidencekit bundle format version {version}.
"""


