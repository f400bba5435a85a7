"""deliver.local: a copy is published only if the bundle is still the one verified."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evidencekit.deliver import LocalFile, checked_facts
from evidencekit.errors import BundleError
from evidencekit.progress import NoProgress


def test_a_bundle_changed_after_it_was_verified_is_not_copied(bundle: Path,
                                                              tmp_path: Path) -> None:
    facts, _ = checked_facts(bundle)
    with bundle.open("r+b") as f:
        f.seek(-10, os.SEEK_END)
        f.write(b"X" * 10)
    target = tmp_path / "copies"
    target.mkdir()
    with pytest.raises(BundleError, match="changed while it was being verified or copied"):
        LocalFile(target).deliver(bundle, facts, NoProgress())
    assert list(target.iterdir()) == []
