"""A mailbox's files are flat in data/ (FORMAT.md §4.3): ACCOUNT.FOLDER.UID.eml|json,
ACCOUNT.FOLDER.folder.json, ACCOUNT.server.json. No server needed: the folders are set as
connect() would set them. No name may be given twice, in one mailbox or beside other sources."""

from __future__ import annotations

from evidencekit.sources.mail import MailSource, Password, Selection, parse_account
from evidencekit.sources.mail.fetch import Folder


def mailbox(url: str, *folders: tuple[str, str | None]) -> MailSource:
    source = MailSource(parse_account(url), Password("unused"), Selection())
    source.folders = [Folder(name, f"utf7-{number}", delimiter, [], uids=[1, 2, 10, 21])
                      for number, (name, delimiter) in enumerate(folders)]
    return source


def all_names(source: MailSource) -> list[str]:
    names = [f"{source.records()[0].bag_name}.server.json"]
    for folder in source.folders:
        names += source.file_names(folder)
        for uid in folder.uids:
            names += source.file_names(folder, uid)
    return names


def test_a_folder_hierarchy_is_written_with_a_division_slash() -> None:
    source = mailbox("imaps://jane@mail.example.org", ("INBOX", "."), ("Reçu.Archiv", "."),
                     ("Projekte/2026", "/"), ("a/b", "."), ("", None))
    source.place(3, {"evidence"})
    named = [source.file_names(folder, 7)[0] for folder in source.folders]
    assert named == ["jane@mail.example.org.INBOX.7.eml", "jane@mail.example.org.Reçu∕Archiv.7.eml",
                     "jane@mail.example.org.Projekte∕2026.7.eml",
                     "jane@mail.example.org.a∕b.7.eml", "jane@mail.example.org._.7.eml"]
    assert source.file_names(source.folders[1]) == \
        ("jane@mail.example.org.Reçu∕Archiv.folder.json",)
    assert "/" not in "".join(all_names(source))


def test_no_name_is_given_twice_whatever_the_folders_are_called() -> None:
    """Folders whose flat names would be the same (a delimiter and the character it is written
    as; a '.' in a name and a '.' as delimiter) and names that look like a UID or a document."""
    tricky = [("a.b", "."), ("a∕b", "."), ("a/b", "."), ("a∕b~1", "/"), ("a", "/"), ("a.1", "/"),
              ("a.1.2", "/"), ("1", "/"), ("folder", "/"), ("server", "/"), ("a.folder", "/"),
              ("a.server", "/"), ("", "/"), ("_", "/"), (".", "/"), ("..", "/")]
    source = mailbox("imaps://jane@host", *tricky)
    source.place(0, set())
    names = all_names(source)
    assert len(names) == len(set(names)) == 1 + len(tricky) * 9


def test_the_account_name_is_free_of_every_name_taken_before_it() -> None:
    """A file captured beside the mailbox named like one of its files, and a second mailbox
    whose address starts with the first one's: each takes ACCOUNT~1 rather than share names."""
    first = mailbox("imaps://jane@host", ("evil", "/"), ("INBOX", "/"))
    taken = {"jane@host.INBOX.1.eml"}  # a file of the file walk, placed first
    first.place(1, taken)
    assert first.records()[0].bag_name == "jane@host~1"
    second = mailbox("imaps://jane@host~1.evil", ("INBOX", "/"))
    second.place(2, taken)
    assert second.records()[0].bag_name == "jane@host~1.evil~1"
    names = ["jane@host.INBOX.1.eml", *all_names(first), *all_names(second)]
    assert len(names) == len(set(names))


def test_a_name_too_long_for_a_file_system_is_cut_and_stays_unique() -> None:
    deep = "Kunden/" * 40 + "Schriftverkehr"  # some 300 bytes once '/' is '∕'
    source = mailbox("imaps://jane@mail.example.org", (deep + "/a", "/"), (deep + "/b", "/"),
                     ("INBOX", "/"))
    source.place(0, set())
    names = all_names(source)
    assert len(names) == len(set(names))
    assert max(len(name.encode()) for name in names) <= 255
    longest = source.file_names(source.folders[0], 4294967295)[1]
    assert len(longest.encode()) <= 255 and longest.startswith("jane@mail.example.org.Kunden∕")
    assert source.file_names(source.folders[2], 1)[0] == "jane@mail.example.org.INBOX.1.eml"
