"""Coverage-guided fuzzing (atheris / libFuzzer) of the bundle reader. Not run in CI.

    pip install -e '.[fuzz]'
    taskset -c 0 python benchmarks/fuzz_bundle_reader.py --seconds 600

The seeds are real bundles made with evidencekit's own capture API: a small tree with odd names,
a symbolic link, a hard link (a second name of one file), an empty file and an incident record; a
single file; the single file with a custody event appended; the single file resealed with an
encrypted addendum (``addenda/000002.json``, made with ``custody.resealing.reseal`` as ``note --private``
makes it). The tree also holds an empty folder and a FIFO, and three more payload seeds are that
tree's plaintext with a header trick or a tree change (issue 19): a folder the manifest does not
list, an old-style member (type NUL) under a pax ``path``, a pax keyword evidencekit never
writes; so the canonical-header check (format/tarstream.py) and the comparison of the tar with
manifest.json (format/tree.py) are fuzzed from both sides. They are written into a work folder
(``--work``, default a new /tmp/ek-fuzz-*) with the keys they were made with. The first input
byte picks what the rest is:

0. a whole bundle file   → ``verify`` without a key (outer tar, seal, signatures, custody log,
                           payload hash)
1. a whole bundle file   → ``verify`` with the key (… and the age header, decryption, the inner
                           tar, the bag, the manifest and every file)
2. the payload plaintext → sealed, encrypted and signed into a valid-looking bundle, then
                           ``verify`` with the key (mutations reach the inner tar reader, which
                           the encryption keeps them from in mode 1)
3. the payload plaintext → the same, then ``extract``; nothing may appear outside its folder
4. a zstd stream         → sealed as the payload of a format version 4 bundle (the seal says
                           zstd), then ``verify`` with the key (mutations reach the bounded
                           decompressor, format/compression.py, and the tar reader behind it)

A capture of a disk image (a small sparse image file, ``capture --device``'s source) is a seed
too: a version 4 bundle for modes 0 and 1, its tar for 2 and 3, that tar compressed for 4.

Expected outcomes are a report (with or without findings) and the errors the CLI turns into exit
code 1 or 2 (``BundleError`` and the other ``EvidenceKitError`` of those codes). Anything else
(what the CLI reports as exit code 5, "internal error") is a crash: recorded with its traceback
and input under WORK/crashes/ (one per distinct exception and place) and fuzzing goes on. An input
taking more than ``--input-timeout`` seconds or ``--rss-limit-mb`` of memory is stopped by
libFuzzer (a ``timeout-*`` / ``oom-*`` artifact in WORK/crashes/), then fuzzing resumes with the
time left. The result (executions, duration, coverage edges, crashes) is written as JSON to
``--result`` (default benchmarks/results/fuzz-bundle-reader.json); results are recorded in
docs/hostile-input.md. Replay an input without libFuzzer: ``--replay WORK/crashes/FILE``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD_ENV = "EK_FUZZ_CHILD_WORK"  # set in the libFuzzer process: the work folder
MODES = ("verify-without-key", "verify-with-key", "payload-verify", "payload-extract",
         "zstd-payload-verify")
EXPECTED_EXIT_CODES = (1, 2)  # what the CLI maps BundleError / InputError / OutputError … to
STATUS_EVERY = 2.0  # seconds between two status files of the libFuzzer process


# ------------------------------------------------------------------------------- the targets


class Targets:
    """What one input is run through. Built after evidencekit was imported (instrumented in the
    libFuzzer process, plain for seeding and replay)."""

    def __init__(self, work: Path, scratch: Path) -> None:
        from evidencekit.crypto import age
        from evidencekit.crypto.keys import load_signing_key
        from tests.support import craft

        keys = work / "keys"
        identity = age.X25519Identity.from_string(
            (keys / "identity.txt").read_text().strip())
        signer = load_signing_key(keys / "signer")
        self.keys = craft.Keys(signer, identity, keys / "identity.txt", keys / "signer")
        # A passphrase too: a mutated stanza may ask for scrypt; a small cap keeps it fast.
        self.identities: list[age.Identity] = [identity,
                                               age.ScryptIdentity(b"fuzz", max_work_factor=12)]
        self.scratch = scratch
        self.bundle = scratch / "input.evidence"

    def run(self, raw: bytes) -> str:
        """Run one input; return its outcome ("ok", "findings", "refused"). Errors the CLI maps
        to exit 1 or 2 are "refused"; anything else propagates (a crash)."""
        from evidencekit.errors import EvidenceKitError

        if not raw:
            return "empty"
        mode = raw[0] % len(MODES)
        try:
            return self._run(mode, raw[1:])
        except EvidenceKitError as exc:
            if exc.exit_code not in EXPECTED_EXIT_CODES:
                raise
            return "refused"

    def _run(self, mode: int, data: bytes) -> str:
        from evidencekit.verify import verify

        if mode == 0:
            self.bundle.write_bytes(data)
            return _outcome(verify(self.bundle))
        if mode == 1:
            self.bundle.write_bytes(data)
            return _outcome(verify(self.bundle, self.identities))
        self._seal_payload(data, compressed=mode == 4)
        if mode in (2, 4):
            return _outcome(verify(self.bundle, self.identities))
        return self._extract()

    def _seal_payload(self, plaintext: bytes, compressed: bool = False) -> None:
        from tests.support import craft

        bag = craft.Bag(plaintext, "0" * 64, "0" * 64, dict.fromkeys(craft.COUNT_KEYS, 0), 0)
        outer = craft.Outer(seal_edit=craft.version_4) if compressed else None
        craft.write_bundle(self.bundle, self.keys, bag, outer)

    def _extract(self) -> str:
        from evidencekit.extract import extract

        work = self.scratch / "work"
        work.mkdir()
        try:
            result = extract(self.bundle, work / "out", self.identities)
            outside = sorted(os.listdir(self.scratch))
            if outside != ["input.evidence", "work"]:
                raise AssertionError(f"extract wrote outside its folder: {outside}")
            if not set(os.listdir(work)) <= {"out"}:
                raise AssertionError(f"extract wrote next to its folder: {os.listdir(work)}")
            return _outcome(result.report)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _outcome(report: Any) -> str:
    return "ok" if report.ok else "findings"


def _signature(exc: BaseException) -> str:
    """The exception's type and the innermost evidencekit line it came from."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/evidencekit/" in f.filename] or frames
    if not ours:
        return type(exc).__name__
    name = Path(ours[-1].filename)
    shown = name.relative_to(ROOT) if name.is_relative_to(ROOT) else name
    return f"{type(exc).__name__} at {shown}:{ours[-1].lineno}"


