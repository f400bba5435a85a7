"""Coverage-guided fuzzing (atheris / libFuzzer) of everything that reads a bundle. Not run in CI.

    pip install atheris
    python benchmarks/fuzz_bundle_reader.py -max_total_time=600 -rss_limit_mb=2048 \\
        -timeout=10 /tmp/ek-fuzz-corpus

The first input byte picks a target; the rest is the data:

0. a whole bundle file       → ``verify`` with the right key (outer tar, seal, signatures,
                               custody, age, payload, bag, manifest)
1. the payload's plaintext   → sealed, encrypted and signed into a valid-looking bundle, then
                               ``extract`` (inner tar reader, bag and manifest checks, the writer
                               and the tree restorer); nothing may appear outside the output
2. a JSON document           → seal, custody event and manifest-entry parsers
3. an age file               → the age header parser and payload decryption

The invariant: only ``EvidenceKitError`` may come out (anything else is exit code 5, a bug), no
input may take more than ``-timeout`` seconds or ``-rss_limit_mb`` of memory, and extract never
writes outside its folder. libFuzzer saves a crashing input as ``crash-*``; replay it with
``python benchmarks/fuzz_bundle_reader.py crash-…``. The seed corpus (valid bundle, valid
payload, a seal, an age file) is written into the corpus folder on first use. Scratch files live
in /dev/shm/ek-fuzz-PID; the last run's folder stays until the next run (or rm -rf it).
Results are recorded in docs/hostile-input.md.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports():
    import tarfile  # noqa: F401  (instrumented for coverage of the inner tar reader)

    from evidencekit import canonical
    from evidencekit.crypto import age
    from evidencekit.errors import EvidenceKitError
    from evidencekit.extract import extract
    from evidencekit.format.documents import CustodyEvent, Seal
    from evidencekit.format.entries import entry_problems
    from evidencekit.verify import verify
    from tests.hostile import craft

def _scratch() -> Path:
    """A scratch folder in memory. libFuzzer ends the process with exit(), past any cleanup, so
    the folders of earlier runs whose process is gone are removed here."""
    base = Path("/dev/shm") if os.path.isdir("/dev/shm") else Path(tempfile.gettempdir())
    for old in base.glob("ek-fuzz-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)
    folder = base / f"ek-fuzz-{os.getpid()}"
    folder.mkdir()
    return folder


SCRATCH = _scratch()
KEYS = craft.Keys.create(SCRATCH / "keys")
IDENTITIES: list[age.Identity] = [KEYS.identity, age.ScryptIdentity(b"fuzz", max_work_factor=12)]
BUNDLE = SCRATCH / "input.evidence"


def _verify_file(data: bytes) -> None:
    BUNDLE.write_bytes(data)
    verify(BUNDLE, IDENTITIES)


def _extract_payload(data: bytes) -> None:
    bag = craft.Bag(data, "0" * 64, "0" * 64, dict.fromkeys(craft.COUNT_KEYS, 0), 0)
    craft.write_bundle(BUNDLE, KEYS, bag)
    work = SCRATCH / "work"
    work.mkdir()
    try:
        extract(BUNDLE, work / "out", IDENTITIES)
        outside = sorted(os.listdir(SCRATCH))
        assert outside == ["input.evidence", "keys", "work"], f"wrote outside: {outside}"
        assert set(os.listdir(work)) <= {"out"}, os.listdir(work)
    finally:
        shutil.rmtree(work)


def _parse_json(data: bytes) -> None:
    for parse in (Seal.from_json, lambda d: CustodyEvent.from_json(d, "custody/000001.json")):
        with contextlib.suppress(EvidenceKitError):
            parse(data)
    document = canonical.loads(data, "manifest.json")
    list(entry_problems(document.get("entries")))


def _decrypt(data: bytes) -> None:
    age.AgeReader(io.BytesIO(data), IDENTITIES).readall()


TARGETS = [_verify_file, _extract_payload, _parse_json, _decrypt]


def test_one_input(raw: bytes) -> None:
    if not raw:
        return
    target = TARGETS[raw[0] % len(TARGETS)]
    with contextlib.suppress(EvidenceKitError):  # a clean refusal: exit code 1, 2 or 4
        target(raw[1:])


def _seed(corpus: Path) -> None:
    """Valid examples of each target's input, so the fuzzer starts from the real formats."""
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    seed = SCRATCH / "seed"
    seed.mkdir()
    valid = craft.valid(seed, KEYS).read_bytes()
    plain = craft.build_bag(KEYS).plaintext
    seal = Seal.from_json(canonical.dumps(canonical.loads(
        _member(valid, "seal.json"), "seal.json")))
    (corpus / "bundle").write_bytes(b"\0" + valid)
    (corpus / "payload").write_bytes(b"\1" + plain)
    (corpus / "seal").write_bytes(b"\2" + seal.to_json())
    (corpus / "age").write_bytes(b"\3" + age.encrypt(b"hello" * 100, [KEYS.identity.recipient()]))
    shutil.rmtree(seed)


def _member(bundle: bytes, name: str) -> bytes:
    from evidencekit.format.outer import read_members

    with tempfile.TemporaryFile() as f:
        f.write(bundle)
        f.flush()
        member = next(m for m in read_members(f) if m.name == name)  # type: ignore[arg-type]
        f.seek(member.offset)
        return f.read(member.size)


def main() -> None:
    corpora = [Path(a) for a in sys.argv[1:] if not a.startswith("-") and Path(a).is_dir()]
    for corpus in corpora:
        _seed(corpus)
    try:
        atheris.Setup(sys.argv, test_one_input)
        atheris.Fuzz()
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    main()
