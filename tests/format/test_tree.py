"""The payload's member times against manifest.json (evidencekit.format.tree): a time before 1970
in the old pax encoding is taken for the manifest's time it meant, and for nothing else."""

from __future__ import annotations

import pytest

from evidencekit.clock import rfc3339
from evidencekit.format.tree import TreeComparison
from evidencekit.payload import StoredMember

# The record -2.500000000: -2.5 s as POSIX reads it, -1.5 s as the old writer meant it.
MEMBER = StoredMember("file", 0o644, 0, 0, -2_500_000_000, -1_500_000_000)


@pytest.mark.parametrize(("recorded", "accepted"), [
    (-2_500_000_000, True), (-1_500_000_000, True), (-500_000_000, False), (0, False)])
def test_either_reading_of_an_old_time_matches_nothing_else(recorded: int,
                                                            accepted: bool) -> None:
    entry = {"bag_path": "data/f", "kind": "file", "sha256": "0" * 64, "mode": 0o644, "uid": 0,
             "gid": 0, "mtime": rfc3339(recorded)}
    tree = TreeComparison({"data/f": MEMBER}, ["data/f"])
    tree.check(entry, "data/f")
    problems = tree.problems()
    assert (problems == []) == accepted, problems
    if not accepted:
        [(where, _, expected, found)] = problems
        assert (where, expected, found) == ("data/f", f"mtime {rfc3339(recorded)}",
                                            f"mtime {rfc3339(-2_500_000_000)}")
