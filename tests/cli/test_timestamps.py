"""Trusted timestamps (RFC 3161) end to end, against a real TSA on 127.0.0.1 (openssl ts -reply):
capture --tsa, timestamp, verify --tsa-ca, and openssl ts -verify on the stored token."""

from __future__ import annotations

import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evidencekit import timestamps
from evidencekit.errors import ExitCode
from evidencekit.format.documents import SEAL_SIG
from evidencekit.format.outer import END_OF_ARCHIVE, OuterWriter, member_header
from evidencekit.format.reader import open_bundle
from evidencekit.verify import verify
from tests.support.cli import invoke
from tests.support.schemas import assert_valid
from tests.support.tools import require_tool
from tests.support.tsa_server import LocalTSA, down_url, make_pki, running_tsa


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    make_pki(folder)
    return folder


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("other-pki")
    make_pki(folder, "Another Root")
    return folder


@pytest.fixture
def tsa(pki: Path) -> Iterator[LocalTSA]:
    with running_tsa(pki) as server:
        yield server


def capture(tmp_path: Path, keys: dict[str, Any], tree: Path, *tsa_args: str,
            code: int = 0) -> tuple[Path, dict[str, Any]]:
    tmp_path.mkdir(exist_ok=True)
    out = tmp_path / "case.evidence"
    result = invoke("capture", tree, "--case", "TS-1", "-R", keys["recipient"], "--sign-key",
                    keys["signer"], "-o", out, *tsa_args, "--json")
    assert result.code == code, result.stdout + result.stderr
    document = result.json()
    assert_valid(document, "capture")
    return out, document


def members(bundle: Path) -> list[str]:
    opened = open_bundle(bundle)
    try:
        return [m.name for m in opened.members]
    finally:
        opened.close()


def member_data(bundle: Path, name: str) -> bytes:
    opened = open_bundle(bundle)
    try:
        return opened.read_small(name)
    finally:
        opened.close()


def test_capture_with_a_tsa_stores_a_token_that_verifies_here_and_with_openssl(
        tmp_path: Path, user: Path, keys: dict[str, Any], tree: Path, tsa: LocalTSA):
    bundle, document = capture(tmp_path, keys, tree, "--tsa", tsa.url)
    [added] = document["timestamps"]["added"]
    assert added["member"] == "timestamps/000001.tsr" and added["tsa_name"] == "CN=Test TSA"
    assert document["timestamps"]["failed"] == [] and document["timestamps"]["later"] is None
    assert members(bundle)[-1] == "timestamps/000001.tsr"

    checked = invoke("verify", bundle, "--tsa-ca", tsa.root, "--json")
    assert checked.code == 0, checked.stdout
    [stamp] = checked.json()["timestamps"]
    assert stamp["trusted"] is True and stamp["problem"] is None
    assert stamp["policy"] == "1.2.3.4.1"  # the TSA's policy, recorded
    assert_valid(checked.json(), "verify")
    people = invoke("verify", bundle, "--tsa-ca", tsa.root)
    assert "checked against your --tsa-ca root" in people.stdout
    unanchored = invoke("verify", bundle, "--json")
    assert unanchored.code == 0 and unanchored.json()["timestamps"][0]["trusted"] is None
    assert "not checked against a trusted root" in invoke("verify", bundle).stdout

    # Interop: the stored response is what openssl ts -verify reads, over seal.json.sig
    out = tmp_path / "out"
    with tarfile.open(bundle) as tar:
        tar.extractall(out, filter="data")
    proc = subprocess.run([require_tool("openssl"), "ts", "-verify", "-data",
                           out / SEAL_SIG, "-in", out / "timestamps" / "000001.tsr",
                           "-CAfile", tsa.root], capture_output=True, text=True)
    assert proc.returncode == 0 and "Verification: OK" in proc.stdout, proc.stderr
    wrong = subprocess.run([require_tool("openssl"), "ts", "-verify", "-data",
                            out / "seal.json", "-in", out / "timestamps" / "000001.tsr",
                            "-CAfile", tsa.root], capture_output=True, text=True)
    assert wrong.returncode != 0  # the test can fail: openssl does check the imprint


