"""Defaults from a configuration file and ``EVIDENCEKIT_*`` environment variables.

Precedence, highest first: command-line flags > environment variables > configuration file >
built-in defaults. The file is YAML (``$XDG_CONFIG_HOME/evidencekit/config.yaml``, or the file
named by ``--config`` / ``EVIDENCEKIT_CONFIG``); an unknown key or a value of the wrong kind is an
error naming the file and line. Passphrases are never read from the configuration file: give
``--passphrase-file`` / ``--sign-key-passphrase-file`` or the ``EVIDENCEKIT_PASSPHRASE`` /
``EVIDENCEKIT_KEY_PASSPHRASE`` variables.

The result is a click ``default_map``: each setting fills the options of that name on every
command that has them (``recipients`` only on ``capture``: resealing for a new holder never picks
up a default recipient).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evidencekit.errors import InputError
from evidencekit.fs.noatime import read_user_file
from evidencekit.yamlfile import Document, YamlFileError, load

CONFIG_ENV = "EVIDENCEKIT_CONFIG"
PROGRESS_MODES = ("auto", "bar", "json", "none")
# Kinds of values that name keys or files, which an error message may quote back.
QUOTED_KINDS = ("path", "paths", "list", "keys")


class ConfigError(YamlFileError):
    """The configuration file (or an EVIDENCEKIT_* variable) is not valid."""


@dataclass(frozen=True)
class Setting:
    key: str  # in the configuration file
    env: str  # environment variable
    kind: str  # "text", "path", "list", "paths", "keys" (key lines or files) or "progress"
    params: tuple[str, ...]  # click parameter names it fills
    commands: tuple[str, ...] = ()  # only these commands (space-separated paths); () = all
    help: str = ""


SETTINGS: tuple[Setting, ...] = (
    Setting("examiner", "EVIDENCEKIT_EXAMINER", "text", ("examiner", "actor"),
            help="your name: the examiner of captures and the actor of custody events"),
    Setting("organisation", "EVIDENCEKIT_ORGANISATION", "text", ("organisation",),
            help="organisation capturing the evidence"),
    Setting("legal_basis", "EVIDENCEKIT_LEGAL_BASIS", "text", ("legal_basis",),
            help="authorisation or legal basis"),
    Setting("sign_key", "EVIDENCEKIT_SIGN_KEY", "path", ("sign_key",),
            help="your signing key (OpenSSH ed25519 private key)"),
    Setting("sign_key_passphrase_file", "EVIDENCEKIT_SIGN_KEY_PASSPHRASE_FILE", "path",
            ("sign_key_passphrase_file",), help="file holding the signing key's passphrase"),
    Setting("recipients", "EVIDENCEKIT_RECIPIENTS", "list", ("recipients",), ("capture",),
            help="public keys new bundles are encrypted to (age1… or ssh-ed25519 …)"),
    Setting("recipient_files", "EVIDENCEKIT_RECIPIENT_FILES", "paths", ("recipient_files",),
            ("capture",), help="files with the public keys new bundles are encrypted to"),
    Setting("trusted_keys", "EVIDENCEKIT_TRUSTED_KEYS", "keys", ("trusted",),
            help="signers you trust (.pub files or 'ssh-ed25519 AAAA…' lines)"),
    Setting("tsa", "EVIDENCEKIT_TSA", "list", ("tsa_urls",), ("capture", "timestamp"),
            help="RFC 3161 time stamping authorities that countersign new bundles (capture "
            "--tsa; the guided session offers them)"),
    Setting("progress", "EVIDENCEKIT_PROGRESS", "progress", ("progress",),
            help="progress display: auto, bar, json or none"),
)
BY_KEY = {s.key: s for s in SETTINGS}


@dataclass
class Config:
    """Resolved defaults: each setting's value and where it came from."""

    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)  # key → "env NAME" / "FILE, line N"
    file: Path | None = None

    def origin_of(self, param: str) -> str | None:
        """Where the key or file value of the click parameter *param* came from, if it was set
        here ("environment variable EVIDENCEKIT_SIGN_KEY", "FILE, line N"); else None."""
        for key, origin in self.origins.items():
            setting = BY_KEY[key]
            if param in setting.params and setting.kind in QUOTED_KINDS:
                return origin
        return None

    def default_map(self, commands: Mapping[str, set[str]]) -> dict[str, Any]:
        """A click default_map for *commands* (command path → its parameter names)."""
        result: dict[str, Any] = {}
        for key, value in self.values.items():
            setting = BY_KEY[key]
            for path, params in commands.items():
                if setting.commands and path not in setting.commands:
                    continue
                for param in setting.params:
                    if param in params:
                        node = result
                        for part in path.split():
                            node = node.setdefault(part, {})
                        node[param] = value
        return result


