"""capture's options that only qualify another one (--device's, --url's, --memory-tool's,
--profile's) are refused without it before anything is read, as the mailbox and remote options
are: 'capture DIR --hash md5' ended with exit 0 and no MD5 anywhere, unsaid, and so did
--url-timeout, --memory-timeout, --profile-os without what they are for."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import invoke
from tests.support.keys import KeyFiles


@pytest.mark.parametrize(("extra", "needs"), [
    (("--hash", "md5"), "is for a device image: it needs --device DEVICE|IMAGE"),
    (("--retries", "2"), "is for a device image: it needs --device DEVICE|IMAGE"),
    (("--no-write-block",), "is for a device image: it needs --device DEVICE|IMAGE"),
    (("--url-timeout", "60"), "is for a web page: it needs --url URL"),
    (("--url-max-size", "4096"), "is for a web page: it needs --url URL"),
    (("--user-agent", "Mozilla/5.0"), "is for a web page: it needs --url URL"),
    (("--memory-timeout", "5"), "is for a memory tool: it needs --memory-tool FILE"),
    (("--profile-os", "windows"), "is for a profile: it needs --profile NAME|FILE"),
])
def test_an_option_without_the_one_it_qualifies_is_refused(
        extra: tuple[str, ...], needs: str, tmp_path: Path, user: Path, keys: KeyFiles,
        tree: Path) -> None:
    out = tmp_path / "files.evidence"
    result = invoke("capture", tree, *extra, "-R", keys["recipient"], "--sign-key",
                    keys["signer"], "-o", out, "--json")
    assert result.code == 2, result.stdout + result.stderr
    assert result.json()["error"]["message"] == f"{extra[0]} {needs}"
    assert not out.exists()


def test_with_what_they_qualify_they_are_taken(tmp_path: Path, user: Path,
                                               keys: KeyFiles) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(4096))
    result = invoke("capture", "--device", image, "--hash", "md5", "--retries", "0",
                    "--no-write-block", "-R", keys["recipient"], "--sign-key", keys["signer"],
                    "-o", tmp_path / "d.evidence", "--json")
    assert result.code == 0, result.stderr
