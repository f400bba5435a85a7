"""Profile expansion on each system's variables, with fake home trees (any OS, on any OS)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from evidencekit.sources.files.profiles import find_profile, resolve, variables
from evidencekit.sources.files.profiles.expand import (
    LINK_NOT_FOLLOWED,
    LINK_NOT_TRUSTED,
    LINK_THROUGH_STRANGER,
    UnsetVariable,
    expand_pattern,
)
from evidencekit.sources.files.profiles.model import read_profile
from tests.support.tools import atimes, stale_atimes


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def profile(targets_yaml: str):
    return read_profile("description: test\ntargets:\n" + targets_yaml, "test.yaml", "file", "test")


def test_linux_variables(tmp_path: Path):
    env = {"HOME": str(tmp_path / "h"), "USER": "jane"}
    values = variables("linux", env)
    assert values["home"] == values["userprofile"] == str(tmp_path / "h")
    assert values["appdata"] == str(tmp_path / "h" / ".config")
    assert values["localappdata"] == str(tmp_path / "h" / ".local" / "share")
    assert values["tmp"] == "/tmp" and values["user"] == "jane"
    env.update(XDG_CONFIG_HOME="/xdg/config", XDG_DATA_HOME="/xdg/data", TMPDIR="/scratch")
    values = variables("linux", env)
    assert (values["appdata"], values["localappdata"], values["tmp"]) == (
        "/xdg/config", "/xdg/data", "/scratch")


def test_macos_variables(tmp_path: Path):
    home = tmp_path / "Users" / "jane"
    values = variables("macos", {"HOME": str(home)})
    assert values["library"] == str(home / "Library")
    assert values["appdata"] == values["localappdata"] == str(home / "Library" /
                                                               "Application Support")


def test_windows_variables_are_case_insensitive_and_have_defaults():
    values = variables("windows", {"UserProfile": "C:\\Users\\jane", "username": "jane"})
    assert values["home"] == values["userprofile"] == "C:\\Users\\jane"
    assert values["appdata"] == "C:\\Users\\jane/AppData/Roaming"
    assert values["localappdata"] == "C:\\Users\\jane/AppData/Local"
    assert values["tmp"] == "C:\\Users\\jane/AppData/Local/Temp"
    assert values["systemroot"] == "C:\\Windows" and values["user"] == "jane"
    values = variables("windows", {"USERPROFILE": "D:\\u", "APPDATA": "E:\\roam",
                                   "LOCALAPPDATA": "E:\\local", "TEMP": "F:\\t"})
    assert (values["appdata"], values["localappdata"], values["tmp"]) == (
        "E:\\roam", "E:\\local", "F:\\t")


def test_expand_braces_percent_and_tilde(tmp_path: Path):
    env = {"HOME": "/home/j", "EDITOR_DIR": "/opt/ed"}
    assert expand_pattern("~/.bash_history", "linux", env) == "/home/j/.bash_history"
    assert expand_pattern("{home}/x", "linux", env) == "/home/j/x"
    assert expand_pattern("%EDITOR_DIR%/conf", "linux", env) == "/opt/ed/conf"
    win = {"USERPROFILE": "C:\\Users\\j", "APPDATA": "C:\\Users\\j\\AppData\\Roaming"}
    assert expand_pattern("%userprofile%\\Desktop", "windows", win) == "C:/Users/j/Desktop"
    assert expand_pattern("{appdata}\\Signal", "windows", win) == \
        "C:/Users/j/AppData/Roaming/Signal"
    assert expand_pattern("~\\Downloads", "windows", win) == "C:/Users/j/Downloads"
    with pytest.raises(UnsetVariable, match="NOPE"):
        expand_pattern("%NOPE%\\x", "windows", win)
    with pytest.raises(UnsetVariable, match="library"):
        expand_pattern("{library}/x", "linux", env)


def test_glob_characters_in_a_home_are_not_patterns(tmp_path: Path):
    home = tmp_path / "odd[1]"
    touch(home / ".bash_history")
    found = resolve(profile("  - name: t\n    linux: ['{home}/.bash_history']\n"), "linux",
                    {"HOME": str(home)})
    assert found.sources == [str(home / ".bash_history")]


def test_linux_fake_home(tmp_path: Path):
    home = tmp_path / "home" / "jane"
    touch(home / ".bash_history")
    touch(home / ".config" / "google-chrome" / "Default" / "History")
    touch(home / ".mozilla" / "firefox" / "ab12.default-release" / "places.sqlite")
    touch(home / ".local" / "share" / "TelegramDesktop" / "tdata" / "key_datas")
    env = {"HOME": str(home)}
    browsers = resolve(find_profile("browser-history"), "linux", env)
    assert browsers.sources == [str(home / ".config" / "google-chrome"),
                                str(home / ".mozilla" / "firefox")]
    assert {m.target for m in browsers.missing} >= {"chromium", "edge", "brave"}
    assert all(m.reason for m in browsers.missing)
    chats = resolve(find_profile("chat-apps"), "linux", env)
    assert chats.sources == [str(home / ".local" / "share" / "TelegramDesktop")]


def test_macos_fake_home(tmp_path: Path):
    home = tmp_path / "Users" / "jane"
    support = home / "Library" / "Application Support"
    touch(home / "Library" / "Safari" / "History.db")
    touch(home / "Library" / "Cookies" / "Cookies.binarycookies")
    touch(support / "Google" / "Chrome" / "Default" / "History")
    touch(support / "Signal" / "sql" / "db.sqlite")
    touch(home / "Library" / "Mail" / "V10" / "MailData" / "Envelope Index")
    env = {"HOME": str(home)}
    browsers = resolve(find_profile("browser-history"), "macos", env)
    assert set(browsers.sources) == {str(support / "Google" / "Chrome"),
                                     str(home / "Library" / "Safari"),
                                     str(home / "Library" / "Cookies")}
    assert resolve(find_profile("chat-apps"), "macos", env).sources == [str(support / "Signal")]
    assert resolve(find_profile("mail"), "macos", env).sources == [str(home / "Library" / "Mail")]


def test_windows_fake_home(tmp_path: Path):
    profile_dir = tmp_path / "Users" / "jane"
    local = profile_dir / "AppData" / "Local"
    roaming = profile_dir / "AppData" / "Roaming"
    windir = tmp_path / "Windows"
    touch(local / "Google" / "Chrome" / "User Data" / "Default" / "History")
    touch(local / "Microsoft" / "Edge" / "User Data" / "Default" / "History")
    touch(roaming / "Mozilla" / "Firefox" / "Profiles" / "x.default" / "places.sqlite")
    touch(local / "Microsoft" / "Outlook" / "jane@example.com.ost")
    touch(profile_dir / "Documents" / "Outlook Files" / "archive.pst")
    touch(roaming / "Microsoft" / "Windows" / "PowerShell" / "PSReadLine" /
          "ConsoleHost_history.txt")
    touch(windir / "System32" / "winevt" / "Logs" / "Security.evtx")
    touch(profile_dir / "Downloads" / "invoice.pdf")
    env = {"userprofile": str(profile_dir), "LocalAppData": str(local), "APPDATA": str(roaming),
           "SystemRoot": str(windir)}
    assert resolve(find_profile("browser-history"), "windows", env).sources == [
        str(local / "Google" / "Chrome" / "User Data"),
        str(local / "Microsoft" / "Edge" / "User Data"), str(roaming / "Mozilla" / "Firefox")]
    assert resolve(find_profile("mail"), "windows", env).sources == [
        str(local / "Microsoft" / "Outlook"), str(profile_dir / "Documents" / "Outlook Files")]
    assert resolve(find_profile("shell-history"), "windows", env).sources == [
        str(roaming / "Microsoft" / "Windows" / "PowerShell" / "PSReadLine" /
            "ConsoleHost_history.txt")]
    assert resolve(find_profile("system-logs"), "windows", env).sources == [
        str(windir / "System32" / "winevt" / "Logs")]
    assert resolve(find_profile("user-files"), "windows", env).sources == [
        str(profile_dir / "Downloads")]


def test_duplicates_and_nested_paths_are_captured_once(tmp_path: Path):
    touch(tmp_path / "a" / "b" / "c.txt")
    found = resolve(profile(f"""\
  - name: inner
    linux: ['{tmp_path}/a/b/*.txt', '{tmp_path}/a/b']
  - name: outer
    linux: ['{tmp_path}/a', '{tmp_path}/a']
