"""Build hostile bundles programmatically: each defect a stranger could send, as a named builder.

A crafted bundle is *self-consistent* unless the defect is an inconsistency: the attacker signs
with their own (generated) key, so seal, signatures, hashes, counts and custody all check out and
only the defect itself is left for evidencekit to catch. Outer members are written with
evidencekit's own OuterWriter, the payload is encrypted with evidencekit's age implementation to a
test identity, and the inner tar is built with ``tarfile`` (or by hand where tarfile refuses).

Run as a script to write every crafted bundle into a folder for manual inspection:
``python -m tests.support.craft OUTDIR``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evidencekit import canonical
from evidencekit.capture import CaptureRequest, CaseInfo, first_event, readme_text
from evidencekit.clock import rfc3339
from evidencekit.crypto import age, sshsig
from evidencekit.crypto.keys import SigningKey
from evidencekit.format import bag
from evidencekit.format.compression import ZSTD, Compressing
from evidencekit.format.documents import (
    COMPRESSED_VERSION,
    FORMAT_VERSION,
    MANIFEST_TYPE,
    PAYLOAD,
    README,
    SEAL,
    SEAL_SIG,
    Seal,
    Signer,
    custody_member,
)
from evidencekit.format.inner import member_header
from evidencekit.format.outer import BLOCK, OuterWriter
from evidencekit.payload import TAG_FILE_LIMIT
from evidencekit.verify import plaintext_limit

CASE = "HOSTILE-0001"
STARTED = 1_780_000_000_123_456_789  # a fixed capture time (ns)
FINISHED = STARTED + 5_000_000_000
COUNT_KEYS = ("files", "directories", "symlinks", "special", "errors", "changed", "skipped")


@dataclass
class Keys:
    signer: SigningKey
    identity: age.X25519Identity
    identity_file: Path
    signer_file: Path

    @classmethod
    def create(cls, folder: Path) -> Keys:
        folder.mkdir(parents=True, exist_ok=True)
        signer = SigningKey.generate("attacker@test")
        signer.save(folder / "attacker")
        identity = age.X25519Identity.generate()
        (folder / "identity.txt").write_text(f"{identity}\n")
        return cls(signer, identity, folder / "identity.txt", folder / "attacker")


# ------------------------------------------------------------------------------ inner tar


@dataclass
class Member:
    """One inner tar member: a TarInfo-like description plus its data."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""
    pax: dict[str, str] = field(default_factory=dict)
    size: int | None = None  # declared size, when it differs from len(data)
    mode: int = 0o644
    raw: bytes | None = None  # hand-made header+data bytes, written as they are

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        info = tarfile.TarInfo(self.name)
        info.type = self.type
        info.mode = self.mode
        info.mtime = STARTED // 1_000_000_000
        info.linkname = self.linkname
        info.size = len(self.data) if self.size is None else self.size
        seconds, nanoseconds = divmod(STARTED, 1_000_000_000)
        info.pax_headers = {"mtime": f"{seconds}.{nanoseconds:09d}", **self.pax}
        if self.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            info.size = self.size or 0
        header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        return header + self.data + b"\0" * (-len(self.data) % BLOCK)


def tar_bytes(members: list[Member]) -> bytes:
    return b"".join(m.encode() for m in members) + b"\0" * (2 * BLOCK)


@dataclass
class Bag:
    """The plaintext of a payload plus what the seal must say about it."""

    plaintext: bytes
    manifest_root: str
    manifest_sha256: str
    counts: dict[str, int]
    total_bytes: int


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# What the tar headers of Member say (mode aside): the manifest records the same, as capture's.
_STAT = {"mode": 0o644, "uid": 0, "gid": 0, "mtime": rfc3339(STARTED)}


def file_entry(bag_path: str, data: bytes, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"source": 0, "bag_path": bag_path, "kind": "file", "error": None,
                             "path": bag_path[len("data/"):], "size": len(data),
                             "sha256": _sha(data), "mime": "text/plain",
                             "changed_during_read": False, "changes": [], **_STAT}
    entry.update(extra)
    return entry


def dir_entry(bag_path: str, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"source": 0, "bag_path": bag_path, "kind": "directory",
                             "error": None, "path": bag_path[len("data/"):], **_STAT,
                             "mode": 0o755}
    entry.update(extra)
    return entry


def link_entry(bag_path: str, target: str, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"source": 0, "bag_path": bag_path, "kind": "symlink",
                             "error": None, "path": bag_path[len("data/"):], "target": target}
    entry.update(extra)
    return entry


def manifest_document(entries: list[dict[str, Any]], counts: dict[str, int], total: int,
                      root: str) -> dict[str, Any]:
    return {
        "type": MANIFEST_TYPE, "format_version": FORMAT_VERSION,
        "case": {"case_id": CASE, "examiner": "Mallory", "description": "", "legal_basis": "",
                 "organisation": ""},
        "capture": {"started": rfc3339(STARTED), "finished": rfc3339(FINISHED),
                    "clock_source": "test", "host": "attacker", "user": "mallory", "os": "test",
                    "command_line": ["craft"], "tools": {"evidencekit": "craft"}, "cwd": "/",
                    "python_executable": sys.executable},
        "sources": [{"index": 0, "given": "/evidence", "path": "/evidence",
                     "bag_name": "evidence", "via_symlink": False}],
        "summary": {"counts": counts, "total_bytes": total, "manifest_root": root},
        "entries": entries,
    }


def build_bag(keys: Keys, files: dict[str, bytes] | None = None, *,
              directories: list[str] | None = None,
              extra_entries: list[dict[str, Any]] | None = None,
              entries: list[dict[str, Any]] | None = None,
              extra_members: list[Member] | None = None,
              data_members: list[Member] | None = None,
              manifest_json: bytes | None = None,
              edit_manifest: Callable[[dict[str, Any]], None] | None = None,
              manifest_signer: SigningKey | None = None,
              hard_links: dict[str, str] | None = None,
              extra_tags: list[tuple[str, bytes]] | None = None,
              tail: bytes = b"") -> Bag:
    """A complete, self-consistent bag; every keyword bends one part of it.

    *files*: ``{"data/evidence/x": content}``, stored as tar members and listed everywhere.
    *data_members*: raw tar members placed among the data (not listed anywhere).
    *entries* replaces, *extra_entries* extends the manifest's entries; *edit_manifest* edits the
    whole document; *manifest_json* replaces its bytes outright (still signed and hashed).
    *hard_links*: ``{name: earlier name}`` for files stored as a tar hard link (format 2).
    """
    hard_links = hard_links or {}
    files = {"data/evidence/note.txt": b"hello\n"} if files is None else files
    # Capture writes a folder member for each folder it found, never for data/ itself.
    directories = ["data/evidence"] if directories is None else directories
    members = [Member(f"{bag.BAG_ROOT}/{bag.BAGIT}", bag.BAGIT_TXT)]
    members += [Member(f"{bag.BAG_ROOT}/{d}", type=tarfile.DIRTYPE, mode=0o755)
                for d in directories]
    members += [Member(f"{bag.BAG_ROOT}/{name}", data) if name not in hard_links else
                Member(f"{bag.BAG_ROOT}/{name}", type=tarfile.LNKTYPE,
                       linkname=f"{bag.BAG_ROOT}/{hard_links[name]}")
                for name, data in files.items()]
    members += data_members or []
    manifest = b"".join(bag.manifest_line(_sha(data), name) for name, data in files.items())
    root = _sha(manifest)
    counts = dict.fromkeys(COUNT_KEYS, 0)
    counts["files"] = len(files)
    counts["directories"] = len(directories)
    total = sum(len(d) for d in files.values())
    info = bag.evidencekit_bag_info(  # what the manifest_document below says, as capture makes it
        tool_version="craft", bagging_date=rfc3339(STARTED)[:10], case_id=CASE,
        examiner="Mallory", organisation="", description="", total_bytes=total,
        files=len(files))
    if entries is None:
        entries = [dir_entry(d) for d in directories]
        entries += [file_entry(name, data, **({"link_to": hard_links[name]}
                                              if name in hard_links else {}))
                    for name, data in files.items()]
    entries = entries + (extra_entries or [])
    document = manifest_document(entries, counts, total, root)
    if edit_manifest is not None:
        edit_manifest(document)
    ek_manifest = manifest_json if manifest_json is not None else canonical.dumps(document)
    signature = sshsig.sign(manifest_signer or keys.signer, ek_manifest)
    tags = [(bag.BAGIT, bag.BAGIT_TXT), (bag.MANIFEST, manifest), (bag.BAG_INFO, info),
            (bag.EK_MANIFEST, ek_manifest), (bag.EK_MANIFEST_SIG, signature),
            *(extra_tags or [])]
    members += [Member(f"{bag.BAG_ROOT}/{name}", data) for name, data in tags[1:]]
    members += extra_members or []
    tagmanifest = b"".join(bag.manifest_line(_sha(data), name) for name, data in tags)
    members.append(Member(f"{bag.BAG_ROOT}/{bag.TAGMANIFEST}", tagmanifest))
    return Bag(tar_bytes(members) + tail, root, _sha(ek_manifest), counts, total)


