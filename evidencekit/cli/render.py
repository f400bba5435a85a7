"""Everything the CLI prints: rich text for people, one JSON document for scripts."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.markup import escape as escape_markup
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from evidencekit.errors import EvidenceKitError, ExitCode
from evidencekit.progress import NoProgress
from evidencekit.text import human_size, plural, visible

if TYPE_CHECKING:
    from evidencekit.against import Comparison
    from evidencekit.capture import CaptureResult
    from evidencekit.crypto import age
    from evidencekit.custody.receipt import ReceiptCheck
    from evidencekit.findings import Finding, Findings
    from evidencekit.format.documents import CustodyEvent, Seal
    from evidencekit.progress import Progress as ProgressSink
    from evidencekit.verify import Report

# The modules that read a bundle (verify, custody, addenda, protection) are imported inside the
# functions that show one: the commands calling those have imported them already, and the others
# (and the error message any command may print) need not pay for them at start-up (issue 27).

JSON_SCHEMA_VERSION = 1
FINDINGS_SHOWN = 20  # per check on a terminal; --json lists every finding
NO_KEY_HINT = ("the key or passphrase did not match: try again (check for typing mistakes), or "
               "ask the person who made the bundle which key or passphrase it was made for")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(document: dict[str, Any]) -> None:
    document = {"schema_version": JSON_SCHEMA_VERSION, **document}
    data = (json_text(document) + "\n").encode("utf-8")
    # Always UTF-8 (RFC 8259), whatever the locale: a script run under LANG=C or with
    # PYTHONIOENCODING=latin-1 would otherwise get an encoding error instead of its document.
    sys.stdout.flush()
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:  # a text-only stream (tests' capturing runners): it takes str
        sys.stdout.write(data.decode("utf-8"))
    else:
        binary.write(data)
        binary.flush()


# A name that is not valid UTF-8 reaches Python as str with each undecodable byte as a lone
# surrogate (U+DC80-U+DCFF). Written out as it is, it would make the document invalid UTF-8, which
# a script's JSON parser refuses whole. Each such byte is written as the text \xNN instead (the
# bag's rule for names, FORMAT.md), any other lone surrogate as a JSON \uXXXX escape.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def json_text(document: Any) -> str:
    """*document* as pretty JSON that is always valid UTF-8 (see _LONE_SURROGATE)."""
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)
    return _LONE_SURROGATE.sub(_escaped_surrogate, text)


def _escaped_surrogate(match: re.Match[str]) -> str:
    code = ord(match.group())
    # inside a JSON string: "\\xff" is the four characters \xff once parsed
    return f"\\\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def waiting_for_writer(bundle: Path) -> Callable[[], None]:
    """What to say when another command is adding to the same bundle and this one waits."""
    def say() -> None:
        err.print(f"Another evidencekit command is adding to {escape(str(bundle))}; waiting for "
                  "it to finish (Ctrl-C to stop: nothing will have been changed)…")
    return say


def other_names_left(bundle: Path) -> Callable[[int], None]:
    """What to say when the bundle had hard links: they still name the bundle without the
    event (it was replaced by a copy that holds it, docs/decisions/atomic-publish.md)."""
    def say(count: int) -> None:
        names = "another name (a hard link)" if count == 1 else f"{count} other names (hard links)"
        err.print(f"[yellow]Note:[/] {escape(str(bundle))} had {names}: "
                  f"{'it still shows' if count == 1 else 'they still show'} the bundle without "
                  "this event. Copy the bundle there again if it should have it too.")
    return say


def error(exc: EvidenceKitError, command: str, as_json: bool) -> None:
    if as_json:
        emit_json({"command": command, "ok": False, "exit_code": exc.exit_code,
                   "error": {"kind": type(exc).__name__, "message": exc.message,
                             "hint": exc.hint}})
    err.print(f"[bold red]evidencekit: error:[/] {escape(exc.message)}")
    if exc.hint:
        err.print(f"[yellow]evidencekit: hint:[/] {escape(exc.hint)}")


def escape(text: str) -> str:
    """Text from outside (names, bundle contents, messages quoting them) as it may be printed.

    A name like ``"x\\n\\x1b[2K\\rVERIFIED: …"`` would otherwise print a forged line or move the
    cursor: control, invisible and direction-changing characters are shown as ``[U+001B]``,
    ``[LF]`` … (the same :func:`visible` as the reports), then rich markup is escaped. Only for
    people: JSON output stays byte-faithful (JSON escapes control characters itself).
    """
    return escape_markup(visible(text))


class BinarySpeedColumn(TransferSpeedColumn):
    """The transfer rate in the binary units of every other size shown (``12.5 MiB/s``)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("?", style="progress.data.speed")
        return Text(f"{human_size(int(speed))}/s", style="progress.data.speed")


