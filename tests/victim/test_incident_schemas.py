"""The JSON Schemas of the incident record: docs/schemas/incident.schema.json (what is stored in the
bag, FORMAT.md §4.5) and incident-input.schema.json (what a support worker writes for
``--incident``). A schema that disagrees with evidencekit misleads the people who rely on it, so
each is checked both ways: what evidencekit writes or accepts validates, and what the schema
refuses evidencekit refuses too."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from evidencekit import canonical
from evidencekit import incident as inc
from evidencekit.errors import BundleError
from tests.support.schemas import SCHEMAS, schema_validator
from tests.support.victim import DATE_ONLY_YAML, INCIDENT_YAML

VICTIMS_GUIDE = Path(__file__).parents[2] / "docs" / "victims.md"

EVERY_FIELD_YAML = """\
incident_type: Account takeover
description: "  Someone changed my password.\\n\\tThen they wrote to my friends.  "
time_zone: America/New_York
started: 2026-03-08 01:30
noticed: 2026-03-09T07:00:05.25Z
timeline:
  - {time: 2026-03-08, description: Strange login e-mail}
  - {time: "2026-03-08 23:59:59 -05:00", description: Locked out}
identifiers:
  - {kind: email, value: attacker@example.org}
  - {kind: phone, value: "+1 (555) 010-0199", note: called me}
  - {kind: wallet, value: bc1qexampleexampleexample}
  - {kind: transaction, value: 0012}
  - {kind: username, value: "no"}
losses:
  - {amount: "1499,90", currency: usd}
  - {amount: 0.10, currency: CHF, description: fees}
affected_accounts: [mail, "  "]
affected_devices: []
"""


def errors(document: Any, name: str) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}"
            for e in schema_validator(name).iter_errors(document)]


def read_as_evidencekit_does(text: str) -> Any:
    return yaml.load(text, Loader=inc._keep_scalars())


def guide_examples() -> list[str]:
    blocks = re.findall(r"```yaml\n(.*?)```", VICTIMS_GUIDE.read_text("utf-8"), re.S)
    assert blocks, "docs/victims.md has no YAML example any more"
    return blocks


def stored(text: str) -> dict[str, Any]:
    return json.loads(inc.load_yaml(text).to_json())


# -------------------------------------------------------------------- the schemas match the code
def test_the_schemas_name_exactly_what_the_code_knows() -> None:
    record = json.loads((SCHEMAS / "incident.schema.json").read_text("utf-8"))
    entry = json.loads((SCHEMAS / "incident-input.schema.json").read_text("utf-8"))
    assert set(record["required"]) == set(record["properties"]) == inc._DOC_KEYS
    assert set(entry["properties"]) == inc.INPUT_KEYS
    assert record["properties"]["incident_type"]["enum"] == [*inc.INCIDENT_TYPES, None]
    assert record["$defs"]["identifier"]["properties"]["kind"]["enum"] == list(
        inc.IDENTIFIER_KINDS)
    assert set(record["$defs"]["loss"]["properties"]["currency"]["enum"]) == inc.ISO_4217
    assert record["properties"]["description"]["maxLength"] == inc.MAX_TEXT
    assert record["properties"]["timeline"]["maxItems"] == inc.MAX_ITEMS


@pytest.mark.parametrize("spelling", ["phishing", "Online fraud", "ACCOUNT_TAKEOVER", " scam ",
                                      "Hacked account", "burglary", "online--fraud", "phish"])
def test_the_input_schema_spells_incident_types_as_evidencekit_reads_them(spelling: str) -> None:
    try:
        read = inc.incident_type(spelling) is not None
    except inc.IncidentError:
        read = False
    assert (errors({"incident_type": spelling}, "incident-input") == []) is read


# ------------------------------------------------------------------------------ the stored record
@pytest.mark.parametrize("text", [INCIDENT_YAML, DATE_ONLY_YAML, EVERY_FIELD_YAML, "{}"],
                         ids=["fraud", "dates-alone", "every-field", "empty"])
def test_every_record_evidencekit_writes_validates(text: str) -> None:
    assert errors(stored(text), "incident") == []


def test_records_in_the_guide_validate_once_stored() -> None:
    for block in guide_examples():
        assert errors(stored(block), "incident") == []


# Each change breaks a rule of FORMAT.md §4.5 that the schema can express; evidencekit must refuse
# the changed record too (step 10), or the schema would be stricter than the format.
BROKEN_RECORDS = {
    "amount-as-a-number": lambda d: d["losses"][0].update(amount=450),
    "amount-negative": lambda d: d["losses"][0].update(amount="-450.00"),
    "currency-in-small-letters": lambda d: d["losses"][0].update(currency="eur"),
    "currency-unknown": lambda d: d["losses"][0].update(currency="XYZ"),
    "loss-date-not-a-date": lambda d: d["losses"][0].update(date="15.11.2026"),
    "loss-without-reference": lambda d: d["losses"][0].pop("reference"),
    "unknown-field": lambda d: d.update(extra="field"),
    "field-missing": lambda d: d.pop("noticed"),
    "unknown-incident-type": lambda d: d.update(incident_type="burglary"),
    "incident-type-alias": lambda d: d.update(incident_type="fraud"),
    "wrong-version": lambda d: d.update(format_version=2),
    "wrong-type": lambda d: d.update(type="evidencekit.manifest"),
    "time-without-offset": lambda d: d["timeline"][0].update(time="2026-11-14T10:30:00"),
    "time-utc-without-nanoseconds": lambda d: d["started"].update(time_utc="2026-11-14T09:30Z"),
    "time-utc-missing": lambda d: d["started"].pop("time_utc"),
    "day-with-a-utc-time": lambda d: d["started"].update(time="2026-11-14"),
    "timeline-without-description": lambda d: d["timeline"][0].pop("description"),
    "timeline-description-empty": lambda d: d["timeline"][0].update(description=""),
    "identifier-kind-unknown": lambda d: d["identifiers"][0].update(kind="fax"),
    "identifier-value-empty": lambda d: d["identifiers"][0].update(value=""),
    "description-untrimmed": lambda d: d.update(description=" padded "),
    "description-with-a-carriage-return": lambda d: d.update(description="a\r\nb"),
    "description-not-text": lambda d: d.update(description=["a"]),
    "accounts-not-a-list": lambda d: d.update(affected_accounts="mail"),
    "account-empty": lambda d: d["affected_accounts"].append(""),
    "timeline-not-a-list": lambda d: d.update(timeline={}),
}


@pytest.mark.parametrize("change", BROKEN_RECORDS.values(), ids=BROKEN_RECORDS.keys())
def test_a_broken_record_fails_the_schema_and_verification(change) -> None:
    document = copy.deepcopy(stored(INCIDENT_YAML))
    change(document)
    assert errors(document, "incident"), "the schema accepts it"
    with pytest.raises(BundleError):
        inc.from_json(canonical.dumps(document))


# -------------------------------------------------------------------------- the incident file
# an empty file is refused (a file saved empty by mistake): "{}" is the record with nothing
@pytest.mark.parametrize("text", [INCIDENT_YAML, DATE_ONLY_YAML, EVERY_FIELD_YAML, "{}\n"],
                         ids=["fraud", "dates-alone", "every-field", "empty-mapping"])
def test_files_evidencekit_reads_validate(text: str) -> None:
    inc.load_yaml(text)
    assert errors(read_as_evidencekit_does(text) or {}, "incident-input") == []


EUROPEAN_YAML = """\
started: 14.11.2026 10:30 Europe/Berlin
noticed: "14.11.2026, 18:05 +01:00"
timeline: [{time: 15.11.2026, description: called the bank}]
losses:
  - {amount: '1.250,00', currency: EUR, date: 14.11.2026}
  - {amount: '1,250.00', currency: USD, date: 1.12.2026}
  - {amount: "1 250,50", currency: EUR}
  - {amount: "1'250.50", currency: CHF}
  - {amount: '1.250,-', currency: EUR}
  - {amount: '12,5', currency: EUR}
