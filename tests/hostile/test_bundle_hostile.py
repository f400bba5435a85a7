"""Opening what strangers send: every crafted defect (tests/support/craft.py) through the real CLI.

For each bundle, ``verify --json`` and ``extract`` must exit 1 or 2 (4 when no key opens it) with
one-line messages, never a traceback or exit 5, within seconds, without writing anything outside the
output folder (the folder holding it is snapshotted before and after) and, for the cases that
declare huge sizes, under a 1 GiB address-space limit (so nothing is allocated in proportion to a
declared size). Truncations and bit flips at many offsets run in-process for speed, a sample of
them through the CLI too.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import socket
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from evidencekit.cli import render
from evidencekit.cli.render import exit_code_for
from evidencekit.crypto import age
from evidencekit.errors import EvidenceKitError, ExitCode, InputError
from evidencekit.extract import extract
from evidencekit.format.documents import Signer
from evidencekit.format.outer import BLOCK
from evidencekit.format.reader import open_bundle
from evidencekit.verify import verify
from tests.support import craft
from tests.support.hostile import (
    GIB,
    Bounded,
    alarm,
    assert_clean_failure,
    assert_terminal_safe,
    run_bounded,
    run_driver,
    run_measured,
    snapshot,
)

# No test here touches the real ~/.config or inherits a passphrase (tests/support/env.py).
pytestmark = pytest.mark.usefixtures("isolated_environment")

WORKERS = max(2, min(8, os.cpu_count() or 2))
CASES = {c.name: c for c in craft.CATALOGUE}


@dataclass
class Outcome:
    case: craft.Case
    bundle: Path
    verify: Bounded
    extract: Bounded
    output: Path
    work_before: dict[bytes, tuple[int, int, int]]
    work_after: dict[bytes, tuple[int, int, int]]
    bundles_before: dict[bytes, tuple[int, int, int]]
    bundles_after: dict[bytes, tuple[int, int, int]]


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, craft.Keys, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("crafted")
    keys = craft.Keys.create(folder / "keys")
    bundles = {c.name: c.build(folder, keys) for c in craft.CATALOGUE}
    (folder / craft.SENTINEL).write_text("must stay as it is\n")
    return folder, keys, bundles


@pytest.fixture(scope="module")
def outcomes(crafted: tuple[Path, craft.Keys, dict[str, Path]],
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Run verify and extract on every crafted bundle through the CLI's entry point.

    The command lines run in a few driver processes (tests/hostile/cli_driver.py), each under a
    1 GiB address-space limit and a per-command alarm: the same code as ``python -m evidencekit``
    without paying interpreter start-up a hundred and forty times.
    """
    folder, keys, bundles = crafted
    works = {c.name: tmp_path_factory.mktemp(f"work-{c.name}") for c in craft.CATALOGUE}
    for work in works.values():
        (work / craft.SENTINEL).write_text("must stay as it is\n")
    before = {name: snapshot(work) for name, work in works.items()}
    bundles_before = snapshot(folder)
    runs = []
    for case in craft.CATALOGUE:
        common = [str(bundles[case.name]), "--json", "-i", str(keys.identity_file)]
        runs.append({"id": f"verify {case.name}", "argv": ["verify", *common]})
        runs.append({"id": f"extract {case.name}",
                     "argv": ["extract", *common, "-o", str(works[case.name] / "out")]})
    results: dict[str, Bounded] = {}
    batches = [runs[i::WORKERS] for i in range(WORKERS)]
    scratch = tmp_path_factory.mktemp("driver")
    with ThreadPoolExecutor(WORKERS) as pool:
        for batch in pool.map(lambda b: run_driver(b, scratch, memory=GIB), batches):
            results.update(batch)
    bundles_after = snapshot(folder)
    return {c.name: Outcome(c, bundles[c.name], results[f"verify {c.name}"],
                            results[f"extract {c.name}"], works[c.name] / "out",
                            before[c.name], snapshot(works[c.name], skip={"out"}),
                            bundles_before, bundles_after)
            for c in craft.CATALOGUE}