class StatusColumn(ProgressColumn):
    """What went wrong so far, as a source said it (``2 bad sectors``); empty otherwise."""

    def render(self, task: Task) -> Text:
        return Text(str(task.fields.get("status", "")), style="yellow")


class RichProgress:
    """Progress bar with files, bytes, rate and ETA; only used on a terminal without --json."""

    wants_totals = True

    def __init__(self) -> None:
        self._progress = Progress(
            # binary units (KiB, MiB), as every size evidencekit prints: not rich's kB and MB
            TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
            TextColumn("{task.fields[files]}"), BinarySpeedColumn(), TimeRemainingColumn(),
            StatusColumn(),
            # 4 redraws a second look as live as rich's 10, and leave more of the CPU to the
            # capture: in a folder of small files every core is busy (issue 5, target 6)
            console=err, transient=True, refresh_per_second=4,
        )
        self._task: TaskID | None = None
        self._files = 0
        self._total_files: int | None = None

    def start(self, label: str, total_files: int | None, total_bytes: int | None) -> None:
        self._total_files = total_files
        self._progress.start()
        self._task = self._progress.add_task(label, total=total_bytes, files=self._files_text(),
                                             status="")

    def status(self, text: str) -> None:
        """A short note beside the bar (e.g. "2 bad sectors"), kept until the next one."""
        if self._task is not None:
            self._progress.update(self._task, status=text)

    def _files_text(self) -> str:
        if self._total_files is None:
            return plural(self._files, "file") if self._files else ""
        return f"{self._files:,}/{plural(self._total_files, 'file')}"

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        if self._task is None:
            return
        self._files += files
        self._progress.update(self._task, advance=nbytes, files=self._files_text())

    def finish(self) -> None:
        self._progress.stop()


def seal_json(seal: Seal) -> dict[str, Any]:
    return {"case_id": seal.case_id, "created": seal.created,
            "capture_started": seal.capture_started, "format_version": seal.format_version,
            "payload": {"size": seal.payload_size, "sha256": seal.payload_sha256},
            "payload_compression": seal.payload_compression,
            "manifest_root": seal.manifest_root, "counts": seal.counts,
            "total_bytes": seal.total_bytes, "complete": seal.complete,
            "signer": {"fingerprint": seal.signer.fingerprint,
                       "public_key": seal.signer.public_key},
            "tool_version": seal.tool_version}


def event_json(event: CustodyEvent) -> dict[str, Any]:
    from evidencekit.custody.events import event_summary

    return event_summary(event)


def capture_json(result: CaptureResult, exit_code: int) -> dict[str, Any]:
    return {"command": "capture", "ok": True, "exit_code": exit_code,
            "bundle": result.location or str(result.output), "seal_sha256": result.seal_sha256,
            "custody_head_sha256": result.event_sha256, "seal": seal_json(result.seal),
            "problems": [{"path": p.path, "problem": p.problem} for p in result.problems],
            "warnings": result.warnings}


