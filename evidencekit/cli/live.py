"""``capture --live``, ``--memory-tool``, ``--memory-timeout``: the options and the checks made
before anything is collected (evidencekit.sources.live collects).

evidencekit.sources.live (and psutil with it) is imported only when --live is used: every
capture declares these options (start-up cost, tests/cli/test_startup.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from evidencekit.cli import render
from evidencekit.cli.options import FILE_PATH, refuse_given_without
from evidencekit.errors import UsageError

if TYPE_CHECKING:
    from evidencekit.sources.live import LiveSource

F = TypeVar("F", bound=Callable[..., Any])
# sources.live.memory.DEFAULT_IDLE_TIMEOUT, which the tests check this is (importing it here
# would import the live source, psutil included, into every capture)
MEMORY_IDLE_TIMEOUT = 120.0


def live_options(command: F) -> F:
    command = click.option(
        "--memory-timeout", type=click.FloatRange(min=1), default=MEMORY_IDLE_TIMEOUT,
        show_default=True, metavar="SECONDS",
        help="Stop the memory tool when it writes nothing for this long (recorded).")(command)
    command = click.option(
        "--memory-tool", type=FILE_PATH,
        help="With --live: acquire RAM with this tool (AVML, or a wrapper around LiME, WinPmem "
        "…), run as 'PATH OUTPUT' (after 'PATH --version', recorded: a wrapper must answer "
        "it and acquire nothing); what it writes to OUTPUT (a pipe) goes straight into the "
        "encrypted bundle.")(command)
    return click.option(
        "--live", is_flag=True,
        help="Also collect the running system's state, most volatile first: clock, network "
        "connections, processes, sessions, kernel modules, mounts (see 'Live response' in the "
        "README).")(command)


def live_sources(live: bool, memory_tool: Path | None, memory_timeout: float
                 ) -> tuple[LiveSource, ...]:
    """The live source asked for, checked (UsageError) before anything is read."""
    if memory_tool is None:
        refuse_given_without(("memory_timeout",), "a memory tool", "--memory-tool FILE")
    if memory_tool is not None and not live:
        raise UsageError("--memory-tool acquires RAM as part of --live",
                         hint="add --live (or use a profile with 'live: true')")
    if not live:
        return ()
    if memory_tool is not None:
        if not hasattr(os, "mkfifo"):  # the image is passed through a named pipe (memory.py)
            raise UsageError("--memory-tool needs a named pipe, which this system (Windows) "
                             "does not offer to evidencekit",
                             hint="run the acquisition tool (e.g. WinPmem) on its own, then "
                             "capture its image file, or use --live without --memory-tool")
        if not memory_tool.is_file() or not os.access(memory_tool, os.X_OK):
            raise UsageError(f"--memory-tool {memory_tool}: not an executable file",
                             hint="give the path of the acquisition tool (e.g. /usr/local/bin/avml)")
        memory_tool = memory_tool.absolute()
    from evidencekit.sources.live import LiveSource

    return (LiveSource(memory_tool, memory_idle_timeout=memory_timeout),)


def say_done(sources: tuple[LiveSource, ...]) -> None:
    """On stderr, when the system refused part of the live state (not run as administrator or
    root): how much, so that a capture that looks complete is not taken as the whole picture.
    *sources*: what live_sources made."""
    if not sources:
        return
    from evidencekit.sources.live.common import is_root

    for source in sources:
        processes, connections = source.withheld.get("processes", 0), \
            source.withheld.get("connections", 0)
        if processes or connections:
            render.err.print(
                f"[yellow]Live state: permission denied[/] for details of {processes} of "
                f"{source.counts.get('processes', 0)} processes and the owners of {connections} "
                "connections (recorded in the bundle, with each reason)" +
                ("." if is_root() else "; run as administrator/root to collect them."))
