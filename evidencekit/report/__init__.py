"""Reports for police, banks and insurers, made from a verified bundle (HTML or PDF).

:func:`collect` (model.py) gathers what the report says; html.py and pdf.py lay it out;
:func:`write_report` writes it without ever replacing an existing file.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import suppress
from pathlib import Path

from evidencekit.errors import OutputError, UsageError
from evidencekit.report.model import ReportData, collect

__all__ = ["FORMATS", "ReportData", "collect", "report_format", "write_report"]

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
    if os.path.lexists(output):
        raise OutputError(f"{output} already exists; evidencekit does not overwrite it",
                          hint="choose another name with -o")
    parent = output.absolute().parent
    if not parent.is_dir():
        raise OutputError(f"the folder {parent} does not exist")
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".partial", dir=parent)
    except OSError as exc:
        raise OutputError(f"cannot write to the folder {parent}: {exc.strerror}") from None
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            if kind == "pdf":
                from evidencekit.report.pdf import render_pdf

                render_pdf(data, out)
            else:
                from evidencekit.report.html import render_html

                out.write(render_html(data).encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o644)
        os.link(temp, output)
    except FileExistsError:
        raise OutputError(f"{output} appeared while the report was written") from None
    except OSError as exc:
        raise OutputError(f"could not write {output}: {exc.strerror or exc}") from None
    finally:
        with suppress(FileNotFoundError):
            temp.unlink()
