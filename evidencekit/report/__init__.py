"""Reports for police, banks and insurers, made from a verified bundle (HTML or PDF).

:func:`collect` (model.py) gathers what the report says; html.py and pdf.py lay it out;
:func:`write_report` writes it without ever replacing an existing file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from evidencekit import fs
from evidencekit.crypto import age
from evidencekit.errors import BundleError, NoMatchingKey, OutputError, UsageError
from evidencekit.protection import wrong_key_for
from evidencekit.report.model import ReportData, collect
from evidencekit.verify import Report

__all__ = ["FORMATS", "ReportData", "collect", "render_into", "report_format", "require_verified",
           "write_report"]

FORMATS = {".html": "html", ".htm": "html", ".pdf": "pdf"}


def report_format(output: Path, requested: str | None = None) -> str:
    """'html' or 'pdf', from --format or the output's suffix."""
    if requested:
        return requested
    found = FORMATS.get(output.suffix.lower())
    if found is None:
        raise UsageError(f"cannot tell the report format from the name {output.name}",
                         hint="name the output report.html or report.pdf (or give --format)")
    return found


def require_verified(report: Report, force: bool, bundle: Path,
                     keys: Sequence[age.Identity]) -> None:
    """Refuse to make a report from a bundle that did not verify (or that the keys did not
    open), unless *force*: the report then says VERIFICATION FAILED on every page. A file that
    is not a bundle at all is refused even then."""
    if report.no_matching_key and not force:
        advice = wrong_key_for(bundle, keys)
        raise NoMatchingKey(advice.message_with(", so no report was made"), hint=advice.hint)
    if report.seal is None:
        raise BundleError("this file is not a readable evidence bundle, so no report was made",
                          hint="run 'evidencekit verify' on it to see what is wrong")
    if not (report.ok and report.decrypted) and not force:
        first = report.findings.errors[0] if report.findings.errors else None
        detail = f" ({first.where}: {first.problem})" if first else ""
        raise BundleError(f"the bundle did not pass verification{detail}, so no report was made",
                          hint="run 'evidencekit verify BUNDLE -i KEY' to see every problem; "
                          "--force makes a report anyway, marked VERIFICATION FAILED on "
                          "every page")


def write_report(data: ReportData, output: Path, kind: str) -> None:
    """Render *data* as *kind* into *output*, which must not exist yet (written atomically)."""
    if os.path.lexists(output):
        raise OutputError(f"{output} already exists; evidencekit does not overwrite it",
                          hint="choose another name with -o")
    parent = output.absolute().parent
    if not parent.is_dir():
        raise OutputError(f"the folder {parent} does not exist")
    try:
        # Decrypted names, hashes and the incident record: 0600 while written, then no more
        # open than the umask allows (a report is meant to be shared, but not by default).
        with fs.staged(output, fs.umask_mode(0o644)) as stage:
            render_into(data, stage.file, kind)
    except FileExistsError:
        raise OutputError(f"{output} appeared while the report was written") from None
    except OSError as exc:
        raise OutputError(f"could not write {output}: {exc.strerror or exc}") from None


def render_into(data: ReportData, out: BinaryIO, kind: str) -> None:
    """Lay *data* out as *kind* ('html' or 'pdf') into the open file *out*."""
    if kind == "pdf":
        from evidencekit.report.pdf import render_pdf

        render_pdf(data, out)
    else:
        from evidencekit.report.html import render_html

        out.write(render_html(data).encode("utf-8"))
