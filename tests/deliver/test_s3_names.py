"""deliver.s3.why_not_the_named_bundle: what verify s3:// and store get hold a bundle to, from
its object's name alone (no server: the bundle is verified here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evidencekit.deliver.s3 import S3Url, why_not_the_named_bundle
from evidencekit.verify import verify

OTHER = "e9b6e6d02a8c2aeec35982558b123add780366f2499d8fb23b46a3d40f1410bc"


@pytest.mark.parametrize("name", [f"{OTHER}.evidence", f"{OTHER.upper()}.evidence",
                                  f"{OTHER}.EVIDENCE", f"{OTHER.upper()}.Evidence"])
def test_a_name_that_says_another_payload_in_any_case_is_found_out(bundle: Path,
                                                                   name: str) -> None:
    """A hex digest says the same in upper case: '…/E9B6….evidence' stored beside the bundle
    it names, holding another, was not judged (verify exit 0)."""
    report = verify(bundle)
    why = why_not_the_named_bundle(S3Url("evidence", f"cases/CASE-1/vm/{name}"), report)
    assert why is not None and "payload" in why, why


def test_its_own_payload_in_upper_case_is_its_name(bundle: Path) -> None:
    report = verify(bundle)
    assert report.payload is not None and report.events
    host = report.events[0].host
    for name in (report.payload.sha256, report.payload.sha256.upper()):
        url = S3Url("evidence", f"archive/CASE-1/{host}/{name}.evidence")
        assert why_not_the_named_bundle(url, report) is None
    taken = S3Url("evidence", f"archive/CASE-1/web-17/{report.payload.sha256}.evidence")
    assert "host" in (why_not_the_named_bundle(taken, report) or "")


def test_a_capture_name_in_upper_case_is_still_judged(bundle: Path) -> None:
    report = verify(bundle)  # captured to a file: its capture event records no key
    url = S3Url("evidence", "in/CASE-1/vm/CAPTURE-20261207T101010Z-0A1B2C3D.EVIDENCE")
    assert "not to a store" in (why_not_the_named_bundle(url, report) or "")
