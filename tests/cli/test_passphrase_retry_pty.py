"""A passphrase typed wrong on a terminal is asked again (a few tries), as a login would, instead
of ending the command: through a real pseudo-terminal (pexpect)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evidencekit.errors import ExitCode
from tests.support.terminal import evidencekit_on_a_pty

pexpect = pytest.importorskip("pexpect")

PROMPT = "Passphrase for the bundle:"
AGAIN = "That passphrase does not open this bundle."
RIGHT = "bundle secret"  # passphrase_bundle's (tests/support/fixtures.py)


def spawn(tmp_path: Path, *args: object):
    return evidencekit_on_a_pty(args, cwd=tmp_path, env={"HOME": tmp_path,
                                                         "XDG_CONFIG_HOME": tmp_path / "config"})


def finish(child) -> tuple[int, str]:
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, " ".join(child.logfile_read.getvalue().split())


def test_report_asks_again_after_a_wrong_passphrase(tmp_path: Path, passphrase_bundle: Path):
    output = tmp_path / "report.html"
    child = spawn(tmp_path, "report", passphrase_bundle, "-p", "-o", output)
    child.expect_exact(PROMPT)
    child.sendline("bundle secert")  # a typing mistake
    child.expect_exact(AGAIN)
    child.expect_exact("(2 tries left)")
    child.expect_exact(PROMPT)
    child.sendline(RIGHT)
    code, seen = finish(child)
    assert code == ExitCode.OK, seen
    assert "VERIFIED and wrote the report" in seen and output.is_file()
    assert seen.count(PROMPT) == 2 and RIGHT not in seen  # hidden as typed


def test_three_wrong_passphrases_end_as_before(tmp_path: Path, passphrase_bundle: Path):
    output = tmp_path / "report.html"
    child = spawn(tmp_path, "report", passphrase_bundle, "-p", "-o", output)
    for left in ("2 tries left", "1 try left"):
        child.expect_exact(PROMPT)
        child.sendline("wrong")
        child.expect_exact(left)
    child.expect_exact(PROMPT)
    child.sendline("still wrong")
    code, seen = finish(child)
    assert code == ExitCode.NO_MATCHING_KEY, seen
    assert seen.count(PROMPT) == 3 and seen.count(AGAIN) == 2
    assert "the passphrase does not open this bundle, so no report was made" in seen
    assert not output.exists()


def test_extract_without_p_asks_when_the_bundle_needs_a_passphrase_and_again(
        tmp_path: Path, passphrase_bundle: Path):
    child = spawn(tmp_path, "extract", passphrase_bundle, "-o", tmp_path / "out")
    child.expect_exact(PROMPT)
    child.sendline("wrong")
    child.expect_exact(AGAIN)
    child.expect_exact(PROMPT)
    child.sendline(RIGHT)
    code, seen = finish(child)
    assert code == ExitCode.OK, seen
    assert (tmp_path / "out").is_dir()


def test_a_passphrase_from_a_file_is_never_asked_again(tmp_path: Path, passphrase_bundle: Path):
    """Only what was typed on the terminal is asked again; a file (or the variable) is what it
    is: a wrong one fails at once, with exit code 4, even on a terminal."""
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("wrong\n")
    child = spawn(tmp_path, "verify", passphrase_bundle, "--passphrase-file", wrong)
    code, seen = finish(child)
    assert code == ExitCode.NO_MATCHING_KEY, seen
    assert PROMPT not in seen and AGAIN not in seen


@pytest.mark.parametrize("command", ["verify", "extract"])
def test_a_bundle_made_for_a_key_is_not_asked_a_passphrase_with_p(
        tmp_path: Path, bundle: Path, command: str):
    # -p typed by mistake: the header shows no passphrase opens the bundle, so none is asked
    # for (typing one could only fail); the message says which key it is made for
    output = ("-o", tmp_path / "opened") if command == "extract" else ()
    child = spawn(tmp_path, command, bundle, "-p", *output)
    code, seen = finish(child)
    assert code == ExitCode.NO_MATCHING_KEY, seen
    assert PROMPT not in seen
    assert "this bundle is protected by a key, not a passphrase" in seen
    assert not (tmp_path / "opened").exists()
