"""The SFTP client (evidencekit.remote.sftp) against a server that lies
(tests/support/hostile_sftp.py), run here as a process of its own, without ssh."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from evidencekit.remote import sftp

WORKTREE = Path(__file__).resolve().parents[2]


@pytest.fixture
def endless_folder() -> Iterator[sftp.SftpSession]:
    with _session("endless-folder") as session:
        yield session


def test_a_folder_listed_without_end_is_cut_not_held_whole(
        endless_folder: sftp.SftpSession, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sftp, "MOST_ENTRIES", 1000)
    with pytest.raises(sftp.SftpError, match="listed more than 1,000 entries in it"):
        endless_folder.listdir(b"/x")


@contextmanager
def _session(mode: str) -> Iterator[sftp.SftpSession]:
    process = subprocess.Popen([sys.executable, "-m", "tests.support.hostile_sftp", mode],
                               cwd=WORKTREE, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    session = sftp.SftpSession(process, stall=10)
    try:
        yield session
    finally:
        process.kill()
        session.close()


def test_a_folder_of_endless_names_is_cut_by_their_bytes_not_only_their_count(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """MOST_ENTRIES bounds the count, not the memory: a server listing names of up to a packet
    each (1 MiB) made ten million of them ten terabytes. 300 names of 60,000 bytes here."""
    monkeypatch.setattr(sftp, "MOST_NAME_BYTES", 4 << 20, raising=False)
    with _session("long-names") as session, \
            pytest.raises(sftp.SftpError, match="more than 4 MiB of names in it"):
        session.listdir(b"/x")


def test_an_answer_cut_short_is_an_sftp_error_not_a_crash() -> None:
    """Attributes that announce a size and hold no bytes for it raised struct.error, which no
    caller expects ('internal error', exit 5)."""
    with _session("truncated") as session:
        with pytest.raises(sftp.SftpError, match="a truncated SFTP packet"):
            session.lstat(b"/x/f.txt")
        assert session.lstat(b"/x").mode == 0o040755  # the session is still in step


def test_a_file_listed_without_a_size_is_read_at_most_the_limit_and_says_so(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A file the server lists with no size is read until its end, which a hostile server
    never sends: it was spooled next to the bundle until the disk was full (the free-space
    watch looks at sizes listed). It is read as a kernel file is, at most
    READ_TO_END_LIMIT bytes, and the rest recorded as not read."""
    from evidencekit.sources import remote_logical

    monkeypatch.setattr(remote_logical, "READ_TO_END_LIMIT", 1 << 20, raising=False)
    with _session("sizeless") as session:
        attrs = session.lstat(b"/x/f.txt")
        assert attrs.size is None
        item = remote_logical._Item(b"/x/f.txt", "file", attrs)
        content = remote_logical._SftpContent(session, b"/x/f.txt", attrs, item)
        buffer = memoryview(bytearray(1 << 16))
        read = 0
        for _ in range(64):  # 4 MiB at most
            count = content.readinto(buffer)
            if not count:
                break
            read += count
        assert read == 1 << 20
        unread = content.unread()
        assert unread is not None and "listed no size" in unread and "1 MiB" in unread, unread
        assert item.error == unread


def test_a_file_listed_empty_is_read_to_its_end_as_a_local_one_is() -> None:
    """A size of 0 says nothing (/proc's files, a file written since it was listed): a local
    capture reads such a file to its end, the SFTP fallback read nothing and stored it empty,
    saying nothing."""
    from evidencekit.sources import remote_logical
    from tests.support.hostile_sftp import CONTENT

    with _session("empty-name") as session:  # its files are served as any server does
        attrs = sftp.Attrs(0, None, None, 0o100644, None, 1_700_000_000)
        item = remote_logical._Item(b"/x/f.txt", "file", attrs)
        content = remote_logical._SftpContent(session, b"/x/f.txt", attrs, item)
        assert content.size is None  # spooled, read to its end
        buffer = memoryview(bytearray(1 << 16))
        got = bytearray()
        while count := content.readinto(buffer):
            got += buffer[:count]
        assert bytes(got) == CONTENT
        assert "past the 0 bytes" not in " ".join(content.changes())


