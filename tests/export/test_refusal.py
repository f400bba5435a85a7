"""export.refuse_unless_verified: the one refusal of a bundle that did not verify, for every
export and for the report (which may be forced)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evidencekit.crypto import age
from evidencekit.errors import BundleError, NoMatchingKey
from evidencekit.export import refuse_unless_verified
from evidencekit.verify import Report, verify
from tests.support.sealed import Sealed


def identities(sealed: Sealed) -> list[age.Identity]:
    return list(age.parse_identity_file(sealed.identity.read_bytes()))


def test_a_bundle_that_verified_is_not_refused(sealed: Sealed) -> None:
    keys = identities(sealed)
    refuse_unless_verified(verify(sealed.bundle, keys), sealed.bundle, keys)


def test_a_bundle_the_keys_do_not_open_is_refused_unless_forced(sealed: Sealed) -> None:
    other = [age.X25519Identity.generate()]
    report = verify(sealed.bundle, other)
    with pytest.raises(NoMatchingKey, match=", so nothing was exported"):
        refuse_unless_verified(report, sealed.bundle, other)
    with pytest.raises(NoMatchingKey, match=", so no report was made"):
        refuse_unless_verified(report, sealed.bundle, other, outcome="no report was made")
    refuse_unless_verified(report, sealed.bundle, other, force=True)


def test_a_damaged_bundle_is_refused_naming_the_first_problem_and_how_to_force(
        sealed: Sealed, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.evidence"
    data = bytearray(sealed.bundle.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the payload
    damaged.write_bytes(bytes(data))
    keys = identities(sealed)
    report = verify(damaged, keys)
    with pytest.raises(BundleError, match=r"^the bundle did not pass verification \(.+\), so "
                       "no report was made") as caught:
        refuse_unless_verified(report, damaged, keys, outcome="no report was made",
                               forcing="--force makes one anyway")
    assert caught.value.hint is not None and caught.value.hint.endswith("; --force makes one anyway")
    refuse_unless_verified(report, damaged, keys, force=True)


def test_a_report_without_a_seal_is_refused_even_when_forced(tmp_path: Path) -> None:
    """What verify reports when it could not read the seal: nothing to make a report of."""
    junk = tmp_path / "junk.evidence"
    with pytest.raises(BundleError, match="not a readable evidence bundle, so nothing was"):
        refuse_unless_verified(Report(str(junk)), junk, [], force=True)
