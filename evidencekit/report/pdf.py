"""The report as a PDF (ReportLab): real, extractable text; page numbers; tables that split across
pages with their header repeated; a Unicode font so that names in any script print.

Fonts: DejaVu Sans (shipped with most Linux systems, and common elsewhere) or the TrueType font
named by ``EVIDENCEKIT_REPORT_FONT``; a fallback font for scripts DejaVu lacks (CJK) is used when
one is installed. A character no available font can draw is printed as ``[U+XXXX]`` (exact, never
silently dropped) and page 1 says so. Without any Unicode font, Helvetica is used and the report
says clearly that names may be incomplete and where to find them exactly (the HTML report).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import IO, Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    Image,
    KeepTogether,
    LongTable,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    TableStyle,
)

from evidencekit.custody.events import counterparty_text
from evidencekit.incident import IDENTIFIER_KINDS, Moment, human_time
from evidencekit.report import model
from evidencekit.report.previews import MAX_PICTURES, FullHeaders, Picture
from evidencekit.text import plural, size_text, visible

FONT_ENV = "EVIDENCEKIT_REPORT_FONT"
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu",
             "/usr/share/fonts/TTF", "/usr/share/fonts/truetype", "/usr/local/share/fonts",
             "/opt/homebrew/share/fonts", "/Library/Fonts", os.path.expanduser("~/Library/Fonts"),
             os.path.expanduser("~/.fonts"), os.path.expanduser("~/.local/share/fonts"),
             "C:\\Windows\\Fonts")
# When DejaVu is not installed (macOS, Windows): system fonts that cover Latin, Greek, Cyrillic.
OTHER_REGULAR = ("/System/Library/Fonts/Supplemental/Arial Unicode.ttf",
                 "/Library/Fonts/Arial Unicode.ttf", "C:\\Windows\\Fonts\\arial.ttf")
FALLBACK_FONTS = ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
                  "/usr/share/fonts/truetype/arphic/uming.ttc",
                  "/System/Library/Fonts/Supplemental/Arial Unicode.ttf",
                  "/Library/Fonts/Arial Unicode.ttf", "C:\\Windows\\Fonts\\ARIALUNI.TTF")

RED = colors.HexColor("#b00020")
GREEN = colors.HexColor("#1b6e20")
SOFT = colors.HexColor("#f3f5f7")
LINE = colors.HexColor("#cfd4da")
MUTED = colors.HexColor("#5b5b5b")
WIDTH = A4[0] - 30 * mm
# Evidence list: #, path with its SHA-256 below, type, size, the two times.
ITEM_WIDTHS = [8 * mm, 103 * mm, 24 * mm, 16 * mm, WIDTH - 151 * mm]
ITEM_HASH_SIZE = 6.5  # points, unless the font is too wide for the hash to fit on one line
PICTURES_PER_ROW = 3
PICTURE_BOX = ((WIDTH / PICTURES_PER_ROW) - 8, 78 * mm)  # width, height: a row and its captions
#  take under a third of a page, so a row that no longer fits leaves little blank


@dataclass
class Fonts:
    regular: str = "Helvetica"
    bold: str = "Helvetica-Bold"
    mono: str = "Courier"
    unicode: bool = False
    coverage: set[int] = field(default_factory=set)
    fallback: str | None = None
    fallback_coverage: set[int] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)  # characters shown as [U+XXXX]
    note: str = ""

    def text(self, value: object, *, newlines: bool = False) -> str:
        """Paragraph markup for *value*: escaped, with characters no font has made explicit."""
        text = visible(str(value), keep_newlines=newlines)
        out: list[str] = []
        fallback_run: list[str] = []

        def flush() -> None:
            if fallback_run:
                out.append(f'<font name="{self.fallback}">{escape("".join(fallback_run))}'
                           "</font>")
                fallback_run.clear()

        for char in text:
            code = ord(char)
            if char == "\n":
                flush()
                out.append("<br/>")
            elif self._has(code):
                flush()
                out.append(escape(char))
            elif self.fallback and code in self.fallback_coverage:
                fallback_run.append(char)
            else:
                flush()
                self.missing.add(char)
                out.append(f"[U+{code:04X}]")
        flush()
        return "".join(out)

    def _has(self, code: int) -> bool:
        if code < 0x80:
            return True
        if self.unicode:
            return code in self.coverage
        try:
            chr(code).encode("cp1252")
            return True
        except UnicodeEncodeError:
            return False


def _fitting_size(font: str, largest: float, width: float) -> float:
    """The font size (at most *largest*) at which a SHA-256 in hex fits on one line of *width*
    points, in the widest case for *font* (a proportional fallback font is not monospaced)."""
    widest = max(pdfmetrics.stringWidth(c, font, 1) for c in "0123456789abcdef")
    return min(largest, width / (64 * widest))


def _find(names: tuple[str, ...]) -> str | None:
    for folder in FONT_DIRS:
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    return None


def load_fonts() -> Fonts:
    """Register the best fonts available; never fails (falls back to Helvetica, saying so)."""
    fonts = Fonts()
    regular = os.environ.get(FONT_ENV) or _find(("DejaVuSans.ttf",)) or next(
        (path for path in OTHER_REGULAR if os.path.isfile(path)), None)
    if regular is None:
        fonts.note = ("No Unicode font was found (install DejaVu fonts, e.g. 'apt install "
                      f"fonts-dejavu-core', or set {FONT_ENV} to a .ttf file): characters outside "
                      "Western European scripts are shown as [U+XXXX] codes. The HTML report "
                      "shows every name exactly.")
        return fonts
    try:
        face = TTFont("EK-Regular", regular)
        pdfmetrics.registerFont(face)
        bold_path = _find(("DejaVuSans-Bold.ttf",)) if regular.endswith("DejaVuSans.ttf") \
            else None
        pdfmetrics.registerFont(TTFont("EK-Bold", bold_path or regular))
        mono_path = _find(("DejaVuSansMono.ttf",))
        pdfmetrics.registerFont(TTFont("EK-Mono", mono_path or regular))
    except Exception as exc:  # a broken or unsupported font file: say so, use Helvetica
        fonts.note = f"The font {regular} could not be used ({exc}); Helvetica is used instead."
        return fonts
    fonts.regular, fonts.bold, fonts.mono, fonts.unicode = "EK-Regular", "EK-Bold", "EK-Mono", True
    fonts.coverage = set(face.face.charToGlyph)
    for path in FALLBACK_FONTS:
        if os.path.isfile(path):
            try:
                fallback = TTFont("EK-Fallback", path)
                pdfmetrics.registerFont(fallback)
            except Exception:  # e.g. a font with PostScript outlines; try the next one
                continue
            fonts.fallback, fonts.fallback_coverage = "EK-Fallback", set(fallback.face.charToGlyph)
            break
    return fonts


class _Styles:
    def __init__(self, fonts: Fonts) -> None:
        base = ParagraphStyle("base", fontName=fonts.regular, fontSize=9, leading=11.5)
        self.body = base
        self.small = ParagraphStyle("small", base, fontSize=7.5, leading=9.5)
        self.muted = ParagraphStyle("muted", self.small, textColor=MUTED)
        self.cell = ParagraphStyle("cell", base, fontSize=8, leading=10)
        self.cell_break = ParagraphStyle("cellb", self.cell)  # long words split (splitLongWords)
        self.item = ParagraphStyle("item", self.cell, leading=9.2)  # evidence list: dense
        self.cell_right = ParagraphStyle("cellr", self.cell, alignment=TA_RIGHT)
        self.head = ParagraphStyle("head", self.cell, fontName=fonts.bold)
        self.mono = ParagraphStyle("mono", self.cell, fontName=fonts.mono, fontSize=7,
                                   leading=9)
        self.header_line = ParagraphStyle("headerline", self.mono, fontSize=6.5, leading=8,
                                          backColor=SOFT, splitLongWords=1)
        self.title = ParagraphStyle("title", base, fontName=fonts.bold, fontSize=18, leading=22,
                                    spaceAfter=2)
        self.h2 = ParagraphStyle("h2", base, fontName=fonts.bold, fontSize=12, leading=15,
                                 spaceBefore=10, spaceAfter=4)
        self.h3 = ParagraphStyle("h3", base, fontName=fonts.bold, fontSize=9.5, leading=12,
                                 spaceBefore=6, spaceAfter=2)
        self.banner = ParagraphStyle("banner", base, fontName=fonts.bold, fontSize=11,
                                     leading=14, textColor=GREEN)
        self.failed = ParagraphStyle("failed", base, fontName=fonts.bold, fontSize=20,
                                     leading=24, textColor=RED, alignment=TA_CENTER)
        self.failed_detail = ParagraphStyle("failedd", self.cell, textColor=RED)


class _Builder:
    def __init__(self, data: model.ReportData, fonts: Fonts) -> None:
        self.data, self.fonts, self.s = data, fonts, _Styles(fonts)
        self.story: list[Flowable] = []

    # helpers ---------------------------------------------------------------------------------
    def t(self, value: object, newlines: bool = False) -> str:
        return self.fonts.text(value, newlines=newlines)

    def p(self, markup: str, style: ParagraphStyle | None = None) -> Paragraph:
        return Paragraph(markup, style or self.s.body)

    def h2(self, text: str) -> None:
        self.story.append(CondPageBreak(30 * mm))
        self.story.append(self.p(self.t(text), self.s.h2))

    def table(self, headers: list[str], rows: list[list[Any]], widths: list[float],
              right: tuple[int, ...] = (), extra: list[Any] | None = None) -> None:
        """A table that splits across pages, its header row repeated; *right*: columns of
        plain-string numbers to align right; *extra*: more TableStyle commands."""
        head = [self.p(self.t(h, newlines=True), self.s.head) for h in headers]
        table = LongTable([head, *rows] if rows else [head], colWidths=widths, repeatRows=1,
                          splitByRow=1)
        style: list[Any] = [("GRID", (0, 0), (-1, -1), 0.4, LINE),
                 ("BACKGROUND", (0, 0), (-1, 0), SOFT),
                 ("VALIGN", (0, 0), (-1, -1), "TOP"),
                 ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
                 ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                 ("FONTNAME", (0, 1), (-1, -1), self.fonts.regular),
                 ("FONTSIZE", (0, 1), (-1, -1), 8), ("LEADING", (0, 1), (-1, -1), 10)]
        style += [("ALIGN", (column, 1), (column, -1), "RIGHT") for column in right]
        style += extra or []
        table.setStyle(TableStyle(style))
        self.story.append(table)
        self.story.append(Spacer(0, 4))

    def facts(self, pairs: list[tuple[str, Any]]) -> None:
        rows = [[self.p(self.t(k), self.s.head), v if isinstance(v, Flowable) else
                 self.p(self.t(v), self.s.cell_break)] for k, v in pairs]
        table = LongTable(rows, colWidths=[42 * mm, WIDTH - 42 * mm])
        table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                                   ("LINEBELOW", (0, 0), (-1, -1), 0.3, LINE),
                                   ("LEFTPADDING", (0, 0), (-1, -1), 2),
                                   ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                                   ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5)]))
        self.story.append(table)

    def mono(self, value: str) -> Paragraph:
        return self.p(self.t(value) if value else "—", self.s.mono)

    def cell(self, value: object, newlines: bool = False, *, wrap_anywhere: bool = True
             ) -> Paragraph:
        return self.p(self.t(value, newlines) if value not in ("", None) else "—",
                      self.s.cell_break if wrap_anywhere else self.s.cell)

    def number(self, value: object) -> Paragraph:
        return self.p(self.t(value) if value not in ("", None) else "—", self.s.cell_right)

    # sections --------------------------------------------------------------------------------
    def build(self) -> list[Flowable]:
        data = self.data
        self.story.append(self.p(self.t("Evidence report"), self.s.title))
        self.story.append(self.p(self.t(
            f"Case {data.seal.case_id} · bundle {data.bundle_name} · report made "
            f"{model.utc_human(data.generated)} by evidencekit {data.tool_version}"), self.s.muted))
        self.story.append(Spacer(0, 6))
        self.status()
        notes_at = len(self.story)
        for section in (self.summary, self.incident, self.timeline, self.losses,
                        self.identifiers, self.previews, self.items, self.custody, self.signers,
                        self.hashes,
                        self.verify):
            section()
        notes = [self.fonts.note] if self.fonts.note else []
        if self.fonts.missing and self.fonts.unicode:
            codes = ", ".join(f"U+{ord(c):04X}" for c in sorted(self.fonts.missing)[:12])
            notes.append(f"Some characters ({codes}{', …' if len(self.fonts.missing) > 12 else ''})"
                         " are not in the fonts installed on the computer that made this PDF; "
                         "they are printed as [U+XXXX] codes. The HTML report shows them as "
                         "they are.")
        self.story[notes_at:notes_at] = [self.p(self.t(n), self.s.failed_detail) for n in notes]
        return self.story

    def status(self) -> None:
        data = self.data
        if data.verified:
            files = data.seal.counts["files"]
            text = ("VERIFIED: the bundle is intact. Every signature, the custody log and "
                    + ("the 1 file" if files == 1 else f"all {files} files")
                    + " were checked when this report was made.")
            if data.trusted is None:
                text += " Check the sealer's fingerprint below with the person who made it."
            cells = [[self.p(self.t(text), self.s.banner)]]
            cells += [[self.p(self.t(w), self.s.small)] for w in data.notices]
            border, background = GREEN, colors.HexColor("#e7f4ea")
        else:
            cells = [[self.p(self.t("VERIFICATION FAILED"), self.s.failed)],
                     [self.p(self.t("This bundle is damaged or was changed. Do not rely on this "
                                    "report."), self.s.failed_detail)]]
            cells += [[self.p(self.t("• " + problem), self.s.failed_detail)]
                      for problem in data.problems or ["the payload could not be decrypted"]]
            border, background = RED, colors.HexColor("#fde8eb")
        table = LongTable(cells, colWidths=[WIDTH])
        table.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 2 if data.verified else 4, border),
                                   ("BACKGROUND", (0, 0), (-1, -1), background),
                                   ("LEFTPADDING", (0, 0), (-1, -1), 8),
                                   ("TOPPADDING", (0, 0), (-1, -1), 4),
                                   ("BOTTOMPADDING", (0, 0), (-1, -1), 4)]))
        self.story += [table, Spacer(0, 6)]

    def summary(self) -> None:
        data, seal = self.data, self.data.seal
        counts = seal.counts
        self.h2("Summary")
        self.facts([
            ("Case", seal.case_id),
            ("Incident", (data.incident.type_label + self.unsealed_suffix()) if data.incident
             else "no incident record"),
            ("Evidence", f"{plural(counts['files'], 'file')} ({size_text(seal.total_bytes)} "
                         f"bytes), {plural(counts['directories'], 'folder')}"
                         + model.shown_in_previews(data)
                         + ("" if seal.complete else " — capture incomplete (see remarks)")),
            ("Money lost", data.money_lost),
            *([("Live state", data.live)] if data.live else []),
            *[("Device image", line) for line in data.devices],
            *[("Web page", line) for line in data.web_pages],
            *[("Remote host", line) for line in data.remote],
            ("Captured by", data.case.get("examiner", "") or "—"),
            ("Capture", f"{model.utc_human(seal.capture_started)} to {model.utc_human(seal.created)}"),
            ("Sealed by key", self.mono(seal.signer.fingerprint)),
            ("Root hash", self.mono(seal.manifest_root)),
            ("Payload SHA-256", self.mono(data.payload_sha256)),
        ])

    def unsealed_suffix(self) -> str:
        data = self.data
        return "" if data.incident is None or data.incident_sealed else f" — {model.NOT_SEALED}"

    def unsealed_note(self) -> None:
        """Under each section that shows an incident record failing verification."""
        if self.unsealed_suffix():
            self.story.append(self.p(self.t(
                f"{model.NOT_SEALED}: the incident record in this bundle is not the one its signed "
                "manifest names. What it says here may have been changed after sealing."),
                self.s.failed_detail))

    def incident(self) -> None:
        data = self.data
        self.h2("1. What happened" + self.unsealed_suffix())
        self.unsealed_note()
        if data.incident_problem:
            self.story.append(self.p(self.t("The incident record could not be read: "
                                            + data.incident_problem), self.s.failed_detail))
        record = data.incident
        if record is None:
            self.story.append(self.p(self.t("The bundle holds no incident record. Notes added "
                                            "later, if any, are in the timeline below."),
                                     self.s.muted))
            return

        def moment(m: Moment | None) -> str:
            return human_time(m) if m else "—"

        self.facts([("Type of incident", record.type_label),
                    ("Started", moment(record.started)), ("Noticed", moment(record.noticed)),
                    ("Accounts affected", ", ".join(record.affected_accounts) or "—"),
                    ("Devices affected", ", ".join(record.affected_devices) or "—")])
        if record.description:
            self.story.append(self.p(self.t("In the words of the person who made the bundle"),
                                     self.s.h3))
            for paragraph in record.description.split("\n\n"):
                self.story.append(self.p(self.t(paragraph, newlines=True)))
                self.story.append(Spacer(0, 3))

    def timeline(self) -> None:
        self.h2("2. Timeline")
        self.unsealed_note()
        self.story.append(self.p(self.t(model.TIMELINE_NOTE), self.s.muted))
        rows = [[self.cell(r.when), self.cell(r.what, True), self.p(self.t(r.source),
                                                                     self.s.muted)]
                for r in self.data.timeline]
        self.table(["When", "What happened", "Recorded in"], rows,
                   [38 * mm, 92 * mm, WIDTH - 130 * mm])

    def losses(self) -> None:
        data = self.data
        self.h2("3. Financial losses")
        if not data.losses:
            self.story.append(self.p(self.t("None recorded.")))
            return
        self.unsealed_note()
        rows = [[self.number(r.amount_text), self.cell(r.loss.currency),
                 self.cell(r.loss.date or ""), self.cell(r.loss.institution),
                 self.cell(r.loss.reference), self.cell(r.loss.description),
                 self.p(self.t(r.source), self.s.muted)] for r in data.losses]
        self.table(["Amount", "Currency", "Date", "Bank or service", "Reference", "Details",
                    "Recorded in"], rows,
                   [18 * mm, 18 * mm, 19 * mm, 30 * mm, 34 * mm, 25 * mm, WIDTH - 144 * mm])
        totals = [[self.p(self.t(f"Total {c}"), self.s.head), self.p(self.t(v), self.s.head)]
                  for c, v in data.totals.items()]
        table = LongTable(totals, colWidths=[36 * mm, 30 * mm], hAlign="LEFT")
        table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, LINE),
                                   ("BACKGROUND", (0, 0), (0, -1), SOFT),
                                   ("ALIGN", (1, 0), (1, -1), "RIGHT")]))
        self.story.append(KeepTogether([table]))

    def identifiers(self) -> None:
        self.h2("4. Suspicious contacts and references")
        if not self.data.identifiers:
            self.story.append(self.p(self.t("None recorded.")))
            return
        self.unsealed_note()
        rows = [[self.cell(IDENTIFIER_KINDS.get(r.identifier.kind, r.identifier.kind)),
                 self.mono(r.identifier.value), self.cell(r.identifier.note),
                 self.p(self.t(r.source), self.s.muted)] for r in self.data.identifiers]
        self.table(["Kind", "Value (exactly as entered)", "Note", "Recorded in"], rows,
                   [28 * mm, 62 * mm, 40 * mm, WIDTH - 130 * mm])

    def previews(self) -> None:
        data = self.data
        self.h2("5. Pictures and e-mails in the evidence")
        if not data.verified:
            self.story.append(self.p(self.t(
                "Not shown: the bundle did not pass verification, so nothing in it is shown as "
                "evidence."), self.s.failed_detail))
            return
        pictures, emails = model.previewed(data)
        if not data.previews.gathered:
            self.story.append(self.p(self.t(model.NOT_GATHERED)))
            return
        if not (pictures or emails):
            self.story.append(self.p(self.t(
                "No pictures or e-mails were found among the evidence files.")))
            return
        self.story.append(self.p(self.t(model.PREVIEWS_NOTE), self.s.muted))
        self.story.append(Spacer(0, 3))
        cells: list[Any] = [self.figure(item.number, item.path, picture) for item, picture in pictures]
        if cells:
            rows = [cells[i:i + PICTURES_PER_ROW] for i in range(0, len(cells), PICTURES_PER_ROW)]
            rows[-1] += [""] * (PICTURES_PER_ROW - len(rows[-1]))
            grid = LongTable(rows, colWidths=[WIDTH / PICTURES_PER_ROW] * PICTURES_PER_ROW)
            grid.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "BOTTOM"),
                                      ("ALIGN", (0, 0), (-1, -1), "CENTER"),
                                      ("LEFTPADDING", (0, 0), (-1, -1), 4),
                                      ("RIGHTPADDING", (0, 0), (-1, -1), 4),
                                      ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
            self.story.append(grid)
        left_out = data.previews.pictures_left_out
        if left_out:
            self.story.append(self.p(self.t(
                f"{plural(left_out, 'more picture')} not shown here (at most {MAX_PICTURES}); "
                "the evidence list names every file.")))
        if emails:
            self.story.append(self.p(self.t("E-mails"), self.s.h3))
            email_rows = [[self.number(item.number), self.path_and_hash(item.path, e.sha256),
                     self.cell(e.sender),
                     self.cell(e.to), self.cell(e.date),
                     self.p(self.t(e.subject or "—") + (
                         f'<br/><font color="#5b5b5b">{self.t(e.problem)}</font>'
                         if e.problem else ""), self.s.cell_break)] for item, e in emails]
            self.table(["#", "File and SHA-256", "From", "To", "Date", "Subject"], email_rows,
                       [8 * mm, 40 * mm, 34 * mm, 34 * mm, 28 * mm, WIDTH - 144 * mm])
        if data.previews.emails_left_out:
            self.story.append(self.p(self.t(model.emails_left_out_text(data.previews))))
        if emails or data.previews.headers:
            self.full_headers()

    def path_and_hash(self, path: str, sha256: str) -> Paragraph:
        return self.p(self.t(path) + f'<br/><font name="{self.fonts.mono}" size="5.5" '
                      f'color="#5b5b5b">{self.t(sha256)}</font>', self.s.cell_break)

    def full_headers(self) -> None:
        """Each chosen e-mail's whole header block, as stored (and how to choose them)."""
        shown = model.full_headers(self.data)
        intro, notes = model.full_headers_texts(self.data)
        if shown:
            self.story.append(self.p(self.t("Full headers"), self.s.h3))
            self.story.append(self.p(self.t(intro), self.s.muted))
            for item, headers in shown:
                self.header_block(item.number, item.path, headers)
        for note in notes:
            self.story.append(self.p(self.t(note)))

    def header_block(self, number: int, path: str, headers: FullHeaders) -> None:
        self.story.append(self.p(f"<b>#{number}</b> {self.t(path)}<br/>"
                                 f'<font color="#5b5b5b">SHA-256 </font><font name='
                                 f'"{self.fonts.mono}">{self.t(headers.sha256)}</font>',
                                 self.s.cell_break))
        # A Paragraph per header line: long lines wrap anywhere; the leading blanks of a
        # folded line are kept (a Paragraph would collapse them).
        for line in headers.text.split("\n"):
            expanded = line.expandtabs(8)
            rest = expanded.lstrip(" ")
            indent = "&nbsp;" * (len(expanded) - len(rest))
            self.story.append(self.p(indent + self.t(rest), self.s.header_line))
        if headers.cut:
            self.story.append(self.p(self.t(model.header_cut_text()), self.s.muted))
        self.story.append(Spacer(0, 4))

    def figure(self, number: int, path: str, picture: Picture) -> list[Flowable]:
        """A picture scaled into its box, with its number, name and size under it."""
        box_width, box_height = PICTURE_BOX
        caption_text = (f"<b>#{number}</b> {self.t(path)}<br/>"
                        f'<font color="#5b5b5b">'
                        + self.t((f"{picture.width} × {picture.height} pixels, "
                                  if picture.width else "")
                                 + f"{picture.format}, {size_text(picture.size)} bytes")
                        + "</font>")
        caption = self.p(caption_text, ParagraphStyle("caption", self.s.small,
                                                      alignment=TA_CENTER))
        if picture.thumbnail is None:
            return [self.p(self.t(picture.problem), ParagraphStyle(
                "nopreview", self.s.muted, alignment=TA_CENTER, backColor=SOFT,
                borderPadding=6)), Spacer(0, 8), caption]
        shown = _scaled(picture.thumbnail, box_width, box_height - 14 * mm)
        if shown is None:  # ReportLab refused what Pillow wrote: say so rather than fail
            return [self.p(self.t("no preview"), self.s.muted), caption]
        framed = LongTable([[shown]], colWidths=[shown.drawWidth + 1],
                           rowHeights=[shown.drawHeight + 1])
        framed.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 0.5, LINE),
                                    ("LEFTPADDING", (0, 0), (-1, -1), 0.5),
                                    ("RIGHTPADDING", (0, 0), (-1, -1), 0.5),
                                    ("TOPPADDING", (0, 0), (-1, -1), 0.5),
                                    ("BOTTOMPADDING", (0, 0), (-1, -1), 0.5)]))
        return [framed, Spacer(0, 2), caption]

    def items(self) -> None:
        data = self.data
        self.h2("6. Evidence items")
        self.story.append(self.p(self.t(
            f"{len(data.items)} items recorded in the signed manifest, in capture order. Files "
            "are identified by their SHA-256; times are UTC. Folders, links and special files "
            "are recorded but hold no content."), self.s.muted))
        if not data.decrypted:
            self.story.append(self.p(self.t("The payload was not decrypted, so the item list is "
                                            "not available."), self.s.failed_detail))
            return
        hash_size = _fitting_size(self.fonts.mono, ITEM_HASH_SIZE, ITEM_WIDTHS[1] - 6)
        rows = [self.item_row(item, hash_size) for item in data.items]
        # Two lines per item for ordinary paths (the hash on one line under the path, the two
        # times in one cell): 30 and more items a page instead of 13.
        self.table(["#", "Path and SHA-256", "Type", "Size (bytes)",
                    "Modified (UTC)\nCreated (UTC)"], rows, ITEM_WIDTHS, right=(0, 3),
                   extra=[("FONTSIZE", (4, 1), (4, -1), 7), ("LEADING", (4, 1), (4, -1), 9),
                          ("FONTNAME", (0, 0), (-1, 0), self.fonts.bold)])

    def item_row(self, item: model.EvidenceItem, hash_size: float) -> list[Any]:
        path = self.t(item.path)
        if item.sha256:
            path += (f'<br/><font name="{self.fonts.mono}" size="{hash_size:.2f}">'
                     f"{self.t(item.sha256)}</font>")
        if item.remarks:  # rare: errors, changes during capture, link targets
            path += f'<br/><font size="6.5" color="#b00020">{self.t(item.remarks)}</font>'
        kind = self.t(item.kind) + (f'<br/><font size="6.5">{self.t(item.mime)}</font>'
                                    if item.mime else "")
        # Plain strings where nothing needs wrapping: ReportLab lays them out much faster.
        times = f"{item.modified[:19] or '—'}\n{item.created[:19] or '—'}"
        return [str(item.number), self.p(path, self.s.item), self.p(kind, self.s.item),
                size_text(item.size), times]

    def custody(self) -> None:
        self.h2("7. Chain of custody")
        self.story.append(self.p(self.t("Every event is signed by the key shown and linked to "
                                        "the one before it."), self.s.muted))
        rows = []
        for e in self.data.custody:
            by = self.t(self.data.actor_label(e)) + f'<br/><font name="{self.fonts.mono}" size="6.5">' \
                f"{self.t(e.actor.fingerprint)}</font>"
            note = self.t(e.note, True) + "".join(
                f'<br/><font color="#5b5b5b">{self.t(k)}: {self.t(v)}</font>'
                for k, v in sorted(e.details.items()))
            rows.append([self.number(e.sequence),
                         self.cell(model.utc_human(e.time)[:19], wrap_anywhere=False),
                         self.cell(e.action), self.p(by, self.s.cell_break),
                         self.cell(counterparty_text(e)),
                         self.p(note or "—", self.s.cell_break)])
        self.table(["#", "Time (UTC)", "Action", "By (key fingerprint)", "To / from",
                    "Note and details"], rows,
                   [8 * mm, 20 * mm, 20 * mm, 46 * mm, 28 * mm, WIDTH - 122 * mm])
        self.timestamps()

    def timestamps(self) -> None:
        self.story.append(self.p(self.t("Trusted timestamps"), self.s.h3))
        if not self.data.timestamps:
            self.story.append(self.p(self.t("None: the time of the seal is the signer's own "
                                            "clock.")))
            return
        self.story.append(self.p(self.t("A time stamping authority (RFC 3161) countersigned the "
                                        "seal's signature: the sealed evidence existed at that "
                                        "time."), self.s.muted))
        rows = [[self.cell(model.utc_human(t.time)[:19], wrap_anywhere=False), self.cell(t.authority),
                 self.mono(t.policy), self.mono(t.serial), self.cell(t.checked)]
                for t in self.data.timestamps]
        self.table(["Time (UTC)", "Authority", "Policy", "Serial", "Checked"], rows,
                   [22 * mm, 40 * mm, 28 * mm, 34 * mm, WIDTH - 124 * mm])

    def signers(self) -> None:
        self.h2("8. Who signed")
        rows = [[self.cell(s.name), self.cell(s.role), self.mono(s.fingerprint),
                 self.mono(s.public_key)] for s in self.data.signers]
        self.table(["Name", "Role", "Key fingerprint", "Public key"], rows,
                   [32 * mm, 32 * mm, 50 * mm, WIDTH - 114 * mm])

    def hashes(self) -> None:
        data, seal, capture = self.data, self.data.seal, self.data.capture
        self.h2("9. Hashes and technical details")
        self.facts([
            ("Root hash (identifies the evidence)", self.mono(seal.manifest_root)),
            ("Payload SHA-256 now", self.mono(data.payload_sha256)),
            ("Payload SHA-256 when sealed", self.mono(seal.payload_sha256)),
            ("Manifest SHA-256", self.mono(seal.manifest_sha256)),
            ("Incident record SHA-256", self.mono(data.incident_sha256 or "")),
            ("Newest custody event SHA-256", self.mono(data.newest_event_sha256)),
            ("Sealer's key", self.mono(seal.signer.public_key)),
            ("Captured on", f"{capture.get('host', '')} ({capture.get('os', '')})"
             if capture else "—"),
            ("Clock", str(capture.get("clock_source", "")) or "—"),
            ("Made with", f"evidencekit {seal.tool_version}, bundle format "
                          f"{seal.format_version}"),
        ])
        if data.warnings:  # what the banner said in plain words, as the checks put it
            self.story.append(self.p(self.t("Notes from the checks"), self.s.h3))
            self.story += [self.p(self.t("• " + warning), self.s.cell_break)
                           for warning in data.warnings]

    def verify(self) -> None:
        self.h2("10. How to verify this bundle")
        self.story.append(self.p(self.t(model.VERIFY_INTRO)))
        self.story.append(Spacer(0, 4))
        self.steps(model.how_to_verify(self.data))
        self.story.append(self.p(self.t("Without evidencekit"), self.s.h3))
        self.story.append(self.p(self.t(model.BY_HAND_INTRO)))
        self.story.append(Spacer(0, 3))
        self.steps(model.verify_by_hand(self.data), closing=model.by_hand_more(self.data))

    def steps(self, steps: list[tuple[str, str]], closing: str = "") -> None:
        for n, (text, command) in enumerate(steps, 1):
            block: list[Flowable] = [self.p(self.t(f"{n}. {text}"))]
            if command:
                block.append(self.p(self.t(command), ParagraphStyle(
                    "cmd", self.s.mono, backColor=SOFT, leftIndent=10, borderPadding=2,
                    spaceBefore=2)))
            block.append(Spacer(0, 4))
            if n == len(steps) and closing:
                # The closing sentences stay with the last step: alone on a last page they would
                # look like a page holding only the footer.
                block += [self.p(self.t(closing)), Spacer(0, 6), self.p(self.t(
                    f"This report summarises the bundle {self.data.bundle_name}; the bundle "
                    "itself is the evidence."), self.s.muted)]
            self.story.append(KeepTogether(block))


