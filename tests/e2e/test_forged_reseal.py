"""A custodian who can decrypt reseals different evidence (issue 19, item 1).

Whoever holds a decryption key can re-encrypt another tar and append a ``resealed`` custody event
signed by their own key. That key is not trusted, so the reseal alone is only a warning: what must
catch the forgery is the rule that the decrypted payload is exactly the tree the sealer's signed
manifest.json describes (docs/FORMAT.md §4.2). Each test here forges such a reseal for real
(decrypt with the test key, change the tar, encrypt again, sign the event with an outsider's key,
header times as a writer gives them), checks with GNU tar what ``tar -x`` makes of the forged tar
(so the test models what a person verifying by hand would get), then runs ``verify`` and
``extract`` with ``-i KEY --trusted-key SEALER.pub`` through the CLI. On main before the fix
every forgery here verified with exit 0.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from evidencekit.clock import parse_rfc3339, rfc3339
from evidencekit.crypto import age, sshsig
from evidencekit.crypto.keys import SigningKey
from evidencekit.format.documents import PAYLOAD, CustodyEvent, Signer, custody_member
from evidencekit.format.inner import PAX_HEADER_NAME, member_header
from evidencekit.format.outer import BLOCK, OuterWriter, padding, read_member, read_members
from evidencekit.format.ustar import pax_record, ustar_block
from tests.support.cli import Run, run_cli
from tests.support.tools import skip_or_fail

# No test here touches the real ~/.config or inherits a passphrase (tests/support/env.py).
pytestmark = pytest.mark.usefixtures("isolated_environment")

CASE = "FRAUD-2026-0200"
SECOND = 10**9
EVIDENCE = "bag/data/evidence"


@dataclass(frozen=True)
class Setup:
    bundle: Path
    sealer_pub: Path
    identity: age.X25519Identity
    identity_file: Path
    outsider: SigningKey


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """A capture with a folder of mail, an empty folder, a symbolic link and a file with two
    names (a tar hard link)."""
    if shutil.which("tar") is None:
        skip_or_fail("GNU tar is needed to see what tar -x makes of a forged payload")
    root = tmp_path_factory.mktemp("forged")
    tree = root / "evidence"
    (tree / "mail").mkdir(parents=True)
    (tree / "empty").mkdir()
    (tree / "mail" / "scam.eml").write_bytes(b"From: bank@examp1e.com\n\nPay now\n")
    (tree / "statement.csv").write_text("2026-11-16,-4999.00,EUR\n")
    os.link(tree / "statement.csv", tree / "statement-copy.csv")
    os.symlink("mail/scam.eml", tree / "link")
    sealer = SigningKey.generate("victim")
    sealer.save(root / "victim")
    identity = age.X25519Identity.generate()
    (root / "identity.txt").write_text(f"{identity}\n")
    bundle = root / "case.evidence"
    result = run_cli("capture", tree, "--case", CASE, "--examiner", "Victim V.", "-r",
                     identity.recipient(), "--sign-key", root / "victim", "-o", bundle)
    assert result.code == 0, result.stderr
    return Setup(bundle, root / "victim.pub", identity, root / "identity.txt",
                 SigningKey.generate("custodian"))


# ------------------------------------------------------------------------------- forging


def plaintext_of(setup: Setup) -> bytes:
    with open(setup.bundle, "rb") as f:
        member = next(m for m in read_members(f) if m.name == PAYLOAD)
        ciphertext = read_member(f, member, 1 << 30)
    return age.AgeReader(io.BytesIO(ciphertext), [setup.identity]).read()


def resealed(setup: Setup, plaintext: bytes, path: Path) -> Path:
    """*path*: the module's bundle with *plaintext* as its payload, encrypted to the same
    recipient, and a properly chained "resealed" event signed by the outsider."""
    with open(setup.bundle, "rb") as f:
        members = [(m.name, read_member(f, m, 1 << 30), m.mtime) for m in read_members(f)]
    payload = age.encrypt(plaintext, [setup.identity.recipient()])
    old = next(d for n, d, _ in members if n == PAYLOAD)
    events = [(n, d) for n, d, _ in members if n.startswith("custody/") and n.endswith(".json")]
    last_name, last = events[-1]
    previous = CustodyEvent.from_json(last, last_name)
    key = setup.outsider
    new, old_hash = hashlib.sha256(payload).hexdigest(), hashlib.sha256(old).hexdigest()
    event = dataclasses.replace(
        previous, sequence=previous.sequence + 1, action="resealed",
        time=rfc3339(parse_rfc3339(previous.time) + 60 * SECOND), actor_name="Custodian C.",
        actor=Signer(" ".join(key.public.openssh_line().split()[:2]), key.public.fingerprint),
        host="elsewhere", counterparty="", note="re-encrypted for the lab",
        details={"old_payload_sha256": old_hash, "new_payload_sha256": new,
                 "new_payload_size": str(len(payload)),
                 "recipients": str(setup.identity.recipient())},
        payload_sha256=new, previous_sha256=hashlib.sha256(last).hexdigest())
    data = event.to_json()
    seconds = parse_rfc3339(event.time) // SECOND
    name = custody_member(event.sequence)
    with open(path, "wb") as f:
        writer = OuterWriter(f)
        for member, content, mtime in members:
            writer.add_bytes(member, payload if member == PAYLOAD else content, mtime)
        writer.add_bytes(name, data, seconds)
        writer.add_bytes(name + ".sig", sshsig.sign(key, data), seconds)
        writer.finish()
    return path


@dataclass(frozen=True)
class Piece:
    """One member of the plaintext tar: its name as tar reads it and its raw bytes."""

    name: str
    raw: bytes


def pieces(plaintext: bytes) -> list[Piece]:
    """The plaintext cut into members (headers, data, padding), end-of-archive left out."""
    with tarfile.open(fileobj=io.BytesIO(plaintext), mode="r:") as archive:
        members = archive.getmembers()
    result = []
    for member in members:
        end = member.offset_data + member.size + len(padding(member.size)) \
            if member.isreg() else member.offset_data
        result.append(Piece(member.name, plaintext[member.offset:end]))
    return result


def joined(parts: list[Piece]) -> bytes:
    return b"".join(p.raw for p in parts) + bytes(2 * BLOCK)


def mtime_ns_of(plaintext: bytes, name: str) -> int:
    with tarfile.open(fileobj=io.BytesIO(plaintext), mode="r:") as archive:
        member = archive.getmember(name)
    seconds, fraction = member.pax_headers["mtime"].split(".")
    return int(seconds) * SECOND + int(fraction)


def folder(name: str, mtime_ns: int) -> Piece:
    """A folder member exactly as evidencekit's writer would write it."""
    header = member_header(name, tarfile.DIRTYPE, 0, 0o755, mtime_ns, 0, 0)
    assert header is not None
    return Piece(name, header)


