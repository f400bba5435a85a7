"""Entry point: the command group, and which module defines each command (imported only when that
command is used, so that every command does not pay for every other one's imports)."""

from __future__ import annotations

import sys

try:
    from evidencekit.cli.app import cli, main
except KeyboardInterrupt:  # Ctrl-C while Python loads evidencekit: no command ran yet
    sys.stderr.write("evidencekit: interrupted; nothing was done\n")
    sys.exit(130)  # ExitCode.INTERRUPTED (errors is not loaded yet); not a traceback

cli.add_lazy({
    "capture": "evidencekit.cli.cmd_capture",
    # hidden: the remote side of capture --remote (evidencekit.remote.protocol.SERVE_COMMAND)
    "serve-capture": "evidencekit.cli.capture_remote",
    "custody": "evidencekit.cli.cmd_custody",
    "reseal": "evidencekit.cli.cmd_custody",
    "receipt": "evidencekit.cli.cmd_custody",
    "export": "evidencekit.cli.cmd_export",
    "key": "evidencekit.cli.cmd_key",
    "inspect": "evidencekit.cli.cmd_open",
    "verify": "evidencekit.cli.cmd_open",
    "extract": "evidencekit.cli.cmd_open",
    "profiles": "evidencekit.cli.cmd_profiles",
    "report": "evidencekit.cli.cmd_report",
    "note": "evidencekit.cli.cmd_report",
    "store": "evidencekit.cli.cmd_store",
    "timestamp": "evidencekit.cli.cmd_timestamp",
})

__all__ = ["cli", "main"]