def test_a_tsa_that_is_down_never_loses_the_capture(tmp_path: Path, user: Path,
                                                    keys: dict[str, Any], tree: Path):
    url = down_url()
    bundle, document = capture(tmp_path, keys, tree, "--tsa", url,
                               code=ExitCode.TIMESTAMP_MISSING)
    assert document["ok"] is True and document["timestamps"]["added"] == []
    [(failed)] = document["timestamps"]["failed"]
    assert failed["tsa"] == url and "could not reach" in failed["problem"]
    assert document["timestamps"]["later"] == f"evidencekit timestamp {bundle} --tsa {url}"
    assert verify(bundle).ok and not any(m.startswith("timestamps/") for m in members(bundle))


def test_capture_without_json_says_how_to_add_the_timestamp_later(
        tmp_path: Path, user: Path, keys: dict[str, Any], tree: Path):
    url = down_url()
    out = tmp_path / "case.evidence"
    result = invoke("capture", tree, "-R", keys["recipient"], "--sign-key", keys["signer"],
                    "-o", out, "--tsa", url)
    assert result.code == ExitCode.TIMESTAMP_MISSING
    assert "Sealed" in result.stdout
    assert f"no timestamp from {url}" in result.stderr
    assert f"evidencekit timestamp {out} --tsa {url}" in result.stderr.replace("\n", "")


def test_two_tsas_one_down_keeps_the_good_token_and_names_the_other(
        tmp_path: Path, user: Path, keys: dict[str, Any], tree: Path, tsa: LocalTSA):
    url = down_url()
    bundle, document = capture(tmp_path, keys, tree, "--tsa", url, "--tsa", tsa.url,
                               code=ExitCode.TIMESTAMP_MISSING)
    assert [a["tsa"] for a in document["timestamps"]["added"]] == [tsa.url]
    assert [f["tsa"] for f in document["timestamps"]["failed"]] == [url]
    assert document["timestamps"]["later"].endswith(f"--tsa {url}")
    report = verify(bundle)
    assert report.ok and len(report.timestamps) == 1


def test_timestamp_added_later_coexists_with_custody_appends_and_a_reseal(
        tmp_path: Path, user: Path, keys: dict[str, Any], tree: Path, tsa: LocalTSA):
    bundle, _ = capture(tmp_path, keys, tree)
    added = invoke("timestamp", bundle, "--tsa", tsa.url, "--json")
    assert added.code == 0, added.stdout + added.stderr
    assert_valid(added.json(), "timestamp")
    note = invoke("custody", "add", bundle, "--action", "note", "--note", "x", "--sign-key",
                  keys["signer"])
    assert note.code == 0, note.stderr
    again = invoke("timestamp", bundle, "--tsa", tsa.url, "--tsa-ca", tsa.root, "--json")
    assert again.code == 0 and again.json()["added"][0]["member"] == "timestamps/000002.tsr"
    assert members(bundle)[4:] == ["custody/000001.json", "custody/000001.json.sig",
                                   "timestamps/000001.tsr", "custody/000002.json",
                                   "custody/000002.json.sig", "timestamps/000002.tsr"]
    report = verify(bundle, tsa_roots=[_root(tsa)])
    assert report.ok and [t.trusted for t in report.timestamps] == [True, True]

    resealed = tmp_path / "resealed.evidence"
    done = invoke("reseal", bundle, "-i", keys["identity"], "-r", keys["recipient_line"],
                  "--sign-key", keys["signer"], "-o", resealed)
    assert done.code == 0, done.stderr
    assert [m for m in members(resealed) if m.startswith("timestamps/")] == \
        ["timestamps/000001.tsr", "timestamps/000002.tsr"]
    assert verify(resealed, tsa_roots=[_root(tsa)]).ok


def _root(tsa: LocalTSA) -> Any:
    from evidencekit import timestamps

    return timestamps.load_roots(str(tsa.root))[0]


