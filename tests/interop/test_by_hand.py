"""docs/FORMAT.md §7.2, "Verifying by hand", run literally on good and forged bundles.

The shell blocks of §7.2 are taken from FORMAT.md itself, joined and run with dash (Debian's
/bin/sh, so nothing beyond POSIX sh slips in) with a PATH that holds only the standard tools the
section names: no python3, no evidencekit. docs/verify-by-hand.sh must be those blocks byte for
byte. Good bundles (an age identity, an OpenSSH key, a passphrase typed on a terminal, names that
need escaping, a legitimate reseal, an addendum) must pass; each forgery must fail with a message
naming what is wrong. Bundles are made with the real CLI, forgeries with evidencekit's own
writers (the payload re-encrypted, the events re-signed), so only the check under test can
object.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.format.documents import custody_member
from tests.support.bundles import contents, rebuild
from tests.support.by_hand import (
    CASE,
    PASSPHRASE,
    ROOT,
    Keys,
    Outcome,
    add_folder,
    by_hand,
    change_file,
    copy_of,
    documented_procedure,
    event_of,
    failed,
    forged_reseal,
    hard_link,
    member_named,
    passed,
    replace_event,
    signer_of,
    toolbox_in,
)
from tests.support.cli import Run, run_cli
from tests.support.craft import pax_record, raw_pax_member
from tests.support.tools import require_tool
from tests.support.trees import make_tree
from tests.support.tsa_server import running_tsa

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("isolated_environment")]


def test_the_script_in_docs_is_the_documented_procedure() -> None:
    script = (ROOT / "docs" / "verify-by-hand.sh").read_text(encoding="utf-8")
    assert script == documented_procedure(), \
        "docs/verify-by-hand.sh and FORMAT.md §7.2 differ: keep them the same, block by block"
    assert "python" not in script.replace("no Python", "")
    # every step of §7.1 that can be done by hand has its block, and says so when it runs
    for step in ("1.", "2, 3.", "4.", "6.", "7.", "8.", "9.", "10.", "11."):
        assert f'step "{step} ' in script


@pytest.fixture(scope="module")
def toolbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return toolbox_in(tmp_path_factory.mktemp("toolbox"))


@pytest.fixture(scope="module")
def parties(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """Who signs here (the sealer, an officer, a stranger) and the payload's identity: named
    apart from the shared ``keys`` fixture, a dict of key files, which this module does not use."""
    folder = tmp_path_factory.mktemp("keys")
    sealer, officer, stranger = (SigningKey.generate(n) for n in ("victim", "officer", "mallory"))
    for name, key in (("sealer", sealer), ("officer", officer), ("stranger", stranger)):
        key.save(folder / name)
    identity = age.X25519Identity.generate()
    (folder / "identity.txt").write_text(f"# test identity\n{identity}\n")
    (folder / "passphrase.txt").write_text(PASSPHRASE + "\n")
    (folder / "trusted.pub").write_text(f"{sealer.public.openssh_line()}\n"
                                        f"{officer.public.openssh_line()}\n")
    return Keys(folder, sealer, officer, stranger, identity)


def ok(result: Run) -> Run:
    assert result.code == 0, f"exit {result.code}: {result.stdout}{result.stderr}"
    return result


def capture(folder: Path, parties: Keys, tree: Path, *encryption: object) -> Path:
    out = folder / "case.evidence"
    ok(run_cli("capture", tree, "--case", CASE, "--examiner", "Victim V.",
               *(encryption or ("-r", str(parties.identity.recipient()))),
               "--sign-key", parties.file("sealer"), "-o", out))
    return out


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory, parties: Keys) -> Path:
    """A bundle with odd names (and a hard link) and three custody events: 1 captured,
    2 transferred (victim), 3 received (officer)."""
    folder = tmp_path_factory.mktemp("logged")
    tree = make_tree(folder, big=3 * 1024 * 1024)
    (tree / "quo'te\"s.txt").write_text("quotes\n")
    (tree / "mail" / "folder with\nnewline").mkdir()
    (tree / "mail" / "folder with\nnewline" / "tab\there").write_text("tab\n")
    os.link(tree / "mail" / "inbox" / "scam.eml", tree / "second-name.eml")
    bundle = capture(folder, parties, tree)
    ok(run_cli("custody", "add", bundle, "--action", "transferred", "--to", "Det. A. Smith",
               "--note", "USB stick, receipt 4411", "--actor", "Victim V.",
               "--sign-key", parties.file("sealer")))
    ok(run_cli("custody", "add", bundle, "--action", "received", "--from", "Victim V.",
               "--actor", "Det. A. Smith", "--sign-key", parties.file("officer")))
    os.chmod(bundle, 0o444)
    return bundle


def test_a_good_bundle_with_odd_names_and_a_custody_log_passes(logged: Path, parties: Keys,
                                                                 toolbox: Path,
                                                                 tmp_path: Path) -> None:
    bundle = copy_of(logged, tmp_path)
    output = passed(by_hand(toolbox, bundle, "-i", parties.file("identity.txt")))
    # seal, three events, manifest: each checked against the key its document names
    assert output.count('Good "evidencekit" signature for signer') == 5
    assert parties.sealer.public.fingerprint in output
    assert parties.officer.public.fingerprint in output
    assert "3 custody events" in output
    # every file, names with a newline, a tab, quotes, % and a hard link included
    files = sum(1 for _ in (tmp_path / "case.evidence.checked" / "payload" / "bag")
                .joinpath("manifest-sha256.txt").open("rb"))
    assert f"the {files} files of manifest-sha256.txt are there" in output
    data = tmp_path / "case.evidence.checked" / "payload" / "bag" / "data" / "evidence"
    assert (data / "mail" / "folder with\nnewline" / "tab\there").read_text() == "tab\n"
    assert os.stat(data / "second-name.eml").st_ino == \
        os.stat(data / "mail" / "inbox" / "scam.eml").st_ino
    assert "the 5 folders manifest.json lists are there, and no others" in output
    # without -t the sealer's fingerprint is shown, to compare with the one given
    assert f"the sealer is {parties.sealer.public.fingerprint}: compare" in output


def test_trusted_keys_are_weighed(logged: Path, parties: Keys, toolbox: Path,
                                  tmp_path: Path) -> None:
    bundle = copy_of(logged, tmp_path)
    output = passed(by_hand(toolbox, bundle, "-t", parties.file("trusted.pub")), evidence=False)
    assert "is in" in output and "warning: no key given" in output
    stranger = tmp_path / "stranger.pub"
    stranger.write_text(parties.stranger.public.openssh_line() + "\n")
    failed(by_hand(toolbox, bundle, "-t", stranger),
           f"the sealer, {parties.sealer.public.fingerprint}, is not one of the keys")


def test_a_bundle_for_an_openssh_key_passes(tmp_path: Path, parties: Keys, toolbox: Path) -> None:
    tree = tmp_path / "evidence"
    tree.mkdir()
    (tree / "chat.png").write_bytes(b"\x89PNG fake")
    bundle = capture(tmp_path, parties, tree, "-r", parties.officer.public.openssh_line())
    passed(by_hand(toolbox, bundle, "-i", parties.file("officer")))
    # the wrong key: age refuses, and the procedure says so
    failed(by_hand(toolbox, bundle, "-i", parties.file("stranger")),
           "age could not decrypt payload.age")


def test_a_passphrase_bundle_passes_with_the_passphrase_typed(tmp_path: Path, parties: Keys,
                                                               toolbox: Path) -> None:
    tree = tmp_path / "evidence"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "statement.csv").write_text("2026-11-16,-499.00,EUR\n")
    bundle = capture(tmp_path, parties, tree, "--passphrase-file", parties.file("passphrase.txt"))
    output = passed(by_hand(toolbox, bundle, "-p", answer=PASSPHRASE))
    assert "Enter passphrase" in output
    failed(by_hand(toolbox, bundle, "-p", answer="wrong passphrase"),
           "age could not decrypt payload.age")


def test_a_legitimate_reseal_passes_with_a_warning(logged: Path, parties: Keys, toolbox: Path,
                                                   tmp_path: Path) -> None:
    new = age.X25519Identity.generate()
    (tmp_path / "new.txt").write_text(f"{new}\n")
    resealed = tmp_path / "resealed.evidence"
    ok(run_cli("reseal", logged, "-i", parties.file("identity.txt"), "-r", str(new.recipient()),
               "-o", resealed, "--actor", "Det. A. Smith", "--sign-key", parties.file("officer")))
    output = passed(by_hand(toolbox, resealed, "-i", tmp_path / "new.txt",
                            "-t", parties.file("trusted.pub")))
    assert f"event 4: the payload was resealed (re-encrypted) by " \
           f"{parties.officer.public.fingerprint}" in output
    # the old key no longer opens it
    failed(by_hand(toolbox, resealed, "-i", parties.file("identity.txt")),
           "age could not decrypt")


def test_a_reseal_by_a_stranger_that_changes_nothing_is_weighed(logged: Path, parties: Keys,
                                                                toolbox: Path,
                                                                tmp_path: Path) -> None:
    """Re-encrypted by a key nobody trusts, the evidence untouched: with the key, the payload
    is checked against the sealer's manifest (a warning); without it, an error under -t."""
    forged = forged_reseal(logged, tmp_path / "case.evidence", parties, lambda items: None)
    output = passed(by_hand(toolbox, forged, "-i", parties.file("identity.txt"),
                            "-t", parties.file("trusted.pub")))
    assert "but the payload is exactly what the sealer signed" in output
    failed(by_hand(toolbox, forged, "-t", parties.file("trusted.pub")),
           "resealed by a key not in", "the payload was not checked")


