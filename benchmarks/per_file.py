"""Per-file budget of a capture of small files: CPU microseconds per file for each stage.

Each stage is run on its own, over the same files, with evidencekit's own functions, and timed
with the process's CPU time (user + system), which another program on the machine does not
inflate the way it does wall time. The stages in the order a capture runs them:

    python benchmarks/per_file.py TREE            # e.g. run.py's 20,000 files of 2-5 KB
    python benchmarks/per_file.py TREE --files 5000 --repeat 3
    PYTHONPATH=OTHER_CHECKOUT python benchmarks/per_file.py TREE   # another checkout's package

The sum is what one core spends per file outside start-up; libmagic runs in worker processes
beside the capture's main thread, the rest on it (reading, hashing, headers, records, JSON) or on
its encryption and disk threads (ChaCha20-Poly1305 and the SHA-256 of ``payload.age``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after PYTHONPATH: another checkout's package may be measured

from evidencekit import identify  # noqa: E402
from evidencekit.clock import rfc3339  # noqa: E402
from evidencekit.format import inner  # noqa: E402
from evidencekit.format.entries import Stored  # noqa: E402
from evidencekit.format.manifest import ManifestWriter  # noqa: E402
from evidencekit.sources.files import records, walk  # noqa: E402
from evidencekit.sources.files.birthtime import birth_time_ns  # noqa: E402
from evidencekit.sources.files.source import open_regular  # noqa: E402


def cpu() -> float:
    return time.process_time()  # user + system of this process, finer than os.times()


def timed(stage: Callable[[], object], files: int, repeat: int) -> float:
    """The least CPU time of *repeat* runs of *stage*, in µs per file."""
    best = float("inf")
    for _ in range(repeat):
        start = cpu()
        stage()
        best = min(best, cpu() - start)
    return best / files * 1e6


def whole_capture(tree: Path) -> float:
    """CPU seconds of a capture of *tree* (benchmarks/identical.py), its libmagic workers too."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    package = Path(identify.__file__).resolve().parents[1]  # the checkout measured
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "identical.py"), str(tree)],
                   check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(package)})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tree", type=Path)
    parser.add_argument("--files", type=int, default=20_000, help="at most this many files")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each stage; the least counts")
    parser.add_argument("--no-capture", action="store_true", help="leave out the whole capture")
    args = parser.parse_args()

    sources = walk.resolve_sources([os.fsencode(args.tree.resolve())])

    def walk_all() -> list[walk.Entry]:
        found = []
        for entry in walk.walk(sources):
            if entry.kind == "file":
                found.append(entry)
                if len(found) == args.files:
                    break
        return found

    # The walk closes a folder's descriptor once it has listed it: the stages that reach files
    # through their folder get descriptors of their own, one per folder, open till the end.
    folders: dict[bytes, int] = {}

    def kept(entry: walk.Entry) -> walk.Entry:
        parent = os.path.dirname(os.fsencode(args.tree.resolve().parent) + b"/" + entry.path)
        if parent not in folders:
            folders[parent] = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
        return dataclasses.replace(entry, dir_fd=folders[parent])

    entries = [kept(e) for e in walk_all()]
    count = len(entries)
    contents: list[bytes] = []
    for entry in entries:
        with open_regular(entry) as opened:
            buffer = bytearray(opened.size)
            opened.readinto(memoryview(buffer))
            contents.append(bytes(buffer))
    infos = [e.lstat for e in entries]
    assert all(info is not None for info in infos)
    digests = [hashlib.sha256(data).hexdigest() for data in contents]

    def read_all() -> None:
        for entry in entries:
            with open_regular(entry) as opened:
                buffer = memoryview(bytearray(opened.size))
                opened.readinto(buffer)
                opened.changes()

    def birth_all() -> None:
        for entry, info in zip(entries, infos, strict=True):
            birth_time_ns(entry.dir_fd, entry.name, info)  # type: ignore[arg-type]

    def times_all() -> None:
        for info in infos:
            assert info is not None
            rfc3339(info.st_mtime_ns), rfc3339(info.st_atime_ns), rfc3339(info.st_ctime_ns)
            rfc3339(info.st_ctime_ns)

    def stat_fields_all() -> None:
        for entry, info in zip(entries, infos, strict=True):
            records.stat_fields(info, entry)  # type: ignore[arg-type]

    def xattrs_all() -> None:
        for entry in entries:
            records.read_xattrs(entry)

    def headers_all() -> None:
        for entry, info in zip(entries, infos, strict=True):
            assert info is not None
            inner.bag_header(entry.bag_path, b"0", info.st_size, 0o644, info.st_mtime_ns, info)

    def hash_all() -> None:
        for data in contents:
            hashlib.sha256(data).hexdigest()

    def magic_all() -> None:
        for data in contents:
            identify.mime_type(data)

    built = []
    for entry, info, digest in zip(entries, infos, digests, strict=True):
        record = records.base_record(entry)
        assert info is not None
        record.allocated_bytes = records.allocated_bytes(info)
        record.xattrs = records.read_xattrs(entry)
        record.stored, record.mime = Stored(digest, ()), "application/octet-stream"
        built.append(record)

    def records_all() -> None:
        for entry in entries:
            records.base_record(entry, with_stat=False)

    def json_all() -> None:
        writer = ManifestWriter()
        for record in built:
            writer.add(record)
        writer.document  # noqa: B018 (the entries are packed as they come)

    stored = sum(512 * 2 + 512 + len(data) + (-len(data)) % 512 for data in contents)

    def encrypt_all() -> None:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        aead = ChaCha20Poly1305(bytes(32))
        chunk = bytes(64 << 10)
        left = stored
        digest = hashlib.sha256()
        while left > 0:
            sealed = aead.encrypt(bytes(12), chunk[: min(left, len(chunk))], None)
            digest.update(sealed)
            left -= len(chunk)

    stages: list[tuple[str, Callable[[], object], str]] = [
        ("walk: listdir, lstat, names", walk_all, "main thread"),
        ("open, fstat, read, fstat again, close", read_all, "main thread"),
        ("birth time (statx)", birth_all, "main thread"),
        ("times formatted (RFC 3339, x4)", times_all, "main thread"),
        ("stat fields (with statx and times)", stat_fields_all, "main thread"),
        ("extended attributes (listxattr)", xattrs_all, "main thread"),
        ("tar headers (pax + ustar)", headers_all, "main thread"),
        ("SHA-256 of the content", hash_all, "main thread"),
        ("manifest record", records_all, "main thread"),
        ("manifest entry: canonical JSON, compressed", json_all, "main thread"),
        ("ChaCha20-Poly1305 + SHA-256 of the ciphertext", encrypt_all, "encryption thread"),
        ("libmagic (MIME type)", magic_all, "worker processes"),
    ]
    print(f"{count} files, {sum(map(len, contents)) / count:.0f} bytes on average; "
          f"CPU µs per file, least of {args.repeat} runs")
    print()
    print("| stage | µs per file | where |")
    print("|---|---:|---|")
    for name, stage, where in stages:
        print(f"| {name} | {timed(stage, count, args.repeat):.1f} | {where} |")
    for fd in folders.values():
        os.close(fd)
    if args.files >= len(entries) and not args.no_capture:
        print(f"| whole capture of the tree, every process, start-up included | "
              f"{whole_capture(args.tree) / count * 1e6:.1f} | (identical.py) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
