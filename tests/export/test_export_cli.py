"""evidencekit export: the registry's formats, refusals, no overwrite, --record."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evidencekit.crypto import age
from tests.support.bundles import contents, rebuild
from tests.support.sealed import Sealed


def test_unknown_format_is_a_usage_error(sealed: Sealed, tmp_path: Path) -> None:
    done = sealed.export("nonsense", tmp_path / "x")
    assert done.code == 2
    assert not (tmp_path / "x").exists()


def test_an_existing_output_is_never_replaced(sealed: Sealed, tmp_path: Path) -> None:
    output = tmp_path / "known.txt"
    output.write_text("mine")
    done = sealed.export("hashdeep", output)
    assert done.code == 2
    assert "already exists" in done.stderr
    assert output.read_text() == "mine"


def test_a_bundle_that_does_not_verify_is_refused(sealed: Sealed, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.evidence"
    edited = [(name, data.replace(b"evidence", b"evidencE", 1) if name == "README.txt" else data,
               mtime) for name, data, mtime in contents(sealed.bundle)]
    rebuild(damaged, edited)
    output = tmp_path / "known.txt"
    done = run_export(sealed, damaged, output)
    assert done.returncode == 1, done.stderr
    assert "did not pass verification" in done.stderr and "nothing was exported" in done.stderr
    assert list(tmp_path.iterdir()) == [damaged]  # no output, no temporary file left


def test_the_wrong_key_is_refused(sealed: Sealed, tmp_path: Path) -> None:
    other = tmp_path / "other.txt"
    other.write_text(f"{age.X25519Identity.generate()}\n")
    done = sealed.cli("export", sealed.bundle, "-i", other, "--format", "hashdeep",
                      "-o", tmp_path / "known.txt")
    assert done.code == 4
    assert not (tmp_path / "known.txt").exists()


def test_record_appends_a_signed_exported_event(sealed: Sealed, tmp_path: Path) -> None:
    bundle = tmp_path / "copy.evidence"
    bundle.write_bytes(sealed.bundle.read_bytes())
    output = tmp_path / "report.html"
    done = sealed.cli("export", bundle, "-i", sealed.identity, "--format", "html", "-o", output,
                      "--record", "--sign-key", sealed.signer, "--json")
    assert done.code == 0, done.stderr
    result = done.json()
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    assert result["sha256"] == digest
    assert b"<html" in output.read_bytes()[:400].lower()
    event = result["recorded"]
    assert event["action"] == "exported"
    assert event["details"] == {"format": "html", "sha256": digest,
                                "size": str(output.stat().st_size)}
    shown = sealed.cli("custody", "show", bundle, "--json")
    assert shown.code == 0, shown.stderr
    assert [e["action"] for e in shown.json()["custody"]] == ["captured", "exported"]
    assert sealed.cli("verify", bundle, "-i", sealed.identity).code == 0


def run_export(sealed: Sealed, bundle: Path, output: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evidencekit", "export", str(bundle), "-i",
                           str(sealed.identity), "--format", "hashdeep", "-o", str(output)],
                          capture_output=True, text=True, env={**os.environ, **sealed.env},
                          timeout=120)


def test_help_lists_every_registered_format(sealed: Sealed) -> None:
    done = sealed.cli("export", "--help")
    for name in ("hashdeep", "html", "pdf"):
        assert name in done.stdout


def test_an_entry_by_an_untrusted_key_is_said_not_only_exit_6(sealed: Sealed,
                                                               tmp_path: Path) -> None:
    # It printed "VERIFIED and exported" and nothing else, with exit code 6.
    from evidencekit.crypto.keys import SigningKey

    bundle = tmp_path / "copy.evidence"
    bundle.write_bytes(sealed.bundle.read_bytes())
    stranger = tmp_path / "stranger"
    SigningKey.generate("Stranger").save(stranger)
    assert sealed.cli("custody", "add", bundle, "--action", "note", "--note", "seen",
                      "--sign-key", stranger).code == 0
    done = sealed.cli("export", bundle, "-i", sealed.identity, "--format", "hashdeep",
                      "-o", tmp_path / "known.txt", "--trusted-key", f"{sealed.signer}.pub")
    assert done.code == 6, done.stderr
    assert "VERIFIED, BUT NOT ALL SIGNERS ARE TRUSTED" in done.stdout
    assert "custody/000002.json" in done.stderr and "--trusted-key" in done.stderr


def test_record_that_fails_on_a_full_disk_says_the_export_was_written(
        sealed: Sealed, tmp_path: Path) -> None:
    # The export was published, then the event could not be added: exit 2 said only "not
    # enough free space ... the bundle was left as it was", as if nothing had been exported.
    bundle = tmp_path / "copy.evidence"
    bundle.write_bytes(sealed.bundle.read_bytes())
    output = tmp_path / "known.txt"
    full_disk = ("import sys\nfrom pathlib import Path\nimport evidencekit.fs.replace as r\n"
                 "def full(folder, needed):\n    raise r.NotEnoughSpace(needed, 0, Path(folder))\n"
                 "r._require_space = full\nsys.argv[0] = 'evidencekit'\n"
                 "from evidencekit.cli.main import main\nmain()\n")
    done = subprocess.run([sys.executable, "-c", full_disk, "export", str(bundle), "-i",
                           str(sealed.identity), "--format", "hashdeep", "-o", str(output),
                           "--record", "--sign-key", str(sealed.signer)], capture_output=True,
                          text=True, env={**os.environ, **sealed.env}, timeout=120)
    assert done.returncode == 2, done.stderr
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    assert "not enough free space" in done.stderr
    assert f"The export {output} was written (SHA-256 {digest})" in done.stderr
    assert "custody add" in done.stderr
    assert bundle.read_bytes() == sealed.bundle.read_bytes()


def test_record_leaves_a_read_only_bundle_alone_and_exports_nothing(
        sealed: Sealed, tmp_path: Path) -> None:
    # Run as root, 'export --record' replaced a bundle made read-only (0444) on purpose.
    bundle = tmp_path / "copy.evidence"
    bundle.write_bytes(sealed.bundle.read_bytes())
    bundle.chmod(0o444)
    output = tmp_path / "report.html"
    done = sealed.cli("export", bundle, "-i", sealed.identity, "--format", "html", "-o", output,
                      "--record", "--sign-key", sealed.signer)
    assert done.code == 2 and "read-only" in done.stderr, done.stderr
    assert bundle.read_bytes() == sealed.bundle.read_bytes() and not output.exists()


@pytest.mark.parametrize("fmt", ["hashdeep", "case", "dfxml", "html", "pdf"])
def test_an_export_is_private_whatever_the_umask(sealed: Sealed, tmp_path: Path,
                                                 fmt: str) -> None:
    """It reveals the evidence (names, hashes, the incident record, pictures): 0600 like the
    bundle and the extracted folder, not 0644 under the usual umask 022."""
    output = tmp_path / f"export.{fmt}"
    done = subprocess.run([sys.executable, "-m", "evidencekit", "export", str(sealed.bundle),
                           "-i", str(sealed.identity), "--format", fmt, "-o", str(output)],
                          capture_output=True, text=True, env={**os.environ, **sealed.env},
                          timeout=120, umask=0o022)
    assert done.returncode == 0, done.stderr
    assert output.stat().st_mode & 0o777 == 0o600