def test_a_token_from_another_root_is_refused_with_tsa_ca(
        tmp_path: Path, user: Path, keys: dict[str, Any], tree: Path, tsa: LocalTSA,
        other_pki: Path):
    bundle, _ = capture(tmp_path, keys, tree, "--tsa", tsa.url)
    checked = invoke("verify", bundle, "--tsa-ca", other_pki / "ca.crt", "--json")
    assert checked.code == ExitCode.EVIDENCE_PROBLEM
    [stamp] = checked.json()["timestamps"]
    assert stamp["trusted"] is False
    assert "does not chain to the given root" in stamp["problem"]


def test_a_tampered_token_signature_is_an_error(
        tmp_path: Path, user: Path, keys: dict[str, Any], tree: Path, tsa: LocalTSA):
    bundle, _ = capture(tmp_path, keys, tree, "--tsa", tsa.url)
    opened = open_bundle(bundle)
    member = opened.by_name["timestamps/000001.tsr"]
    opened.close()
    with open(bundle, "r+b") as f:  # the last bytes of the DER are the ECDSA signature
        f.seek(member.offset + member.size - 5)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x01]))
    checked = invoke("verify", bundle, "--tsa-ca", tsa.root, "--json")
    assert checked.code == ExitCode.EVIDENCE_PROBLEM
    problem = checked.json()["timestamps"][0]["problem"]
    assert "signature" in problem and "not valid" in problem


def test_a_token_over_other_data_is_an_error_even_without_tsa_ca(
        tmp_path: Path, user: Path, keys: dict[str, Any], tree: Path, tsa: LocalTSA):
    """A token lifted from another bundle: its imprint is not this seal's signature."""
    first, _ = capture(tmp_path / "a", keys, tree, "--tsa", tsa.url)
    second, _ = capture(tmp_path / "b", keys, tree)
    token = member_data(first, "timestamps/000001.tsr")
    opened = open_bundle(first)
    mtime = opened.by_name["timestamps/000001.tsr"].mtime
    opened.close()
    _append_raw(second, "timestamps/000001.tsr", token, mtime)
    report = verify(second)
    assert not report.ok
    assert any(f.check == "timestamps" and "imprint" in f.problem
               for f in report.findings.errors)


# Answers refused when they come, so that nothing unsound is stored (a timestamp cannot be
# taken out of a bundle): the mode of the test TSA, and what the refusal says.
#  bad-signature: before, stored (exit 0, 'Timestamped by CN=Test TSA'), and from then on every
#    'verify --tsa-ca' of the bundle said VERIFICATION FAILED: without a root, the signature was
#    not checked at all.
#  unknown-status: rfc3161-client reads most fields only when asked: a status of 7 made capture
#    --tsa end in 'internal error: ValueError' (exit 5), the bundle written.
REFUSED_ANSWERS = {
    "other-nonce": "another nonce",
    "bad-signature": "signature over the token is not valid",
    "unknown-status": "cannot be read",
}


@pytest.mark.parametrize("mode", list(REFUSED_ANSWERS))
def test_an_unsound_answer_is_refused_at_request_time_and_nothing_stored(
        tmp_path: Path, user: Path, keys: dict[str, Any], tree: Path, tsa: LocalTSA,
        mode: str):
    tsa.mode = mode
    bundle, document = capture(tmp_path, keys, tree, "--tsa", tsa.url,
                               code=ExitCode.TIMESTAMP_MISSING)
    [failed] = document["timestamps"]["failed"]
    assert REFUSED_ANSWERS[mode] in failed["problem"]
    assert not any(m.startswith("timestamps/") for m in members(bundle))


