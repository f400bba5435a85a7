"""evidencekit.crypto.age on its own: round trips, boundaries, damage, header and key parsing.

Conformance with other implementations is in tests/crypto/test_age_cctv.py (C2SP vectors) and
tests/interop/test_age_interop.py (age CLI, pyrage).
"""

from __future__ import annotations

import array
import base64
import gc
import hashlib
import io
import itertools
import random as stdlib_random
import tarfile
import time
from collections.abc import Callable, Sequence

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidencekit.crypto import age
from evidencekit.crypto.age import (
    CHUNK_SIZE,
    AgeReader,
    AgeWriter,
    Identity,
    RandomSource,
    Recipient,
    ScryptIdentity,
    ScryptRecipient,
    SshEd25519Identity,
    SshEd25519Recipient,
    Stanza,
    X25519Identity,
    X25519Recipient,
    dearmor,
    decrypt,
    encrypt,
    parse_identity_file,
    parse_recipient,
    read_header,
)
from evidencekit.errors import (
    AgeArmorError,
    AgeError,
    AgeHeaderError,
    AgeHeaderMacError,
    AgePayloadError,
    KeyFileError,
    NoMatchingKey,
    RecipientError,
)
from evidencekit.pipeline import ReadAheadStream

ENCRYPTED_CHUNK = CHUNK_SIZE + 16
SIZES = [0, 1, 65535, 65536, 65537, 2 * 65536]
FAST_SCRYPT = 10  # work factor for tests: 2^10 is instant, the default 2^18 takes ~1 s


def fixed_random(seed: bytes = b"evidencekit") -> RandomSource:
    """A deterministic RandomSource: SHA-256 in counter mode over ``seed``."""
    counter = itertools.count()

    def random(size: int) -> bytes:
        out = b""
        while len(out) < size:
            out += hashlib.sha256(seed + next(counter).to_bytes(8, "big")).digest()
        return out[:size]

    return random


def payload(size: int) -> bytes:
    """Non-repeating plaintext, so a misplaced chunk cannot go unnoticed."""
    return fixed_random(b"payload-%d" % size)(size)


def read_released(data: bytes, identities: Sequence[Identity], size: int = 4096) -> bytes:
    """Read until an error; return what was released. Re-raises the error with the data."""
    reader = AgeReader(io.BytesIO(data), identities)
    released = bytearray()
    try:
        while chunk := reader.read(size):
            released += chunk
    except AgePayloadError as err:
        err.released = bytes(released)  # type: ignore[attr-defined]
        raise
    return bytes(released)


@pytest.fixture(scope="module")
def x25519() -> X25519Identity:
    return X25519Identity.generate(fixed_random(b"x25519"))


