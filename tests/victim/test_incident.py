"""The incident record: parse = validate, errors name the field, the stored form is exact."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from zoneinfo import ZoneInfo

import pytest

from evidencekit import canonical
from evidencekit import incident as inc
from evidencekit.errors import BundleError, ExitCode, UsageError
from tests.support.victim import DATE_ONLY_YAML, INCIDENT_YAML


def test_yaml_is_read_exactly_as_written() -> None:
    record = inc.load_yaml(INCIDENT_YAML)
    assert record.incident_type == "online-fraud"
    assert record.type_label == "Online fraud / payment scam"
    assert record.started == inc.Moment("2026-11-14T10:30:00+01:00",
                                        "2026-11-14T09:30:00.000000000Z")
    # "08:12 +01:00" keeps its own offset; the record's zone applies only to times without one
    assert record.timeline[1].moment.local == "2026-11-15T08:12:00+01:00"
    assert record.timeline[1].moment.utc == "2026-11-15T07:12:00.000000000Z"
    loss = record.losses[0]
    assert (loss.amount, loss.currency, loss.date) == ("450.00", "EUR", "2026-11-15")  # not 450.0
    assert record.identifiers[0] == inc.Identifier("iban", "GB82 WEST 1234 5698 7654 32",
                                                   "the seller's account")
    assert record.description.startswith("I bought a used bike")


def test_stored_form_is_canonical_json_without_floats_and_round_trips() -> None:
    record = inc.load_yaml(INCIDENT_YAML)
    data = record.to_json()
    assert canonical.loads(data, "incident.json")["losses"][0]["amount"] == "450.00"
    assert inc.from_json(data) == record
    document = json.loads(data)
    assert document["type"] == "evidencekit.incident" and document["format_version"] == 1
    assert set(document) == {"type", "format_version", "incident_type", "description",
                             "time_zone", "started", "noticed", "timeline", "identifiers",
                             "losses", "affected_accounts", "affected_devices"}


def test_yaml_scalars_that_would_change_meaning_stay_text() -> None:
    record = inc.load_yaml("identifiers:\n  - {kind: account, value: 0012345}\n"
                           "  - {kind: username, value: no}\n"
                           "losses:\n  - {amount: 0.10, currency: usd}\n")
    assert record.identifiers[0].value == "0012345"  # YAML 1.1 would read octal 5349
    assert record.identifiers[1].value == "no"  # ... and the boolean False
    assert record.losses[0].amount == "0.10" and record.losses[0].currency == "USD"


@pytest.mark.parametrize(("yaml_text", "field", "words"), [
    ("losses:\n  - {amount: '12', currency: EURO}\n", "losses[0].currency", "ISO 4217"),
    ("losses:\n  - {amount: '-5', currency: EUR}\n", "losses[0].amount", "negative"),
    ("losses:\n  - {amount: '1,234', currency: EUR}\n", "losses[0].amount",
     "can be read two ways"),
    ("losses:\n  - {amount: '1,23,4', currency: EUR}\n", "losses[0].amount", "not an amount"),
    ("losses:\n  - {currency: EUR}\n", "losses[0].amount", "missing"),
    ("losses:\n  - {amount: 5, currency: EUR, date: 16/11/2026}\n", "losses[0].date", "date"),
    ("started: 2026-11-16 14:05\n", "started", "no time zone"),
    ("started: yesterday\n", "started", "not a date and time"),
    ("time_zone: Mars/Olympus\nstarted: 2026-11-16 14:05\n", "time_zone", "time zone"),
    ("timeline:\n  - {time: 2026-11-16 14:05 Z}\n", "timeline[0].description", "missing"),
    ("identifiers:\n  - {kind: iban, value: DE00 1234 5678}\n", "identifiers[0].value", "IBAN"),
    ("identifiers:\n  - {kind: email, value: not-an-address}\n", "identifiers[0].value",
     "email"),
    ("identifiers:\n  - {kind: fax, value: '123'}\n", "identifiers[0].kind", "not one of"),
    ("incident_type: burglary\n", "incident_type", "not a known incident type"),
    ("losse: []\n", "losse", "unknown field"),
    ("affected_accounts: online banking\n", "affected_accounts", "must be a list"),
])
def test_errors_name_the_field(yaml_text: str, field: str, words: str) -> None:
    with pytest.raises(inc.IncidentError) as caught:
        inc.load_yaml(yaml_text, "incident.yaml")
    error = caught.value
    assert error.field == field
    assert words in error.message and f"field '{field}'" in error.message
    assert error.message.startswith("incident.yaml, ")
    assert error.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(("yaml_text", "holds"), [
    ("- description: ok\n", "a list"), ("just words\n", "a single value"), ("", "nothing"),
    ("# only a comment\n", "nothing"), ("~\n", "nothing")])
def test_a_file_that_is_not_a_mapping_is_said_of_the_file(yaml_text: str, holds: str) -> None:
    """Before: "incident.yaml, field '': must be a mapping" for a list or a scalar, and an empty
    file was taken for an empty record, silently."""
    with pytest.raises(inc.IncidentError) as caught:
        inc.load_yaml(yaml_text, "incident.yaml")
    assert caught.value.message == ("incident.yaml must be a mapping of fields (key: value "
                                    f"lines); it holds {holds}")
    assert "field ''" not in caught.value.message
    assert caught.value.exit_code == ExitCode.USAGE


def test_broken_yaml_names_the_line() -> None:
    with pytest.raises(inc.IncidentError, match=r"not valid YAML \(line 3, column 3\)"):
        inc.load_yaml("description: ok\nlosses: [\n  - {amount: 1\nnext: 2\n", "incident.yaml")


def test_times_with_zone_names_offsets_and_z() -> None:
    berlin = inc.parse_moment("2026-07-01 12:00 Europe/Berlin", "t")  # summer time: +02:00
    assert berlin.local == "2026-07-01T12:00:00+02:00"
    assert berlin.utc == "2026-07-01T10:00:00.000000000Z"
    assert inc.parse_moment("2026-11-16T14:05:30Z", "t").local == "2026-11-16T14:05:30Z"
    assert inc.parse_moment("2026-11-16 14:05 -0500", "t").utc == "2026-11-16T19:05:00.000000000Z"
    assert inc.human_time(berlin) == "2026-07-01 12:00 (UTC+02:00)"
    with pytest.raises(inc.IncidentError):
        inc.parse_moment("2026-02-30 10:00 Z", "t")


def test_totals_are_exact_per_currency() -> None:
    losses = [inc.Loss("0.10", "EUR"), inc.Loss("0.20", "EUR"), inc.Loss("5", "GBP"),
              inc.Loss("1499.90", "EUR")]
    assert inc.totals(losses) == {"EUR": "1500.20", "GBP": "5"}


@pytest.mark.parametrize("change", [
    lambda d: d.update(amount_as_number=True) or d["losses"][0].update(amount=450),
    lambda d: d["losses"][0].update(currency="eur"),
    lambda d: d["timeline"][0].update(time_utc="2026-11-14T10:30:00.000000000Z"),
    lambda d: d.update(extra="field"),
    lambda d: d.pop("noticed"),
    lambda d: d.update(incident_type="burglary"),
    lambda d: d["identifiers"][0].update(value="GB00 WEST 1234 5698 7654 32"),
])
def test_stored_record_is_validated_strictly(change) -> None:
    document = json.loads(inc.load_yaml(INCIDENT_YAML).to_json())
    change(document)
    document.pop("amount_as_number", None)
    with pytest.raises(BundleError):
        inc.from_json(canonical.dumps(document))


def test_non_canonical_bytes_are_refused() -> None:
    data = inc.load_yaml(INCIDENT_YAML).to_json()
    pretty = json.dumps(json.loads(data), indent=1, ensure_ascii=False).encode() + b"\n"
    with pytest.raises(BundleError, match="canonical"):
        inc.from_json(pretty)
    assert hashlib.sha256(data).hexdigest() != hashlib.sha256(pretty).hexdigest()


def test_note_details_are_strings_and_read_back() -> None:
    from evidencekit.format.documents import CustodyEvent, Signer

    details = inc.note_details("loss", amount="35.50", currency="gbp", institution="PayPal")
    assert details == {"kind": "loss", "amount": "35.50", "currency": "GBP", "date": "",
                       "institution": "PayPal", "reference": ""}
    timeline = inc.note_details("timeline", time="2026-11-17 09:00 +01:00")
    assert timeline["time_utc"] == "2026-11-17T08:00:00.000000000Z"
    signer = Signer("ssh-ed25519 AAAA", "SHA256:abc")
    events = [CustodyEvent("C", n, "note", "2026-11-20T10:00:00.000000000Z", "clock", "Jane",
                           signer, "host", text, "a" * 64, "b" * 64, details=d)
              for n, (text, d) in enumerate([("found later", details),
                                             ("bank called", timeline),
                                             ("odd", {"kind": "loss", "amount": "x"})], 2)]
    notes = inc.notes_from_events(events)
    assert notes[0].loss == inc.Loss("35.50", "GBP", None, "PayPal", "", "found later")
    assert notes[1].moment is not None and notes[1].text == "bank called"
    assert notes[2].kind == "note" and notes[2].problem  # unreadable details: kept, flagged
    with pytest.raises(inc.IncidentError, match="time"):
        inc.note_details("timeline")


# ---------------------------------------------------------- a date without a time of day


def test_a_date_alone_is_a_moment_without_a_time() -> None:
    day = inc.parse_moment("2026-11-14", "--started")  # no zone needed: it is a calendar day
    assert day == inc.Moment("2026-11-14", None) and day.date_only
    assert inc.human_time(day) == "2026-11-14"
    with pytest.raises(inc.IncidentError, match="not a valid date"):
        inc.parse_moment("2026-02-30", "t")
    record = inc.load_yaml(DATE_ONLY_YAML)
    assert record.started == day
    document = json.loads(record.to_json())
    assert document["started"] == {"time": "2026-11-14", "time_utc": None}
    assert document["format_version"] == 1  # an optional form of §4.5, not a new version
    assert inc.from_json(record.to_json()) == record
    # in time order, a day alone comes before the times of that day
    entries = sorted(record.timeline, key=lambda e: e.moment.sort_key)
    assert [e.description for e in entries] == ["Paid the seller", "The seller's last message"]


@pytest.mark.parametrize("moment", [
    {"time": "2026-11-14", "time_utc": "2026-11-14T00:00:00.000000000Z"},  # would invent a time
    {"time": "2026-11-14", "time_utc": ""},  # "" only in custody notes (string values)
    {"time": "2026-11-14"},  # time_utc is always there
    {"time": "2026-13-14", "time_utc": None},
])
def test_stored_date_alone_is_validated_strictly(moment) -> None:
    document = json.loads(inc.load_yaml(DATE_ONLY_YAML).to_json())
    document["started"] = moment
    with pytest.raises(BundleError):
        inc.from_json(canonical.dumps(document))


def test_a_date_alone_in_a_timeline_note() -> None:
    from evidencekit.format.documents import CustodyEvent, Signer

    details = inc.note_details("timeline", time="2026-11-17")
    assert details == {"kind": "timeline", "time": "2026-11-17", "time_utc": ""}
    event = CustodyEvent("C", 2, "note", "2026-11-20T10:00:00.000000000Z", "clock", "Jane",
                         Signer("ssh-ed25519 AAAA", "SHA256:abc"), "host", "card blocked",
                         "a" * 64, "b" * 64, details=details)
    note = inc.notes_from_events([event])[0]
    assert note.moment == inc.Moment("2026-11-17", None) and note.problem is None


def test_a_decimal_comma_is_read_as_a_decimal_point() -> None:
    record = inc.from_input({"losses": [{"amount": "499,90", "currency": "EUR"}]})
    assert record.losses[0].amount == "499.90"


@pytest.mark.parametrize(("typed", "stored"), [
    ("1.250,00", "1250.00"), ("1,250.00", "1250.00"), ("1 250,00", "1250.00"),
    ("1\u00a0250,00", "1250.00"), ("1\u202f250.00", "1250.00"), ("1'250.50", "1250.50"),
    ("1\u2019250.50", "1250.50"), ("1.250,-", "1250"), ("1.250.000", "1250000"),
    ("1,250,000.5", "1250000.5"), ("0,125", "0.125"), ("1250.000", "1250.000"), ("12,5", "12.5"),
])
def test_a_yaml_amount_is_read_in_either_convention(typed: str, stored: str) -> None:
    record = inc.from_input({"losses": [{"amount": typed, "currency": "EUR"}]})
    assert record.losses[0].amount == stored


def test_a_yaml_amount_that_reads_two_ways_is_refused_saying_how_to_write_it() -> None:
    # before, '1.250' was stored as 1.250 (one and a quarter) although a German means 1250
    with pytest.raises(inc.IncidentError) as caught:
        inc.load_yaml("losses:\n  - {amount: 1.250, currency: EUR}\n")
    assert "can be read two ways" in caught.value.message
    assert "one thousand two hundred fifty" in caught.value.message
    assert "write it as 1250 or as 1.25" in (caught.value.hint or "")


def test_a_stored_amount_is_read_exactly_as_stored() -> None:
    # A bundle written before holds '1.250' as typed then: it is read back as it is, not asked
    loss = inc.loss({"amount": "1.250", "currency": "EUR"}, "losses[0]", typed=False)
    assert loss.amount == "1.250"
    with pytest.raises(inc.IncidentError):
        inc.loss({"amount": "1.250,00", "currency": "EUR"}, "losses[0]", typed=False)


@pytest.mark.parametrize(("typed", "local"), [
    ("14.11.2026", "2026-11-14"), ("1.2.2026", "2026-02-01"),
    ("14.11.2026 14:05", "2026-11-14T14:05:00+01:00"),
    ("14.11.2026, 14:05", "2026-11-14T14:05:00+01:00"),
])
def test_a_day_month_year_date_with_dots_is_read(typed: str, local: str) -> None:
    assert inc.parse_moment(typed, "started", ZoneInfo("Europe/Berlin")).local == local


def test_a_loss_date_with_dots_is_read() -> None:
    record = inc.from_input({"losses": [{"amount": "5", "currency": "EUR",
                                         "date": "14.11.2026"}]})
    assert record.losses[0].date == "2026-11-14"
    with pytest.raises(inc.IncidentError):
        inc.from_input({"losses": [{"amount": "5", "currency": "EUR", "date": "31.02.2026"}]})


def test_totals_are_exact_however_many_large_amounts() -> None:
    largest = "999999999999999999.99999999"  # 18 digits and 8 decimals, the most one may hold
    losses = [inc.Loss(largest, "EUR", None, "", "", "")] * 2000
    assert inc.totals(losses) == {"EUR": "1999999999999999999999.99998000"}


@pytest.mark.parametrize(("typed", "stored"), [("00,000 EUR", "0.000"), ("01,250 EUR", "1.250"),
                                               ("\u0661\u0662\u0665\u0660 €", "1250")])
def test_odd_amounts_are_read_or_refused_never_a_traceback(typed: str, stored: str) -> None:
    assert inc.money(typed, "loss").amount == stored


def test_a_stored_amount_is_ascii_digits() -> None:
    with pytest.raises(inc.IncidentError):
        inc.loss({"amount": "1\u0662\u0665\u0660", "currency": "EUR"}, "loss", typed=False)


@pytest.mark.parametrize("typed", ["31.02.2026", "14.13.2026 10:00", "31.02.2026 10:00"])
def test_a_wrong_date_is_quoted_as_it_was_typed(typed: str) -> None:
    """Not as the ISO form it was rewritten to ('2026-02-31' is not what the person typed)."""
    for read in (lambda: inc.parse_moment(typed, "when", ZoneInfo("Europe/Berlin")),
                 lambda: inc.loss({"amount": "1", "currency": "EUR", "date": typed}, "loss")):
        with pytest.raises(inc.IncidentError) as caught:
            read()
        assert repr(typed) in caught.value.message and "2026-" not in caught.value.message


# ------------------------------------------------- what people type, read in the library (issue 21)
@pytest.mark.parametrize(("value", "kind"), [
    ("scam@example.com", "email"), ("GB82 WEST 1234 5698 7654 32", "iban"),
    ("GB82 WEST 1234 5698 7654 33", "other"),  # check digits fail: not an IBAN
    ("+44 7700 900123", "phone"), ("12345", "other"), ("@scammer_99", "username"),
])
def test_identifier_kind_is_guessed_and_an_iban_must_check(value: str, kind: str) -> None:
    assert inc.guess_identifier_kind(value) == kind
    assert inc.guessed_identifier(value) == inc.Identifier(kind, value)


def test_a_bad_iban_still_looks_like_one() -> None:
    assert inc.looks_like_iban("gb82 west 1234 5698 7654 33")
    assert not inc.looks_like_iban("GB82 WEST")


def test_kind_labels_keep_acronyms() -> None:
    assert inc.kind_label("phone") == "phone number"
    assert inc.kind_label("iban") == "IBAN"


def test_an_ambiguous_amount_is_read_the_way_chosen() -> None:
    with pytest.raises(inc.AmbiguousMoney) as caught:
        inc.money("1.250 EUR", "loss")
    thousands, decimal = inc.reading(caught.value, 1, "loss"), inc.reading(caught.value, 2, "loss")
    assert (thousands.amount, thousands.currency) == ("1250", "EUR")
    assert (decimal.amount, decimal.currency) == ("1.25", "EUR")


def test_a_loss_date_is_read_in_either_form_or_refused() -> None:
    assert inc.loss_date("18.11.2026") == "2026-11-18"
    assert inc.loss_date("") is None
    with pytest.raises(inc.IncidentError, match=r"loss\.date") as caught:
        inc.loss_date("2026-13-01")
    assert caught.value.field == "loss.date"


def test_a_loss_on_one_line() -> None:
    found = inc.parse_loss_spec("1.250,00 € ; 18.11.2026; Example Bank; TX-1")
    assert found == inc.Loss("1250.00", "EUR", "2026-11-18", "Example Bank", "TX-1")
    with pytest.raises(inc.IncidentError, match=r"^--loss '1;2;3;4;5': at most four parts"):
        inc.parse_loss_spec("1;2;3;4;5")
    with pytest.raises(inc.IncidentError, match=r"^--loss '12 ZZZ': 'ZZZ' is not an ISO 4217") as caught:
        inc.parse_loss_spec("12 ZZZ")
    assert caught.value.hint


def test_a_note_request_becomes_its_details_and_text() -> None:
    asked = inc.NoteRequest(kind="loss", amount="35,50", currency="gbp", institution="PayPal")
    assert asked.content(ZoneInfo("Europe/Berlin")) == inc.NoteContent(
        {"kind": "loss", "amount": "35.50", "currency": "GBP", "date": "",
         "institution": "PayPal", "reference": ""}, "")
    timeline = inc.NoteRequest(kind="timeline", text=" card blocked ", time="2026-11-17 09:00")
    content = timeline.content(ZoneInfo("Europe/Berlin"))  # no zone typed: the local one
    assert content.details["time"] == "2026-11-17T09:00:00+01:00"
    assert content.text == "card blocked"
    in_zone = dataclasses.replace(timeline, time_zone="UTC").content(ZoneInfo("Europe/Berlin"))
    assert in_zone.details["time"] == "2026-11-17T09:00:00+00:00"


@pytest.mark.parametrize(("asked", "message"), [
    (inc.NoteRequest(kind="note", text="x", amount="5"), "--amount cannot be used with --kind note"),
    (inc.NoteRequest(kind="loss", currency="EUR", time="2026-01-01"),
     "--time cannot be used with --kind loss"),
    (inc.NoteRequest(kind="timeline", time="2026-11-17"), "a timeline note needs --text"),
    (inc.NoteRequest(kind="note", text="  "), "a note needs --text"),
])
def test_a_note_request_refuses_options_of_another_kind(asked: inc.NoteRequest,
                                                         message: str) -> None:
    with pytest.raises(UsageError, match=f"^{message}$"):
        asked.content(ZoneInfo("UTC"))


@pytest.mark.parametrize(("asked", "message"), [
    (inc.NoteRequest(kind="loss", currency="EUR"), "--amount is missing"),
    (inc.NoteRequest(kind="loss", amount="1.2.3", currency="EUR"), "--amount: "),
    (inc.NoteRequest(kind="identifier", identifier_kind="email", value="nope"), "--value: "),
    (inc.NoteRequest(kind="timeline", text="x", time="soon"), "--time: "),
])
def test_a_note_request_names_the_option_typed(asked: inc.NoteRequest, message: str) -> None:
    with pytest.raises(inc.IncidentError) as caught:
        asked.content(ZoneInfo("UTC"))
    assert caught.value.message.startswith(message)
    assert caught.value.field.startswith("--")


def test_the_local_zone_follows_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    assert inc.local_zone()[1] == "Europe/Berlin"