# ---------------------------------------------------------------- the libFuzzer process (child)


def child_main() -> None:
    import atheris

    work = Path(os.environ[CHILD_ENV])
    with atheris.instrument_imports(include=["evidencekit"]):
        import evidencekit.extract
        import evidencekit.verify  # noqa: F401
        import tests.support.craft  # noqa: F401
    base = Path("/dev/shm") if os.path.isdir("/dev/shm") else Path(tempfile.gettempdir())
    scratch = Path(tempfile.mkdtemp(prefix=f"ek-fuzz-{os.getpid()}-", dir=base))
    targets = Targets(work, scratch)
    crashes = work / "crashes"
    crashes.mkdir(exist_ok=True)
    status_file = work / f"status-{os.getpid()}.json"
    status: dict[str, Any] = {"executions": 0, "by_mode": {m: {} for m in MODES}, "crashes": {},
                              "accepted_altered": 0}
    # A whole bundle that verifies although it is not byte for byte a seed: not a crash, but
    # worth a look (an unsigned byte nobody checks?); a few are kept in WORK/accepted/.
    seed_hashes = set(json.loads((work / "keys" / "seeds.json").read_text()))
    accepted = work / "accepted"
    accepted.mkdir(exist_ok=True)
    last = [time.monotonic()]

    def test_one_input(raw: bytes) -> None:
        status["executions"] += 1
        mode = MODES[raw[0] % len(MODES)] if raw else "empty"
        try:
            outcome = targets.run(raw)
        except Exception as exc:  # a crash: recorded, and fuzzing goes on
            outcome = "crash"
            signature = _signature(exc)
            known = status["crashes"].setdefault(signature, {"count": 0, "input": None})
            known["count"] += 1
            if known["input"] is None:
                name = "unexpected-" + hashlib.sha1(signature.encode()).hexdigest()[:12]
                (crashes / f"{name}.bin").write_bytes(raw)
                (crashes / f"{name}.txt").write_text(
                    f"{signature}\nmode {mode}\n\n" + "".join(traceback.format_exception(exc)))
                known["input"] = str(crashes / f"{name}.bin")
                print(f"\n*** unexpected {signature} (input {known['input']})", file=sys.stderr,
                      flush=True)
        if outcome == "ok" and raw[0] % len(MODES) < 2:
            digest = hashlib.sha256(raw[1:]).hexdigest()
            if digest not in seed_hashes:
                status["accepted_altered"] += 1
                if len(os.listdir(accepted)) < 50:
                    (accepted / digest[:16]).write_bytes(raw)
        counts = status["by_mode"].setdefault(mode, {})
        counts[outcome] = counts.get(outcome, 0) + 1
        now = time.monotonic()
        if now - last[0] >= STATUS_EVERY:
            last[0] = now
            _write_json(status_file, status)

    atheris.Setup([sys.argv[0], *sys.argv[1:]], test_one_input)
    atheris.Fuzz()