def _scaled(jpeg: bytes, width: float, height: float) -> Image | None:
    """*jpeg* as a flowable as large as fits in *width* × *height*, its proportions kept."""
    try:
        shown = Image(io.BytesIO(jpeg))
        scale = min(width / shown.imageWidth, height / shown.imageHeight)
    except Exception:  # a thumbnail is ours (Pillow wrote it), but a report never fails on one
        return None
    shown.drawWidth, shown.drawHeight = shown.imageWidth * scale, shown.imageHeight * scale
    return shown


def _canvas_class(data: model.ReportData, fonts: Fonts) -> type[Canvas]:
    footer = visible(f"Case {data.seal.case_id} · evidence report · sealer "
                     f"{model.short_fingerprint(data.seal.signer.fingerprint)}")
    if not fonts.unicode:
        footer = footer.encode("cp1252", "replace").decode("cp1252")

    class NumberedCanvas(Canvas):
        """Two passes: pages are kept until the end so each can say 'Page n of N'."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # ReportLab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()  # type: ignore[attr-defined]

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self._decorate(total)
                super().showPage()
            super().save()

        def _decorate(self, total: int) -> None:
            self.saveState()
            self.setFont(fonts.regular, 7.5)
            self.setFillColor(MUTED)
            self.drawString(15 * mm, 9 * mm, footer[:110])
            self.drawRightString(A4[0] - 15 * mm, 9 * mm,
                                 f"Page {self.getPageNumber()} of {total}")
            if not data.verified:
                self.setFillColor(RED)
                self.setFont(fonts.bold, 9)
                self.drawCentredString(A4[0] / 2, A4[1] - 9 * mm,
                                       "VERIFICATION FAILED — do not rely on this report")
            self.restoreState()

    return NumberedCanvas


def render_pdf(data: model.ReportData, output: IO[bytes]) -> Fonts:
    """Write the PDF to the binary file *output*; return the fonts used."""
    fonts = load_fonts()
    story = _Builder(data, fonts).build()
    document = SimpleDocTemplate(
        output, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=14 * mm,
        bottomMargin=16 * mm, title=visible(data.title), author="evidencekit",
        subject=f"Evidence report for case {visible(data.seal.case_id)}",
        creator=f"evidencekit {data.tool_version}")
    document.build(story, canvasmaker=_canvas_class(data, fonts))
    return fonts
