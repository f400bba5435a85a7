"""Groups of options that a module declares for another module's command (capture's mailbox,
remote, web and incident options), and options kept in click's context.

A kept option (``Kept.option``) does not reach the command as an argument: its value waits in
click's context under the group's name until the module that declared it asks (``Kept.given``),
so that cmd_capture.py neither lists nor forwards them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

# A file named on the command line (a folder there is a usage error): one type for every such
# option, so that they all say and check the same.
FILE_PATH = click.Path(path_type=Path, dir_okay=False)


def option_group(options: Sequence[Callable[[F], F]]) -> Callable[[F], F]:
    """One decorator for *options*, shown in ``--help`` in the order given."""

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


class Kept:
    """Options kept in click's context under *name* (e.g. ``evidencekit.imap``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def option(self, *declarations: str, **attributes: Any) -> Callable[[F], F]:
        """``click.option`` whose value is kept, not passed to the command."""
        return click.option(*declarations, callback=self._keep, expose_value=False, **attributes)

    def given(self, context: click.Context | None = None) -> dict[str, Any]:
        """The kept values of the running command (of *context*), by parameter name; empty when
        none of them was parsed."""
        context = context or click.get_current_context()
        found: dict[str, Any] = context.meta.get(self.name, {})
        return found

    def _keep(self, ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        ctx.meta.setdefault(self.name, {})[param.name] = value
        return value
