"""Make one export: verify while decrypting, refuse a bundle that does not verify, publish.

The output is staged next to its final name (evidencekit.fs) and named only once every check
passed and the format finished writing: an interrupted or refused export leaves nothing that
looks like one. With a signing key, a signed ``exported`` custody event then names the format
and the export's SHA-256 (docs/FORMAT.md §6).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evidencekit import fs, timestamps
from evidencekit.crypto import age
from evidencekit.crypto.keys import PublicKey
from evidencekit.errors import BundleError, NoMatchingKey, OutputError
from evidencekit.export.registry import ExportContext, Format, Written
from evidencekit.payload import PayloadReaders
from evidencekit.progress import Progress
from evidencekit.protection import wrong_key_for
from evidencekit.verify import Report, verify

READ_SIZE = 1 << 20


@dataclass
class Exported:
    output: Path
    format: str
    sha256: str
    size: int
    report: Report
    written: Written


def export(bundle: Path, fmt: Format, output: Path, context: ExportContext,
           identities: Sequence[age.Identity], trusted_keys: Sequence[PublicKey] = (),
           progress: Progress | None = None,
           tsa_roots: Sequence[timestamps.Certificate] | None = None) -> Exported:
    """Verify *bundle* with *identities*, let *fmt* watch the decrypted files, and publish its
    export as *output* (never over an existing file) only if the bundle verified."""
    fs.require_new(output)
    job = fmt.start(context)
    try:
        with fs.staged(output, 0o600 if fmt.holds_content else fs.umask_mode(0o644)) as stage:
            checked = verify(bundle, identities, trusted_keys, progress=progress,
                             readers=PayloadReaders(files=job.visitor()), tsa_roots=tsa_roots)
            refuse_unless_verified(checked, bundle, identities)
            written = job.finish(checked, stage.file, stage.path)
            stage.file.flush()
            digest, size = _sha256_of(stage.path)
    except FileExistsError:
        raise OutputError(f"{output} appeared while the export was written; it was left as it "
                          "was", hint="choose another name with -o") from None
    except fs.CannotCreate as exc:
        raise OutputError(f"cannot write into {output.absolute().parent}: "
                          f"{exc.strerror or exc}") from None
    except OSError as exc:
        raise OutputError(f"could not write {output}: {exc.strerror or exc}") from None
    finally:
        job.abandon()
    return Exported(output, fmt.name, digest, size, checked, written)


def refuse_unless_verified(report: Report, bundle: Path, identities: Sequence[age.Identity],
                           *, outcome: str = "nothing was exported", force: bool = False,
                           forcing: str = "") -> None:
    """No export from a bundle that did not verify to its last file: an export vouches for
    what it lists. *outcome* says what was not done ("no report was made"). With *force*
    (``report --force``, whose report then says VERIFICATION FAILED) only a file that is not a
    bundle at all is refused; *forcing* tells how to force it, in the hint."""
    if report.no_matching_key and not force:
        advice = wrong_key_for(bundle, identities)
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


def _sha256_of(staged: Path) -> tuple[str, int]:
    """The export's SHA-256 as it lies on disk, read back from the staged file (a format
    written by another program puts its file there): what the custody event names."""
    digest = hashlib.sha256()
    size = 0
    with open(staged, "rb") as file:
        while block := file.read(READ_SIZE):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size
