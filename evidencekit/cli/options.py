"""Groups of options that a module declares for another module's command (capture's mailbox,
remote, web and incident options), and options kept in click's context.

A kept option (``Kept.option``) does not reach the command as an argument: its value waits in
click's context under the group's name until the module that declared it asks (``Kept.given``),
so that cmd_capture.py neither lists nor forwards them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import click
from click.core import ParameterSource

from evidencekit.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])


def _refuse_empty(kind: click.ParamType, param: click.Parameter | None,  # type: ignore[type-arg]
                  ctx: click.Context | None) -> NoReturn:
    """click's usage error for an empty value: "Invalid value for '--remote': it is empty …"."""
    if isinstance(param, click.Argument):
        kind.fail('one of them is empty (""): name a file or folder' if param.nargs != 1
                  else 'it is empty (""): give a value', param, ctx)
    kind.fail("it is empty: give a value, or leave the option out", param, ctx)


class Text(click.ParamType):  # type: ignore[type-arg]
    """Text that must say something (a host, a key, a name): "" or blanks refused, naming the
    option. ``--remote ""`` made a local capture, silently, and ``--imap ""`` one without the
    mailbox; an empty variable in a script's command line is the usual cause."""

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            _refuse_empty(self, param, ctx)
        return value


class NamedPath(click.Path):
    """A Path named on the command line, "" refused (click takes it for the current folder:
    ``-o ""`` said ". already exists", ``--sign-key ""`` "cannot read the signing key ."). A
    name of blanks is a name. Checks as click.Path does (*checks*: dir_okay, readable ...)."""

    def __init__(self, **checks: Any) -> None:
        super().__init__(path_type=Path, **checks)

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Path:
        if isinstance(value, str) and value == "":
            _refuse_empty(self, param, ctx)
        return cast(Path, super().convert(value, param, ctx))


class Named(Text):
    """A file's name or a location (``store put``'s DESTINATION: a path, or s3://): only ""
    refused; a name of blanks is a name, as for NamedPath."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if value == "":
            _refuse_empty(self, param, ctx)
        return value


TEXT = Text()
NAMED = Named()

# A file named on the command line (a folder there is a usage error): one type for every such
# option, so that they all say and check the same.
FILE_PATH = NamedPath(dir_okay=False)


def option_group(options: Sequence[Callable[[F], F]]) -> Callable[[F], F]:
    """One decorator for *options*, shown in ``--help`` in the order given."""

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


class Kept:
    """Options kept in click's context under *name* (e.g. ``evidencekit.imap``).

    A group may have a *gate*, the option that the others are for (``--imap``): each option
    declared with :meth:`gated` says so at the start of its help ("With --imap: …"), and
    :meth:`refuse_ungated` refuses it used without the gate, naming *purpose* and what it
    *needs*, so that neither the words nor the list of those options is written twice."""

    def __init__(self, name: str, gate: str = "", purpose: str = "", needs: str = "") -> None:
        self.name = name
        self.gate, self.purpose, self.needs = gate, purpose, needs

    def option(self, *declarations: str, **attributes: Any) -> Callable[[F], F]:
        """``click.option`` whose value is kept, not passed to the command."""
        return click.option(*declarations, callback=self._keep, expose_value=False, **attributes)

    def gated(self, *declarations: str, help: str, **attributes: Any) -> Callable[[F], F]:
        """A kept option that is only for the gate: *help* follows "With GATE: "."""
        return click.option(*declarations, callback=self._keep_gated, expose_value=False,
                            help=f"With {self.gate}: {help}", **attributes)

    def given(self, context: click.Context | None = None) -> dict[str, Any]:
        """The kept values of the running command (of *context*), by parameter name; empty when
        none of them was parsed."""
        context = context or click.get_current_context()
        found: dict[str, Any] = context.meta.get(self.name, {})
        return found

    def refuse_ungated(self) -> None:
        """UsageError for the first gated option (in the order declared) that the running
        command line gave: "--NAME is for PURPOSE: it needs NEEDS" (:func:`refuse_given_without`
        for this group's gated options)."""
        params = click.get_current_context().command.params
        refuse_given_without([param.name or "" for param in params
                              if param.callback == self._keep_gated], self.purpose, self.needs)

    def _keep(self, ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        ctx.meta.setdefault(self.name, {})[param.name] = value
        return value

    def _keep_gated(self, ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        return self._keep(ctx, param, value)


def refuse_given_without(names: Sequence[str], purpose: str, needs: str) -> None:
    """UsageError for the first of the parameters *names* that the command line gave when
    what they are for was not asked: "--NAME is for PURPOSE: it needs NEEDS" (an option that
    would be silently ignored, as Kept.refuse_ungated says for a kept group)."""
    context = click.get_current_context()
    for param in context.command.params:
        if param.name in names and \
                context.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
            raise UsageError(f"{param.opts[0]} is for {purpose}: it needs {needs}")


def refuse_an_option_as_value(option: str, value: str | None, example: str) -> None:
    """UsageError when *value*, the value click gave *option*, is one of the command's own
    options: ``--stdin -R key.pub`` made "-R" the stream's name and key.pub a file to capture,
    and the capture then failed on what went missing (no recipient), far from the cause.
    *example* shows the option used rightly, for the hint."""
    if value is None:
        return
    command = click.get_current_context().command
    if any(value in (*param.opts, *param.secondary_opts) for param in command.params):
        raise UsageError(f"{option} needs its value right after it: {value} is an option, "
                         f"not a value for {option}",
                         hint=f"put {option}'s value right after it, then {value} with its "
                         f"own (e.g. {example})")
