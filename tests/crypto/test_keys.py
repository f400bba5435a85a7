"""Unit tests for evidencekit.crypto.keys: OpenSSH ed25519 key files, written and read.

ssh-keygen interop lives in tests/interop/test_ssh_interop.py; here `cryptography`'s own OpenSSH
reader and writer serve as the independent implementation.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidencekit.crypto.keys import (
    PublicKey,
    SigningKey,
    load_public_key_file,
    load_signing_key,
    private_key_is_encrypted,
)
from evidencekit.crypto.sshwire import encode_string, encode_uint32
from evidencekit.errors import (
    BadPassphrase,
    ExitCode,
    KeyFileError,
    OutputError,
    PassphraseRequired,
    UsageError,
)

# RFC 8032 section 7.1, TEST 1: a published test key, safe to hard-code.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
# `ssh-keygen -lf` (OpenSSH 9.2) on that key.
RFC8032_FINGERPRINT = "SHA256:bbXpuKG6zhzdmnxq256TlqzFBzRl2f6OOg722cYNbU8"
RFC8032_LINE = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea rfc8032-test1"
)
PASSPHRASE = b"correct horse battery staple"


def rfc8032_key(comment: str = "rfc8032-test1") -> SigningKey:
    return SigningKey(Ed25519PrivateKey.from_private_bytes(RFC8032_SEED), comment)


# ------------------------------------------------------------- helpers to build key files


def armor(blob: bytes) -> bytes:
    body = base64.b64encode(blob).decode()
    lines = [body[i : i + 70] for i in range(0, len(body), 70)]
    return "\n".join(
        ["-----BEGIN OPENSSH PRIVATE KEY-----", *lines, "-----END OPENSSH PRIVATE KEY-----", ""]
    ).encode()


def dearmor(data: bytes) -> bytes:
    return base64.b64decode(b"".join(data.strip().splitlines()[1:-1]))


def ed25519_wire(raw: bytes, kind: bytes = b"ssh-ed25519") -> bytes:
    return encode_string(kind) + encode_string(raw)


def plain_section(
    *,
    checks: tuple[int, int] = (0x01020304, 0x01020304),
    kind: bytes = b"ssh-ed25519",
    public: bytes = RFC8032_PUBLIC,
    secret: bytes = RFC8032_SEED + RFC8032_PUBLIC,
    comment: bytes = b"test",
    padding: bytes | None = None,
) -> bytes:
    data = (
        encode_uint32(checks[0])
        + encode_uint32(checks[1])
        + encode_string(kind)
        + encode_string(public)
        + encode_string(secret)
        + encode_string(comment)
    )
    if padding is None:
        padding = bytes(range(1, -len(data) % 8 + 1))
    return data + padding


def key_file(
    section: bytes | None = None,
    *,
    cipher: bytes = b"none",
    kdf: bytes = b"none",
    kdf_options: bytes = b"",
    count: int = 1,
    public_wire: bytes | None = None,
    trailer: bytes = b"",
    magic: bytes = b"openssh-key-v1\x00",
) -> bytes:
    """An openssh-key-v1 file with every field under the test's control."""
    blob = (
        magic
        + encode_string(cipher)
        + encode_string(kdf)
        + encode_string(kdf_options)
        + encode_uint32(count)
        + encode_string(public_wire or ed25519_wire(RFC8032_PUBLIC))
        + encode_string(plain_section() if section is None else section)
        + trailer
    )
    return armor(blob)


def write(tmp_path: Path, data: bytes, name: str = "key") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


# ------------------------------------------------------------- public keys


def test_public_key_forms_match_ssh_keygen() -> None:
    public = rfc8032_key().public
    assert public.raw == RFC8032_PUBLIC
    assert public.wire == encode_string(b"ssh-ed25519") + encode_string(RFC8032_PUBLIC)
    assert public.fingerprint == RFC8032_FINGERPRINT
    assert public.openssh_line() == RFC8032_LINE


def test_fingerprint_is_unpadded_base64_of_sha256_of_wire() -> None:
    public = SigningKey.generate().public
    assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", public.fingerprint)
    expected = base64.b64encode(hashlib.sha256(public.wire).digest()).decode().rstrip("=")
    assert public.fingerprint == "SHA256:" + expected


def test_openssh_line_without_comment_has_no_trailing_space() -> None:
    line = rfc8032_key(comment="").public.openssh_line()
    assert line == RFC8032_LINE.rsplit(" ", 1)[0]


