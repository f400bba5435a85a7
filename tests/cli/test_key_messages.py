"""What people are told about keys and passphrases: which keys a bundle opens with (as far as
its age header says), which keys were tried, and where a key was given in the wrong place
(-r with a file, -R with a private key). Run through the real CLI."""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey, load_signing_key
from evidencekit.errors import ExitCode
from evidencekit.protection import recipients_in
from tests.support.cli import invoke
from tests.support.schemas import assert_valid
from tests.support.tools import require_tool


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def ssh_keys(tmp_path: Path) -> dict[str, Any]:
    """Two OpenSSH ed25519 key pairs: the investigator's (the bundle is made for it) and
    someone else's."""
    folder = tmp_path / "ssh"
    folder.mkdir()
    found: dict[str, Any] = {}
    for name in ("investigator", "stranger"):
        key = SigningKey.generate(f"{name}@test")
        key.save(folder / name)
        found[name] = folder / name
        found[f"{name}_fingerprint"] = key.public.fingerprint
    return found


@pytest.fixture
def ssh_bundle(tmp_path: Path, user: Path, keys: dict[str, Any], tree: Path,
               ssh_keys: dict[str, Any]) -> Path:
    out = tmp_path / "ssh.evidence"
    made = invoke("capture", tree, "-R", f"{ssh_keys['investigator']}.pub", "--sign-key",
                  keys["signer"], "-o", out, "--json")
    assert made.code == 0, made.stderr
    return out


def test_a_wrong_ssh_key_is_named_with_the_bundles_key_tag(ssh_bundle: Path,
                                                           ssh_keys: dict[str, Any]) -> None:
    result = invoke("verify", ssh_bundle, "-i", ssh_keys["stranger"])
    assert result.code == ExitCode.NO_MATCHING_KEY
    text = flat(result.stderr)
    wanted, tried = ssh_keys["investigator_fingerprint"], ssh_keys["stranger_fingerprint"]
    assert ("this bundle is protected by an SSH key (ssh-ed25519), not a passphrase, and none "
            "of the keys given (-i) opens it") in text
    assert f"it opens with the SSH key whose fingerprint starts {wanted[:12]} (key tag " in text
    assert f"tried the SSH key {tried} (key tag " in text and "not the bundle's)" in text
    assert "ssh-keygen -lf KEYFILE" in text
    assert "what was given does not open it" not in text  # the keys given are known here


def test_a_passphrase_given_for_a_key_bundle_names_the_key_it_needs(
        ssh_bundle: Path, ssh_keys: dict[str, Any], keys: dict[str, Any], tmp_path: Path) -> None:
    result = invoke("report", ssh_bundle, "--passphrase-file", keys["passphrase"], "-o",
                    tmp_path / "r.html")
    assert result.code == ExitCode.NO_MATCHING_KEY and not (tmp_path / "r.html").exists()
    text = flat(result.stderr)
    assert "this bundle is protected by a key, not a passphrase" in text
    assert "so no report was made: it opens with the SSH key whose fingerprint starts " \
        f"{ssh_keys['investigator_fingerprint'][:12]}" in text


def test_a_wrong_age_key_is_named_by_its_public_key(bundle: Path, keys: dict[str, Any]) -> None:
    other = age.parse_identity_file(keys["other"].read_bytes())[0]
    result = invoke("verify", bundle, "-i", keys["other"])
    assert result.code == ExitCode.NO_MATCHING_KEY
    text = flat(result.stderr)
    assert "it opens with an age key (age1…), the bundle does not reveal which" in text
    assert f"tried the age key {other.recipient()}" in text
    assert str(other) not in result.stdout + result.stderr  # never the secret key itself