def default_config_file(config_dir: Path) -> Path:
    return config_dir / "config.yaml"


def _default_exists(path: Path) -> bool:
    """Whether the default config file is there; a folder the user may not enter (``sudo -u``,
    HOME=/root) is an error naming it, never a traceback, and never silently skipped."""
    try:
        return path.is_file()
    except OSError as exc:
        raise InputError(f"cannot look for the configuration file {path}: {exc.strerror}",
                         hint="set XDG_CONFIG_HOME to a folder you can read, or give --config "
                         "FILE") from None


def load_config(explicit: Path | None, config_dir: Path,
                environ: Mapping[str, str] = os.environ) -> Config:
    """Read the configuration file (if any) and overlay the EVIDENCEKIT_* variables."""
    config = Config()
    path = explicit or (Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else None)
    if path is None and _default_exists(default_config_file(config_dir)):
        path = default_config_file(config_dir)
    if path is not None:
        _read_file(path, config, required=True)
    for setting in SETTINGS:
        raw = environ.get(setting.env)
        if raw is None or not raw.strip():
            continue
        config.values[setting.key] = _from_env(setting, raw)
        config.origins[setting.key] = f"environment variable {setting.env}"
    return config


def _read_file(path: Path, config: Config, required: bool) -> None:
    try:
        text = read_user_file(path).decode("utf-8")  # keeping its atime: ~ may be captured
    except FileNotFoundError:
        if required:
            raise InputError(f"configuration file not found: {path}",
                             hint=f"check --config or {CONFIG_ENV}") from None
        return
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the configuration file {path}: {exc}") from None
    doc = load(text, str(path), ConfigError)
    config.file = path
    if doc.data is None:
        return
    if not isinstance(doc.data, dict):
        raise doc.error((), "the configuration is a mapping of settings (key: value)",
                        hint=f"known keys: {', '.join(BY_KEY)}")
    for key, value in doc.data.items():
        setting = BY_KEY.get(key) if isinstance(key, str) else None
        if setting is None:
            raise doc.error((str(key),), f"unknown key {str(key)!r}", where=(),
                            hint=f"known keys: {', '.join(BY_KEY)}" + (
                                "; passphrases never go into the configuration file"
                                if "passphrase" in str(key) and "file" not in str(key) else ""))
        config.values[key] = _from_file(doc, setting, value, path.parent)
        config.origins[key] = f"{path}, line {doc.line((key,))}"


def _from_file(doc: Document, setting: Setting, value: Any, base: Path) -> Any:
    where = (setting.key,)
    if setting.kind in ("list", "paths", "keys"):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) and i.strip()
                                                  for i in items):
            raise doc.error(where, "expected a list of text values (or one text value)")
        return _items(setting, items, base)
    if not isinstance(value, str) or not value.strip():
        raise doc.error(where, "expected text" if setting.kind != "progress" else
                        f"expected one of {', '.join(PROGRESS_MODES)}")
    if setting.kind == "path":
        return str(_path(value, base))
    if setting.kind == "progress" and value not in PROGRESS_MODES:
        raise doc.error(where, f"expected one of {', '.join(PROGRESS_MODES)}, found {value!r}")
    return value


def _from_env(setting: Setting, raw: str) -> Any:
    if setting.kind in ("list", "paths", "keys"):
        return _items(setting, [i for i in re.split(r"[,\n]", raw) if i.strip()], Path.cwd())
    if setting.kind == "path":
        return str(_path(raw.strip(), Path.cwd()))
    if setting.kind == "progress" and raw.strip() not in PROGRESS_MODES:
        raise InputError(f"{setting.env}={raw!r} is not one of {', '.join(PROGRESS_MODES)}")
    return raw.strip()


def _items(setting: Setting, items: list[str], base: Path) -> list[str]:
    items = [i.strip() for i in items]
    if setting.kind == "paths":
        return [str(_path(i, base)) for i in items]
    if setting.kind == "keys":  # an inline key line stays as it is; anything else is a file
        return [i if i.startswith("ssh-") else str(_path(i, base)) for i in items]
    return items


def _path(value: str, base: Path) -> Path:
    """``~`` expanded; a relative path is relative to *base* (the configuration file's folder)."""
    path = Path(os.path.expanduser(value.strip()))
    return path if path.is_absolute() else base / path
