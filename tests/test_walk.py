import os

import pytest

from evidencekit.walk import escape_name, resolve_sources, scan_directory, walk
from tests.conftest import atimes, stale_atimes


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