def test_inspect_names_what_each_recipient_reveals(tmp_path: Path, user: Path, tree: Path,
                                                   keys: dict[str, Any],
                                                   ssh_keys: dict[str, Any]) -> None:
    out = tmp_path / "mixed.evidence"
    made = invoke("capture", tree, "-R", keys["recipient"], "-R",
                  f"{ssh_keys['investigator']}.pub", "--sign-key", keys["signer"], "-o", out)
    assert made.code == 0, made.stderr
    shown = invoke("inspect", out)
    assert shown.code == 0
    lines = shown.stdout.splitlines()
    start = ssh_keys["investigator_fingerprint"][:12]
    assert "Opens with  X25519, ssh-ed25519" in lines
    assert "  1. an age key (age1…), the bundle does not reveal which" in lines
    assert any(line.startswith(f"  2. the SSH key whose fingerprint starts {start} (key tag ")
               for line in lines)
    document = invoke("inspect", out, "--json").json()
    assert_valid(document, "inspect")
    assert document["recipients"] == ["X25519", "ssh-ed25519"]  # unchanged for old scripts
    x25519, ssh = document["recipient_details"]
    assert x25519 == {"type": "X25519", "key_tag": None, "fingerprint_start": None,
                      "identifies_key": False,
                      "description": "an age key (age1…), the bundle does not reveal which"}
    assert ssh["fingerprint_start"] == start and ssh["identifies_key"] is True
    identity = age.SshEd25519Identity(load_signing_key(ssh_keys["investigator"], None).key)
    assert ssh["key_tag"] == identity.key_tag


def test_inspect_of_a_passphrase_bundle(passphrase_bundle: Path, user: Path) -> None:
    document = invoke("inspect", passphrase_bundle, "--json").json()
    assert_valid(document, "inspect")
    assert document["recipient_details"] == [
        {"type": "scrypt", "key_tag": None, "fingerprint_start": None, "identifies_key": False,
         "description": "a passphrase"}]
    assert "  1. a passphrase" in invoke("inspect", passphrase_bundle).stdout.splitlines()


def test_the_fingerprint_start_is_what_ssh_keygen_prints(ssh_bundle: Path,
                                                          ssh_keys: dict[str, Any]) -> None:
    """The claim people act on: the key whose `ssh-keygen -lf` fingerprint starts like this."""
    keygen = require_tool("ssh-keygen")
    printed = subprocess.run([keygen, "-lf", f"{ssh_keys['investigator']}.pub"],
                             capture_output=True, text=True, check=True).stdout.split()[1]
    detail = invoke("inspect", ssh_bundle, "--json").json()["recipient_details"][0]
    assert printed.startswith(detail["fingerprint_start"]) and len(detail["fingerprint_start"]) == 12
    other = subprocess.run([keygen, "-lf", f"{ssh_keys['stranger']}.pub"],
                           capture_output=True, text=True, check=True).stdout.split()[1]
    assert not other.startswith(detail["fingerprint_start"])


def test_the_key_tag_is_the_one_real_age_writes(tmp_path: Path, ssh_keys: dict[str, Any]) -> None:
    age_tool = require_tool("age")
    encrypted = subprocess.run([age_tool, "-R", f"{ssh_keys['investigator']}.pub"],
                               input=b"x", capture_output=True, check=True).stdout
    (found,) = recipients_in(age.read_header(io.BytesIO(encrypted)).stanzas)
    public = (Path(f"{ssh_keys['investigator']}.pub")).read_text()
    assert found.key_tag == age.SshEd25519Recipient.from_ssh_line(public).key_tag
    assert found.fingerprint_start == ssh_keys["investigator_fingerprint"][:12]


# ------------------------------------------------------------- keys given in the wrong place
def test_a_file_given_to_r_suggests_capital_r(tmp_path: Path, user: Path, tree: Path,
                                             ssh_keys: dict[str, Any], keys: dict[str, Any]) -> None:
    public = f"{ssh_keys['investigator']}.pub"
    result = invoke("capture", tree, "-r", public, "--sign-key", keys["signer"], "-o",
                    tmp_path / "x.evidence", "--json")
    assert result.code == ExitCode.USAGE and not (tmp_path / "x.evidence").exists()
    error = result.json()["error"]
    assert error["message"] == f"{public!r} is a file, not a public key"
    assert f"use -R {public} (--recipient-file)" in error["hint"]
    missing = invoke("capture", tree, "-r", "investigator.pub", "--sign-key", keys["signer"],
                     "-o", tmp_path / "x.evidence")
    assert missing.code == ExitCode.USAGE
    assert "'investigator.pub' is not a public key, and no such file exists" in flat(
        missing.stderr)
    assert "-R FILE (--recipient-file)" in flat(missing.stderr)


