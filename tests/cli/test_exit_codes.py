"""Every documented exit code (README, "Exit codes"), provoked for real."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import click
import pytest

import evidencekit.sources.files.source as files_module
from evidencekit.crypto import age
from evidencekit.errors import ExitCode
from tests.support.cli import invoke
from tests.support.schemas import ROOT, assert_valid
from tests.support.tools import unprivileged_python


def capture_args(tmp_path: Path, keys, source: Path, name: str = "c") -> list[object]:
    return ["capture", source, "-R", keys["recipient"], "--sign-key", keys["signer"],
            "-o", tmp_path / f"{name}.evidence", "--json"]


def test_readme_documents_every_code():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.M)}
    declared = {v for k, v in vars(ExitCode).items() if k.isupper()}
    assert documented == declared == {0, 1, 2, 3, 4, 5, 6, 7, 130}


def test_7_timestamp_missing(tmp_path: Path, user, keys, tree):
    """The bundle is written; the TSA could not be reached (tests/cli/test_timestamps.py has
    the rest: a refused answer, one TSA of two)."""
    from tests.support.tsa_server import down_url

    result = invoke(*capture_args(tmp_path, keys, tree), "--tsa", down_url())
    assert result.code == ExitCode.TIMESTAMP_MISSING
    assert result.json()["ok"] is True and (tmp_path / "c.evidence").is_file()


def test_0_ok(tmp_path: Path, user, keys, tree):
    assert invoke(*capture_args(tmp_path, keys, tree)).code == ExitCode.OK


def test_1_evidence_problem(tmp_path: Path, user, keys, bundle):
    untrusted = invoke("verify", bundle, "--trusted-key", keys["stranger_pub"], "--json")
    assert untrusted.code == ExitCode.EVIDENCE_PROBLEM
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the payload
    bundle.write_bytes(bytes(data))
    damaged = invoke("verify", bundle, "--json")
    assert damaged.code == ExitCode.EVIDENCE_PROBLEM and damaged.json()["ok"] is False


@pytest.mark.parametrize("args", [
    ("capture", "missing-source", "-r", "age1qqq"),
    ("capture", "--no-such-option"),
    ("verify",),
    ("profiles", "show", "no-such-profile"),
    ("--config", "missing.yaml", "profiles", "list"),
])
def test_2_usage_or_input_error(args, user):
    assert invoke(*args).code == ExitCode.USAGE


def test_3_capture_incomplete_when_a_file_cannot_be_opened(tmp_path: Path, user, keys, tree,
                                                            monkeypatch):
    original = files_module.open_keeping_atime

    def refuse(name, flags, dir_fd=None):
        if name == b"notes.txt":
            raise PermissionError(13, "Permission denied")
        return original(name, flags, dir_fd)

    monkeypatch.setattr(files_module, "open_keeping_atime", refuse)
    result = invoke(*capture_args(tmp_path, keys, tree))
    assert result.code == ExitCode.CAPTURE_INCOMPLETE, result.stderr
    document = result.json()
    assert document["exit_code"] == 3 and document["seal"]["complete"] is False
    assert document["problems"] == [{"path": "evidence/notes.txt",
                                     "problem": "could not open: Permission denied"}]
    assert (tmp_path / "c.evidence").exists()  # the bundle is still written and valid
    assert invoke("verify", tmp_path / "c.evidence", "-i", keys["identity"]).code == 0


def test_4_no_matching_key(tmp_path: Path, user, keys, bundle):
    result = invoke("verify", bundle, "-i", keys["other"], "--json")
    assert result.code == ExitCode.NO_MATCHING_KEY
    assert result.json()["no_matching_key"]


def test_5_internal_error(tmp_path: Path, user, keys, tree, monkeypatch):
    def broken(request):
        raise RuntimeError("simulated bug")

    monkeypatch.delenv("EVIDENCEKIT_DEBUG", raising=False)
    monkeypatch.setattr("evidencekit.cli.capture_mail.capture", broken)
    result = invoke(*capture_args(tmp_path, keys, tree))
    assert result.code == ExitCode.INTERNAL
    document = result.json()
    assert document["exit_code"] == ExitCode.INTERNAL  # the document states the process's code
    assert document["error"]["kind"] == "InternalError"
    assert "internal error: RuntimeError: simulated bug" in document["error"]["message"]
    assert_valid(document, "capture")


def test_130_interrupted(tmp_path: Path, user, keys, tree, monkeypatch):
    def interrupted(request):
        raise KeyboardInterrupt

    monkeypatch.setattr("evidencekit.cli.capture_mail.capture", interrupted)
    result = invoke(*capture_args(tmp_path, keys, tree))
    assert result.code == ExitCode.INTERRUPTED
    assert result.json()["error"]["kind"] == "Interrupted"
    assert result.json()["exit_code"] == ExitCode.INTERRUPTED
    assert not os.path.exists(tmp_path / "c.evidence")


def test_130_when_a_click_prompt_is_interrupted(tmp_path: Path, user, keys, tree, monkeypatch):
    """Ctrl-C at a click prompt arrives as click's Abort: an interruption, not a bug."""
    def aborted(request):
        raise click.exceptions.Abort

    monkeypatch.setattr("evidencekit.cli.capture_mail.capture", aborted)
    result = invoke(*capture_args(tmp_path, keys, tree))
    assert result.code == ExitCode.INTERRUPTED
    assert result.json()["error"]["kind"] == "Interrupted"
    assert result.json()["exit_code"] == ExitCode.INTERRUPTED
    # A real SIGINT/SIGTERM during capture: tests/e2e/test_interrupted.py.