def test_a_custody_event_resigned_by_a_strangers_key_fails(logged: Path, parties: Keys,
                                                            toolbox: Path,
                                                            tmp_path: Path) -> None:
    """The officer's event edited (another note) and re-signed by a stranger: ssh-keygen
    check-novalidate would say "Good signature"; the event names the officer's key."""
    members = contents(logged)
    event = dataclasses.replace(event_of(members, 3), note="never received anything")
    forged = rebuild(tmp_path / "case.evidence",
                     replace_event(members, 3, event, parties.stranger))
    output = failed(by_hand(toolbox, forged),
                    "custody/000003.json) is not signed by the key it names, "
                    f"{parties.officer.public.fingerprint}")
    assert output.count("   FAILED:") == 1


def test_a_middle_event_rewritten_by_a_stranger_breaks_the_chain(logged: Path, parties: Keys,
                                                                 toolbox: Path,
                                                                 tmp_path: Path) -> None:
    """Event 2 rewritten and signed consistently by the stranger it now names: its signature
    holds, but event 3 no longer chains to it."""
    members = contents(logged)
    event = dataclasses.replace(event_of(members, 2), actor=signer_of(parties.stranger),
                                counterparty="Mallory")
    forged = rebuild(tmp_path / "case.evidence",
                     replace_event(members, 2, event, parties.stranger))
    failed(by_hand(toolbox, forged, "-i", parties.file("identity.txt")),
           "custody/000003.json: previous_sha256 is not the SHA-256 of the event before")


