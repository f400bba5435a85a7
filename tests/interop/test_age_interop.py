"""evidencekit.crypto.age against independent implementations: the age CLI (Go reference) and
pyrage (rage, Rust). Every key is generated inside the test, in tmp_path.

age reads passphrases only from a terminal, so the scrypt tests drive it through a pseudo-tty.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_ssh_private_key

from evidencekit.crypto.age import (
    AgeWriter,
    Identity,
    Recipient,
    ScryptIdentity,
    ScryptRecipient,
    SshEd25519Identity,
    SshEd25519Recipient,
    X25519Identity,
    dearmor,
    decrypt,
    encrypt,
    parse_identity_file,
    parse_recipient,
)
from tests.support.terminal import on_a_terminal
from tests.support.tools import require_tool

pytestmark = pytest.mark.interop

SIZES = [0, 1, 65536, 65537, 200_000]
PASSPHRASE = "correct horse battery staple"


def payload(size: int) -> bytes:
    return os.urandom(size)


def require_pyrage() -> ModuleType:
    """Import pyrage, or skip (locally) / fail (CI) like require_tool does for tools."""
    try:
        import pyrage
    except ImportError:
        message = "the pyrage package is not installed"
        if os.environ.get("EVIDENCEKIT_REQUIRE_TOOLS") == "1":
            pytest.fail(message + " (EVIDENCEKIT_REQUIRE_TOOLS=1: CI must run every interop test)")
        pytest.skip(message)
    module: ModuleType = pyrage
    return module


def run(argv: list[str], data: bytes = b"") -> bytes:
    result = subprocess.run(argv, input=data, capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, f"{argv[0]} failed: {result.stderr.decode(errors='replace')}"
    return result.stdout


def run_with_tty(argv: list[str], answers: list[str], timeout: float = 120) -> str:
    """Run argv on a pseudo-terminal, answering each passphrase prompt in turn."""
    code, text = on_a_terminal(argv, answers, timeout=timeout)
    assert code == 0, f"{argv[0]} failed on the tty: {text}"
    return text


@pytest.fixture
def age_bin() -> str:
    return require_tool("age")


@pytest.fixture
def x25519_files(tmp_path: Path) -> tuple[Path, X25519Identity]:
    """An X25519 identity of ours, written as an age identity file."""
    identity = X25519Identity.generate()
    key_file = tmp_path / "ours.key"
    key_file.write_text(f"# public key: {identity.recipient()}\n{identity}\n")
    return key_file, identity


@pytest.fixture
def ssh_files(tmp_path: Path) -> tuple[Path, Path]:
    """An ssh-ed25519 key pair made by ssh-keygen: (private key file, public key file)."""
    ssh_keygen = require_tool("ssh-keygen")
    key = tmp_path / "id_ed25519"
    run([ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", "analyst@lab", "-f", str(key)])
    return key, key.with_suffix(".pub")


def ssh_identity(key: Path) -> SshEd25519Identity:
    private = load_ssh_private_key(key.read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    return SshEd25519Identity(private)


# --- age CLI ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_age_cli_decrypts_our_x25519(
    age_bin: str, tmp_path: Path, x25519_files: tuple[Path, X25519Identity], size: int
) -> None:
    key_file, identity = x25519_files
    data = payload(size)
    encrypted = tmp_path / "file.age"
    encrypted.write_bytes(encrypt(data, [identity.recipient()]))
    assert run([age_bin, "-d", "-i", str(key_file), str(encrypted)]) == data


@pytest.mark.parametrize("size", SIZES)
def test_we_decrypt_age_cli_x25519(age_bin: str, tmp_path: Path, size: int) -> None:
    key_file = tmp_path / "age.key"
    run([require_tool("age-keygen"), "-o", str(key_file)])
    identities = parse_identity_file(key_file.read_bytes())
    data = payload(size)
    encrypted = run([age_bin, "-e", "-r", str(identities[0].recipient())], data)
    assert decrypt(encrypted, identities) == data


@pytest.mark.parametrize("size", SIZES)
def test_age_cli_decrypts_our_ssh_ed25519(
    age_bin: str, tmp_path: Path, ssh_files: tuple[Path, Path], size: int
) -> None:
    key, public = ssh_files
    recipient = parse_recipient(public.read_text())
    data = payload(size)
    encrypted = tmp_path / "file.age"
    encrypted.write_bytes(encrypt(data, [recipient]))
    assert run([age_bin, "-d", "-i", str(key), str(encrypted)]) == data


@pytest.mark.parametrize("size", SIZES)
def test_we_decrypt_age_cli_ssh_ed25519(age_bin: str, ssh_files: tuple[Path, Path], size: int) -> None:
    key, public = ssh_files
    data = payload(size)
    encrypted = run([age_bin, "-e", "-R", str(public)], data)
    assert decrypt(encrypted, [ssh_identity(key)]) == data


def test_multiple_recipients_both_ways(
    age_bin: str,
    tmp_path: Path,
    x25519_files: tuple[Path, X25519Identity],
    ssh_files: tuple[Path, Path],
) -> None:
    key_file, identity = x25519_files
    key, public = ssh_files
    data = payload(100_000)
    ours = tmp_path / "ours.age"
    recipients: list[Recipient] = [identity.recipient(), parse_recipient(public.read_text())]
    ours.write_bytes(encrypt(data, recipients))
    assert run([age_bin, "-d", "-i", str(key_file), str(ours)]) == data
    assert run([age_bin, "-d", "-i", str(key), str(ours)]) == data
    theirs = run([age_bin, "-e", "-r", str(identity.recipient()), "-R", str(public)], data)
    assert decrypt(theirs, [identity]) == data
    assert decrypt(theirs, [ssh_identity(key)]) == data


def test_we_dearmor_age_cli_armor(age_bin: str, x25519_files: tuple[Path, X25519Identity]) -> None:
    _, identity = x25519_files
    data = payload(5000)
    armored = run([age_bin, "-e", "-a", "-r", str(identity.recipient())], data)
    assert armored.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
    assert decrypt(dearmor(armored), [identity]) == data


def test_age_cli_decrypts_our_passphrase_file(age_bin: str, tmp_path: Path) -> None:
    data = payload(70_000)
    encrypted = tmp_path / "file.age"
    encrypted.write_bytes(encrypt(data, [ScryptRecipient(PASSPHRASE.encode(), work_factor=12)]))
    out = tmp_path / "out"
    run_with_tty([age_bin, "-d", "-o", str(out), str(encrypted)], [PASSPHRASE])
    assert out.read_bytes() == data


def test_we_decrypt_age_cli_passphrase_file(age_bin: str, tmp_path: Path) -> None:
    data = payload(70_000)
    plain = tmp_path / "plain"
    plain.write_bytes(data)
    encrypted = tmp_path / "file.age"
    run_with_tty([age_bin, "-e", "-p", "-o", str(encrypted), str(plain)], [PASSPHRASE] * 2)
    assert decrypt(encrypted.read_bytes(), [ScryptIdentity(PASSPHRASE.encode())]) == data


def test_age_cli_reads_our_streamed_tar(
    age_bin: str, tmp_path: Path, x25519_files: tuple[Path, X25519Identity]
) -> None:
    tar_bin = require_tool("tar")
    key_file, identity = x25519_files
    encrypted = tmp_path / "bundle.tar.age"
    with encrypted.open("wb") as out:
        writer = AgeWriter(out, [identity.recipient()])
        with writer, tarfile.open(fileobj=writer, mode="w|") as tar:
            for name, size in (("notes.txt", 10), ("image.bin", 300_000)):
                info = tarfile.TarInfo(name)
                info.size = size
                tar.addfile(info, io.BytesIO(payload(size)))
    plain = run([age_bin, "-d", "-i", str(key_file), str(encrypted)])
    listing = run([tar_bin, "-tf", "-"], plain).decode().split()
    assert listing == ["notes.txt", "image.bin"]


# --- pyrage -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_pyrage_x25519_both_ways(size: int) -> None:
    pyrage = require_pyrage()
    identity = X25519Identity.generate()
    theirs = pyrage.x25519.Identity.from_str(str(identity))
    data = payload(size)
    assert pyrage.decrypt(encrypt(data, [identity.recipient()]), [theirs]) == data
    assert decrypt(pyrage.encrypt(data, [theirs.to_public()]), [identity]) == data


@pytest.mark.parametrize("size", SIZES)
def test_pyrage_ssh_ed25519_both_ways(ssh_files: tuple[Path, Path], size: int) -> None:
    pyrage = require_pyrage()
    key, public = ssh_files
    their_identity = pyrage.ssh.Identity.from_buffer(key.read_bytes())
    their_recipient = pyrage.ssh.Recipient.from_str(public.read_text().strip())
    ours = SshEd25519Recipient.from_ssh_line(public.read_text())
    data = payload(size)
    assert pyrage.decrypt(encrypt(data, [ours]), [their_identity]) == data
    assert decrypt(pyrage.encrypt(data, [their_recipient]), [ssh_identity(key)]) == data


@pytest.mark.parametrize("size", [0, 1, 65536, 65537])
def test_pyrage_passphrase_both_ways(size: int) -> None:
    pyrage = require_pyrage()
    data = payload(size)
    ours = encrypt(data, [ScryptRecipient(PASSPHRASE.encode(), work_factor=12)])
    assert pyrage.passphrase.decrypt(ours, PASSPHRASE) == data
    identities: list[Identity] = [ScryptIdentity(PASSPHRASE.encode())]
    assert decrypt(pyrage.passphrase.encrypt(data, PASSPHRASE), identities) == data