def test_openssh_line_round_trip_keeps_comment_with_spaces() -> None:
    public = rfc8032_key(comment="Jane Doe  <jane@example.org>").public
    parsed = PublicKey.from_openssh_line(public.openssh_line() + "\n")
    assert parsed == public
    assert parsed.comment == "Jane Doe  <jane@example.org>"


def test_equality_and_hash_ignore_comment() -> None:
    a, b = rfc8032_key("a").public, rfc8032_key("b").public
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != SigningKey.generate().public
    assert a != RFC8032_PUBLIC  # not equal to other types


def test_from_wire_round_trip() -> None:
    public = rfc8032_key().public
    assert PublicKey.from_wire(public.wire) == public


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (ed25519_wire(RFC8032_PUBLIC, b"ssh-rsa"), "is an RSA key"),
        (ed25519_wire(RFC8032_PUBLIC, b"ecdsa-sha2-nistp256"), "is an ECDSA key"),
        (ed25519_wire(RFC8032_PUBLIC, b"sk-ssh-ed25519@openssh.com"), "FIDO security-key"),
        (ed25519_wire(RFC8032_PUBLIC[:31]), "31-byte ed25519 key"),
        (ed25519_wire(RFC8032_PUBLIC) + b"\0", "1 unexpected trailing bytes"),
        (ed25519_wire(RFC8032_PUBLIC)[:-1], "is truncated"),
        (b"", "is truncated"),
        (encode_string(b"\xff\xfe") + encode_string(RFC8032_PUBLIC), "not UTF-8"),
    ],
)
def test_from_wire_rejects_junk(wire: bytes, message: str) -> None:
    with pytest.raises(KeyFileError, match=message):
        PublicKey.from_wire(wire)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "is empty"),
        ("ssh-rsa AAAAB3NzaC1yc2E= me", "is an RSA key"),
        ("ecdsa-sha2-nistp256 AAAA me", "is an ECDSA key"),
        ("age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3ahjqq", "not an OpenSSH"),
        ("ssh-ed25519", "no key data"),
        ("ssh-ed25519 not*base64", "not valid base64"),
        ("ssh-ed25519 " + RFC8032_LINE.split()[1][:-1], "not valid base64"),
        # The line says ed25519 but the blob inside is an RSA key.
        (
            "ssh-ed25519 " + base64.b64encode(ed25519_wire(RFC8032_PUBLIC, b"ssh-rsa")).decode(),
            "is an RSA key",
        ),
        (RFC8032_LINE + "\x1b[31m", "control characters"),
    ],
)
def test_from_openssh_line_rejects_junk(line: str, message: str) -> None:
    with pytest.raises(KeyFileError, match=re.escape(message)):
        PublicKey.from_openssh_line(line)


@pytest.mark.parametrize("comment", ["two\nlines", "cr\r", "esc\x1b[0m", "del\x7f"])
def test_comments_must_be_printable_single_line(comment: str) -> None:
    with pytest.raises(UsageError, match="one line of printable text"):
        SigningKey.generate(comment)
    with pytest.raises(UsageError):
        PublicKey(SigningKey.generate().key.public_key(), comment)


def test_repr_shows_fingerprint_not_secrets() -> None:
    key = rfc8032_key()
    assert RFC8032_FINGERPRINT in repr(key)
    assert RFC8032_SEED.hex() not in repr(key)
    assert RFC8032_FINGERPRINT in repr(key.public)


# ------------------------------------------------------------- save / load round trips


def test_generate_makes_distinct_keys() -> None:
    a, b = SigningKey.generate("x"), SigningKey.generate("x")
    assert a.public != b.public
    assert a.public.comment == "x"


@pytest.mark.usefixtures("umask_022")
def test_save_and_load_without_passphrase(tmp_path: Path) -> None:
    key = SigningKey.generate("investigator@lab")
    path = tmp_path / "signing"
    key.save(path)
    loaded = load_signing_key(path)
    assert loaded.public == key.public
    assert loaded.comment == "investigator@lab"
    assert (tmp_path / "signing.pub").read_text() == key.public.openssh_line() + "\n"
    assert load_public_key_file(tmp_path / "signing.pub").comment == "investigator@lab"
    assert not private_key_is_encrypted(path.read_bytes())


