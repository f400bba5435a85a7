"""Read the decrypted payload tar in one streaming pass, hashing every file as it goes by.

Shared by verify (hash only) and extract (hash and write). Anything but regular files, folders
and (format version 2) hard links between files of ``bag/data/``, and any unsafe name, is a
finding, never followed.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import IO, Protocol, cast

from evidencekit.addenda import ADDENDA_DIR, FoundAddendum, scan_member
from evidencekit.addenda import CHECK as ADDENDA_CHECK
from evidencekit.findings import Findings
from evidencekit.format.bag import BAG_ROOT
from evidencekit.format.tarstream import EXTENDED_LIMIT, TarReader, mtime_readings

READ_SIZE = 1 << 20
TAG_FILE_LIMIT = 1 << 30  # a manifest for millions of files; more is refused, never allocated
# Extended headers (pax records, GNU long names) hold a path and a few numbers, so anything larger
# is refused before it is read (docs/hostile-input.md).
EXTENDED_HEADER_LIMIT = EXTENDED_LIMIT


class Visitor(Protocol):
    """Sees each member of the bag as the payload is read (extract writes them, the report and
    exports keep what they show). Nothing it is given is trustworthy until the verification it
    took part in is ok."""

    def directory(self, name: str, member: tarfile.TarInfo) -> None: ...

    def file(self, name: str, member: tarfile.TarInfo, chunks: Iterator[bytes]) -> None: ...

    def hard_link(self, name: str, member: tarfile.TarInfo, target: str) -> None: ...


class PlaintextCopy(Protocol):
    """Receives the decrypted payload as it is read (reseal re-encrypts it): every byte in
    order, on the decrypting thread; then, once the tar was read to its end, the offset where its
    end-of-archive blocks start (never called when the tar has no proper end)."""

    def write(self, data: bytes, /) -> object: ...

    def tar_ended(self, offset: int) -> None: ...


@dataclass(frozen=True)
class PayloadReaders:
    """Who else reads the decrypted payload while verify checks it, in the same single pass (the
    payload is read once, whatever its size): *files* sees each member of the bag, *plaintext*
    every byte. What they were given is the evidence only if the verification is ok."""

    files: Visitor | None = None
    plaintext: PlaintextCopy | None = None


# Slots: verify holds one per member until the end (100,000 files: 7 MB less than with a
# __dict__ each).
@dataclass(frozen=True, slots=True)
class StoredMember:
    """What the payload tar says about one member of ``bag/`` (docs/FORMAT.md §4.2): compared
    with manifest.json's entry (data/) or with what the writer gives every tag file."""

    kind: str  # "file", "directory" or "hard link"
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    # Before 1970 with a fraction of a second: the time an older writer meant by the same
    # record (format/tarstream.mtime_readings), also accepted as the manifest's; else None.
    legacy_mtime_ns: int | None = None

    def has_time(self, ns: int) -> bool:
        """Whether the member's header says *ns*, in the encoding of now or of old."""
        return ns in (self.mtime_ns, self.legacy_mtime_ns)


@dataclass
class PayloadScan:
    data_files: dict[str, tuple[str, int]] = field(default_factory=dict)  # data/... → sha256, size
    tag_files: dict[str, bytes] = field(default_factory=dict)
    tag_hashes: dict[str, str] = field(default_factory=dict)
    directories: set[str] = field(default_factory=set)
    order: list[str] = field(default_factory=list)
    hard_links: dict[str, str] = field(default_factory=dict)  # data/... → the data/... it links to
    # Every member of bag/ as the tar has it, and the data/ ones in their order (checked
    # against manifest.json: the payload must be exactly the tree the sealer signed).
    members: dict[str, StoredMember] = field(default_factory=dict)
    data_order: list[str] = field(default_factory=list)
    modes: dict[int, int] = field(default_factory=dict, repr=False)  # each mode's one int
    addenda: list[FoundAddendum] = field(default_factory=list)  # after the bag (v2)
    end_offset: int | None = None  # where the tar's end-of-archive blocks start


def safe_name(raw: str) -> str | None:
    """The member's name inside bag/, or None when it is unsafe or outside bag/."""
    name = raw.rstrip("/")
    if not name.startswith(BAG_ROOT + "/"):
        return None
    inner = name[len(BAG_ROOT) + 1 :]
    parts = inner.split("/")
    if not inner or any(p in ("", ".", "..") for p in parts) or "\0" in inner:
        return None
    return inner


class PieceSource(Protocol):
    def read_piece(self) -> bytes | memoryview: ...  # valid until the next call