def test_a_private_ssh_key_given_to_capital_r_suggests_the_pub_file(
        tmp_path: Path, user: Path, tree: Path, ssh_keys: dict[str, Any],
        keys: dict[str, Any]) -> None:
    private = ssh_keys["investigator"]
    capture = invoke("capture", tree, "-R", private, "--sign-key", keys["signer"], "-o",
                     tmp_path / "x.evidence", "--json")
    assert capture.code == ExitCode.USAGE
    error = capture.json()["error"]
    assert error["message"] == f"{private} is a private key; encrypting needs the public key"
    assert error["hint"] == f"use -R {private}.pub (the public key next to it)"
    assert "PRIVATE KEY" not in capture.stdout + capture.stderr
    Path(f"{private}.pub").unlink()
    alone = invoke("capture", tree, "-R", private, "--sign-key", keys["signer"], "-o",
                   tmp_path / "x.evidence", "--json").json()["error"]
    assert f"ssh-keygen -y -f {private} > {private}.pub" in alone["hint"]


def test_an_age_identity_given_as_recipient_is_never_repeated(tmp_path: Path, user: Path,
                                                              tree: Path,
                                                              keys: dict[str, Any]) -> None:
    secret_line = next(line for line in keys["identity"].read_text().splitlines()
                       if line.startswith("AGE-SECRET-KEY-"))
    identity = age.X25519Identity.from_string(secret_line)
    as_file = invoke("capture", tree, "-R", keys["identity"], "--sign-key", keys["signer"],
                     "-o", tmp_path / "x.evidence", "--json")
    inline = invoke("capture", tree, "-r", secret_line, "--sign-key", keys["signer"],
                    "-o", tmp_path / "x.evidence", "--json")
    for result in (as_file, inline):
        assert result.code == ExitCode.USAGE
        assert secret_line not in result.stdout + result.stderr
        assert not re.search(r"AGE-SECRET-KEY-1[0-9A-Z]{4}", result.stdout + result.stderr)
    assert as_file.json()["error"]["hint"] == f"use -r {identity.recipient()} (its public key)"
    assert "is a secret key (AGE-SECRET-KEY-…)" in inline.json()["error"]["message"]


def test_verify_json_is_unchanged_by_the_new_wording(bundle: Path, keys: dict[str, Any]) -> None:
    """Scripts keep the age layer's own message in no_matching_key."""
    document = invoke("verify", bundle, "-i", keys["other"], "--json").json()
    assert document["no_matching_key"].startswith("none of the 1 key(s) or passphrase(s) given")
    assert json.dumps(document)  # one document, nothing else on stdout


def test_a_wrong_key_message_stays_short_and_shows_only_well_formed_tags() -> None:
    """A hostile header: 1000 ssh-ed25519 stanzas, one with a tag that is markup, not base64."""
    from evidencekit.protection import wrong_key

    stanzas = [age.Stanza("ssh-ed25519", (f"AAAA{n % 10}Q", "x"), b"") for n in range(1000)]
    stanzas.append(age.Stanza("ssh-ed25519", ("[bold]x", "x"), b""))
    recipients = recipients_in(stanzas)
    assert recipients[-1].key_tag is None
    assert recipients[-1].describe() == "an SSH key (ssh-ed25519) whose key tag is malformed"
    advice = wrong_key({"ssh-ed25519"}, False, True, recipients=recipients)
    assert len(advice.message) < 600
    assert "997 more keys ('evidencekit inspect' lists them all)" in advice.message


def test_many_keys_tried_are_counted_not_listed() -> None:
    from evidencekit.protection import RecipientInfo, wrong_key

    tried = [age.X25519Identity.generate() for _ in range(40)]
    advice = wrong_key({"X25519"}, False, True, recipients=[RecipientInfo("X25519")],
                       tried=tried)
    assert f"tried the age key {tried[0].recipient()}" in advice.message
    assert str(tried[10].recipient()) not in advice.message
    assert advice.message.endswith(", and 36 more keys")
