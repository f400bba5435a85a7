"""Ed25519 signing keys in OpenSSH's formats, so one key works with evidencekit and ssh-keygen.

* Public keys: the one-line ``ssh-ed25519 AAAA… comment`` form and the RFC 4253 wire form.
* Private keys: the ``openssh-key-v1`` container of OpenSSH's PROTOCOL.key, written the way
  ``ssh-keygen -t ed25519`` writes it (bcrypt KDF + aes256-ctr when a passphrase is given), so the
  comment survives and ``ssh-keygen -y -f`` reads our files.

Only ssh-ed25519 is supported: other key types are recognised only to say clearly what was found.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import bcrypt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from evidencekit import fs
from evidencekit.crypto.sshwire import (
    WireReader,
    decode_base64_strict,
    encode_string,
    encode_uint32,
)
from evidencekit.errors import (
    BadPassphrase,
    EvidenceKitError,
    KeyFileError,
    OutputError,
    PassphraseRequired,
    UsageError,
)
from evidencekit.fs.noatime import read_user_file

ED25519 = "ssh-ed25519"
_ED25519_KEY_LEN = 32

_PRIVATE_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----"
_PRIVATE_END = "-----END OPENSSH PRIVATE KEY-----"
_AUTH_MAGIC = b"openssh-key-v1\x00"
_ARMOR_WIDTH = 70  # ssh-keygen's line width for private key files

# What ssh-keygen 9.x uses for new passphrase-protected keys.
_NEW_CIPHER = "aes256-ctr"
_NEW_KDF_ROUNDS = 16
_NEW_SALT_LEN = 16
# A key file is read from disk and may come from anyone: refuse KDF costs that would hang us.
_MAX_KDF_ROUNDS = 10_000
_MAX_KEY_FILE_SIZE = 64 * 1024


@dataclass(frozen=True)
class _CipherSpec:
    """How one OpenSSH private-key cipher is driven (key/IV come from the KDF output)."""

    key_len: int
    iv_len: int
    block_len: int
    mode: str  # "ctr", "cbc" or "gcm"; gcm appends a 16-byte tag after the encrypted section

    @property
    def tag_len(self) -> int:
        return 16 if self.mode == "gcm" else 0


_CIPHERS: dict[str, _CipherSpec] = {
    "aes128-ctr": _CipherSpec(16, 16, 16, "ctr"),
    "aes192-ctr": _CipherSpec(24, 16, 16, "ctr"),
    "aes256-ctr": _CipherSpec(32, 16, 16, "ctr"),
    "aes128-cbc": _CipherSpec(16, 16, 16, "cbc"),
    "aes192-cbc": _CipherSpec(24, 16, 16, "cbc"),
    "aes256-cbc": _CipherSpec(32, 16, 16, "cbc"),
    "aes128-gcm@openssh.com": _CipherSpec(16, 12, 16, "gcm"),
    "aes256-gcm@openssh.com": _CipherSpec(32, 12, 16, "gcm"),
}
_UNENCRYPTED_BLOCK_LEN = 8  # padding unit of the cipher "none"

_OTHER_KEY_TYPES = {
    "ssh-rsa": "an RSA key",
    "ssh-dss": "a DSA key",
    "sk-ssh-ed25519@openssh.com": "a FIDO security-key (ed25519-sk) key",
    "sk-ecdsa-sha2-nistp256@openssh.com": "a FIDO security-key (ecdsa-sk) key",
}
_ONLY_ED25519 = "evidencekit signs only with ed25519 keys"
_MAKE_KEY_HINT = "make one with: evidencekit keygen, or ssh-keygen -t ed25519"


def _describe_key_type(name: str) -> str:
    """A phrase for people naming an SSH key type ("an RSA key")."""
    if name in _OTHER_KEY_TYPES:
        return _OTHER_KEY_TYPES[name]
    if name.startswith("ecdsa-sha2-"):
        return "an ECDSA key"
    if name.endswith("-cert-v01@openssh.com"):
        return "an SSH certificate"
    return f"a key of unknown type {name!r}"


def _looks_like_key_type(token: str) -> bool:
    return token == ED25519 or token in _OTHER_KEY_TYPES or token.startswith(("ecdsa-", "sk-"))


def _comment_problem(comment: str) -> str | None:
    """Why a comment cannot be stored, or None.

    Comments end up on one line of a .pub file and on people's terminals, so control
    characters (newlines, escape sequences) are refused.
    """
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in comment):
        return "a key comment must be one line of printable text"
    return None


_Key = TypeVar("_Key", Ed25519PublicKey, Ed25519PrivateKey)


@dataclass(frozen=True, eq=False)
class _Commented(Generic[_Key]):
    """An Ed25519 key (public or private) with a comment, its name: one a key cannot hold
    (_comment_problem) is refused when the key is made (UsageError)."""

    key: _Key
    comment: str = ""

    def __post_init__(self) -> None:
        problem = _comment_problem(self.comment)
        if problem:
            raise UsageError(problem)


# --------------------------------------------------------------------------- public keys


class PublicKey(_Commented[Ed25519PublicKey]):
    """An ssh-ed25519 public key; equality and hashing look at the key bytes only."""

    @property
    def raw(self) -> bytes:
        """The 32 key bytes."""
        return self.key.public_bytes_raw()

    @property
    def wire(self) -> bytes:
        """RFC 4253 wire form: string("ssh-ed25519") || string(32 key bytes)."""
        return encode_string(ED25519.encode("ascii")) + encode_string(self.raw)

    @property
    def fingerprint(self) -> str:
        """``SHA256:`` + unpadded base64 of SHA-256(wire), as ``ssh-keygen -lf`` prints it."""
        digest = hashlib.sha256(self.wire).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    def openssh_line(self) -> str:
        """``ssh-ed25519 AAAA… comment`` (no comment part when the comment is empty)."""
        line = f"{ED25519} {base64.b64encode(self.wire).decode('ascii')}"
        return f"{line} {self.comment}" if self.comment else line

    @classmethod
    def from_openssh_line(cls, line: str) -> PublicKey:
        """Parse one ``ssh-ed25519 AAAA… [comment]`` line; KeyFileError for anything else."""
        return _parse_public_line(line, "public key")

    @classmethod
    def from_wire(cls, data: bytes) -> PublicKey:
        """Parse the RFC 4253 wire form; KeyFileError unless it is exactly one ed25519 key."""
        return _parse_public_wire(data, "public key")

    def is_named_by(self, openssh_line: str) -> bool:
        """True if ``openssh_line`` is this key (comment aside); False if it is another or unreadable."""
        try:
            return PublicKey.from_openssh_line(openssh_line) == self
        except EvidenceKitError:
            return False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"PublicKey({self.fingerprint}, comment={self.comment!r})"


def _parse_public_wire(data: bytes, subject: str) -> PublicKey:
    reader = WireReader(data, error=KeyFileError, what=subject)
    kind = reader.read_text()
    if kind != ED25519:
        raise KeyFileError(f"{subject} is {_describe_key_type(kind)}; {_ONLY_ED25519}")
    raw = reader.read_string()
    if len(raw) != _ED25519_KEY_LEN:
        raise reader.fail(f"has a {len(raw)}-byte ed25519 key (expected {_ED25519_KEY_LEN})")
    reader.expect_end()
    return PublicKey(Ed25519PublicKey.from_public_bytes(raw))


def _parse_public_line(line: str, subject: str) -> PublicKey:
    parts = line.strip().split(None, 2)
    if not parts:
        raise KeyFileError(f"{subject} is empty")
    kind = parts[0]
    if kind != ED25519:
        if _looks_like_key_type(kind):
            raise KeyFileError(f"{subject} is {_describe_key_type(kind)}; {_ONLY_ED25519}")
        raise KeyFileError(
            f"{subject} is not an OpenSSH public key line (expected 'ssh-ed25519 AAAA… comment')"
        )
    if len(parts) < 2:
        raise KeyFileError(f"{subject} has no key data after 'ssh-ed25519'")
    blob = decode_base64_strict(parts[1])
    if blob is None:
        raise KeyFileError(f"{subject} has key data that is not valid base64")
    key = _parse_public_wire(blob, subject)
    comment = parts[2] if len(parts) == 3 else ""
    if _comment_problem(comment):
        raise KeyFileError(f"{subject} has a comment with control characters")
    return PublicKey(key.key, comment)


# --------------------------------------------------------------------------- signing keys


class SigningKey(_Commented[Ed25519PrivateKey]):
    """An Ed25519 private key (``key``) and its comment (the comment is copied to the public
    key)."""

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key.public_key(), self.comment)

    @classmethod
    def generate(cls, comment: str = "") -> SigningKey:
        return cls(Ed25519PrivateKey.generate(), comment)

    def save(self, path: Path, passphrase: bytes | None = None) -> None:
        """Write ``path`` (OpenSSH private key, 0600) and ``path.pub`` (0644); never overwrite.

        Both files appear complete or not at all: each is written to a temporary file in the
        same directory, synced, then hard-linked into place (linking fails if the name exists).
        """
        if passphrase is not None and not passphrase:
            raise UsageError(
                "an empty passphrase cannot protect a key; give no passphrase to save it unencrypted"
            )
        private_text = _encode_private_file(self, passphrase)
        public_text = (self.public.openssh_line() + "\n").encode("utf-8")
        _write_new_files([(path, private_text, 0o600), (_pub_path(path), public_text, 0o644)])

    def __repr__(self) -> str:
        return f"SigningKey({self.public.fingerprint}, comment={self.comment!r})"


def _pub_path(path: Path) -> Path:
    return path.with_name(path.name + ".pub")


# --------------------------------------------------------------------------- loading


def load_signing_key(path: Path, passphrase: bytes | None = None) -> SigningKey:
    """Load an OpenSSH ed25519 private key file.

    Raises KeyFileError (missing, unreadable, wrong kind of file or key), PassphraseRequired
    (encrypted and no passphrase given) or BadPassphrase. A passphrase given for an
    unencrypted key is ignored, as ssh-keygen does.
    """
    text = _read_key_text(path)
    container = _parse_container(text, str(path))
    return container.decrypt(passphrase)


def private_key_is_encrypted(data: bytes) -> bool:
    """Whether an OpenSSH private key file is passphrase-protected (KeyFileError on junk)."""
    text = _decode_key_text(data, "key file")
    return _parse_container(text, "key file").encrypted


def load_public_key_file(path: Path) -> PublicKey:
    """Load a ``.pub`` file: its first line that is neither blank nor a ``#`` comment."""
    text = _read_key_text(path)
    if "PRIVATE KEY-----" in text:
        raise KeyFileError(f"{path} is a private key; give the public key file ({path.name}.pub)")
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return _parse_public_line(line, str(path))
    raise KeyFileError(f"{path} contains no public key")


