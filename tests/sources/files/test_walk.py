import os
import subprocess

import pytest

from evidencekit.fs.noatime import scan_directory
from evidencekit.sources.files.walk import (
    ESTIMATE_DEPTH,
    entries_below,
    escape_name,
    named_again,
    resolve_sources,
    source_reaching,
    walk,
)
from tests.support.tools import atimes, skip_or_fail, stale_atimes


def test_walk_is_sorted_and_never_follows_links(tmp_path):
    root = tmp_path / "case"
    (root / "b").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "b" / "c.txt").write_text("c")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    os.symlink(outside, root / "link")
    entries = list(walk(resolve_sources([os.fsencode(root)])))
    assert [(e.path, e.kind) for e in entries] == [
        (b"case", "directory"), (b"case/a.txt", "file"), (b"case/b", "directory"),
        (b"case/b/c.txt", "file"), (b"case/link", "symlink")]
    assert entries[3].bag_path == "data/case/b/c.txt"


def test_non_utf8_names_get_unique_escaped_bag_names(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    raw = os.fsencode(root) + b"/bad\xff"
    with open(raw, "wb"):
        pass
    with open(os.fsencode(root) + b"/bad\\xff", "wb"):
        pass
    entries = list(walk(resolve_sources([os.fsencode(root)])))
    bag_paths = [e.bag_path for e in entries[1:]]
    assert len(set(bag_paths)) == 2
    assert all(p.encode("utf-8") for p in bag_paths)
    assert escape_name(b"ok") == "ok"


def test_two_sources_with_the_same_name_get_distinct_bag_names(tmp_path):
    (tmp_path / "x" / "docs").mkdir(parents=True)
    (tmp_path / "y" / "docs").mkdir(parents=True)
    sources = resolve_sources([os.fsencode(tmp_path / "x" / "docs"),
                               os.fsencode(tmp_path / "y" / "docs")])
    assert [s.bag_name for s in sources] == ["docs", "docs~1"]


def test_scan_directory_keeps_the_folders_access_time(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    stale = stale_atimes(tmp_path)
    with scan_directory(tmp_path) as entries:
        found = {e.name: (e.is_dir(follow_symlinks=False), e.stat(follow_symlinks=False).st_size)
                 for e in entries}
    assert found == {"a.txt": (False, 1), "sub": (True, found["sub"][1])}
    assert atimes(tmp_path) == stale
    os.listdir(tmp_path)  # what it replaces does change it
    assert atimes(tmp_path) != stale


def test_scan_directory_follows_a_link_only_when_asked(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(OSError), scan_directory(tmp_path / "link"):
        pass
    with scan_directory(tmp_path / "link", follow=True) as entries:
        assert [e.name for e in entries] == ["f"]


def test_the_root_of_the_file_system_is_walked_as_itself():
    """"/" has no name in a parent; looking up its bag name ("root") in "/" walked /root."""
    (source,) = resolve_sources([b"/"])
    first = next(iter(walk([source])))
    assert first.lstat is not None
    assert (first.lstat.st_dev, first.lstat.st_ino) == (os.stat("/").st_dev, os.stat("/").st_ino)
    assert source.bag_name == "root"


def test_source_reaching_finds_the_captured_folder_a_path_lies_in(tmp_path):
    (tmp_path / "src" / "deep").mkdir(parents=True)
    (tmp_path / "src2").mkdir()  # a sibling whose name starts like the source's
    (tmp_path / "src" / "file").write_text("x")
    (tmp_path / "to-src").symlink_to(tmp_path / "src")
    src, file_source = resolve_sources([os.fsencode(tmp_path / "src"),
                                        os.fsencode(tmp_path / "src" / "file")])
    assert source_reaching(tmp_path / "src", [src]) is src
    assert source_reaching(tmp_path / "src" / "deep", [src]) is src
    assert source_reaching(tmp_path / "to-src" / "deep", [src]) is src  # the same folder
    assert source_reaching(tmp_path / "src2", [src]) is None
    assert source_reaching(tmp_path, [src]) is None  # its parent is not captured
    assert source_reaching(tmp_path / "src", [file_source]) is None  # a file lists nothing
    (followed,) = resolve_sources([os.fsencode(tmp_path / "to-src")])  # named: followed
    assert source_reaching(tmp_path / "src" / "deep", [followed]) is followed
    (unfollowed,) = resolve_sources([os.fsencode(tmp_path / "to-src")],
                                    {os.fsencode(tmp_path / "to-src"): b"/"})  # profile-found
    assert source_reaching(tmp_path / "src" / "deep", [unfollowed]) is None
    (root,) = resolve_sources([b"/"])
    assert source_reaching(tmp_path, [root]) is root


def test_entries_below_never_follows_a_folder_swapped_for_a_link(tmp_path):
    """A folder listed, then replaced by a link before its subfolders are entered: the count
    goes on in the folder that was listed, not wherever the link points."""
    (tmp_path / "top" / "a" / "b").mkdir(parents=True)
    (tmp_path / "top" / "a" / "b" / "mine").write_text("x")
    (tmp_path / "elsewhere" / "b").mkdir(parents=True)
    (tmp_path / "elsewhere" / "b" / "not-mine").write_text("y")
    seen = []
    for entry in entries_below(tmp_path / "top"):
        seen.append(entry.name)
        if entry.name == "b":  # a is listed; b is entered next, through a
            os.rename(tmp_path / "top" / "a", tmp_path / "top" / "a.moved")
            (tmp_path / "top" / "a").symlink_to(tmp_path / "elsewhere")
    assert seen == ["a", "b", "mine"]
    # a link to a folder is listed, never entered; the top is followed only when asked
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    assert sorted(e.name for e in entries_below(tmp_path / "top")) == ["a", "a.moved", "b", "mine"]
    with pytest.raises(OSError):
        list(entries_below(tmp_path / "link"))
    assert sorted(e.name for e in entries_below(tmp_path / "link", follow=True)) == [
        "b", "not-mine"]


def test_entries_below_closes_its_folders_when_left_early(tmp_path):
    for n in range(3):
        (tmp_path / f"d{n}" / "e").mkdir(parents=True)
    before = len(os.listdir("/proc/self/fd"))
    walker = entries_below(tmp_path)
    next(walker)
    walker.close()
    assert len(os.listdir("/proc/self/fd")) == before
    assert len(list(entries_below(tmp_path))) == 6 and len(os.listdir("/proc/self/fd")) == before


def test_a_folder_swapped_for_a_link_after_a_profile_found_a_source_is_not_followed(tmp_path):
    (tmp_path / "home" / "mallory" / "cfg").mkdir(parents=True)
    (tmp_path / "home" / "mallory" / "cfg" / "history").write_text("mine")
    (tmp_path / "other" / "cfg").mkdir(parents=True)
    (tmp_path / "other" / "cfg" / "history").write_text("not mallory's")
    path = os.fsencode(tmp_path / "home" / "mallory" / "cfg" / "history")
    (found,) = resolve_sources([path], {path: os.fsencode(tmp_path / "home")})
    (named,) = resolve_sources([path])
    os.rename(tmp_path / "home" / "mallory", tmp_path / "home" / "mallory.old")
    (tmp_path / "home" / "mallory").symlink_to(tmp_path / "other")  # after the pattern matched
    (entry,) = walk([found])
    assert entry.lstat is None and entry.error is not None
    assert entry.error.startswith("not captured: a folder on its path is a symbolic link")
    (entry,) = walk([named])  # a path the user typed is theirs to follow
    assert entry.lstat is not None and entry.error is None


def test_source_reaching_sees_the_same_folder_by_another_name(tmp_path):
    """A bind mount (or a case-insensitive disk) names a captured folder differently: compared
    by device and inode, it is still the captured folder."""
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "view").mkdir()
    (src,) = resolve_sources([os.fsencode(tmp_path / "src")])
    mounted = subprocess.run(["mount", "--bind", str(tmp_path / "src"), str(tmp_path / "view")],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        skip_or_fail("cannot bind-mount here (needs root)")
    try:
        assert source_reaching(tmp_path / "view", [src]) is src
        assert source_reaching(tmp_path / "view" / "sub", [src]) is src
    finally:
        subprocess.run(["umount", str(tmp_path / "view")], check=True)
    # a bind mount of a folder inside the source: seen from the mount, the source is not above
    (tmp_path / "src" / "sub" / "with space").mkdir()
    subprocess.run(["mount", "--bind", str(tmp_path / "src" / "sub" / "with space"),
                    str(tmp_path / "view")], check=True)
    try:
        assert source_reaching(tmp_path / "view", [src]) is src
        assert source_reaching(tmp_path, [src]) is None
    finally:
        subprocess.run(["umount", str(tmp_path / "view")], check=True)


def test_entries_below_holds_few_descriptors_however_deep_the_tree(tmp_path):
    """It runs beside the walk, which holds one descriptor per level itself: a deep tree must
    not leave the walk without descriptors (a capture then missed files)."""
    folder = tmp_path
    for _ in range(ESTIMATE_DEPTH + 30):
        folder = folder / "d"
        folder.mkdir()
    baseline = len(os.listdir("/proc/self/fd"))
    most = depth = 0
    for _entry in entries_below(tmp_path):
        depth += 1
        most = max(most, len(os.listdir("/proc/self/fd")) - baseline)
    assert depth == ESTIMATE_DEPTH and most <= ESTIMATE_DEPTH + 1  # (+1: the listing's own)


def test_a_trusted_link_through_a_strangers_link_is_not_trusted(tmp_path, monkeypatch):
    """Root's own link whose target runs through a link someone else made is followed no
    further than that: the kernel would take the stranger's link too."""
    from evidencekit.sources.files import walk as walking
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "shadow").write_text("root:hash")
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "user").symlink_to(tmp_path / "etc")  # the stranger's
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "app.log").symlink_to(tmp_path / "spool" / "user" / "shadow")  # root's
    stranger = os.lstat(tmp_path / "spool" / "user").st_ino
    real_lstat = os.lstat

    def lstat(path, *args, **kwargs):
        info = real_lstat(path, *args, **kwargs)
        if info.st_ino == stranger:  # as if another uid had made it
            return os.stat_result((info.st_mode, info.st_ino, info.st_dev, info.st_nlink, 54321,
                                   *info[5:]))
        return info

    monkeypatch.setattr(walking.os, "lstat", lstat)
    log = str(tmp_path / "log" / "app.log")
    assert walking.trusted_part(log) == str(tmp_path / "log")
    assert walking.trusted_part(str(tmp_path / "log")) == str(tmp_path / "log")
    (tmp_path / "log" / "ok.log").symlink_to("../etc/shadow")  # relative, no stranger on the way
    assert walking.trusted_part(str(tmp_path / "log" / "ok.log")) == str(tmp_path / "log" / "ok.log")


