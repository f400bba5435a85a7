"""Profile checking: every problem names the file, the line and what is wrong; the built-in
profiles are valid, by evidencekit's checker and by docs/schemas/profile.schema.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from evidencekit.sources.files.profile_terms import parse_size
from evidencekit.sources.files.profiles import ProfileError, builtin_names, find_profile, list_profiles
from evidencekit.sources.files.profiles.model import read_profile
from tests.support.cli import invoke
from tests.support.schemas import SCHEMAS, assert_valid, schema_validator

GOOD = """\
name: mine
description: what I collect
targets:
  - name: notes
    linux: ['{home}/notes']
"""

# (YAML text, expected line, words the message must hold, JSON Schema can express it)
BAD = [
    ("description: x\ntargets: [\n", 3, ["not valid YAML"], False),
    ("- just\n- a list\n", 1, ["a profile is a mapping"], True),
    ("description: x\ncolour: blue\ntargets: []\n", 2, ["unknown key 'colour'", "allowed here"],
     True),
    ("name: x\ntargets:\n  - name: a\n    linux: ['/a']\n", 1, ["'description' is missing"], True),
    ("description: x\ntargets: {a: 1}\n", 2, ["targets", "non-empty list", "a mapping"], True),
    ("description: x\ntargets:\n  - linux: ['/a']\n", 3, ["targets[0]", "no 'name'"], True),
    ("description: x\ntargets:\n  - name: a\n    description: b\n", 3,
     ["target 'a' has no paths"], True),
    ("description: x\ntargets:\n  - name: a\n    linux:\n      - /ok\n      - '{appdata}/{nope}'\n",
     6, ["targets[0].linux[1]", "unknown variable {nope}", "known: {home}"], False),
    ("description: x\ntargets:\n  - name: a\n    macos: [relative/path]\n", 4,
     ["targets[0].macos[0]", "not an absolute path"], False),
    ("description: x\ntargets:\n  - name: a\n    linux: [/a]\n    plan9: [/b]\n", 5,
     ["targets[0]", "unknown key 'plan9'"], True),
    ("description: x\nlimits:\n  max_file_size: lots\ntargets:\n  - {name: a, linux: [/a]}\n", 3,
     ["limits.max_file_size", "expected a size", "'lots'"], True),
    ("description: x\ninclude: '*.db'\ntargets:\n  - {name: a, linux: [/a]}\n", 2,
     ["include", "expected a list of glob patterns"], True),
    ("description: x\nexclude: ['a\\\\b']\ntargets:\n  - {name: a, linux: [/a]}\n", 2,
     ["exclude[0]", "write patterns with '/'"], True),
    ("description: x\ndescription: y\ntargets:\n  - {name: a, linux: [/a]}\n", 2,
     ["duplicate key", "line 1"], False),
    ("description: x\ntargets:\n  - {name: a, linux: [/a]}\n  - {name: a, linux: [/b]}\n", 4,
     ["already defined"], False),
    ("description: x\ncase:\n  examiner: Jane\n  judge: Dredd\ntargets:\n"
     "  - {name: a, linux: [/a]}\n", 4, ["case", "unknown key 'judge'"], True),
    ("version: 2\ndescription: x\ntargets:\n  - {name: a, linux: [/a]}\n", 1,
     ["unsupported profile version 2"], True),
    ("description: x\ntargets:\n  - name: a\n    linux: ['~bob/x']\n", 4,
     ["'~' is only understood at the start"], False),
    ("name: Bad Name\ndescription: x\ntargets:\n  - {name: a, linux: [/a]}\n", 1,
     ["not a valid profile name"], True),
    ("description: 42\ntargets:\n  - {name: a, linux: [/a]}\n", 1,
     ["description", "expected text", "a number (42)"], True),
    ("description: x\ninclude:\n  - '*.db'\n  - '[z-a]*'\ntargets:\n  - {name: a, linux: [/a]}\n",
     4, ["include[1]", "'[z-a]*' is not a valid pattern: bad character range z-a"], False),
    ("description: x\nexclude: ['Cache', 'a[^]']\ntargets:\n  - {name: a, linux: [/a]}\n", 2,
     ["exclude[1]", "not a valid pattern: unterminated character set"], False),
    ("description: x\nlive: yes please\ntargets:\n  - {name: a, linux: [/a]}\n", 2,
     ["live", "expected true or false"], True),
]


@pytest.mark.parametrize(("text", "line", "words", "_"), BAD)
def test_errors_name_file_line_and_problem(tmp_path: Path, text, line, words, _):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as caught:
        find_profile(str(path))
    error = caught.value
    assert error.file == str(path) and error.line == line, error.message
    assert error.message.startswith(f"{path}, line {line}: ")
    for word in words:
        assert word in error.message, error.message


@pytest.mark.parametrize(("text", "line", "words", "expressible"),
                         [b for b in BAD if b[3]])  # the others: syntax, variables, paths
def test_the_json_schema_agrees(text, line, words, expressible):
    assert not schema_validator("profile").is_valid(yaml.safe_load(text))


def test_a_valid_file_profile_takes_its_name_from_the_file(tmp_path: Path):
    path = tmp_path / "My Triage.yaml"
    path.write_text(GOOD.replace("name: mine\n", ""))
    assert find_profile(str(path)).name == "my-triage"
    assert_valid(yaml.safe_load(GOOD), "profile")


def test_builtin_profiles_are_valid_and_cover_every_system():
    names = builtin_names()
    assert {"browser-history", "mail", "shell-history", "system-logs", "user-files",
            "chat-apps"} <= set(names)
    folder = Path(__file__).resolve().parents[4] / "evidencekit/sources/files/profiles/builtin"
    for name in names:
        profile = find_profile(name)
        assert profile.name == name and profile.origin == "built-in"
        assert profile.operating_systems() == ["linux", "macos", "windows"], name
        assert_valid(yaml.safe_load((folder / f"{name}.yaml").read_text()), "profile")


def test_builtin_profiles_name_the_apps_they_promise():
    text = {n: json.dumps([t.__dict__ for t in find_profile(n).targets]).lower()
            for n in builtin_names()}
    for app in ("chrome", "chromium", "edge", "firefox", "safari"):
        assert app in text["browser-history"]
    for app in ("thunderbird", "apple-mail", "outlook"):
        assert app in text["mail"]
    for app in ("signal", "whatsapp", "telegram", "slack", "discord", "teams"):
        assert app in text["chat-apps"]
    for app in ("bash", "zsh", "powershell"):
        assert app in text["shell-history"]
    for log in ("auth.log", "winevt", "system.log"):
        assert log in text["system-logs"]
    for folder in ("downloads", "desktop", "screenshots"):
        assert folder in text["user-files"]


def test_user_profiles_come_first_and_must_match_their_file_name(tmp_path: Path):
    (tmp_path / "mail.yaml").write_text(GOOD.replace("name: mine", "name: mail"))
    (tmp_path / "other.yaml").write_text(GOOD)
    assert find_profile("mail", [tmp_path]).origin == "user"
    with pytest.raises(ProfileError, match="differs from the file name 'other'"):
        find_profile("other", [tmp_path])
    (tmp_path / "other.yaml").unlink()
    assert [p.origin for p in list_profiles([tmp_path]) if p.name == "mail"] == ["user"]


@pytest.mark.parametrize(("value", "expected"), [
    (1024, 1024), ("500MB", 500_000_000), ("2GiB", 2 << 30), ("1.5 KiB", 1536), ("7", 7),
    ("lots", None), (-1, None), (True, None), ([], None)])
def test_sizes(value, expected):
    assert parse_size(value) == expected


def test_cli_reports_a_bad_profile_with_exit_code_2(tmp_path: Path, user):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD[7][0])
    result = invoke("capture", "--profile", path, "-r", "age1x", "--json")
    assert result.code == 2
    error = result.json()["error"]
    assert error["kind"] == "ProfileError"
    assert error["message"].startswith(f"{path}, line 6: ")
    shown = invoke("profiles", "show", path)
    assert shown.code == 2 and "line 6" in shown.stderr and "{nope}" in shown.stderr


def test_a_bad_glob_stops_capture_before_it_starts_not_in_the_middle(tmp_path: Path, user, keys):
    """It used to pass 'profiles show' and crash the capture with exit 5 ("bad character
    range"); it is an error in the file, with its line, exit code 2, and nothing written."""
    (user / "app").mkdir()
    (user / "app" / "data.db").write_bytes(b"x")
    path = tmp_path / "bad-glob.yaml"
    path.write_text("description: x\nexclude: ['[z-a]']\ntargets:\n"
                    "  - {name: a, linux: ['{home}/app']}\n")
    out = tmp_path / "b.evidence"
    result = invoke("capture", "--profile", path, "-R", keys["recipient"], "--sign-key",
                    keys["signer"], "-o", out, "--json")
    assert result.code == 2, result.stderr
    error = result.json()["error"]
    assert error["kind"] == "ProfileError"
    assert error["message"] == (f"{path}, line 2: exclude[0]: '[z-a]' is not a valid pattern: "
                                "bad character range z-a")
    assert not out.exists()
    shown = invoke("profiles", "show", path)
    assert shown.code == 2 and "line 2" in shown.stderr


def test_read_profile_directly():
    assert read_profile(GOOD, "x.yaml", "file").targets[0].paths == {"linux": ("{home}/notes",)}
    assert str(SCHEMAS).endswith("schemas")