def capture_text(result: CaptureResult, recipients: Sequence[age.Recipient],
                 endpoint: str = "") -> None:
    seal = result.seal
    counts = seal.counts
    out.print(f"[bold green]Sealed[/] {escape(result.location or str(result.output))}")
    out.print(f"  case            {escape(seal.case_id)}")
    out.print(f"  captured        {plural(counts['files'], 'file')} "
              f"({human_size(seal.total_bytes)}), {plural(counts['directories'], 'folder')}, "
              f"{plural(counts['symlinks'], 'symbolic link')}, "
              f"{plural(counts['special'], 'special file')}")
    out.print(f"  root hash       {seal.manifest_root}")
    out.print(f"  payload SHA-256 {seal.payload_sha256}")
    out.print(f"  signed by       {escape(seal.signer.fingerprint)}")
    for warning in result.warnings:
        err.print(f"[yellow]evidencekit: warning:[/] {escape(warning)}")
    from evidencekit.sources.files.selection import EXCLUDED, TOO_LARGE  # capture's only

    by_rule = [p for p in result.problems if p.problem.startswith((EXCLUDED, TOO_LARGE))]
    problems = [p for p in result.problems if p not in by_rule]
    if by_rule:
        err.print(f"{len(by_rule)} file(s) not read, by the profile's rules (each is listed in the "
                  "manifest as skipped, with the reason; --json lists them)")
    if problems:
        err.print(f"[yellow]{len(problems)} item(s) could not be captured completely "
                  "(recorded in the manifest):[/]")
        for problem in problems[:50]:
            err.print(f"  {escape(problem.path)}: {escape(problem.problem)}")
        if len(problems) > 50:
            err.print(f"  … and {len(problems) - 50} more (see --json)")
    out.print(escape(check_hint(result.location or str(result.output), recipients, endpoint)))


def check_hint(bundle: str, recipients: Sequence[age.Recipient], endpoint: str = "") -> str:
    """The closing line of a capture: the command that checks every file too, for a bundle
    opened by a passphrase as for one opened by a key. 'verify BUNDLE' alone checks the seal,
    signatures and custody, not the files (they are encrypted). A bundle in an S3-compatible
    store needs its *endpoint* (without it, verify asks AWS)."""
    from evidencekit.crypto.age import ScryptRecipient

    if endpoint:
        bundle = f"{bundle} --endpoint {endpoint}"

    if any(isinstance(r, ScryptRecipient) for r in recipients):
        return (f"Keep this bundle unchanged. Check it any time, every file too, with: "
                f"evidencekit verify -p {bundle} (without -p, only its seal, signatures and "
                "custody are checked)")
    return (f"Keep this bundle unchanged. Check it any time, every file too, with: "
            f"evidencekit verify -i KEYFILE {bundle} (KEYFILE: the private key of one of its "
            "recipients; without -i, only its seal, signatures and custody are checked)")


def report_json(report: Report, exit_code: int, command: str = "verify") -> dict[str, Any]:
    from evidencekit import addenda

    return {"command": command, "ok": report.ok and exit_code == ExitCode.OK,
            "exit_code": exit_code, **trust_json(report),
            "bundle": report.bundle,
            "seal": seal_json(report.seal) if report.seal else None,
            "signer": {"fingerprint": report.signer.fingerprint if report.signer else None,
                       "trusted": report.trusted},
            "decrypted": report.decrypted, "files_checked": report.files_checked,
            "no_matching_key": report.no_matching_key,
            "custody": [event_json(e) for e in report.events],
            "addenda": [addenda.summary(a) for a in report.addenda if a.document],
            "timestamps": [t.to_json() for t in report.timestamps],
            "findings": [f.to_json() for f in report.findings.items]}


def trust_json(report: Report) -> dict[str, Any]:
    """Who signed what, and whether their word counts (added to verify's and custody show's
    --json; common.schema.json#/$defs/report)."""
    return {"trusted_keys": sorted(report.trusted_keys) if report.trusted_keys is not None
            else None,
            "signers": report.signers(), "untrusted_entries": report.untrusted_entries}


def _how_to_open(report: Report) -> str:
    """What opens this bundle, as the option to give: its passphrase (-p) when one protects it,
    else its key (a bundle in a store is not opened again to tell)."""
    from evidencekit.protection import needs_passphrase, payload_protection

    if not report.bundle.startswith("s3://") and needs_passphrase(
            payload_protection(report.bundle)):
        return "give its passphrase with -p"
    return "give -i KEY"