def test_a_strangers_token_with_a_name_that_cannot_be_read_is_a_finding_not_a_crash(
        tmp_path: Path, user: Path, keys: dict[str, Any], tree: Path, tsa: LocalTSA):
    """Anyone holding a bundle may append a timestamp. One whose SignerInfo names its issuer
    with a string type that does not exist (tag 0) made verify end in 'internal error:
    KeyError: 0' (exit 5), with --tsa-ca or without."""
    from evidencekit import timestamps

    bundle, _ = capture(tmp_path, keys, tree)
    signature = member_data(bundle, SEAL_SIG)
    response = bytearray(_raw_response(tsa, signature))
    name = response.rindex(b"Test TSA Root")  # the SignerInfo's, after the certificates
    assert response[name - 2] == 0x0C  # UTF8String
    response[name - 2] = 0
    token = timestamps.parse(bytes(response), signature)
    _append_raw(bundle, "timestamps/000001.tsr", bytes(response),
                int(token.gen_time.timestamp()))
    plain = invoke("verify", bundle, "--json")
    assert plain.code == 0, plain.stdout + plain.stderr
    assert plain.json()["timestamps"][0]["tsa"] == ""
    anchored = invoke("verify", bundle, "--tsa-ca", tsa.root, "--json")
    assert anchored.code == ExitCode.EVIDENCE_PROBLEM, anchored.stdout + anchored.stderr
    assert "does not verify" in anchored.json()["timestamps"][0]["problem"]


def test_a_tsa_that_answers_a_byte_at_a_time_is_given_up_in_the_time_said(
        tsa: LocalTSA) -> None:
    """Each byte came well within the timeout of a socket read, so the answer (1.3 KB, here
    some 26 s) was waited for whole, however long the time said per TSA."""
    import time

    from evidencekit import timestamps

    tsa.mode = "drip"
    started = time.monotonic()
    with pytest.raises(timestamps.TimestampError, match="did not answer in full within 1 s"):
        timestamps.request(tsa.url, b"a seal.json.sig", timeout=1.0)
    assert time.monotonic() - started < 10  # (the whole answer: 26 s; 9 s for a loaded machine)


def test_a_tsa_certificate_that_had_expired_is_refused(
        tmp_path: Path, user: Path, keys: dict[str, Any], tree: Path, tsa: LocalTSA):
    tsa.mode = "expired"
    bundle, document = capture(tmp_path, keys, tree, "--tsa", tsa.url,
                               code=ExitCode.TIMESTAMP_MISSING)
    assert "was not valid at the time" in document["timestamps"]["failed"][0]["problem"]
    # and a verifier refuses such a token too (stored here by hand, as a forger would)
    tsa.mode = "expired"
    from evidencekit import timestamps

    response = _raw_response(tsa, member_data(bundle, SEAL_SIG))
    token = timestamps.parse(response, member_data(bundle, SEAL_SIG))
    _append_raw(bundle, "timestamps/000001.tsr", response, int(token.gen_time.timestamp()))
    checked = invoke("verify", bundle, "--tsa-ca", tsa.root, "--json")
    assert checked.code == ExitCode.EVIDENCE_PROBLEM
    assert "had expired" in checked.json()["timestamps"][0]["problem"]


def test_timestamps_out_of_place_or_sequence_or_time_are_structure_errors(
        tmp_path: Path, user: Path, keys: dict[str, Any], tree: Path, tsa: LocalTSA):
    bundle, _ = capture(tmp_path, keys, tree, "--tsa", tsa.url)
    token = member_data(bundle, "timestamps/000001.tsr")
    mtime = next(m.mtime for m in open_bundle(bundle).members
                 if m.name == "timestamps/000001.tsr")
    skipped = tmp_path / "skipped.evidence"
    skipped.write_bytes(bundle.read_bytes())
    _append_raw(skipped, "timestamps/000003.tsr", token, mtime)
    assert any("out of sequence" in f.problem for f in verify(skipped).findings.errors)
    retimed = tmp_path / "retimed.evidence"
    retimed.write_bytes(bundle.read_bytes())
    _append_raw(retimed, "timestamps/000002.tsr", token, mtime + 3600)
    assert [f.check for f in verify(retimed).findings.errors] == ["member-times"]
    # between a custody event and its signature
    data = bundle.read_bytes()
    opened = open_bundle(bundle)
    sig = opened.by_name["custody/000001.json.sig"]
    opened.close()
    start = sig.header_offset
    inserted = member_header("timestamps/000001.tsr", len(token), mtime) + token + \
        b"\0" * (-len(token) % 512)
    cut = data[:start] + inserted + data[start:]
    # remove the original timestamp at the end (it would be a duplicate)
    last = len(member_header("x", 0, 0)) + len(token) + (-len(token) % 512)
    cut = cut[: len(cut) - len(END_OF_ARCHIVE) - last] + END_OF_ARCHIVE
    misplaced = tmp_path / "misplaced.evidence"
    misplaced.write_bytes(cut)
    assert any("not where timestamps may be" in f.problem
               for f in verify(misplaced).findings.errors)