# ---------------------------------------------------------------------------- outer layer


@dataclass
class Outer:
    """Knobs for the outer layer."""

    recipients: list[age.Recipient] | None = None
    payload: bytes | None = None  # replaces the encrypted payload (the seal still matches it)
    seal_edit: Callable[[Seal], Seal] | None = None
    seal_json: bytes | None = None  # replaces seal.json's bytes (signed as they are)
    seal_signer: SigningKey | None = None  # signs seal.json instead of the sealer
    members: list[tuple[str, bytes]] | None = None  # replaces the member list entirely


def encrypt(plaintext: bytes, recipients: list[age.Recipient]) -> bytes:
    return age.encrypt(plaintext, recipients)


def write_bundle(path: Path, keys: Keys, inner: Bag, outer: Outer | None = None) -> Path:
    """Encrypt *inner*, seal and sign everything, write the outer tar at *path*."""
    outer = outer or Outer()
    recipients = outer.recipients or [keys.identity.recipient()]
    payload = outer.payload if outer.payload is not None else encrypt(inner.plaintext, recipients)
    readme = readme_text(CASE, rfc3339(STARTED)).encode()
    signer = Signer(" ".join(keys.signer.public.openssh_line().split()[:2]),
                    keys.signer.public.fingerprint)
    seal = Seal(case_id=CASE, created=rfc3339(FINISHED), capture_started=rfc3339(STARTED),
                readme_sha256=_sha(readme), payload_size=len(payload),
                payload_sha256=_sha(payload), manifest_root=inner.manifest_root,
                manifest_sha256=inner.manifest_sha256, counts=inner.counts,
                total_bytes=inner.total_bytes, complete=True, signer=signer, tool_version="0.1.0")
    if outer.seal_edit is not None:
        seal = outer.seal_edit(seal)
    seal_json = outer.seal_json if outer.seal_json is not None else seal.to_json()
    seal_sig = sshsig.sign(outer.seal_signer or keys.signer, seal_json)
    request = CaptureRequest([], path, CaseInfo(CASE, "Mallory"), recipients, keys.signer, [])
    event = first_event(request, seal, _sha(seal_json), FINISHED).to_json()
    members = outer.members or [
        (README, readme), (PAYLOAD, payload), (SEAL, seal_json), (SEAL_SIG, seal_sig),
        (custody_member(1), event), (custody_member(1) + ".sig", sshsig.sign(keys.signer, event)),
    ]
    mtimes = {README: STARTED, PAYLOAD: STARTED}
    with open(path, "wb") as f:
        writer = OuterWriter(f)
        for name, data in members:
            writer.add_bytes(name, data, mtimes.get(name, FINISHED) // 1_000_000_000)
        writer.finish()
    return path


def seal_edit(**changes: Any) -> Callable[[Seal], Seal]:
    return lambda seal: replace(seal, **changes)


# ------------------------------------------------------------------- hand-made tar headers


def raw_header(name: bytes, size: int, typeflag: bytes, *, base256_size: bool = False) -> bytes:
    """A ustar header block built by hand (tarfile refuses some of what attackers write)."""
    block = bytearray(BLOCK)
    block[0 : len(name)] = name
    block[100:108] = b"0000644\0"
    block[108:116] = b"0000000\0"
    block[116:124] = b"0000000\0"
    if base256_size:
        block[124:136] = b"\x80" + size.to_bytes(11, "big")
    else:
        block[124:136] = b"%011o\0" % size
    block[136:148] = b"%011o\0" % (STARTED // 1_000_000_000)
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[257:265] = b"ustar\x0000"
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def pax_record(key: str, value: str | bytes) -> bytes:
    body = b" " + key.encode() + b"=" + (value if isinstance(value, bytes) else value.encode()) \
        + b"\n"
    length = len(body) + 1
    while len(b"%d" % length) + len(body) != length:
        length += 1
    return b"%d" % length + body


def canonical_member(name: str, data: bytes = b"", *, size: int | None = None,
                     kind: bytes = tarfile.REGTYPE, mode: int = 0o644) -> Member:
    """A member whose header is exactly what evidencekit writes (whatever size it declares):
    it passes the reader's canonical-header check, so what follows is what is tested."""
    header = member_header(name, kind, len(data) if size is None else size, mode, STARTED, 0, 0)
    assert header is not None
    return Member(name, raw=header + data + b"\0" * (-len(data) % BLOCK))


def raw_pax_member(name: str, records: bytes, data: bytes = b"", *, declared: int | None = None,
                   typeflag: bytes = b"0") -> Member:
    """A pax header holding *records* (any bytes), then a member; *declared* lies about the
    pax header's own size (base-256 when large)."""
    size = len(records) if declared is None else declared
    header = raw_header(b"PaxHeaders/x", size, b"x", base256_size=size > 8**11 - 1)
    body = records + b"\0" * (-len(records) % BLOCK)
    member = raw_header(name.encode(), len(data), typeflag) + data + b"\0" * (-len(data) % BLOCK)
    return Member(name, raw=header + body + member)


# ------------------------------------------------------------------------- the catalogue
#
# Each builder writes one bundle named after its defect and returns its path. ``expected`` is
# what verify must say (exit code and a phrase from the one-line finding or error).


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path, Keys], Path]
    exit_codes: tuple[int, ...] = (1,)
    # Appears in the JSON report (findings or error message), lower-case. Required for every
    # failing case (an empty phrase would match any message); empty for the exit-0 cases.
    phrase: str = ""
    # When extract says it in other words than verify (it stops at the first write problem).
    extract_phrase: str | None = None
    # It declares a size far beyond what it holds: the peak memory of verify and extract is
    # measured (test_memory_stays_flat) and must not grow with the declared size.
    memory_bound: bool = False

    def phrase_for(self, command: str) -> str:
        return self.extract_phrase if command == "extract" and self.extract_phrase else self.phrase


CATALOGUE: list[Case] = []


def case(name: str, exit_codes: tuple[int, ...] = (1,), phrase: str = "",
         memory_bound: bool = False, extract_phrase: str | None = None
         ) -> Callable[[Callable[[Path, Keys], Path]], Callable[[Path, Keys], Path]]:
    if exit_codes != (0,) and not phrase.strip():
        raise ValueError(f"case {name}: a failing case needs the phrase its message must hold")

    def register(build: Callable[[Path, Keys], Path]) -> Callable[[Path, Keys], Path]:
        CATALOGUE.append(Case(name, build, exit_codes, phrase.lower(),
                              extract_phrase.lower() if extract_phrase else None, memory_bound))
        return build
    return register


def _bundle(folder: Path, name: str) -> Path:
    return folder / f"{name}.evidence"