def _write_json(path: Path, document: dict[str, Any]) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)


# ------------------------------------------------------------------------ seeds (real bundles)


class _Copy(io.BytesIO):
    """Every plaintext byte of a payload (payload.PlaintextCopy), for the seed corpus."""

    def tar_ended(self, offset: int) -> None:
        pass


def prepare_work(work: Path) -> int:
    """Keys and a seed corpus of real bundles (capture API); returns the number of seeds."""
    from evidencekit import addenda, incident
    from evidencekit.capture import CaptureRequest, CaseInfo, capture
    from evidencekit.crypto import age
    from evidencekit.crypto.keys import SigningKey
    from evidencekit.custody.events import EventRequest, append_event
    from evidencekit.custody.resealing import reseal
    from evidencekit.payload import PayloadReaders
    from evidencekit.sources.device import DeviceSource
    from evidencekit.verify import verify
    from tests.support import craft

    corpus = work / "corpus"
    keys = work / "keys"
    if (keys / "identity.txt").exists() and corpus.is_dir() and any(corpus.iterdir()):
        return len(list(corpus.iterdir()))
    keys.mkdir(parents=True, exist_ok=True)
    corpus.mkdir(exist_ok=True)
    identity = age.X25519Identity.generate()
    (keys / "identity.txt").write_text(f"{identity}\n")
    signer = SigningKey.generate("fuzz@evidencekit")
    signer.save(keys / "signer")

    seeds = work / "seed-sources"
    tree = seeds / "evidence"
    (tree / "mail" / "inbox").mkdir(parents=True)
    (tree / "mail" / "inbox" / "scam.eml").write_bytes(b"From: a@b\n\nPay now\n")
    (tree / "empty.txt").write_bytes(b"")
    (tree / "Überweisung €.txt").write_text("unicode name\n", encoding="utf-8")
    (tree / "line\nbreak.txt").write_text("newline in name\n")
    with open(os.fsencode(tree) + b"/latin1-\xe9t\xe9.txt", "wb") as f:
        f.write(b"not utf-8 name\n")
    os.symlink("mail/inbox/scam.eml", tree / "link-to-scam")
    (tree / "empty-folder").mkdir()  # a folder member with nothing under it
    os.mkfifo(tree / "fifo")  # in manifest.json only
    os.link(tree / "mail" / "inbox" / "scam.eml", tree / "scam-again.eml")  # a tar hard link
    (tree / "random.bin").write_bytes(os.urandom(3000))
    single = seeds / "single.txt"
    single.write_text("one small file\n")
    record = incident.load_yaml(
        "incident_type: online-fraud\ndescription: paid for a bike that never came\n"
        "started: 2026-11-14 10:30 +01:00\nlosses:\n  - amount: 450.00\n    currency: EUR\n"
        "identifiers:\n  - kind: email\n    value: seller@example.net\n").to_json()

    def made(name: str, source: Path, **extra: Any) -> Path:
        out = work / f"{name}.evidence"
        request = CaptureRequest([os.fsencode(source)], out, CaseInfo(f"FUZZ-{name}", "Fuzzer"),
                                 [identity.recipient()], signer, ["fuzz"], **extra)
        capture(request)
        return out

    bundles = {"tree": made("tree", tree, incident=record), "single": made("single", single)}
    handed_on = made("custody", single)
    append_event(handed_on, EventRequest("transferred", "Fuzzer", signer,
                                         note="handed over", counterparty="Det. Smith"))
    bundles["custody"] = handed_on
    # An encrypted addendum (FORMAT.md §4.6), added the way `note --private` adds it: a reseal.
    sealed = made("addendum-source", single)
    private = work / "addendum.evidence"
    note = incident.NoteContent(incident.note_details("loss", amount="35,50", currency="gbp",
                                                     institution="PayPal", reference="PP-1"),
                               incident.note_text("a second payment, to the same seller"))
    reseal(sealed, private, [identity], [identity.recipient()],
           EventRequest("resealed", "Fuzzer", signer, addenda.RESEAL_NOTE), addendum=note)
    sealed.unlink()
    bundles["addendum"] = private
    # Format version 4: a disk image's bundle, its payload compressed with zstd.
    image = seeds / "stick.img"
    with open(image, "wb") as f:
        f.truncate(1 << 20)
        f.write(b"\xeb\x3c\x90MSDOS5.0")
    compressed = work / "device.evidence"
    capture(CaptureRequest([], compressed, CaseInfo("FUZZ-device", "Fuzzer"),
                           [identity.recipient()], signer, ["fuzz"],
                           more_sources=(DeviceSource(str(image)),)))
    bundles["device"] = compressed
    (keys / "seeds.json").write_text(json.dumps(
        [hashlib.sha256(b.read_bytes()).hexdigest() for b in bundles.values()]))
    for name, bundle in bundles.items():
        data = bundle.read_bytes()
        plaintext = _Copy()
        report = verify(bundle, [identity], readers=PayloadReaders(plaintext=plaintext))
        assert report.ok, report.findings.items
        if name == "tree":  # the second name of scam.eml is a tar hard link, not a copy
            assert report.manifest is not None
            assert any("link_to" in e for e in report.manifest.entries()), "no hard link"
        if name == "addendum":
            assert len(report.addenda) == 1, report.addenda
        (corpus / f"{name}-no-key").write_bytes(b"\0" + data)
        (corpus / f"{name}-with-key").write_bytes(b"\1" + data)
        (corpus / f"{name}-payload-verify").write_bytes(b"\2" + plaintext.getvalue())
        (corpus / f"{name}-payload-extract").write_bytes(b"\3" + plaintext.getvalue())
        if name == "device":
            (corpus / f"{name}-zstd-payload-verify").write_bytes(b"\4" +
                                                                 craft.zstd(plaintext.getvalue()))
        if name == "tree":
            for trick, changed in header_tricks(plaintext.getvalue()).items():
                (corpus / f"tree-{trick}-payload-verify").write_bytes(b"\2" + changed)
        bundle.unlink()
    shutil.rmtree(seeds)
    return len(list(corpus.iterdir()))


