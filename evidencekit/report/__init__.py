"""Reports for police, banks and insurers, made from a verified bundle (HTML or PDF).

:func:`collect` (model.py) gathers what the report says; html.py and pdf.py lay it out;
:func:`write_report` writes it without ever replacing an existing file.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from evidencekit import fs
from evidencekit.errors import OutputError, UsageError
from evidencekit.report.model import ReportData, collect

__all__ = ["FORMATS", "ReportData", "collect", "render_into", "report_format", "write_report"]

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


def write_report(data: ReportData, output: Path, kind: str) -> None:
    """Render *data* as *kind* into *output*, which must not exist yet (written atomically)."""
    fs.require_new(output)
    try:
        # Decrypted names, hashes, the incident record and pictures: 0600 whatever the umask,
        # as the bundle and every export (shared by a deliberate chmod or copy, not by default).
        with fs.staged(output, 0o600) as stage:
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
