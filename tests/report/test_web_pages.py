"""The report's line for each captured web page (capture --url), from the signed source record."""

from __future__ import annotations

from evidencekit.report.model import web_pages


def test_a_page_is_one_line_with_where_it_led_its_address_and_certificate() -> None:
    record = {"index": 1, "kind": "web", "given": "https://fake.example/", "bag_name":
              "fake.example", "path": "https://fake.example/login", "via_symlink": False,
              "details": {"started": "2026-11-16T13:05:07.123456789Z", "status": 200,
                          "address": "203.0.113.7", "requests": 9, "complete": False,
                          "certificate_sha256": "ab" * 32, "certificate_verified": False,
                          "certificate_error": "certificate has expired",
                          "screenshot": True, "pdf": False}}
    assert web_pages({"sources": [{"index": 0, "given": "/home"}, record]}) == [
        "https://fake.example/ → https://fake.example/login; fetched 2026-11-16 13:05:07 UTC; "
        f"HTTP 200 from 203.0.113.7; certificate SHA-256 {'ab' * 32} (not trusted: "
        "certificate has expired); screenshot made from the capture; NOT CAPTURED WHOLE (see "
        "remarks); stored as data/fake.example.*"]


def test_odd_or_missing_details_are_said_plainly_never_a_crash() -> None:
    for details in (None, "x", {"status": "200", "address": None, "started": 5}, {}):
        [line] = web_pages({"sources": [{"kind": "web", "given": "http://a.example/\n",
                                         "path": "http://a.example/\n", "bag_name": "a",
                                         "details": details}]})
        assert line.startswith("http://a.example/") and "no answer" in line
        assert "\n" not in line
    assert web_pages({"sources": "nonsense"}) == [] and web_pages({}) == []