@pytest.fixture(scope="module")
def ssh_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(fixed_random(b"ssh")(32))


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_x25519_round_trip_and_ciphertext_size(x25519: X25519Identity, size: int) -> None:
    data = payload(size)
    out = io.BytesIO()
    with AgeWriter(out, [x25519.recipient()]) as writer:
        writer.write(data)
    ciphertext = out.getvalue()
    header = read_header(io.BytesIO(ciphertext))
    chunks = max(1, -(-size // CHUNK_SIZE))
    assert len(ciphertext) == len(header.raw) + 16 + size + 16 * chunks
    assert writer.bytes_written == len(ciphertext)
    assert decrypt(ciphertext, [x25519]) == data


@pytest.mark.parametrize("size", SIZES)
def test_ssh_ed25519_round_trip(ssh_key: Ed25519PrivateKey, size: int) -> None:
    data = payload(size)
    ciphertext = encrypt(data, [SshEd25519Recipient(ssh_key.public_key())])
    assert decrypt(ciphertext, [SshEd25519Identity(ssh_key)]) == data


@pytest.mark.parametrize("size", [0, 1, 65536, 65537])
def test_scrypt_round_trip(size: int) -> None:
    data = payload(size)
    ciphertext = encrypt(data, [ScryptRecipient(b"correct horse", work_factor=FAST_SCRYPT)])
    header = read_header(io.BytesIO(ciphertext))
    assert [s.type for s in header.stanzas] == ["scrypt"]
    assert header.stanzas[0].args[1] == str(FAST_SCRYPT)
    assert decrypt(ciphertext, [ScryptIdentity(b"correct horse")]) == data


def test_multiple_recipients_each_identity_decrypts(
    x25519: X25519Identity, ssh_key: Ed25519PrivateKey
) -> None:
    other_ssh = Ed25519PrivateKey.from_private_bytes(fixed_random(b"ssh-2")(32))
    second = X25519Identity.generate(fixed_random(b"second"))
    recipients: list[Recipient] = [
        x25519.recipient(),
        SshEd25519Recipient(other_ssh.public_key()),
        second.recipient(),
        SshEd25519Recipient(ssh_key.public_key()),
    ]
    data = payload(70_000)
    ciphertext = encrypt(data, recipients)
    assert len(read_header(io.BytesIO(ciphertext)).stanzas) == 4
    for identity in (x25519, second, SshEd25519Identity(ssh_key), SshEd25519Identity(other_ssh)):
        assert decrypt(ciphertext, [identity]) == data
    # An identity list is tried in order; a non-matching one first is fine.
    unrelated = X25519Identity.generate(fixed_random(b"unrelated"))
    assert decrypt(ciphertext, [unrelated, second]) == data


@pytest.mark.parametrize("pieces", [1, 3, 17, 200])
def test_split_writes_give_the_same_plaintext(x25519: X25519Identity, pieces: int) -> None:
    data = payload(3 * CHUNK_SIZE + 5)
    cuts = sorted(stdlib_random.Random(pieces).sample(range(1, len(data)), pieces - 1))
    out = io.BytesIO()
    with AgeWriter(out, [x25519.recipient()]) as writer:
        for start, end in itertools.pairwise([0, *cuts, len(data)]):
            assert writer.write(data[start:end]) == end - start
        assert writer.write(b"") == 0
    assert decrypt(out.getvalue(), [x25519]) == data


def test_write_accepts_bytes_like_objects(x25519: X25519Identity) -> None:
    numbers = array.array("I", range(40_000))  # a non-byte format is written as its bytes
    out = io.BytesIO()
    with AgeWriter(out, [x25519.recipient()]) as writer:
        writer.write(b"abc")
        writer.write(bytearray(b"def"))
        writer.write(memoryview(b"xghi")[1:])
        writer.write(memoryview(numbers))
    assert decrypt(out.getvalue(), [x25519]) == b"abcdefghi" + numbers.tobytes()


def test_fixed_randomness_gives_deterministic_output(
    x25519: X25519Identity, ssh_key: Ed25519PrivateKey
) -> None:
    recipients: list[Recipient] = [x25519.recipient(), SshEd25519Recipient(ssh_key.public_key())]
    first = encrypt(b"evidence", recipients, random=fixed_random())
    second = encrypt(b"evidence", recipients, random=fixed_random())
    assert first == second
    assert encrypt(b"evidence", recipients, random=fixed_random(b"other")) != first
    assert encrypt(b"evidence", recipients) != first  # os.urandom by default
    assert decrypt(first, [x25519]) == b"evidence"


def test_spec_example_identity_gives_spec_example_recipient() -> None:
    # The X25519 example key pair printed in c2sp.org/age.
    identity = X25519Identity.from_string(
        "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
    )
    assert str(identity.recipient()) == ("age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj")


# --- keys and recipients ------------------------------------------------------------------------


def test_x25519_strings_round_trip(x25519: X25519Identity) -> None:
    text = str(x25519)
    assert text.startswith("AGE-SECRET-KEY-1") and text == text.upper()
    assert str(X25519Identity.from_string(text)) == text
    recipient = x25519.recipient()
    assert X25519Recipient.from_string(str(recipient)) == recipient
    assert text not in repr(x25519)  # the secret never shows in logs


@pytest.mark.parametrize(
    "text",
    [
        "",
        "age1",
        "AGE1ZVKYG2LQZRAA2LNJVQEJ32NKUU0UES2S82HZRYE869XEEXVN73EQUNUJWJ",  # upper case
        "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwk",  # checksum
        "age1Zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj",  # mixed case
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== user@host",
        "ssh-ed25519 not-base64",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==",  # key blob too short
        "age1pq1abc",
        "hello",
    ],
)
def test_parse_recipient_rejects(text: str) -> None:
    with pytest.raises(RecipientError):
        parse_recipient(text)


def test_parse_recipient_accepts_both_kinds(x25519: X25519Identity, ssh_key: Ed25519PrivateKey) -> None:
    parsed = parse_recipient("  " + str(x25519.recipient()) + "\n")
    assert isinstance(parsed, X25519Recipient) and parsed == x25519.recipient()
    ssh_line = str(SshEd25519Recipient(ssh_key.public_key())) + " analyst@lab"
    parsed_ssh = parse_recipient(ssh_line)
    assert isinstance(parsed_ssh, SshEd25519Recipient)
    data = decrypt(encrypt(b"x", [parsed_ssh]), [SshEd25519Identity(ssh_key)])
    assert data == b"x"


def test_parse_identity_file(x25519: X25519Identity) -> None:
    other = X25519Identity.generate(fixed_random(b"other"))
    text = f"# created: 2024\r\n# public key: {x25519.recipient()}\r\n{x25519}\r\n\n  {other}  \n"
    identities = parse_identity_file(text.encode())
    assert [str(i) for i in identities] == [str(x25519), str(other)]


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"# only a comment\n\n",
        b"AGE-SECRET-KEY-1NOTAKEY\n",
        b"age-secret-key-1gfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpq4egaex\n",
        b"AGE-SECRET-KEY-PQ-1XX76JRALNLXDMEW0CRK45QMCCH4X06SE84UN3VPM33W6HWDX0H3SK3ZQFR\n",
        b"AGE-PLUGIN-YUBIKEY-1XYZ\n",
        b"-----BEGIN OPENSSH PRIVATE KEY-----\n",
        b"\xff\xfe",
    ],
)
def test_parse_identity_file_rejects(text: bytes) -> None:
    with pytest.raises(KeyFileError) as info:
        parse_identity_file(text)
    assert "GFPYYSJZ" not in str(info.value).upper()  # a secret is never echoed


