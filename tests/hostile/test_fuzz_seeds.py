"""The fuzz harness's seeds (benchmarks/fuzz_bundle_reader.py) run through its targets without
libFuzzer: the real bundles verify, the header tricks and tree changes of issue 19 give findings,
and nothing crashes; so the fuzzer starts from the reader's canonical-header and tree checks."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_bundle_reader.py"


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("fuzz_bundle_reader", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_every_seed_runs_and_the_tricks_are_findings(harness, tmp_path: Path) -> None:
    work, scratch = tmp_path / "work", tmp_path / "scratch"
    count = harness.prepare_work(work)
    scratch.mkdir()
    targets = harness.Targets(work, scratch)
    outcomes = {seed.name: targets.run(seed.read_bytes())
                for seed in sorted((work / "corpus").iterdir())}
    assert len(outcomes) == count
    tricks = {name: outcome for name, outcome in outcomes.items()
              if name.startswith("tree-") and name.count("-") > 2 and "payload-verify" in name
              and name != "tree-payload-verify"}
    assert sorted(tricks) == ["tree-extra-folder-payload-verify", "tree-old-style-payload-verify",
                              "tree-pax-keyword-payload-verify"]
    assert set(tricks.values()) == {"findings"}, tricks
    for name in ("tree-with-key", "single-with-key", "custody-with-key", "addendum-with-key",
                 "device-with-key"):
        assert outcomes[name] == "ok", (name, outcomes)
    # mode 4 decompresses to the same tar mode 2 reads (findings: the crafted seal's root is 0s)
    assert outcomes["device-zstd-payload-verify"] == outcomes["device-payload-verify"] == \
        "findings", outcomes
    from evidencekit.verify import verify

    targets.run((work / "corpus" / "device-zstd-payload-verify").read_bytes())
    report = verify(targets.bundle, targets.identities)
    assert report.decrypted and report.seal is not None and report.seal.format_version == 4
    assert not [f for f in report.findings.errors if f.check == "payload-decrypt"], \
        report.findings.items