def after(parts: list[Piece], name: str, extra: Piece) -> list[Piece]:
    index = next(i for i, p in enumerate(parts) if p.name == name)
    return [*parts[: index + 1], extra, *parts[index + 1:]]


def add_folder(plaintext: bytes) -> bytes:
    parts = pieces(plaintext)
    when = mtime_ns_of(plaintext, f"{EVIDENCE}/mail")
    return joined(after(parts, f"{EVIDENCE}/mail/scam.eml",
                        folder(f"{EVIDENCE}/mail/deleted-by-the-suspect", when)))


def drop_empty_folder(plaintext: bytes) -> bytes:
    return joined([p for p in pieces(plaintext) if p.name != f"{EVIDENCE}/empty"])


def symlink_as_folder(plaintext: bytes) -> bytes:
    """A folder where the sealer recorded the symbolic link ``link`` (stored in manifest.json
    only), in the place the walk found it."""
    parts = pieces(plaintext)
    when = mtime_ns_of(plaintext, f"{EVIDENCE}/empty")
    return joined(after(parts, f"{EVIDENCE}/empty", folder(f"{EVIDENCE}/link", when)))


ATTACKER_TEXT = "PAID IN FULL - nothing was stolen"


def pax_path_trick(plaintext: bytes) -> bytes:
    """An old-style member (typeflag NUL) whose ustar name ends in '/', with a pax ``path``
    naming a file: evidencekit read the type from the ustar name (a folder, no data) and the
    next block as a header (another folder, whose name is the attacker's text); GNU tar applies
    the pax path first, so it is a regular file of 512 bytes: that very block."""
    parts = pieces(plaintext)
    when = mtime_ns_of(plaintext, f"{EVIDENCE}/empty")
    text_block = folder(f"{EVIDENCE}/{ATTACKER_TEXT}", when).raw[-BLOCK:]
    records = (pax_record("mtime", f"{when // SECOND}.{when % SECOND:09d}")
               + pax_record("path", f"{EVIDENCE}/receipt.txt"))
    trick = (ustar_block(PAX_HEADER_NAME, tarfile.XHDTYPE, len(records), 0, 0, 0, 0)
             + records + padding(len(records))
             + ustar_block(f"{EVIDENCE}/empty/x/".encode(), tarfile.AREGTYPE, BLOCK, 0o644,
                            when // SECOND, 0, 0)
             + text_block)
    return joined(after(parts, f"{EVIDENCE}/empty", Piece("trick", trick)))


PLANTED = "External-Description: handed over voluntarily, no complaint\n"


def rewritten_tag_file(part: Piece, data: bytes) -> Piece:
    """*part* (a tag file) holding *data* instead, its header as the writer makes it."""
    with tarfile.open(fileobj=io.BytesIO(part.raw + bytes(2 * BLOCK)), mode="r:") as archive:
        member = archive.getmembers()[0]
    seconds = int(member.mtime)
    header = member_header(part.name, tarfile.REGTYPE, len(data), 0o644, seconds * SECOND, 0, 0)
    assert header is not None
    return Piece(part.name, header + data + padding(len(data)))


def rewrite_bag_info(plaintext: bytes) -> bytes:
    """bag-info.txt with a sentence the sealer never wrote, and the tag manifest's line for it
    made to match, so that a BagIt tool finds a valid bag and shows the planted text."""
    parts = pieces(plaintext)
    with tarfile.open(fileobj=io.BytesIO(plaintext), mode="r:") as tar:
        info = tar.extractfile("bag/bag-info.txt").read()  # type: ignore[union-attr]
        tags = tar.extractfile("bag/tagmanifest-sha256.txt").read().decode()  # type: ignore[union-attr]
    info += PLANTED.encode()
    tags = "".join(f"{hashlib.sha256(info).hexdigest()}  bag-info.txt\n"
                   if line.endswith("  bag-info.txt") else line + "\n"
                   for line in tags.splitlines())
    replaced = {"bag/bag-info.txt": info, "bag/tagmanifest-sha256.txt": tags.encode()}
    return joined([rewritten_tag_file(p, replaced[p.name]) if p.name in replaced else p
                   for p in parts])


def test_a_reseal_that_rewrites_bag_info_is_refused(setup: Setup, tmp_path: Path) -> None:
    """Nothing signs bag-info.txt; it is made from the signed manifest.json, so verify rebuilds
    it from there (found by an independent review: before, this verified with exit 0)."""
    plaintext = rewrite_bag_info(plaintext_of(setup))
    planted = gnu_tar_extract(plaintext, tmp_path) / "bag" / "bag-info.txt"
    assert PLANTED in planted.read_text()  # what tar -x, and then bagit.py, would show
    bundle = resealed(setup, plaintext, tmp_path / "bag-info.evidence")
    refused(verify(bundle, setup), "bag-info.txt", "bag-info.txt differs at line")
    extract_refused(bundle, setup, tmp_path)


# --------------------------------------------------------------------------- GNU tar's view


def gnu_tar_listing(plaintext: bytes, tmp_path: Path) -> list[str]:
    archive = tmp_path / "forged.tar"
    archive.write_bytes(plaintext)
    listed = subprocess.run(["tar", "-tvf", archive], capture_output=True, text=True,
                            check=True)
    return listed.stdout.splitlines()


def gnu_tar_extract(plaintext: bytes, tmp_path: Path) -> Path:
    archive, out = tmp_path / "forged.tar", tmp_path / "by-hand"
    archive.write_bytes(plaintext)
    out.mkdir()
    subprocess.run(["tar", "-xf", archive, "-C", out], check=True, capture_output=True)
    return out


def line_for(listing: list[str], name: str) -> str | None:
    return next((line for line in listing if line.endswith(" " + name)), None)


# ---------------------------------------------------------------------------------- checks


def verify(path: Path, setup: Setup) -> Run:
    return run_cli("verify", path, "--json", "-i", setup.identity_file, "--trusted-key",
                   setup.sealer_pub)


def refused(result: Run, where: str, problem: str) -> None:
    assert result.code == 1, f"exit {result.code}: {result.stdout}{result.stderr}"
    assert "Traceback" not in result.stderr
    document = result.json()
    errors = [f for f in document["findings"] if f["severity"] == "error"]
    assert any(f["where"] == where and problem in f["problem"] for f in errors), errors


def extract_refused(path: Path, setup: Setup, tmp_path: Path) -> None:
    out = tmp_path / "extracted"
    result = run_cli("extract", path, "--json", "-i", setup.identity_file, "--trusted-key",
                     setup.sealer_pub, "-o", out)
    assert result.code == 1, f"exit {result.code}: {result.stdout}{result.stderr}"
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".extracted")] == []


