"""A bundle made by ``evidencekit capture`` checked with standard tools only (docs/FORMAT.md §7.2).

Each test follows one step of "Verifying by hand" with the real tool (tar, ssh-keygen, sha256sum,
age, pyrage, bagit-python); tests/interop/test_by_hand.py runs the documented procedure itself,
taken from FORMAT.md, on good and forged bundles. Keys, trees and bundles live in pytest's
tmp_path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from evidencekit.crypto.keys import SigningKey
from evidencekit.format.outer import read_member, read_members
from tests.support.cli import run_cli
from tests.support.terminal import on_a_terminal
from tests.support.tools import require_tool
from tests.support.trees import make_tree

pytestmark = pytest.mark.interop

CASE = "FRAUD-2026-0117"
PASSPHRASE = "correct horse battery staple"
BIG = 2 * 1024 * 1024
MEMBERS = ["README.txt", "payload.age", "seal.json", "seal.json.sig", "custody/000001.json",
           "custody/000001.json.sig"]
# Names in make_tree() that the bag manifests must percent-encode (RFC 8493 §2.1.3).
PERCENT_NAME = "100% sure.txt"
NEWLINE_NAME = "line\nbreak.txt"
NON_UTF8_NAME = b"latin1-\xe9t\xe9.txt"


# ----------------------------------------------------------------------------------- helpers


def require_module(name: str) -> ModuleType:
    """Import a Python tool (pyrage, bagit), or skip (locally) / fail (CI) like require_tool."""
    try:
        module = __import__(name)
    except ImportError:
        message = f"the {name} package is not installed"
        if os.environ.get("EVIDENCEKIT_REQUIRE_TOOLS") == "1":
            pytest.fail(message + " (EVIDENCEKIT_REQUIRE_TOOLS=1: CI must run every interop test)")
        pytest.skip(message)
    return module


def run(argv: list[str | Path], *, stdin: bytes = b"", cwd: Path | None = None,
        check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run a tool without an SSH agent and without a terminal."""
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    result = subprocess.run([str(a) for a in argv], input=stdin, capture_output=True, cwd=cwd,
                            env=env, timeout=300, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, argv))} failed ({result.returncode}): "
                    f"{result.stderr.decode(errors='replace')}")
    return result


def run_with_tty(argv: list[str], answers: list[str], timeout: float = 120) -> tuple[int, str]:
    """Run argv with a pseudo-terminal as its controlling terminal, answering passphrase prompts."""
    return on_a_terminal(argv, answers, timeout=timeout)


def tree_without(tmp_path: Path, *names: str | bytes, big: int = BIG) -> Path:
    """make_tree() minus some of its entries (names relative to the tree)."""
    tree = make_tree(tmp_path, big=big)
    for name in names:
        os.unlink(os.path.join(os.fsencode(tree), os.fsencode(name)))
    return tree


def capture(tmp_path: Path, keys: dict[str, Path], tree: Path, *encryption: object,
            name: str = "case.evidence") -> tuple[Path, dict]:
    """Capture *tree* into tmp_path/bundle/<name> (X25519 recipient unless told otherwise)."""
    folder = tmp_path / "bundle"
    folder.mkdir(exist_ok=True)
    out = folder / name
    args = encryption or ("-R", keys["recipient"])
    result = run_cli("capture", tree, "--case", CASE, "--examiner", "Jane Doe", *args,
                     "--sign-key", keys["signer"], "-o", out, "--json")
    assert result.code == 0, result.stderr
    return out, result.json()


def unpack(bundle: Path, dest: Path) -> Path:
    """FORMAT.md §7.2: mkdir outer && tar -xf case.evidence -C outer."""
    tar = require_tool("tar")
    dest.mkdir()
    run([tar, "-xf", bundle, "-C", dest])
    return dest


def seal_of(outer: Path) -> dict:
    seal: dict = json.loads((outer / "seal.json").read_bytes())
    return seal


def identity_line(keys: dict[str, Path]) -> str:
    return next(line for line in keys["identity"].read_text().splitlines()
                if line.startswith("AGE-SECRET-KEY-"))


def age_decrypt(outer: Path, *identity: Path) -> bytes:
    """age -d -i KEY payload.age (stdout: the plaintext tar)."""
    age = require_tool("age")
    args: list[str | Path] = [age, "-d"]
    for key in identity:
        args += ["-i", key]
    return run([*args, outer / "payload.age"]).stdout


def untar(plaintext: bytes, dest: Path) -> Path:
    """... | tar -xf - ; returns the extracted bag/ folder."""
    tar = require_tool("tar")
    run([tar, "-xf", "-"], stdin=plaintext, cwd=dest)
    return dest / "bag"