def report_text(report: Report, tried: Sequence[age.Identity] | None = None,
                receipt: tuple[str, ReceiptCheck] | None = None) -> None:
    """The report for people; *tried*: the keys and passphrases given, when known, to say which
    were tried when none opens the bundle; *receipt*: the receipt file checked, and how."""
    seal = report.seal
    if seal is not None:
        out.print(f"Bundle   {escape(report.bundle)}")
        out.print(f"Case     {escape(seal.case_id)}  (sealed {escape(seal.created)})")
        trust = {None: "not checked against a trusted key (use --trusted-key)",
                 True: "[green]a key you trust[/]", False: "[red]NOT a key you trust[/]"}
        out.print(f"Signer   {escape(seal.signer.fingerprint)}: {trust[report.trusted]}")
        out.print(f"Evidence {plural(seal.counts['files'], 'file')}, "
                  f"{human_size(seal.total_bytes)}"
                  + ("" if seal.complete else " [yellow](capture was incomplete)[/]"))
    if receipt is not None:
        out.print(f"Receipt  {receipt_line(*receipt)}")
    if report.events:
        custody_table(report.events, report)
    addenda_text(report)
    timestamps_text(report)
    print_findings(report.findings.items)
    if report.no_matching_key:  # in plain words; the age message stays in --json
        from evidencekit.protection import protection_of, wrong_key, wrong_key_for

        advice = (wrong_key(protection_of(report.recipients, report.bundle)) if tried is None
                  else wrong_key_for(report.bundle, tried, report.recipients))
        err.print(f"[bold red]Cannot open the bundle:[/] {escape(advice.summary)}")
        for detail in advice.details:
            err.print(f"  {escape(detail)}")
        err.print(f"[yellow]evidencekit: hint:[/] {escape(advice.hint)}")
    if report.ok:
        what = (("its 1 file decrypted and matches its hash" if report.files_checked == 1 else
                 f"all {report.files_checked} files decrypted and match their hashes")
                if report.decrypted else "seal, signatures, custody log and payload hash are "
                f"intact ({_how_to_open(report)} to check every file too)")
        untrusted = report.untrusted_entries
        if untrusted:
            out.print(f"[bold yellow]VERIFIED, BUT NOT ALL SIGNERS ARE TRUSTED[/]: {what}; "
                      f"{plural(len(untrusted), 'entry')} (custody events, notes, encrypted "
                      "additions) signed by keys you did not list with --trusted-key: shown by "
                      "their key, not counted as anyone's word (exit code 6)")
            return
        out.print(f"[bold green]VERIFIED[/]: {what}")
        if report.trusted_keys is None and len(report.signers()) > 1:
            out.print("Names in quotes are what each signer claims; the key column says who "
                      "signed: compare it, or give --trusted-key.")
    elif not report.findings.errors:  # only the key failed: say so, not "0 problem(s)"
        out.print("[bold red]VERIFICATION FAILED[/]: the bundle could not be opened, so its "
                  "files were not checked")
    else:
        out.print(f"[bold red]VERIFICATION FAILED[/]: {len(report.findings.errors)} problem(s)"
                  + (", and the bundle could not be opened" if report.no_matching_key else ""))


def receipt_line(name: str, check: ReceiptCheck) -> str:
    """How the bundle compares with the receipt *name*, in words."""
    if check.matches is None:
        return f"{escape(name)} not checked: the bundle could not be read"
    if not check.matches:
        return f"[red]does NOT match[/] {escape(name)} (the differences are listed below)"
    since = ("none was added since" if not check.events_since else
             f"{check.events_since:,} {'was' if check.events_since == 1 else 'were'} added since")
    return (f"[green]matches[/] {escape(name)}: the same bundle; the receipt's newest custody "
            f"event is #{check.newest_event}, and {since}")