def test_3_for_real_as_user_nobody(tmp_path: Path):
    """No monkeypatching: a file the capturing user may not read (run as user nobody)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run as user nobody")
    nobody = unprivileged_python()
    base = Path(tempfile.mkdtemp(prefix="ek-nobody-"))
    try:
        base.chmod(0o755)
        evidence = base / "evidence"
        evidence.mkdir(mode=0o755)
        (evidence / "readable.txt").write_text("anyone may read this\n")
        (evidence / "readable.txt").chmod(0o644)
        (evidence / "secret.txt").write_text("root only\n")
        (evidence / "secret.txt").chmod(0o600)
        home = base / "home"
        home.mkdir()
        os.chown(home, 65534, 65534)
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCEKIT_")}
        env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
        recipient = age.X25519Identity.generate().recipient()
        proc = subprocess.run([*nobody, "-m", "evidencekit", "capture", evidence,
                               "-r", str(recipient), "-o", home / "out.evidence", "--json"],
                              capture_output=True, text=True, env=env, cwd=home,
                              stdin=subprocess.DEVNULL, timeout=120)
        assert proc.returncode == ExitCode.CAPTURE_INCOMPLETE, proc.stderr
        document = json.loads(proc.stdout)
        assert document["problems"] == [{"path": "evidence/secret.txt",
                                         "problem": "could not open: Permission denied"}]
        assert document["seal"]["counts"]["files"] == 1
    finally:
        shutil.rmtree(base)


def test_the_command_raises_its_open_file_limit_for_deep_trees():
    import resource

    from evidencekit.cli.app import allow_more_open_files

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip("the hard limit leaves nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        allow_more_open_files()
        raised, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert raised == (65536 if hard == resource.RLIM_INFINITY else min(hard, 65536))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_refused_open_file_limit_is_tried_lower(monkeypatch):
    """macOS reports no hard limit but refuses more than its per-process maximum."""
    import resource

    from evidencekit.cli import app

    asked: list[int] = []

    def refuse_above_10240(which, limits):
        asked.append(limits[0])
        if limits[0] > 10240:
            raise ValueError("not allowed to raise maximum limit")

    monkeypatch.setattr(resource, "getrlimit", lambda which: (256, resource.RLIM_INFINITY))
    monkeypatch.setattr(resource, "setrlimit", refuse_above_10240)
    app.allow_more_open_files()
    assert asked == [65536, 10240]


def test_an_interrupt_after_the_output_was_made_says_it_is_whole_and_what_was_not_added(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C at the guided session's timestamp offer, or while extract --record waits for
    another writer, comes after the output was made: it is kept, and the hint names what the
    rest of the command would have added (not only --record's custody event)."""
    from evidencekit.cli import app
    from evidencekit.fs import commit

    monkeypatch.setattr(commit, "_made", [tmp_path / "case.evidence"])
    said = app._interrupted()
    assert str(said).startswith(f"interrupted after {tmp_path / 'case.evidence'} was written "
                                "(it is complete)")
    assert "evidencekit timestamp" in said.hint and "custody add" in said.hint
    assert said.exit_code == 130
