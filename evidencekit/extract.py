"""Extract: verify while writing into a fresh staging folder; publish it only if all checks pass.

Files are written with O_EXCL | O_NOFOLLOW under names already checked to stay inside ``bag/``
(a file's second name, format version 2, is a hard link to the first one written); symbolic
links (from the signed manifest, never from the tar) are created last and only when they point
inside the output; original non-UTF-8 names, modes (without set-id bits) and times are then
restored. On any failed check the staging folder is deleted (or kept as ``OUT.UNTRUSTED`` on
request), so nothing unverified is ever presented under the requested name.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evidencekit import addenda, fs
from evidencekit.clock import parse_rfc3339
from evidencekit.crypto.keys import PublicKey
from evidencekit.errors import BundleError, Interrupted, OutputError
from evidencekit.format.entries import raw_field, safe_bag_path
from evidencekit.format.manifest import Manifest
from evidencekit.fs.staging import StagingFolder, StaleStaging, remove_stale
from evidencekit.payload import PayloadReaders
from evidencekit.progress import Progress
from evidencekit.protection import Keys
from evidencekit.text import human_size
from evidencekit.verify import Report, verify

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# What a crafted payload can cause (a name used twice, a file where a folder should be); any
# other error is the output's fault (full disk, no permission) and ends extraction with exit 2.
_CONFLICTS = (errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ELOOP)
_NAME_MAX = 255
# A file system without hard links (FAT, some network shares): the second name becomes a copy.
_NO_HARD_LINKS = fs.NO_HARD_LINKS | {errno.EXDEV}


def _on_disk(name: bytes) -> bytes:
    """The name used in the staging folder. A 255-byte name that is not UTF-8 is stored escaped
    (``\\xNN`` per byte, up to 1020 bytes: docs/FORMAT.md §4.4), longer than any file system
    allows; it gets a short stand-in until its original name is restored."""
    if len(name) <= _NAME_MAX:
        return name
    return b".evidencekit-long-name-" + hashlib.sha256(name).hexdigest().encode()


@dataclass
class ExtractResult:
    report: Report
    output: Path | None  # None when nothing was published
    untrusted: Path | None = None
    files: int = 0
    symlinks: int = 0
    skipped_links: list[str] = field(default_factory=list)
    renamed: int = 0
    # Staging folders of the same output left by an extract killed outright (fs.staging).
    stale: StaleStaging = field(default_factory=StaleStaging)


class _Tree:
    """The staging folder, reached only through directory descriptors.

    Every folder on a path is opened relative to its parent with ``O_NOFOLLOW``, so no path handed
    to the kernel is longer than one name (trees deeper than PATH_MAX extract) and no symbolic
    link is ever followed on the way, whatever a manifest says. The folders of the last path
    opened are kept (the deepest :data:`KEPT` of them), so that the next path, which in walk
    order shares most of it, is reached from there: from the root every time, a tree 2000 levels
    deep took a minute to extract (a path's length in opens, for every member).
    """

    KEPT = 64  # descriptors held at most: far below any open-file limit

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fd = os.open(root, _DIR_OPEN)
        self.made: set[tuple[bytes, ...]] = set()  # folders this tree created, by their names
        self._parts: tuple[bytes, ...] = ()  # the last path opened
        self._fds: list[int] = []  # descriptors of its last len(_fds) folders, outermost first

    def close(self) -> None:
        self.forget()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def forget(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._parts, self._fds = (), []

    def _kept(self, parts: tuple[bytes, ...]) -> tuple[int, int]:
        """The deepest folder of *parts* already open: (how many parts it covers, descriptor)."""
        low = len(self._parts) - len(self._fds)  # self._fds[i] is the folder of _parts[:low + i + 1]
        common = 0
        for mine, theirs in zip(self._parts, parts, strict=False):
            if mine != theirs:
                break
            common += 1
        if common > low:
            return common, self._fds[common - low - 1]
        return 0, self.fd

    def folder(self, parts: tuple[bytes, ...], create: bool) -> int | None:
        """A descriptor of the folder *parts* (owned by the tree), or None when a part is missing
        (and not *create*), a file, or a link."""
        start, base = self._kept(parts)
        if start == len(parts) and start:
            return base
        opened: list[int] = []
        current = base
        try:
            for depth, part in enumerate(map(_on_disk, parts[start:]), start + 1):
                try:
                    following = os.open(part, _DIR_OPEN, dir_fd=current)
                    if create and parts[:depth] not in self.made:
                        refuse_name_clash(current, part)  # found, not made: another name?
                        self.made.add(parts[:depth])
                except FileNotFoundError:
                    if not create:
                        _closed(opened)
                        return None
                    os.mkdir(part, 0o700, dir_fd=current)
                    self.made.add(parts[:depth])
                    following = os.open(part, _DIR_OPEN, dir_fd=current)
                except OSError as exc:
                    if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    _closed(opened)
                    return None
                opened.append(following)
                current = following
        except BaseException:
            _closed(opened)
            raise
        if not parts:
            return self.fd
        self._keep(parts, start, opened)
        return current

    def _keep(self, parts: tuple[bytes, ...], start: int, opened: list[int]) -> None:
        """*parts* is now the last path: its first *start* folders were kept, *opened* the rest."""
        low = len(self._parts) - len(self._fds)
        kept = max(0, start - low) if start else 0
        for fd in self._fds[kept:]:
            os.close(fd)
        fds = self._fds[:kept] + opened
        for fd in fds[: max(0, len(fds) - self.KEPT)]:
            os.close(fd)
        self._parts, self._fds = parts, fds[max(0, len(fds) - self.KEPT):]

    def parent(self, relative: str, create: bool = False) -> tuple[int, bytes] | None:
        """(descriptor of the folder holding *relative*, its name there), or None."""
        parts = os.fsencode(relative).split(b"/")
        fd = self.folder(tuple(parts[:-1]), create)
        return None if fd is None else (fd, _on_disk(parts[-1]))


def _closed(fds: list[int]) -> None:
    """Close the descriptors a failed :meth:`_Tree.folder` opened."""
    for fd in fds:
        os.close(fd)
    return None


class _Writer:
    """Payload visitor that writes the bag into the staging folder as it streams by.

    A name conflict planted in the payload becomes a finding (BundleError, caught by verify);
    an error of the output itself is kept in ``failure`` so that extract can report it as such.
    """

    def __init__(self, tree: _Tree) -> None:
        self.tree = tree
        self.files = 0
        self.failure: OSError | None = None
        self.largest = fs.largest_file(tree.root)  # FAT32: below 4 GiB
        self.creating = False  # a failure now may be about the name (FAT: "a:b.txt")

    def directory(self, name: str, member: tarfile.TarInfo) -> None:
        try:
            self.creating = True
            if self.tree.folder(tuple(os.fsencode(name).split(b"/")), create=True) is None:
                raise BundleError(f"payload folder {name} lies under a file")
        except OSError as exc:
            raise self._failed(name, exc) from None
        finally:
            self.creating = False

    def file(self, name: str, member: tarfile.TarInfo, chunks: Iterator[bytes]) -> None:
        if self.largest is not None and member.size > self.largest:
            raise TooBigForDestination(name, member.size, self.largest)
        try:
            where = self.tree.parent(name, create=True)
            if where is None:
                raise BundleError(f"payload file {name} lies under a file")
            self.creating = True
            fd = os.open(where[1], _CREATE, 0o600, dir_fd=where[0])
            self.creating = False
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
        except OSError as exc:
            raise self._failed(name, exc) from None
        self.files += 1

    def hard_link(self, name: str, member: tarfile.TarInfo, target: str) -> None:
        """Another name of *target* (already written, checked by scan_payload): a hard link,
        or a copy where the output's file system has none."""
        try:
            source = self.tree.parent(target)
            if source is None:
                raise BundleError(f"payload hard link {name}: {target} is not there")
            source_fd, source_name = os.dup(source[0]), source[1]  # the tree keeps one folder
            try:
                where = self.tree.parent(name, create=True)
                if where is None:
                    raise BundleError(f"payload file {name} lies under a file")
                try:
                    os.link(source_name, where[1], src_dir_fd=source_fd, dst_dir_fd=where[0],
                            follow_symlinks=False)
                except OSError as exc:
                    if exc.errno not in _NO_HARD_LINKS:
                        raise
                    _copy_file(source_fd, source_name, where)
            finally:
                os.close(source_fd)
        except OSError as exc:
            raise self._failed(name, exc) from None
        self.files += 1

    def _failed(self, name: str, exc: OSError) -> Exception:
        if exc.errno == errno.EEXIST:
            where = self.tree.parent(name)
            if where is not None:
                refuse_name_clash(*where)
        if self.creating and exc.errno in fs.NAME_REFUSED:
            self.creating = False
            where = self.tree.parent(name)
            if where is not None and fs.takes_new_files(where[0]):
                raise NameNotAllowed(name)
        if exc.errno in _CONFLICTS:
            return BundleError(f"payload member {name} collides with another member")
        self.failure = exc
        return exc


class NameClash(OutputError):
    """The output folder's file system takes two names of the evidence for the same one
    (a.txt and A.TXT on exFAT, FAT, NTFS, macOS): a problem of the destination, not of the
    evidence (docs/decisions/atomic-publish.md)."""


class TooBigForDestination(OutputError):
    """An evidence file FAT32 cannot hold (4 GiB or more): refused before it is written."""

    def __init__(self, member: str, size: int, largest: int) -> None:
        super().__init__(f"the destination folder is on a FAT32 file system, which cannot hold a "
                         f"file of {fs.describe_limit(largest + 1)} or more, but the evidence "
                         f"file {member} is {human_size(size)}; nothing was extracted. "
                         "The bundle itself was not found faulty",
                         hint="extract onto a stick formatted as exFAT or NTFS, or onto your "
                         "computer's disk")


class NameNotAllowed(OutputError):
    """The output folder's file system does not allow a name the evidence holds (``:``, ``?``
    … on FAT and exFAT): a problem of the destination, not of the evidence."""

    def __init__(self, member: str) -> None:
        shown = member.rsplit("/", 1)[-1]
        super().__init__(f"the destination folder's file system does not allow the name "
                         f"{shown!r} (the evidence file {member}; {fs.NAME_RULE}); nothing was "
                         "extracted. The bundle itself was not found faulty",
                         hint="extract onto a disk that allows any name (a Linux folder such "
                         "as your home folder, ext4)")


def refuse_name_clash(folder_fd: int, name: bytes) -> None:
    """Raise NameClash when *name* is not in the folder under that exact name although the file
    system finds it: it found another name it holds for the same (case, Unicode form)."""
    held = [os.fsencode(n) for n in os.listdir(folder_fd)]
    if name in held:
        return
    other = next((h for h in held if os.fsdecode(h).casefold() == os.fsdecode(name).casefold()),
                 None)
    shown = os.fsdecode(other) if other is not None else "another name"
    raise NameClash(f"the destination folder treats {os.fsdecode(name)!r} and {shown!r} as the "
                    "same name (its file system ignores upper and lower case, as exFAT, FAT, "
                    "NTFS and macOS do), but the evidence holds both; nothing was extracted. "
                    "The bundle itself was not found faulty",
                    hint="extract onto a disk that tells upper and lower case apart (a Linux "
                    "folder such as your home folder, ext4)")


def _copy_file(source_fd: int, source_name: bytes, where: tuple[int, bytes]) -> None:
    with os.fdopen(os.open(source_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                           dir_fd=source_fd), "rb") as source, \
            os.fdopen(os.open(where[1], _CREATE, 0o600, dir_fd=where[0]), "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)


def extract(bundle: Path, output: Path, identities: Keys,
            trusted_keys: Sequence[PublicKey] = (), keep_untrusted: bool = False,
            progress: Progress | None = None, as_stored: bool = False) -> ExtractResult:
    """Verify *bundle* while extracting it into the new folder *output*.

    By default the original tree is restored (non-UTF-8 names, symbolic links inside the tree);
    with *as_stored* the bag is left exactly as stored, which is always a valid BagIt bag.
    """
    fs.require_new(output, refusal="extract writes into a new folder only",
                   hint="choose another folder with -o")
    stale = remove_stale(output)  # left by an extract to the same folder killed outright
    try:
        folder = StagingFolder(output)
    except OSError as exc:
        raise _output_error(output, exc) from None
    staging = folder.path
    try:
        root = staging / "bag"
        os.mkdir(root, 0o700)
        tree = _Tree(root)
        try:
            writer = _Writer(tree)
            report = verify(bundle, identities, trusted_keys, progress=progress,
                            readers=PayloadReaders(files=writer))
            if writer.failure is not None:
                raise _output_error(output, writer.failure)
            if not report.ok or not report.decrypted or report.manifest is None:
                tree.close()
                return _discard(staging, output, report, keep_untrusted, stale)
            result = ExtractResult(report, output, files=writer.files, stale=stale)
            _write_tag_files(tree, report)
            addenda.write_files(tree, report.addenda)  # addenda/NNNNNN.json next to them
            _finish_tree(tree, report.manifest, result, restore=not as_stored)
        finally:
            tree.close()
        try:
            fs.publish_folder(root, output)
        except FileExistsError:
            raise OutputError(f"{output} appeared while extracting; nothing was written there"
                              ) from None
        return result
    except OSError as exc:
        raise _output_error(output, exc) from None
    except (KeyboardInterrupt, Interrupted):
        # In extract's words (verify's say "checking"); the staging folder goes just below.
        raise Interrupted("interrupted while extracting; nothing was extracted",
                          hint=f"{output} was not created and the bundle was not changed"
                          ) from None
    finally:
        folder.remove()


def _output_error(output: Path, exc: OSError) -> OutputError:
    return OutputError(f"could not write {output}: {exc.strerror or exc}",
                       hint="check free space and permissions; nothing was left behind")


def _discard(staging: Path, output: Path, report: Report, keep: bool,
             stale: StaleStaging) -> ExtractResult:
    if keep and report.decrypted:
        untrusted = output.with_name(output.name + ".UNTRUSTED")
        with suppress(FileExistsError):
            fs.publish_folder(staging / "bag", untrusted)
            return ExtractResult(report, None, untrusted=untrusted, stale=stale)
    return ExtractResult(report, None, stale=stale)


def _write_tag_files(tree: _Tree, report: Report) -> None:
    for name, data in (report.tag_files or {}).items():
        where = tree.parent(name, create=True)
        if where is None:
            raise BundleError(f"tag file {name} lies under a file")
        with os.fdopen(os.open(where[1], _CREATE, 0o644, dir_fd=where[0]), "wb") as out:
            out.write(data)


def _finish_tree(tree: _Tree, manifest: Manifest, result: ExtractResult, restore: bool) -> None:
    """Links, original names, modes and times, deepest first so parents keep their times.

    The manifest was checked by verify (format/entries.py); entries that would still not be safe
    to act on are skipped here too, and nothing is reached through a symbolic link. Only the
    depth and number of each entry are kept in memory; the entries are parsed again one by one.
    """
    order = sorted(((entry["bag_path"].count("/"), number)
                    for number, entry in enumerate(manifest.entries())
                    if isinstance(entry, dict) and safe_bag_path(entry.get("bag_path"))),
                   key=lambda item: item[0], reverse=True)
    if restore:
        for _, number in order:
            entry = manifest.entry(number)
            if entry.get("kind") == "symlink":
                _make_link(tree, entry, result)
    for _, number in order:
        _finish_entry(tree, manifest.entry(number), result, restore)


def _finish_entry(tree: _Tree, entry: dict[str, Any], result: ExtractResult,
                  restore: bool) -> None:
    where = tree.parent(entry["bag_path"])
    if where is None:
        return
    fd, name = where
    try:
        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    _restore_metadata(fd, name, info, entry)
    try:
        original = os.path.basename(raw_field(entry, "path") or name)
    except ValueError:
        return
    if restore and original != name and _free_name(fd, original):
        os.rename(name, original, src_dir_fd=fd, dst_dir_fd=fd)
        result.renamed += 1


def _free_name(fd: int, name: bytes) -> bool:
    """*name* is a usable new name in the folder *fd*: a real name that nothing holds yet."""
    if name in (b"", b".", b"..") or b"\0" in name:
        return False
    try:
        os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return True
    return False  # never replace a file that is already there


def _make_link(tree: _Tree, entry: dict[str, Any], result: ExtractResult) -> None:
    try:
        target = raw_field(entry, "target")
    except ValueError:
        target = None
    if target is None:
        return
    where = tree.parent(entry["bag_path"])
    if not _link_stays_inside(entry["bag_path"], target) or where is None or \
            not _free_name(*where):
        result.skipped_links.append(f"{entry['bag_path']} -> {os.fsdecode(target)}")
        return
    os.symlink(target, where[1], dir_fd=where[0])
    result.symlinks += 1


def _link_stays_inside(bag_path: str, target: bytes) -> bool:
    """Whether a link at *bag_path* pointing at *target* resolves inside the output folder.

    Judged by its text, which only tells the truth when no ``..`` follows a name (a name may be
    another link, and ``link/..`` is not where it looks): so ``..`` may only lead the target,
    never climb above the output, and absolute targets are never created.
    """
    if target.startswith(b"/") or b"\0" in target:
        return False
    depth = bag_path.count("/")  # folders between the output and the link
    names = 0
    for part in target.split(b"/"):
        if part in (b"", b"."):
            continue
        if part != b"..":
            names += 1
        elif names or depth == 0:
            return False
        else:
            depth -= 1
    return depth + names > 0


def _restore_metadata(fd: int, name: bytes, info: os.stat_result, entry: dict[str, Any]) -> None:
    try:
        if not stat.S_ISLNK(info.st_mode) and isinstance(entry.get("mode"), int):
            # Never recreate set-user-ID, set-group-ID or sticky bits from a bundle.
            os.chmod(name, entry["mode"] & 0o777, dir_fd=fd)
        if isinstance(entry.get("mtime"), str) and isinstance(entry.get("atime"), str):
            os.utime(name, ns=(parse_rfc3339(entry["atime"]), parse_rfc3339(entry["mtime"])),
                     dir_fd=fd, follow_symlinks=False)
    except (OSError, ValueError, NotImplementedError):
        pass  # metadata is best effort; the content has been verified

