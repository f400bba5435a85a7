"""Exports: what investigators' tools read, made from a bundle that verifies.

One registry (registry.py) holds every format; each is one module that registers itself:
case.py (CASE/UCO JSON-LD), dfxml.py (DFXML), hashdeep.py (a known-hash list), report.py
(the HTML and PDF reports of evidencekit.report).
:func:`export` (run.py) verifies, lets the format watch the decrypted files, and publishes.
"""

from evidencekit.export import case, dfxml, e01, hashdeep, report  # noqa: F401  (each registers its formats)
from evidencekit.export.registry import (
    ExportContext,
    Format,
    Job,
    Stdout,
    Written,
    get,
    names,
    register,
)
from evidencekit.export.run import (
    Exported,
    export,
    refuse_format_on_stdout,
    refuse_unless_verified,
)

__all__ = ["ExportContext", "Exported", "Format", "Job", "Stdout", "Written", "export", "get",
           "names", "refuse_format_on_stdout", "refuse_unless_verified", "register"]
