"""Entry point: the command group with every command module registered."""

from __future__ import annotations

from evidencekit.cli import (
           cmd_capture,
           cmd_custody,
           cmd_export,
           cmd_key,
           cmd_open,
           cmd_profiles,
           cmd_report,
           cmd_store,
           cmd_timestamp,
)
from evidencekit.cli.app import cli, main

__all__ = ["cli", "cmd_capture", "cmd_custody", "cmd_export", "cmd_key", "cmd_open", "cmd_profiles",
           "cmd_report", "cmd_store", "cmd_timestamp", "main"]
