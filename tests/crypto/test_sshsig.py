"""Unit tests for evidencekit.crypto.sshsig (OpenSSH PROTOCOL.sshsig).

The blob is rebuilt field by field here (independently of the module) so that each test can
change exactly one field and check that parsing or verification refuses it.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from evidencekit.crypto import sshsig
from evidencekit.crypto.keys import SigningKey
from evidencekit.crypto.sshsig import NAMESPACE, parse, sign, sign_digest, verify, verify_digest
from evidencekit.crypto.sshwire import encode_string, encode_uint32
from evidencekit.errors import BundleError, ExitCode, SignatureError, UsageError

# RFC 8032 section 7.1, TEST 1 (a published test key).
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
MESSAGE = b"evidencekit test vector\n"
# Made with OpenSSH 9.2: `ssh-keygen -Y sign -n evidencekit -f K msg`, K holding the key above
# and msg holding MESSAGE. Ed25519 is deterministic, so our bytes must be identical.
SSH_KEYGEN_SIGNATURE = b"""\
-----BEGIN SSH SIGNATURE-----
U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAg11qYAYKxCrfVS/7TyWQHOg7hcv
PapiMlrwIaaPcHURoAAAALZXZpZGVuY2VraXQAAAAAAAAABnNoYTUxMgAAAFMAAAALc3No
LWVkMjU1MTkAAABAU2YquvLQGYnOtGSheuPIhGSpm3TVlguqbpsC4QWkXifjBpoZRf68Mk
Y/LX6pe57nTkYxwmlMwCIYJ6I5PWvqBA==
-----END SSH SIGNATURE-----
"""


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey(Ed25519PrivateKey.from_private_bytes(RFC8032_SEED), "test")


# ------------------------------------------------------------- an independent blob builder


def signed_data(namespace: bytes, hash_alg: bytes, digest: bytes, reserved: bytes = b"") -> bytes:
    return (
        b"SSHSIG"
        + encode_string(namespace)
        + encode_string(reserved)
        + encode_string(hash_alg)
        + encode_string(digest)
    )


def build(
    key: SigningKey,
    message: bytes = MESSAGE,
    *,
    magic: bytes = b"SSHSIG",
    version: int = 1,
    public_wire: bytes | None = None,
    namespace: bytes = b"evidencekit",
    reserved: bytes = b"",
    hash_alg: bytes = b"sha512",
    sig_type: bytes = b"ssh-ed25519",
    raw: bytes | None = None,
    sig_trailer: bytes = b"",
    trailer: bytes = b"",
    signed_hash: str = "sha512",
    signed_namespace: bytes | None = None,
    signed_reserved: bytes = b"",
) -> bytes:
    """An armored SSHSIG with every field under the test's control.

    By default the signature is genuine; the ``signed_*`` arguments say what was really signed
    when that differs from what the blob claims.
    """
    digest = hashlib.new(signed_hash, message).digest()
    to_sign = signed_data(
        namespace if signed_namespace is None else signed_namespace,
        signed_hash.encode(),
        digest,
        signed_reserved,
    )
    if raw is None:
        raw = key.key.sign(to_sign)
    blob = (
        magic
        + encode_uint32(version)
        + encode_string(key.public.wire if public_wire is None else public_wire)
        + encode_string(namespace)
        + encode_string(reserved)
        + encode_string(hash_alg)
        + encode_string(encode_string(sig_type) + encode_string(raw) + sig_trailer)
        + trailer
    )
    return armor(blob)


def armor(blob: bytes, width: int = 70, final_newline: bool = True) -> bytes:
    body = base64.b64encode(blob).decode()
    lines = [body[i : i + width] for i in range(0, len(body), width)]
    text = "\n".join(["-----BEGIN SSH SIGNATURE-----", *lines, "-----END SSH SIGNATURE-----"])
    return (text + ("\n" if final_newline else "")).encode()


def blob_of(armored: bytes) -> bytes:
    return base64.b64decode(b"".join(armored.splitlines()[1:-1]))


# ------------------------------------------------------------- signing


def test_signature_is_byte_identical_to_ssh_keygen(key: SigningKey) -> None:
    assert sign(key, MESSAGE) == SSH_KEYGEN_SIGNATURE


def test_ssh_keygen_signature_verifies(key: SigningKey) -> None:
    assert verify(SSH_KEYGEN_SIGNATURE, MESSAGE) == key.public


def test_builder_matches_module(key: SigningKey) -> None:
    """The tampering tests below start from this independent, genuine construction."""
    assert build(key) == SSH_KEYGEN_SIGNATURE


def test_sign_and_verify_round_trip() -> None:
    key = SigningKey.generate("someone")
    armored = sign(key, b"data")
    signer = verify(armored, b"data")
    assert signer == key.public
    assert signer.comment == ""  # the signature carries the key, never its comment


def test_armor_layout(key: SigningKey) -> None:
    armored = sign(key, b"x" * 1000, namespace="n" * 200)
    lines = armored.decode().split("\n")
    assert lines[0] == "-----BEGIN SSH SIGNATURE-----"
    assert lines[-2:] == ["-----END SSH SIGNATURE-----", ""]
    assert all(len(line) == 70 for line in lines[1:-3])
    assert 0 < len(lines[-3]) <= 70


def test_armor_when_base64_fills_the_last_line_exactly(key: SigningKey) -> None:
    """A 40-character namespace makes 280 base64 characters: no blank line before END."""
    armored = sign(key, MESSAGE, namespace="n" * 40)
    lines = armored.decode().split("\n")
    assert [len(line) for line in lines[1:-2]] == [70, 70, 70, 70]
    assert verify(armored, MESSAGE, namespace="n" * 40) == key.public


def test_signing_is_deterministic(key: SigningKey) -> None:
    assert sign(key, b"same") == sign(key, b"same")
    assert sign(key, b"same") != sign(key, b"other")


@pytest.mark.parametrize("hash_alg", ["sha512", "sha256"])
def test_sign_digest_equals_sign(key: SigningKey, hash_alg: str) -> None:
    digest = hashlib.new(hash_alg, MESSAGE).digest()
    assert sign_digest(key, digest, hash_alg) == sign(key, MESSAGE, hash_alg=hash_alg)
    assert parse(sign(key, MESSAGE, hash_alg=hash_alg)).hash_alg == hash_alg


def test_sha256_signature_verifies(key: SigningKey) -> None:
    assert verify(sign(key, MESSAGE, hash_alg="sha256"), MESSAGE) == key.public


def test_other_namespaces(key: SigningKey) -> None:
    armored = sign(key, MESSAGE, namespace="file")
    assert parse(armored).namespace == "file"
    assert verify(armored, MESSAGE, namespace="file") == key.public


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda k: sign(k, MESSAGE, hash_alg="md5"), "unsupported signature hash 'md5'"),
        (lambda k: sign(k, MESSAGE, hash_alg="sha384"), "unsupported signature hash"),
        (lambda k: sign(k, MESSAGE, namespace=""), "namespace must not be empty"),
        (lambda k: sign_digest(k, b"\0" * 32, "sha512"), "sha512 digest is 64 bytes, got 32"),
        (lambda k: sign_digest(k, b"\0" * 64, "sha256"), "sha256 digest is 32 bytes, got 64"),
    ],
)
def test_sign_refuses_bad_arguments(
    key: SigningKey, call: Callable[[SigningKey], bytes], message: str
) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        call(key)


# ------------------------------------------------------------- parsing


def test_parse_returns_fields(key: SigningKey) -> None:
    sig = parse(SSH_KEYGEN_SIGNATURE)
    assert sig.public_key == key.public
    assert sig.namespace == NAMESPACE
    assert sig.hash_alg == "sha512"
    assert len(sig.signature) == 64


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"magic": b"SSHSIH"}, "bad magic"),
        ({"version": 2}, "has version 2; evidencekit reads version 1"),
        ({"version": 0}, "has version 0"),
        ({"namespace": b""}, "empty namespace"),
        ({"namespace": b"\xff"}, "not UTF-8"),
        ({"reserved": b"x", "signed_reserved": b""}, "non-empty reserved field"),
        ({"reserved": b"x", "signed_reserved": b"x"}, "non-empty reserved field"),
        ({"hash_alg": b"md5"}, "unsupported hash algorithm 'md5'"),
        ({"hash_alg": b"SHA512"}, "unsupported hash algorithm 'SHA512'"),
        ({"hash_alg": b""}, "unsupported hash algorithm ''"),
        ({"public_wire": encode_string(b"ssh-rsa") + encode_string(b"\1" * 32)}, "RSA key"),
        ({"public_wire": encode_string(b"ssh-ed25519") + encode_string(b"\1" * 31)}, "31-byte"),
        ({"public_wire": b""}, "is truncated"),
        ({"sig_type": b"rsa-sha2-512"}, "is of type 'rsa-sha2-512'"),
        ({"raw": b"\0" * 63}, "is 63 bytes, expected 64"),
        ({"raw": b"\0" * 65}, "is 65 bytes, expected 64"),
        ({"sig_trailer": b"\0"}, "signature value has 1 unexpected trailing bytes"),
        ({"trailer": b"\0\0\0\0"}, "signature has 4 unexpected trailing bytes"),
    ],
)
def test_parse_refuses_tampered_fields(key: SigningKey, changes: dict[str, object], message: str) -> None:
    armored = build(key, **changes)  # type: ignore[arg-type]
    with pytest.raises(SignatureError, match=re.escape(message)):
        parse(armored)
    with pytest.raises(SignatureError):
        verify(armored, MESSAGE)


@pytest.mark.parametrize("cut", [1, 10, 64, 100, 170])
def test_parse_refuses_truncated_blobs(cut: int) -> None:
    blob = blob_of(SSH_KEYGEN_SIGNATURE)
    with pytest.raises(SignatureError, match="truncated"):
        parse(armor(blob[:-cut]))


def _armor_variants() -> list[tuple[bytes, str]]:
    good = SSH_KEYGEN_SIGNATURE
    lines = good.split(b"\n")
    # Non-canonical base64: the 181-byte blob ends "A==", whose last data character also
    # carries 4 padding bits; "B==" decodes to the same bytes with those bits set.
    assert good.endswith(b"BA==\n-----END SSH SIGNATURE-----\n")
    return [
        (b"", "does not start with"),
        (b"\n" + good, "does not start with"),
        (b" " + good, "does not start with"),
        (good.replace(b"BEGIN SSH SIGNATURE", b"BEGIN SSH SIGNATUR"), "does not start with"),
        (good.replace(b"-----END SSH SIGNATURE-----\n", b""), "does not end with"),
        (good + b"\n", "does not end with"),  # an extra blank line
        (good + b"trailing\n", "does not end with"),
        (good[: len(good) // 2], "does not end with"),
        (b"\n".join(lines[:1] + lines[-2:]), "nothing between its armor lines"),
        (good.replace(b"\n", b"\r\n"), "CR line endings"),
        (b"\n".join([*lines[:2], b"", *lines[2:]]), "blank or over-long lines"),
        (b"\n".join([*lines[:2], b" " + lines[2], *lines[3:]]), "base64 body is invalid"),
        (armor(blob_of(good), width=77), "blank or over-long lines"),
        (good.replace(b"BA==", b"BB=="), "base64 body is invalid"),
        (good.replace(b"BA==", b"BA"), "base64 body is invalid"),
        (good.replace(b"U1NI", b"U1N*"), "base64 body is invalid"),
        (good.replace(b"U1NI", "U1Né".encode()), "not ASCII"),
        (good + b"x" * 20000, "too large"),
    ]


@pytest.mark.parametrize(("armored", "message"), _armor_variants())
def test_parse_refuses_bad_armor(armored: bytes, message: str) -> None:
    with pytest.raises(SignatureError, match=re.escape(message)):
        parse(armored)


@pytest.mark.parametrize(
    "armored",
    [
        armor(blob_of(SSH_KEYGEN_SIGNATURE), width=76),  # the width PROTOCOL.sshsig suggests
        armor(blob_of(SSH_KEYGEN_SIGNATURE), width=64),
        armor(blob_of(SSH_KEYGEN_SIGNATURE), final_newline=False),
    ],
    ids=["76-columns", "64-columns", "no-final-newline"],
)
def test_parse_refuses_rewrapped_armor(armored: bytes) -> None:
    """The same blob in other lines decodes fine but changes the file's bytes: refused, so a
    signature file has one form only (issue 19, item 5)."""
    assert blob_of(armored) == blob_of(SSH_KEYGEN_SIGNATURE)
    with pytest.raises(SignatureError, match="not in the exact form evidencekit and ssh-keygen "
                       "write"):
        parse(armored)


def test_parse_accepts_exactly_what_is_written(key: SigningKey) -> None:
    armored = sshsig.sign(key, MESSAGE)
    assert armor(blob_of(armored)) == armored
    assert verify(armored, MESSAGE) == key.public


# ------------------------------------------------------------- verification


def test_wrong_message(key: SigningKey) -> None:
    with pytest.raises(SignatureError, match=r"^signature does not match the data$"):
        verify(SSH_KEYGEN_SIGNATURE, MESSAGE + b"!")


def test_wrong_namespace_is_named(key: SigningKey) -> None:
    armored = sign(key, MESSAGE, namespace="git")
    with pytest.raises(SignatureError, match=r"^signature is for namespace 'git', expected 'evidencekit'$"):
        verify(armored, MESSAGE)


def test_namespace_relabelled(key: SigningKey) -> None:
    """Claiming another namespace than the one signed breaks the signature."""
    armored = build(key, namespace=b"file", signed_namespace=b"evidencekit")
    with pytest.raises(SignatureError, match="namespace 'file'"):
        verify(armored, MESSAGE)
    with pytest.raises(SignatureError, match="does not match the data"):
        verify(armored, MESSAGE, namespace="file")


def test_hash_algorithm_relabelled(key: SigningKey) -> None:
    armored = build(key, hash_alg=b"sha256", signed_hash="sha512")
    with pytest.raises(SignatureError, match="does not match the data"):
        verify(armored, MESSAGE)


def test_other_public_key_in_blob(key: SigningKey) -> None:
    other = SigningKey.generate().public
    with pytest.raises(SignatureError, match="does not match the data"):
        verify(build(key, public_wire=other.wire), MESSAGE)


@pytest.mark.parametrize("bit", [0, 7, 100, 511])
def test_flipped_signature_bit(key: SigningKey, bit: int) -> None:
    raw = bytearray(parse(SSH_KEYGEN_SIGNATURE).signature)
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(SignatureError, match="does not match the data"):
        verify(build(key, raw=bytes(raw)), MESSAGE)


def test_verify_refuses_empty_expected_namespace() -> None:
    with pytest.raises(UsageError, match="namespace must not be empty"):
        verify(SSH_KEYGEN_SIGNATURE, MESSAGE, namespace="")


@pytest.mark.parametrize("hash_alg", ["sha512", "sha256"])
def test_verify_digest_asks_for_the_signature_hash(key: SigningKey, hash_alg: str) -> None:
    armored = sign(key, MESSAGE, hash_alg=hash_alg)
    asked: list[str] = []

    def digest_by_alg(alg: str) -> bytes:
        asked.append(alg)
        return hashlib.new(alg, MESSAGE).digest()

    assert verify_digest(armored, digest_by_alg) == key.public
    assert asked == [hash_alg]


def test_verify_digest_refuses_wrong_sized_digest(key: SigningKey) -> None:
    with pytest.raises(UsageError, match="wrong-sized sha512 digest"):
        verify_digest(SSH_KEYGEN_SIGNATURE, lambda alg: b"\0" * 32)


def test_signature_errors_are_evidence_problems() -> None:
    with pytest.raises(BundleError) as info:
        verify(SSH_KEYGEN_SIGNATURE, b"")
    assert info.value.exit_code == ExitCode.EVIDENCE_PROBLEM
    assert "\n" not in str(info.value)


@settings(max_examples=300, deadline=None)
@given(position=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_any_single_byte_change_is_refused_cleanly(position: int, value: int) -> None:
    """Changing any byte of the blob either leaves it unchanged or raises SignatureError."""
    blob = bytearray(blob_of(SSH_KEYGEN_SIGNATURE))
    position %= len(blob)
    if blob[position] == value:
        return
    blob[position] = value
    with pytest.raises(SignatureError):
        verify(armor(bytes(blob)), MESSAGE)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400))
def test_arbitrary_input_raises_only_signature_error(data: bytes) -> None:
    with pytest.raises(SignatureError):
        parse(data)
    with pytest.raises(SignatureError):
        parse(armor(data))


def test_module_namespace_constant() -> None:
    assert sshsig.NAMESPACE == "evidencekit"