def _read_key_text(path: Path) -> str:
    try:
        # keeping its access time: the key may lie in a folder being captured
        data = read_user_file(path, _MAX_KEY_FILE_SIZE + 1)
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except IsADirectoryError:
        raise KeyFileError(f"{path} is a directory, not a key file") from None
    except PermissionError:
        raise KeyFileError(f"{path}: permission denied") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) > _MAX_KEY_FILE_SIZE:
        raise KeyFileError(f"{path} is too large to be a key file")
    return _decode_key_text(data, str(path))


def _decode_key_text(data: bytes, subject: str) -> str:
    if not data.strip():
        raise KeyFileError(f"{subject} is empty")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError(f"{subject} is not a text key file") from None


def _describe_foreign_text(text: str) -> str:
    """Say what a file that is not an OpenSSH private key looks like, for the error message."""
    first = text.lstrip().split("\n", 1)[0].strip()
    token = first.split(None, 1)[0] if first else ""
    if _looks_like_key_type(token):
        return "is a public key; give the private key file (the one without .pub)"
    pem_kinds = {
        "RSA PRIVATE KEY": "is an RSA private key in PEM format",
        "EC PRIVATE KEY": "is an ECDSA private key in PEM format",
        "DSA PRIVATE KEY": "is a DSA private key in PEM format",
        "PRIVATE KEY": "is a PKCS#8 private key, not an OpenSSH private key",
        "ENCRYPTED PRIVATE KEY": "is a PKCS#8 private key, not an OpenSSH private key",
        "SSH SIGNATURE": "is an SSH signature, not a key",
    }
    for label, description in pem_kinds.items():
        if first == f"-----BEGIN {label}-----":
            return description
    if first.startswith("---- BEGIN SSH2 PUBLIC KEY"):
        return "is an RFC 4716 public key, not a private key"
    if first.startswith("PuTTY-User-Key-File"):
        return "is a PuTTY key; export it in OpenSSH format first"
    if first.startswith("AGE-SECRET-KEY-1"):
        return "is an age identity, not an SSH key"
    if first.startswith("age-encryption.org/") or first == "-----BEGIN AGE ENCRYPTED FILE-----":
        return "is an age-encrypted file, not a key"
    return "is not an OpenSSH private key"


