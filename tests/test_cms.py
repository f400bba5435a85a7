"""evidencekit.cms: a TSA's token checked against the certificate that names itself its signer,
with tokens made by a real TSA (openssl ts -reply, tests/support/tsa_server.py) and changed here."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from evidencekit.cms import Unverifiable, check_signature
from tests.support.tsa_server import make_pki, running_tsa

SIGNED = b"the bytes of a seal.json.sig"


@pytest.fixture(scope="module", params=["ec", "rsa"])
def token(tmp_path_factory: pytest.TempPathFactory,
          request: pytest.FixtureRequest) -> Iterator[tuple[bytes, x509.Certificate]]:
    """A real TSA's token (P-256 or RSA, as most public TSAs), and its signer's certificate."""
    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

    folder = tmp_path_factory.mktemp("pki")
    make_pki(folder, rsa=request.param == "rsa")
    with running_tsa(folder) as tsa:
        query = (TimestampRequestBuilder().data(SIGNED).hash_algorithm(HashAlgorithm.SHA256)
                 .nonce(nonce=True).cert_request(cert_request=True).build())
        request = urllib.request.Request(tsa.url, data=query.as_bytes(), method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            der = bytes(answer.read())
        yield der, x509.load_pem_x509_certificate(tsa.cert.read_bytes())


def test_a_token_signed_by_its_certificate_passes(token: tuple[bytes, x509.Certificate]) -> None:
    check_signature(*token)


def test_a_changed_signature_or_content_or_another_signer_is_refused(
        token: tuple[bytes, x509.Certificate], tmp_path: Path) -> None:
    der, cert = token
    with pytest.raises(Unverifiable, match="signature over the token is not valid"):
        check_signature(der[:-1] + bytes([der[-1] ^ 1]), cert)
    content = der.index(bytes.fromhex("06042a030401"))  # the token's policy, 1.2.3.4.1
    with pytest.raises(Unverifiable, match="message digest is not that of its content"):
        check_signature(der[:content + 5] + bytes([der[content + 5] ^ 1]) + der[content + 6:],
                        cert)
    with running_tsa(tmp_path / "other") as other:  # a certificate of another key
        stranger = x509.load_pem_x509_certificate(other.cert.read_bytes())
    with pytest.raises(Unverifiable, match="signature over the token is not valid"):
        check_signature(der, stranger)


@pytest.mark.parametrize("cut", [0, 1, 2, 10, 100, -50, -1])
def test_a_token_cut_short_or_garbage_is_refused_not_a_crash(
        token: tuple[bytes, x509.Certificate], cut: int) -> None:
    der, cert = token
    with pytest.raises(Unverifiable):
        check_signature(der[:cut], cert)
    with pytest.raises(Unverifiable):
        check_signature(os.urandom(len(der)), cert)
