"""Walk the sources: a sorted, deterministic, read-only traversal that never follows a symlink.

Directories are opened with ``O_NOFOLLOW | O_DIRECTORY`` and their children are reached through the
directory's file descriptor (``dir_fd``), so a symlink swapped in during the walk is never followed
and paths longer than PATH_MAX still work. Children are visited in byte order of their names.
Every entry carries its ``lstat`` result; nothing here reads file content.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Collection, Generator, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import AnyStr

from evidencekit.errors import InputError
from evidencekit.fs.noatime import open_directory

KIND_BY_FORMAT = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "directory",
    stat.S_IFLNK: "symlink",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "char-device",
    stat.S_IFBLK: "block-device",
}

# Open a folder to reach what is in it, not to list it: search permission is enough.
_PATH_ONLY = getattr(os, "O_PATH", 0) or getattr(os, "O_SEARCH", 0) or os.O_RDONLY


ESTIMATE_DEPTH = 64  # entries_below keeps one descriptor open per level


def entries_below(top: str | bytes | os.PathLike[str], *, follow: bool = False
                  ) -> Iterator[os.DirEntry[str]]:
    """Every entry below the folder *top*, for estimates (the progress bar's count, the guided
    session's sizes): a folder's entries come before those of its subfolders, in no set order.

    Each subfolder is opened through its parent's descriptor without following a link, so a
    folder swapped for a link after it was listed is not followed (opening it by its full path
    would follow a link in any of the path's components), and every folder is listed keeping its
    access time. *top* itself is followed when *follow* (a folder the user named may be a
    link). An entry's ``stat()`` works only until the next entry is asked for. Folders that
    cannot be opened or listed are passed over; only *top* raises OSError. Folders more than
    ESTIMATE_DEPTH levels down are not entered: this runs beside the walk, which holds a
    descriptor per level too, and together they must not run out of descriptors.
    """
    folders = [open_directory(os.fsencode(top), follow=follow)]
    waiting: list[list[str]] = []  # for each open folder, its subfolders not yet entered
    try:
        while folders:
            if len(waiting) < len(folders):  # just opened: list it
                subfolders: list[str] = []
                with suppress(OSError), os.scandir(folders[-1]) as listing:
                    for entry in listing:
                        yield entry
                        try:
                            if entry.is_dir(follow_symlinks=False):
                                subfolders.append(entry.name)
                        except OSError:
                            pass  # gone, or no type in the listing and lstat refused
                waiting.append(subfolders)
            elif waiting[-1] and len(folders) < ESTIMATE_DEPTH:
                with suppress(OSError):
                    folders.append(open_directory(os.fsencode(waiting[-1].pop()), folders[-1]))
            else:
                waiting.pop()
                os.close(folders.pop())
    finally:
        for fd in folders:
            os.close(fd)


def kind_of(mode: int) -> str:
    return KIND_BY_FORMAT.get(stat.S_IFMT(mode), "unknown")


@dataclass(frozen=True)
class Source:
    """One command-line source, as given and as resolved."""

    index: int
    given: bytes  # as typed (absolute form)
    path: bytes  # what is captured: the symlink target when the user named a symlink
    bag_name: str  # its top-level name under data/
    via_symlink: bool
    # Found by a profile's pattern: the leading folders of ``path`` the pattern names, where a
    # link is followed (if trusted_owners() made it); below them none is, nor is ``path``
    # itself. A link the pattern names in full, followed: its target. None: the user named it.
    followed: bytes | None = None


@dataclass
class Entry:
    """One thing found by the walk. ``dir_fd`` and ``name`` reach it without following links."""

    source: Source
    path: bytes  # relative to the source's parent: starts with the source's own name
    bag_path: str  # "data/..." as stored in the bag (UTF-8, reversible escaping)
    kind: str
    lstat: os.stat_result | None
    dir_fd: int  # directory that holds it (or AT_FDCWD-style absolute access for a root)
    name: bytes  # name inside dir_fd, or the absolute path for a root
    error: str | None = None
    children_error: str | None = field(default=None)
    # Another name of a file already stored (FileSource): the bag path it is stored under, to
    # which this name is stored as a tar hard link, unread.
    link_to: str | None = None


def escape_name(name: bytes) -> str:
    """A UTF-8 name for *name* in the bag: itself when valid UTF-8, else invalid bytes as ``\\xNN``.

    The JSON manifest keeps the original bytes; ``extract`` restores them.
    """
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError:
        return name.decode("utf-8", errors="backslashreplace")


def unique_name(candidate: str, taken: set[str]) -> str:
    """Make an escaped name unique among its siblings (an escaped name may equal a real one)."""
    if candidate not in taken:
        return candidate
    counter = 1
    while f"{candidate}~{counter}" in taken:
        counter += 1
    return f"{candidate}~{counter}"


def trusted_owners() -> frozenset[int]:
    """Whose symbolic links a profile's named paths may be followed through: the user running
    the capture and root. Anyone else's may have been planted (by a user of the group that may
    write /var/log: ``ln -s /etc/shadow /var/log/pacman.log``) to make root's capture take a file
    the profile never asked for."""
    geteuid = getattr(os, "geteuid", None)
    return frozenset({0} if geteuid is None else {0, geteuid()})


def link_owner(path: str | bytes) -> int | None:
    """The owner of *path* when it is a symbolic link made by someone not trusted_owners()."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISLNK(info.st_mode) and info.st_uid not in trusted_owners():
        return info.st_uid
    return None


def trusted_part(path: AnyStr) -> AnyStr:
    """The leading folders of the absolute, normalized *path* (all of it, at best) that resolve
    through no symbolic link but those of trusted_owners(), the links in a link's target
    included: the part returned may be followed as the profile's author named it."""
    sep = os.fsencode("/") if isinstance(path, bytes) else "/"
    current = path[:1]  # the root
    for part in path.split(sep):
        if not part:
            continue
        candidate = os.path.join(current, part)
        if not resolves_through_trusted_links(candidate):
            return current
        current = candidate
    return current


_MAX_LINKS = 40  # as Linux's ELOOP limit: past it, nothing is followed


def resolves_through_trusted_links(path: AnyStr) -> bool:
    """Whether resolving the absolute *path* (as the system would, one component at a time)
    meets only links of trusted_owners(). A part that is absent or cannot be looked up stops
    the check: nothing is followed there, and opening it later fails and is reported."""
    sep = os.fsencode("/") if isinstance(path, bytes) else "/"
    dot, dotdot = (b".", b"..") if isinstance(path, bytes) else (".", "..")
    root = path[:1]
    pending = list(reversed(path.split(sep)))
    resolved = root  # no link in it: ".." is its parent
    hops = 0
    while pending:
        part = pending.pop()
        if not part or part == dot:
            continue
        if part == dotdot:
            resolved = os.path.dirname(resolved)
            continue
        candidate = os.path.join(resolved, part)
        try:
            info = os.lstat(candidate)
        except OSError:
            return True
        if not stat.S_ISLNK(info.st_mode):
            resolved = candidate
            continue
        if info.st_uid not in trusted_owners():
            return False
        hops += 1
        if hops > _MAX_LINKS:
            return True  # a loop: the system refuses it (ELOOP), and that is reported
        try:
            target = os.readlink(candidate)
        except OSError:
            return True
        if target.startswith(root):
            resolved = root
        pending.extend(reversed(target.split(sep)))
    return True


def named_again(paths: Sequence[bytes]) -> dict[int, list[int]]:
    """For each path in *paths* named again later (``src`` and ``./src/``; a folder typed that a
    profile also found), its position and those of the later ones: walking it again would store
    the same files twice, under two names, so it is captured once. A different path to the same
    file (a link and its target) is not one of them: the user may want both recorded."""
    first: dict[bytes, int] = {}
    again: dict[int, list[int]] = {}
    for position, path in enumerate(paths):
        kept = first.setdefault(os.path.abspath(path), position)
        if kept != position:
            again.setdefault(kept, []).append(position)
    return again


def resolve_sources(paths: list[bytes], found_by_profile: Mapping[bytes, bytes] | None = None
                    ) -> list[Source]:
    """Check each source exists and give it a unique top-level name in the bag.

    A source that is a symbolic link is captured as what it points to: the user named it. Those
    in *found_by_profile* were found by a profile's pattern, and a link that a wildcard matched
    is recorded as the link itself: someone else's link (``/home/*/.bash_history`` pointing at
    ``/etc/shadow``, or at ``/``) must not take the capture out of what was asked for. Nor is a
    link followed among their folders below the part the pattern names (the value: "/home" for
    ``/home/*/.local/share/fish/fish_history``), even one swapped in after the pattern matched.
    A source the pattern names in full (the value is the source itself: ``{home}/Downloads``, or
    ``{home}/Documents`` for ``{home}/Documents/**``) is followed like one named by the user: a
    Downloads folder moved to another disk and linked back is what the profile asks for. That
    holds only for links made by the user running the capture or by root (trusted_part): one
    made by anyone else is not followed, and the source is recorded as the link it is.
    """
    found = found_by_profile or {}
    sources: list[Source] = []
    taken: set[str] = set()
    for index, given in enumerate(paths):
        absolute = os.path.abspath(given)
        if not os.path.lexists(absolute):
            raise InputError(f"source not found: {os.fsdecode(given)}",
                             hint="check the path; nothing was written")
        followed = found.get(given)
        if followed is not None:
            # checked again now: a link may have been planted since the profile was expanded
            followed = trusted_part(os.path.abspath(followed))
        named_in_full = followed is None or followed == absolute
        via_symlink = os.path.islink(absolute) and named_in_full
        target = os.path.realpath(absolute) if via_symlink else absolute
        if via_symlink and not os.path.exists(target):
            if followed is not None:  # found, not named: recorded as the (broken) link it is
                via_symlink, target = False, absolute
            else:
                raise InputError(f"source {os.fsdecode(given)} is a broken symbolic link")
        base = os.path.basename(absolute.rstrip(b"/")) or b"root"
        bag_name = unique_name(escape_name(base), taken)
        taken.add(bag_name)
        # A link followed to its target: what lies on the way there was resolved just now
        # (realpath); a profile's source is opened checking that again (_open_resolving).
        sources.append(Source(index, absolute, target, bag_name, via_symlink,
                              target if via_symlink and followed is not None else followed))
    return sources


def source_reaching(folder: str | bytes | os.PathLike[str], sources: Collection[Source]
                    ) -> Source | None:
    """The source whose walk lists the existing *folder* (that folder itself or one below it).

    Writing anything into such a folder (the bundle, its temporary file, a new signing key)
    changes the evidence: the folder's modification time and its list of names. Folders are
    compared by device and inode, from *folder* up to the root, so that every way of naming the
    same folder counts: a link to it, a bind mount, ``~/downloads`` on a case-insensitive disk.
    A source recorded as a link (not followed) lists nothing."""
    listed: dict[tuple[int, int], Source] = {}
    for source in sources:
        try:
            if not stat.S_ISDIR(os.lstat(source.path).st_mode):
                continue
            info = os.stat(source.path)
        except OSError:
            continue
        listed.setdefault((info.st_dev, info.st_ino), source)
    real = os.path.realpath(os.fsencode(folder))
    for name in (real, *_other_names(real)):
        found = _listed_above(name, listed)
        if found is not None:
            return found
    return None


def _listed_above(folder: bytes, listed: dict[tuple[int, int], Source]) -> Source | None:
    """The source among *listed* that is *folder* or a folder above it."""
    while True:
        try:
            info = os.stat(folder)
        except OSError:
            return None
        found = listed.get((info.st_dev, info.st_ino))
        if found is not None:
            return found
        above = os.path.dirname(folder)
        if above == folder:
            return None
        folder = above


_MOUNTINFO_ESCAPE = re.compile(rb"\\([0-7]{3})")


def _other_names(real: bytes) -> list[bytes]:
    """Where else the folder *real* is seen: through the other mounts of its file system (a bind
    mount of a part of it shows that part elsewhere; Linux's /proc/self/mountinfo tells)."""
    try:
        with open("/proc/self/mountinfo", "rb") as table:
            lines = table.read().splitlines()
    except OSError:
        return []

    def unescaped(field: bytes) -> bytes:
        return _MOUNTINFO_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), field)

    mounts = []  # (device, root inside the file system, mount point)
    for line in lines:
        fields = line.split(b" ")
        if len(fields) > 4:
            mounts.append((fields[2], unescaped(fields[3]), unescaped(fields[4])))
    holding = [m for m in mounts if is_within(real, m[2])]
    if not holding:
        return []
    # the innermost mount; of several at one place, the last (it covers the others)
    device, root, point = max(reversed(holding), key=lambda m: len(m[2]))
    inside = os.path.normpath(os.path.join(root, os.path.relpath(real, point)))
    return [os.path.normpath(os.path.join(other_point, os.path.relpath(inside, other_root)))
            for other_device, other_root, other_point in mounts
            if other_device == device and other_point != point and is_within(inside, other_root)]