def _armor_body(text: str, subject: str) -> bytes:
    """The base64 payload between the OpenSSH private key armor lines."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if lines[0] != _PRIVATE_BEGIN:
        raise KeyFileError(f"{subject} {_describe_foreign_text(text)}")
    if _PRIVATE_END not in lines:
        raise KeyFileError(f"{subject} is truncated (no '{_PRIVATE_END}' line)")
    end = lines.index(_PRIVATE_END)
    if end != len(lines) - 1:
        raise KeyFileError(f"{subject} has unexpected text after '{_PRIVATE_END}'")
    # Line width differs between tools (70 for ssh-keygen, 64 or 76 elsewhere): only the
    # base64 itself must be exact.
    blob = decode_base64_strict("".join(lines[1:end]))
    if blob is None:
        raise KeyFileError(f"{subject} is damaged (its base64 body is invalid)")
    return blob


@dataclass(frozen=True)
class _Container:
    """The outer, unencrypted part of an openssh-key-v1 file."""

    subject: str
    cipher: str
    kdf_options: bytes
    public: PublicKey
    private_section: bytes  # encrypted unless cipher == "none"
    tag: bytes  # AEAD tag for the gcm ciphers, else empty

    @property
    def encrypted(self) -> bool:
        return self.cipher != "none"

    def decrypt(self, passphrase: bytes | None) -> SigningKey:
        if not self.encrypted:
            return _parse_private_section(self, self.private_section)
        if passphrase is None:
            raise PassphraseRequired(f"{self.subject} is protected by a passphrase")
        return _parse_private_section(self, _decrypt_section(self, passphrase))


def _parse_container(text: str, subject: str) -> _Container:
    """Parse PROTOCOL.key's outer structure; refuse anything but one ed25519 key."""
    reader = WireReader(_armor_body(text, subject), error=KeyFileError, what=subject)
    if reader.read_bytes(len(_AUTH_MAGIC)) != _AUTH_MAGIC:
        raise reader.fail("is not an openssh-key-v1 private key")
    cipher, kdf, kdf_options = reader.read_text(), reader.read_text(), reader.read_string()
    if reader.read_uint32() != 1:
        raise reader.fail("holds several keys; evidencekit needs a file with exactly one key")
    public = _parse_public_wire(reader.read_string(), subject)
    section = reader.read_string()
    spec = _cipher_spec(cipher, kdf, subject)
    tag = reader.read_bytes(spec.tag_len) if spec else b""
    reader.expect_end()
    block_len = spec.block_len if spec else _UNENCRYPTED_BLOCK_LEN
    if len(section) % block_len:
        raise reader.fail("is damaged (its private section is not a whole number of blocks)")
    return _Container(subject, cipher, kdf_options, public, section, tag)


