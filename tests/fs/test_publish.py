"""fs.require_new: every command writes a new file or folder, refused before the work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evidencekit import fs
from evidencekit.errors import OutputError


def test_a_new_name_in_an_existing_folder_is_accepted(tmp_path: Path) -> None:
    fs.require_new(tmp_path / "report.html")


def test_an_existing_file_or_a_dangling_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "taken.html").write_text("x")
    os.symlink(tmp_path / "nowhere", tmp_path / "link.html")
    for name in ("taken.html", "link.html"):
        with pytest.raises(OutputError, match="already exists; evidencekit does not overwrite it"
                           ) as caught:
            fs.require_new(tmp_path / name)
        assert caught.value.hint == "choose another name with -o"


def test_the_refusal_can_say_what_the_command_writes(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputError, match="extract writes into a new folder only") as caught:
        fs.require_new(tmp_path / "out", refusal="extract writes into a new folder only",
                       hint="choose another folder with -o")
    assert caught.value.hint == "choose another folder with -o"


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"the folder .*missing does not exist"):
        fs.require_new(tmp_path / "missing" / "report.pdf")