def test_unencrypted_file_is_byte_identical_except_check_values(tmp_path: Path) -> None:
    """The layout is what ssh-keygen writes; only the random check values differ."""
    rfc8032_key("test").save(tmp_path / "k")
    blob = dearmor((tmp_path / "k").read_bytes())
    expected = dearmor(key_file())
    check_at = len(expected) - len(plain_section())
    assert blob[:check_at] == expected[:check_at]
    assert blob[check_at + 8 :] == expected[check_at + 8 :]
    assert blob[check_at : check_at + 4] == blob[check_at + 4 : check_at + 8]
    lines = (tmp_path / "k").read_text().splitlines()
    assert all(len(line) <= 70 for line in lines[1:-1])
    assert all(len(line) == 70 for line in lines[1:-2])


def test_save_and_load_with_passphrase(tmp_path: Path) -> None:
    key = SigningKey.generate("sealed")
    path = tmp_path / "signing"
    key.save(path, PASSPHRASE)
    assert private_key_is_encrypted(path.read_bytes())
    assert b"sealed" not in dearmor(path.read_bytes())  # the comment is inside the ciphertext
    loaded = load_signing_key(path, PASSPHRASE)
    assert loaded.public == key.public
    assert loaded.comment == "sealed"


def test_encrypted_key_uses_ssh_keygen_defaults(tmp_path: Path) -> None:
    SigningKey.generate().save(tmp_path / "k", PASSPHRASE)
    blob = dearmor((tmp_path / "k").read_bytes())
    assert blob.startswith(
        b"openssh-key-v1\x00"
        + encode_string(b"aes256-ctr")
        + encode_string(b"bcrypt")
        + encode_uint32(16 + 4 + 4)  # string(salt16) || uint32(rounds)
    )
    salt_and_rounds = blob[15 + 14 + 10 + 4 : 15 + 14 + 10 + 4 + 24]
    assert salt_and_rounds[:4] == encode_uint32(16)
    assert salt_and_rounds[-4:] == encode_uint32(16)


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE])
def test_cryptography_reads_our_files(tmp_path: Path, passphrase: bytes | None) -> None:
    """An independent OpenSSH reader (pyca/cryptography) accepts what we write."""
    key = SigningKey.generate("x")
    key.save(tmp_path / "k", passphrase)
    other = serialization.load_ssh_private_key((tmp_path / "k").read_bytes(), passphrase)
    assert isinstance(other, Ed25519PrivateKey)
    assert other.public_key().public_bytes_raw() == key.public.raw


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE])
def test_we_read_cryptography_files(tmp_path: Path, passphrase: bytes | None) -> None:
    private = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    data = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption)
    loaded = load_signing_key(write(tmp_path, data), passphrase)
    assert loaded.public.raw == private.public_key().public_bytes_raw()


def test_encrypted_key_without_passphrase_asks_for_one(tmp_path: Path) -> None:
    SigningKey.generate().save(tmp_path / "k", PASSPHRASE)
    with pytest.raises(PassphraseRequired, match="protected by a passphrase"):
        load_signing_key(tmp_path / "k")


@pytest.mark.parametrize("wrong", [b"wrong", b"", PASSPHRASE + b" "])
def test_wrong_passphrase(tmp_path: Path, wrong: bytes) -> None:
    SigningKey.generate().save(tmp_path / "k", PASSPHRASE)
    with pytest.raises(BadPassphrase, match="wrong passphrase"):
        load_signing_key(tmp_path / "k", wrong)


def test_passphrase_for_unencrypted_key_is_ignored(tmp_path: Path) -> None:
    key = SigningKey.generate()
    key.save(tmp_path / "k")
    assert load_signing_key(tmp_path / "k", b"anything").public == key.public


def test_empty_passphrase_is_refused_on_save(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="empty passphrase"):
        SigningKey.generate().save(tmp_path / "k", b"")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------- writing safely


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_file_modes_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        SigningKey.generate().save(tmp_path / "k")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "k.pub").stat().st_mode) == 0o644


def test_save_leaves_only_the_two_files(tmp_path: Path) -> None:
    SigningKey.generate().save(tmp_path / "k", PASSPHRASE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k", "k.pub"]


@pytest.mark.parametrize("existing", ["k", "k.pub"])
def test_save_refuses_to_overwrite(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("precious")
    with pytest.raises(OutputError, match="already exists"):
        SigningKey.generate().save(tmp_path / "k")
    assert (tmp_path / existing).read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir()] == [existing]


def test_save_refuses_a_dangling_symlink(tmp_path: Path) -> None:
    (tmp_path / "k").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError, match="already exists"):
        SigningKey.generate().save(tmp_path / "k")
    assert not (tmp_path / "elsewhere").exists()