def _cipher_spec(cipher: str, kdf: str, subject: str) -> _CipherSpec | None:
    """The cipher used (None for an unencrypted key), after checking cipher/KDF agree."""
    if cipher == "none":
        if kdf != "none":
            raise KeyFileError(f"{subject} is damaged (no cipher but KDF {kdf!r})")
        return None
    if cipher not in _CIPHERS:
        raise KeyFileError(
            f"{subject} is encrypted with {cipher!r}, which evidencekit does not support",
            hint=f"re-encrypt it with: ssh-keygen -p -Z {_NEW_CIPHER} -f {subject}",
        )
    if kdf != "bcrypt":
        raise KeyFileError(f"{subject} uses the unsupported key derivation {kdf!r}")
    return _CIPHERS[cipher]


def _decrypt_section(container: _Container, passphrase: bytes) -> bytes:
    spec = _CIPHERS[container.cipher]
    key_iv = _bcrypt_kdf(container, passphrase, spec.key_len + spec.iv_len)
    key, iv = key_iv[: spec.key_len], key_iv[spec.key_len :]
    if spec.mode == "gcm":
        try:
            return AESGCM(key).decrypt(iv, container.private_section + container.tag, None)
        except InvalidTag:
            raise BadPassphrase(f"wrong passphrase for {container.subject}") from None
    mode = modes.CTR(iv) if spec.mode == "ctr" else modes.CBC(iv)
    decryptor = Cipher(algorithms.AES(key), mode).decryptor()
    return decryptor.update(container.private_section) + decryptor.finalize()