def test_a_path_named_again_is_found_whatever_its_spelling(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "docs")
    paths = [b"docs", b"link", os.fsencode(tmp_path / "docs"), b"./docs/"]
    # a link to the folder is another path to it: both are recorded, as the user asked
    assert named_again(paths) == {0: [2, 3]}


def test_a_tree_thousands_of_levels_deep_is_walked_in_order(tmp_path):
    """The walk is a loop, not a recursion: a tree 2000 levels deep (one folder and one file a
    level) stopped capture with RecursionError, an internal error (exit 5), past about 970
    (found by an independent review). Order and names are those of a shallow tree."""
    DEPTH = 1500  # well past Python's default recursion limit of 1000
    root = tmp_path / "deep"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(DEPTH):
            os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
            os.mkdir("a", dir_fd=fd)
            inner = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)
    try:
        entries = list(walk(resolve_sources([os.fsencode(root)])))
    finally:
        # pytest's own clean-up (shutil.rmtree) recurses, and would fail for every later
        # session sharing the base folder; rm walks any depth
        subprocess.run(["rm", "-rf", root], check=True)
    assert len(entries) == 1 + DEPTH * 2
    assert [e.bag_path for e in entries[:5]] == ["data/deep", "data/deep/a", "data/deep/a/a",
                                                 "data/deep/a/a/a", "data/deep/a/a/a/a"]
    assert entries[DEPTH].bag_path == "data/deep" + "/a" * DEPTH
    assert entries[DEPTH + 1].bag_path == "data/deep" + "/a" * (DEPTH - 1) + "/f"  # then back up
    assert entries[-1].bag_path == "data/deep/f"
    assert all(e.error is None and e.children_error is None for e in entries)