def scan_payload(stream: IO[bytes] | PieceSource, findings: Findings,
                 visitor: Visitor | None = None) -> PayloadScan:
    """Read the payload tar to the end of *stream* (so nothing hidden after it goes unseen).

    *stream* is a binary stream, or anything with ``read_piece()`` (evidencekit.pipeline's
    PieceReadAhead: decrypted chunks, read ahead on another thread). The tar is read with
    evidencekit.format.tarstream, a strict streaming reader made for untrusted input.
    """
    scan = PayloadScan()
    read_piece = getattr(stream, "read_piece", None)
    if read_piece is None:
        reader = cast(IO[bytes], stream)
        read_piece = partial(reader.read, READ_SIZE)
    tar = TarReader(read_piece)
    for member, problem in tar:
        if problem is not None:
            findings.error("payload-structure", member.name, problem)
            continue
        if _in_addenda(tar, member, scan, findings):
            continue
        name = safe_name(member.name)
        if name is None:
            findings.error("payload-structure", member.name,
                           "unsafe or unexpected member name in the payload (not extracted)")
            continue
        if name in scan.members:  # every name so far (no set of its own: 4 MB per 100,000)
            findings.error("payload-structure", name, "member appears twice in the payload")
            continue
        scan.order.append(name)
        _remember(member, name, scan)
        if member.isdir():
            if not name.startswith("data/"):
                findings.error("payload-structure", name, "folder outside data/ in the payload "
                               "(evidencekit stores folders of the evidence only)")
            scan.directories.add(name)
            if visitor:
                visitor.directory(name, member)
        elif member.isreg():
            _scan_file(tar, member, name, scan, findings, visitor)
        elif member.islnk():
            _scan_hard_link(member, name, scan, findings, visitor)
        else:
            findings.error("payload-structure", name, "payload member is a link or special "
                           "file; evidencekit never stores those (not extracted)")
    scan.end_offset = tar.end_offset
    hidden = tar.nonzero_after_end()
    if hidden:
        findings.error("payload-structure", "payload.age", f"{hidden} non-zero bytes follow the "
                       "end of the payload tar")
    return scan


def _remember(member: tarfile.TarInfo, name: str, scan: PayloadScan) -> None:
    kind = "directory" if member.isdir() else "hard link" if member.islnk() else "file"
    # A bundle holds a handful of modes: one int object each, not one per member (3 MB per
    # 100,000: above 256, Python makes a new int for each header read).
    mode = scan.modes.setdefault(member.mode, member.mode)
    scan.members[name] = StoredMember(kind, mode, member.uid, member.gid,
                                      *mtime_readings(member))
    if name.startswith("data/"):
        scan.data_order.append(name)


def _in_addenda(tar: TarReader, member: tarfile.TarInfo, scan: PayloadScan,
                findings: Findings) -> bool:
    """Format version 2: the ``addenda/`` members, which come after every ``bag/`` member
    (evidencekit.addenda). True when *member* is one, handled here; a member after them is a
    finding (and is read as usual)."""
    if member.name.startswith(ADDENDA_DIR):
        scan_member(tar, member, scan.addenda, findings)
        return True
    if scan.addenda:
        findings.error(ADDENDA_CHECK, member.name, "payload member after the addenda (the "
                       "addenda/ members come after every bag/ member)")
    return False


def _scan_hard_link(member: tarfile.TarInfo, name: str, scan: PayloadScan, findings: Findings,
                    visitor: Visitor | None) -> None:
    """A second name of a stored file (format version 2): allowed only in data/, and only to a
    regular file stored earlier in data/, so it can never reach outside the bag or a tag file.
    It counts as a file with that file's content."""
    target = safe_name(member.linkname)
    if not name.startswith("data/") or target is None or target not in scan.data_files or \
            target in scan.hard_links:
        findings.error("payload-structure", name, "payload member is a hard link to "
                       f"{member.linkname[:200]!r}, which is not a file stored before it in "
                       "data/ (not extracted)")
        return
    if visitor:
        visitor.hard_link(name, member, target)
    scan.hard_links[name] = target
    scan.data_files[name] = scan.data_files[target]


def _chunks(tar: TarReader, digest: hashlib._Hash) -> Iterator[bytes]:
    for piece in tar.data():
        digest.update(piece)
        yield piece.tobytes()  # the visitor may keep it; the piece itself is only lent


def _scan_file(tar: TarReader, member: tarfile.TarInfo, name: str, scan: PayloadScan,
               findings: Findings, visitor: Visitor | None) -> None:
    digest = hashlib.sha256()
    if name.startswith("data/"):
        if visitor:
            chunks = _chunks(tar, digest)
            visitor.file(name, member, chunks)
            for _ in chunks:  # whatever the visitor left unread
                pass
        else:
            for piece in tar.data():  # verify: hash the decrypted pieces where they lie
                digest.update(piece)
        scan.data_files[name] = (digest.hexdigest(), member.size)
        return
    if member.size > TAG_FILE_LIMIT:
        findings.error("payload-structure", name, f"tag file is {member.size} bytes, more than "
                       f"the {TAG_FILE_LIMIT} allowed")
        return
    # Into one growing buffer, whose getvalue() hands over its bytes without a copy: the manifest
    # of a large capture (55 MB for 100,000 files) is held once, not as pieces and then joined.
    buffer = io.BytesIO()
    for piece in tar.data():
        digest.update(piece)
        buffer.write(piece)
    scan.tag_files[name] = buffer.getvalue()
    scan.tag_hashes[name] = digest.hexdigest()