def print_findings(findings: list[Finding], shown: int = FINDINGS_SHOWN) -> None:
    """The first *shown* findings of each check, then how many more: a bundle of 40,000 unlisted
    members must not print 40,000 lines on a terminal (--json keeps them all)."""
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.check] = counts.get(finding.check, 0) + 1
        if counts[finding.check] <= shown:
            print_finding(finding)
    for check, count in counts.items():
        if count > shown:
            err.print(f"  … and {count - shown} more {check} problems; --json lists them all")


def print_finding(finding: Finding) -> None:
    colour = "red" if finding.severity == "error" else "yellow"
    # "[bag]" unescaped would be taken for a rich style and vanish.
    line = f"[{colour}]{finding.severity}[/] {escape(f'[{finding.check}]')} " \
           f"{escape(finding.where)}: {escape(finding.problem)}"
    if finding.expected is not None or finding.found is not None:
        line += f" (expected {escape(str(finding.expected))}, found {escape(str(finding.found))})"
    err.print(line)


def custody_table(events: list[CustodyEvent], report: Report | None = None) -> None:
    """The custody log. With *report* (verified), who signed is said with the key's standing;
    without (inspect: nothing checked), every name is shown as the claim it is."""
    from evidencekit import addenda
    from evidencekit.custody.events import counterparty_text
    from evidencekit.verify import UNKNOWN, UNTRUSTED, signer_label

    table = Table(title="Chain of custody", show_lines=False)
    for column in ("#", "time (UTC)", "action", "signed by", "key", "to/from", "note"):
        table.add_column(column, overflow="fold")
    for e in events:
        # Every cell comes from the bundle (signed by whoever made it): shown, not interpreted.
        standing = report.standing(e.actor.fingerprint) if report is not None else UNKNOWN
        by = signer_label(standing, e.actor_name[:200])
        table.add_row(str(e.sequence), escape(e.time[:19] + "Z"), escape(e.action),
                      ("[bold red]" if standing == UNTRUSTED else "[default]") + escape(by)
                      + "[/]", escape(e.actor.fingerprint[:19] + "…"),
                      escape(counterparty_text(e)), escape(e.note[:80])
                      + (f" {ADDENDUM_MARK}" if addenda.DETAIL in e.details else ""))
    out.print(table)


ADDENDUM_MARK = "(+ an encrypted addition, readable with the key)"


def addenda_text(report: Report) -> None:
    """The encrypted additions to the incident record that verify decrypted (addenda)."""
    from evidencekit import addenda
    from evidencekit.verify import signer_label

    shown = [a for a in report.addenda if a.document]
    if not shown:
        return
    out.print(f"Encrypted additions to the incident record ({len(shown)}; inside the payload, "
              "each signed by its author; not the public custody notes):")
    for addendum in shown:
        assert addendum.document is not None
        standing = report.standing(addendum.document.author.fingerprint)
        out.print("  " + addenda.describe(addendum, escape,
                                          signer_label(standing,
                                                       addendum.document.author_name[:200])))


def timestamps_text(report: Report) -> None:
    """Each trusted timestamp beside the signer's claimed seal time, and how far it was checked."""
    if not report.timestamps or report.seal is None:
        return
    out.print(f"Trusted timestamps (the signer's clock said {escape(report.seal.created)}):")
    for stamp in report.timestamps:
        if stamp.problem is not None:
            standing = "[red]does not verify[/] (see below)"
        elif stamp.signature_valid is False:
            standing = "[yellow]its signature does not check: it proves nothing[/] (see below)"
        elif stamp.trusted:
            standing = "[green]checked against your --tsa-ca root[/]"
        else:
            standing = "not checked against a trusted root (give --tsa-ca ROOT.pem)"
        out.print(f"  {escape(stamp.time)}  by {escape(stamp.tsa or 'an unnamed TSA')}, "
                  f"policy {escape(stamp.policy)}: {standing}")


def exit_code_for(report: Report) -> int:
    if report.findings.errors:
        return ExitCode.EVIDENCE_PROBLEM
    if report.no_matching_key:
        return ExitCode.NO_MATCHING_KEY
    if report.untrusted_entries:  # asked with --trusted-key, and not everyone is
        return ExitCode.UNTRUSTED_SIGNERS
    return ExitCode.OK