def test_a_tree_without_bottom_is_not_walked_without_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server whose every folder holds another: each level's path is longer by two bytes
    and all of them are kept (the JSON document), so memory grew as the square of the depth,
    without end. No file system gives a path longer than MOST_PATH_BYTES."""
    from evidencekit.sources import remote_logical

    monkeypatch.setattr(remote_logical, "MOST_PATH_BYTES", 1000, raising=False)
    with _session("endless-depth") as session:
        asked = [0]
        listdir = session.listdir

        def counted(path: bytes, *limits: int | None) -> list[tuple[bytes, sftp.Attrs]]:
            asked[0] += 1
            assert asked[0] < 5000, "walked without end"
            return listdir(path, *limits)

        monkeypatch.setattr(session, "listdir", counted)
        host = remote_logical.RemoteHost("u@h", "h", 22, "u", "SHA256:x", "ssh-ed25519")
        source = remote_logical.RemoteLogicalSource(session, host, [b"/x"])
        source.place(0, set())
        entries = list(source.entries(set()))
        errors = [getattr(e, "error", None) for e in entries if getattr(e, "error", None)]
        assert len(errors) == 1 and "longer than 1000 bytes" in str(errors[0]), errors


def test_a_folder_is_cut_by_the_bytes_of_its_paths_when_a_budget_is_given() -> None:
    """A name of 8 bytes in a folder whose path is 15 KB is held as 15 KB: the caller's
    budget counts ``path/name``, not the name alone."""
    with _session("wide-deep:500:0") as session, \
            pytest.raises(sftp.SftpError, match="more than 1000 bytes of paths in it"):
        session.listdir(b"/x", most_bytes=1000)


@pytest.mark.parametrize(("shape", "bound", "said"), [
    ("wide-deep:5000:0", "MOST_ITEMS", "records at most 1,000 items"),
    ("wide-deep:100:40", "MOST_PATH_TOTAL", "and 500 KiB of paths"),
])
def test_a_wide_folder_past_the_walks_budget_is_recorded_not_held(
        shape: str, bound: str, said: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every item found is held until the end (the JSON document, the manifest): a server
    listing a wide folder (ten million entries each) filled memory, several times more for a
    folder deep down (100 names there, 40 levels of 250 bytes: 1 MB of paths)."""
    from evidencekit.sources import remote_logical

    monkeypatch.setattr(remote_logical, bound, 1000 if bound == "MOST_ITEMS" else 500 << 10)
    with _session(shape) as session:
        host = remote_logical.RemoteHost("u@h", "h", 22, "u", "SHA256:x", "ssh-ed25519")
        source = remote_logical.RemoteLogicalSource(session, host, [b"/x"])
        source.place(0, set())
        entries = list(source.entries(set()))
    errors = [str(e.error) for e in entries if getattr(e, "error", None)]
    assert len(errors) == 1 and "not listed further" in errors[0] and said in errors[0], errors
    assert source.recorded < 100


def test_what_a_folder_listed_is_not_looked_up_again_and_is_recorded_in_order() -> None:
    """READDIR gives each name's attributes (OpenSSH's are lstat's): every child was LSTAT'ed
    again, a round trip each. Only the paths given are; the document's items are each
    listed once, depth first in name order, as canonical JSON."""
    from evidencekit import canonical
    from evidencekit.sources import remote_logical

    with _session("wide-deep:30:2") as session:  # /x, 2 folders down, 30 FIFOs there
        asked: list[bytes] = []
        lstat = session.lstat

        def counted(path: bytes) -> sftp.Attrs:
            asked.append(path)
            return lstat(path)

        session.lstat = counted  # type: ignore[method-assign]
        host = remote_logical.RemoteHost("u@h", "h", 22, "u", "SHA256:x", "ssh-ed25519")
        source = remote_logical.RemoteLogicalSource(session, host, [b"/x"])
        source.place(0, set())
        entries = list(source.entries(set()))
    assert asked == [b"/x"]
    document = bytearray()
    buffer = memoryview(bytearray(1 << 16))
    while count := entries[-1].content.readinto(buffer):  # type: ignore[union-attr]
        document += buffer[:count]
    items = canonical.loads(bytes(document), "the document")["items"]
    assert [i["type"] for i in items] == ["directory"] * 3 + ["other"] * 30
    paths = [i["path"] for i in items]
    assert paths[3:] == sorted(paths[3:]) and paths[3].endswith("/00000000")
    assert source.recorded == 33 and source.records()[0].details["errors"] == 0


def test_a_file_whose_type_differs_from_its_listing_when_read_is_said_to_be_replaced() -> None:
    """Not LSTAT'ed again before it is opened (that narrowed the window, never closed it):
    what FSTAT says of the file read is compared with what was listed, type included."""
    from evidencekit.sources import remote_logical
    from tests.support.hostile_sftp import CONTENT

    with _session("empty-name") as session:  # FSTAT answers a regular file, 0644
        attrs = sftp.Attrs(len(CONTENT), 0, 0, 0o100600, None, 1_700_000_000)
        item = remote_logical._Item(b"/x/f.txt", "file", attrs)
        content = remote_logical._SftpContent(session, b"/x/f.txt", attrs, item)
        buffer = memoryview(bytearray(1 << 16))
        while content.readinto(buffer):
            pass
        changes = content.changes()
    assert len(changes) == 1 and "type and permissions changed" in changes[0], changes
    assert "100600 → 100644" in changes[0] and item.changes == changes