def sha256sum(files: list[str], cwd: Path) -> dict[str, str]:
    """sha256sum FILE... → {name: digest}."""
    tool = require_tool("sha256sum")
    out = run([tool, "--", *files], cwd=cwd).stdout.decode()
    digests = {}
    for line in out.splitlines():
        digest, name = line.split("  ", 1)
        digests[name] = digest
    return digests


def bagit_validate(folder: Path) -> subprocess.CompletedProcess[bytes]:
    """bagit.py --validate FOLDER, through the interpreter that has bagit-python installed."""
    require_module("bagit")
    return run([sys.executable, "-m", "bagit", "--validate", folder], check=False)


@pytest.fixture
def clean_tree(tmp_path: Path) -> Path:
    """A realistic tree whose names need no percent-encoding (no %, CR or LF)."""
    return tree_without(tmp_path, PERCENT_NAME, NEWLINE_NAME)


# ------------------------------------------------------------------------ §7.2, step by step


def test_tar_lists_and_extracts_exactly_the_documented_members(tmp_path, home, keys):
    tar = require_tool("tar")
    tree = make_tree(tmp_path, big=BIG)
    bundle, _ = capture(tmp_path, keys, tree)

    listing = run([tar, "-tf", bundle]).stdout.decode().splitlines()
    assert listing == MEMBERS

    outer = unpack(bundle, tmp_path / "outer")
    with open(bundle, "rb") as f:
        expected = {m.name: read_member(f, m, 1 << 30) for m in read_members(f)}
    found = {str(p.relative_to(outer)): p.read_bytes() for p in outer.rglob("*") if p.is_file()}
    assert found == expected


def test_ssh_keygen_check_novalidate_accepts_seal_custody_and_manifest(tmp_path, home, keys):
    ssh_keygen = require_tool("ssh-keygen")
    bundle, _ = capture(tmp_path, keys, make_tree(tmp_path, big=BIG))
    outer = unpack(bundle, tmp_path / "outer")
    bag = untar(age_decrypt(outer, keys["identity"]), outer)
    fingerprint = seal_of(outer)["signer"]["fingerprint"]

    for folder, document in ((outer, "seal.json"), (outer, "custody/000001.json"),
                             (bag, "evidencekit/manifest.json")):
        result = run([ssh_keygen, "-Y", "check-novalidate", "-n", "evidencekit",
                      "-s", f"{document}.sig"], stdin=(folder / document).read_bytes(), cwd=folder)
        message = (result.stdout + result.stderr).decode()
        assert 'Good "evidencekit" signature' in message and fingerprint in message, document

    # ... and the same tool refuses a changed document and another namespace
    tampered = (outer / "seal.json").read_bytes().replace(CASE.encode(), b"FRAUD-2026-0118")
    refused = run([ssh_keygen, "-Y", "check-novalidate", "-n", "evidencekit", "-s",
                   outer / "seal.json.sig"], stdin=tampered, check=False)
    assert refused.returncode != 0
    other_namespace = run([ssh_keygen, "-Y", "check-novalidate", "-n", "file", "-s",
                           outer / "seal.json.sig"], stdin=(outer / "seal.json").read_bytes(),
                          check=False)
    assert other_namespace.returncode != 0


def test_ssh_keygen_verify_with_allowed_signers_accepts_only_the_sealer(tmp_path, home, keys):
    ssh_keygen = require_tool("ssh-keygen")
    bundle, _ = capture(tmp_path, keys, tree_without(tmp_path, big=0))
    outer = unpack(bundle, tmp_path / "outer")
    seal = seal_of(outer)

    # the signer's key, from the seal; its fingerprint as ssh-keygen computes it
    signer_pub = tmp_path / "signer.pub"
    signer_pub.write_text(seal["signer"]["public_key"] + "\n")
    assert seal["signer"]["public_key"].split()[:2] == keys["signer_pub"].read_text().split()[:2]
    printed = run([ssh_keygen, "-lf", signer_pub]).stdout.decode().split()
    assert printed[0] == "256" and printed[1] == seal["signer"]["fingerprint"]
    assert printed[-1] == "(ED25519)"

    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"investigator {seal['signer']['public_key']}\n")
    for document in ("seal.json", "custody/000001.json"):
        good = run([ssh_keygen, "-Y", "verify", "-f", allowed, "-I", "investigator",
                    "-n", "evidencekit", "-s", outer / f"{document}.sig"],
                   stdin=(outer / document).read_bytes())
        assert b'Good "evidencekit" signature for investigator' in good.stdout + good.stderr

    # Another key listed for the same principal: ssh-keygen refuses the seal.
    stranger = SigningKey.generate("stranger")
    allowed.write_text(f"investigator {stranger.public.openssh_line()}\n")
    refused = run([ssh_keygen, "-Y", "verify", "-f", allowed, "-I", "investigator",
                   "-n", "evidencekit", "-s", outer / "seal.json.sig"],
                  stdin=(outer / "seal.json").read_bytes(), check=False)
    assert refused.returncode != 0
    assert b"Good" not in refused.stdout + refused.stderr
    # The right key under another principal is refused too.
    allowed.write_text(f"someone-else {seal['signer']['public_key']}\n")
    wrong_principal = run([ssh_keygen, "-Y", "verify", "-f", allowed, "-I", "investigator",
                           "-n", "evidencekit", "-s", outer / "seal.json.sig"],
                          stdin=(outer / "seal.json").read_bytes(), check=False)
    assert wrong_principal.returncode != 0


