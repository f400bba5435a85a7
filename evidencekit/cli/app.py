"""The command group, shared options, and the one place errors become messages and exit codes."""

from __future__ import annotations

import atexit
import contextlib
import copy
import functools
import importlib
import os
import shlex
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn, TypeVar, cast

import click
from click.core import ParameterSource

from evidencekit import __version__
from evidencekit.cli import render
from evidencekit.cli.keyring import (
    config_dir,
    default_signing_key_path,
    generate_key_files,
    load_signing,
    recipients_from,
    refuse_new_key_inside,
)
from evidencekit.cli.options import FILE_PATH, TEXT, NamedPath
from evidencekit.cli.secrets import KEY_PASSPHRASE_ENV, PASSPHRASE_ENV, obtain
from evidencekit.config import CONFIG_ENV, PROGRESS_MODES, Config, load_config
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.errors import (
    EvidenceKitError,
    ExitCode,
    Interrupted,
    KeyFileError,
    OutputError,
    UsageError,
)
from evidencekit.hostinfo import user_name
from evidencekit.publictext import check_line

if TYPE_CHECKING:  # the walk is imported by capture, not by every command
    from evidencekit.fs.leftovers import Leftover
    from evidencekit.sources.files.walk import Source

F = TypeVar("F", bound=Callable[..., Any])
CONFIG_HINT = "$XDG_CONFIG_HOME/evidencekit/config.yaml"

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON document on stdout (and nothing else there).")

# BUNDLE, a bundle file on this machine (verify and inspect take an s3:// address too: BUNDLE_OR_STORE)
bundle_argument = click.argument("bundle", type=FILE_PATH)


def output_option(help: str, *, folder: bool = False, required: bool = True
                  ) -> Callable[[F], F]:
    """-o/--output: what the command writes, a file (or, with *folder*, a folder); *help* says
    which and whether it may exist."""
    kind = (NamedPath(file_okay=False) if folder
            else FILE_PATH)
    return click.option("-o", "--output", type=kind, required=required, help=help)


def identity_option(f: F) -> F:
    f = click.option("-p", "--passphrase", "ask_passphrase", is_flag=True,
                     help="The bundle is protected by a passphrase: ask for it.")(f)
    f = click.option("--passphrase-file", type=FILE_PATH,
                     help=f"Read the bundle's passphrase from this file (or set {PASSPHRASE_ENV})."
                     )(f)
    return click.option("-i", "--identity", "identities", multiple=True,
                        type=FILE_PATH,
                        help="Decryption key: an age identity file or an OpenSSH private key. "
                        "Repeatable.")(f)


def trusted_option(f: F) -> F:
    return click.option("--trusted-key", "trusted", multiple=True, type=TEXT, metavar="KEY",
                        help="A signer you trust: a .pub file or 'ssh-ed25519 AAAA…'. "
                        "Repeatable.")(f)


def signing_options(f: F) -> F:
    f = click.option("--sign-key-passphrase-file", type=FILE_PATH,
                     help=f"Passphrase of the signing key (or set {KEY_PASSPHRASE_ENV}).")(f)
    return click.option("--sign-key", type=FILE_PATH,
                        help="Your signing key (default: your personal key; only capture "
                        "creates it, on first use).")(f)


def actor_option(f: F) -> F:
    return click.option("--actor", type=TEXT, help="Your name as it should appear in the custody log "
                        "(default: your signing key's name, its comment).")(f)


@dataclass(frozen=True)
class Signer:
    """Who signs a custody event, as ``signer_options`` gathers it: --actor, --sign-key and its
    passphrase file."""

    actor: str | None
    sign_key: Path | None
    sign_key_passphrase_file: Path | None

    def key(self, quiet: bool) -> SigningKey:
        """The signing key, its passphrase asked for now (call it before the work, so that a
        key that cannot be used stops the command before anything is done)."""
        return resolve_signing_key(self.sign_key, self.sign_key_passphrase_file, quiet)

    def name(self, key: SigningKey) -> str:
        """The signer's name in the custody log (:func:`actor_name`)."""
        return actor_name(self.actor, key)

    def resolve(self, quiet: bool) -> tuple[SigningKey, str]:
        key = self.key(quiet)
        return key, self.name(key)


