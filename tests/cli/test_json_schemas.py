"""Every command's --json document validates against its JSON Schema in docs/schemas/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from evidencekit.cli.main import cli, main
from tests.support.cli import commands_of, invoke
from tests.support.schemas import SCHEMAS, assert_valid, assert_valid_definition, schema_validator
from tests.support.tsa_server import down_url


def command_paths(group: click.Group = cli, prefix: str = "") -> list[str]:
    paths: list[str] = []
    for name, command in sorted(commands_of(group).items()):
        if command.hidden:  # serve-capture: the remote end of capture --remote, no --json
            continue
        if isinstance(command, click.Group):
            paths += command_paths(command, f"{prefix}{name} ")
        else:
            paths.append(f"{prefix}{name}")
    return paths


def test_every_schema_is_a_valid_json_schema():
    from jsonschema import Draft202012Validator

    for path in SCHEMAS.glob("*.schema.json"):
        document = json.loads(path.read_text("utf-8"))
        Draft202012Validator.check_schema(document)
        assert document["$id"].endswith("/" + path.name)
        schema_validator(path.name.removesuffix(".schema.json"))  # references resolve


def test_every_command_has_a_schema():
    missing = [p for p in command_paths() if not (SCHEMAS / f"{p.replace(' ', '-')}.schema.json")
               .is_file()]
    assert not missing, f"commands without docs/schemas/<command>.schema.json: {missing}"


def test_real_outputs_of_every_command_validate(tmp_path: Path, user, keys, tree, bundle):
    seen: set[str] = set()

    def check(name: str, *args: object, code: int = 0) -> dict:
        result = invoke(*args, "--json")
        assert result.code == code, (args, result.stdout, result.stderr)
        document = result.json()
        assert document["schema_version"] == 1 and document["exit_code"] == code
        assert document["command"] == name
        assert_valid(document, name.replace(" ", "-"))
        seen.add(name)
        return document

    check("key generate", "key", "generate", "-o", tmp_path / "new_key")
    (user / "Downloads").mkdir()
    (user / "Downloads" / "invoice.pdf").write_bytes(b"%PDF-1.4 fake\n")
    captured = check("capture", "capture", "--profile", "user-files", "-R", keys["recipient"],
                     "--sign-key", keys["signer"], "-o", tmp_path / "profile.evidence")
    assert captured["profile"]["name"] == "user-files"
    assert captured["profile"]["sources"] == [str(user / "Downloads")]
    check("inspect", "inspect", bundle)
    check("verify", "verify", bundle, "-i", keys["identity"])
    check("verify", "verify", bundle, "--trusted-key", keys["stranger_pub"], code=1)
    (tmp_path / "disk.img").write_bytes(bytes(range(256)) * 4096)
    check("capture", "capture", "--device", tmp_path / "disk.img", "-R", keys["recipient"],
          "--sign-key", keys["signer"], "-o", tmp_path / "device.evidence")
    compared = check("verify", "verify", tmp_path / "device.evidence", "-i", keys["identity"],
                     "--against", tmp_path / "disk.img")
    assert compared["against"]["same"] is True
    check("extract", "extract", bundle, "-i", keys["identity"], "-o", tmp_path / "opened")
    check("custody add", "custody", "add", bundle, "--action", "transferred", "--to", "Det. X",
          "--sign-key", keys["signer"])
    check("custody show", "custody", "show", bundle)
    check("reseal", "reseal", bundle, "-i", keys["identity"], "-r", keys["recipient_line"],
          "--sign-key", keys["signer"], "-o", tmp_path / "resealed.evidence")
    check("receipt", "receipt", bundle)
    missed = check("timestamp", "timestamp", bundle, "--tsa", down_url(), code=7)
    assert missed["added"] == [] and missed["later"].startswith("evidencekit timestamp ")
    check("note", "note", bundle, "--text", "the bank called", "--yes", "--sign-key",
          keys["signer"])
    check("report", "report", bundle, "-i", keys["identity"], "-o", tmp_path / "report.html")
    check("export", "export", bundle, "-i", keys["identity"], "--format", "hashdeep", "-o",
          tmp_path / "known.txt", "--record", "--sign-key", keys["signer"])
    check("store put", "store", "put", bundle, tmp_path / "copy.evidence", "--sign-key",
          keys["signer"])
    check("store list", "store", "list", "s3://Not_A_Bucket/", code=2)  # tests/cli/test_store.py
    check("store get", "store", "get", "s3://bucket/", "-o", tmp_path / "got", code=2)
    check("profiles list", "profiles", "list")
    shown = check("profiles show", "profiles", "show", "browser-history")
    assert shown["profile"]["targets"][0]["paths"]["windows"]
    assert seen == set(command_paths()), "a command is missing from this test"


@pytest.mark.parametrize("args", [
    ("capture", "does-not-exist", "-r", "age1xyz"),
    ("verify", "no-such.evidence"),
    ("profiles", "show", "no-such-profile"),
    ("key", "generate", "-o", "{tmp}/k", "--passphrase-file", "{tmp}/missing"),
])
def test_errors_validate_against_the_command_schema(args, tmp_path: Path, user):
    args = tuple(str(a).replace("{tmp}", str(tmp_path)) for a in args)
    result = invoke(*args, "--json")
    assert result.code == 2
    document = result.json()
    assert document["ok"] is False and document["error"]["message"]
    assert_valid(document, document["command"].replace(" ", "-"))


@pytest.mark.parametrize(("args", "command", "words"), [
    (("capture", "--no-such-option"), "capture", "No such option '--no-such-option'"),
    (("verify",), "verify", "Missing argument 'BUNDLE'"),
    (("capture", "x", "--progress", "sideways"), "capture", "'sideways' is not one of"),
    (("profiles", "show"), "profiles show", "Missing argument 'NAME'"),
    (("custody", "frobnicate"), "custody", "No such command 'frobnicate'"),
    (("--no-such-option", "verify"), "", "No such option '--no-such-option'"),
])
def test_usage_errors_print_one_error_document_with_json(args, command, words, user, capsys):
    """click's own errors (before any command runs) keep the --json promise too."""
    with pytest.raises(SystemExit) as exited:
        main([*args, "--json"])
    out, err = capsys.readouterr()
    assert exited.value.code == 2
    document = json.loads(out)
    assert document["exit_code"] == 2 and document["command"] == command
    assert document["error"]["kind"] == "UsageError" and words in document["error"]["message"]
    assert_valid_definition(document, "error_document")
    if (SCHEMAS / f"{command.replace(' ', '-')}.schema.json").is_file():
        assert_valid(document, command.replace(" ", "-"))
    assert "Usage: evidencekit" in err and words in err  # people still get click's message


