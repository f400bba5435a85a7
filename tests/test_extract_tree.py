"""extract's staging tree (evidencekit.extract._Tree): deep trees are reached in linear time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evidencekit import extract


def test_a_deep_tree_is_reached_from_the_folders_kept_not_from_the_root(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Members in walk order (down a chain 300 levels deep, a file a level), then the metadata
    pass (deepest first, back up): each folder is opened about once. From the root every time it
    was a path's length in opens per member, 90,000 here; a tree 2000 levels deep took 45 s to
    extract, now 10 (found by an independent review, issue 19.6)."""
    depth = 300
    opens = 0
    real_open = os.open

    def counting_open(*args: object, **kwargs: object) -> int:
        nonlocal opens
        opens += 1
        return real_open(*args, **kwargs)  # type: ignore[arg-type]

    tree = extract._Tree(tmp_path)
    monkeypatch.setattr(extract.os, "open", counting_open)
    try:
        for level in range(1, depth + 1):
            where = tree.parent("/".join(["a"] * level), create=True)  # the folder member
            assert where is not None
            os.mkdir(where[1], 0o700, dir_fd=where[0])
        for level in range(depth, 0, -1):  # the files, then the metadata pass: back up
            where = tree.parent("/".join(["a"] * level + ["f"]), create=True)
            assert where is not None and where[1] == b"f"
            os.close(real_open(b"f", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=where[0]))
        for level in range(depth, 0, -1):
            assert tree.parent("/".join(["a"] * level)) is not None
    finally:
        tree.close()
        monkeypatch.undo()
    # Going up past the KEPT folders held reopens from the root (a path's length, once per KEPT
    # levels): about 1,700 here, against 90,000 from the root every time.
    assert opens < depth * depth // 20, opens
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):  # every file is in its folder
            inner = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
            assert os.path.isfile(f"/proc/self/fd/{fd}/f")
    finally:
        os.close(fd)


def test_the_descriptors_kept_are_bounded(tmp_path: Path) -> None:
    tree = extract._Tree(tmp_path)
    try:
        assert tree.parent("/".join(["a"] * 500) + "/f", create=True) is not None
        assert len(tree._fds) == extract._Tree.KEPT
        # a path beside the kept ones, and one above them: reached from the root, right
        assert tree.parent("a/b/f", create=True) is not None
        assert (tmp_path / "a" / "b").is_dir()
        assert tree.parent("a/a/f") is not None
        assert tree.parent("a/zzz/f") is None  # missing, not created
    finally:
        tree.close()
    assert len(tree._fds) == 0