def progress_for(as_json: bool, mode: str = "auto") -> ProgressSink:
    """What ``--progress MODE`` asks for. auto: a bar on a terminal; nothing for scripts, pipes
    and --json. json: JSON Lines events on stderr (docs/schemas/progress.schema.json)."""
    if mode == "json":
        return JsonLinesProgress()
    if mode == "bar":
        return RichProgress()
    # sys.stderr is None when the process was started with stderr closed: not a terminal.
    if mode == "none" or as_json or sys.stderr is None or not sys.stderr.isatty():
        return NoProgress()
    return RichProgress()


class JsonLinesProgress:
    """Progress as JSON Lines on stderr, for scripts: one ``start``, ``advance`` events at most
    every *interval* seconds (10 a second by default), one ``finish`` with the final counts.

    Each line: ``{"event", "label", "files", "bytes", "total_files", "total_bytes", "time"}``;
    ``time`` is seconds since ``start``; totals are null when unknown; ``status`` (e.g. "2 bad
    sectors") once a source has said one, in every line after.
    """

    wants_totals = True

    def __init__(self, stream: TextIO | None = None, interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._interval = interval
        self._clock = clock
        self._label = ""
        self._files = self._bytes = 0
        self._totals: tuple[int | None, int | None] = (None, None)
        self._started = self._last = 0.0
        self._status: str | None = None

    def status(self, text: str) -> None:
        self._status = text
        self._last = self._clock()
        self._emit("advance")

    def start(self, label: str, total_files: int | None, total_bytes: int | None) -> None:
        self._label, self._totals = label, (total_files, total_bytes)
        self._files = self._bytes = 0
        self._started = self._last = self._clock()
        self._emit("start")

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        self._files += files
        self._bytes += nbytes
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            self._emit("advance")

    def finish(self) -> None:
        self._emit("finish")

    def _emit(self, event: str) -> None:
        line = {"event": event, "label": self._label, "files": self._files,
                "bytes": self._bytes, "total_files": self._totals[0],
                "total_bytes": self._totals[1],
                "time": round(self._clock() - self._started, 3)}
        if self._status is not None:
            line["status"] = self._status
        stream = self._stream or sys.stderr
        stream.write(json.dumps(line, ensure_ascii=False) + "\n")
        stream.flush()


def against_text(compared: Comparison | None, findings: Findings) -> None:
    """What ``verify --against`` found, after the bundle's own report."""
    if compared is None:
        for finding in findings.items:
            out.print(f"[red]NOT COMPARED[/]: {escape(finding.problem)}")
        return
    differing = compared.differing
    total = len(compared.windows)
    if not differing and compared.image_size == compared.target_size \
            and compared.stopped is None:
        out.print(f"[green]SAME[/]: {escape(compared.target)} matches the image "
                  f"{escape(compared.image)} in all {total} hash windows "
                  f"({human_size(compared.image_size)})")
        return
    out.print(f"[red]DIFFERENT[/]: {escape(compared.target)} differs from the image "
              f"{escape(compared.image)} in {len(differing)} of {total} hash windows"
              + ("" if compared.image_size == compared.target_size else
                 f"; it holds {compared.target_size} bytes, the image {compared.image_size}"))
    if compared.stopped is not None:
        out.print(f"  [red]{escape(compared.target)} stopped answering[/] while it was read: "
                  f"{escape(compared.stopped)}; what was not read counts as unreadable now")
    for window in differing[:20]:
        unread = f" ({window.unread_now} bytes unreadable now)" if window.unread_now else ""
        if window.unread_at_capture:
            unread += (f" ({window.unread_at_capture} bytes were unreadable at capture, stored "
                       "as zeros)")
        out.print(f"  bytes {window.offset}–{window.offset + window.size - 1}{unread}")
    if len(differing) > 20:
        out.print(f"  … and {len(differing) - 20} more (--json lists them all)")