def test_an_honest_reseal_by_an_untrusted_key_verifies_with_a_warning(setup: Setup,
                                                                     tmp_path: Path) -> None:
    """Control: the same plaintext re-encrypted under the forged event is accepted (a warning
    names the resealer by key, exit 6: intact, but not every signer is trusted), so the refusals
    below come from the changed tree alone."""
    plaintext = plaintext_of(setup)
    assert joined(pieces(plaintext)) == plaintext  # the cutting helpers lose nothing
    bundle = resealed(setup, plaintext, tmp_path / "honest.evidence")
    result = verify(bundle, setup)
    assert result.code == 6, result.stdout + result.stderr
    findings = result.json()["findings"]
    assert not [f for f in findings if f["severity"] == "error"], findings
    warnings = [f["problem"] for f in findings if f["severity"] == "warning"]
    assert any("resealed by the key" in w and "\u201cCustodian C.\u201d" in w
               and "matches the sealer's signed manifest" in w for w in warnings), warnings


FORGERIES: dict[str, tuple[Callable[[bytes], bytes], str, str]] = {
    "adds-a-folder": (add_folder, "data/evidence/mail/deleted-by-the-suspect",
                      "folder in the payload is not in manifest.json"),
    "drops-an-empty-folder": (drop_empty_folder, "data/evidence/empty",
                              "folder recorded in manifest.json is not in the payload"),
    "turns-a-symlink-into-a-folder": (symlink_as_folder, "data/evidence/link",
                                      "the payload holds a folder where manifest.json records a "
                                      "symbolic link"),
}