@case("valid", exit_codes=(0,))
def valid(folder: Path, keys: Keys) -> Path:
    """Control: a correct crafted bundle verifies and extracts (the harness itself is sound)."""
    files = {"data/evidence/note.txt": b"hello\n", "data/evidence/sub/deeper.txt": b"x" * 2000}
    entries = [dir_entry("data/evidence"), dir_entry("data/evidence/sub"),
               *(file_entry(n, d) for n, d in files.items()),
               link_entry("data/evidence/link", "sub/deeper.txt")]
    counts_fix = _counts(symlinks=1, directories=2)
    return write_bundle(_bundle(folder, "valid"), keys,
                        build_bag(keys, files, directories=["data/evidence",
                                                            "data/evidence/sub"],
                                  entries=entries, edit_manifest=counts_fix),
                        Outer(seal_edit=_seal_counts(symlinks=1, directories=2)))


def _counts(**changes: int) -> Callable[[dict[str, Any]], None]:
    def edit(document: dict[str, Any]) -> None:
        document["summary"]["counts"].update(changes)
    return edit


def _seal_counts(**changes: int) -> Callable[[Seal], Seal]:
    return lambda seal: replace(seal, counts={**seal.counts, **changes})


# --- the payload is not what it should be


@case("payload-not-age", phrase="not an age file")
def payload_not_age(folder: Path, keys: Keys) -> Path:
    return write_bundle(_bundle(folder, "payload-not-age"), keys, build_bag(keys),
                        Outer(payload=b"PK\x03\x04 this is a zip, not age" + os.urandom(300)))


@case("payload-empty", phrase="age header")
def payload_empty(folder: Path, keys: Keys) -> Path:
    return write_bundle(_bundle(folder, "payload-empty"), keys, build_bag(keys),
                        Outer(payload=b""))


@case("age-unknown-stanza-only", exit_codes=(4,), phrase="none of the")
def age_unknown_stanza_only(folder: Path, keys: Keys) -> Path:
    """Only a stanza type nobody knows: no key can open it (exit 4, not a crash)."""
    payload = _restanza(encrypt(build_bag(keys).plaintext, [keys.identity.recipient()]),
                        b"-> made-up-type arg1 arg2\nAAAA\n")
    return write_bundle(_bundle(folder, "age-unknown-stanza-only"), keys, build_bag(keys),
                        Outer(payload=payload))


def _restanza(payload: bytes, stanzas: bytes) -> bytes:
    """Replace every stanza of an age file by *stanzas* (the MAC no longer matches)."""
    header_end = payload.index(b"\n---") + 1
    first_line = payload.index(b"\n") + 1
    return payload[:first_line] + stanzas + payload[header_end:]


@case("age-malformed-stanza", phrase="age header")
def age_malformed_stanza(folder: Path, keys: Keys) -> Path:
    payload = encrypt(build_bag(keys).plaintext, [keys.identity.recipient()])
    payload = _restanza(payload, b"-> X25519\n!!!not base64!!!\n")
    return write_bundle(_bundle(folder, "age-malformed-stanza"), keys, build_bag(keys),
                        Outer(payload=payload))


@case("age-stanza-body-not-base64", phrase="age header")
def age_stanza_body_not_base64(folder: Path, keys: Keys) -> Path:
    payload = encrypt(build_bag(keys).plaintext, [keys.identity.recipient()])
    start = payload.index(b"\n", payload.index(b"-> X25519")) + 1
    payload = payload[:start] + b"*" * 10 + payload[start + 10:]
    return write_bundle(_bundle(folder, "age-stanza-body-not-base64"), keys, build_bag(keys),
                        Outer(payload=payload))


@case("age-header-line-endless", phrase="age header", memory_bound=True)
def age_header_line_endless(folder: Path, keys: Keys) -> Path:
    """A header line of 4 MiB without a line feed: read with a bound, refused."""
    payload = b"age-encryption.org/v1\n-> X25519 " + b"A" * (4 << 20)
    return write_bundle(_bundle(folder, "age-header-line-endless"), keys, build_bag(keys),
                        Outer(payload=payload))


@case("age-too-many-stanzas", phrase="stanzas")
def age_too_many_stanzas(folder: Path, keys: Keys) -> Path:
    payload = encrypt(build_bag(keys).plaintext, [keys.identity.recipient()])
    payload = _restanza(payload, b"-> other x\nAAAA\n" * 2000)
    return write_bundle(_bundle(folder, "age-too-many-stanzas"), keys, build_bag(keys),
                        Outer(payload=payload))


@case("age-scrypt-huge-work-factor", exit_codes=(4,), phrase="none of the")
def age_scrypt_huge_work_factor(folder: Path, keys: Keys) -> Path:
    """A passphrase stanza demanding 2^40 scrypt work (memory/time bomb): refused up front."""
    salt = base64.b64encode(os.urandom(16)).rstrip(b"=")
    payload = encrypt(build_bag(keys).plaintext, [keys.identity.recipient()])
    payload = _restanza(payload, b"-> scrypt " + salt + b" 40\n" + b"A" * 43 + b"\n")
    return write_bundle(_bundle(folder, "age-scrypt-huge-work-factor"), keys, build_bag(keys),
                        Outer(payload=payload))


@case("age-scrypt-work-factor-22", exit_codes=(4,), phrase="none of the")
def age_scrypt_work_factor_22(folder: Path, keys: Keys) -> Path:
    """The largest work factor age readers accept: 4 GiB of scrypt memory for a passphrase."""
    salt = base64.b64encode(os.urandom(16)).rstrip(b"=")
    payload = encrypt(build_bag(keys).plaintext, [keys.identity.recipient()])
    payload = _restanza(payload, b"-> scrypt " + salt + b" 22\n" + b"A" * 43 + b"\n")
    return write_bundle(_bundle(folder, "age-scrypt-work-factor-22"), keys, build_bag(keys),
                        Outer(payload=payload))


