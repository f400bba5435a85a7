"""Running the command line in tests: :func:`invoke` in this process (fast, for most tests) and
:func:`run_cli`, the real ``python -m evidencekit`` without a terminal, as a script runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner

from evidencekit.cli.main import cli


def commands_of(group: click.Group = cli) -> dict[str, click.Command]:
    """Every command of *group*, by name, its module imported (the group imports a command's
    module only when it is asked for: evidencekit.cli.app.LazyGroup)."""
    context = click.Context(group)
    found = {name: group.get_command(context, name) for name in group.list_commands(context)}
    return {name: command for name, command in found.items() if command is not None}


@dataclass
class Result:
    """What a run of the command left: exit code, standard output and error."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout)


Run = Result  # the name end-to-end tests knew it by


def invoke(*args: object, env: dict[str, str] | None = None) -> Result:
    """Run the CLI in this process (no terminal, empty stdin)."""
    runner = CliRunner()
    outcome = runner.invoke(cli, [str(a) for a in args], env=env, input="",
                            catch_exceptions=False)
    return Result(outcome.exit_code, outcome.stdout, outcome.stderr)


def run_cli(*args: object, env: dict[str, str] | None = None, stdin: str | None = None,
            cwd: Path | None = None) -> Result:
    """Run the real command (python -m evidencekit) without a terminal, as a script would."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "evidencekit", *map(str, args)],
                          capture_output=True, text=True, env=full_env, cwd=cwd,
                          input=stdin if stdin is not None else "", timeout=300)
    return Result(proc.returncode, proc.stdout, proc.stderr)
