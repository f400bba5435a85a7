"""Make one export: verify while decrypting, refuse a bundle that does not verify, publish.

The output is staged next to its final name (evidencekit.fs) and named only once every check
passed and the format finished writing: an interrupted or refused export leaves nothing that
looks like one. To standard output (``-o -``), the export is staged in a private temporary
folder and copied out only then, so a pipe too receives nothing from a bundle that fails to
verify. With a signing key, a signed ``exported`` custody event then names the format
and the export's SHA-256 (docs/FORMAT.md §6).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from evidencekit import fs, timestamps
from evidencekit.crypto.keys import PublicKey
from evidencekit.errors import BundleError, NoMatchingKey, OutputError, UsageError
from evidencekit.export.registry import ExportContext, Format, Stdout, Written
from evidencekit.payload import PayloadReaders
from evidencekit.progress import Progress
from evidencekit.protection import Keys, keys_given, wrong_key_for
from evidencekit.verify import Report, verify

READ_SIZE = 1 << 20
PRIVATE = 0o600  # an export's mode (the report's too: evidencekit.report.write_report)


@dataclass
class Exported:
    output: Path | None  # None: written to the stream given (standard output)
    format: str
    sha256: str
    size: int
    report: Report
    written: Written


def export(bundle: Path, fmt: Format, output: Path | BinaryIO, context: ExportContext,
           identities: Keys, trusted_keys: Sequence[PublicKey] = (),
           progress: Progress | None = None,
           tsa_roots: Sequence[timestamps.Certificate] | None = None) -> Exported:
    """Verify *bundle* with *identities*, let *fmt* watch the decrypted files, and publish its
    export as *output* (never over an existing file), or write it whole to the open stream
    *output* (standard output), only if the bundle verified."""
    named = output if isinstance(output, Path) else None
    shown = named if named is not None else "standard output"
    if named is not None:
        fs.require_new(named)
    elif fmt.stdout is Stdout.NEVER:
        refuse_format_on_stdout(fmt, terminal=False)
    job = fmt.start(context)
    try:
        # 0600 whatever the umask, as the bundle and the extracted folder: every format reveals
        # the evidence (names, hashes, the incident record, pictures, an E01 the image itself).
        # (named: a format written by another program puts its own file in the staged one's
        # place by a rename, which a file without a name has none for)
        with fs.staged(output, PRIVATE, named=fmt.stdout is Stdout.NEVER) \
                if isinstance(output, Path) else _staged_for(output) as stage:
            checked = verify(bundle, identities, trusted_keys, progress=progress,
                             readers=PayloadReaders(files=job.visitor()), tsa_roots=tsa_roots)
            refuse_unless_verified(checked, bundle, identities)
            written = job.finish(checked, stage.file, stage.path)
            stage.file.flush()
            digest, size = _sha256_of(stage.path, stage.file)
    except FileExistsError:
        raise OutputError(f"{output} appeared while the export was written; it was left as it "
                          "was", hint="choose another name with -o") from None
    except fs.CannotCreate as exc:
        raise OutputError(f"cannot write into {exc.filename or exc}: "
                          f"{exc.strerror or exc}") from None
    except OSError as exc:
        raise OutputError(f"could not write {shown}: {exc.strerror or exc}") from None
    finally:
        job.abandon()
    return Exported(named, fmt.name, digest, size, checked, written)


def refuse_format_on_stdout(fmt: Format, *, terminal: bool) -> None:
    """Refuse to write *fmt* to standard output when it cannot go there: never for a file
    another program writes (E01), not to a *terminal* for binary bytes (PDF)."""
    if fmt.stdout is Stdout.NEVER:
        raise UsageError(f"{fmt.name} is written as a file, not to standard output",
                         hint=f"name the file with -o, e.g. -o image{fmt.suffix}")
    if fmt.stdout is Stdout.BINARY and terminal:
        raise UsageError(f"{fmt.name} is binary and standard output is a terminal",
                         hint=f"redirect it (-o - > export{fmt.suffix}, or into a pipe), or "
                         f"name the file with -o, e.g. -o export{fmt.suffix}")


class _Unnamed:
    """The staged export for standard output: a temporary file without a name."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.path: Path | None = None


@contextmanager
def _staged_for(stream: BinaryIO) -> Iterator[_Unnamed]:
    """fs.staged for standard output: the export is written into a temporary file without a
    name (O_TMPFILE; elsewhere removed as soon as made), so that nothing of it is left on disk
    whatever happens, kill -9 included (a named one in a private folder stayed in /tmp for good,
    the export in clear), and copied to *stream* only when the block ends normally, after every
    check passed."""
    with tempfile.TemporaryFile() as file:  # (0600)
        yield _Unnamed(cast(BinaryIO, file))
        file.flush()
        file.seek(0)
        shutil.copyfileobj(file, stream, READ_SIZE)
        stream.flush()


def refuse_unless_verified(report: Report, bundle: Path, identities: Keys,
                           *, outcome: str = "nothing was exported", force: bool = False,
                           forcing: str = "") -> None:
    """No export from a bundle that did not verify to its last file: an export vouches for
    what it lists. *outcome* says what was not done ("no report was made"). With *force*
    (``report --force``, whose report then says VERIFICATION FAILED) only a file that is not a
    bundle at all is refused; *forcing* tells how to force it, in the hint."""
    if report.no_matching_key and not force:
        advice = wrong_key_for(bundle, keys_given(identities))
        raise NoMatchingKey(advice.message_with(f", so {outcome}"), hint=advice.hint)
    if report.seal is None:
        raise BundleError(f"this file is not a readable evidence bundle, so {outcome}",
                          hint="run 'evidencekit verify' on it to see what is wrong")
    if not (report.ok and report.decrypted) and not force:
        first = report.findings.errors[0] if report.findings.errors else None
        detail = f" ({first.where}: {first.problem})" if first else ""
        raise BundleError(f"the bundle did not pass verification{detail}, so {outcome}",
                          hint="run 'evidencekit verify BUNDLE -i KEY' to see every problem"
                          + (f"; {forcing}" if forcing else ""))


def _sha256_of(staged: Path | None, unnamed: BinaryIO) -> tuple[str, int]:
    """The export's SHA-256 as it lies on disk, read back from the staged file at *staged* (a
    format written by another program puts its file there), or from *unnamed*, the file without
    a name for standard output: what the custody event names."""
    digest = hashlib.sha256()
    size = 0
    with open(staged, "rb") if staged is not None else nullcontext(unnamed) as file:
        file.seek(0)
        while block := file.read(READ_SIZE):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size
