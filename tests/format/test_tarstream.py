"""The payload tar reader against headers GNU tar reads otherwise, and bytes no tar shows
(issue 19.1, found by an independent review: each of these verified with exit 6 before)."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from evidencekit.format.inner import member_header
from evidencekit.format.outer import BLOCK, padding
from evidencekit.format.tarstream import TarFormatError, TarReader, mtime_readings
from tests.support.tools import skip_or_fail

MTIME_NS = 1_796_615_241_878_401_155
CONTENT = b"From: bank@examp1e.com\n\nPay now\n"


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"",
           link: str | None = None) -> bytes:
    header = member_header(name, kind, len(data), 0o755 if kind == tarfile.DIRTYPE else 0o644,
                           MTIME_NS, 0, 0, link)
    assert header is not None
    return header + data + padding(len(data))


def with_checksum(block: bytearray) -> bytearray:
    block[148:156] = b"        "
    block[148:155] = b"%06o\0" % sum(block)
    return block


def patched(raw: bytes, field: slice, value: bytes) -> bytes:
    """*raw* (a pax header block, one block of records, the ustar block, data) with one field of
    its ustar block set to *value* and the checksum made right again."""
    block = bytearray(raw[2 * BLOCK : 3 * BLOCK])
    block[field] = value.ljust(field.stop - field.start, b"\0")
    return raw[: 2 * BLOCK] + bytes(with_checksum(block)) + raw[3 * BLOCK :]


def read_all(archive: bytes) -> list[str]:
    reader = TarReader(io.BytesIO(archive).read)
    names = []
    for info, _ in reader:
        names.append(info.name)
        for _ in reader.data():
            pass
    return names


FILE = member("bag/data/scam.eml", data=CONTENT)
LINK = member("bag/data/copy.eml", tarfile.LNKTYPE, link="bag/data/scam.eml")
END = bytes(2 * BLOCK)


def test_the_writers_own_members_are_read() -> None:
    assert read_all(FILE + LINK + END) == ["bag/data/scam.eml", "bag/data/copy.eml"]


@pytest.mark.parametrize("archive", [
    pytest.param(patched(FILE, slice(0, 100), b"bag/data/scam.eml/") + END,
                 id="regular-file-name-ending-in-slash"),
    pytest.param(FILE + patched(LINK, slice(0, 100), b"bag/data/copy.eml/") + END,
                 id="hard-link-name-ending-in-slash"),
    pytest.param(FILE + patched(LINK, slice(157, 257), b"bag/data/scam.eml/") + END,
                 id="hard-link-target-ending-in-slash"),
])
def test_a_name_ending_in_a_slash_on_a_file_or_link_is_refused(archive: bytes) -> None:
    """GNU tar makes a folder of a regular file named 'x/' (as of an old-style one), and a link
    to 'x/' fails; the reader stripped the slash and took a file: refuse, never guess."""
    with pytest.raises(TarFormatError, match="not in the form evidencekit writes"):
        read_all(archive)


def test_gnu_tar_makes_a_folder_of_a_regular_file_named_with_a_slash(tmp_path: Path) -> None:
    """Why the refusal above: what tar -x makes of that header (so the test models the
    disagreement, not a guess about it)."""
    if shutil.which("tar") is None:
        skip_or_fail("GNU tar is needed to see what tar -x makes of the header")
    archive = tmp_path / "trick.tar"
    archive.write_bytes(patched(FILE, slice(0, 100), b"bag/data/scam.eml/") + END)
    subprocess.run(["tar", "-xf", archive, "-C", tmp_path], capture_output=True)
    assert (tmp_path / "bag" / "data" / "scam.eml").is_dir()


def test_bytes_hidden_in_a_members_padding_are_refused() -> None:
    """No tar shows the bytes between a file's end and the next block: hidden data, refused as
    bytes after the tar's end are."""
    hidden = FILE[: -len(padding(len(CONTENT)))] + b"HIDDEN".ljust(len(padding(len(CONTENT))),
                                                                    b"\0")
    with pytest.raises(TarFormatError, match=r"non-zero bytes in the padding after member "
                                             r"'bag/data/scam\.eml'"):
        read_all(hidden + END)


@pytest.mark.parametrize(("record", "posix", "legacy"), [
    ("-1.500000000", -1_500_000_000, -500_000_000),  # as written now; old: -2.5 s
    ("-2.500000000", -2_500_000_000, -1_500_000_000),  # the old writer's -1.5 s
    ("-0.250000000", -250_000_000, None),  # never written by the old writer (it gave -1.75)
    ("-2.000000000", -2_000_000_000, None),  # whole seconds: the same either way
    ("1.500000000", 1_500_000_000, None),
])
def test_a_pax_time_before_1970_is_read_as_posix_and_as_the_old_writer_meant_it(
        record: str, posix: int, legacy: int | None) -> None:
    member = tarfile.TarInfo("bag/data/f")
    member.pax_headers = {"mtime": record}
    assert mtime_readings(member) == (posix, legacy)


def test_times_before_1970_are_written_as_posix_says() -> None:
    header = member_header("bag/data/f", tarfile.REGTYPE, 0, 0o644, -1_500_000_000, 0, 0)
    assert header is not None and b" mtime=-1.500000000\n" in header
    tiny = member_header("bag/data/f", tarfile.REGTYPE, 0, 0o644, -1, 0, 0)
    assert tiny is not None and b" mtime=-0.000000001\n" in tiny