"""), "linux", {"HOME": str(tmp_path)})
    assert found.sources == [str(tmp_path / "a")]
    assert len(found.found) == 4


def test_missing_paths_are_reported_with_their_reason(tmp_path: Path):
    found = resolve(profile("""\
  - name: t
    linux: ['{home}/nothing-here', '{home}/none-*.txt', '%UNSET_VARIABLE_X%/x']
    windows: ['{home}\\\\x']
"""), "linux", {"HOME": str(tmp_path)})
    assert found.sources == []
    assert [(m.target, m.reason) for m in found.missing] == [
        ("t", "not found"), ("t", "no match"),
        ("t", "the environment variable %UNSET_VARIABLE_X% is not set")]
    assert found.missing[0].path == str(tmp_path / "nothing-here")
    assert found.missing[2].path == ""


def test_another_systems_rules_on_a_mounted_home(tmp_path: Path):
    """USERPROFILE pointing at a mounted Windows home: collected with the Windows rules."""
    home = tmp_path / "mnt" / "c" / "Users" / "jane"
    touch(home / "AppData" / "Roaming" / "Signal" / "config.json")
    chats = resolve(find_profile("chat-apps"), "windows", {"USERPROFILE": str(home)})
    assert chats.sources == [str(home / "AppData" / "Roaming" / "Signal")]


def _refusing(monkeypatch: pytest.MonkeyPatch, lookups: set[str] = frozenset(),
              listings: set[str] = frozenset()) -> None:
    """Make stat of *lookups* (behind a folder that may not be searched) and listing of
    *listings* (a folder that may not be read) fail as they do for an unprivileged user: root
    passes any permission bits, so the tests that run as root need the failure injected."""
    for name, refused in (("lstat", lookups), ("stat", lookups), ("scandir", listings),
                          ("open", listings)):  # folders are listed through a descriptor
        real = getattr(os, name)

        def call(path, *args, _real=real, _refused=refused, **kwargs):
            if isinstance(path, (str, bytes, os.PathLike)) and os.fsdecode(path) in _refused:
                raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, call)


def test_refused_lookups_are_unreachable_not_missing(tmp_path: Path, monkeypatch):
    """"Not found" is the only failure that means absent: a home that may not be searched, or a
    folder that may not be listed, may hold what the profile names."""
    homes = tmp_path / "home"
    touch(homes / "alice" / ".bash_history")
    touch(homes / "bob" / ".bash_history")
    touch(tmp_path / "locked" / "secret.txt")
    touch(tmp_path / "unlistable" / "app.log")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")  # real, even as root: ELOOP
    bob, secret = str(homes / "bob" / ".bash_history"), str(tmp_path / "locked" / "secret.txt")
    checked = profile(f"""\
  - name: shells
    linux: ['{homes}/*/.bash_history', '{secret}', '{tmp_path}/unlistable/*.log',
            '{tmp_path}/loop/x', '{tmp_path}/gone']