def test_race_on_second_file_rolls_back_the_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If k.pub appears after the up-front check, k is removed again: all or nothing."""
    real_link = os.link

    def link_then_collide(src: str, dst: str, **options: Any) -> None:
        if str(dst).endswith(".pub"):
            Path(dst).write_text("someone else's")
        real_link(src, dst, **options)

    monkeypatch.setattr(os, "link", link_then_collide)
    with pytest.raises(OutputError, match=r"k\.pub already exists"):
        SigningKey.generate().save(tmp_path / "k")
    assert [p.name for p in tmp_path.iterdir()] == ["k.pub"]
    assert (tmp_path / "k.pub").read_text() == "someone else's"


def test_interrupt_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_link = os.link

    def interrupted(src: str, dst: str, **options: Any) -> None:
        if str(dst).endswith(".pub"):
            raise KeyboardInterrupt
        real_link(src, dst, **options)

    monkeypatch.setattr(os, "link", interrupted)
    with pytest.raises(KeyboardInterrupt):
        SigningKey.generate().save(tmp_path / "k")
    assert list(tmp_path.iterdir()) == []


def test_file_systems_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: str, dst: str, **options: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    key = SigningKey.generate("fat32")
    key.save(tmp_path / "k")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k", "k.pub"]
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert load_signing_key(tmp_path / "k").public == key.public
    with pytest.raises(OutputError, match="already exists"):
        key.save(tmp_path / "k")


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        SigningKey.generate().save(tmp_path / "nowhere" / "k")


def test_unwritable_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated: the tests may run as root, which ignores directory permissions.
    def denied(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied")

    real_open = os.open

    def denied_without_a_name(path: object, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & getattr(os, "O_TMPFILE", 0) == getattr(os, "O_TMPFILE", -1):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    monkeypatch.setattr(os, "open", denied_without_a_name)
    with pytest.raises(OutputError, match="permission denied"):
        SigningKey.generate().save(tmp_path / "k")
    assert list(tmp_path.iterdir()) == []


def test_disk_full_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match="No space left on device"):
        SigningKey.generate().save(tmp_path / "k")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------- junk key files


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no such key file") as info:
        load_signing_key(tmp_path / "absent")
    assert info.value.exit_code == ExitCode.USAGE


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="is a directory"):
        load_signing_key(tmp_path)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated: the tests may run as root, which can read any file.
    path = write(tmp_path, key_file())

    real_open = os.open

    def denied(name: object, *args: object, **kwargs: object) -> int:
        if name == path:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(KeyFileError, match="permission denied"):
        load_signing_key(path)


def test_public_key_given_as_private(tmp_path: Path) -> None:
    SigningKey.generate().save(tmp_path / "k")
    with pytest.raises(KeyFileError, match=r"is a public key; give the private key file"):
        load_signing_key(tmp_path / "k.pub")


def _rsa_private() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: _rsa_private().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            ),
            "is an RSA key; evidencekit signs only with ed25519 keys",
        ),
        (
            lambda: ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            ),
            "is an ECDSA key",
        ),
        (
            lambda: _rsa_private().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            ),
            "is an RSA private key in PEM format",
        ),
        (
            lambda: Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            "is a PKCS#8 private key",
        ),
        (lambda: b"AGE-SECRET-KEY-1QQQQ\n", "is an age identity"),
        (lambda: b"-----BEGIN SSH SIGNATURE-----\nAAAA\n", "is an SSH signature"),
        (lambda: b"hello world\n", "is not an OpenSSH private key"),
        (lambda: b"", "is empty"),
        (lambda: b"  \n\n", "is empty"),
        (lambda: b"\xff\xfe\x00binary", "is not a text key file"),
        (lambda: b"x" * (65 * 1024), "too large"),
    ],
)
def test_foreign_files_are_named(tmp_path: Path, make: Callable[[], bytes], message: str) -> None:
    path = write(tmp_path, make())
    with pytest.raises(KeyFileError, match=re.escape(message)):
        load_signing_key(path)


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_truncated(key_file()), "is truncated (no '-----END"),
        (key_file() + b"trailing words\n", "unexpected text after"),
        (key_file().replace(b"\n", b"\n\n"), ""),  # blank lines are tolerated: base64 is exact
        (armor(dearmor(key_file())[:-10]), "is truncated"),
        (key_file().replace(b"b3Blbn", b"b3B*bn"), "base64 body is invalid"),
        (key_file(magic=b"openssh-key-v2\x00"), "not an openssh-key-v1"),
        (key_file(count=2), "exactly one key"),
        (key_file(count=0), "exactly one key"),
        (key_file(trailer=b"\0\0"), "unexpected trailing bytes"),
        (key_file(kdf=b"bcrypt"), "no cipher but KDF"),
        (key_file(cipher=b"3des-cbc", kdf=b"bcrypt"), "does not support"),
        (key_file(cipher=b"aes256-ctr", kdf=b"scrypt"), "unsupported key derivation"),
        (key_file(plain_section() + b"\0"), "not a whole number of blocks"),
        (key_file(plain_section(checks=(1, 2))), "check values differ"),
        (key_file(plain_section(kind=b"ssh-rsa")), "key types differ"),
        (key_file(plain_section(secret=RFC8032_SEED)), "malformed ed25519 private key"),
        # The section before padding is 135 bytes: valid padding is exactly b"\x01".
        (key_file(plain_section(padding=b"\x02")), "bad padding"),
        (key_file(plain_section(padding=bytes(range(1, 10)))), "bad padding"),  # a whole block
        (key_file(plain_section(comment=b"a\nb")), "control characters"),
        (key_file(plain_section(comment=b"\xff")), "not UTF-8"),
    ],
)
def test_damaged_key_files(tmp_path: Path, data: bytes, message: str) -> None:
    path = write(tmp_path, data)
    if not message:
        assert load_signing_key(path).public.raw == RFC8032_PUBLIC
        return
    with pytest.raises(KeyFileError, match=re.escape(message)):
        load_signing_key(path)


def test_key_file_builder_makes_a_valid_key(tmp_path: Path) -> None:
    """The junk tests above change one field of this otherwise valid file."""
    loaded = load_signing_key(write(tmp_path, key_file()))
    assert loaded.public.raw == RFC8032_PUBLIC
    assert loaded.comment == "test"


def test_public_key_in_header_must_match_private_key(tmp_path: Path) -> None:
    other = SigningKey.generate().public
    with pytest.raises(KeyFileError, match="do not match"):
        load_signing_key(write(tmp_path, key_file(public_wire=other.wire)))


def test_seed_must_produce_the_stored_public_key(tmp_path: Path) -> None:
    """A file claiming another public key everywhere would sign as someone else."""
    other = SigningKey.generate().public.raw
    section = plain_section(public=other, secret=RFC8032_SEED + other)
    with pytest.raises(KeyFileError, match="do not match"):
        load_signing_key(write(tmp_path, key_file(section, public_wire=ed25519_wire(other))))


def test_absurd_kdf_rounds_are_refused(tmp_path: Path) -> None:
    options = encode_string(b"s" * 16) + encode_uint32(2**31)
    data = key_file(b"\0" * 16, cipher=b"aes256-ctr", kdf=b"bcrypt", kdf_options=options)
    with pytest.raises(KeyFileError, match="unusable KDF settings"):
        load_signing_key(write(tmp_path, data), PASSPHRASE)


def test_private_key_is_encrypted_rejects_junk() -> None:
    with pytest.raises(KeyFileError, match="is not an OpenSSH private key"):
        private_key_is_encrypted(b"not a key")
    with pytest.raises(KeyFileError, match="is a public key"):
        private_key_is_encrypted(RFC8032_LINE.encode())


# ------------------------------------------------------------- public key files


def test_load_public_key_file_skips_comments(tmp_path: Path) -> None:
    path = write(tmp_path, f"# made for the lab\n\n{RFC8032_LINE}\n".encode(), "k.pub")
    public = load_public_key_file(path)
    assert public.raw == RFC8032_PUBLIC
    assert public.comment == "rfc8032-test1"


def test_load_public_key_file_refuses_private_key(tmp_path: Path) -> None:
    SigningKey.generate().save(tmp_path / "k")
    with pytest.raises(KeyFileError, match=r"is a private key; give the public key file \(k\.pub\)"):
        load_public_key_file(tmp_path / "k")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"# only a comment\n", "contains no public key"),
        (b"", "is empty"),
        (b"ssh-rsa AAAAB3NzaC1yc2E= me\n", "is an RSA key"),
    ],
)
def test_load_public_key_file_junk(tmp_path: Path, content: bytes, message: str) -> None:
    with pytest.raises(KeyFileError, match=message):
        load_public_key_file(write(tmp_path, content, "k.pub"))


def test_load_public_key_file_missing(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no such key file"):
        load_public_key_file(tmp_path / "absent.pub")