def _bcrypt_kdf(container: _Container, passphrase: bytes, length: int) -> bytes:
    reader = WireReader(container.kdf_options, error=KeyFileError, what=container.subject)
    salt, rounds = reader.read_string(), reader.read_uint32()
    reader.expect_end()
    if not salt or not 0 < rounds <= _MAX_KDF_ROUNDS:
        raise reader.fail(f"has unusable KDF settings ({len(salt)}-byte salt, {rounds} rounds)")
    if not passphrase:
        raise BadPassphrase(f"wrong passphrase for {container.subject} (it is empty)")
    # OpenSSH's own default is 16 rounds, which bcrypt would warn about without the flag.
    return bcrypt.kdf(passphrase, salt, length, rounds, ignore_few_rounds=True)


def _parse_private_section(container: _Container, plain: bytes) -> SigningKey:
    """Parse the (decrypted) private section and check it agrees with the public key."""
    subject = container.subject
    reader = WireReader(plain, error=KeyFileError, what=subject)
    if reader.read_uint32() != reader.read_uint32():
        # The two check values are equal by construction; after decryption they differ only
        # when the key derived from the passphrase was wrong.
        if container.encrypted:
            raise BadPassphrase(f"wrong passphrase for {subject}")
        raise reader.fail("is damaged (its check values differ)")
    if reader.read_text() != ED25519:
        raise reader.fail("is damaged (private and public key types differ)")
    public_raw, secret = reader.read_string(), reader.read_string()
    comment = reader.read_text()
    _check_padding(reader, container)
    return _signing_key_from_parts(container, public_raw, secret, comment)


def _check_padding(reader: WireReader, container: _Container) -> None:
    padding = reader.read_rest()
    spec = _CIPHERS.get(container.cipher)
    block_len = spec.block_len if spec else _UNENCRYPTED_BLOCK_LEN
    if len(padding) >= block_len or padding != bytes(range(1, len(padding) + 1)):
        raise reader.fail("is damaged (bad padding after the private key)")


def _signing_key_from_parts(
    container: _Container, public_raw: bytes, secret: bytes, comment: str
) -> SigningKey:
    subject = container.subject
    # OpenSSH stores the 64-byte "secret" as seed || public key.
    if len(secret) != 2 * _ED25519_KEY_LEN or secret[_ED25519_KEY_LEN:] != public_raw:
        raise KeyFileError(f"{subject} is damaged (malformed ed25519 private key)")
    private = Ed25519PrivateKey.from_private_bytes(secret[:_ED25519_KEY_LEN])
    # A file whose seed does not produce its public key would sign as someone else.
    derived = private.public_key().public_bytes_raw()
    if derived != public_raw or derived != container.public.raw:
        raise KeyFileError(f"{subject} is damaged (private and public key do not match)")
    if _comment_problem(comment):
        raise KeyFileError(f"{subject} has a comment with control characters")
    return SigningKey(private, comment)


