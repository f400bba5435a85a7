import os

from evidencekit.walk import escape_name, resolve_sources, walk


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
