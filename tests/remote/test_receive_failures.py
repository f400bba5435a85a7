"""What a capture over SSH that did not end well is called, from ssh's exit code and stderr."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from evidencekit.remote.receive import stream_failure
from evidencekit.remote.ssh import Endpoint


def _said(code: int | None, stderr: str) -> str:
    request = cast(Any, SimpleNamespace(endpoint=Endpoint("ek", "127.0.0.1", 2222)))
    conn = cast(Any, SimpleNamespace(key=SimpleNamespace(fingerprint="SHA256:x")))
    return str(stream_failure(request, conn, code, stderr, "the stream ended early"))


@pytest.mark.parametrize("code", [255, 137, 143])
def test_a_connection_closed_under_the_capture_is_a_lost_link_whatever_the_exit_code(
        code: int) -> None:
    # killing the server's side may make ssh report the command's death (137) before the link's
    said = _said(code, "Connection to 127.0.0.1 closed by remote host.")
    assert said.startswith("could not capture over SSH from ek@127.0.0.1:2222")
    assert "nothing was kept" in said


def test_a_remote_capture_killed_without_losing_the_link_is_its_failure() -> None:
    said = _said(137, "Killed")
    assert said.startswith("the capture on ek@127.0.0.1:2222 failed (its exit code 137)")


def test_a_remote_capture_that_fails_by_itself_names_its_exit_code() -> None:
    said = _said(1, "evidencekit: error: no such file: /nope")
    assert "failed (its exit code 1)" in said and "no such file: /nope" in said


def test_what_ssh_said_reads_as_one_sentence() -> None:
    said = _said(255, "ek@127.0.0.1: Permission denied (publickey).")
    assert "Permission denied (publickey); nothing was kept" in said, said


def test_an_option_the_remote_evidencekit_does_not_know_may_be_the_remote_commands() -> None:
    """'--remote-command "evidencekit --bogus"' is the user's own option, not another version."""
    said = _said(2, "Usage: evidencekit [OPTIONS]\nError: No such option: --bogus")
    assert "does not understand this one's request" in said
    assert "--remote-command" in said, said