@pytest.mark.parametrize("name", list(CASES))
def test_verify_and_extract_fail_cleanly(outcomes: dict[str, Outcome], name: str) -> None:
    outcome = outcomes[name]
    case = outcome.case
    for command, result in (("verify", outcome.verify), ("extract", outcome.extract)):
        if case.exit_codes == (0,):
            assert result.code == 0, result.stdout + result.stderr
            assert result.json()["findings"] == [], result.json()["findings"]
        else:
            assert_clean_failure(result, case.exit_codes)
            phrase = case.phrase_for(command)
            assert phrase, "an empty phrase matches any message"
            assert phrase in result.message().lower(), result.message()
        assert result.seconds < 30, f"took {result.seconds:.1f} s"
    # Nothing changed next to the output or next to the bundle (the sentinel files included)...
    work_after = {k: v for k, v in outcome.work_after.items() if k != b"."}
    work_before = {k: v for k, v in outcome.work_before.items() if k != b"."}
    assert work_after == work_before
    assert outcome.bundles_after == outcome.bundles_before
    # ... nothing was published unless everything verified, and no staging folder is left.
    leftovers = [p.name for p in outcome.output.parent.iterdir() if p.name.startswith(".out.")]
    assert leftovers == []
    if case.exit_codes == (0,):
        _assert_links_stay_inside(outcome.output)
    else:
        assert not outcome.output.exists()


def _assert_links_stay_inside(root: Path) -> None:
    inside = os.path.realpath(root)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                assert os.path.realpath(path).startswith(inside + os.sep), path


def test_no_file_named_escaped_anywhere(outcomes: dict[str, Outcome], tmp_path: Path) -> None:
    """Members and links named ``escaped-*`` try to land outside; none may exist anywhere."""
    escaping = ("escaped", "evidencekit-hostile", "renamed-")
    for root in {o.output.parent.parent for o in outcomes.values()}:
        for folder, dirs, files in os.walk(root):
            assert not [f for f in files + dirs if f.startswith(escaping)], folder
    for top in (Path("/"), Path("/tmp"), tmp_path.parent):
        assert not [p for p in os.listdir(top) if p.startswith(escaping)], top


def test_valid_crafted_bundle_extracts_with_its_link(outcomes: dict[str, Outcome]) -> None:
    """The control case: the harness builds bundles evidencekit accepts."""
    outcome = outcomes["valid"]
    assert os.readlink(outcome.output / "data" / "evidence" / "link") == "sub/deeper.txt"
    assert (outcome.output / "data" / "evidence" / "link").read_bytes() == b"x" * 2000


