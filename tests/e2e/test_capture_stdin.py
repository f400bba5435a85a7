"""capture --stdin NAME end to end: real data piped into the real command, then verify, extract,
and the same bytes found by hand (tar, age -d, tar -x, sha256sum)."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.by_hand import by_hand as documented
from tests.support.by_hand import passed, toolbox_in
from tests.support.piped import by_hand, capture, evidencekit, manifest


@pytest.mark.parametrize("size", [20 << 20, 0], ids=["20MiB", "empty"])
def test_a_piped_stream_round_trips(tmp_path: Path, keys: dict[str, Path], home: Path,
                                    size: int) -> None:
    # 20 MiB: more than the spool keeps in memory, so part of it is held encrypted on disk
    data = os.urandom(size)
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"typed as well\n")
    done = capture(tmp_path, keys, "--stdin", "journal.export", folder, feed=data)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["seal"]["counts"]["files"] == 2 and result["seal"]["complete"]
    assert result["seal"]["total_bytes"] == size + 14
    assert sorted(os.listdir(tmp_path)) == ["config", "keys", "notes", "out.evidence"]

    checked = evidencekit("verify", tmp_path / "out.evidence", "-i", keys["identity"], "--json")
    assert checked.returncode == 0 and json.loads(checked.stdout)["ok"], checked.stdout
    extracted = evidencekit("extract", tmp_path / "out.evidence", "-i", keys["identity"],
                            "-o", tmp_path / "out")
    assert extracted.returncode == 0, extracted.stderr
    assert (tmp_path / "out/data/journal.export").read_bytes() == data

    digest = hashlib.sha256(data).hexdigest()
    assert by_hand(tmp_path / "out.evidence", keys["identity"], tmp_path / "hand",
                   "data/journal.export") == digest
    found = manifest(tmp_path / "hand")
    assert found["sources"][1] == {"index": 1, "given": "-", "path": "-",
                                   "bag_name": "journal.export", "via_symlink": False,
                                   "kind": "stdin"}
    [entry] = [e for e in found["entries"] if e["source"] == 1]
    assert entry["sha256"] == digest and entry["size"] == size and entry["kind"] == "file"
    assert entry["path"] == "journal.export" and entry["changes"] == []
    if size == 0:  # the whole procedure of FORMAT.md §7.2 (once: it reads the same names)
        output = passed(documented(toolbox_in(tmp_path / "toolbox"), tmp_path / "out.evidence",
                                   "-i", keys["identity"]))
        assert "the 1 folders manifest.json lists are there, and no others" in output


def test_a_file_redirected_to_stdin_is_streamed_at_its_size(tmp_path: Path,
                                                             keys: dict[str, Path],
                                                             home: Path) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(os.urandom(3 << 20))
    with open(image, "rb") as stream:
        done = capture(tmp_path, keys, "--stdin", "disk.img", stdin=stream)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["seal"]["total_bytes"] == 3 << 20
    assert by_hand(tmp_path / "out.evidence", keys["identity"], tmp_path / "hand",
                   "data/disk.img") == hashlib.sha256(image.read_bytes()).hexdigest()


def test_a_name_taken_by_a_file_source_gets_the_next_free_one(tmp_path: Path,
                                                              keys: dict[str, Path],
                                                              home: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"on disk\n")
    done = capture(tmp_path, keys, log, "--stdin", "app.log", feed=b"piped\n")
    assert done.returncode == 0, done.stderr
    assert by_hand(tmp_path / "out.evidence", keys["identity"], tmp_path / "hand",
                   "data/app.log~1") == hashlib.sha256(b"piped\n").hexdigest()
    assert [s["bag_name"] for s in manifest(tmp_path / "hand")["sources"]] == \
        ["app.log", "app.log~1"]


def test_a_terminal_on_stdin_is_refused(tmp_path: Path, keys: dict[str, Path],
                                        home: Path) -> None:
    controller, terminal = pty.openpty()
    try:
        done = capture(tmp_path, keys, "--stdin", "x.log", stdin=terminal)
    finally:
        os.close(controller)
        os.close(terminal)
    assert done.returncode == 2
    error = json.loads(done.stdout)["error"]
    assert "standard input is a terminal" in error["message"] and "|" in error["hint"]
    assert not (tmp_path / "out.evidence").exists()


def test_a_closed_stdin_is_refused(tmp_path: Path, keys: dict[str, Path], home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import os, sys, runpy; os.close(0); "
         "sys.argv = ['evidencekit', *sys.argv[1:]]; runpy.run_module('evidencekit', "
         "run_name='__main__')", "capture", "--case", "PIPE-1", "-R", str(keys["recipient"]),
         "--sign-key", str(keys["signer"]), "-o", str(tmp_path / "out.evidence"), "--json",
         "--stdin", "x.log"], capture_output=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "standard input is closed" in json.loads(done.stdout)["error"]["message"]


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "line\nbreak", "x" * 256])
def test_a_name_that_is_not_one_plain_file_name_is_refused(tmp_path: Path,
                                                           keys: dict[str, Path], home: Path,
                                                           name: str) -> None:
    done = capture(tmp_path, keys, "--stdin", name, feed=b"data")
    assert done.returncode == 2
    assert "--stdin needs a plain file name" in json.loads(done.stdout)["error"]["message"]
    assert not (tmp_path / "out.evidence").exists()


def test_an_option_taken_as_the_name_is_said_to_be_one(tmp_path: Path, keys: dict[str, Path],
                                                       home: Path) -> None:
    """``--stdin -R key.pub``: click gives --stdin the name "-R" and key.pub becomes a file to
    capture; the capture then failed on the missing recipient, far from the cause."""
    done = capture(tmp_path, keys, "--stdin", "-R", keys["recipient"], feed=b"data")
    assert done.returncode == 2, done.stderr
    message = json.loads(done.stdout)["error"]["message"]
    assert message == "--stdin needs its value right after it: -R is an option, not a value " \
        "for --stdin", message
    assert not (tmp_path / "out.evidence").exists()
