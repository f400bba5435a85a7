"""Interop with OpenSSH's ssh-keygen: keys and SSHSIG signatures work in both directions.

Every key here is generated in pytest's tmp_path and thrown away with it.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from pathlib import Path

import pytest

from evidencekit.crypto.keys import (
    SigningKey,
    load_public_key_file,
    load_signing_key,
    private_key_is_encrypted,
)
from evidencekit.crypto.sshsig import NAMESPACE, parse, sign, verify
from evidencekit.crypto.sshwire import encode_string
from evidencekit.errors import BadPassphrase, KeyFileError, PassphraseRequired, SignatureError
from tests.support.tools import require_tool

pytestmark = pytest.mark.interop

PASSPHRASE = "interop passphrase"
MESSAGES = {
    "text": b"chain of custody event 1\n",
    "empty": b"",
    "binary": bytes(range(256)) * 4096,  # 1 MiB
}


@pytest.fixture(scope="module")
def ssh_keygen() -> str:
    return require_tool("ssh-keygen")


def run(*args: str, stdin: bytes = b"", check: bool = True) -> subprocess.CompletedProcess[bytes]:
    # No agent, no prompts: ssh-keygen must only use the files and options given.
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    result = subprocess.run(args, input=stdin, capture_output=True, env=env, timeout=60, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.decode()}")
    return result


def keygen_key(ssh_keygen: str, path: Path, passphrase: str = "", cipher: str | None = None) -> Path:
    args = ["-q", "-t", "ed25519", "-C", "made by ssh-keygen", "-N", passphrase, "-f", str(path)]
    run(ssh_keygen, *args, *(["-Z", cipher] if cipher else []))
    return path


def keygen_sign(ssh_keygen: str, key: Path, data: Path, namespace: str, hash_alg: str) -> bytes:
    """``ssh-keygen -Y sign``; it writes DATA.sig next to the data file."""
    args = ["-q", "-Y", "sign", "-n", namespace, "-O", f"hashalg={hash_alg}", "-f", str(key), str(data)]
    run(ssh_keygen, *args)
    return Path(str(data) + ".sig").read_bytes()


def keygen_check(ssh_keygen: str, sig: Path, message: bytes, namespace: str = NAMESPACE) -> bool:
    """``ssh-keygen -Y check-novalidate``: is the signature valid, whoever made it?"""
    args = ["-Y", "check-novalidate", "-n", namespace, "-s", str(sig)]
    return run(ssh_keygen, *args, stdin=message, check=False).returncode == 0


def keygen_verify(
    ssh_keygen: str, sig: Path, message: bytes, signers: Path, namespace: str = NAMESPACE
) -> bool:
    """``ssh-keygen -Y verify``: valid, and made by principal "someone" of the allowed_signers file?"""
    args = ["-Y", "verify", "-f", str(signers), "-I", "someone", "-n", namespace, "-s", str(sig)]
    return run(ssh_keygen, *args, stdin=message, check=False).returncode == 0


# ------------------------------------------------------------- ssh-keygen keys → evidencekit


def test_we_load_unencrypted_ssh_keygen_key(ssh_keygen: str, tmp_path: Path) -> None:
    path = keygen_key(ssh_keygen, tmp_path / "id")
    key = load_signing_key(path)
    assert key.public == load_public_key_file(tmp_path / "id.pub")
    assert key.comment == "made by ssh-keygen"
    assert not private_key_is_encrypted(path.read_bytes())


@pytest.mark.parametrize("cipher", [None, "aes256-ctr", "aes128-ctr", "aes256-cbc", "aes256-gcm@openssh.com"])
def test_we_load_encrypted_ssh_keygen_key(ssh_keygen: str, tmp_path: Path, cipher: str | None) -> None:
    path = keygen_key(ssh_keygen, tmp_path / "id", PASSPHRASE, cipher)
    assert private_key_is_encrypted(path.read_bytes())
    key = load_signing_key(path, PASSPHRASE.encode())
    assert key.public == load_public_key_file(tmp_path / "id.pub")
    assert key.comment == "made by ssh-keygen"
    with pytest.raises(PassphraseRequired):
        load_signing_key(path)
    with pytest.raises(BadPassphrase):
        load_signing_key(path, b"not the passphrase")


def test_unsupported_cipher_is_named_with_a_fix(ssh_keygen: str, tmp_path: Path) -> None:
    path = keygen_key(ssh_keygen, tmp_path / "id", PASSPHRASE, "chacha20-poly1305@openssh.com")
    with pytest.raises(KeyFileError, match=re.escape("chacha20-poly1305@openssh.com")) as info:
        load_signing_key(path, PASSPHRASE.encode())
    assert info.value.hint is not None
    # The hint's command really fixes the file.
    command = info.value.hint.split(": ", 1)[1].split()
    run(*command[:2], "-P", PASSPHRASE, "-N", PASSPHRASE, *command[2:])
    assert load_signing_key(path, PASSPHRASE.encode()).comment == "made by ssh-keygen"


def test_ssh_keygen_rsa_key_is_named(ssh_keygen: str, tmp_path: Path) -> None:
    run(ssh_keygen, "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(tmp_path / "rsa"))
    with pytest.raises(KeyFileError, match="is an RSA key"):
        load_signing_key(tmp_path / "rsa")
    with pytest.raises(KeyFileError, match="is an RSA key"):
        load_public_key_file(tmp_path / "rsa.pub")


# ------------------------------------------------------------- evidencekit keys → ssh-keygen


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE])
def test_ssh_keygen_reads_our_key(ssh_keygen: str, tmp_path: Path, passphrase: str | None) -> None:
    key = SigningKey.generate("made by evidencekit")
    path = tmp_path / "ours"
    key.save(path, passphrase.encode() if passphrase else None)
    derived = run(ssh_keygen, "-y", "-P", passphrase or "", "-f", str(path)).stdout.decode()
    # ssh-keygen -y prints the comment it found inside the private key file.
    assert derived.strip() == key.public.openssh_line()
    for listed in (path, tmp_path / "ours.pub"):
        output = run(ssh_keygen, "-l", "-f", str(listed)).stdout.decode().split()
        assert output[:3] == ["256", key.public.fingerprint, "made"]
        assert output[-1] == "(ED25519)"


def test_ssh_keygen_refuses_wrong_passphrase_for_our_key(ssh_keygen: str, tmp_path: Path) -> None:
    """Proves our key file really is encrypted, not just labelled so."""
    SigningKey.generate().save(tmp_path / "ours", PASSPHRASE.encode())
    result = run(ssh_keygen, "-y", "-P", "wrong", "-f", str(tmp_path / "ours"), check=False)
    assert result.returncode != 0


def test_ssh_keygen_can_change_our_passphrase(ssh_keygen: str, tmp_path: Path) -> None:
    key = SigningKey.generate("re-encrypted")
    key.save(tmp_path / "ours", PASSPHRASE.encode())
    run(ssh_keygen, "-p", "-P", PASSPHRASE, "-N", "new", "-f", str(tmp_path / "ours"))
    assert load_signing_key(tmp_path / "ours", b"new").public == key.public


# ------------------------------------------------------------- signatures, both directions


@pytest.fixture
def shared_key(ssh_keygen: str, tmp_path: Path) -> tuple[SigningKey, Path]:
    """An unencrypted key saved by us, which ssh-keygen can sign with (mode 0600)."""
    key = SigningKey.generate("someone@lab")
    key.save(tmp_path / "signer")
    return key, tmp_path / "signer"


@pytest.fixture
def allowed_signers(shared_key: tuple[SigningKey, Path], tmp_path: Path) -> Path:
    key, _ = shared_key
    path = tmp_path / "allowed_signers"
    path.write_text(f'someone namespaces="{NAMESPACE}" {key.public.openssh_line()}\n')
    return path


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_ssh_keygen_accepts_our_signature(
    ssh_keygen: str,
    tmp_path: Path,
    shared_key: tuple[SigningKey, Path],
    allowed_signers: Path,
    name: str,
) -> None:
    key, _ = shared_key
    message = MESSAGES[name]
    sig = tmp_path / "ours.sig"
    sig.write_bytes(sign(key, message))
    assert keygen_check(ssh_keygen, sig, message)
    assert keygen_verify(ssh_keygen, sig, message, allowed_signers)
    # A tampered message fails in ssh-keygen and in evidencekit.
    tampered = message + b"\0"
    assert not keygen_check(ssh_keygen, sig, tampered)
    assert not keygen_verify(ssh_keygen, sig, tampered, allowed_signers)
    with pytest.raises(SignatureError, match="does not match the data"):
        verify(sig.read_bytes(), tampered)


@pytest.mark.parametrize("hash_alg", ["sha512", "sha256"])
@pytest.mark.parametrize("namespace", [NAMESPACE, "file", "n" * 40])
@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_ssh_keygen_signature_is_identical_to_ours(
    ssh_keygen: str,
    tmp_path: Path,
    shared_key: tuple[SigningKey, Path],
    name: str,
    namespace: str,
    hash_alg: str,
) -> None:
    """Byte-identical output, including the armor edge case of a 40-character namespace."""
    key, key_path = shared_key
    message = MESSAGES[name]
    data_file = tmp_path / "evidence.bin"
    data_file.write_bytes(message)
    theirs = keygen_sign(ssh_keygen, key_path, data_file, namespace, hash_alg)
    assert theirs == sign(key, message, namespace=namespace, hash_alg=hash_alg)
    assert verify(theirs, message, namespace=namespace) == key.public
    with pytest.raises(SignatureError, match="does not match the data"):
        verify(theirs, message + b"\0", namespace=namespace)


def test_wrong_namespace_fails_in_both(
    ssh_keygen: str, tmp_path: Path, shared_key: tuple[SigningKey, Path], allowed_signers: Path
) -> None:
    key, _ = shared_key
    sig = tmp_path / "git.sig"
    sig.write_bytes(sign(key, b"data", namespace="git"))
    assert keygen_check(ssh_keygen, sig, b"data", namespace="git")
    assert not keygen_check(ssh_keygen, sig, b"data")
    assert not keygen_verify(ssh_keygen, sig, b"data", allowed_signers)
    with pytest.raises(SignatureError, match="namespace 'git'"):
        verify(sig.read_bytes(), b"data")


def test_ssh_keygen_refuses_signer_not_in_allowed_signers(
    ssh_keygen: str, tmp_path: Path, allowed_signers: Path
) -> None:
    """The trust decision is the caller's: a valid signature by a stranger is still valid."""
    stranger = SigningKey.generate()
    sig = tmp_path / "stranger.sig"
    sig.write_bytes(sign(stranger, b"data"))
    assert not keygen_verify(ssh_keygen, sig, b"data", allowed_signers)
    assert verify(sig.read_bytes(), b"data") == stranger.public  # caller must compare keys