def test_escaping_links_are_listed_not_created(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["manifest-symlink-chain-escape"]
    skipped = outcome.extract.json()["skipped_links"]
    assert "data/evidence/a/l -> ../../../escaped-chain" in skipped
    assert "data/evidence/b -> a/a/a/../../../.." in skipped
    assert os.readlink(outcome.output / "data" / "evidence" / "a") == "."


def test_rename_never_replaces_a_verified_file(outcomes: dict[str, Outcome]) -> None:
    folder = outcomes["manifest-rename-swap"].output / "data" / "evidence"
    assert (folder / "x").read_bytes() == b"content of x\n"
    assert (folder / "y").read_bytes() == b"content of y\n"


# ------------------------------------------------------------------------ keys and passphrases


@pytest.fixture(scope="module")
def passphrase_bundle(crafted: tuple[Path, craft.Keys, dict[str, Path]]) -> Path:
    folder, keys, _ = crafted
    return craft.write_bundle(folder / "passphrase.evidence", keys, craft.build_bag(keys),
                              craft.Outer(recipients=[age.ScryptRecipient(b"right", 10)]))


def test_right_passphrase_opens(passphrase_bundle: Path) -> None:
    result = run_bounded("verify", passphrase_bundle, "--json",
                         env={"EVIDENCEKIT_PASSPHRASE": "right"})
    assert result.code == 0, result.stdout


@pytest.mark.parametrize("command", ["verify", "extract"])
def test_wrong_passphrase_is_exit_4_with_a_clear_message(passphrase_bundle: Path, tmp_path: Path,
                                                         command: str) -> None:
    extra = ["-o", tmp_path / "out"] if command == "extract" else []
    result = run_bounded(command, passphrase_bundle, "--json", *extra,
                         env={"EVIDENCEKIT_PASSPHRASE": "wrong"})
    assert_clean_failure(result, (ExitCode.NO_MATCHING_KEY,))
    assert "none of the 1 key(s) or passphrase(s) given opens" in result.message()
    assert not (tmp_path / "out").exists() and os.listdir(tmp_path) == []


@pytest.mark.parametrize("key", ["x25519", "ssh-ed25519", "passphrase-bundle-given-a-key"])
def test_wrong_key_is_exit_4_with_a_clear_message(crafted, passphrase_bundle: Path,
                                                  tmp_path: Path, key: str) -> None:
    folder, _, bundles = crafted
    bundle = bundles["valid"]
    if key == "x25519":
        key_file = tmp_path / "other.txt"
        key_file.write_text(f"{age.X25519Identity.generate()}\n")
    elif key == "ssh-ed25519":
        key_file = tmp_path / "other_ed25519"
        craft.SigningKey.generate("other").save(key_file)
    else:
        key_file, bundle = folder / "keys" / "identity.txt", passphrase_bundle
    for command in ("verify", "extract"):
        extra = ["-o", tmp_path / "out"] if command == "extract" else []
        result = run_bounded(command, bundle, "--json", "-i", key_file, *extra)
        assert_clean_failure(result, (ExitCode.NO_MATCHING_KEY,))
        assert "opens this age file" in result.message()
        assert not (tmp_path / "out").exists()


def test_scrypt_work_factor_bomb_with_a_passphrase_is_refused(crafted) -> None:
    _, _, bundles = crafted
    result = run_bounded("verify", bundles["age-scrypt-huge-work-factor"], "--json",
                         env={"EVIDENCEKIT_PASSPHRASE": "anything"}, memory=GIB)
    assert_clean_failure(result, (1,))
    assert "work factor 2^40 exceeds" in result.message()


def test_scrypt_memory_beyond_the_machine_is_a_clear_refusal(crafted) -> None:
    """2^22 is accepted (as by age itself) but needs 4 GiB: where that is not available the
    answer is a one-line finding, not a MemoryError."""
    _, _, bundles = crafted
    result = run_bounded("verify", bundles["age-scrypt-work-factor-22"], "--json",
                         env={"EVIDENCEKIT_PASSPHRASE": "anything"}, memory=GIB)
    assert_clean_failure(result, (1,))
    assert "scrypt work factor 2^22 needs 4096 MiB of memory" in result.message()


# ------------------------------------------------------------------ truncation and bit flips


def _in_process(bundle: Path, identity: age.X25519Identity, out: Path) -> int:
    """verify and extract in-process: must not raise anything but EvidenceKitError."""
    try:
        report = verify(bundle, [identity])
        code = exit_code_for(report)
        result = extract(bundle, out, [identity])
        assert exit_code_for(result.report) == code
        assert (result.output is None) == (code != 0)
    except EvidenceKitError as exc:
        return exc.exit_code
    return code


def test_truncated_at_every_block_boundary(crafted, tmp_path: Path) -> None:
    _, keys, bundles = crafted
    original = bundles["valid"].read_bytes()
    cut = tmp_path / "cut.evidence"
    for end in range(0, len(original), BLOCK):
        cut.write_bytes(original[:end])
        code = _in_process(cut, keys.identity, tmp_path / f"out-{end}")
        # Cut to nothing, the file is no bundle at all (the wrong file: exit 2); any other cut
        # still starts as a bundle does, so it is a damaged one (exit 1).
        assert code == (ExitCode.USAGE if end == 0 else ExitCode.EVIDENCE_PROBLEM), end
        assert not (tmp_path / f"out-{end}").exists()
    assert sorted(os.listdir(tmp_path)) == ["cut.evidence"]


def test_truncated_through_the_cli_sample(crafted, tmp_path: Path) -> None:
    """A sample of cuts through the CLI entry point (one driver process for all of them)."""
    _, keys, bundles = crafted
    original = bundles["valid"].read_bytes()
    ends = sorted({0, 1, BLOCK, 3 * BLOCK, len(original) // 2, len(original) - 2 * BLOCK,
                   len(original) - BLOCK, len(original) - 1})
    runs = []
    for end in ends:
        cut = tmp_path / f"cut-{end}.evidence"
        cut.write_bytes(original[:end])
        common = [str(cut), "--json", "-i", str(keys.identity_file)]
        runs += [{"id": f"verify {end}", "argv": ["verify", *common]},
                 {"id": f"extract {end}", "argv": ["extract", *common, "-o",
                                                   str(tmp_path / f"out-{end}")]}]
    results = run_driver(runs, tmp_path)
    for end in ends:
        assert_clean_failure(results[f"verify {end}"], (2,) if end == 0 else (1,))
        assert_clean_failure(results[f"extract {end}"], (2,) if end == 0 else (1,))
        assert not (tmp_path / f"out-{end}").exists()


def test_random_bit_flips(crafted, tmp_path: Path) -> None:
    """Every single-bit flip is caught (the header, seal, signatures and payload hash cover every
    byte of the file); 300 random positions in-process."""
    _, keys, bundles = crafted
    original = bytearray(bundles["valid"].read_bytes())
    rng = random.Random(4)
    flipped = tmp_path / "flipped.evidence"
    for trial in range(300):
        data = bytearray(original)
        position = rng.randrange(len(data))
        data[position] ^= 1 << rng.randrange(8)
        flipped.write_bytes(bytes(data))
        code = _in_process(flipped, keys.identity, tmp_path / "out")
        assert code == ExitCode.EVIDENCE_PROBLEM, (trial, position)
        assert not (tmp_path / "out").exists()


def test_bit_flips_through_the_cli_sample(crafted, tmp_path: Path) -> None:
    """A few flips through a fresh ``python -m evidencekit`` each, exactly as a user runs it."""
    _, keys, bundles = crafted
    original = bundles["valid"].read_bytes()
    rng = random.Random(7)
    positions = [rng.randrange(len(original)) for _ in range(4)]

    def run(position: int) -> Bounded:
        data = bytearray(original)
        data[position] ^= 0x10
        path = tmp_path / f"flip-{position}.evidence"
        path.write_bytes(bytes(data))
        return run_bounded("verify", path, "--json", "-i", keys.identity_file)

    with ThreadPoolExecutor(WORKERS) as pool:
        for result in pool.map(run, positions):
            assert_clean_failure(result, (1,))


def test_catalogue_names_its_defects() -> None:
    """Each builder is named after its defect and documented in docs/hostile-input.md."""
    doc = (Path(__file__).parents[2] / "docs" / "hostile-input.md").read_text()
    missing = [name for name in CASES if f"`{name}`" not in doc]
    assert not missing, f"not in docs/hostile-input.md: {missing}"
    assert len(CASES) == len(craft.CATALOGUE)


def test_craft_script_writes_every_bundle(tmp_path: Path) -> None:
    built = craft.build_all(tmp_path)
    assert set(built) == set(CASES)
    assert all(path.exists() for path in built.values())
    shutil.rmtree(tmp_path / "keys")


# ------------------------------------------------------------------------- memory, measured

MEMORY_BOUND = [c.name for c in craft.CATALOGUE if c.memory_bound]
# Allowed above the control case (a valid bundle, same command): a fixed margin, plus memory in
# proportion to what the bundle really holds (many-members-bomb's 10,000 real members give
# 20,000 findings). The declared sizes (900 MB and up) are far beyond both, for bundles of at
# most 10 MB: memory in proportion to a declared size cannot hide here.
MEMORY_MARGIN = 64 << 20
MEMORY_PER_BUNDLE_BYTE = 10


@pytest.fixture(scope="module")
def measured(crafted: tuple[Path, craft.Keys, dict[str, Path]],
             tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Bounded]:
    """verify and extract of every memory-bound case and of the control, each in its own
    process (so its peak resident memory is its own), under the 1 GiB address-space limit."""
    _, keys, bundles = crafted
    out = tmp_path_factory.mktemp("measured")
    jobs = [(name, command) for name in ["valid", *MEMORY_BOUND]
            for command in ("verify", "extract")]

    def run(job: tuple[str, str]) -> tuple[tuple[str, str], Bounded]:
        name, command = job
        extra = ["-o", out / f"{name}-out"] if command == "extract" else []
        return job, run_measured(command, bundles[name], "--json", "-i", keys.identity_file,
                                 *extra, memory=GIB)

    with ThreadPoolExecutor(WORKERS) as pool:
        return dict(pool.map(run, jobs))


@pytest.mark.parametrize("name", MEMORY_BOUND)
@pytest.mark.parametrize("command", ["verify", "extract"])
def test_memory_stays_flat(measured: dict[tuple[str, str], Bounded], crafted, name: str,
                           command: str) -> None:
    """A declared size (10^15 bytes, a 900 MB or 1 GiB tag file, a billion-entry sparse map)
    never shows in memory: the peak stays within a margin of what a valid bundle needs."""
    case = CASES[name]
    result = measured[(name, command)]
    assert_clean_failure(result, case.exit_codes)
    assert case.phrase_for(command) in result.message().lower(), result.message()
    baseline = measured[("valid", command)]
    assert baseline.code == 0 and baseline.peak_rss and result.peak_rss
    size = crafted[2][name].stat().st_size
    assert size <= 16 << 20  # so that the allowance stays far below any declared size
    allowed = baseline.peak_rss + MEMORY_MARGIN + MEMORY_PER_BUNDLE_BYTE * size
    assert result.peak_rss <= allowed, (
        f"{command} {name}: peak {result.peak_rss >> 20} MiB, allowed {allowed >> 20} MiB "
        f"(a valid bundle: {baseline.peak_rss >> 20} MiB)")


def test_every_failing_case_names_what_it_expects() -> None:
    """An empty phrase is in every message: each failing case must say what it expects."""
    vague = [c.name for c in craft.CATALOGUE if c.exit_codes != (0,) and not c.phrase.strip()]
    assert vague == []
    with pytest.raises(ValueError, match="needs the phrase"):
        craft.case("vague", phrase="")


# ------------------------------------------------------------------- what people are shown


def _assert_no_forged_line(text: str) -> None:
    for line in text.splitlines():
        assert not line.lstrip().startswith("VERIFIED:"), line


@pytest.mark.parametrize("command", ["verify", "extract"])
def test_hostile_names_never_reach_the_terminal(crafted, tmp_path: Path, command: str) -> None:
    """Member names with ESC [2K, CR, LF, a one-byte CSI and a right-to-left override, printed
    for people (no --json): shown as [U+001B], [LF] …, never acted on; no forged VERIFIED line."""
    _, keys, bundles = crafted
    extra = ["-o", tmp_path / "out"] if command == "extract" else []
    result = run_bounded(command, bundles["tar-member-name-terminal-escape"], "-i",
                         keys.identity_file, *extra)
    assert result.code == 1, result.stdout + result.stderr
    for text in (result.stdout, result.stderr):
        assert_terminal_safe(text)
        _assert_no_forged_line(text)
    assert "x[U+001B][2K[U+000D]VERIFIED" in result.stderr
    assert "y[LF]VERIFIED: everything fine" in result.stderr
    assert "report[U+202E]txt.exe" in result.stderr
    assert "[bag]" in result.stderr  # the check's name, once taken for a rich style and dropped


# What a crafted seal or manifest can say: a forged line (ESC [2K, CR, LF) and rich markup that
# would be taken for a style, or make rich raise (a "[/]" closing nothing).
FORGED = "x\x1b[2K\rVERIFIED: all fine\n[/][bold]"
FORGED_SHOWN = "x[U+001B][2K[U+000D]VERIFIED: all fine[LF][/][bold]"


def test_inspect_shows_what_the_seal_says_never_sends_it(crafted, tmp_path: Path) -> None:
    """inspect prints the seal's case id and signer fingerprint and the payload's recipient
    stanza types before anything is verified: all three, and the bundle's own name, are shown
    with their controls made visible and their markup as text, never acted on."""
    _, keys, _ = crafted
    payload = craft.encrypt(craft.build_bag(keys).plaintext, [keys.identity.recipient()])
    first_line = payload.index(b"\n") + 1  # an extra stanza whose type is markup (VCHAR only)
    payload = payload[:first_line] + b"-> [/] [bold]\nAAAA\n" + payload[first_line:]
    public = " ".join(keys.signer.public.openssh_line().split()[:2])
    forged_seal = craft.seal_edit(case_id=FORGED,
                                  signer=Signer(public, "SHA256:\x9b31m\u202e[/red]"))
    bundle = craft.write_bundle(tmp_path / "case\x1b[2J.evidence", keys, craft.build_bag(keys),
                                craft.Outer(payload=payload, seal_edit=forged_seal))
    result = run_bounded("inspect", bundle)
    assert result.code == ExitCode.OK, result.stdout + result.stderr
    for text in (result.stdout, result.stderr):
        assert_terminal_safe(text)
        _assert_no_forged_line(text)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Bundle      {tmp_path}/case[U+001B][2J.evidence (format ")
    assert f"Case        {FORGED_SHOWN}" in lines
    assert "Sealed by   SHA256:[U+009B]31m[U+202E][/red]" in lines
    assert "Opens with  [/], X25519" in lines


def test_extract_shows_skipped_links_and_folders_never_sends_them(crafted, tmp_path: Path) -> None:
    """A link the manifest points outside is not created and is listed by its name and target
    as the (validly signed) manifest has them: controls visible, markup as text. The output
    folder's name (typed, or from a script) too, also when it is kept as OUTPUT.UNTRUSTED."""
    _, keys, bundles = crafted
    entries = [craft.dir_entry("data/evidence"), craft.file_entry("data/evidence/note.txt",
                                                                  b"hello\n"),
               craft.link_entry("data/evidence/l", f"../../../escaped-{FORGED}")]
    bundle = craft.write_bundle(
        tmp_path / "forged-link.evidence", keys,
        craft.build_bag(keys, entries=entries, edit_manifest=craft._counts(symlinks=1)),
        craft.Outer(seal_edit=craft._seal_counts(symlinks=1)))
    result = run_bounded("extract", bundle, "-i", keys.identity_file, "-o",
                         tmp_path / "out\x1b[2J")
    assert result.code == ExitCode.OK, result.stdout + result.stderr
    for text in (result.stdout, result.stderr):  # (its own VERIFIED line is genuine)
        assert_terminal_safe(text)
        assert not [line for line in text.splitlines()
                    if line.lstrip().startswith("VERIFIED: all fine")], text
    assert ("  link not created (points outside the folder): data/evidence/l -> "
            f"../../../escaped-{FORGED_SHOWN}") in result.stderr.splitlines()
    assert f"Extracted 1 file into {tmp_path}/out[U+001B][2J" in result.stdout.splitlines()

    kept = run_bounded("extract", bundles["manifest-lies-about-sizes"], "-i", keys.identity_file,
                       "-o", tmp_path / "bad\x1b[2J", "--keep-untrusted")
    assert kept.code == ExitCode.EVIDENCE_PROBLEM, kept.stdout + kept.stderr
    for text in (kept.stdout, kept.stderr):
        assert_terminal_safe(text)
    assert f"What was decrypted is in {tmp_path}/bad[U+001B][2J.UNTRUSTED" in kept.stderr


def test_json_keeps_hostile_names_byte_faithful(outcomes: dict[str, Outcome]) -> None:
    """--json is for programs: the names exactly as stored (JSON escapes what needs it)."""
    where = {f["where"] for f in outcomes["tar-member-name-terminal-escape"].verify.json()[
        "findings"]}
    for name in craft.TERMINAL_NAMES:
        assert name.removeprefix("bag/") in where


def test_a_control_character_in_an_error_message_is_shown_not_sent(tmp_path: Path) -> None:
    """The bundle path (typed, or from a script) is quoted by the error message."""
    missing = tmp_path / "gone\x1b[2K\rVERIFIED: fine\n.evidence"
    result = run_bounded("verify", missing, "--json")
    assert_clean_failure(result, (ExitCode.USAGE,))
    assert "bundle not found" in result.message()
    assert "[U+001B][2K[U+000D]VERIFIED: fine[LF].evidence" in result.stderr


def test_findings_are_capped_per_check_on_a_terminal(crafted) -> None:
    """20,000 findings (many-members-bomb): 20 per check are printed, then a count; --json has
    them all (test_verify_and_extract_fail_cleanly reads them there)."""
    _, keys, bundles = crafted
    result = run_bounded("verify", bundles["many-members-bomb"], "-i", keys.identity_file)
    assert result.code == 1
    lines = result.stderr.splitlines()
    assert len(lines) < 100, len(lines)
    more = craft.MANY_MEMBERS - render.FINDINGS_SHOWN + 1
    assert f"  … and {more} more bag problems; --json lists them all" in lines
    assert f"  … and {more} more manifest problems; --json lists them all" in lines
    assert sum("file in the payload is not listed in the manifest" in line
               for line in lines) == render.FINDINGS_SHOWN


# ---------------------------------------------------------- what is not a bundle file at all


@pytest.fixture
def not_files(tmp_path: Path) -> Iterator[dict[str, Path]]:
    fifo = tmp_path / "fifo.evidence"
    os.mkfifo(fifo)  # no writer: a plain open() blocks forever
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "socket.evidence"))
    try:
        yield {"fifo": fifo, "socket": tmp_path / "socket.evidence",
               "char-device": Path("/dev/zero"), "folder": tmp_path}
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["fifo", "socket", "char-device", "folder"])
@pytest.mark.parametrize("command", ["verify", "extract", "inspect"])
def test_only_regular_files_are_opened_as_bundles(not_files: dict[str, Path], tmp_path: Path,
                                                  crafted, kind: str, command: str) -> None:
    """A FIFO hung verify and extract forever; /dev/zero gave "-1024 unexpected bytes after the
    end of the archive". Opened without blocking and refused: exit 2, one line, at once."""
    _, keys, _ = crafted
    extra: list[object] = []
    if command == "extract":
        extra = ["-i", keys.identity_file, "-o", tmp_path / "out"]
    result = run_bounded(command, not_files[kind], "--json", *extra, timeout=20)
    assert_clean_failure(result, (ExitCode.USAGE,))
    assert result.seconds < 10
    message = result.message()
    if kind == "folder":  # refused by click already (dir_okay=False), and by open_bundle
        assert "is a directory" in message, message
    else:
        assert "not a bundle file" in message or "cannot read" in message, message
    assert "unexpected bytes" not in message
    assert not (tmp_path / "out").exists()