def test_an_event_removed_from_the_middle_breaks_the_chain(logged: Path, parties: Keys,
                                                           toolbox: Path,
                                                           tmp_path: Path) -> None:
    """Event 2 dropped, event 3 renumbered and re-signed by its own actor (the officer)."""
    members = contents(logged)
    third = dataclasses.replace(event_of(members, 3), sequence=2)
    kept = [m for m in members if not m[0].startswith(custody_member(3))]
    forged = rebuild(tmp_path / "case.evidence", replace_event(kept, 2, third, parties.officer))
    failed(by_hand(toolbox, forged),
           "custody/000002.json: previous_sha256 is not the SHA-256 of the event before")


def test_an_event_about_another_payload_fails(logged: Path, parties: Keys, toolbox: Path,
                                              tmp_path: Path) -> None:
    members = contents(logged)
    event = dataclasses.replace(event_of(members, 3), payload_sha256="0" * 64)
    forged = rebuild(tmp_path / "case.evidence", replace_event(members, 3, event, parties.officer))
    failed(by_hand(toolbox, forged), "custody/000003.json: payload_sha256 is not the payload")


def test_a_tampered_manifest_json_fails(logged: Path, parties: Keys, toolbox: Path,
                                        tmp_path: Path) -> None:
    """manifest.json edited in the payload (another examiner): its SHA-256 is no longer the
    seal's manifest_sha256, and the sealer's signature no longer holds."""
    def edit(items: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        at = member_named(items, "bag/evidencekit/manifest.json")
        items[at] = (items[at][0], items[at][1].replace(b"Victim V.", b"Someone E"))
    forged = forged_reseal(logged, tmp_path / "case.evidence", parties, edit)
    failed(by_hand(toolbox, forged, "-i", parties.file("identity.txt")),
           "evidencekit/manifest.json: its SHA-256 is not the seal's manifest_sha256",
           "the manifest, by the sealer (evidencekit/manifest.json) is not signed by the key")


def test_a_tampered_file_in_the_bag_fails(logged: Path, parties: Keys, toolbox: Path,
                                          tmp_path: Path) -> None:
    forged = forged_reseal(logged, tmp_path / "case.evidence", parties,
                           change_file("bag/data/evidence/mail/inbox/scam.eml",
                                       b"From: a@b\n\nPay to another account\n"))
    failed(by_hand(toolbox, forged, "-i", parties.file("identity.txt")),
           "data/evidence/mail/inbox/scam.eml: FAILED")


@pytest.mark.parametrize(("name", "why"), [
    ("bag/data/evidence/new-folder/", "an added folder"),
    ("bag/data/evidence/link-to-scam/", "a symbolic link turned into a folder"),
])
def test_a_folder_added_in_a_resealed_payload_fails(logged: Path, parties: Keys, toolbox: Path,
                                                    tmp_path: Path, name: str,
                                                    why: str) -> None:
    forged = forged_reseal(logged, tmp_path / "case.evidence", parties, add_folder(name))
    failed(by_hand(toolbox, forged, "-i", parties.file("identity.txt")),
           "bag/data holds 6 folders, manifest.json lists 5: folders were added or removed; "
           f"not listed: {name[4:-1]}")


def test_an_empty_folder_dropped_from_a_resealed_payload_fails(logged: Path, parties: Keys,
                                                               toolbox: Path,
                                                               tmp_path: Path) -> None:
    def edit(items: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        del items[member_named(items, "bag/data/evidence/empty-folder")]
    forged = forged_reseal(logged, tmp_path / "case.evidence", parties, edit)
    failed(by_hand(toolbox, forged, "-i", parties.file("identity.txt")),
           "folder data/evidence/empty-folder (listed in manifest.json) is not in the payload")


@pytest.mark.parametrize("kind", ["symlink", "extra file", "file outside the bag"])
def test_a_member_that_is_not_in_the_manifest_fails(logged: Path, parties: Keys, toolbox: Path,
                                                    tmp_path: Path, kind: str) -> None:
    def edit(items: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        at = member_named(items, "bag/manifest-sha256.txt")
        if kind == "symlink":
            info = tarfile.TarInfo("bag/data/evidence/link-to-scam")
            info.type, info.linkname = tarfile.SYMTYPE, "mail/inbox/scam.eml"
            items.insert(at, (info, b""))
        else:
            name = "bag/data/evidence/planted.txt" if kind == "extra file" else "notes.txt"
            items.insert(at, (tarfile.TarInfo(name), b"attacker text\n"))
    forged = forged_reseal(logged, tmp_path / "case.evidence", parties, edit)
    phrase = {"symlink": "not a file, folder or hard link of the bag (tar type l)",
              "extra file": "bag/data holds 11 files, manifest-sha256.txt lists 10, the seal counts "
                            "10: files were added or removed; not listed: "
                            "data/evidence/planted.txt",
              "file outside the bag": "not a file, folder or hard link of the bag (tar type -)"}
    failed(by_hand(toolbox, forged, "-i", parties.file("identity.txt")), phrase[kind])


def test_a_payload_swapped_without_a_reseal_event_fails(logged: Path, parties: Keys,
                                                        toolbox: Path, tmp_path: Path) -> None:
    members = contents(logged)
    forged_payload = age.encrypt(b"\0" * 1024, [parties.identity.recipient()])
    forged = rebuild(tmp_path / "case.evidence",
                     [(n, forged_payload if n == "payload.age" else d, t) for n, d, t in members])
    failed(by_hand(toolbox, forged), "payload.age: its SHA-256 or size is not the seal's")


def test_an_extra_outer_member_fails(logged: Path, parties: Keys, toolbox: Path,
                                     tmp_path: Path) -> None:
    members = contents(logged)
    forged = rebuild(tmp_path / "case.evidence", [*members, ("notes.txt", b"hello\n", 0)])
    failed(by_hand(toolbox, forged), "the members are not README.txt, payload.age")


def test_a_pax_path_record_that_renames_a_listed_file_fails(logged: Path, parties: Keys,
                                                            toolbox: Path,
                                                            tmp_path: Path) -> None:
    """A header trick (issue 19): the ustar name is a listed file, a pax 'path' record names
    another. The procedure checks what tar itself lists and unpacks, so it sees the file under
    the name tar gives it, which no manifest lists."""
    raw = raw_pax_member("bag/data/evidence/empty.txt",
                         pax_record("path", "bag/data/evidence/planted.txt"),
                         b"attacker text\n").encode()
    forged = forged_reseal(logged, tmp_path / "case.evidence", parties, lambda items: None, raw=raw)
    failed(by_hand(toolbox, forged, "-i", parties.file("identity.txt")),
           "not listed: data/evidence/planted.txt")


@pytest.mark.parametrize(("asset", "passphrase"), [
    ("format-v1.evidence", "evidencekit format v1 test vector"),
    ("format-v2.evidence", "evidencekit format v2 test vector"),
    ("format-v3.evidence", "evidencekit format v3 test vector"),
    ("format-v4.evidence", "evidencekit format v4 test vector"),
])
def test_the_bundles_of_every_format_version_pass(asset: str, passphrase: str, toolbox: Path,
                                                  tmp_path: Path) -> None:
    """tests/assets (public test passphrases, tests/e2e/test_format_compat.py): version 1,
    version 2 with a file of three names and an addendum, version 3 with a timestamp, version 4
    with a zstd payload (a disk image), decompressed with the real zstd."""
    bundle = copy_of(ROOT / "tests" / "assets" / asset, tmp_path)
    output = passed(by_hand(toolbox, bundle, "-p", answer=passphrase))
    if asset == "format-v2.evidence":
        assert re.search(r"ok: addenda/\d{6}\.json is the addendum that custody event", output)
    if asset == "format-v4.evidence":
        assert "ok: zstd -d: the decrypted payload decompressed" in output
        assert "ok: format version 4: the payload tar is compressed with zstd" in output


def test_a_hard_link_whose_target_name_says_link_to_passes(tmp_path: Path, parties: Keys,
                                                           toolbox: Path) -> None:
    """tar -tv writes a hard link as 'NAME link to TARGET': the target is found after the
    link's own name, not after the last ' link to ' (a file may be named so)."""
    tree = tmp_path / "evidence"
    tree.mkdir()
    (tree / "a link to b").write_text("the first name\n")
    os.link(tree / "a link to b", tree / "second name")
    (tree / "back\\slash").write_text("backslash\n")
    bundle = capture(tmp_path, parties, tree)
    output = passed(by_hand(toolbox, bundle, "-i", parties.file("identity.txt")))
    assert "all regular files, folders or hard links under bag/" in output


@pytest.mark.parametrize("target", ["bag/bag-info.txt", "bag/data/x link to bag/bagit.txt"])
def test_a_hard_link_out_of_the_data_folder_fails(logged: Path, parties: Keys, toolbox: Path,
                                                  tmp_path: Path, target: str) -> None:
    forged = forged_reseal(logged, tmp_path / "case.evidence", parties,
                           hard_link("bag/data/evidence/second-name.eml", target))
    failed(by_hand(toolbox, forged, "-i", parties.file("identity.txt")),
           "hard links to something outside bag/data" if target.startswith("bag/bag-info")
           else "payload was not unpacked")


def test_a_bundle_named_with_a_leading_dash_and_a_windows_trusted_key_file_pass(
        logged: Path, parties: Keys, toolbox: Path, tmp_path: Path) -> None:
    """'-- -case.evidence' (basename took the name for an option and unpacked into a hidden
    '.checked'); a trusted-keys file saved on Windows (CRLF) trusts as evidencekit does."""
    copy_of(logged, tmp_path, "-case.evidence")
    trusted = tmp_path / "trusted.pub"
    trusted.write_bytes(b"".join(b" ".join(line.split()[:2]) + b"\r\n" for line in
                                 parties.file("trusted.pub").read_bytes().splitlines()))
    script = tmp_path / "by-hand.sh"
    script.write_text(documented_procedure(), encoding="utf-8")
    done = subprocess.run([str(toolbox / "dash"), str(script), "-i",
                           str(parties.file("identity.txt")), "-t", "trusted.pub", "--",
                           "-case.evidence"], cwd=tmp_path, capture_output=True,
                          env={"PATH": str(toolbox), "HOME": str(tmp_path), "LC_ALL": "C"},
                          timeout=300, check=False)
    output = passed(Outcome(done.returncode, (done.stdout + done.stderr).decode()))
    assert f"{tmp_path}/-case.evidence.checked/payload/bag/data" in output
    assert "is in" in output


def test_a_bundle_with_trusted_timestamps_passes_and_openssl_checks_them(
        tmp_path: Path, parties: Keys, toolbox: Path) -> None:
    """Format version 3: timestamps between custody events are counted by step 1, and the
    §7.2 openssl command (after the script) checks one against the TSA's root."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_text("a\n")
    with running_tsa(tmp_path / "pki") as tsa:
        bundle = capture(tmp_path, parties, tree)
        ok(run_cli("timestamp", bundle, "--tsa", tsa.url))
        ok(run_cli("custody", "add", bundle, "--action", "note", "--note", "n",
                   "--sign-key", parties.file("sealer")))
        ok(run_cli("timestamp", bundle, "--tsa", tsa.url))
    output = passed(by_hand(toolbox, bundle, "-i", parties.file("identity.txt")))
    assert "and 2 trusted timestamps" in output
    outer = tmp_path / "outer"
    with tarfile.open(bundle) as tar:
        tar.extractall(outer, filter="data")
    proc = subprocess.run([require_tool("openssl"), "ts", "-verify", "-data",
                           outer / "seal.json.sig", "-in", outer / "timestamps" / "000002.tsr",
                           "-CAfile", tsa.root], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "Verification: OK" in proc.stdout, proc.stderr


@pytest.mark.parametrize(("defect", "phrase"), [
    ("zstd-cut-short", "zstd could not decompress the decrypted payload"),
    ("zstd-bomb", "that its seal allows (a decompression bomb, or a damaged bundle)"),
    ("zstd-huge-window", "zstd could not decompress the decrypted payload"),  # --memory=8MB
    ("zstd-skippable-frame", "is not one zstd frame and nothing else"),  # (zstd -l: 2 1)
    ("zstd-many-frames", "is not one zstd frame and nothing else"),
])
def test_a_damaged_or_exploding_version_4_payload_fails(defect: str, phrase: str, toolbox: Path,
                                                        tmp_path: Path) -> None:
    """Format version 4 by hand: `zstd -d` is stopped (`head -c`) at the bound the seal gives
    (FORMAT.md §4.1), the same as evidencekit's, so a few kilobytes cannot fill the disk; a
    frame cut short is what zstd says it is. The crafted bundles are self-consistent, signed by
    their (generated) sealer: only the payload is wrong."""
    from tests.support import craft

    keys = craft.Keys.create(tmp_path / "keys")
    bundle = {c.name: c for c in craft.CATALOGUE}[defect].build(tmp_path, keys)
    output = failed(by_hand(toolbox, bundle, "-i", keys.identity_file), phrase)
    assert "unpacked into" not in output


@pytest.mark.parametrize("declared", [{"files": 1 << 46}, {"total_bytes": 10**19}])
def test_sizes_no_disk_holds_are_refused_before_decompressing(declared: dict[str, int],
                                                              toolbox: Path,
                                                              tmp_path: Path) -> None:
    """A seal (signed by its own, untrusted, sealer) declaring 2^46 files or 10^19 bytes would
    overflow the shell's 64-bit arithmetic: the bound became negative, and `head -c -N` then
    held everything zstd gave in memory. Such sizes are refused before zstd runs."""
    from dataclasses import replace

    from tests.support import craft

    keys = craft.Keys.create(tmp_path / "keys")
    inner = craft.build_bag(keys)

    def declaring(seal: craft.Seal) -> craft.Seal:
        seal = craft.version_4(seal)
        if "files" in declared:
            return replace(seal, counts={**seal.counts, **declared})
        return replace(seal, total_bytes=declared["total_bytes"])

    bundle = craft._compressed_bundle(tmp_path, keys, "declared", craft.zstd(inner.plaintext,
                                      64 << 20), inner, declaring)
    output = failed(by_hand(toolbox, bundle, "-i", keys.identity_file),
                    "bound what the payload may decompress to")
    assert "zstd -d: the decrypted payload decompressed" not in output


def _version_4_bundle(tmp_path: Path, name: str, zeros_after: int, total_bytes: int | None
                      ) -> tuple[Path, Path]:
    """A self-consistent version 4 bundle whose tar is followed by *zeros_after* zeros (a few
    kilobytes of zstd), its seal declaring *total_bytes* when given; and its identity file."""
    from dataclasses import replace

    from tests.support import craft

    keys = craft.Keys.create(tmp_path / f"{name}-keys")
    inner = craft.build_bag(keys)

    def declaring(seal: craft.Seal) -> craft.Seal:
        seal = craft.version_4(seal)
        return seal if total_bytes is None else replace(seal, total_bytes=total_bytes)

    bundle = craft._compressed_bundle(tmp_path, keys, name,
                                      craft.zstd(inner.plaintext, zeros_after), inner, declaring)
    return bundle, keys.identity_file


def test_a_payload_larger_than_the_free_space_is_refused_before_it_is_written(
        toolbox: Path, tmp_path: Path) -> None:
    """A seal (signed by its own, untrusted, sealer) declaring a terabyte lets `head -c BOUND`
    write up to a terabyte: on the investigator's disk, by hand, it stopped only when the disk
    was full. Now, when the bound is more than the free space where payload.tar is written
    (here a 16 MiB tmpfs), what the payload decompresses to is counted first: 64 MiB does not
    fit, so it is refused in plain words and nothing of it is written. A small honest version 4
    bundle, whose bound (over 1 GiB) is also more than the free space, still passes there."""
    from tests.support.mounts import tmpfs

    hostile, identity = _version_4_bundle(tmp_path, "terabyte", 64 << 20, 1 << 40)
    honest, honest_identity = _version_4_bundle(tmp_path, "honest", 0, None)
    with tmpfs(tmp_path, size_mib=16) as ram:
        output = failed(by_hand(toolbox, hostile, "-i", identity, "-o", ram / "hostile"),
                        "not enough free space to check the evidence")
        assert re.search(r"more than the \d+ bytes free in \S*/ram/hostile", output), output
        assert "zstd -d: the decrypted payload decompressed" not in output
        assert not (ram / "hostile" / "payload.tar").exists()
        assert os.statvfs(ram).f_bfree * os.statvfs(ram).f_frsize > 15 << 20  # nothing filled
        passed(by_hand(toolbox, honest, "-i", honest_identity, "-o", ram / "honest"))