def test_tsa_must_be_an_http_url(tmp_path: Path, user: Path, keys: dict[str, Any], tree: Path):
    result = invoke("capture", tree, "-R", keys["recipient"], "--sign-key", keys["signer"],
                    "-o", tmp_path / "x.evidence", "--tsa", "file:///etc/passwd")
    assert result.code == ExitCode.USAGE and not (tmp_path / "x.evidence").exists()


def _append_raw(bundle: Path, name: str, data: bytes, mtime: int) -> None:
    """Append a member as a forger (or a careless tool) would: no checks."""
    content = bundle.read_bytes()
    assert content.endswith(END_OF_ARCHIVE)
    import io

    out = io.BytesIO()
    writer = OuterWriter(out)
    writer.add_bytes(name, data, mtime)
    writer.finish()
    bundle.write_bytes(content[: -len(END_OF_ARCHIVE)] + out.getvalue())


def _raw_response(tsa: LocalTSA, signature: bytes) -> bytes:
    import urllib.request

    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

    query = (TimestampRequestBuilder().data(signature).hash_algorithm(HashAlgorithm.SHA256)
             .nonce(nonce=True).cert_request(cert_request=True).build())
    request = urllib.request.Request(tsa.url, data=query.as_bytes(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return bytes(answer.read())


def test_an_unreadable_timestamp_member_is_a_finding_not_a_crash(
        tmp_path: Path, user: Path, keys: dict[str, Any], tree: Path):
    bundle, _ = capture(tmp_path, keys, tree)
    opened = open_bundle(bundle)
    mtime = opened.by_name["seal.json"].mtime
    opened.close()
    _append_raw(bundle, "timestamps/000001.tsr", b"\x30\x03\x02\x01\x00 not DER", mtime)
    result = invoke("verify", bundle, "--json")
    assert result.code == ExitCode.EVIDENCE_PROBLEM and "Traceback" not in result.stderr
    [finding] = [f for f in result.json()["findings"] if f["check"] == "timestamps"]
    assert "not a readable RFC 3161 response" in finding["problem"]


def test_a_configured_tsa_countersigns_every_capture(tmp_path: Path, user: Path,
                                                      keys: dict[str, Any], tree: Path,
                                                      tsa: LocalTSA):
    """``tsa:`` in the configuration file is capture's --tsa (docs/playbooks.md)."""
    config = tmp_path / "config.yaml"
    config.write_text(f"tsa: [{tsa.url}]\n")
    out = tmp_path / "configured.evidence"
    result = invoke("--config", config, "capture", tree, "--case", "TS-CFG", "-R",
                    keys["recipient"], "--sign-key", keys["signer"], "-o", out, "--json")
    assert result.code == 0, result.stdout + result.stderr
    [added] = result.json()["timestamps"]["added"]
    assert added["tsa"] == tsa.url
    assert members(out)[-1] == "timestamps/000001.tsr"


def test_a_stored_token_its_own_certificate_did_not_sign_is_a_warning_without_tsa_ca(
        tmp_path: Path, user: Path, keys: dict[str, Any], tree: Path, tsa: LocalTSA):
    """A bundle stamped before capture checked a TSA's answer against the certificate it
    carries (evidencekit.cms) may hold one whose signature does not verify: without --tsa-ca
    it verified silently ('not checked against a trusted root'), as if it proved the time.
    Now a warning (the bundle itself is intact: exit 0), signature_valid false in --json;
    with --tsa-ca an error, as before. A good token: no warning, signature_valid true."""
    from evidencekit import timestamps

    good, _ = capture(tmp_path / "good", keys, tree, "--tsa", tsa.url)
    checked = invoke("verify", good, "--json")
    assert checked.code == 0 and checked.json()["timestamps"][0]["signature_valid"] is True
    assert not [f for f in checked.json()["findings"] if f["check"] == "timestamps"]

    bundle, _ = capture(tmp_path / "old", keys, tree)
    tsa.mode = "bad-signature"  # stored by hand, as capture did before it checked
    response = _raw_response(tsa, member_data(bundle, SEAL_SIG))
    token = timestamps.parse(response, member_data(bundle, SEAL_SIG))
    _append_raw(bundle, "timestamps/000001.tsr", response, int(token.gen_time.timestamp()))
    checked = invoke("verify", bundle, "--json")
    assert checked.code == 0, checked.stdout
    assert_valid(checked.json(), "verify")
    [stamp] = checked.json()["timestamps"]
    assert stamp["signature_valid"] is False and stamp["problem"] is None
    [warning] = [f for f in checked.json()["findings"] if f["check"] == "timestamps"]
    assert warning["severity"] == "warning" and warning["where"] == "timestamps/000001.tsr"
    assert warning["problem"].startswith("the TSA's signature does not verify with the "
                                         "certificate it carries: ")
    assert "proves nothing" in warning["problem"]
    people = invoke("verify", bundle)
    assert people.code == 0
    assert "its signature does not check: it proves nothing" in people.stdout
    assert "not checked against a trusted root" not in people.stdout
    anchored = invoke("verify", bundle, "--tsa-ca", tsa.root, "--json")
    assert anchored.code == ExitCode.EVIDENCE_PROBLEM
    assert anchored.json()["timestamps"][0]["signature_valid"] is False


def test_a_stored_token_whose_certificate_holds_a_key_of_no_known_kind_is_a_warning(
        tmp_path: Path, user: Path, keys: dict[str, Any], tree: Path, tsa: LocalTSA):
    """Anyone holding a bundle can append a timestamp: one whose signer's certificate holds a
    key cryptography cannot load (a key type or a curve it does not know) ended verify without
    --tsa-ca in 'internal error' (exit 5: UnsupportedAlgorithm or ValueError escaped the check
    of the token's own signature); now the warning of a signature that does not verify."""
    bundle, _ = capture(tmp_path, keys, tree)
    response = _raw_response(tsa, member_data(bundle, SEAL_SIG))
    mtime = int(timestamps.parse(response, member_data(bundle, SEAL_SIG)).gen_time.timestamp())
    ec_key, p256 = bytes.fromhex("06072a8648ce3d0201"), bytes.fromhex("06082a8648ce3d030107")
    assert ec_key in response and p256 in response  # the TSA's (and its root's) P-256 keys
    for name, forged in (
            ("unknown-type", response.replace(ec_key, bytes.fromhex("06072a8648ce3d0209"))),
            ("unknown-curve", response.replace(p256, bytes.fromhex("06082a8648ce3d030101")))):
        copy = tmp_path / f"{name}.evidence"
        copy.write_bytes(bundle.read_bytes())
        _append_raw(copy, "timestamps/000001.tsr", forged, mtime)
        checked = invoke("verify", copy, "--json")
        assert checked.code == 0, name + checked.stdout + checked.stderr
        assert checked.json()["timestamps"][0]["signature_valid"] is False
        [warning] = [f for f in checked.json()["findings"] if f["check"] == "timestamps"]
        assert "proves nothing" in warning["problem"], warning
        assert invoke("verify", copy, "--tsa-ca", tsa.root).code == ExitCode.EVIDENCE_PROBLEM
