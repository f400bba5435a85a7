"""The report as one self-contained HTML file: inline CSS, no scripts, no external resources.

A Content-Security-Policy allows nothing but that one style sheet (by its hash) and pictures
written into the file itself (data: URIs of the previews, re-encoded JPEGs), so even a name that
slipped through escaping could load or run nothing.

Readable on a phone (tables turn into cards on narrow screens) and on paper (A4, header rows
repeated on every page, rows never split, page numbers where the browser supports them). Every
piece of text goes through :func:`esc`: file names and notes are hostile input.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable, Sequence

from evidencekit.custody.events import counterparty_text
from evidencekit.report import model
from evidencekit.report.previews import MAX_PICTURES, FullHeaders, Picture
from evidencekit.text import plural, size_text, visible

ITEMS_PER_TABLE = 500  # long lists are split into numbered parts, each with its own heading

CSS = """
:root{--ink:#1b1b1b;--muted:#5b5b5b;--line:#cfd4da;--soft:#f3f5f7;--ok:#1b6e20;--bad:#b00020}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{font:15px/1.45 -apple-system,"Segoe UI",Roboto,"DejaVu Sans","Noto Sans",Arial,sans-serif;
color:var(--ink);margin:0 auto;max-width:1100px;padding:16px}
header h1{font-size:1.55em;margin:0 0 4px}
h2{font-size:1.2em;border-bottom:2px solid var(--ink);padding-bottom:2px;margin:1.6em 0 .5em;
break-after:avoid;page-break-after:avoid}
h3{font-size:1em;margin:1.2em 0 .3em;break-after:avoid}
p{margin:.4em 0}
.muted{color:var(--muted)}
.banner{padding:10px 14px;border-radius:6px;margin:12px 0;font-weight:bold}
.banner.ok{background:#e7f4ea;border:2px solid var(--ok);color:var(--ok)}
.banner.failed{background:#fde8eb;border:4px solid var(--bad);color:var(--bad);font-size:1.5em;
text-align:center}
.banner.failed ul{font-size:.6em;text-align:left;font-weight:normal;margin:.5em 0 0}
.failed-mark{display:none}
.unsealed{color:var(--bad);font-weight:bold;border-left:4px solid var(--bad);padding-left:8px}
table{border-collapse:collapse;width:100%;margin:.4em 0 .8em}
th,td{border:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600}
td{overflow-wrap:anywhere}
.num{text-align:right;white-space:nowrap}
code,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:.85em;
word-break:break-all}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:.4em 0}
dl.facts dt{font-weight:600}
dl.facts dd{margin:0;overflow-wrap:anywhere}
pre.headers{white-space:pre-wrap;overflow-wrap:anywhere;background:var(--soft);padding:8px 10px;
border-radius:4px;font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:.8em}
.narrative{white-space:pre-wrap;background:var(--soft);padding:8px 10px;border-radius:4px}
nav.parts a{margin-right:.8em}
.totals{width:auto}
.pictures{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:12px;
margin:.4em 0 .8em}
.pictures figure{margin:0;border:1px solid var(--line);border-radius:4px;padding:6px;
break-inside:avoid;page-break-inside:avoid}
.pictures img{display:block;margin:0 auto;max-width:100%;height:auto;max-height:420px;
object-fit:contain}
.pictures figcaption{font-size:.85em;margin-top:4px;overflow-wrap:anywhere}
.pictures .none{padding:2em .5em;text-align:center;background:var(--soft);color:var(--muted)}
ol.verify li{margin-bottom:.5em}
ol.verify code{display:block;background:var(--soft);padding:4px 6px;margin-top:2px;
word-break:break-all}
footer{margin-top:2em;border-top:1px solid var(--line);padding-top:6px;font-size:.85em;
color:var(--muted)}
@media (max-width:700px){
 body{padding:10px;font-size:14px}
 table.cards,table.cards tbody,table.cards tr,table.cards td{display:block;width:100%}
 table.cards thead{display:none}
 table.cards tr{border:1px solid var(--line);border-radius:6px;margin:0 0 8px;padding:4px 0}
 table.cards td{border:0;padding:2px 8px}
 table.cards td::before{content:attr(data-label) ": ";font-weight:600}
 table.cards td.num{text-align:left;white-space:normal}
 dl.facts{grid-template-columns:1fr}
 dl.facts dd{margin-bottom:6px}
}
@page{size:A4;margin:14mm 12mm 16mm
;@bottom-right{content:"Page " counter(page) " of " counter(pages);font-size:8pt}}
@media print{
 body{max-width:none;padding:0;font-size:9.5pt}
 nav.parts{display:none}
 thead{display:table-header-group}
 tr,.banner,dl.facts,ol.verify li{break-inside:avoid;page-break-inside:avoid}
 a{color:inherit;text-decoration:none}
 .pictures{grid-template-columns:repeat(3,1fr)}
 .pictures img{max-height:85mm}
 .failed-mark{display:block;position:fixed;top:0;left:0;right:0;text-align:center;
 color:var(--bad);font-weight:bold;font-size:9pt;border-bottom:2px solid var(--bad)}
 body.failed{padding-top:6mm}
}
"""


# Nothing may load or run: the one style sheet is allowed by its hash, pictures only from data:.
CSP = ("default-src 'none'; img-src data:; style-src 'sha256-"
       + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
       + "'; base-uri 'none'; form-action 'none'")


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "cards",
           numeric: Sequence[int] = ()) -> str:
    """*rows* hold already-escaped HTML; headers are escaped here (and used as card labels)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td data-label="{esc(h)}"{" class=num" if i in numeric else ""}>{cell}</td>'
            for i, (h, cell) in enumerate(zip(headers, row, strict=True)))
        body.append(f"<tr>{cells}</tr>")
    return (f'<table class="{cls}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _facts(pairs: Iterable[tuple[str, str]]) -> str:
    """A definition list; values are already-escaped HTML."""
    return '<dl class="facts">' + "".join(
        f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def _mono(value: str) -> str:
    return f"<code>{esc(value)}</code>" if value else '<span class="muted">—</span>'


def render_html(data: model.ReportData) -> str:
    parts = [_head(data), _status(data), _summary(data), _incident(data), _timeline(data),
             _losses(data), _identifiers(data), _previews(data), _items(data), _custody(data),
             _signers(data),
             _hashes(data), _verify(data), _footer(data)]
    return "".join(parts) + "</body></html>\n"


def _head(data: model.ReportData) -> str:
    body_class = "" if data.verified else ' class="failed"'
    mark = "" if data.verified else (
        '<div class="failed-mark">VERIFICATION FAILED — do not rely on this report</div>')
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="generator" content="evidencekit {esc(data.tool_version)}">'
            f"<title>{esc(visible(data.title))}</title><style>{CSS}</style></head>"
            f"<body{body_class}>{mark}<header><h1>Evidence report</h1>"
            f'<p class="muted">Case <b>{esc(visible(data.seal.case_id))}</b> · bundle '
            f"{esc(visible(data.bundle_name))} · report made {esc(model.utc_human(data.generated))} "
            f"by evidencekit {esc(data.tool_version)}</p></header>")


def _status(data: model.ReportData) -> str:
    if data.verified:
        trust = {True: " The sealer's key is one the reader named as trusted.",
                 False: "", None: " Check the sealer's fingerprint below with the person who "
                 "made the bundle."}[data.trusted]
        warnings = "".join(f"<li>{esc(w)}</li>" for w in data.notices)
        return (f'<div class="banner ok" id="status">VERIFIED: the bundle is intact. Every '
                f"signature, the custody log and {esc(_all_files(data))} were "
                f"checked when this report was made.{esc(trust)}"
                + (f"<ul>{warnings}</ul>" if warnings else "") + "</div>")
    problems = "".join(f"<li>{esc(p)}</li>" for p in data.problems) or \
        "<li>the payload could not be decrypted and checked</li>"
    return ('<div class="banner failed" id="status">VERIFICATION FAILED<br>'
            "<span>This bundle is damaged or was changed. Do not rely on this report.</span>"
            f"<ul>{problems}</ul></div>")


def _summary(data: model.ReportData) -> str:
    seal = data.seal
    record = data.incident
    counts = seal.counts
    pairs = [
        ("Case", esc(visible(seal.case_id))),
        ("Incident", (esc(record.type_label) + _unsealed_mark(data, " — ")) if record else
         '<span class="muted">no incident record</span>'),
        ("Evidence", esc(f"{plural(counts['files'], 'file')} ({size_text(seal.total_bytes)} "
                         f"bytes), {plural(counts['directories'], 'folder')}"
                         + model.shown_in_previews(data))
         + ("" if seal.complete else " — <b>capture incomplete</b> (see remarks)")),
        ("Money lost", esc(data.money_lost)),
        *([("Live state", esc(data.live))] if data.live else []),
        *[("Device image", esc(line)) for line in data.devices],
        *[("Web page", esc(line)) for line in data.web_pages],
        *[("Remote host", esc(line)) for line in data.remote],
        ("Captured by", esc(visible(data.case.get("examiner", ""))) or "—"),
        ("Capture", esc(f"{model.utc_human(seal.capture_started)} to {model.utc_human(seal.created)}")),
        ("Sealed by key", _mono(seal.signer.fingerprint)),
        ("Root hash", _mono(seal.manifest_root)),
        ("Payload SHA-256", _mono(data.payload_sha256)),
    ]
    return "<section><h2>Summary</h2>" + _facts(pairs) + "</section>"


def _all_files(data: model.ReportData) -> str:
    files = data.seal.counts["files"]
    return "the 1 file" if files == 1 else f"all {files} files"


def _unsealed_mark(data: model.ReportData, before: str = "") -> str:
    """The warning for parts shown from an incident record that fails verification."""
    if data.incident is None or data.incident_sealed:
        return ""
    return f'{before}<span class="unsealed">{esc(model.NOT_SEALED)}</span>'


def _unsealed_note(data: model.ReportData) -> str:
    if data.incident is None or data.incident_sealed:
        return ""
    return (f'<p class="unsealed">{esc(model.NOT_SEALED)}: the incident record in this bundle is not '
            "the one its signed manifest names. What it says here may have been changed after "
            "sealing.</p>")


def _incident(data: model.ReportData) -> str:
    out = ["<section><h2>1. What happened" + _unsealed_mark(data, " — ") + "</h2>",
           _unsealed_note(data)]
    record = data.incident
    if data.incident_problem:
        out.append(f"<p><b>The incident record could not be read:</b> "
                   f"{esc(visible(data.incident_problem))}</p>")
    if record is None:
        out.append('<p class="muted">The bundle holds no incident record. Notes added later, if '
                   "any, are in the timeline below.</p></section>")
        return "".join(out)
    out.append(_facts([
        ("Type of incident", esc(record.type_label)),
        ("Started", esc(_moment(record.started))),
        ("Noticed", esc(_moment(record.noticed))),
        ("Accounts affected", esc(", ".join(visible(a) for a in record.affected_accounts))
         or "—"),
        ("Devices affected", esc(", ".join(visible(d) for d in record.affected_devices)) or "—"),
    ]))
    if record.description:
        out.append("<h3>In the words of the person who made the bundle</h3>"
                   f'<div class="narrative">{esc(visible(record.description, True))}</div>')
    out.append("</section>")
    return "".join(out)


def _moment(moment: object) -> str:
    from evidencekit.incident import Moment, human_time

    return human_time(moment) if isinstance(moment, Moment) else "—"


def _timeline(data: model.ReportData) -> str:
    rows = [(esc(r.when), esc(visible(r.what, True)).replace("\n", "<br>"),
             f'<span class="muted">{esc(visible(r.source))}</span>') for r in data.timeline]
    return (f"<section><h2>2. Timeline</h2>{_unsealed_note(data)}<p class=muted>"
            f"{esc(model.TIMELINE_NOTE)}</p>"
            + _table(["When", "What happened", "Recorded in"], rows) + "</section>")


def _losses(data: model.ReportData) -> str:
    if not data.losses:
        return "<section><h2>3. Financial losses</h2><p>None recorded.</p></section>"
    rows = [(esc(r.amount_text), esc(r.loss.currency), esc(r.loss.date or "—"),
             esc(visible(r.loss.institution)) or "—", esc(visible(r.loss.reference)) or "—",
             esc(visible(r.loss.description)),
             f'<span class="muted">{esc(visible(r.source))}</span>') for r in data.losses]
    totals = "".join(f"<tr><th>Total {esc(c)}</th><td class=num>{esc(v)}</td></tr>"
                     for c, v in data.totals.items())
    return ("<section><h2>3. Financial losses</h2>" + _unsealed_note(data)
            + _table(["Amount", "Currency", "Date", "Bank or service", "Reference", "Details",
                      "Recorded in"], rows, numeric=(0,))
            + f'<table class="totals"><tbody>{totals}</tbody></table>'
            "</section>")


def _identifiers(data: model.ReportData) -> str:
    from evidencekit.incident import IDENTIFIER_KINDS

    if not data.identifiers:
        return ("<section><h2>4. Suspicious contacts and references</h2><p>None recorded.</p>"
                "</section>")
    rows = [(esc(IDENTIFIER_KINDS.get(r.identifier.kind, r.identifier.kind)),
             f"<code>{esc(visible(r.identifier.value))}</code>",
             esc(visible(r.identifier.note)), f'<span class="muted">{esc(visible(r.source))}'
             "</span>") for r in data.identifiers]
    return ("<section><h2>4. Suspicious contacts and references</h2>" + _unsealed_note(data)
            + "<p class=muted>Exactly as entered. Web addresses are shown as text, never as links.</p>"
            + _table(["Kind", "Value", "Note", "Recorded in"], rows) + "</section>")


def _previews(data: model.ReportData) -> str:
    out = ['<section id="previews"><h2>5. Pictures and e-mails in the evidence</h2>']
    if not data.verified:
        out.append("<p><b>Not shown: the bundle did not pass verification, so nothing in it is "
                   "shown as evidence.</b></p></section>")
        return "".join(out)
    pictures, emails = model.previewed(data)
    found = data.previews
    if not found.gathered:
        out.append(f"<p>{esc(model.NOT_GATHERED)}</p></section>")
        return "".join(out)
    if not (pictures or emails):
        out.append("<p>No pictures or e-mails were found among the evidence files.</p></section>")
        return "".join(out)
    out.append(f"<p class=muted>{esc(model.PREVIEWS_NOTE)}</p>")
    if pictures:
        out.append('<div class="pictures">')
        for item, picture in pictures:
            out.append(_figure(item.number, item.path, picture))
        out.append("</div>")
    if found.pictures_left_out:
        out.append(f"<p>{esc(plural(found.pictures_left_out, 'more picture'))} not shown here "
                   f"(at most {MAX_PICTURES}); the evidence list names every file.</p>")
    if emails:
        rows = [(str(item.number), esc(item.path) + f'<br><span class="mono muted">'
                 f"{esc(e.sha256)}</span>", esc(visible(e.sender)) or "—",
                 esc(visible(e.to)) or "—", esc(visible(e.date)) or "—",
                 esc(visible(e.subject)) or "—"
                 + (f'<br><span class="muted">{esc(visible(e.problem))}</span>'
                    if e.problem else "")) for item, e in emails]
        out.append("<h3>E-mails</h3>" + _table(["#", "File and SHA-256", "From", "To", "Date",
                                                  "Subject"], rows, numeric=(0,)))
    if found.emails_left_out:
        out.append(f"<p>{esc(model.emails_left_out_text(found))}</p>")
    if emails or found.headers:
        out.append(_full_headers(data))
    out.append("</section>")
    return "".join(out)


def _full_headers(data: model.ReportData) -> str:
    """Each chosen e-mail's whole header block, as stored (and how to choose them)."""
    shown = model.full_headers(data)
    intro, notes = model.full_headers_texts(data)
    out = []
    if shown:
        out.append(f'<h3 id="headers">Full headers</h3><p class=muted>{esc(intro)}</p>')
        out += [_header_block(item.number, item.path, headers) for item, headers in shown]
    out += [f"<p>{esc(note)}</p>" for note in notes]
    return "".join(out)


def _header_block(number: int, path: str, headers: FullHeaders) -> str:
    lines = [esc(visible(line.expandtabs(8))) for line in headers.text.split("\n")]
    cut = f"<p class=muted>{esc(model.header_cut_text())}</p>" if headers.cut else ""
    return (f"<h4>#{number} {esc(path)}</h4><p class=muted>SHA-256 <span class=mono>"
            f"{esc(headers.sha256)}</span></p><pre class=headers>{chr(10).join(lines)}</pre>"
            + cut)


def _figure(number: int, path: str, picture: Picture) -> str:
    size = f"{picture.width} × {picture.height} pixels, " if picture.width else ""
    caption = (f"<figcaption><b>#{number}</b> {esc(path)}<br><span class=muted>{esc(size)}"
               f"{esc(picture.format)}, {esc(size_text(picture.size))} bytes</span></figcaption>")
    if picture.thumbnail is None:
        return (f'<figure><div class="none">{esc(picture.problem)}</div>{caption}</figure>')
    uri = "data:image/jpeg;base64," + base64.b64encode(picture.thumbnail).decode("ascii")
    return (f'<figure><img src="{uri}" alt="Picture #{number}: {esc(path)}">'
            f"{caption}</figure>")


def _items(data: model.ReportData) -> str:
    total = len(data.items)
    out = ['<section id="items"><h2>6. Evidence items</h2>',
           f"<p>{total} items recorded in the signed manifest, in capture order. Files are "
           "identified by their SHA-256; times are UTC. Folders, links and special files are "
           "recorded but hold no content.</p>"]
    if not data.decrypted:
        out.append("<p><b>The payload was not decrypted, so the item list is not available."
                   "</b></p></section>")
        return "".join(out)
    chunks = [data.items[i:i + ITEMS_PER_TABLE] for i in range(0, total, ITEMS_PER_TABLE)]
    if len(chunks) > 1:
        links = " ".join(f'<a href="#items-{n}">{c[0].number}–{c[-1].number}</a>'
                         for n, c in enumerate(chunks, 1))
        out.append(f'<nav class="parts">Parts: {links}</nav>')
    for n, chunk in enumerate(chunks, 1):
        if len(chunks) > 1:
            out.append(f'<h3 id="items-{n}">Items {chunk[0].number}–{chunk[-1].number} of '
                       f"{total}</h3>")
        rows = [(str(i.number), f"{esc(i.path)}" + (f"<br><code>{esc(i.sha256)}</code>"
                                                     if i.sha256 else ""),
                 esc(i.kind + (f" · {i.mime}" if i.mime else "")), esc(size_text(i.size)),
                 esc(i.modified), esc(i.created) or '<span class="muted">—</span>',
                 esc(i.remarks)) for i in chunk]
        out.append(_table(["#", "Path and SHA-256", "Type", "Size (bytes)", "Modified",
                           "Created", "Remarks"], rows, numeric=(0, 3)))
    out.append("</section>")
    return "".join(out)


def _custody(data: model.ReportData) -> str:
    rows = [(str(e.sequence), esc(model.utc_human(e.time)), esc(e.action),
             esc(visible(data.actor_label(e))) + f"<br><code>{esc(e.actor.fingerprint)}</code>",
             esc(visible(counterparty_text(e))) or "—", esc(visible(e.note, True)).replace("\n", "<br>")
             + _details(e.details)) for e in data.custody]
    return ('<section id="custody"><h2>7. Chain of custody</h2><p class=muted>'
            "Every event is signed by the key shown and linked to the one before it.</p>"
            + _table(["#", "Time", "Action", "By (key fingerprint)", "To / from",
                      "Note and details"], rows, numeric=(0,)) + _timestamps(data)
            + "</section>")


def _timestamps(data: model.ReportData) -> str:
    if not data.timestamps:
        return ('<h3 id="timestamps">Trusted timestamps</h3><p>None: the time of the seal is '
                "the signer's own clock.</p>")
    rows = [(esc(model.utc_human(t.time)), esc(visible(t.authority)), f"<code>{esc(t.policy)}</code>",
             f"<code>{esc(t.serial)}</code>", esc(t.checked)) for t in data.timestamps]
    return ('<h3 id="timestamps">Trusted timestamps</h3><p class=muted>A time stamping '
            "authority (RFC 3161) countersigned the seal's signature: the sealed evidence "
            "existed at that time.</p>"
            + _table(["Time (UTC)", "Authority", "Policy", "Serial", "Checked"], rows))


def _details(details: dict[str, str]) -> str:
    if not details:
        return ""
    items = "".join(f"<br><span class=muted>{esc(visible(k))}: {esc(visible(v))}</span>"
                    for k, v in sorted(details.items()))
    return items


def _signers(data: model.ReportData) -> str:
    rows = [(esc(visible(s.name)) or "—", esc(s.role), f"<code>{esc(s.fingerprint)}</code>",
             f"<code>{esc(s.public_key)}</code>") for s in data.signers]
    return ("<section><h2>8. Who signed</h2>"
            + _table(["Name", "Role", "Key fingerprint", "Public key"], rows) + "</section>")


def _hashes(data: model.ReportData) -> str:
    seal = data.seal
    capture = data.capture
    pairs = [
        ("Root hash (identifies the evidence)", _mono(seal.manifest_root)),
        ("Payload SHA-256 now", _mono(data.payload_sha256)),
        ("Payload SHA-256 when sealed", _mono(seal.payload_sha256)),
        ("Manifest SHA-256", _mono(seal.manifest_sha256)),
        ("Incident record SHA-256", _mono(data.incident_sha256 or "")),
        ("Newest custody event SHA-256", _mono(data.newest_event_sha256)),
        ("Sealer's key", _mono(seal.signer.public_key)),
        ("Captured on", esc(visible(f"{capture.get('host', '')} ({capture.get('os', '')})"))
         if capture else "—"),
        ("Clock", esc(visible(str(capture.get("clock_source", "")))) or "—"),
        ("Made with", esc(f"evidencekit {seal.tool_version}, bundle format "
                          f"{seal.format_version}")),
    ]
    notes = "".join(f"<li>{esc(w)}</li>" for w in data.warnings)
    return ("<section><h2>9. Hashes and technical details</h2>" + _facts(pairs)
            + (f'<h3 id="check-notes">Notes from the checks</h3><ul>{notes}</ul>' if notes else "")
            + "</section>")


def _verify(data: model.ReportData) -> str:
    steps = "".join(f"<li>{esc(text)}" + (f"<code>{esc(visible(cmd))}</code>" if cmd else "")
                    + "</li>" for text, cmd in model.how_to_verify(data))
    by_hand = "".join(f"<li>{esc(text)}<code>{esc(visible(cmd))}</code></li>"
                      for text, cmd in model.verify_by_hand(data))
    return ('<section id="verify"><h2>10. How to verify this bundle</h2>'
            f"<p>{esc(model.VERIFY_INTRO)}</p>"
            f'<ol class="verify">{steps}</ol><h3>Without evidencekit</h3><p>{esc(model.BY_HAND_INTRO)}'
            f'</p><ol class="verify">{by_hand}</ol><p>{esc(visible(model.by_hand_more(data)))}</p></section>')


def _footer(data: model.ReportData) -> str:
    return (f"<footer>This report summarises the bundle {esc(visible(data.bundle_name))}; the "
            "bundle itself is the evidence. Made by evidencekit "
            f"{esc(data.tool_version)} at {esc(model.utc_human(data.generated))}. Sealer "
            f"{esc(model.short_fingerprint(data.seal.signer.fingerprint))}.</footer>")