def test_scrypt_must_be_the_only_recipient(x25519: X25519Identity) -> None:
    scrypt = ScryptRecipient(b"pw", work_factor=FAST_SCRYPT)
    with pytest.raises(RecipientError):
        encrypt(b"x", [scrypt, x25519.recipient()])
    with pytest.raises(RecipientError):
        encrypt(b"x", [])


# --- wrong keys ---------------------------------------------------------------------------------


def test_wrong_keys_give_no_matching_key(x25519: X25519Identity, ssh_key: Ed25519PrivateKey) -> None:
    ciphertext = encrypt(b"secret", [x25519.recipient()])
    other_ssh = Ed25519PrivateKey.from_private_bytes(fixed_random(b"ssh-other")(32))
    wrong: list[Identity] = [
        X25519Identity.generate(fixed_random(b"wrong")),
        SshEd25519Identity(ssh_key),
        ScryptIdentity(b"pw"),
    ]
    with pytest.raises(NoMatchingKey):
        decrypt(ciphertext, wrong)
    with pytest.raises(NoMatchingKey):
        decrypt(ciphertext, [])
    ssh_ciphertext = encrypt(b"secret", [SshEd25519Recipient(ssh_key.public_key())])
    with pytest.raises(NoMatchingKey):  # another SSH key: the tag does not match
        decrypt(ssh_ciphertext, [SshEd25519Identity(other_ssh), x25519])


def test_wrong_passphrase_gives_no_matching_key() -> None:
    ciphertext = encrypt(b"secret", [ScryptRecipient(b"right", work_factor=FAST_SCRYPT)])
    with pytest.raises(NoMatchingKey):
        decrypt(ciphertext, [ScryptIdentity(b"wrong")])


def test_scrypt_work_factor_above_the_limit_is_refused() -> None:
    ciphertext = encrypt(b"secret", [ScryptRecipient(b"pw", work_factor=FAST_SCRYPT)])
    with pytest.raises(AgeHeaderError, match="work factor"):
        decrypt(ciphertext, [ScryptIdentity(b"pw", max_work_factor=FAST_SCRYPT - 1)])


# --- damage: truncation, bit flips, trailing data -----------------------------------------------


@pytest.fixture(scope="module")
def three_chunks(x25519: X25519Identity) -> tuple[bytes, bytes, int]:
    """(plaintext, ciphertext, payload start) for a payload of two full chunks and a short one."""
    data = payload(2 * CHUNK_SIZE + 1000)
    ciphertext = encrypt(data, [x25519.recipient()], random=fixed_random(b"damage"))
    start = len(read_header(io.BytesIO(ciphertext)).raw) + 16
    return data, ciphertext, start