@pytest.mark.parametrize("kind", list(FORGERIES))
def test_a_reseal_holding_another_tree_is_refused(setup: Setup, tmp_path: Path,
                                                  kind: str) -> None:
    forge, where, problem = FORGERIES[kind]
    plaintext = forge(plaintext_of(setup))
    listing = gnu_tar_listing(plaintext, tmp_path)
    name = f"bag/{where}/"
    if kind == "drops-an-empty-folder":
        assert line_for(listing, name) is None, listing
    else:  # GNU tar sees (and tar -x makes) a folder the sealer never signed for
        line = line_for(listing, name)
        assert line is not None and line.startswith("d"), listing
    bundle = resealed(setup, plaintext, tmp_path / f"{kind}.evidence")
    refused(verify(bundle, setup), where, problem)
    extract_refused(bundle, setup, tmp_path)


def test_a_pax_path_trick_read_differently_by_gnu_tar_is_refused(setup: Setup,
                                                                tmp_path: Path) -> None:
    """The by-hand procedure (age -d | tar -x) would give a regular file the manifest never
    mentions, holding the attacker's text: evidencekit refuses the header instead of reading it
    its own way."""
    plaintext = pax_path_trick(plaintext_of(setup))
    line = line_for(gnu_tar_listing(plaintext, tmp_path), f"{EVIDENCE}/receipt.txt")
    assert line is not None and line.startswith("-"), line  # a regular file for GNU tar
    planted = gnu_tar_extract(plaintext, tmp_path) / EVIDENCE / "receipt.txt"
    assert ATTACKER_TEXT.encode() in planted.read_bytes()
    bundle = resealed(setup, plaintext, tmp_path / "pax-trick.evidence")
    refused(verify(bundle, setup), PAYLOAD, "holds a tar header evidencekit never writes")
    extract_refused(bundle, setup, tmp_path)


