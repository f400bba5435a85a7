"""The HTML and PDF reports (evidencekit.report) as formats of the export registry.

``evidencekit report`` keeps its own command (it can also make a report marked VERIFICATION
FAILED with --force); ``evidencekit export --format html|pdf`` makes the same report from a
bundle that verifies, through the same code.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from evidencekit.export.registry import ExportContext, Format, Stdout, Written, register
from evidencekit.payload import Visitor
from evidencekit.report import collect, render_into
from evidencekit.report.previews import PreviewCollector
from evidencekit.verify import Report


class ReportJob:
    def __init__(self, context: ExportContext, kind: str) -> None:
        self.context = context
        self.kind = kind
        self.previews = PreviewCollector()  # pictures and e-mails, from the decrypted payload

    def visitor(self) -> Visitor | None:
        return self.previews

    def abandon(self) -> None:
        return None

    def finish(self, checked: Report, out: BinaryIO, staged: Path | None) -> Written:
        data = collect(checked, self.context.bundle.name, self.context.generated, self.previews)
        render_into(data, out, self.kind)
        return Written(notices=data.notices[:1] if data.not_counted else [])


HTML = register(Format("html", "the printable report, as HTML", ".html",
                       lambda context: ReportJob(context, "html")))
PDF = register(Format("pdf", "the printable report, as PDF", ".pdf",
                      lambda context: ReportJob(context, "pdf"), stdout=Stdout.BINARY))