def truncation_offsets(ciphertext_length: int, start: int) -> list[int]:
    offsets = set(range(0, start + 1))  # every offset in the header and the nonce
    for boundary in range(start, ciphertext_length, ENCRYPTED_CHUNK):
        offsets.update(boundary + delta for delta in (-17, -16, -15, -1, 1, 15, 16, 17, 999))
    offsets.update(range(start, ciphertext_length, 4093))
    return sorted(o for o in offsets if 0 <= o < ciphertext_length)


def test_truncation_at_any_offset_is_an_error(
    x25519: X25519Identity, three_chunks: tuple[bytes, bytes, int]
) -> None:
    data, ciphertext, start = three_chunks
    for offset in truncation_offsets(len(ciphertext), start):
        truncated = ciphertext[:offset]
        if offset < start:
            with pytest.raises(AgeHeaderError):
                read_released(truncated, [x25519])
            continue
        with pytest.raises(AgePayloadError) as info:
            read_released(truncated, [x25519])
        released: bytes = info.value.released  # type: ignore[attr-defined]
        # Only whole, authenticated chunks come out, and they are the right ones.
        assert len(released) % CHUNK_SIZE == 0
        assert released == data[: len(released)]


def test_truncation_at_a_chunk_boundary_is_reported_at_the_end(
    x25519: X25519Identity, three_chunks: tuple[bytes, bytes, int]
) -> None:
    data, ciphertext, start = three_chunks
    truncated = ciphertext[: start + 2 * ENCRYPTED_CHUNK]
    reader = AgeReader(io.BytesIO(truncated), [x25519])
    assert reader.read(2 * CHUNK_SIZE) == data[: 2 * CHUNK_SIZE]
    with pytest.raises(AgePayloadError, match=r"truncated.*after chunk 2"):
        reader.read(1)
    with pytest.raises(AgePayloadError):  # and it stays failed
        reader.read(1)


def flip_offsets(ciphertext_length: int, start: int) -> list[int]:
    offsets = set(range(0, start, 3)) | set(range(start, start + 16))
    for boundary in range(start + 16, ciphertext_length, ENCRYPTED_CHUNK):
        offsets.update(boundary + delta for delta in (0, 1, 100, ENCRYPTED_CHUNK - 1))
    return [*sorted(o for o in offsets if o < ciphertext_length), ciphertext_length - 1]


def test_bit_flips_anywhere_are_errors(
    x25519: X25519Identity, three_chunks: tuple[bytes, bytes, int]
) -> None:
    data, ciphertext, start = three_chunks
    for offset in flip_offsets(len(ciphertext), start):
        for bit in (0, 7):
            damaged = bytearray(ciphertext)
            damaged[offset] ^= 1 << bit
            if offset < start - 16:
                with pytest.raises((AgeHeaderError, AgeHeaderMacError, NoMatchingKey)):
                    read_released(bytes(damaged), [x25519])
            elif offset < start:  # the payload nonce changes every chunk key
                with pytest.raises(AgePayloadError):
                    read_released(bytes(damaged), [x25519])
            else:
                with pytest.raises(AgePayloadError) as info:
                    read_released(bytes(damaged), [x25519])
                released: bytes = info.value.released  # type: ignore[attr-defined]
                assert released == data[: (offset - start) // ENCRYPTED_CHUNK * CHUNK_SIZE]



def released_into(data: bytes, identities: Sequence[Identity], source_block: int | None) -> bytes:
    """Like read_released, with readinto() of buffers of several chunks (the path that decrypts
    straight into the caller's buffer), from a BytesIO or a ReadAheadStream lending its blocks.
    Checks that a failing call leaves no unauthenticated plaintext past what it returned."""
    src: io.RawIOBase | io.BytesIO = io.BytesIO(data)
    if source_block is not None:
        src = ReadAheadStream(src, depth=2, block_size=source_block)
    reader = AgeReader(src, identities)  # type: ignore[arg-type]
    released = bytearray()
    buffer = bytearray(3 * CHUNK_SIZE + 100)
    try:
        while True:
            buffer[:] = b"\xee" * len(buffer)
            try:
                count = reader.readinto(buffer)
            except AgePayloadError:
                assert set(buffer) <= {0, 0xEE}  # the failed chunk was wiped
                raise
            assert set(buffer[count:]) <= {0, 0xEE}
            if not count:
                return bytes(released)
            released += buffer[:count]
    except AgePayloadError as err:
        err.released = bytes(released)  # type: ignore[attr-defined]
        raise


@pytest.mark.parametrize("source_block", [None, 70_000, 1 << 20])
def test_whole_chunk_reads_release_only_authenticated_data(
    x25519: X25519Identity, three_chunks: tuple[bytes, bytes, int], source_block: int | None
) -> None:
    data, ciphertext, start = three_chunks
    assert released_into(ciphertext, [x25519], source_block) == data
    for offset in truncation_offsets(len(ciphertext), start):
        if offset <= start:
            continue
        with pytest.raises(AgePayloadError) as info:
            released_into(ciphertext[:offset], [x25519], source_block)
        released: bytes = info.value.released  # type: ignore[attr-defined]
        assert len(released) % CHUNK_SIZE == 0 and released == data[: len(released)]
    for offset in flip_offsets(len(ciphertext), start):
        if offset < start:  # header damage: covered above, never reaches the chunks
            continue
        damaged = bytearray(ciphertext)
        damaged[offset] ^= 1
        with pytest.raises(AgePayloadError) as info:
            released_into(bytes(damaged), [x25519], source_block)
        released = info.value.released  # type: ignore[attr-defined]
        assert released == data[: (offset - start) // ENCRYPTED_CHUNK * CHUNK_SIZE]
    with pytest.raises(AgePayloadError):  # the short last chunk is no longer the last
        released_into(ciphertext + b"x", [x25519], source_block)
    whole = encrypt(data[: 2 * CHUNK_SIZE], [x25519.recipient()])
    with pytest.raises(AgePayloadError, match="after its final chunk"):
        released_into(whole + b"x", [x25519], source_block)


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, 2 * CHUNK_SIZE, 3 * CHUNK_SIZE + 5])
def test_whole_chunk_reads_of_every_shape(x25519: X25519Identity, size: int) -> None:
    data = payload(size)
    ciphertext = encrypt(data, [x25519.recipient()])
    for block in (None, 4096, 65_552, 100_000):
        assert released_into(ciphertext, [x25519], block) == data