def with_ustar_field(part: Piece, field: slice, value: bytes) -> Piece:
    """*part* (pax header block, one block of records, ustar block, data) with one field of
    its ustar block set to *value*, the checksum made right again."""
    block = bytearray(part.raw[2 * BLOCK : 3 * BLOCK])
    block[field] = value.ljust(field.stop - field.start, b"\0")
    block[148:156] = b"        "
    block[148:155] = b"%06o\0" % sum(block)
    return Piece(part.name, part.raw[: 2 * BLOCK] + bytes(block) + part.raw[3 * BLOCK :])


def test_a_file_whose_name_ends_in_a_slash_is_refused(setup: Setup, tmp_path: Path) -> None:
    """GNU tar makes a folder of a regular file whose ustar name ends in '/'; evidencekit read
    the file (slash stripped) and verified with exit 6 (found by an independent review)."""
    name = f"{EVIDENCE}/mail/scam.eml"
    plaintext = joined([with_ustar_field(p, slice(0, 100), f"{name}/".encode())
                        if p.name == name else p for p in pieces(plaintext_of(setup))])
    line = line_for(gnu_tar_listing(plaintext, tmp_path), f"{name}/")
    assert line is not None and line.startswith("d"), line  # a folder for GNU tar
    bundle = resealed(setup, plaintext, tmp_path / "slash.evidence")
    refused(verify(bundle, setup), PAYLOAD, "holds a tar header evidencekit never writes")
    extract_refused(bundle, setup, tmp_path)


def tag_file_holding(plaintext: bytes, part: Piece, data: bytes) -> Piece:
    """*part* (a tag file) holding *data*, its header the writer's to the nanosecond."""
    header = member_header(part.name, tarfile.REGTYPE, len(data), 0o644,
                           mtime_ns_of(plaintext, part.name), 0, 0)
    assert header is not None
    return Piece(part.name, header + data + padding(len(data)))


def reorder_tag_files(plaintext: bytes) -> bytes:
    """bag-info.txt before bagit.txt: the same files, other bytes."""
    parts = pieces(plaintext)
    names = [p.name for p in parts]
    first, second = names.index("bag/bagit.txt"), names.index("bag/bag-info.txt")
    parts[first], parts[second] = parts[second], parts[first]
    return joined(parts)


def reorder_tag_manifest(plaintext: bytes) -> bytes:
    """tagmanifest-sha256.txt's lines in another order: the same hashes, other bytes."""
    with tarfile.open(fileobj=io.BytesIO(plaintext), mode="r:") as tar:
        lines = tar.extractfile("bag/tagmanifest-sha256.txt").read().splitlines()  # type: ignore[union-attr]
    data = b"".join(line + b"\n" for line in reversed(lines))
    return joined([tag_file_holding(plaintext, p, data) if p.name == "bag/tagmanifest-sha256.txt"
                   else p for p in pieces(plaintext)])


@pytest.mark.parametrize(("forge", "where", "problem"), [
    (reorder_tag_files, "bag-info.txt", "tag files are not in the order evidencekit writes"),
    (reorder_tag_manifest, "tagmanifest-sha256.txt", "tagmanifest-sha256.txt is not the one "
                                                     "evidencekit writes"),
])
def test_tag_files_in_another_order_are_refused(setup: Setup, tmp_path: Path,
                                                forge: Callable[[bytes], bytes], where: str,
                                                problem: str) -> None:
    """Nothing signs the tag files' order or the tag manifest's; every bundle evidencekit
    writes has the order of FORMAT.md §4.2, so any other is a resealer's (both verified with
    exit 6 before; found by an independent review)."""
    bundle = resealed(setup, forge(plaintext_of(setup)), tmp_path / "tags.evidence")
    refused(verify(bundle, setup), where, problem)
    extract_refused(bundle, setup, tmp_path)
