"""A bundle's passphrase is asked for once verify has read the payload's header from the bundle it
opened (protection.KeySource): without -p only when a passphrase protects the payload, a typed one
checked against that header, and the bundle opened once for all of it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import evidencekit.format.reader
import evidencekit.protection
import evidencekit.verify
from evidencekit.cli import cmd_open
from evidencekit.crypto import age
from evidencekit.errors import ExitCode, UsageError
from evidencekit.extract import extract
from evidencekit.verify import verify
from tests.support.cli import invoke
from tests.support.keys import BUNDLE_PASSPHRASE


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """Every opening of a bundle, whichever module asks for it."""
    seen: list[Path] = []
    real = evidencekit.format.reader.open_bundle

    def counted(path: Path) -> evidencekit.format.reader.OuterBundle:
        seen.append(Path(path))
        return real(path)

    for module in (evidencekit.format.reader, evidencekit.protection, evidencekit.verify):
        monkeypatch.setattr(module, "open_bundle", counted)
    yield seen


class Recording:
    """A KeySource that remembers the headers it was asked with."""

    def __init__(self, keys: Sequence[age.Identity]) -> None:
        self.headers: list[age.Header | None] = []
        self._keys = list(keys)

    @property
    def given(self) -> list[age.Identity]:
        return self._keys

    def keys_for(self, header: age.Header | None) -> list[age.Identity]:
        self.headers.append(header)
        return self._keys


def test_verify_asks_a_key_source_once_with_the_header_of_the_bundle_it_opened(
        passphrase_bundle: Path, opens: list[Path]) -> None:
    source = Recording([age.ScryptIdentity(BUNDLE_PASSPHRASE.encode())])
    report = verify(passphrase_bundle, source)
    assert report.ok and report.decrypted, report.findings.errors
    assert len(source.headers) == 1 and source.headers[0] is not None
    assert [s.type for s in source.headers[0].stanzas] == ["scrypt"]
    assert opens == [passphrase_bundle]


def test_a_typed_passphrase_is_checked_against_that_header_and_asked_again(
        passphrase_bundle: Path, tmp_path: Path, user: Path, opens: list[Path],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    typed = ["bundle secert", BUNDLE_PASSPHRASE]  # a typing mistake, then the right one
    monkeypatch.setattr(cmd_open, "interactive", lambda: True)
    monkeypatch.setattr(cmd_open, "obtain", lambda *args, **kwargs: typed.pop(0).encode())
    keys = cmd_open.identities_for(passphrase_bundle, (), None, ask=False, required=True)
    assert len(typed) == 2 and opens == []  # nothing asked yet
    result = extract(passphrase_bundle, tmp_path / "out", keys)
    assert result.report.ok and result.output == tmp_path / "out"
    assert typed == [] and "That passphrase does not open this bundle." in capsys.readouterr().err
    assert opens == [passphrase_bundle]  # no peek before verify, none per try


def test_without_a_key_for_a_bundle_that_needs_one_extract_is_a_usage_error_leaving_nothing(
        bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = sorted(tmp_path.iterdir())
    result = invoke("extract", bundle, "-o", out)
    assert result.code == ExitCode.USAGE, result.stderr
    assert "a key is needed to open the bundle" in result.stderr
    assert "--passphrase-file FILE" in " ".join(result.stderr.split())
    assert sorted(tmp_path.iterdir()) == before  # no folder, no staging left


def test_without_a_terminal_the_passphrase_a_bundle_needs_is_asked_of_a_file(
        passphrase_bundle: Path, tmp_path: Path, user: Path) -> None:
    result = invoke("extract", passphrase_bundle, "-o", tmp_path / "out", "--json")
    assert result.code == ExitCode.USAGE
    assert "--passphrase-file" in result.json()["error"]["hint"]
    assert not (tmp_path / "out").exists()


def test_a_key_source_that_refuses_ends_verify_with_its_error(passphrase_bundle: Path) -> None:
    class Refusing(Recording):
        def keys_for(self, header: age.Header | None) -> list[age.Identity]:
            raise UsageError("no key here")

    with pytest.raises(UsageError, match="no key here"):
        verify(passphrase_bundle, Refusing([]))
