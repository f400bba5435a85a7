"""The incident record inside the bag: written by capture, covered by the signed manifest, checked
by verify (step 10), also after a reseal; refused before anything is written when malformed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from evidencekit.crypto import age
from evidencekit.crypto.keys import load_signing_key
from evidencekit.custody import resealing
from evidencekit.custody.events import EventRequest
from evidencekit.custody.resealing import reseal
from evidencekit.findings import Findings
from evidencekit.format import bag
from evidencekit.payload import PayloadScan
from evidencekit.verify import check_incident, verify
from tests.support.cli import run_cli
from tests.support.schemas import assert_valid
from tests.support.victim import INCIDENT_YAML


def capture(tmp_path: Path, keys: dict[str, Path], *extra: object) -> tuple[Path, object]:
    evidence = tmp_path / "evidence"
    evidence.mkdir(exist_ok=True)
    (evidence / "statement.csv").write_text("2026-11-15,-450.00,EUR\n")
    bundle = tmp_path / "case.evidence"
    result = run_cli("capture", evidence, "-R", keys["recipient"], "--sign-key", keys["signer"],
                     "-o", bundle, "--json", *extra)
    return bundle, result


def opened(tmp_path: Path, bundle: Path, keys: dict[str, Path]) -> Path:
    out = tmp_path / "opened"
    result = run_cli("extract", bundle, "-i", keys["identity"], "-o", out, "--as-stored")
    assert result.code == 0, result.stderr
    return out


def test_incident_from_yaml_and_flags_is_stored_signed_and_verified(tmp_path, home, keys):
    incident = tmp_path / "incident.yaml"
    incident.write_text(INCIDENT_YAML)
    bundle, result = capture(tmp_path, keys, "--incident", incident, "--loss",
                             "25 EUR; 2026-11-15; Example Bank; TX-9", "--loss",
                             "1.250,00 €; 16.11.2026", "--identifier", "phone",
                             "+44 7700 900123", "--timeline", "2026-11-16 19:05 +01:00",
                             "Noticed the seller was gone", "--affected-device", "phone")
    assert result.code == 0, result.stderr
    checked = run_cli("verify", bundle, "-i", keys["identity"], "--json")
    assert checked.code == 0, checked.stdout
    out = opened(tmp_path, bundle, keys)
    data = (out / "evidencekit" / "incident.json").read_bytes()
    manifest = json.loads((out / "evidencekit" / "manifest.json").read_bytes())
    assert manifest["incident_sha256"] == hashlib.sha256(data).hexdigest()
    tags = (out / "tagmanifest-sha256.txt").read_text()
    assert f"{hashlib.sha256(data).hexdigest()}  evidencekit/incident.json\n" in tags
    record = json.loads(data)
    assert_valid(record, "incident")  # docs/schemas/incident.schema.json
    assert [loss["amount"] for loss in record["losses"]] == ["450.00", "25", "1250.00"]
    assert record["losses"][-1]["date"] == "2026-11-16"
    assert record["identifiers"][-1] == {"kind": "phone", "value": "+44 7700 900123", "note": ""}
    assert record["timeline"][-1]["time_utc"] == "2026-11-16T18:05:00.000000000Z"
    assert record["affected_devices"] == ["phone"]
    assert record["time_zone"] == "Europe/Berlin"
    # nothing of it is public: the outer file holds neither the narrative nor the IBAN
    raw = bundle.read_bytes()
    assert b"used bike" not in raw and b"GB82" not in raw


def test_without_an_incident_the_manifest_says_null(tmp_path, home, keys):
    bundle, result = capture(tmp_path, keys)
    assert result.code == 0, result.stderr
    out = opened(tmp_path, bundle, keys)
    assert json.loads((out / "evidencekit" / "manifest.json").read_bytes())[
        "incident_sha256"] is None
    assert not (out / "evidencekit" / "incident.json").exists()


@pytest.mark.parametrize(("args", "words"), [
    (["--loss", "12 ECU"], "ISO 4217"),
    (["--loss", "1.250 EUR"], "can be read two ways"),
    (["--started", "2026-13-01 10:00 Z"], "--started"),
    (["--identifier", "iban", "DE00 0000"], "IBAN"),
    (["--time-zone", "Atlantis/City"], "time zone"),
])
def test_bad_incident_flags_are_usage_errors_and_write_nothing(tmp_path, home, keys, args, words):
    bundle, result = capture(tmp_path, keys, *args)
    assert result.code == 2, result.stderr
    assert words in result.json()["error"]["message"] + (result.json()["error"]["hint"] or "")
    assert not bundle.exists() and not list(tmp_path.glob(".case.evidence*"))


def test_bad_incident_file_names_file_and_field(tmp_path, home, keys):
    incident = tmp_path / "incident.yaml"
    incident.write_text("losses:\n  - amount: 10\n    currency: EURO\n")
    bundle, result = capture(tmp_path, keys, "--incident", incident)
    assert result.code == 2
    message = result.json()["error"]["message"]
    assert "incident.yaml" in message and "losses[0].currency" in message
    assert "Traceback" not in result.stderr and not bundle.exists()


def test_incident_changed_by_a_resealer_is_caught(tmp_path, home, keys, monkeypatch):
    """Someone holding the key re-encrypts the payload with an edited account of events: the
    signed manifest still names the original record."""
    incident = tmp_path / "incident.yaml"
    incident.write_text(INCIDENT_YAML)
    bundle, result = capture(tmp_path, keys, "--incident", incident)
    assert result.code == 0, result.stderr
    original_write = resealing._Tee.write

    def edit(self: resealing._Tee, data: bytes) -> int:  # same length: the tar stays valid
        return original_write(self, data.replace(b"used bike", b"new bike!"))

    monkeypatch.setattr(resealing._Tee, "write", edit)
    identity = age.parse_identity_file(keys["identity"].read_bytes())
    signer = load_signing_key(keys["signer"], None)
    # the reseal itself verifies the original (intact) payload, then writes the edited one
    reseal(bundle, tmp_path / "edited.evidence", identity, [identity[0].recipient()],
           EventRequest("resealed", "Mallory", signer))
    report = verify(tmp_path / "edited.evidence", identity)
    assert not report.ok
    problems = {(f.check, f.where) for f in report.findings.errors}
    assert ("manifest", bag.EK_INCIDENT) in problems  # step 10: not the record the manifest names
    assert ("bag", bag.EK_INCIDENT) in problems  # step 9: tag manifest


def test_incident_reseal_keeps_the_record_verifiable(tmp_path, home, keys):
    incident = tmp_path / "incident.yaml"
    incident.write_text(INCIDENT_YAML)
    bundle, _ = capture(tmp_path, keys, "--incident", incident)
    resealed = tmp_path / "resealed.evidence"
    result = run_cli("reseal", bundle, "-i", keys["identity"], "-R", keys["recipient"],
                     "--sign-key", keys["signer"], "-o", resealed)
    assert result.code == 0, result.stderr
    assert run_cli("verify", resealed, "-i", keys["identity"]).code == 0


def _step10(manifest: dict, tag_files: dict[str, bytes]) -> list[str]:
    findings = Findings()
    check_incident(manifest, PayloadScan(tag_files=tag_files), findings)
    return [f.problem for f in findings.errors]


def test_step_10_rules() -> None:
    from evidencekit import incident as inc

    record = inc.load_yaml(INCIDENT_YAML).to_json()
    digest = hashlib.sha256(record).hexdigest()
    assert _step10({"incident_sha256": digest}, {bag.EK_INCIDENT: record}) == []
    assert _step10({"incident_sha256": None}, {}) == []
    assert _step10({}, {}) == []  # manifests written before the field existed
    assert "does not name" in _step10({"incident_sha256": None}, {bag.EK_INCIDENT: record})[0]
    assert "does not name" in _step10({}, {bag.EK_INCIDENT: record})[0]
    assert "missing" in _step10({"incident_sha256": digest}, {})[0]
    assert "differs" in _step10({"incident_sha256": "0" * 64}, {bag.EK_INCIDENT: record})[0]
    assert "not a SHA-256" in _step10({"incident_sha256": 5}, {})[0]
    broken = record.replace(b'"450.00"', b'"45x.00"')
    assert "amount" in _step10({"incident_sha256": hashlib.sha256(broken).hexdigest()},
                               {bag.EK_INCIDENT: broken})[0]


def test_dates_without_a_time_from_flags_and_yaml(tmp_path, home, keys):
    incident = tmp_path / "incident.yaml"
    incident.write_text("noticed: 2026-11-16\n")
    bundle, result = capture(tmp_path, keys, "--incident", incident, "--started", "2026-11-14",
                             "--timeline", "2026-11-15", "Paid the seller")
    assert result.code == 0, result.stderr
    assert run_cli("verify", bundle, "-i", keys["identity"]).code == 0
    record = json.loads((opened(tmp_path, bundle, keys) / "evidencekit" /
                         "incident.json").read_bytes())
    assert record["started"] == {"time": "2026-11-14", "time_utc": None}
    assert record["noticed"] == {"time": "2026-11-16", "time_utc": None}
    assert record["timeline"] == [{"time": "2026-11-15", "time_utc": None,
                                   "description": "Paid the seller"}]
