import pytest

from evidencekit.clock import parse_rfc3339, rfc3339


def test_nanosecond_round_trip():
    ns = 1_700_000_000_123_456_789
    assert rfc3339(ns) == "2023-11-14T22:13:20.123456789Z"
    assert parse_rfc3339(rfc3339(ns)) == ns


@pytest.mark.parametrize("text", ["2023-11-14T22:13:20Z", "2023-11-14T22:13:20.123+01:00", "x"])
def test_other_forms_are_rejected(text):
    with pytest.raises(ValueError):
        parse_rfc3339(text)