def test_usage_errors_without_json_print_nothing_on_stdout(user, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["verify", "--no-such-option"])
    out, err = capsys.readouterr()
    assert exited.value.code == 2 and out == "" and "No such option" in err


def test_progress_json_lines_validate(tmp_path: Path, user, keys, tree, bundle):
    result = invoke("verify", bundle, "-i", keys["identity"], "--progress", "json", "--json")
    assert result.code == 0
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert lines[0]["event"] == "start" and lines[-1]["event"] == "finish"
    for line in lines:
        assert_valid(line, "progress")
    result = invoke("capture", tree, "-R", keys["recipient"], "--sign-key", keys["signer"],
                    "-o", tmp_path / "p.evidence", "--progress", "json")
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events][0::len(events) - 1] == ["start", "finish"]
    assert events[0]["total_files"] == 2 and events[-1]["files"] == 2
    for event in events:
        assert_valid(event, "progress")


@pytest.mark.parametrize("encoding", ["latin-1", "ascii"])
def test_json_is_utf8_whatever_the_locale_encoding(tmp_path: Path, encoding: str):
    """A playbook run under LANG=C (or PYTHONIOENCODING=latin-1) still gets its document, in
    UTF-8, not an encoding error: run as a real process, where stdout has the locale's codec."""
    (tmp_path / "p.yaml").write_text(
        "description: Beweis \u2014 \u8a3c\u62e0\ntargets:\n  - name: t\n    linux: ['/nowhere']\n",
        encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "evidencekit", "profiles", "show",
                           str(tmp_path / "p.yaml"), "--json"], capture_output=True, timeout=120,
                          stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONIOENCODING": encoding, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    document = json.loads(done.stdout.decode("utf-8"))
    assert document["profile"]["description"] == "Beweis \u2014 \u8a3c\u62e0"
