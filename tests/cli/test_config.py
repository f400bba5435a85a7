"""Configuration file and EVIDENCEKIT_* variables: precedence flags > env > config > built-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from evidencekit.config import ConfigError, load_config
from tests.support.cli import invoke


def write_config(user_config: Path, text: str) -> Path:
    path = user_config / "evidencekit" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def config_dir(tmp_path: Path, user: Path) -> Path:
    return tmp_path / "config"


def test_file_values_paths_and_lines(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("examiner: Jane\nsign_key: keys/id\nrecipients: age1abc\n"
                    "trusted_keys: [a.pub, 'ssh-ed25519 AAAA x']\nprogress: json\n")
    config = load_config(path, tmp_path / "unused", environ={})
    assert config.values == {"examiner": "Jane", "sign_key": str(tmp_path / "keys" / "id"),
                             "recipients": ["age1abc"],
                             "trusted_keys": [str(tmp_path / "a.pub"), "ssh-ed25519 AAAA x"],
                             "progress": "json"}
    assert config.origins["sign_key"] == f"{path}, line 2"


def test_environment_overrides_the_file(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("examiner: File\norganisation: File Org\n")
    config = load_config(path, tmp_path, environ={
        "EVIDENCEKIT_EXAMINER": "Env", "EVIDENCEKIT_RECIPIENTS": "age1a, age1b\nage1c",
        "EVIDENCEKIT_ORGANISATION": "  "})  # empty: unset
    assert config.values["examiner"] == "Env"
    assert config.values["organisation"] == "File Org"
    assert config.values["recipients"] == ["age1a", "age1b", "age1c"]
    assert config.origins["examiner"] == "environment variable EVIDENCEKIT_EXAMINER"


def test_default_file_and_explicit_variable(tmp_path: Path):
    assert load_config(None, tmp_path, environ={}).file is None
    (tmp_path / "config.yaml").write_text("examiner: Default\n")
    assert load_config(None, tmp_path, environ={}).values == {"examiner": "Default"}
    other = tmp_path / "other.yaml"
    other.write_text("examiner: Other\n")
    config = load_config(None, tmp_path, environ={"EVIDENCEKIT_CONFIG": str(other)})
    assert config.values == {"examiner": "Other"} and config.file == other


@pytest.mark.parametrize(("text", "line", "words"), [
    ("examiner: Jane\npassphrase: hunter2\n", 2,
     ["unknown key 'passphrase'", ]),
    ("examiner: [a, b]\n", 1, ["examiner", "expected text"]),
    ("progress: loud\n", 1, ["progress", "auto, bar, json, none", "'loud'"]),
    ("recipients: {a: 1}\n", 1, ["recipients", "expected a list"]),
    ("- a\n", 1, ["a mapping of settings"]),
    ("examiner: a\nexaminer: b\n", 2, ["duplicate key"]),
    ("examiner: 'open\n", 1, ["not valid YAML"]),
])
def test_errors_name_file_and_line(tmp_path: Path, text, line, words):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, tmp_path, environ={})
    assert caught.value.message.startswith(f"{path}, line {line}: "), caught.value.message
    for word in words:
        assert word in caught.value.message
    if "passphrase" in text:
        assert "never go into the configuration file" in (caught.value.hint or "")


def test_unknown_key_through_the_cli_is_exit_2_with_json(tmp_path: Path, config_dir: Path,
                                                         tree: Path):
    path = write_config(config_dir, "examiner: Jane\ncolour: blue\n")
    result = invoke("capture", tree, "--json")
    assert result.code == 2
    assert result.json()["error"]["kind"] == "ConfigError"
    assert result.json()["error"]["message"] == f"{path}, line 2: unknown key 'colour'"
    missing = invoke("--config", tmp_path / "nope.yaml", "profiles", "list")
    assert missing.code == 2 and "configuration file not found" in missing.stderr


def examiner_of(result) -> str:
    assert result.code == 0, result.stderr
    return result.json()["case"]["examiner"]


def test_precedence_flags_env_config_builtin(tmp_path: Path, config_dir: Path, keys, tree,
                                             monkeypatch):
    def capture(name: str, *extra: object):
        return invoke("capture", tree, "--sign-key", keys["signer"], "-o",
                      tmp_path / f"{name}.evidence", "--json", *extra)

    monkeypatch.setenv("EVIDENCEKIT_RECIPIENTS", keys["recipient_line"])  # env: no -r needed
    builtin = capture("builtin")
    assert examiner_of(builtin) == "examiner@test"  # the signing key's own name (its comment)
    write_config(config_dir, f"examiner: From Config\norganisation: Config Org\n"
                             f"sign_key: {keys['signer']}\n")
    assert examiner_of(capture("config")) == "From Config"
    monkeypatch.setenv("EVIDENCEKIT_EXAMINER", "From Env")
    document = capture("env").json()
    assert document["case"]["examiner"] == "From Env"
    assert document["case"]["organisation"] == "Config Org"
    assert examiner_of(capture("flag", "--examiner", "From Flag")) == "From Flag"
    # --config FILE replaces the default file; env still wins over it.
    other = tmp_path / "other.yaml"
    other.write_text("examiner: Other File\nlegal_basis: Warrant 7\n")
    document = invoke("--config", other, "capture", tree, "--sign-key", keys["signer"], "-o",
                      tmp_path / "other.evidence", "--json").json()
    assert (document["case"]["examiner"], document["case"]["legal_basis"]) == (
        "From Env", "Warrant 7")


def test_config_fills_sign_key_trusted_keys_and_actor(tmp_path: Path, config_dir: Path, keys,
                                                      bundle: Path):
    write_config(config_dir, f"examiner: Det. Config\nsign_key: {keys['signer']}\n"
                             f"trusted_keys: [{keys['stranger_pub']}]\n")
    verified = invoke("verify", bundle, "--json")
    assert verified.code == 1 and verified.json()["signer"]["trusted"] is False
    assert invoke("verify", bundle, "--json", "--trusted-key", keys["signer_pub"]).code == 0
    added = invoke("custody", "add", bundle, "--action", "received", "--from", "Bob", "--json")
    assert added.code == 0, added.stderr
    assert added.json()["event"]["actor"] == "Det. Config"
    assert added.json()["event"]["fingerprint"] == verified.json()["seal"]["signer"]["fingerprint"]


def test_encryption_flags_replace_configured_recipients(tmp_path: Path, config_dir: Path, keys,
                                                        tree, monkeypatch):
    write_config(config_dir, f"recipients: [{keys['recipient_line']}]\n"
                             f"sign_key: {keys['signer']}\n")
    monkeypatch.setenv("EVIDENCEKIT_PASSPHRASE", "")
    # -p with a configured recipient: the flag wins (no "not both" error), and without a
    # terminal the passphrase is asked for by name, not prompted.
    result = invoke("capture", tree, "-p", "--json", "-o", tmp_path / "p.evidence")
    assert result.code == 2 and result.json()["error"]["kind"] == "PassphraseRequired"
    result = invoke("capture", tree, "--json", "-o", tmp_path / "k.evidence")
    assert result.code == 0, result.stderr
    assert invoke("inspect", tmp_path / "k.evidence", "--json").json()["recipients"] == ["X25519"]


def test_progress_default_from_the_environment(tmp_path: Path, user, keys, bundle, monkeypatch):
    monkeypatch.setenv("EVIDENCEKIT_PROGRESS", "json")
    result = invoke("verify", bundle)
    assert result.code == 0 and '"event": "start"' in result.stderr
    assert '"event"' not in invoke("verify", bundle, "--progress", "none").stderr
    monkeypatch.setenv("EVIDENCEKIT_PROGRESS", "sideways")
    bad = invoke("verify", bundle, "--json")
    assert bad.code == 2 and "EVIDENCEKIT_PROGRESS" in bad.json()["error"]["message"]


def test_errors_from_configured_values_name_their_source(tmp_path: Path, config_dir: Path, keys,
                                                         tree, bundle: Path, monkeypatch):
    """A value the user never typed: the error says where it came from, not which flag."""
    monkeypatch.setenv("EVIDENCEKIT_TRUSTED_KEYS", "/nonexistent.pub")
    from_env = invoke("verify", bundle, "--json")
    assert from_env.code == 2
    assert from_env.json()["error"]["message"] == (
        "environment variable EVIDENCEKIT_TRUSTED_KEYS: '/nonexistent.pub' is neither a file "
        "nor an ssh-ed25519 key")
    assert "--trusted-key" in from_env.json()["error"]["hint"]  # how to override it
    typed = invoke("verify", bundle, "--trusted-key", "/typed.pub", "--json")
    assert typed.json()["error"]["message"].startswith("--trusted-key '/typed.pub' is neither")
    monkeypatch.delenv("EVIDENCEKIT_TRUSTED_KEYS")

    config = write_config(config_dir, "examiner: Jane\nsign_key: /nonexistent/id_ed25519\n")
    from_file = invoke("capture", tree, "-R", keys["recipient"], "-o", tmp_path / "c.evidence",
                       "--json")
    assert from_file.code == 2
    assert from_file.json()["error"]["message"] == (
        f"{config}, line 2: signing key not found: /nonexistent/id_ed25519")
    monkeypatch.setenv("EVIDENCEKIT_SIGN_KEY", "/nonexistent/env_key")
    from_env = invoke("capture", tree, "-R", keys["recipient"], "-o", tmp_path / "c.evidence")
    assert from_env.code == 2
    assert "environment variable EVIDENCEKIT_SIGN_KEY: signing key not found: " \
           "/nonexistent/env_key" in from_env.stderr
    assert not (tmp_path / "c.evidence").exists()