def signer_options(f: F) -> F:
    """--actor, --sign-key and --sign-key-passphrase-file, reaching the command as one
    :class:`Signer` named ``signer``."""
    return actor_option(signing_options(gather_signer(f)))


def gather_signer(f: F) -> F:
    """Written below a command's --actor and signing options: they reach it as ``signer``."""
    parameters = {name: name for name in ("actor", "sign_key", "sign_key_passphrase_file")}
    return gathered("signer", Signer, parameters)(f)


def actor_name(actor: str | None, key: SigningKey, option: str = "--actor") -> str:
    """Who signs, as the custody log names them: --actor (or the configured examiner), else the
    signing key's own name (its comment: ``evidencekit key generate --comment``), else the user
    name. Checked like every public text (evidencekit.publictext). *option* is the command's
    own option for the name (capture: --examiner), which the hint names."""
    if actor is not None:
        return check_line(actor, option)
    hint = f"give your name with {option}"
    if key.comment.strip():
        return check_line(key.comment.strip(), "the signing key's name (its comment)", hint=hint)
    return check_line(user_name(), "your user name", hint=hint)


def new_recipient_options(f: F) -> F:
    """Who can open a new bundle made from an existing one (reseal, note --private)."""
    f = click.option("--new-passphrase-file", type=FILE_PATH,
                     help="Protect the new bundle with the passphrase in this file instead.")(f)
    f = click.option("-R", "--recipient-file", "recipient_files", multiple=True,
                     type=FILE_PATH,
                     help="File with the new holder's public keys. Repeatable.")(f)
    return click.option("-r", "--recipient", "recipients", multiple=True, type=TEXT, metavar="KEY",
                        help="New holder's public key (age1… or 'ssh-ed25519 AAAA…'). "
                        "Repeatable.")(f)


def gathered(name: str, make: Callable[..., Any], parameters: Mapping[str, str]
             ) -> Callable[[F], F]:
    """A decorator, written right above the command's ``def``: the options *parameters* names
    (click's name → *make*'s keyword) reach the command as one typed object, ``make(...)``,
    under *name*, so a command takes a request instead of a long list of options."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def gathering(*args: Any, **options: Any) -> Any:
            options[name] = make(**{keyword: options.pop(parameter)
                                    for parameter, keyword in parameters.items()})
            return command(*args, **options)

        return cast(F, gathering)

    return decorate


def progress_option(f: F) -> F:
    return click.option("--progress", "progress", default="auto", show_default=True,
                        type=click.Choice(PROGRESS_MODES),
                        help="auto: a bar on a terminal (never with --json); bar; none; json: "
                        "JSON Lines progress events on stderr (docs/schemas/progress.schema.json)."
                        )(f)


EPILOG = """\b
Start here:
  evidencekit capture           guided session for victims (no arguments,
                                on a terminal): questions, then one bundle
  evidencekit verify B -i KEY   check bundle B and every file in it
  evidencekit COMMAND --help    the options of one command

\b
Exit codes:
  0    success (verify: everything checked is intact)
  1    verification failed: damaged, tampered with, or not signed by a
       trusted key
  2    usage or input error: bad arguments, missing file or passphrase
       without a terminal, output exists
  3    capture wrote a valid bundle, but some items were unreadable or
       changed while being read (recorded in the manifest)
  4    none of the given keys or passphrases opens the bundle
  5    internal error (a bug: please report it)
  6    with --trusted-key: intact, but some entries are signed by keys not
       listed (shown by their key, not counted)
  7    capture --tsa, timestamp: the bundle is whole, but a trusted
       timestamp asked for is missing (the command to add it is shown)
  130  interrupted (Ctrl-C, SIGTERM); nothing was written (a signal
       after the work is made no longer interrupts: the command finishes)