def test_reserved_field_we_are_stricter_than_ssh_keygen(
    ssh_keygen: str, tmp_path: Path, shared_key: tuple[SigningKey, Path]
) -> None:
    """ssh-keygen ignores a non-empty reserved field (as PROTOCOL.sshsig suggests), so the
    signature file can be altered without breaking it; evidencekit refuses such files."""
    key, _ = shared_key
    good = sign(key, b"data")
    blob = parse_blob(good)
    empty_reserved = encode_string(NAMESPACE.encode()) + encode_string(b"")
    filled = encode_string(NAMESPACE.encode()) + encode_string(b"anything")
    altered = rearmor(blob.replace(empty_reserved, filled, 1))
    sig = tmp_path / "altered.sig"
    sig.write_bytes(altered)
    assert keygen_check(ssh_keygen, sig, b"data")
    with pytest.raises(SignatureError, match="non-empty reserved field"):
        parse(altered)


def parse_blob(armored: bytes) -> bytes:
    return base64.b64decode(b"".join(armored.splitlines()[1:-1]))


def rearmor(blob: bytes) -> bytes:
    body = base64.b64encode(blob).decode()
    lines = [body[i : i + 70] for i in range(0, len(body), 70)]
    return (
        "\n".join(["-----BEGIN SSH SIGNATURE-----", *lines, "-----END SSH SIGNATURE-----"]) + "\n"
    ).encode()