def header_tricks(plaintext: bytes) -> dict[str, bytes]:
    """The plaintext with one member more before its end-of-archive blocks: a folder nobody
    listed, a type-NUL member whose pax ``path`` names a file, a file with an unknown pax
    keyword. Each must give findings (never a crash); they seed the fuzzer at those checks."""
    import tarfile

    from evidencekit.format.inner import PAX_HEADER_NAME, member_header
    from evidencekit.format.outer import BLOCK, padding
    from evidencekit.format.ustar import pax_record, ustar_block

    body, when = plaintext[: -2 * BLOCK], 1_780_000_000 * 10**9

    def pax(records: bytes, block: bytes) -> bytes:
        return (ustar_block(PAX_HEADER_NAME, tarfile.XHDTYPE, len(records), 0, 0, 0, 0)
                + records + padding(len(records)) + block)

    folder = member_header("bag/data/evidence/planted", tarfile.DIRTYPE, 0, 0o755, when, 0, 0)
    mtime = pax_record("mtime", f"{when // 10**9}.000000000")
    old_style = pax(mtime + pax_record("path", "bag/data/evidence/receipt.txt"),
                    ustar_block(b"bag/data/evidence/d/", tarfile.AREGTYPE, 0, 0o644,
                                 when // 10**9, 0, 0))
    keyword = pax(mtime + pax_record("SCHILY.xattr.user.x", "y"),
                  ustar_block(b"bag/data/evidence/x.txt", tarfile.REGTYPE, 2, 0o644,
                               when // 10**9, 0, 0)) + b"x\n" + padding(2)
    end = bytes(2 * BLOCK)
    return {"extra-folder": body + (folder or b"") + end, "old-style": body + old_style + end,
            "pax-keyword": body + keyword + end}


# ---------------------------------------------------------------------------- the supervisor

_STATS = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+) corp: (\d+)/")
_FINAL = re.compile(r"^stat::(\w+):\s+(\d+)")
_ERROR = re.compile(r"==\d+== ERROR: libFuzzer: (.*)")
_ARTIFACT = re.compile(r"Test unit written to (\S+)")


def parse_log(text: str) -> dict[str, Any]:
    found: dict[str, Any] = {"executions": 0, "cov": 0, "ft": 0, "corpus": 0, "final": {},
                             "errors": [], "artifacts": [], "done": False}
    for line in text.splitlines():
        if m := _STATS.match(line):
            found["executions"] = int(m[1])
            found["cov"], found["ft"], found["corpus"] = int(m[3]), int(m[4]), int(m[5])
            found["done"] = found["done"] or m[2] == "DONE"
        elif m := _FINAL.match(line):
            found["final"][m[1]] = int(m[2])
        elif m := _ERROR.search(line):
            found["errors"].append(m[1].strip())
        elif m := _ARTIFACT.search(line):
            found["artifacts"].append(m[1])
    if "number_of_executed_units" in found["final"]:
        found["executions"] = found["final"]["number_of_executed_units"]
    return found


def supervise(args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    import atheris  # noqa: F401  (fail here, with a clear message, if it is not installed)

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="ek-fuzz-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    seeds = prepare_work(work)
    crashes = work / "crashes"
    crashes.mkdir(exist_ok=True)
    print(f"work folder {work}: {seeds} seeds; fuzzing for {args.seconds} s", file=sys.stderr)
    started, wall = dt.datetime.now(dt.timezone.utc), time.monotonic()
    deadline = wall + args.seconds
    segments: list[dict[str, Any]] = []
    while (left := int(deadline - time.monotonic())) >= 5 and len(segments) < args.max_restarts:
        log = work / f"libfuzzer-{len(segments) + 1}.log"
        command = [sys.executable, str(Path(__file__).resolve()), f"-max_total_time={left}",
                   f"-timeout={args.input_timeout}", f"-rss_limit_mb={args.rss_limit_mb}",
                   "-print_final_stats=1", f"-artifact_prefix={crashes}/", *extra,
                   str(work / "corpus")]
        with open(log, "w") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=ROOT,
                                    env={**os.environ, CHILD_ENV: str(work)})
            try:
                code = proc.wait(timeout=left + 120)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        base = Path("/dev/shm") if os.path.isdir("/dev/shm") else Path(tempfile.gettempdir())
        for scratch in base.glob(f"ek-fuzz-{proc.pid}-*"):
            shutil.rmtree(scratch, ignore_errors=True)
        parsed = parse_log(log.read_text(errors="replace"))
        status_file = work / f"status-{proc.pid}.json"
        status = json.loads(status_file.read_text()) if status_file.exists() else {}
        segments.append({"exit_code": code, "log": str(log), **parsed, "status": status})
        if parsed["done"] and code == 0:
            break
        print(f"libFuzzer stopped (exit {code}: {parsed['errors'] or 'no error line'}); "
              "resuming with the time left", file=sys.stderr)
    return _result(args, work, seeds, started, time.monotonic() - wall, segments)


def _result(args: argparse.Namespace, work: Path, seeds: int, started: dt.datetime,
            duration: float, segments: list[dict[str, Any]]) -> dict[str, Any]:
    from importlib.metadata import version

    executions = sum(s["executions"] for s in segments)
    crashes: dict[str, dict[str, Any]] = {}
    by_mode: dict[str, dict[str, int]] = {}
    accepted = sum(s["status"].get("accepted_altered", 0) for s in segments)
    for segment in segments:
        status = segment["status"]
        for signature, seen in status.get("crashes", {}).items():
            entry = crashes.setdefault(signature, {"kind": "unexpected exception",
                                                   "signature": signature, "count": 0,
                                                   "input": seen["input"]})
            entry["count"] += seen["count"]
        for mode, counts in status.get("by_mode", {}).items():
            for outcome, n in counts.items():
                by_mode.setdefault(mode, {})[outcome] = by_mode.get(mode, {}).get(outcome, 0) + n
        for n, error in enumerate(segment["errors"]):
            artifact = segment["artifacts"][n] if n < len(segment["artifacts"]) else None
            crashes[f"libFuzzer {error}"] = {"kind": "libFuzzer", "signature": error, "count": 1,
                                             "input": artifact}
    return {
        "tool": "benchmarks/fuzz_bundle_reader.py",
        "when": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "atheris": version("atheris"), "python": platform.python_version(),
        "cpus_allowed": len(os.sched_getaffinity(0)), "machine_cpus": os.cpu_count(),
        "seconds_requested": args.seconds, "duration_seconds": round(duration, 1),
        "executions": executions,
        "executions_per_second": round(executions / duration, 1) if duration else None,
        "coverage_edges": max((s["cov"] for s in segments), default=None),
        "features": max((s["ft"] for s in segments), default=None),
        "corpus_entries": segments[-1]["corpus"] if segments else None, "seeds": seeds,
        "peak_rss_mb": max((s["final"].get("peak_rss_mb", 0) for s in segments), default=None),
        "slowest_input_seconds": max((s["final"].get("slowest_unit_time_sec", 0)
                                      for s in segments), default=None),
        "libfuzzer_runs": len(segments),
        "outcomes_by_mode": by_mode,  # sampled every few seconds: a little short of executions
        # whole bundles that verified ok without being a seed (WORK/accepted/, up to 50 kept)
        "accepted_altered_bundles": accepted,
        "crashes": list(crashes.values()),
        "work": str(work),
        "libfuzzer_options": {"timeout": args.input_timeout, "rss_limit_mb": args.rss_limit_mb},
    }


def replay(paths: list[str]) -> int:
    work = Path(os.environ.get(CHILD_ENV) or Path(paths[0]).resolve().parents[1])
    scratch = Path(tempfile.mkdtemp(prefix="ek-fuzz-replay-"))
    try:
        targets = Targets(work, scratch)
        for path in paths:
            raw = Path(path).read_bytes()
            print(f"{path}: {targets.run(raw)}")  # a crash raises, with its traceback
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def main() -> None:
    if os.environ.get(CHILD_ENV) and sys.argv[1:2] != ["--replay"]:
        child_main()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Arguments after -- go to libFuzzer.")
    parser.add_argument("--seconds", type=int, default=600, help="how long to fuzz (600)")
    parser.add_argument("--work", help="work folder: keys, corpus, crashes, logs (reused)")
    parser.add_argument("--result", type=Path,
                        default=ROOT / "benchmarks" / "results" / "fuzz-bundle-reader.json")
    parser.add_argument("--input-timeout", type=int, default=10, help="seconds per input (10)")
    parser.add_argument("--rss-limit-mb", type=int, default=2048)
    parser.add_argument("--max-restarts", type=int, default=20,
                        help="libFuzzer runs at most (it stops at a timeout or out-of-memory)")
    parser.add_argument("--replay", nargs="+", metavar="INPUT",
                        help="run saved inputs once, without libFuzzer (WORK is their "
                        "folder's parent)")
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.replay:
        sys.exit(replay(args.replay))
    result = supervise(args, extra)
    args.result.parent.mkdir(parents=True, exist_ok=True)
    _write_json(args.result, result)
    print(json.dumps({k: result[k] for k in ("executions", "duration_seconds", "coverage_edges",
                                             "corpus_entries")}), file=sys.stderr)
    print(f"{len(result['crashes'])} crash(es); result in {args.result}", file=sys.stderr)
    with contextlib.suppress(Exception):
        shutil.rmtree(Path(result["work"]) / "seed-sources", ignore_errors=True)
    sys.exit(1 if result["crashes"] else 0)


if __name__ == "__main__":
    main()