def test_mac_damage_is_an_hmac_failure(x25519: X25519Identity) -> None:
    ciphertext = encrypt(b"x", [x25519.recipient()])
    header = read_header(io.BytesIO(ciphertext))
    forged_mac = base64.b64encode(bytes(32)).rstrip(b"=")
    forged = ciphertext.replace(base64.b64encode(header.mac).rstrip(b"="), forged_mac)
    with pytest.raises(AgeHeaderMacError):
        decrypt(forged, [x25519])


@pytest.mark.parametrize("size", [0, 1, 65536])
@pytest.mark.parametrize("extra", [b"\x00", b"x" * 100, b"y" * ENCRYPTED_CHUNK])
def test_trailing_data_is_a_payload_error(x25519: X25519Identity, size: int, extra: bytes) -> None:
    ciphertext = encrypt(payload(size), [x25519.recipient()])
    with pytest.raises(AgePayloadError):
        read_released(ciphertext + extra, [x25519])


def test_missing_nonce_is_a_header_error(x25519: X25519Identity) -> None:
    ciphertext = encrypt(b"x", [x25519.recipient()])
    header_length = len(read_header(io.BytesIO(ciphertext)).raw)
    with pytest.raises(AgeHeaderError, match="nonce"):
        decrypt(ciphertext[: header_length + 15], [x25519])


# --- reader API ---------------------------------------------------------------------------------


def test_read_sizes_readinto_and_finish(
    x25519: X25519Identity, three_chunks: tuple[bytes, bytes, int]
) -> None:
    data, ciphertext, _ = three_chunks
    reader = AgeReader(io.BytesIO(ciphertext), [x25519])
    assert reader.readable() and not reader.seekable()
    got = bytearray(reader.read(0) + reader.read(7) + reader.read(CHUNK_SIZE + 3))
    buffer = bytearray(5000)
    count = reader.readinto(buffer)
    got += buffer[:count]
    got += reader.read()
    assert bytes(got) == data
    assert reader.read() == b"" and reader.read(10) == b"" and reader.readinto(buffer) == 0
    reader.finish()