"""


def test_european_dates_and_amounts_validate_and_are_read_exactly() -> None:
    record = inc.load_yaml(EUROPEAN_YAML)
    assert [loss.amount for loss in record.losses] == [
        "1250.00", "1250.00", "1250.50", "1250.50", "1250", "12.5"]
    assert [loss.date for loss in record.losses][:2] == ["2026-11-14", "2026-12-01"]
    assert errors(read_as_evidencekit_does(EUROPEAN_YAML), "incident-input") == []


def test_the_guides_examples_validate_and_are_read() -> None:
    for block in guide_examples():
        inc.load_yaml(block)
        assert errors(read_as_evidencekit_does(block), "incident-input") == []


def test_the_same_record_written_as_json_validates() -> None:
    as_json = json.dumps({"incident_type": "phishing", "started": "2026-11-14 10:30 +01:00",
                          "losses": [{"amount": 12.5, "currency": "EUR"}],
                          "identifiers": [{"kind": "account", "value": 12345678}]})
    inc.load_yaml(as_json)
    assert errors(json.loads(as_json), "incident-input") == []


BROKEN_FILES = {
    "unknown-field": "incident: phishing\n",
    "unknown-incident-type": "incident_type: burglary\n",
    "losses-not-a-list": "losses: {amount: 1, currency: EUR}\n",
    "loss-without-currency": "losses: [{amount: 1}]\n",
    "loss-currency-word": "losses: [{amount: 1, currency: EURO}]\n",
    "loss-amount-negative": "losses: [{amount: -5, currency: EUR}]\n",
    "loss-amount-thousands": "losses: [{amount: '1,500', currency: EUR}]\n",
    "loss-field-unknown": "losses: [{amount: 1, currency: EUR, bank: X}]\n",
    "loss-date-with-slashes": "losses: [{amount: 1, currency: EUR, date: 15/11/2026}]\n",
    "loss-amount-thousands-dot": "losses: [{amount: '1.500', currency: EUR}]\n",
    "time-in-words": "started: yesterday evening\n",
    "timeline-without-description": "timeline: [{time: 2026-11-14 10:30 Z}]\n",
    "timeline-entry-a-string": "timeline: ['2026-11-14 10:30 Z: paid']\n",
    "identifier-kind-unknown": "identifiers: [{kind: fax, value: '123'}]\n",
    "identifier-without-value": "identifiers: [{kind: email}]\n",
    "description-a-list": "description: [a, b]\n",
    "control-character": 'description: "a\\u0007b"\n',
    "not-a-mapping": "- phishing\n",
}


@pytest.mark.parametrize("text", BROKEN_FILES.values(), ids=BROKEN_FILES.keys())
def test_a_broken_file_fails_the_schema_and_is_refused(text: str) -> None:
    assert errors(read_as_evidencekit_does(text), "incident-input"), "the schema accepts it"
    with pytest.raises(inc.IncidentError):
        inc.load_yaml(text)
