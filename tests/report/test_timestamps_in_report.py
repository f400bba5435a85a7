"""The report lists the trusted timestamps (the format-v3 fixture holds one), and says whether
each was checked against a root the reader trusts."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.cli import run_cli

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def report(tmp_path: Path, name: str, *more: object) -> str:
    bundle = tmp_path / "v3.evidence"
    if not bundle.exists():
        shutil.copyfile(ASSETS / "format-v3.evidence", bundle)
    secret = tmp_path / "passphrase.txt"
    secret.write_text("evidencekit format v3 test vector")  # public, tests/assets/make_v3_bundle.py
    output = tmp_path / name
    done = run_cli("report", bundle, "--passphrase-file", secret, "-o", output, *more,
                   env={"XDG_CONFIG_HOME": str(tmp_path / "config")})
    assert done.code == 0, done.stderr
    return output.read_text("utf-8")


def test_the_report_lists_the_timestamp_checked_against_the_root(tmp_path: Path) -> None:
    page = report(tmp_path, "checked.html", "--tsa-ca", ASSETS / "format-v3-tsa-root.pem")
    section = page[page.index('id="timestamps"'):]
    assert "CN=Test TSA" in section
    assert "checked against the trusted root given" in section
    unchecked = report(tmp_path, "unchecked.html")
    assert "not checked against a root you trust" in unchecked[unchecked.index('id="timestamps"'):]


def test_a_report_without_timestamps_says_so(tmp_path: Path) -> None:
    shutil.copyfile(ASSETS / "format-v2.evidence", tmp_path / "v2.evidence")
    secret = tmp_path / "passphrase.txt"
    secret.write_text("evidencekit format v2 test vector")
    done = run_cli("report", tmp_path / "v2.evidence", "--passphrase-file", secret, "-o",
                   tmp_path / "r.html", env={"XDG_CONFIG_HOME": str(tmp_path / "config")})
    assert done.code == 0, done.stderr
    page = (tmp_path / "r.html").read_text("utf-8")
    assert "None: the time of the seal is the signer&#x27;s own clock" in page or \
        "None: the time of the seal is the signer's own clock" in page