def test_sha256sum_of_readme_and_payload_equal_the_seal(tmp_path, home, keys):
    bundle, _ = capture(tmp_path, keys, make_tree(tmp_path, big=BIG))
    outer = unpack(bundle, tmp_path / "outer")
    seal = seal_of(outer)
    digests = sha256sum(["README.txt", "payload.age"], outer)
    assert digests["README.txt"] == seal["readme_sha256"]
    assert digests["payload.age"] == seal["payload"]["sha256"]
    assert seal["payload"]["name"] == "payload.age"
    assert (outer / "payload.age").stat().st_size == seal["payload"]["size"] > BIG
    # the custody event's chain link is the seal's hash, checkable with sha256sum too
    event = json.loads((outer / "custody" / "000001.json").read_bytes())
    assert sha256sum(["seal.json"], outer)["seal.json"] == event["previous_sha256"]
    assert event["payload_sha256"] == seal["payload"]["sha256"]


def test_age_cli_decrypts_payload_with_x25519_identity_file(tmp_path, home, keys):
    bundle, _ = capture(tmp_path, keys, make_tree(tmp_path, big=BIG))
    outer = unpack(bundle, tmp_path / "outer")
    bag = untar(age_decrypt(outer, keys["identity"]), outer)
    assert (bag / "bagit.txt").read_bytes() == (b"BagIt-Version: 1.0\n"
                                                b"Tag-File-Character-Encoding: UTF-8\n")
    big = bag / "data" / "evidence" / "big.bin"
    assert big.read_bytes() == (tmp_path / "evidence" / "big.bin").read_bytes()
    assert (bag / "data" / "evidence" / NEWLINE_NAME).read_text() == "newline in name\n"
    # symbolic links and FIFOs are never stored in the tar (§4.2)
    assert not (bag / "data" / "evidence" / "link-to-scam").exists()
    assert not (bag / "data" / "evidence" / "a-fifo").exists()


def test_age_cli_decrypts_payload_sealed_to_ssh_ed25519_key(tmp_path, home, keys):
    tree = tree_without(tmp_path, big=0)
    recipient = keys["signer_pub"].read_text().strip()
    bundle, _ = capture(tmp_path, keys, tree, "-r", recipient)
    outer = unpack(bundle, tmp_path / "outer")
    bag = untar(age_decrypt(outer, keys["signer"]), outer)  # the OpenSSH private key
    assert (bag / "data" / "evidence" / "mail" / "inbox" / "scam.eml").read_bytes() == \
        b"From: a@b\n\nPay now\n"
    # a different ssh key cannot open it
    other = tmp_path / "other"
    SigningKey.generate().save(other)
    refused = run([require_tool("age"), "-d", "-i", other, outer / "payload.age"], check=False)
    assert refused.returncode != 0 and refused.stdout == b""


def test_pyrage_decrypts_payload_like_the_age_cli(tmp_path, home, keys):
    pyrage = require_module("pyrage")
    bundle, _ = capture(tmp_path, keys, make_tree(tmp_path, big=BIG))
    outer = unpack(bundle, tmp_path / "outer")
    identity = pyrage.x25519.Identity.from_str(identity_line(keys))
    plaintext = pyrage.decrypt((outer / "payload.age").read_bytes(), [identity])
    assert plaintext == age_decrypt(outer, keys["identity"])
    bag = untar(plaintext, outer)
    assert (bag / "evidencekit" / "manifest.json").is_file()


def test_sha256sum_checks_bag_manifests_and_root_hash(tmp_path, home, keys, clean_tree):
    tool = require_tool("sha256sum")
    bundle, captured = capture(tmp_path, keys, clean_tree)
    outer = unpack(bundle, tmp_path / "outer")
    bag = untar(age_decrypt(outer, keys["identity"]), outer)
    seal = seal_of(outer)

    files = run([tool, "-c", "manifest-sha256.txt"], cwd=bag).stdout.decode().splitlines()
    assert len(files) == seal["counts"]["files"] == 5 and all(f.endswith(": OK") for f in files)
    tags = run([tool, "-c", "tagmanifest-sha256.txt"], cwd=bag).stdout.decode().splitlines()
    assert sorted(t.rsplit(":", 1)[0] for t in tags) == sorted(
        ["bagit.txt", "manifest-sha256.txt", "bag-info.txt", "evidencekit/manifest.json",
         "evidencekit/manifest.json.sig"])
    root = sha256sum(["manifest-sha256.txt"], bag)["manifest-sha256.txt"]
    assert root == seal["manifest_root"] == captured["seal"]["manifest_root"]
    manifest_digest = sha256sum(["evidencekit/manifest.json"], bag)["evidencekit/manifest.json"]
    assert manifest_digest == seal["manifest_sha256"]

    # and sha256sum -c notices a changed evidence file
    target = bag / "data" / "evidence" / "empty.txt"
    target.chmod(0o644)
    target.write_bytes(b"changed")
    changed = run([tool, "-c", "manifest-sha256.txt"], cwd=bag, check=False)
    assert changed.returncode != 0 and b"empty.txt: FAILED" in changed.stdout


