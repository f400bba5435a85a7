"""Shared pieces of the hostile-input suite: a bounded CLI runner, snapshots, fd-based tree walks."""

from __future__ import annotations

from tests.support.hostile import (  # noqa: F401  (old names, kept while other branches move)
    GIB,
    TERMINAL_CONTROLS,
    TIME_LIMIT,
    Bounded,
    alarm,
    assert_clean_failure,
    assert_terminal_safe,
    file_hashes,
    run_bounded,
    run_driver,
    run_measured,
    snapshot,
    walk_fd,
)