def test_an_error_after_good_data_is_raised_on_the_next_read(
    x25519: X25519Identity, three_chunks: tuple[bytes, bytes, int]
) -> None:
    data, ciphertext, start = three_chunks
    damaged = bytearray(ciphertext)
    damaged[start + 16 + ENCRYPTED_CHUNK + 5] ^= 1  # inside chunk 2
    reader = AgeReader(io.BytesIO(bytes(damaged)), [x25519])
    # Chunk 1 was authenticated: it is returned, not lost with the error.
    assert reader.read(len(data)) == data[:CHUNK_SIZE]
    with pytest.raises(AgePayloadError, match="chunk 2"):
        reader.read(len(data))
    with pytest.raises(AgePayloadError):  # read() of everything never returns partial data
        AgeReader(io.BytesIO(bytes(damaged)), [x25519]).read()


def test_finish_detects_truncation(x25519: X25519Identity, three_chunks: tuple[bytes, bytes, int]) -> None:
    _, ciphertext, start = three_chunks
    reader = AgeReader(io.BytesIO(ciphertext[: start + ENCRYPTED_CHUNK]), [x25519])
    reader.read(10)
    with pytest.raises(AgePayloadError, match="truncated"):
        reader.finish()


def test_read_header_consumes_exactly_the_header(x25519: X25519Identity) -> None:
    ciphertext = encrypt(b"payload", [x25519.recipient()])
    source = io.BytesIO(ciphertext)
    header = read_header(source)
    assert source.tell() == len(header.raw)
    assert header.raw.endswith(b"\n") and b"\n--- " in header.raw
    assert header.mac_input == header.raw[: header.raw.rindex(b" ")]
    assert len(header.mac) == 32


class FixedStanza:
    """A recipient that writes a stanza of our choosing (to test header encoding)."""

    def __init__(self, stanza: Stanza) -> None:
        self.stanza = stanza

    def wrap(self, file_key: bytes, random: RandomSource) -> Stanza:
        return self.stanza


@pytest.mark.parametrize("body_size", [0, 1, 47, 48, 49, 96, 200])
def test_stanza_bodies_encode_and_parse_back(x25519: X25519Identity, body_size: int) -> None:
    custom = Stanza("example.com/test", ("a", "b!~"), bytes(range(body_size)))
    ciphertext = encrypt(b"x", [x25519.recipient(), FixedStanza(custom)])
    header = read_header(io.BytesIO(ciphertext))
    assert header.stanzas[1] == custom
    body_lines = header.raw.split(b"\n")[4:-2]
    assert all(len(line) == 64 for line in body_lines[:-1]) and len(body_lines[-1]) < 64
    assert decrypt(ciphertext, [x25519]) == b"x"  # the unknown stanza is ignored


@pytest.mark.parametrize(
    "header",
    [
        b"",
        b"age-encryption.org/v1",
        b"age-encryption.org/v2\n-> X\n\n--- " + b"A" * 43 + b"\n",
        b"age-encryption.org/v1\n--- " + b"A" * 43 + b"\n",  # no stanza
        b"age-encryption.org/v1\n-> X\n\n--- " + b"A" * 42 + b"\n",
        b"age-encryption.org/v1\n-> X  Y\n\n--- " + b"A" * 43 + b"\n",
        b"age-encryption.org/v1\n-> X\xc3\xa9\n\n--- " + b"A" * 43 + b"\n",
        b"age-encryption.org/v1\n-> X\nAA==\n--- " + b"A" * 43 + b"\n",
        b"age-encryption.org/v1\n-> X\n" + b"A" * 64 + b"\n--- " + b"A" * 43 + b"\n",
        b"age-encryption.org/v1\n-> X\n\n",
        b"GIF89a\x00\x01",
    ],
)
def test_malformed_headers_are_rejected(header: bytes) -> None:
    with pytest.raises(AgeHeaderError):
        read_header(io.BytesIO(header))


def test_header_line_length_is_bounded() -> None:
    header = b"age-encryption.org/v1\n-> " + b"A" * (age.MAX_HEADER_LINE + 10) + b"\n"
    with pytest.raises(AgeHeaderError, match="longer"):
        read_header(io.BytesIO(header))


# --- writer API ---------------------------------------------------------------------------------


class Recorder(io.BytesIO):
    """A BytesIO that records whether it was closed or flushed by the writer."""

    flushed = False

    def flush(self) -> None:
        self.flushed = True
        super().flush()