@pytest.mark.parametrize("removed", [(PERCENT_NAME, NEWLINE_NAME), (PERCENT_NAME,)],
                         ids=["no-escaped-names", "newline-in-a-name"])
def test_bagit_python_validates_the_decrypted_bag(tmp_path, home, keys, removed):
    tree = tree_without(tmp_path, *removed)
    bundle, _ = capture(tmp_path, keys, tree)
    outer = unpack(bundle, tmp_path / "outer")
    bag = untar(age_decrypt(outer, keys["identity"]), outer)
    if NEWLINE_NAME not in removed:
        assert b"line%0Abreak.txt" in (bag / "manifest-sha256.txt").read_bytes()
    result = bagit_validate(bag)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert b"is valid" in result.stderr


def test_extracted_folder_is_a_valid_bag(tmp_path, home, keys):
    # No names that need escaping (neither percent-encoding nor \xNN), no links.
    tree = tree_without(tmp_path, PERCENT_NAME, NEWLINE_NAME, NON_UTF8_NAME, "link-to-scam",
                        "link-outside")
    bundle, _ = capture(tmp_path, keys, tree)
    out = tmp_path / "opened"
    extracted = run_cli("extract", bundle, "-i", keys["identity"], "-o", out, "--json")
    assert extracted.code == 0, extracted.stdout
    result = bagit_validate(out)
    assert result.returncode == 0, result.stderr.decode(errors="replace")


def test_extract_as_stored_with_links_in_the_tree_is_a_valid_bag(tmp_path, home, keys):
    # By default extract restores in-tree symlinks (not BagIt payload); --as-stored keeps the bag.
    # make_tree's names minus those that need escaping; it keeps link-to-scam (inside the tree).
    tree = tree_without(tmp_path, PERCENT_NAME, NEWLINE_NAME, NON_UTF8_NAME, big=0)
    bundle, _ = capture(tmp_path, keys, tree)
    out = tmp_path / "opened"
    extracted = run_cli("extract", bundle, "-i", keys["identity"], "-o", out, "--json",
                        "--as-stored")
    assert extracted.code == 0, extracted.stdout
    assert extracted.json()["symlinks"] == 0
    result = bagit_validate(out)
    assert result.returncode == 0, result.stderr.decode(errors="replace")


def test_age_cli_decrypts_passphrase_bundle_on_a_terminal(tmp_path, home, keys):
    age = require_tool("age")
    secret = tmp_path / "pass.txt"
    secret.write_text(PASSPHRASE + "\n")
    bundle, _ = capture(tmp_path, keys, tree_without(tmp_path, big=0), "--passphrase-file", secret)
    outer = unpack(bundle, tmp_path / "outer")
    assert b"-> scrypt " in (outer / "payload.age").read_bytes()[:200]
    plaintext = tmp_path / "payload.tar"
    code, screen = run_with_tty([age, "-d", "-o", str(plaintext), str(outer / "payload.age")],
                                [PASSPHRASE])
    assert code == 0, screen
    assert "passphrase" in screen.lower()
    bag = untar(plaintext.read_bytes(), outer)
    assert (bag / "data" / "evidence" / "empty.txt").read_bytes() == b""


def test_pyrage_decrypts_passphrase_bundle(tmp_path, home, keys):
    pyrage = require_module("pyrage")
    secret = tmp_path / "pass.txt"
    secret.write_text(PASSPHRASE + "\n")
    bundle, _ = capture(tmp_path, keys, tree_without(tmp_path, big=0), "--passphrase-file", secret)
    outer = unpack(bundle, tmp_path / "outer")
    plaintext = pyrage.passphrase.decrypt((outer / "payload.age").read_bytes(), PASSPHRASE)
    bag = untar(plaintext, outer)
    assert (bag / "manifest-sha256.txt").is_file()
    with pytest.raises(Exception, match=r"(?i)decrypt|passphrase|key"):
        pyrage.passphrase.decrypt((outer / "payload.age").read_bytes(), "wrong passphrase")