"""


class LazyGroup(click.Group):
    """A command group that imports a command's module only when that command is asked for (run,
    listed by --help, completed): each command pays at start-up for its own imports only, not
    for every other command's (issue 27). The module registers its commands itself, with
    ``@cli.command`` as usual, when it is imported."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.modules: dict[str, str] = {}  # command name → the module that defines it

    def add_lazy(self, modules: Mapping[str, str]) -> None:
        self.modules.update(modules)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.modules})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.modules:
            importlib.import_module(self.modules[cmd_name])
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EPILOG)
@click.version_option(__version__, prog_name="evidencekit")
@click.option("--config", "config_file", type=FILE_PATH,
              help=f"Read defaults from this YAML file (default: {CONFIG_HINT}, or "
              f"${CONFIG_ENV}). Precedence: flags > EVIDENCEKIT_* variables > file.")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None) -> None:
    """Preserve digital evidence: capture files into one signed, encrypted bundle that anyone
    holding the key can verify and open, with evidencekit or with standard tools."""
    ctx.obj = {"config": None, "config_error": None}
    try:
        config = load_config(config_file, config_dir())
    except EvidenceKitError as exc:
        ctx.obj["config_error"] = exc  # reported by run(), as text or JSON, with exit code 2
        return
    ctx.obj["config"] = config
    ctx.default_map = config.default_map(_parameters_by_command(cli))


def _parameters_by_command(group: click.Group, prefix: str = "") -> dict[str, set[str]]:
    """The parameters of every command imported so far. That is enough for the defaults: click
    resolves (imports) the command being run before it calls the group's function."""
    found: dict[str, set[str]] = {}
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found.update(_parameters_by_command(command, path + " "))
        else:
            found[path] = {p.name for p in command.params if p.name}
    return found


class InternalError(EvidenceKitError):
    """A bug in evidencekit: an exception that is not an EvidenceKitError reached the CLI."""

    exit_code = ExitCode.INTERNAL