# --------------------------------------------------------------------------- saving


def _encode_private_file(key: SigningKey, passphrase: bytes | None) -> bytes:
    """The whole private key file, laid out as ssh-keygen lays it out."""
    public_wire = key.public.wire
    if passphrase is None:
        section = _private_section(key, _UNENCRYPTED_BLOCK_LEN)
        header = _container_header("none", "none", b"", public_wire)
    else:
        salt = os.urandom(_NEW_SALT_LEN)
        kdf_options = encode_string(salt) + encode_uint32(_NEW_KDF_ROUNDS)
        spec = _CIPHERS[_NEW_CIPHER]
        key_iv = bcrypt.kdf(
            passphrase, salt, spec.key_len + spec.iv_len, _NEW_KDF_ROUNDS, ignore_few_rounds=True
        )
        cipher = Cipher(algorithms.AES(key_iv[: spec.key_len]), modes.CTR(key_iv[spec.key_len :])).encryptor()
        plain = _private_section(key, spec.block_len)
        section = cipher.update(plain) + cipher.finalize()
        header = _container_header(_NEW_CIPHER, "bcrypt", kdf_options, public_wire)
    body = base64.b64encode(header + encode_string(section)).decode("ascii")
    lines = [body[i : i + _ARMOR_WIDTH] for i in range(0, len(body), _ARMOR_WIDTH)]
    return "\n".join([_PRIVATE_BEGIN, *lines, _PRIVATE_END, ""]).encode("ascii")


def _container_header(cipher: str, kdf: str, kdf_options: bytes, public_wire: bytes) -> bytes:
    return (
        _AUTH_MAGIC
        + encode_string(cipher.encode("ascii"))
        + encode_string(kdf.encode("ascii"))
        + encode_string(kdf_options)
        + encode_uint32(1)
        + encode_string(public_wire)
    )


def _private_section(key: SigningKey, block_len: int) -> bytes:
    """Check values, the key, its comment, then padding 1, 2, 3… to a whole block."""
    checkint = os.urandom(4)
    seed = key.key.private_bytes_raw()
    public_raw = key.public.raw
    plain = (
        checkint
        + checkint
        + encode_string(ED25519.encode("ascii"))
        + encode_string(public_raw)
        + encode_string(seed + public_raw)
        + encode_string(key.comment.encode("utf-8"))
    )
    pad_len = -len(plain) % block_len
    return plain + bytes(range(1, pad_len + 1))


def _write_new_files(files: list[tuple[Path, bytes, int]]) -> None:
    """Create every file complete with its mode, or none of them; never replace a file."""
    existing = [str(path) for path, _, _ in files if os.path.lexists(path)]
    if existing:
        raise OutputError(f"{existing[0]} already exists; refusing to overwrite it")
    published: list[Path] = []
    try:
        for path, data, mode in files:
            try:
                # Exact mode, whatever the umask. Not a result: a capture making the
                # personal key first must stay interruptible (evidencekit.fs.commit).
                with fs.staged(path, mode, result=False) as stage:
                    stage.file.write(data)
            except FileExistsError:
                raise OutputError(f"{path} already exists; refusing to overwrite it") from None
            except OSError as exc:
                raise _output_error(path, exc) from None
            published.append(path)
    except BaseException:
        # Includes Ctrl-C: remove what this call created so no half-made key pair remains.
        for path in published:
            with suppress(OSError):
                path.unlink()
        raise


def _output_error(path: Path, exc: OSError) -> OutputError:
    if isinstance(exc, fs.NameNotAllowed):
        return OutputError(f"cannot write {path}: {exc.strerror}")
    if exc.errno == errno.ENOENT:
        return OutputError(f"cannot write {path}: the directory {path.parent} does not exist")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return OutputError(f"cannot write {path}: permission denied")
    return OutputError(f"cannot write {path}: {exc.strerror or exc}")