""")
    _refusing(monkeypatch, lookups={bob, secret}, listings={str(tmp_path / "unlistable")})
    found = resolve(checked, "linux", {"HOME": str(tmp_path)})
    monkeypatch.undo()
    assert found.sources == [str(homes / "alice" / ".bash_history")]
    assert [(u.pattern, u.path, u.problem) for u in found.unreachable] == [
        (f"{homes}/*/.bash_history", bob, f"could not reach {bob}: Permission denied"),
        (secret, secret, f"could not reach {secret}: Permission denied"),
        (f"{tmp_path}/unlistable/*.log", str(tmp_path / "unlistable"),
         f"could not list the folder {tmp_path / 'unlistable'}: Permission denied"),
        (f"{tmp_path}/loop/x", str(tmp_path / "loop" / "x"),
         f"could not reach {tmp_path / 'loop' / 'x'}: Too many levels of symbolic links")]
    assert [(m.path, m.reason) for m in found.missing] == [(str(tmp_path / "gone"), "not found")]


def test_a_refusal_inside_a_source_is_left_to_the_capture(tmp_path: Path, monkeypatch):
    """The walk of the source meets the same folder and records it there: not twice."""
    touch(tmp_path / "data" / "locked" / "a.log")
    checked = profile(f"  - name: t\n    linux: ['{tmp_path}/data/locked/*.log', "
                      f"'{tmp_path}/data']\n")
    _refusing(monkeypatch, listings={str(tmp_path / "data" / "locked")})
    found = resolve(checked, "linux", {"HOME": str(tmp_path)})
    monkeypatch.undo()
    assert found.sources == [str(tmp_path / "data")] and found.unreachable == []


def test_patterns_keep_the_access_times_of_the_folders_they_look_in(tmp_path: Path):
    home = tmp_path / "home"
    touch(home / "Documents" / "2026" / "statement.pdf")
    touch(home / "Documents" / "letter.pdf")
    folders = [home, home / "Documents", home / "Documents" / "2026"]
    stale = stale_atimes(*folders)
    found = resolve(profile(f"  - name: t\n    linux: ['{home}/*/**/*.pdf']\n"), "linux",
                    {"HOME": str(home)})
    assert sorted(found.sources) == [str(home / "Documents" / "2026" / "statement.pdf"),
                                     str(home / "Documents" / "letter.pdf")]
    assert atimes(*folders) == stale


def test_links_not_followed_below_a_wildcard_are_reported(tmp_path: Path):
    touch(tmp_path / "home" / "alice" / ".local" / "share" / "history")
    touch(tmp_path / "elsewhere" / ".local" / "share" / "history")
    (tmp_path / "home" / "bob").symlink_to(tmp_path / "elsewhere")  # a home that is a link
    (tmp_path / "home" / "eve").mkdir()
    (tmp_path / "home" / "eve" / ".local").symlink_to(tmp_path / "elsewhere" / ".local")
    found = resolve(profile(f"  - name: t\n    linux: ['{tmp_path}/home/*/.local/share/history']\n"),
                    "linux", {"HOME": str(tmp_path)})
    assert found.sources == [str(tmp_path / "home" / "alice" / ".local" / "share" / "history")]
    assert [(m.path, m.reason) for m in found.missing] == [
        (str(tmp_path / "home" / "bob"), LINK_NOT_FOLLOWED),
        (str(tmp_path / "home" / "eve" / ".local"), LINK_NOT_FOLLOWED)]


def test_glob_characters_in_a_variable_are_literal_and_its_links_followed(tmp_path: Path):
    """A home named "h[x]" (escaped when expanded) is a named folder, not a wildcard match."""
    touch(tmp_path / "real" / "log" / "a.log")
    (tmp_path / "h[x]").symlink_to(tmp_path / "real")
    found = resolve(profile("  - name: t\n    linux: ['{home}/log/*.log', '{home}/log']\n"),
                    "linux", {"HOME": str(tmp_path / "h[x]")})
    assert found.sources == [str(tmp_path / "h[x]" / "log")]
    assert [f.path for f in found.found] == [str(tmp_path / "h[x]" / "log" / "a.log"),
                                             str(tmp_path / "h[x]" / "log")]


def test_dot_dot_is_taken_by_name_as_capture_takes_it(tmp_path: Path):
    """`{home}/Documents/../l*` with Documents a link elsewhere: matched through the link, it
    would find names next to the link's target, which capture (taking ".." by name, as
    os.path.abspath does) could not reach: "source not found", and the capture stopped."""
    touch(tmp_path / "home" / "log-here.txt")
    touch(tmp_path / "disk" / "log-there.txt")
    (tmp_path / "disk" / "docs").mkdir()
    (tmp_path / "home" / "Documents").symlink_to(tmp_path / "disk" / "docs")
    found = resolve(profile("  - name: t\n    linux: ['{home}/Documents/../l*', "
                            "'{home}/./Documents/../log-here.txt']\n"),
                    "linux", {"HOME": str(tmp_path / "home")})
    assert found.sources == [str(tmp_path / "home" / "log-here.txt")]
    assert all(os.path.lexists(path) for path in found.sources)


def test_another_users_link_among_the_named_folders_is_not_followed(tmp_path: Path, plant):
    """A literal pattern names /var/log/journal/system.log; someone of the group that may write
    /var/log replaced journal with a link to /etc: the pattern must not find /etc/system.log."""
    touch(tmp_path / "etc" / "system.log", b"root:secret")
    (tmp_path / "log").mkdir()
    plant(tmp_path / "log" / "journal", tmp_path / "etc")
    found = resolve(profile(f"  - name: t\n    linux: ['{tmp_path}/log/journal/system.log', "
                            f"'{tmp_path}/log/journal/*.log']\n"), "linux", {"HOME": str(tmp_path)})
    assert found.sources == []
    reasons = {(m.path, m.reason) for m in found.missing}
    assert reasons == {(str(tmp_path / "log" / "journal"),
                        LINK_NOT_TRUSTED.format(uid=os.lstat(tmp_path / "log" / "journal").st_uid))}


def test_another_users_link_the_pattern_names_in_full_is_found_as_the_link(tmp_path: Path,
                                                                            plant):
    touch(tmp_path / "secret", b"root:secret")
    (tmp_path / "log").mkdir()
    link = plant(tmp_path / "log" / "pacman.log", tmp_path / "secret")
    found = resolve(profile(f"  - name: t\n    linux: ['{link}']\n"), "linux",
                    {"HOME": str(tmp_path)})
    assert found.sources == [str(link)]
    assert found.followed(str(link)) != str(link)
    note = found.link_note(str(link))
    assert note is not None and not note.followed and "made by another user" in note.reason


def test_a_pattern_normalized_to_no_wildcard_is_taken_literally(tmp_path: Path):
    """`{home}/*/..` is {home} once ".." is taken by name: no wildcard is left to expand."""
    (tmp_path / "home" / "Documents").mkdir(parents=True)
    found = resolve(profile("  - name: t\n    linux: ['{home}/*/..', '{home}/[*]/..']\n"),
                    "linux", {"HOME": str(tmp_path / "home")})
    assert found.sources == [str(tmp_path / "home")]


def test_files_directly_in_a_named_folder_that_is_a_link_are_found_after_double_star(
        tmp_path: Path):
    """`{home}/Documents/**/*.pdf` with Documents moved and linked back: "**" matches no folder
    too, so the PDFs in Documents itself count."""
    touch(tmp_path / "disk" / "docs" / "top.pdf")
    touch(tmp_path / "disk" / "docs" / "2026" / "deep.pdf")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "Documents").symlink_to(tmp_path / "disk" / "docs")
    found = resolve(profile("  - name: t\n    linux: ['{home}/Documents/**/*.pdf']\n"),
                    "linux", {"HOME": str(tmp_path / "home")})
    docs = tmp_path / "home" / "Documents"
    assert sorted(found.sources) == [str(docs / "2026" / "deep.pdf"), str(docs / "top.pdf")]
    assert found.missing == []


def test_a_named_folder_that_is_another_users_link_is_reported_not_absent(tmp_path: Path,
                                                                          plant):
    touch(tmp_path / "disk" / "docs" / "top.pdf")
    (tmp_path / "home").mkdir()
    docs = plant(tmp_path / "home" / "Documents", tmp_path / "disk" / "docs")
    found = resolve(profile("  - name: t\n    linux: ['{home}/Documents/**/*.pdf']\n"),
                    "linux", {"HOME": str(tmp_path / "home")})
    assert found.sources == []
    assert [(m.path, m.reason) for m in found.missing] == [
        (str(docs), LINK_NOT_TRUSTED.format(uid=os.lstat(docs).st_uid))]


def test_a_link_followed_as_its_own_source_is_kept_inside_another(tmp_path: Path):
    """`{home}/Pictures/**` records Screenshots (a link) as the link; the pattern naming
    Screenshots follows it, so it is a source of its own, not one "already inside Pictures"."""
    pictures = tmp_path / "home" / "Pictures"
    touch(pictures / "cat.jpg")
    touch(tmp_path / "disk" / "shots" / "shot.png")
    (pictures / "Screenshots").symlink_to(tmp_path / "disk" / "shots")
    touch(pictures / "Albums" / "dog.jpg")
    found = resolve(profile("  - name: t\n    linux: ['{home}/Pictures/**', "
                            "'{home}/Pictures/Screenshots', '{home}/Pictures/Albums']\n"),
                    "linux", {"HOME": str(tmp_path / "home")})
    assert found.sources == [str(pictures), str(pictures / "Screenshots")]


def test_a_home_that_is_the_root_finds_its_named_files(tmp_path: Path):
    """HOME=/ makes `{home}/etc/x` the POSIX "//etc/x", which normpath keeps: one root here."""
    found = resolve(profile(f"  - name: t\n    linux: ['{{home}}{tmp_path}', "
                            f"'{{home}}{tmp_path}/*/..']\n"), "linux", {"HOME": "/"})
    assert found.sources == [str(tmp_path)] and found.missing == []


def test_a_path_inside_a_link_recorded_as_the_link_is_a_source_of_its_own(tmp_path: Path):
    """`{home}/Pictures/*` records Screenshots (a link) as the link; a PNG that
    `{home}/Pictures/Screenshots/*.png` found through it is not "inside" that source."""
    pictures = tmp_path / "home" / "Pictures"
    pictures.mkdir(parents=True)
    touch(tmp_path / "disk" / "a.png")
    (pictures / "Screenshots").symlink_to(tmp_path / "disk")
    found = resolve(profile("  - name: t\n    linux: ['{home}/Pictures/*', "
                            "'{home}/Pictures/Screenshots/*.png']\n"),
                    "linux", {"HOME": str(tmp_path / "home")})
    assert found.sources == [str(pictures / "Screenshots"),
                             str(pictures / "Screenshots" / "a.png")]


def test_a_link_through_another_users_link_says_so(tmp_path: Path, plant):
    """Root's own link into a folder reached through a stranger's link: not followed, and the
    reason names the stranger's link, not the wildcard."""
    touch(tmp_path / "etc" / "shadow", b"root:hash")
    (tmp_path / "spool").mkdir()
    plant(tmp_path / "spool" / "user", tmp_path / "etc")
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "app.log").symlink_to(tmp_path / "spool" / "user" / "shadow")
    found = resolve(profile(f"  - name: t\n    linux: ['{tmp_path}/log/app.log']\n"), "linux",
                    {"HOME": str(tmp_path)})
    note = found.link_note(str(tmp_path / "log" / "app.log"))
    assert note is not None and not note.followed
    assert note.reason == LINK_THROUGH_STRANGER + ": recorded as the link, not followed"