class DetailedError(EvidenceKitError):
    """An error whose --json document carries more than the message: *fields* are added at the
    top level (each documented in that command's schema)."""

    def __init__(self, message: str, *, hint: str | None = None,
                 fields: dict[str, Any] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.fields = fields or {}


def _root_obj() -> dict[str, Any]:
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return obj if isinstance(obj, dict) else {}


def _pending_config_error() -> EvidenceKitError | None:
    error = _root_obj().get("config_error")
    return error if isinstance(error, EvidenceKitError) else None


def error_document(exc: EvidenceKitError, command: str) -> dict[str, Any]:
    """The --json document of a failed command (common.schema.json#/$defs/error_document)."""
    return {"command": command, "ok": False, "exit_code": exc.exit_code,
            "error": {"kind": type(exc).__name__, "message": exc.message, "hint": exc.hint},
            **(exc.fields if isinstance(exc, DetailedError) else {})}


def report_error(exc: EvidenceKitError, command: str, as_json: bool) -> int:
    """Print *exc*: its document on stdout with --json, the message and hint on stderr always;
    return its exit code, the one the document states."""
    if as_json:
        render.emit_json(error_document(exc, command))
    render.error(exc, command, as_json=False)
    return exc.exit_code


def run(command: str, as_json: bool, body: Callable[[], int]) -> NoReturn:
    """Run a command body; map every outcome to one message and a documented exit code."""
    from evidencekit import fs

    fs.begin()
    fs.leftovers.listen(_say_leftover)
    try:
        pending = _pending_config_error()
        if pending is not None:
            raise pending
        code = body()
    except EvidenceKitError as exc:
        code = report_error(_naming_the_source(exc), command, as_json)
    except (KeyboardInterrupt, click.exceptions.Abort):  # Abort: Ctrl-C at a click prompt
        code = report_error(_interrupted(), command, as_json)
    except Exception as exc:
        if os.environ.get("EVIDENCEKIT_DEBUG"):
            raise
        code = report_error(InternalError(f"internal error: {type(exc).__name__}: {exc}",
                                          hint="this is a bug in evidencekit; run again with "
                                          "EVIDENCEKIT_DEBUG=1 and report the traceback"),
                            command, as_json)
    sys.exit(code)


def _say_leftover(leftover: Leftover) -> None:
    """An unfinished file beside the output, left by an evidencekit command killed outright
    (kill -9, a power cut): removed, or named for the person to delete."""
    shown = render.escape(str(leftover.path))
    if leftover.finished_for is not None:
        named = render.escape(str(leftover.finished_for))
        render.err.print(
            f"[yellow]evidencekit: warning:[/] {shown} holds a finished output that an "
            f"evidencekit command was naming {named} when it was stopped (kill -9, a power cut); "
            f"{named} is left empty. Check it (evidencekit verify, for a bundle), then put it in "
            f"place: mv -f {render.escape(shlex.quote(str(leftover.path)))} "
            f"{render.escape(shlex.quote(str(leftover.finished_for)))}")
    elif leftover.removed:
        render.err.print(f"Removed {shown}: left unfinished by an evidencekit command that "
                         "was stopped (kill -9, a power cut) before it could clean up.")
    else:
        render.err.print(f"[yellow]evidencekit: warning:[/] {shown} is an unfinished file left "
                         "by an evidencekit command that was stopped, or by one still running "
                         "from an older evidencekit. Once no other evidencekit writes there, "
                         f"delete it: rm {render.escape(shlex.quote(str(leftover.path)))}")


def _interrupted() -> Interrupted:
    """What an interrupt left: nothing; or, stopped in a wait after its main work was done
    (extract --record waiting for another writer), what it had made already."""
    from evidencekit import fs

    made = fs.made()
    if not made:
        return Interrupted("interrupted; nothing was written", hint="the source was not changed")
    names = ", ".join(str(path) for path in made)
    return Interrupted(f"interrupted after {names} was written (it is complete); the rest of "
                       "the command was not done", hint="what comes after it was not added: a "
                       "trusted timestamp ('evidencekit timestamp' adds one later) or, with "
                       "--record, the custody event ('evidencekit custody add')")


def _naming_the_source(exc: EvidenceKitError) -> EvidenceKitError:
    """*exc*, told where the value it quotes came from when that value was not typed on the
    command line but taken from an EVIDENCEKIT_* variable or the configuration file: otherwise
    "--trusted-key '/x.pub' is neither a file…" sends the user looking for a flag never given."""
    ctx = click.get_current_context(silent=True)
    config = _root_obj().get("config")
    if ctx is None or not isinstance(config, Config):
        return exc
    for param in ctx.command.params:
        name = param.name
        if not name or ctx.get_parameter_source(name) is not ParameterSource.DEFAULT_MAP:
            continue
        origin = config.origin_of(name)
        if origin is None or not any(v and v in exc.message for v in _texts(ctx.params.get(name))):
            continue
        named = copy.copy(exc)
        named.message = f"{origin}: {_without_flag(exc.message, param.opts)}"
        named.args = (named.message,)
        named.hint = exc.hint or (f"fix or unset it there, or give {param.opts[-1]} on the "
                                  "command line" if param.opts else None)
        return named
    return exc


def _texts(value: object) -> list[str]:
    if isinstance(value, (tuple, list)):
        return [str(v) for v in value]
    return [] if value is None else [str(value)]


def _without_flag(message: str, opts: Sequence[str]) -> str:
    # The library names the flag it expects values from; the origin replaces it.
    for opt in opts:
        if message.startswith(opt + " "):
            return message[len(opt) + 1:]
    return message


# ----------------------------------------------------------- shared by capture, custody, reseal
# How reseal and note --private are told to protect the new bundle by a passphrase
NEW_PASSPHRASE = "--new-passphrase-file FILE"


def encryption_for(recipients: tuple[str, ...], files: tuple[Path, ...], use_passphrase: bool,
                passphrase_file: Path | None, *, passphrase_option: str | None = "--passphrase"
                ) -> list[age.Recipient]:
    """Who can open the bundle written. *passphrase_option*: how this command is told to use a
    passphrase for it (reseal's and note's --passphrase is the bundle read's, not the new one's);
    None where a passphrase cannot be used (capture --remote: public keys only)."""
    recipients, files = flags_over_defaults(recipients, files)
    by_key = recipients_from(recipients, files)
    wants_passphrase = use_passphrase or passphrase_file is not None or (
        not by_key and bool(os.environ.get(PASSPHRASE_ENV)))
    if by_key and wants_passphrase:
        raise UsageError("choose either public keys (--recipient) or a passphrase, not both",
                         hint="the age format allows a passphrase only on its own")
    if by_key:
        return by_key
    if not wants_passphrase and passphrase_option is None:
        raise UsageError("no public key to encrypt the bundle to was given; evidencekit never "
                         "writes evidence unencrypted",
                         hint="add --recipient age1… (the investigator's key) or "
                         "--recipient-file FILE")
    if not wants_passphrase:
        raise UsageError("no way to encrypt the bundle was given; evidencekit never writes "
                         "evidence unencrypted",
                         hint="add --recipient age1… (the investigator's key), --recipient-file "
                         f"FILE, or {passphrase_option}")
    secret = obtain("the bundle", passphrase_file, PASSPHRASE_ENV, "--passphrase-file",
                    confirm=True)
    return [age.ScryptRecipient(secret)]


def flags_over_defaults(recipients: tuple[str, ...], files: tuple[Path, ...]
                         ) -> tuple[tuple[str, ...], tuple[Path, ...]]:
    """Recipients from the configuration or EVIDENCEKIT_RECIPIENTS apply only when no encryption
    flag (-r, -R, -p, --passphrase-file) was given on the command line."""
    flagged = given_on_command_line
    if any(flagged(n) for n in ("recipients", "recipient_files", "use_passphrase",
                                "passphrase_file")):
        return (recipients if flagged("recipients") else (),
                files if flagged("recipient_files") else ())
    return recipients, files


def given_on_command_line(parameter: str) -> bool:
    """True when the running command got *parameter* as a flag (not from settings or defaults)."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.get_parameter_source(parameter) is ParameterSource.COMMANDLINE


def resolve_signing_key(path: Path | None, passphrase_file: Path | None, quiet: bool,
                        captured: Sequence[Source] = (), *, may_create: bool = False
                        ) -> SigningKey:
    """The key that signs: *path*, else the personal key. Only a capture (*may_create*) creates
    that key on first use, and not where it would write into one of the sources being
    *captured*: a custody event signed by a key minted on the spot proves nothing about who
    signed it, so the other commands refuse instead (exit 2)."""
    def passphrase() -> bytes:
        return obtain("the signing key", passphrase_file, KEY_PASSPHRASE_ENV,
                      "--sign-key-passphrase-file", confirm=False)

    if path is not None:
        return load_signing(path, passphrase)
    default = default_signing_key_path()
    if default.exists():
        return load_signing(default, passphrase)
    if not may_create:
        raise KeyFileError(f"no signing key was given, and you have no personal signing key "
                           f"({default}) yet",
                           hint="give the key you sign with: --sign-key PATH (or sign_key in "
                           "the configuration); or create your personal key once with: "
                           f"evidencekit key generate -o {default}")
    refuse_new_key_inside(default, captured)
    signing = generate_key_files(default, None, None)
    if not quiet:
        render.err.print(f"Created your personal signing key {default}\n"
                         f"  fingerprint {signing.public.fingerprint}\n"
                         "  (it proves the bundles you make are yours; keep it safe)")
    return signing


STDOUT = "-"  # -o -: standard output, by the usual convention


def is_stdout(output: Path | str | None) -> bool:
    """Whether -o named standard output (``-``): ``./-`` names a file called ``-``."""
    return output is not None and str(output) == STDOUT


def refuse_stdout(output: Path | str | None, what: str, hint: str | None = None) -> None:
    """Refuse ``-o -`` for a command whose output cannot be a stream (*what*: "a bundle",
    "a folder"): a file named ``-`` made silently is never what was meant."""
    if is_stdout(output):
        raise UsageError(f"-o - means standard output, and {what} cannot be written there",
                         hint=hint or "give the output's name with -o (./- for a file named -)")


def stdout_binary() -> BinaryIO:
    """Standard output for bytes, without the tolerance of a broken pipe that messages get
    (_Tolerant): an export that did not reach its reader whole must fail, not end 'written'.
    Refused when the command started with standard output closed (it is the null device)."""
    if 1 in _closed_at_start:
        raise OutputError("-o - means standard output, and it is closed: what was asked for "
                          "would go nowhere", hint="give the output's name with -o, or start "
                          "the command with its standard output open (a file, a pipe)")
    stream = sys.stdout
    stream.flush()
    raw = stream._stream if isinstance(stream, _Tolerant) else stream
    return cast(BinaryIO, raw.buffer)


def _on_sigterm(signum: int, frame: object) -> None:
    """End the work as Ctrl-C does (everything undone), unless what the command was asked to
    make is made: then it finishes and says so (evidencekit.fs.commit)."""
    from evidencekit import fs

    if _finished[0]:
        return
    if fs.interruptible_now():
        raise KeyboardInterrupt
    fs.hold()


def _on_sigpipe(signum: int, frame: object) -> None:
    """The reader of our output went away (``evidencekit … | head`` closed): end as Ctrl-C does.
    A pipe to a libmagic worker that died raises SIGPIPE too; that one is handled where it is
    written (one file's type unknown), so only a broken standard output or error ends the work."""
    from evidencekit import fs

    broken = [fd for fd in (1, 2) if _broken(fd)]
    for fd in broken:
        _silence(fd)  # what is still said goes nowhere, rather than failing the command
    if broken and fs.interruptible_now() and not _finished[0]:
        raise KeyboardInterrupt


def _silence(fd: int) -> None:
    """Point *fd* (a pipe whose reader is gone) at the null device."""
    try:
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.dup2(null, fd)
    except OSError:
        pass
    finally:
        os.close(null)


class _Tolerant:
    """Standard output or error whose reader may go away (``evidencekit … | head``). The write
    that finds the pipe broken fails with EPIPE before the SIGPIPE handler runs; that failure
    must neither turn finished work into an internal error nor, in an error message, exit 1
    ("verification failed"). The stream is pointed at the null device and the work goes on:
    SIGPIPE decides whether it stops (the handler above)."""

    def __init__(self, stream: Any, fd: int) -> None:
        self._stream = stream
        self._fd = fd

    def write(self, data: Any) -> int:
        try:
            return int(self._stream.write(data))
        except BrokenPipeError:
            _silence(self._fd)
            return len(data)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            _silence(self._fd)
            with contextlib.suppress(OSError):
                self._stream.flush()  # what the buffer held now goes to the null device

    @property
    def buffer(self) -> _Tolerant:
        return _Tolerant(self._stream.buffer, self._fd)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _tolerate_broken_output() -> None:
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _Tolerant) and \
                _fileno(stream) == fd:
            setattr(sys, name, _Tolerant(stream, fd))


def _fileno(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return None


def _broken(fd: int) -> bool:
    import select

    try:
        poller = select.poll()
        poller.register(fd, 0)  # POLLERR and POLLHUP are always reported
        return any(events & (select.POLLERR | select.POLLHUP | select.POLLNVAL)
                   for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


# Signals that end a command cleaning up as Ctrl-C does (temporary files and partial folders
# removed, nothing half-written left): kill, an ssh session or terminal dropping (SIGHUP),
# Ctrl-\ (SIGQUIT); and SIGPIPE when our output's reader went away (Python ignores SIGPIPE, so
# a write would fail later, with the work half done and its files left behind).
_ENDING_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")


def _clean_up_on_ending_signals() -> None:
    """Handle the ending signals, except those ignored when we started: ``nohup`` ignores
    SIGHUP, a shell ignores SIGINT for its background jobs, so that logging out or Ctrl-C in the
    terminal does not stop them; a handler would undo that. (SIGPIPE is always taken: Python
    itself ignores it at start-up.)"""
    _finished[0] = False
    for name in _ENDING_SIGNALS:
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is not signal.SIG_IGN:
            signal.signal(number, _on_sigterm)  # Windows has only SIGTERM of these
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, _on_sigpipe)
    atexit.register(_ignore_ending_signals)


_finished = [False]  # the outcome is told: a signal now must not change the exit code


def _ignore_ending_signals() -> None:
    """At exit, after the outcome was told. Python's shutdown gives handled signals back their
    default action, which would kill the process (exit 128+N) after it finished its work."""
    for name in (*_ENDING_SIGNALS, "SIGPIPE"):
        number = getattr(signal, name, None)
        if number is not None:
            with contextlib.suppress(OSError, ValueError):
                signal.signal(number, signal.SIG_IGN)


def allow_more_open_files() -> None:
    """The walk holds a descriptor per folder level, and the progress bar's count up to 64
    more: a deep tree must not fail for want of descriptors while the system allows more."""
    try:
        import resource
    except ImportError:  # not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    # macOS says "unlimited" but refuses more than its per-process maximum (10240 by default)
    for limit in (wanted, 10240, 4096):
        if soft == resource.RLIM_INFINITY or soft >= limit:
            return
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, wanted), hard))
            return


