"""A bank-fraud case as a victim would capture it: real screenshots (PNG, JPEG), a damaged
picture, exported e-mails, a statement; sealed with an incident record and notes (made once per
module that asks)."""

from __future__ import annotations

import pytest

from tests.support.fraud_case import FraudCase, capture_case, make_evidence
from tests.support.keys import make_keys


@pytest.fixture(scope="module")
def fraud_case(tmp_path_factory: pytest.TempPathFactory) -> FraudCase:
    folder = tmp_path_factory.mktemp("fraud")
    keys = make_keys(folder)
    return FraudCase(capture_case(folder, keys, make_evidence(folder)), folder, keys)
