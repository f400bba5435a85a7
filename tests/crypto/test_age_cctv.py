"""The C2SP CCTV age test vectors against evidencekit.crypto.age.

The vectors are not in the repository: `.ci/make-cctv-dir DIR` builds them from the npm package
`cctv-age`, and CCTV_AGE_DIR=DIR points this test at them (skipped locally when unset, failing
in CI). Each file is `key: value` lines, a blank line, then the age file (zlib-compressed when
`compressed: zlib`); see the package README.
"""

from __future__ import annotations

import hashlib
import io
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from evidencekit.crypto.age import (
    AgeReader,
    Identity,
    ScryptIdentity,
    X25519Identity,
    dearmor,
)
from evidencekit.errors import (
    AgeArmorError,
    AgeError,
    AgeHeaderError,
    AgeHeaderMacError,
    AgePayloadError,
    EvidenceKitError,
    NoMatchingKey,
)
from tests.support.tools import require_env_dir

ENV = "CCTV_AGE_DIR"

EXPECTED_ERROR: dict[str, type[EvidenceKitError] | None] = {
    "success": None,
    "no match": NoMatchingKey,
    "HMAC failure": AgeHeaderMacError,
    "header failure": AgeHeaderError,
    "payload failure": AgePayloadError,
    "armor failure": AgeArmorError,
}
KNOWN_KEYS = {"expect", "payload", "identity", "passphrase", "armored", "compressed", "file key"}
KNOWN_KEYS |= {"comment"}
READ_SIZE = 10_000  # smaller than a chunk, so partial reads are exercised too


@dataclass
class Vector:
    expect: str
    payload_sha256: str | None
    identities: list[str] = field(default_factory=list)
    passphrases: list[str] = field(default_factory=list)
    armored: bool = False
    unknown_keys: list[str] = field(default_factory=list)
    body: bytes = b""


def parse_vector(data: bytes) -> Vector:
    head, separator, body = data.partition(b"\n\n")
    assert separator, "a vector has a blank line between its header and the age file"
    vector = Vector(expect="", payload_sha256=None)
    compressed = False
    for line in head.decode("utf-8").split("\n"):
        key, _, value = line.partition(": ")
        if key == "expect":
            vector.expect = value
        elif key == "payload":
            vector.payload_sha256 = value
        elif key == "identity":
            vector.identities.append(value)
        elif key == "passphrase":
            vector.passphrases.append(value)
        elif key == "armored":
            vector.armored = value == "yes"
        elif key == "compressed":
            assert value == "zlib", f"unknown compression {value!r}"
            compressed = True
        elif key not in KNOWN_KEYS:
            vector.unknown_keys.append(key)
    vector.body = zlib.decompress(body) if compressed else body
    return vector


def unsupported_identities(vector: Vector) -> list[str]:
    """The vector's identities of kinds we do not implement (post-quantum ones, for now)."""
    return [key for key in vector.identities if not key.startswith("AGE-SECRET-KEY-1")]


def build_identities(vector: Vector) -> list[Identity]:
    identities: list[Identity] = [X25519Identity.from_string(key) for key in vector.identities]
    identities += [ScryptIdentity(p.encode("utf-8")) for p in vector.passphrases]
    return identities


def run_vector(vector: Vector, identities: list[Identity]) -> tuple[bytes, EvidenceKitError | None]:
    """Decrypt as an application would; return (plaintext released, error raised or None)."""
    released = bytearray()
    try:
        data = dearmor(vector.body) if vector.armored else vector.body
        reader = AgeReader(io.BytesIO(data), identities)
        while chunk := reader.read(READ_SIZE):
            released += chunk
    except (AgeError, NoMatchingKey) as err:
        return bytes(released), err
    return bytes(released), None


def vector_params() -> list[object]:
    directory = os.environ.get(ENV)
    if not directory or not os.path.isdir(directory):
        return [pytest.param(None, id="no-vectors")]
    return [pytest.param(path, id=path.name) for path in sorted(Path(directory).iterdir())]


@pytest.mark.parametrize("path", vector_params())
def test_cctv_vector(path: Path | None) -> None:
    directory = require_env_dir(ENV)
    if path is None:  # the directory appeared after collection
        pytest.fail(f"{ENV}={directory} was not a directory at collection time")
    vector = parse_vector(path.read_bytes())
    if vector.unknown_keys:
        pytest.skip(f"unknown vector keys {vector.unknown_keys} (CCTV: ignore such files)")
    assert vector.expect in EXPECTED_ERROR, f"unknown expect value {vector.expect!r}"
    if unsupported_identities(vector):
        check_unsupported_kind(vector)
        return
    released, error = run_vector(vector, build_identities(vector))

    expected = EXPECTED_ERROR[vector.expect]
    if expected is None:
        assert error is None, f"expected success, got {type(error).__name__}: {error}"
    else:
        assert type(error) is expected, f"expected {expected.__name__}, got " + (
            f"{type(error).__name__}: {error}" if error else "success"
        )
    if vector.payload_sha256 is not None:
        # For failures too: all plaintext released before the error must match (CCTV).
        assert hashlib.sha256(released).hexdigest() == vector.payload_sha256
    elif expected is not AgePayloadError:
        assert released == b""


def check_unsupported_kind(vector: Vector) -> None:
    """A file for a recipient kind we do not implement (docs/decisions/age.md): its stanzas are
    not ours, so it must be refused as "no matching key" (or a malformed header) before any
    plaintext is released, whatever the vector expects from an implementation that has the key."""
    released, error = run_vector(vector, [X25519Identity.generate()])
    assert type(error) in (NoMatchingKey, AgeHeaderError), (
        f"expected NoMatchingKey, got {type(error).__name__}: {error}" if error else
        "a file for an unsupported recipient kind decrypted with an unrelated key")
    assert released == b""


def test_cctv_directory_is_not_empty() -> None:
    directory = require_env_dir(ENV)
    assert any(Path(directory).iterdir()), f"{ENV}={directory} holds no vectors"