_closed_at_start: set[int] = set()  # standard streams closed when the command started


def closed_at_start(fd: int) -> bool:
    """Whether the standard stream *fd* was closed when the command started (it is the null
    device now): `capture --stdin` with standard input closed must be refused, not read empty."""
    return fd in _closed_at_start


def _open_closed_standard_streams() -> None:
    """Give a standard stream closed at start (``>&-``, a daemon without a terminal) the null
    device. Python leaves sys.stdout None then, and --json, an error message or -o - failed with
    a traceback; and the first file this process opened took the number 0, 1 or 2."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        try:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free number: fd itself
        except OSError:
            return
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        _closed_at_start.add(fd)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, encoding="utf-8", closefd=False))  # noqa: SIM115


def main(args: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if args is None else args)
    try:
        _open_closed_standard_streams()
        _tolerate_broken_output()
        _clean_up_on_ending_signals()
        allow_more_open_files()
    except KeyboardInterrupt:  # Ctrl-C before any command ran: a message, not a traceback
        render.err.print("evidencekit: interrupted; nothing was done")
        sys.exit(ExitCode.INTERRUPTED)
    try:
        _run_cli(argv)
    finally:
        _finished[0] = True


def _run_cli(argv: list[str]) -> None:
    try:
        cli.main(args=argv, prog_name="evidencekit", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        if _wants_json(argv):  # click failed before any command ran: the document is ours
            render.emit_json(error_document(_usage_error(exc), _command_of(exc)))
        sys.exit(ExitCode.USAGE)
    except click.exceptions.Abort:
        render.err.print("evidencekit: interrupted")
        if _wants_json(argv):
            render.emit_json(error_document(Interrupted("interrupted; nothing was written"),
                                            ""))
        sys.exit(ExitCode.INTERRUPTED)


def _wants_json(argv: list[str]) -> bool:
    """--json among the options (not after ``--``, where it would be a file name)."""
    options = argv[:argv.index("--")] if "--" in argv else argv
    return "--json" in options


def _usage_error(exc: click.ClickException) -> UsageError:
    ctx = exc.ctx if isinstance(exc, click.UsageError) else None
    hint = f"'{ctx.command_path} --help' shows how to use it" if ctx is not None else None
    return UsageError(exc.format_message(), hint=hint)


def _command_of(exc: click.ClickException) -> str:
    """The subcommand the error is about ("capture", "profiles show"), "" before one is known."""
    ctx = exc.ctx if isinstance(exc, click.UsageError) else None
    if ctx is None:
        return ""
    return ctx.command_path.removeprefix(ctx.find_root().info_name or "").strip()