def test_open_bundle_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with alarm(10), pytest.raises(InputError, match="is a FIFO"):
        open_bundle(fifo)
    with pytest.raises(InputError, match="is a character device"):
        open_bundle(Path("/dev/zero"))


def test_a_bundle_is_read_in_blocking_mode(crafted) -> None:
    """O_NONBLOCK served the open only; the file object reads normally."""
    _, _, bundles = crafted
    bundle = open_bundle(bundles["valid"])
    try:
        assert os.get_blocking(bundle.file.fileno())
    finally:
        bundle.close()




# ------------------------------------------------- bugs are bugs, not damaged bundles (exit 5)


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
         *argv: object) -> tuple[int, str]:
    """The CLI entry point in-process (so a failure can be injected); (exit code, stderr)."""
    from evidencekit.cli.main import main

    monkeypatch.setattr(sys, "argv", ["evidencekit", *map(str, argv)])
    monkeypatch.delenv("EVIDENCEKIT_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exited:
        main()
    code = exited.value.code
    return code if isinstance(code, int) else 1, capsys.readouterr().err


@pytest.mark.parametrize("error", [IndexError("reader bug"), MemoryError(), TypeError("bug")])
def test_a_reader_bug_is_an_internal_error_not_a_damaged_payload(crafted, monkeypatch,
                                                                capsys, error) -> None:
    """Only BundleError means a damaged payload. Everything else used to become "the decrypted
    payload is not a valid tar: …" (exit 1), which hid bugs from the fuzzers and made the
    memory limit unfalsifiable (a MemoryError passed for a clean refusal)."""
    import evidencekit.verify as verify_module

    _, keys, bundles = crafted

    def broken(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(verify_module, "scan_payload", broken)
    with pytest.raises(type(error)):
        verify(bundles["valid"], [keys.identity])
    code, stderr = _cli(monkeypatch, capsys, "verify", bundles["valid"], "-i", keys.identity_file)
    assert code == ExitCode.INTERNAL, stderr
    assert "internal error" in stderr and "not a valid tar" not in stderr


def test_a_read_error_on_the_bundle_is_exit_2_naming_it(crafted, monkeypatch, capsys,
                                                        tmp_path: Path) -> None:
    """EIO from a damaged disk while reading the payload: the input's fault (exit 2), neither
    a bug nor "not a valid tar"; extract leaves nothing."""
    import evidencekit.format.outer as outer

    _, keys, bundles = crafted

    def failing(fd: int, buffers: list[memoryview], offset: int) -> int:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(outer, "_PREADV", failing)
    for argv in (["verify", bundles["valid"]],
                 ["verify", bundles["valid"], "-i", keys.identity_file],
                 ["inspect", bundles["valid"]],
                 ["extract", bundles["valid"], "-i", keys.identity_file, "-o", tmp_path / "out"]):
        code, stderr = _cli(monkeypatch, capsys, *argv)
        assert code == ExitCode.USAGE, stderr
        assert f"cannot read {bundles['valid']}: Input/output error" in stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("command", ["verify", "extract"])
def test_an_interrupted_verify_or_extract_says_what_it_was_doing(crafted, monkeypatch, capsys,
                                                                tmp_path: Path,
                                                                command: str) -> None:
    """Ctrl-C (or SIGTERM, which the CLI turns into the same) mid-payload: exit 130 in the
    reader's words, not capture's "nothing was written / the source was not changed"."""
    import evidencekit.verify as verify_module

    _, keys, bundles = crafted

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(verify_module, "scan_payload", interrupted)
    extra = ["-o", tmp_path / "out"] if command == "extract" else []
    code, stderr = _cli(monkeypatch, capsys, command, bundles["valid"], "-i", keys.identity_file,
                        *extra)
    assert code == ExitCode.INTERRUPTED, stderr
    assert "source" not in stderr and "Traceback" not in stderr
    if command == "verify":
        assert "interrupted while checking the bundle; verification did not finish" in stderr
        assert f"{bundles['valid']} was not changed" in stderr
    else:
        assert "interrupted while extracting; nothing was extracted" in stderr
        assert f"{tmp_path / 'out'} was not created" in stderr
        assert os.listdir(tmp_path) == []


def test_no_progress_bar_when_stderr_is_closed(monkeypatch) -> None:
    """Started with stderr closed (``2>&-``), Python has sys.stderr None: not a terminal."""
    from evidencekit.progress import NoProgress

    monkeypatch.setattr(sys, "stderr", None)
    assert isinstance(render.progress_for(as_json=False), NoProgress)