def walk(sources: list[Source], skip: set[tuple[int, int]] | None = None) -> Iterator[Entry]:
    """Yield every entry of every source, parents before children, children in byte order.

    ``skip`` holds (device, inode) pairs never to descend into or read (the bundle being written).
    An entry's ``dir_fd`` stays open until the walk moves past it.
    """
    for source in sources:
        yield from _walk_root(source, skip or set())


def _walk_root(source: Source, skip: set[tuple[int, int]]) -> Iterator[Entry]:
    # "/" has no name in a parent: it is "." of itself ("root" is only its name in the bag)
    name = os.path.basename(source.path.rstrip(b"/")) or b"."
    parent = os.path.dirname(source.path.rstrip(b"/")) or b"/"
    display = os.path.basename(source.given.rstrip(b"/")) or b"root"
    try:
        parent_fd = _open_parent(parent, source.followed)
    except OSError as exc:
        if source.followed is None:
            raise
        yield Entry(source, display, f"data/{source.bag_name}", "unknown", None, -1,
                    source.path, error=_unreached(exc))
        return
    try:
        yield from _walk_at(source, parent_fd, name, display, f"data/{source.bag_name}", skip)
    finally:
        os.close(parent_fd)


def _open_parent(parent: bytes, followed: bytes | None) -> int:
    """The folder holding a source, opened with O_PATH (it only has to be searchable, not
    readable: nothing in it is listed). Every link is followed when *followed* is None (a source
    the user named); else see _open_resolving."""
    if followed is None:
        return os.open(parent, _PATH_ONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    return _open_resolving(parent, (followed or b"/").rstrip(b"/") or b"/")


def _open_resolving(path: bytes, followed: bytes) -> int:
    """Open the folder *path* one component at a time from the root, each through the one
    above, so that what is checked is what is opened (a folder swapped for a link while earlier
    sources were walked is met here, not followed). A link is followed only among the leading
    folders in *followed*, only if trusted_owners() made it, and its target is resolved the
    same way; any other link raises ENOTDIR (recorded by the walk as not reached)."""
    stack = [os.open(b"/", _PATH_ONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
    parts = [p for p in path.split(b"/") if p]
    # (name, whether a link there may be followed): the path's own parts up to *followed*,
    # and every part of a followed link's target
    pending = [(part, is_within(followed, b"/" + b"/".join(parts[:i + 1])))
               for i, part in enumerate(parts)][::-1]
    hops = 0
    try:
        while pending:
            part, may_follow = pending.pop()
            if part == b".":
                continue
            if part == b"..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            try:
                stack.append(os.open(part, _PATH_ONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                     | os.O_CLOEXEC, dir_fd=stack[-1]))
                continue
            except OSError as exc:
                if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
            target = _trusted_link_target(stack[-1], part) if may_follow else None
            hops += 1
            if target is None or hops > _MAX_LINKS:
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
            if target.startswith(b"/"):
                while len(stack) > 1:
                    os.close(stack.pop())
            pending.extend((p, True) for p in reversed(target.split(b"/")) if p)
        fd = stack.pop()
    finally:
        for left in stack:
            os.close(left)
    return fd


def _trusted_link_target(dir_fd: int, name: bytes) -> bytes | None:
    """What the link *name* in *dir_fd* holds, if trusted_owners() made it (None otherwise, or if
    it is not a link). The owner and the target are read off one open of the link where the
    system allows it (Linux's O_PATH), so another link renamed over it in between is not read."""
    try:
        if getattr(os, "O_PATH", 0):
            link = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                info = os.fstat(link)
                target = os.readlink(b"", dir_fd=link) if stat.S_ISLNK(info.st_mode) else None
            finally:
                os.close(link)
        else:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            target = os.readlink(name, dir_fd=dir_fd) if stat.S_ISLNK(info.st_mode) else None
            after = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if (after.st_dev, after.st_ino) != (info.st_dev, info.st_ino):
                return None
    except OSError:
        return None
    if target is None or info.st_uid not in trusted_owners():
        return None
    return os.fsencode(target)


def is_within(path: AnyStr, folder: AnyStr) -> bool:
    """Whether *path* is *folder* or inside it, by name alone (nothing is resolved)."""
    if isinstance(path, bytes):
        return path == folder or path.startswith(folder.rstrip(b"/") + b"/")
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _unreached(exc: OSError) -> str:
    if exc.errno in (errno.ENOTDIR, errno.ELOOP):
        return ("not captured: a folder on its path is a symbolic link (or not a folder) that "
                "is not followed for what a profile found: below the pattern's named folders, "
                "or made by another user")
    return f"not captured: the folder holding it could not be reached: {_describe(exc)}"


def _walk_at(source: Source, dir_fd: int, name: bytes, path: bytes, bag_path: str,
             skip: set[tuple[int, int]]) -> Iterator[Entry]:
    """*name* in *dir_fd* and everything below it, depth first. A loop over an explicit stack of
    the folders being listed, not a recursion: nested generators, one a level, stopped a tree
    about 1000 levels deep with Python's RecursionError (a crash, exit 5). A folder's
    descriptor stays open while its children are walked (they are reached through it)."""
    stack: list[tuple[int, Iterator[tuple[bytes, bytes, str]]]] = []
    node: tuple[int, bytes, bytes, str] | None = (dir_fd, name, path, bag_path)
    try:
        while node is not None:
            opened = yield from _visit(source, *node, skip)
            if opened is not None:
                stack.append(opened)
            node = None
            while stack and node is None:
                fd, children = stack[-1]
                child = next(children, None)
                if child is None:
                    stack.pop()
                    os.close(fd)
                else:
                    node = (fd, *child)
    finally:
        for fd, _ in stack:
            os.close(fd)


def _visit(source: Source, dir_fd: int, name: bytes, path: bytes, bag_path: str,
           skip: set[tuple[int, int]]
           ) -> Generator[Entry, None, tuple[int, Iterator[tuple[bytes, bytes, str]]] | None]:
    """Yield the entry of *name* in *dir_fd*; for a folder to descend into, return its open
    descriptor and its children (name, path, bag path) in byte order."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        # Listed a moment ago, gone or unreadable now: record it, never drop it.
        yield Entry(source, path, bag_path, "unknown", None, dir_fd, name, error=_describe(exc))
        return None
    kind = kind_of(info.st_mode)
    entry = Entry(source, path, bag_path, kind, info, dir_fd, name)
    if (info.st_dev, info.st_ino) in skip:
        entry.error = "skipped: evidencekit's own file (the bundle being written or the signing key)"
        yield entry
        return None
    if kind != "directory":
        yield entry
        return None
    try:
        fd = open_directory(name, dir_fd)
    except OSError as exc:
        entry.children_error = f"could not open the folder: {_describe(exc)}"
        yield entry
        return None
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
            # Renamed away and another folder put in its place: listing that one would record
            # its contents under this folder's metadata (files are checked the same way).
            entry.children_error = ("not listed: replaced by another folder between being "
                                    "looked up and opened")
            names = []
        else:
            try:
                names = sorted(os.fsencode(child) for child in os.listdir(fd))
            except OSError as exc:
                entry.children_error = f"could not list the folder: {_describe(exc)}"
                names = []
        yield entry
    except BaseException:
        os.close(fd)
        raise
    return fd, _children(names, path, bag_path)


def _children(names: list[bytes], path: bytes, bag_path: str
              ) -> Iterator[tuple[bytes, bytes, str]]:
    taken: set[str] = set()
    for child in names:
        escaped = unique_name(escape_name(child), taken)
        taken.add(escaped)
        yield child, path + b"/" + child, f"{bag_path}/{escaped}"


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)