def test_close_finishes_but_does_not_close_out(x25519: X25519Identity) -> None:
    out = Recorder()
    writer = AgeWriter(out, [x25519.recipient()])
    header_and_nonce = len(out.getvalue())
    assert writer.bytes_written == header_and_nonce  # written immediately
    writer.write(b"data")
    writer.close()
    writer.close()  # idempotent
    assert not out.closed and out.flushed
    assert writer.bytes_written == len(out.getvalue())
    with pytest.raises(ValueError):
        writer.write(b"more")
    assert decrypt(out.getvalue(), [x25519]) == b"data"


def test_an_exception_in_the_with_block_leaves_the_output_truncated(
    x25519: X25519Identity,
) -> None:
    out = io.BytesIO()
    with pytest.raises(RuntimeError), AgeWriter(out, [x25519.recipient()]) as writer:
        writer.write(b"half of the evidence")
        raise RuntimeError("disk went away")
    with pytest.raises(AgePayloadError, match="truncated"):
        decrypt(out.getvalue(), [x25519])


def test_an_abandoned_writer_is_not_finalised(x25519: X25519Identity) -> None:
    out = io.BytesIO()
    writer = AgeWriter(out, [x25519.recipient()])
    writer.write(b"abc")
    del writer
    gc.collect()
    with pytest.raises(AgePayloadError, match="truncated"):
        decrypt(out.getvalue(), [x25519])


def test_tarfile_streams_through_writer_and_reader(x25519: X25519Identity) -> None:
    members = {"a.txt": b"alpha\n", "big.bin": payload(200_000), "empty": b""}
    out = io.BytesIO()
    writer = AgeWriter(out, [x25519.recipient()])
    with writer, tarfile.open(fileobj=writer, mode="w|") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    reader = AgeReader(io.BytesIO(out.getvalue()), [x25519])
    found = {}
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        for member in tar:
            extracted = tar.extractfile(member)
            assert extracted is not None
            found[member.name] = extracted.read()
    reader.finish()
    assert found == members


def test_large_writes_are_linear(x25519: X25519Identity) -> None:
    # 64 MiB in 1 MiB writes, then in one write: quadratic buffering would take far longer.
    block = payload(1 << 20)
    sink = io.BytesIO()
    started = time.perf_counter()
    with AgeWriter(sink, [x25519.recipient()]) as writer:
        for _ in range(64):
            writer.write(block)
    with AgeWriter(io.BytesIO(), [x25519.recipient()]) as writer:
        writer.write(block * 64)
    assert time.perf_counter() - started < 20
    assert sink.tell() > 64 << 20


# --- armor --------------------------------------------------------------------------------------


def armor(data: bytes, newline: bytes = b"\n") -> bytes:
    encoded = base64.b64encode(data)
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    block = [b"-----BEGIN AGE ENCRYPTED FILE-----", *lines, b"-----END AGE ENCRYPTED FILE-----"]
    return newline.join(block) + newline


@pytest.mark.parametrize("size", [0, 1, 47, 48, 49, 1000])
def test_dearmor_round_trip(size: int) -> None:
    data = payload(size)
    assert dearmor(armor(data)) == data
    assert dearmor(armor(data, b"\r\n")) == data
    assert dearmor(b" \n\t" + armor(data) + b"\n \n") == data


def test_dearmor_then_decrypt(x25519: X25519Identity) -> None:
    ciphertext = encrypt(b"armored", [x25519.recipient()])
    assert decrypt(dearmor(armor(ciphertext)), [x25519]) == b"armored"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda text: b"x" + text,
        lambda text: text + b"x",
        lambda text: text.replace(b"FILE-----\n", b"FILE-----\n\n", 1),
        lambda text: text.replace(b"BEGIN AGE", b"BEGIN age"),
        lambda text: text.replace(b"\n-----END", b"=\n-----END"),
        lambda text: text.replace(b"\n", b" \n", 2),
        lambda text: text.replace(b"-----END AGE ENCRYPTED FILE-----\n", b""),
        lambda text: text.replace(b"\n", b"", 2),
    ],
)
def test_dearmor_rejects(mangle: Callable[[bytes], bytes]) -> None:
    text = armor(payload(100))
    with pytest.raises(AgeArmorError):
        dearmor(mangle(text))


def test_every_error_is_an_evidencekit_error(x25519: X25519Identity) -> None:
    # The CLI catches only EvidenceKitError: nothing else may escape for bad input.
    for junk in (b"", b"\x00" * 100, b"age-encryption.org/v1\n" + b"\xff" * 50):
        with pytest.raises((AgeError, NoMatchingKey)):
            decrypt(junk, [x25519])