@case("age-truncated-payload", phrase="age payload")
def age_truncated_payload(folder: Path, keys: Keys) -> Path:
    payload = encrypt(build_bag(keys, {"data/evidence/big": os.urandom(200_000)}).plaintext,
                      [keys.identity.recipient()])
    return write_bundle(_bundle(folder, "age-truncated-payload"), keys,
                        build_bag(keys, {"data/evidence/big": b""}),
                        Outer(payload=payload[: len(payload) // 2]))


# --- format version 4: the payload tar compressed with zstd (docs/FORMAT.md §4.1)


def zstd(plaintext: bytes, zeros_after: int = 0) -> bytes:
    """*plaintext* compressed as capture compresses it, followed by *zeros_after* zero bytes in
    the same frame (a few kilobytes per gigabyte)."""
    out = io.BytesIO()
    writer = Compressing(out)
    writer.write(plaintext)
    zeros = bytes(1 << 20)
    while zeros_after > 0:
        writer.write(zeros[: min(zeros_after, len(zeros))])
        zeros_after -= len(zeros)
    writer.close()
    return out.getvalue()


def version_4(seal: Seal) -> Seal:
    return replace(seal, format_version=COMPRESSED_VERSION, payload_compression=ZSTD)


def _compressed_bundle(folder: Path, keys: Keys, name: str, payload_plaintext: bytes,
                       inner: Bag, edit: Callable[[Seal], Seal] = version_4) -> Path:
    payload = encrypt(payload_plaintext, [keys.identity.recipient()])
    return write_bundle(_bundle(folder, name), keys, inner, Outer(payload=payload, seal_edit=edit))


@case("valid-v4", exit_codes=(0,))
def valid_v4(folder: Path, keys: Keys) -> Path:
    """Control: a correct version 4 bundle verifies and extracts."""
    inner = build_bag(keys)
    return _compressed_bundle(folder, keys, "valid-v4", zstd(inner.plaintext), inner)


@case("zstd-bomb", phrase="decompression bomb", memory_bound=True)
def zstd_bomb(folder: Path, keys: Keys) -> Path:
    """A few kilobytes of zstd that expand past what the seal allows: the reader stops there."""
    inner = build_bag(keys)
    seal = version_4(Seal(CASE, "", "", "0" * 64, 0, "0" * 64, "0" * 64, "0" * 64,
                          inner.counts, inner.total_bytes, True, Signer("", ""), ""))
    beyond = plaintext_limit(seal, events=1) + (1 << 20)
    return _compressed_bundle(folder, keys, "zstd-bomb", zstd(inner.plaintext, beyond), inner)


def _zstd_library() -> Any:
    if sys.version_info >= (3, 14):
        from compression import zstd as library
    else:
        from backports import zstd as library
    return library


def zstd_window(plaintext: bytes, window_log: int, zeros_after: int) -> bytes:
    """*plaintext* and *zeros_after* zeros in one frame that declares a window of 2^window_log
    bytes (which a decoder must allocate, and fills as the output goes through it)."""
    zstd_module = _zstd_library()
    options = {zstd_module.CompressionParameter.compression_level: 1,
               zstd_module.CompressionParameter.window_log: window_log}
    compressor = zstd_module.ZstdCompressor(options=options)
    parts = [compressor.compress(plaintext)]
    zeros = bytes(1 << 20)
    while zeros_after > 0:
        parts.append(compressor.compress(zeros[: min(zeros_after, len(zeros))]))
        zeros_after -= len(zeros)
    parts.append(compressor.flush())
    return b"".join(parts)


@case("zstd-huge-window", phrase="zstd window", memory_bound=True)
def zstd_huge_window(folder: Path, keys: Keys) -> Path:
    """A frame declaring zstd's largest default window (128 MiB) and filling it with zeros,
    within what the seal allows: a decoder that accepts it holds 128 MiB more."""
    inner = build_bag(keys)
    return _compressed_bundle(folder, keys, "zstd-huge-window",
                              zstd_window(inner.plaintext, 27, 512 << 20), inner)


def _skippable(content: bytes) -> bytes:
    return (0x184D2A50).to_bytes(4, "little") + len(content).to_bytes(4, "little") + content


@case("zstd-skippable-frame", phrase="after its zstd frame")
def zstd_skippable_frame(folder: Path, keys: Keys) -> Path:
    """Bytes hidden in a skippable frame after the tar's frame: zstd -d skips them, so nothing
    would ever show them while the bundle verified."""
    inner = build_bag(keys)
    return _compressed_bundle(folder, keys, "zstd-skippable-frame",
                              zstd(inner.plaintext) + _skippable(b"hidden " * 1000), inner)


@case("zstd-many-frames", phrase="after its zstd frame")
def zstd_many_frames(folder: Path, keys: Keys) -> Path:
    """The tar, then 100,000 empty frames (9 bytes each; each a decoder's set-up to pay)."""
    inner = build_bag(keys)
    return _compressed_bundle(folder, keys, "zstd-many-frames",
                              zstd(inner.plaintext) + zstd(b"") * 100_000, inner)


@case("zstd-cut-short", phrase="middle of a zstd frame")
def zstd_cut_short(folder: Path, keys: Keys) -> Path:
    inner = build_bag(keys)
    return _compressed_bundle(folder, keys, "zstd-cut-short", zstd(inner.plaintext)[:-20], inner)


@case("zstd-seal-but-plain-tar", phrase="not the zstd data")
def zstd_seal_but_plain_tar(folder: Path, keys: Keys) -> Path:
    inner = build_bag(keys)
    return _compressed_bundle(folder, keys, "zstd-seal-but-plain-tar", inner.plaintext, inner)


@case("seal-unknown-compression", phrase="compressed with 'gzip'")
def seal_unknown_compression(folder: Path, keys: Keys) -> Path:
    inner = build_bag(keys)
    return _compressed_bundle(folder, keys, "seal-unknown-compression", zstd(inner.plaintext),
                              inner, lambda seal: replace(version_4(seal),
                                                          payload_compression="gzip"))


@case("seal-compression-in-version-2", phrase="unexpected fields ['payload_compression']")
def seal_compression_in_version_2(folder: Path, keys: Keys) -> Path:
    inner = build_bag(keys)
    return _compressed_bundle(folder, keys, "seal-compression-in-version-2",
                              zstd(inner.plaintext), inner,
                              lambda seal: replace(seal, payload_compression=ZSTD))


# --- the inner tar tries to escape or confuse


@case("tar-dotdot-member", phrase="unsafe")
def tar_dotdot_member(folder: Path, keys: Keys) -> Path:
    bad = [Member("bag/data/../../../../escaped-dotdot.txt", b"owned\n"),
           Member("../escaped-top.txt", b"owned\n")]
    return write_bundle(_bundle(folder, "tar-dotdot-member"), keys,
                        build_bag(keys, data_members=bad))


@case("tar-absolute-member", phrase="unsafe")
def tar_absolute_member(folder: Path, keys: Keys) -> Path:
    bad = [Member("/tmp/evidencekit-hostile-absolute.txt", b"owned\n"),
           Member("bag//tmp/evidencekit-hostile-absolute2.txt", b"owned\n")]
    return write_bundle(_bundle(folder, "tar-absolute-member"), keys,
                        build_bag(keys, data_members=bad))


@case("tar-symlink-escape", phrase="link")
def tar_symlink_escape(folder: Path, keys: Keys) -> Path:
    bad = [Member("bag/data/evidence/up", type=tarfile.SYMTYPE, linkname="../../../.."),
           Member("bag/data/evidence/up/escaped-through-link.txt", b"owned\n")]
    return write_bundle(_bundle(folder, "tar-symlink-escape"), keys,
                        build_bag(keys, data_members=bad))


@case("tar-hardlink-escape", phrase="link")
def tar_hardlink_escape(folder: Path, keys: Keys) -> Path:
    bad = [Member("bag/data/evidence/passwd", type=tarfile.LNKTYPE, linkname="/etc/passwd"),
           Member("bag/data/evidence/h2", type=tarfile.LNKTYPE, linkname="../../outside")]
    return write_bundle(_bundle(folder, "tar-hardlink-escape"), keys,
                        build_bag(keys, data_members=bad))


_LINKED = {"data/evidence/note.txt": b"hello\n", "data/evidence/second-name.txt": b"hello\n"}
_SECOND_NAME = {"data/evidence/second-name.txt": "data/evidence/note.txt"}


@case("valid-hard-link", exit_codes=(0,))
def valid_hard_link(folder: Path, keys: Keys) -> Path:
    """Control: a second name of a file, stored as a tar hard link (format 2), verifies."""
    return write_bundle(_bundle(folder, "valid-hard-link"), keys,
                        build_bag(keys, dict(_LINKED), hard_links=_SECOND_NAME))


@case("tar-hardlink-unlisted", phrase="disagree")
def tar_hardlink_unlisted(folder: Path, keys: Keys) -> Path:
    """A hard link in the tar where the signed manifest records a plain file."""
    def drop_link_to(document: dict[str, Any]) -> None:
        for entry in document["entries"]:
            entry.pop("link_to", None)
    return write_bundle(_bundle(folder, "tar-hardlink-unlisted"), keys,
                        build_bag(keys, dict(_LINKED), hard_links=_SECOND_NAME,
                                  edit_manifest=drop_link_to))


@case("tar-hardlink-in-format-1", phrase="format version 1 bundle holds a hard link")
def tar_hardlink_in_format_1(folder: Path, keys: Keys) -> Path:
    return write_bundle(_bundle(folder, "tar-hardlink-in-format-1"), keys,
                        build_bag(keys, dict(_LINKED), hard_links=_SECOND_NAME,
                                  edit_manifest=lambda d: d.update(format_version=1)))


@case("manifest-link-to-itself", phrase="link_to is not the bag_path of another file")
def manifest_link_to_itself(folder: Path, keys: Keys) -> Path:
    def self_link(document: dict[str, Any]) -> None:
        document["entries"][-1]["link_to"] = document["entries"][-1]["bag_path"]
    return write_bundle(_bundle(folder, "manifest-link-to-itself"), keys,
                        build_bag(keys, dict(_LINKED), hard_links=_SECOND_NAME,
                                  edit_manifest=self_link))


@case("tar-device-and-fifo", phrase="special")
def tar_device_and_fifo(folder: Path, keys: Keys) -> Path:
    bad = [Member("bag/data/evidence/null", type=tarfile.CHRTYPE),
           Member("bag/data/evidence/fifo", type=tarfile.FIFOTYPE)]
    return write_bundle(_bundle(folder, "tar-device-and-fifo"), keys,
                        build_bag(keys, data_members=bad))


@case("tar-duplicate-member", phrase="twice")
def tar_duplicate_member(folder: Path, keys: Keys) -> Path:
    bad = [Member("bag/data/evidence/note.txt", b"second copy with other content\n")]
    return write_bundle(_bundle(folder, "tar-duplicate-member"), keys,
                        build_bag(keys, data_members=bad))


@case("tar-file-under-file", phrase="file in the payload is not listed in the manifest",
      extract_phrase="payload file data/evidence/note.txt/child lies under a file")
def tar_file_under_file(folder: Path, keys: Keys) -> Path:
    """A member whose parent is a file: extraction must refuse cleanly, not crash."""
    bad = [Member("bag/data/evidence/note.txt/child", b"x\n")]
    return write_bundle(_bundle(folder, "tar-file-under-file"), keys,
                        build_bag(keys, data_members=bad))


@case("tar-gnu-longname-escape", phrase="is a gnu long name (type 'l')")
def tar_gnu_longname_escape(folder: Path, keys: Keys) -> Path:
    name = b"bag/data/" + b"../" * 40 + b"escaped-longname.txt"
    longname = raw_header(b"././@LongLink", len(name) + 1, b"L") + name + b"\0" \
        + b"\0" * (-(len(name) + 1) % BLOCK)
    member = raw_header(b"short", 6, b"0") + b"owned\n" + b"\0" * (BLOCK - 6)
    return write_bundle(_bundle(folder, "tar-gnu-longname-escape"), keys,
                        build_bag(keys, data_members=[Member("x", raw=longname + member)]))


@case("tar-pax-path-escape", phrase="holds a tar header evidencekit never writes: the header of "
      "member 'bag/data/../../escaped-pax.txt'")
def tar_pax_path_escape(folder: Path, keys: Keys) -> Path:
    """The ustar name is harmless, the pax ``path`` record (which wins) climbs out."""
    records = pax_record("path", "bag/data/../../escaped-pax.txt")
    return write_bundle(_bundle(folder, "tar-pax-path-escape"), keys,
                        build_bag(keys, data_members=[raw_pax_member("bag/data/harmless",
                                                                     records, b"owned\n")]))


# --- headers another tar program reads differently, and trees other than the signed one
# (issue 19: what a forged reseal would hold; tests/e2e/test_forged_reseal.py forges those for
# real, these are the same defects signed by the attacker alone)


@case("tar-pax-path-trick", phrase="holds a tar header evidencekit never writes")
def tar_pax_path_trick(folder: Path, keys: Keys) -> Path:
    """Type NUL, ustar name ending in '/', pax ``path`` naming a file: read as a folder from the
    ustar name, it was a regular file holding the next block for GNU tar (which applies the
    pax path first)."""
    records = pax_record("mtime", f"{STARTED // 10**9}.{STARTED % 10**9:09d}") + \
        pax_record("path", "bag/data/evidence/receipt.txt")
    text = canonical_member("bag/data/evidence/PAID IN FULL", kind=tarfile.DIRTYPE,
                            mode=0o755).raw or b""
    raw = (raw_header(b"PaxHeaders/x", len(records), b"x") + records
           + b"\0" * (-len(records) % BLOCK)
           + raw_header(b"bag/data/evidence/d/", BLOCK, b"\0") + text[-BLOCK:])
    return write_bundle(_bundle(folder, "tar-pax-path-trick"), keys,
                        build_bag(keys, data_members=[Member("x", raw=raw)]))


@case("tar-old-style-member", phrase="is an old-style regular file (type nul)")
def tar_old_style_member(folder: Path, keys: Keys) -> Path:
    return write_bundle(_bundle(folder, "tar-old-style-member"), keys,
                        build_bag(keys, data_members=[Member("bag/data/evidence/old",
                                                             b"x\n", type=tarfile.AREGTYPE)]))


@case("tar-pax-global-header", phrase="is a pax global header (type 'g')")
def tar_pax_global_header(folder: Path, keys: Keys) -> Path:
    records = pax_record("path", "bag/data/evidence/everything.txt")
    raw = raw_header(b"PaxHeaders/g", len(records), b"g") + records \
        + b"\0" * (-len(records) % BLOCK)
    return write_bundle(_bundle(folder, "tar-pax-global-header"), keys,
                        build_bag(keys, data_members=[Member("g", raw=raw)]))


@case("tar-pax-unknown-keyword", phrase="holds a tar header evidencekit never writes: the header "
      "of member 'bag/data/evidence/note.txt'")
def tar_pax_unknown_keyword(folder: Path, keys: Keys) -> Path:
    """A listed file whose pax header also carries a keyword evidencekit never writes (here
    ``SCHILY.xattr``: what bsdtar and GNU tar --xattrs act on, evidencekit not)."""
    files = {"data/evidence/note.txt": b"hello\n"}
    inner = build_bag(keys, files)
    plain = inner.plaintext.replace(
        tar_bytes([Member("bag/data/evidence/note.txt", b"hello\n")])[:-2 * BLOCK],
        tar_bytes([Member("bag/data/evidence/note.txt", b"hello\n",
                          pax={"SCHILY.xattr.user.note": "planted"})])[:-2 * BLOCK])
    assert plain != inner.plaintext
    return write_bundle(_bundle(folder, "tar-pax-unknown-keyword"), keys,
                        replace(inner, plaintext=plain))


@case("tar-pax-duplicate-path", phrase="holds a tar header evidencekit never writes")
def tar_pax_duplicate_path(folder: Path, keys: Keys) -> Path:
    """Two ``path`` records in one pax header: tar programs differ on which one wins."""
    records = (pax_record("mtime", f"{STARTED // 10**9}.{STARTED % 10**9:09d}")
               + pax_record("path", "bag/data/evidence/note.txt")
               + pax_record("path", "bag/data/evidence/other.txt"))
    member = raw_pax_member("bag/data/evidence/note.txt", records, b"hello\n")
    return write_bundle(_bundle(folder, "tar-pax-duplicate-path"), keys,
                        build_bag(keys, data_members=[member]))


@case("tree-extra-folder", phrase="folder in the payload is not in manifest.json")
def tree_extra_folder(folder: Path, keys: Keys) -> Path:
    planted = Member("bag/data/evidence/planted", type=tarfile.DIRTYPE, mode=0o755)
    return write_bundle(_bundle(folder, "tree-extra-folder"), keys,
                        build_bag(keys, data_members=[planted]))


@case("tree-missing-folder", phrase="folder recorded in manifest.json is not in the payload")
def tree_missing_folder(folder: Path, keys: Keys) -> Path:
    return write_bundle(_bundle(folder, "tree-missing-folder"), keys,
                        build_bag(keys, extra_entries=[dir_entry("data/evidence/empty")]))


@case("tree-symlink-stored-as-folder", phrase="the payload holds a folder where manifest.json "
      "records a symbolic link")
def tree_symlink_stored_as_folder(folder: Path, keys: Keys) -> Path:
    stored = Member("bag/data/evidence/link", type=tarfile.DIRTYPE, mode=0o755)
    return write_bundle(_bundle(folder, "tree-symlink-stored-as-folder"), keys,
                        build_bag(keys, extra_entries=[link_entry("data/evidence/link",
                                                                  "note.txt")],
                                  data_members=[stored]))


@case("tree-metadata-differs", phrase="the payload's tar header differs from manifest.json (mode)")
def tree_metadata_differs(folder: Path, keys: Keys) -> Path:
    def private(document: dict[str, Any]) -> None:
        document["entries"][-1]["mode"] = 0o600  # the tar says 0644
    return write_bundle(_bundle(folder, "tree-metadata-differs"), keys,
                        build_bag(keys, edit_manifest=private))


@case("tar-not-a-tar", phrase="the decrypted payload is not a valid tar: no tar header at "
      "byte 0")
def tar_not_a_tar(folder: Path, keys: Keys) -> Path:
    plain = build_bag(keys)
    plain = replace(plain, plaintext=os.urandom(4096))
    return write_bundle(_bundle(folder, "tar-not-a-tar"), keys, plain)


# Names a terminal would act on: a line of its own that claims success, a cursor that goes back
# to overwrite the line (ESC [2K, CR), a right-to-left override that reverses what follows.
TERMINAL_NAMES = ("bag/data/evidence/x\x1b[2K\rVERIFIED: all 9 files decrypted and match",
                  "bag/data/evidence/y\nVERIFIED: everything fine",
                  "bag/data/evidence/report\u202etxt.exe",
                  "bag/data/evidence/\x9b31mred")


@case("tar-member-name-terminal-escape", phrase="file in the payload is not listed in the "
      "manifest")
def tar_member_name_terminal_escape(folder: Path, keys: Keys) -> Path:
    """Member names with control characters: reported (they are not listed), and printed for
    people with the controls made visible (test_hostile_names_never_reach_the_terminal)."""
    bad = [Member(name, b"x\n") for name in TERMINAL_NAMES]
    return write_bundle(_bundle(folder, "tar-member-name-terminal-escape"), keys,
                        build_bag(keys, data_members=bad))


@case("tar-data-after-end", phrase="follow the end")
def tar_data_after_end(folder: Path, keys: Keys) -> Path:
    return write_bundle(_bundle(folder, "tar-data-after-end"), keys,
                        build_bag(keys, tail=b"hidden evidence after the tar's end\n"))


@case("tar-garbage-block-at-end", phrase="the decrypted payload is not a valid tar: no tar "
      "header at byte")
def tar_garbage_block_at_end(folder: Path, keys: Keys) -> Path:
    """A non-zero block where the end-of-archive marker should be (tarfile takes any damaged
    header after the first member for the end of the archive)."""
    inner = build_bag(keys)
    plaintext = inner.plaintext[: -2 * BLOCK] + b"\x01" * BLOCK + bytes(2 * BLOCK)
    return write_bundle(_bundle(folder, "tar-garbage-block-at-end"), keys,
                        replace(inner, plaintext=plaintext))


# --- huge declared sizes and bombs (run under a 1 GiB address-space limit)

HUGE = 10**15
MANY_MEMBERS = 10_000  # canonical headers are three blocks: 15 MB, under the memory test's 16 MiB
SENTINEL = "sentinel.txt"  # a file next to the output folder that no bundle may touch


@case("huge-pax-size-on-file", phrase="member 'bag/data/evidence/huge' ends 999999999987200 "
      "bytes short of its declared size", memory_bound=True)
def huge_pax_size_on_file(folder: Path, keys: Keys) -> Path:
    """A data file whose pax ``size`` claims a petabyte; the stream ends long before."""
    return write_bundle(_bundle(folder, "huge-pax-size-on-file"), keys,
                        build_bag(keys, data_members=[canonical_member("bag/data/evidence/huge",
                                                                       b"tiny\n", size=HUGE)]))


@case("huge-pax-size-on-tag-file", phrase="member 'bag/extra-tag.txt' ends 899996416 bytes "
      "short of its declared size", memory_bound=True)
def huge_pax_size_on_tag_file(folder: Path, keys: Keys) -> Path:
    """A tag file (read into memory by design) claiming 900 MB: never allocated."""
    return write_bundle(_bundle(folder, "huge-pax-size-on-tag-file"), keys,
                        build_bag(keys, extra_members=[canonical_member(
                            "bag/extra-tag.txt", b"tiny\n", size=900_000_000)]))


@case("tag-file-unknown-but-listed", phrase="tag file evidencekit never writes")
def tag_file_unknown_but_listed(folder: Path, keys: Keys) -> Path:
    """An extra tag file, listed (with its right hash) in the unsigned tag manifest: what
    anyone re-encrypting the payload could add; no signature covers it."""
    return write_bundle(_bundle(folder, "tag-file-unknown-but-listed"), keys,
                        build_bag(keys, extra_tags=[("evidencekit/notes.txt",
                                                     b"the suspect confessed\n")]))


@case("tag-file-above-limit", phrase=f"tag file is {TAG_FILE_LIMIT + 1} bytes, more than the "
      f"{TAG_FILE_LIMIT} allowed", memory_bound=True)
def tag_file_above_limit(folder: Path, keys: Keys) -> Path:
    """A tag file declaring one byte more than payload.TAG_FILE_LIMIT (tag files are read into
    memory, so they have a limit): refused by its declared size, before any of it is read."""
    return write_bundle(_bundle(folder, "tag-file-above-limit"), keys,
                        build_bag(keys, extra_members=[canonical_member(
                            "bag/oversized-tag.txt", b"tiny\n", size=TAG_FILE_LIMIT + 1)]))


@case("huge-pax-header", phrase="pax", memory_bound=True)
def huge_pax_header(folder: Path, keys: Keys) -> Path:
    """A pax header block that declares 10^15 bytes of its own: tarfile would read it whole."""
    member = raw_pax_member("bag/data/evidence/x", pax_record("mtime", "1"), b"x",
                            declared=HUGE)
    filler = Member("bag/data/evidence/filler", os.urandom(8 << 20))  # data to slurp
    return write_bundle(_bundle(folder, "huge-pax-header"), keys,
                        build_bag(keys, data_members=[member, filler]))


@case("pax-header-redos", phrase="pax")
def pax_header_redos(folder: Path, keys: Keys) -> Path:
    """A pax header of digits that makes tarfile's regular expressions quadratic (CVE-2024-6232
    style): must be refused in linear time, not parsed for minutes."""
    records = b"2 " * (256 * 1024) + b"=\n"  # 512 KiB of malformed records
    member = raw_pax_member("bag/data/evidence/x", records, b"x")
    return write_bundle(_bundle(folder, "pax-header-redos"), keys,
                        build_bag(keys, data_members=[member]))


@case("pax-header-digits", phrase="holds a tar header evidencekit never writes")
def pax_header_digits(folder: Path, keys: Keys) -> Path:
    """A well-formed record whose value is 512 KiB of digits: tarfile's hdrcharset search is
    quadratic in a run of digits (~400 s here): parsed linearly, then refused (evidencekit writes
    no ``comment`` record)."""
    records = pax_record("comment", "1" * (512 << 10))
    member = raw_pax_member("bag/data/evidence/x", records, b"x")
    return write_bundle(_bundle(folder, "pax-header-digits"), keys,
                        build_bag(keys, data_members=[member]))


@case("huge-gnu-longname", phrase="is a gnu long name (type 'l')", memory_bound=True)
def huge_gnu_longname(folder: Path, keys: Keys) -> Path:
    longname = raw_header(b"././@LongLink", HUGE, b"L", base256_size=True)
    filler = Member("bag/data/evidence/filler", os.urandom(8 << 20))
    return write_bundle(_bundle(folder, "huge-gnu-longname"), keys,
                        build_bag(keys, data_members=[Member("x", raw=longname), filler]))


@case("sparse-bomb-gnu", phrase="sparse", memory_bound=True)
def sparse_bomb_gnu(folder: Path, keys: Keys) -> Path:
    """An old-GNU sparse member: one tiny data block, a real size of a petabyte of zeros."""
    header = bytearray(raw_header(b"bag/data/evidence/sparse", 512, b"S"))
    # sparse map at 386: offset, numbytes (12 octal bytes each); isextended at 482; realsize 483
    header[386:398] = b"%011o\0" % 0
    header[398:410] = b"%011o\0" % 512
    header[483:495] = b"\x80" + HUGE.to_bytes(11, "big")
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    raw = bytes(header) + b"z" * 512
    return write_bundle(_bundle(folder, "sparse-bomb-gnu"), keys,
                        build_bag(keys, data_members=[Member("x", raw=raw)]))


@case("sparse-bomb-pax", phrase="sparse", memory_bound=True)
def sparse_bomb_pax(folder: Path, keys: Keys) -> Path:
    """GNU sparse 1.0 in pax records: a petabyte real size and a map of a billion entries."""
    records = (pax_record("GNU.sparse.major", "1") + pax_record("GNU.sparse.minor", "0")
               + pax_record("GNU.sparse.name", "bag/data/evidence/sparse")
               + pax_record("GNU.sparse.realsize", str(HUGE)))
    sparse_map = b"1000000000\n" + b"0\n1\n" * 200_000
    member = raw_pax_member("bag/data/evidence/GNUSparseFile.0/sparse", records,
                            sparse_map + b"\0" * (-len(sparse_map) % BLOCK))
    return write_bundle(_bundle(folder, "sparse-bomb-pax"), keys,
                        build_bag(keys, data_members=[member]))


@case("many-members-bomb", phrase="file in the payload is not listed in the manifest",
      memory_bound=True)
def many_members_bomb(folder: Path, keys: Keys) -> Path:
    """10,000 tiny members that nobody listed (each with the header evidencekit writes): memory
    and time stay linear (the duplicate check was quadratic: 60,000 members took 48 s, now 5 s)."""
    raw = b"".join(canonical_member(f"bag/data/evidence/m{i:06d}").raw or b""
                   for i in range(MANY_MEMBERS))
    return write_bundle(_bundle(folder, "many-members-bomb"), keys,
                        build_bag(keys, data_members=[Member("x", raw=raw)]))


@case("outer-member-huge-size", phrase="truncated", memory_bound=True)
def outer_member_huge_size(folder: Path, keys: Keys) -> Path:
    """An outer member (payload) whose header declares 10^15 bytes."""
    path = write_bundle(_bundle(folder, "outer-member-huge-size"), keys, build_bag(keys))
    data = bytearray(path.read_bytes())
    from evidencekit.format.outer import read_members

    with open(path, "rb") as f:
        payload = next(m for m in read_members(f) if m.name == PAYLOAD)
    header = __import__("evidencekit.format.outer", fromlist=["member_header"]).member_header(
        PAYLOAD, HUGE, payload.mtime)
    data[payload.header_offset : payload.header_offset + len(header)] = header
    path.write_bytes(bytes(data))
    return path


# --- the manifest lies or is malformed (signed by the attacker, so signatures all pass)


@case("manifest-lies-about-sizes", phrase="size")
def manifest_lies_about_sizes(folder: Path, keys: Keys) -> Path:
    files = {"data/evidence/note.txt": b"hello\n"}
    entries = [dir_entry("data/evidence"),
               file_entry("data/evidence/note.txt", b"hello\n", size=HUGE)]
    return write_bundle(_bundle(folder, "manifest-lies-about-sizes"), keys,
                        build_bag(keys, files, entries=entries))


@case("seal-lies-about-total", phrase="the seal's file count or total size differs from the "
      "payload")
def seal_lies_about_total(folder: Path, keys: Keys) -> Path:
    """Seal and manifest agree on a total the payload does not have (Oxum tells the truth)."""
    def edit(document: dict[str, Any]) -> None:
        document["summary"]["total_bytes"] = HUGE
    return write_bundle(_bundle(folder, "seal-lies-about-total"), keys,
                        build_bag(keys, edit_manifest=edit),
                        Outer(seal_edit=seal_edit(total_bytes=HUGE)))


@case("manifest-not-json", phrase="not valid json")
def manifest_not_json(folder: Path, keys: Keys) -> Path:
    return write_bundle(_bundle(folder, "manifest-not-json"), keys,
                        build_bag(keys, manifest_json=b"{this is not json\n"))


@case("manifest-deeply-nested", phrase="json")
def manifest_deeply_nested(folder: Path, keys: Keys) -> Path:
    """100,000 nested arrays: a recursion bomb for a JSON parser."""
    return write_bundle(_bundle(folder, "manifest-deeply-nested"), keys,
                        build_bag(keys, manifest_json=b"[" * 100_000 + b"]" * 100_000 + b"\n"))


@case("manifest-lone-surrogate", phrase="surrogate")
def manifest_lone_surrogate(folder: Path, keys: Keys) -> Path:
    """``"\\ud800"``: valid JSON syntax, but no Unicode text (and no UTF-8 form)."""
    document = manifest_document([dir_entry("data/evidence", path="evidence/\ud800")],
                                 dict.fromkeys(COUNT_KEYS, 0), 0, _sha(b""))
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))  # escapes the surrogate
    return write_bundle(_bundle(folder, "manifest-lone-surrogate"), keys,
                        build_bag(keys, manifest_json=text.encode() + b"\n"))


def _wrong_types(name: str, edit: Callable[[dict[str, Any]], None]) -> None:
    def build(folder: Path, keys: Keys) -> Path:
        return write_bundle(_bundle(folder, name), keys, build_bag(keys, edit_manifest=edit))
    build.__name__ = name
    case(name, phrase="manifest")(build)


_wrong_types("manifest-entries-not-a-list", lambda d: d.update(entries={"a": 1}))
_wrong_types("manifest-entry-not-an-object", lambda d: d.update(entries=[1, "two", None]))
_wrong_types("manifest-summary-is-a-list", lambda d: d.update(summary=[1, 2]))
_wrong_types("manifest-case-is-a-string", lambda d: d.update(case="x"))
_wrong_types("manifest-bag-path-not-a-string",
             lambda d: d["entries"].append({**link_entry("data/evidence/l", "x"), "bag_path": 7}))
_wrong_types("manifest-kind-unknown",
             lambda d: d["entries"].append({**link_entry("data/evidence/l", "x"),
                                            "kind": "wormhole"}))
_wrong_types("manifest-sha256-not-a-string",
             lambda d: d["entries"][1].update(sha256=12345))
_wrong_types("manifest-path-b64-invalid",
             lambda d: d["entries"].append({**link_entry("data/evidence/l", "x"),
                                            "path_b64": "!!!"}))
_wrong_types("manifest-target-not-a-string",
             lambda d: d["entries"].append({**link_entry("data/evidence/l", "x"),
                                            "target": ["a"]}))
_wrong_types("manifest-unknown-format-version", lambda d: d.update(format_version=3))


# Entries that would make extract write, rename, chmod or link outside its folder.

_wrong_types("manifest-bag-path-dotdot",
             lambda d: d["entries"].append(link_entry("data/../../escaped-link", "data")))
_wrong_types("manifest-bag-path-absolute",
             lambda d: d["entries"].append({**link_entry("x", "y"),
                                            "bag_path": "/tmp/evidencekit-hostile-abs"}))
_wrong_types("manifest-chmod-outside",
             lambda d: d["entries"].append({**dir_entry("data/evidence"),
                                            "bag_path": "../../..", "mode": 0o777}))
_wrong_types("manifest-rename-to-dotdot",
             lambda d: d["entries"][1].update(path="evidence/.."))
_wrong_types("manifest-rename-with-slash",
             lambda d: d["entries"][1].update(path_b64=base64.b64encode(
                 b"evidence/../../renamed-outside").decode(), path=None))
_wrong_types("manifest-bag-path-to-sentinel",
             lambda d: d["entries"].append({**dir_entry("data/evidence"), "mode": 0o777,
                                            "bag_path": "../../" + SENTINEL,
                                            "path": "evidence/renamed-sentinel"}))
_wrong_types("manifest-duplicate-bag-path",
             lambda d: d["entries"].append(link_entry("data/evidence/note.txt", "x")))


@case("manifest-symlink-chain-escape", exit_codes=(0,), phrase="")
def manifest_symlink_chain_escape(folder: Path, keys: Keys) -> Path:
    """``a -> .`` makes ``a/../..`` look one level deeper than it is: a link ``a/l -> ../../x``
    checked by its text alone stays inside, but resolves outside. And a link under a link."""
    entries = [dir_entry("data/evidence"), file_entry("data/evidence/note.txt", b"hello\n"),
               link_entry("data/evidence/a", "."),
               link_entry("data/evidence/a/l", "../../../escaped-chain"),
               link_entry("data/evidence/b", "a/a/a/../../../..")]
    return write_bundle(_bundle(folder, "manifest-symlink-chain-escape"), keys,
                        build_bag(keys, entries=entries, edit_manifest=_counts(symlinks=3)),
                        Outer(seal_edit=_seal_counts(symlinks=3)))


@case("manifest-symlink-onto-file", phrase="twice")
def manifest_symlink_onto_file(folder: Path, keys: Keys) -> Path:
    """A link entry named like a stored file: never replaces the verified file."""
    entries = [dir_entry("data/evidence"), file_entry("data/evidence/note.txt", b"hello\n"),
               link_entry("data/evidence/note.txt", "/etc/passwd")]
    return write_bundle(_bundle(folder, "manifest-symlink-onto-file"), keys,
                        build_bag(keys, entries=entries, edit_manifest=_counts(symlinks=1)),
                        Outer(seal_edit=_seal_counts(symlinks=1)))


@case("manifest-rename-swap", exit_codes=(0,), phrase="")
def manifest_rename_swap(folder: Path, keys: Keys) -> Path:
    """Two files whose original names are each other's stored names: nothing is overwritten."""
    files = {"data/evidence/x": b"content of x\n", "data/evidence/y": b"content of y\n"}
    entries = [dir_entry("data/evidence"),
               file_entry("data/evidence/x", files["data/evidence/x"], path="evidence/y"),
               file_entry("data/evidence/y", files["data/evidence/y"], path="evidence/x")]
    return write_bundle(_bundle(folder, "manifest-rename-swap"), keys,
                        build_bag(keys, files, entries=entries))


# --- signatures, versions, outer structure


@case("seal-signed-by-another-key", phrase="different key")
def seal_signed_by_another_key(folder: Path, keys: Keys) -> Path:
    return write_bundle(_bundle(folder, "seal-signed-by-another-key"), keys, build_bag(keys),
                        Outer(seal_signer=SigningKey.generate("someone else")))


@case("manifest-signed-by-another-key", phrase="another key")
def manifest_signed_by_another_key(folder: Path, keys: Keys) -> Path:
    return write_bundle(_bundle(folder, "manifest-signed-by-another-key"), keys,
                        build_bag(keys, manifest_signer=SigningKey.generate("someone else")))


@case("seal-unknown-format-version", phrase="format version 3")
def seal_unknown_format_version(folder: Path, keys: Keys) -> Path:
    return write_bundle(_bundle(folder, "seal-unknown-format-version"), keys, build_bag(keys),
                        Outer(seal_edit=seal_edit(format_version=3)))


@case("seal-not-json", phrase="not valid json")
def seal_not_json(folder: Path, keys: Keys) -> Path:
    return write_bundle(_bundle(folder, "seal-not-json"), keys, build_bag(keys),
                        Outer(seal_json=b"\xff\xfe not json"))


@case("seal-deeply-nested", phrase="json")
def seal_deeply_nested(folder: Path, keys: Keys) -> Path:
    return write_bundle(_bundle(folder, "seal-deeply-nested"), keys, build_bag(keys),
                        Outer(seal_json=b"[" * 200_000 + b"]" * 200_000 + b"\n"))


@case("seal-wrong-types", phrase="wrong type")
def seal_wrong_types(folder: Path, keys: Keys) -> Path:
    document = canonical.loads(_valid_seal_json(keys), "seal")
    document["counts"] = {k: "many" for k in COUNT_KEYS}
    document["total_bytes"] = "lots"
    return write_bundle(_bundle(folder, "seal-wrong-types"), keys, build_bag(keys),
                        Outer(seal_json=canonical.dumps(document)))


def _valid_seal_json(keys: Keys) -> bytes:
    captured: list[bytes] = []

    def grab(seal: Seal) -> Seal:
        captured.append(seal.to_json())
        return seal
    write_bundle(Path(os.devnull), keys, build_bag(keys), Outer(seal_edit=grab))
    return captured[0]


@case("outer-duplicate-member", phrase="appears 2 times")
def outer_duplicate_member(folder: Path, keys: Keys) -> Path:
    path = write_bundle(_bundle(folder, "outer-duplicate-member-base"), keys, build_bag(keys))
    from evidencekit.format.outer import read_members

    with open(path, "rb") as f:
        members = [(m.name, _read(f, m.offset, m.size)) for m in read_members(f)]
    path.unlink()
    members.insert(2, members[1])  # payload.age twice
    return write_bundle(_bundle(folder, "outer-duplicate-member"), keys, build_bag(keys),
                        Outer(members=members))


@case("outer-extra-member-escaping", phrase="unexpected member")
def outer_extra_member_escaping(folder: Path, keys: Keys) -> Path:
    path = write_bundle(_bundle(folder, "outer-extra-base"), keys, build_bag(keys))
    from evidencekit.format.outer import read_members

    with open(path, "rb") as f:
        members = [(m.name, _read(f, m.offset, m.size)) for m in read_members(f)]
    path.unlink()
    members.append(("../../outer-escape.txt", b"owned\n"))
    return write_bundle(_bundle(folder, "outer-extra-member-escaping"), keys, build_bag(keys),
                        Outer(members=members))


@case("outer-readme-oversized", phrase="more than the 1048576 allowed", memory_bound=True)
def outer_readme_oversized(folder: Path, keys: Keys) -> Path:
    """A 2 MiB README.txt: small members are read whole, so they have a limit."""
    path = write_bundle(_bundle(folder, "outer-readme-base"), keys, build_bag(keys))
    from evidencekit.format.outer import read_members

    with open(path, "rb") as f:
        members = [(m.name, _read(f, m.offset, m.size)) for m in read_members(f)]
    path.unlink()
    members[0] = (README, b"x" * (2 << 20))
    return write_bundle(_bundle(folder, "outer-readme-oversized"), keys, build_bag(keys),
                        Outer(members=members))


def _read(f: io.BufferedReader, offset: int, size: int) -> bytes:
    f.seek(offset)
    return f.read(size)


@case("not-a-bundle-at-all", exit_codes=(2,), phrase="is not an evidencekit bundle: it is not a "
      "tar archive")
def not_a_bundle_at_all(folder: Path, keys: Keys) -> Path:
    path = _bundle(folder, "not-a-bundle-at-all")
    path.write_bytes(b"%PDF-1.7\n" + os.urandom(5000))
    return path


@case("empty-file", exit_codes=(2,), phrase="is not an evidencekit bundle: the file is empty")
def empty_file(folder: Path, keys: Keys) -> Path:
    path = _bundle(folder, "empty-file")
    path.write_bytes(b"")
    return path


def build_all(folder: Path) -> dict[str, Path]:
    keys = Keys.create(folder / "keys")
    return {c.name: c.build(folder, keys) for c in CATALOGUE}


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-bundles")
    target.mkdir(parents=True, exist_ok=True)
    for name, built in build_all(target).items():
        print(f"{name:40} {built}")
