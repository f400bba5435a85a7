"""Only trusted keys speak for someone (issue 19.4), custody entries that say what they mean
(issue 20.9), and nothing written that cannot be read back (issue 19.7): through the real CLI,
with real keys generated here."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pypdf import PdfReader

from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey, load_signing_key
from tests.support.cli import Run, run_cli


@dataclass
class Case:
    bundle: Path
    folder: Path
    victim: Path  # "Jane Doe"'s private key (its .pub next to it)
    stranger: Path  # someone else who got hold of the file
    identity: Path
    victim_fingerprint: str
    stranger_fingerprint: str

    def copy(self, tmp_path: Path, name: str = "copy.evidence") -> Path:
        target = tmp_path / name
        shutil.copy(self.bundle, target)
        return target


def _key(folder: Path, name: str, comment: str) -> tuple[Path, str]:
    key = SigningKey.generate(comment)
    key.save(folder / name)
    return folder / name, key.public.fingerprint


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    folder = tmp_path_factory.mktemp("trust")
    victim, victim_fp = _key(folder, "victim", "Jane Doe")
    stranger, stranger_fp = _key(folder, "stranger", "Mallory")
    identity = age.X25519Identity.generate()
    (folder / "identity.txt").write_text(f"{identity}\n")
    (folder / "recipient.txt").write_text(f"{identity.recipient()}\n")
    evidence = folder / "evidence"
    evidence.mkdir()
    (evidence / "statement.csv").write_text("2026-11-15;-450.00;EUR\n")
    bundle = folder / "case.evidence"
    made = run_cli("capture", evidence, "--case", "FRAUD-1", "--loss",
                   "450.00 EUR; 2026-11-15; Example Bank", "-r", str(identity.recipient()),
                   "--sign-key", victim, "-o", bundle, "--json",
                   env={"XDG_CONFIG_HOME": str(folder / "config")})
    assert made.code == 0, made.stderr
    return Case(bundle, folder, victim, stranger, folder / "identity.txt", victim_fp,
                stranger_fp)


@pytest.fixture
def config(tmp_path: Path) -> dict[str, str]:
    """An empty configuration folder: no personal key, no settings."""
    (tmp_path / "config").mkdir()
    return {"XDG_CONFIG_HOME": str(tmp_path / "config")}


def cli(config: dict[str, str], *args: object) -> Run:
    # wide enough that no table cell wraps: the text tests read whole phrases
    return run_cli(*args, env={**config, "COLUMNS": "400"})


def ok(result: Run) -> Run:
    assert result.code == 0, result.stderr
    return result


def strangers_loss(config: dict[str, str], case: Case, bundle: Path) -> None:
    """What anyone holding the file can do: a loss note in the victim's name, with their key."""
    ok(cli(config, "note", bundle, "--kind", "loss", "--amount", "9000", "--currency", "EUR",
           "--actor", "Jane Doe", "--sign-key", case.stranger, "--yes"))


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self._style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._style = False

    def handle_data(self, data: str) -> None:
        if not self._style:
            self.text.append(data)

    @property
    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())


def html_text(path: Path) -> str:
    page = Page()
    page.feed(path.read_text("utf-8"))
    return page.plain


def pdf_text(path: Path) -> str:
    return " ".join(" ".join(page.extract_text() or "" for page in PdfReader(path).pages)
                    .split())


# --------------------------------------------------------------------------- 19.4: trust
def test_a_strangers_loss_in_the_victims_name_is_not_counted_and_verify_says_so(
        tmp_path: Path, case: Case, config: dict[str, str]) -> None:
    bundle = case.copy(tmp_path)
    strangers_loss(config, case, bundle)
    victim_pub = f"{case.victim}.pub"

    checked = cli(config, "verify", bundle, "--trusted-key", victim_pub, "--json")
    assert checked.code == 6, checked.stderr  # intact, but not everyone is trusted
    document = checked.json()
    assert document["ok"] is False and document["exit_code"] == 6
    assert document["untrusted_entries"] == ["custody/000002.json"]
    assert document["trusted_keys"] == [case.victim_fingerprint]
    standing = {s["fingerprint"]: s for s in document["signers"]}
    assert standing[case.stranger_fingerprint]["standing"] == "untrusted"
    assert standing[case.stranger_fingerprint]["names"] == ["Jane Doe"]  # a claim, kept as one
    assert standing[case.victim_fingerprint]["standing"] == "trusted"
    warning, = [f for f in document["findings"] if f["severity"] == "warning"]
    assert warning["where"] == "custody/000002.json"
    assert case.stranger_fingerprint in warning["problem"]
    text = cli(config, "verify", bundle, "--trusted-key", victim_pub)
    assert text.code == 6
    assert "NOT ALL SIGNERS ARE TRUSTED" in text.stdout
    assert "NOT TRUSTED (claims “Jane Doe”)" in text.stdout
    assert "Jane Doe (trusted key)" in text.stdout

    # The stranger's key listed too: everyone is trusted, exit 0.
    assert ok(cli(config, "verify", bundle, "--trusted-key", victim_pub, "--trusted-key",
                  f"{case.stranger}.pub", "--json")).json()["untrusted_entries"] == []
    # Without --trusted-key nothing was asked: exit 0, names shown as claims.
    plain = ok(cli(config, "verify", bundle))
    assert "“Jane Doe” (claimed)" in plain.stdout and "“Jane Doe” (sealer)" in plain.stdout
    assert "Names in quotes are what each signer claims" in " ".join(plain.stdout.split())

    # The report: the stranger's 9000 is shown, by key, but not in "Money lost".
    for kind in ("html", "pdf"):
        output = tmp_path / f"report.{kind}"
        made = cli(config, "report", bundle, "-i", case.identity, "--trusted-key", victim_pub,
                   "-o", output, "--json")
        assert made.code == 6, made.stderr
        assert made.json()["totals"] == {"EUR": "450.00"} and made.json()["not_counted"] == 1
        shown = html_text(output) if kind == "html" else pdf_text(output)
        assert "9450" not in shown
        assert "UNTRUSTED SIGNER" in shown
        assert "Money lost 450.00 EUR (not counted: 1 more loss" in shown
        assert "9000 (not counted)" in shown
    # Without --trusted-key, the stranger is not the sealer: not counted either.
    output = tmp_path / "plain.html"
    made = cli(config, "report", bundle, "-i", case.identity, "-o", output, "--json")
    assert made.code == 0, made.stderr
    assert made.json()["totals"] == {"EUR": "450.00"}
    shown = html_text(output)
    assert case.stranger_fingerprint in shown and "not the sealer's" in shown


def test_the_victims_own_notes_still_count(tmp_path: Path, case: Case,
                                           config: dict[str, str]) -> None:
    bundle = case.copy(tmp_path)
    ok(cli(config, "note", bundle, "--kind", "loss", "--amount", "50", "--currency", "EUR",
           "--sign-key", case.victim, "--yes"))
    made = cli(config, "report", bundle, "-i", case.identity, "--trusted-key",
               f"{case.victim}.pub", "-o", tmp_path / "r.html", "--json")
    assert made.code == 0, made.stderr
    assert made.json()["totals"] == {"EUR": "500.00"} and made.json()["not_counted"] == 0
    assert made.json()["untrusted_entries"] == []


def test_a_strangers_custody_event_and_private_addition_are_said_too(
        tmp_path: Path, case: Case, config: dict[str, str]) -> None:
    """--trusted-key weighs every signed entry: custody events of any action, and the
    encrypted additions (addenda) a reseal puts into the payload."""
    bundle = case.copy(tmp_path)
    ok(cli(config, "custody", "add", bundle, "--action", "transferred", "--to", "Det. Smith",
           "--actor", "Jane Doe", "--sign-key", case.stranger))
    shown = cli(config, "custody", "show", bundle, "--trusted-key", f"{case.victim}.pub",
                "--json")
    assert shown.code == 6 and shown.json()["untrusted_entries"] == ["custody/000002.json"]
    assert "not every signer is trusted" in cli(config, "custody", "show", bundle,
                                                "--trusted-key", f"{case.victim}.pub").stdout

    private = tmp_path / "private.evidence"
    ok(cli(config, "note", bundle, "--private", "-i", case.identity, "-R",
           case.folder / "recipient.txt", "--kind", "loss", "--amount", "777", "--currency",
           "EUR", "--actor", "Jane Doe", "--sign-key", case.stranger, "-o", private))
    checked = cli(config, "verify", private, "-i", case.identity, "--trusted-key",
                  f"{case.victim}.pub", "--json")
    assert checked.code == 6, checked.stderr
    assert checked.json()["untrusted_entries"] == ["custody/000002.json", "custody/000003.json",
                                           "addenda/000003.json"]
    assert any(f["where"] == "addenda/000003.json" and f["severity"] == "warning"
               for f in checked.json()["findings"])
    made = cli(config, "report", private, "-i", case.identity, "--trusted-key",
               f"{case.victim}.pub", "-o", tmp_path / "r.html", "--json")
    assert made.code == 6 and made.json()["totals"] == {"EUR": "450.00"}
    # extract keeps the (verified) evidence, and says not everyone is trusted
    opened = cli(config, "extract", private, "-i", case.identity, "--trusted-key",
                 f"{case.victim}.pub", "-o", tmp_path / "opened", "--json")
    assert opened.code == 6 and (tmp_path / "opened").is_dir()


def test_the_actor_is_the_signing_keys_name_not_the_user(tmp_path: Path, case: Case,
                                                          config: dict[str, str]) -> None:
    bundle = case.copy(tmp_path)
    added = ok(cli(config, "custody", "add", bundle, "--action", "received", "--from", "Bob",
                   "--sign-key", case.victim, "--json"))
    assert added.json()["event"]["actor"] == "Jane Doe"
    # capture without --examiner: the first event and the manifest name the key's owner too
    shown = ok(cli(config, "custody", "show", case.bundle, "--json"))
    assert shown.json()["custody"][0]["actor"] == "Jane Doe"
    # --actor still wins
    named = ok(cli(config, "custody", "add", bundle, "--action", "verified", "--actor",
                   "Det. A. Smith", "--sign-key", case.victim, "--json"))
    assert named.json()["event"]["actor"] == "Det. A. Smith"


# ------------------------------------------------------------------ 20.9: custody entries
def test_custody_add_never_mints_a_key(tmp_path: Path, case: Case, config: dict[str, str]
                                       ) -> None:
    bundle = case.copy(tmp_path)
    before = bundle.read_bytes()
    refused = cli(config, "custody", "add", bundle, "--action", "verified", "--json")
    assert refused.code == 2, refused.stderr
    assert refused.json()["error"]["kind"] == "KeyFileError"
    assert "no personal signing key" in refused.json()["error"]["message"]
    assert "--sign-key" in refused.json()["error"]["hint"]
    assert not list(Path(config["XDG_CONFIG_HOME"]).rglob("*"))  # nothing created
    assert bundle.read_bytes() == before
    for command in (["note", bundle, "--text", "x", "--yes"],
                    ["verify", bundle, "--record"]):
        assert cli(config, *command).code == 2
    assert not list(Path(config["XDG_CONFIG_HOME"]).rglob("*"))
    # an existing personal key is used
    personal = Path(config["XDG_CONFIG_HOME"]) / "evidencekit" / "id_ed25519"
    ok(cli(config, "key", "generate", "-o", personal, "--comment", "Det. Key"))
    used = ok(cli(config, "custody", "add", bundle, "--action", "verified", "--json"))
    assert used.json()["event"]["actor"] == "Det. Key"
    assert used.json()["event"]["fingerprint"] == \
        load_signing_key(personal, None).public.fingerprint


@pytest.mark.parametrize(("args", "says"), [
    (["--action", "transferred"], "--action transferred needs --to"),
    (["--action", "transferred", "--to", " "], "Invalid value for '--to': it is empty"),
    (["--action", "transferred", "--from", "Bob"], "--from cannot be used with --action "
                                                   "transferred"),
    (["--action", "received"], "--action received needs --from"),
    (["--action", "received", "--to", "Bob"], "--to cannot be used with --action received"),
    (["--action", "verified", "--to", "Bob"], "--to cannot be used with --action verified"),
    (["--action", "note", "--from", "Bob"], "--from cannot be used with --action note"),
])
def test_custody_add_refuses_a_counterparty_that_says_the_wrong_thing(
        tmp_path: Path, case: Case, config: dict[str, str], args: list[str], says: str) -> None:
    bundle = case.copy(tmp_path)
    before = bundle.read_bytes()
    refused = cli(config, "custody", "add", bundle, *args, "--sign-key", case.victim)
    assert refused.code == 2 and says in refused.stderr, refused.stderr
    assert bundle.read_bytes() == before


def test_received_from_is_shown_as_from_and_transferred_to_as_to(
        tmp_path: Path, case: Case, config: dict[str, str]) -> None:
    bundle = case.copy(tmp_path)
    ok(cli(config, "custody", "add", bundle, "--action", "received", "--from", "Bob",
           "--sign-key", case.victim))
    ok(cli(config, "custody", "add", bundle, "--action", "transferred", "--to", "Alice",
           "--sign-key", case.victim))
    shown = ok(cli(config, "custody", "show", bundle, "--json")).json()["custody"]
    assert [e["counterparty"] for e in shown[1:]] == ["Bob", "Alice"]  # FORMAT.md §6 unchanged
    text = ok(cli(config, "custody", "show", bundle)).stdout
    assert "from Bob" in text and "to Alice" in text
    output = tmp_path / "r.html"
    ok(cli(config, "report", bundle, "-i", case.identity, "-o", output))
    assert "from Bob" in html_text(output) and "to Alice" in html_text(output)


# ------------------------------------------------------------- 19.7: readable back, always
CONTROLS = "\x01" * 120_000  # 120 KB typed, 720 KB once JSON-escaped


@pytest.mark.parametrize(("option", "value", "says"), [
    ("--description", CONTROLS, "--description is 120,000 characters long; at most 100,000"),
    ("--examiner", CONTROLS, "--examiner is 120,000 characters long; at most 1,000"),
    ("--examiner", "Jane\x1b[2J", "--examiner holds a control character (U+001B)"),
    ("--description", "a\x85b", "--description holds a control character (U+0085)"),
    ("--organisation", "x" * 1001, "--organisation is 1,001 characters long; at most 1,000"),
    ("--legal-basis", "\r\n", "--legal-basis holds a control character (U+000D)"),
])
def test_capture_refuses_text_a_reader_could_not_read_back_before_reading_anything(
        tmp_path: Path, case: Case, config: dict[str, str], option: str, value: str,
        says: str) -> None:
    # The source does not exist: the text is refused before any source is even looked at.
    output = tmp_path / "new.evidence"
    refused = cli(config, "capture", tmp_path / "not-there", option, value, "-r",
                  str(age.X25519Identity.generate().recipient()), "--sign-key", case.victim,
                  "-o", output, "--json")
    assert refused.code == 2, refused.stderr
    assert says in refused.json()["error"]["message"]
    assert not output.exists() and not list(tmp_path.glob(".new.evidence*"))


def test_free_text_may_hold_line_breaks_and_tabs(tmp_path: Path, case: Case,
                                                 config: dict[str, str]) -> None:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "a.txt").write_text("a")
    output = tmp_path / "new.evidence"
    ok(cli(config, "capture", evidence, "--description", "line 1\n\tline 2", "-r",
           str(age.X25519Identity.generate().recipient()), "--sign-key", case.victim,
           "-o", output))
    note = "€" * 40_000  # three bytes a character (120 KB: about the most one argument holds)
    ok(cli(config, "custody", "add", output, "--action", "note", "--note", note,
           "--sign-key", case.victim))
    shown = ok(cli(config, "custody", "show", output, "--json")).json()["custody"]
    assert shown[0]["note"] == "line 1\n\tline 2" and shown[1]["note"] == note


@pytest.mark.parametrize(("args", "says"), [
    (["--action", "note", "--note", CONTROLS], "--note is 120,000 characters long"),
    (["--action", "note", "--note", "a\x02b"], "--note holds a control character (U+0002)"),
    (["--action", "transferred", "--to", CONTROLS], "--to is 120,000 characters long"),
    (["--action", "transferred", "--to", "Bob\nAlice"], "--to holds a control character"),
    (["--action", "received", "--from", "\x9bBob"], "--from holds a control character (U+009B)"),
    (["--action", "verified", "--actor", "A\tB"], "--actor holds a control character (U+0009)"),
])
def test_custody_add_refuses_text_a_reader_could_not_read_back(
        tmp_path: Path, case: Case, config: dict[str, str], args: list[str], says: str
        ) -> None:
    bundle = case.copy(tmp_path)
    before = bundle.read_bytes()
    refused = cli(config, "custody", "add", bundle, *args, "--sign-key", case.victim, "--json")
    assert refused.code == 2, refused.stderr
    assert says in refused.json()["error"]["message"]
    assert bundle.read_bytes() == before
    assert ok(cli(config, "verify", bundle)).code == 0


def test_a_signing_keys_name_that_is_too_long_is_refused_naming_actor(
        tmp_path: Path, case: Case, config: dict[str, str]) -> None:
    key, _ = _key(tmp_path, "long", "x" * 2000)
    bundle = case.copy(tmp_path)
    refused = cli(config, "custody", "add", bundle, "--action", "verified", "--sign-key", key)
    assert refused.code == 2 and "signing key's name" in refused.stderr
    assert "--actor" in refused.stderr
    ok(cli(config, "custody", "add", bundle, "--action", "verified", "--sign-key", key,
           "--actor", "Det. Long"))
    # capture names its examiner with --examiner: the hint must say that option (it said
    # --actor, which capture does not have; found by an independent review)
    (tmp_path / "evidence.txt").write_text("e")
    refused = cli(config, "capture", tmp_path / "evidence.txt", "--sign-key", key, "-r",
                  str(age.X25519Identity.generate().recipient()), "-o", tmp_path / "n.evidence")
    assert refused.code == 2 and "signing key's name" in refused.stderr
    assert "give your name with --examiner" in refused.stderr, refused.stderr
    # key generate makes no such name in the first place
    refused = cli(config, "key", "generate", "-o", tmp_path / "new", "--comment", "x" * 1001)
    assert refused.code == 2 and "--comment is 1,001 characters long" in refused.stderr
    assert not list(tmp_path.glob("new*"))


def test_bundles_from_older_writers_with_control_characters_still_verify(
        tmp_path: Path, case: Case) -> None:
    """Readers stay lenient: the rules are the writers'. An event with a control character in
    its note (as evidencekit 0.1 could write) still verifies."""
    from evidencekit import fs
    from evidencekit.custody.events import EventRequest, append_event_members, build_event
    from evidencekit.verify import verify

    bundle = case.copy(tmp_path)
    key = SigningKey.generate("Old Writer")
    report = verify(bundle)
    event = build_event(report, EventRequest("note", "Old Writer", key, "fine"))
    old = dataclasses.replace(event, note="bell\x07 and escape\x1b[2J", actor_name="Old\x01")
    with fs.locked(bundle, None) as fd:  # as evidencekit.custody.events.append_event does
        append_event_members(bundle, fd, old, key)
    checked = run_cli("verify", bundle, "--json")
    assert checked.code == 0, checked.stderr
    assert checked.json()["custody"][1]["note"] == "bell\x07 and escape\x1b[2J"
    text = run_cli("custody", "show", bundle, env={"COLUMNS": "400"})
    assert "\x1b" not in text.stdout
    assert "escape[U+001B]" in text.stdout and "“Old[U+0001]” (claimed)" in text.stdout


def test_the_longest_texts_allowed_make_an_event_readers_accept() -> None:
    """Every limit at once, in the widest characters (four bytes in UTF-8), and the JSON
    escapes of the characters still allowed: the event stays far below the readers' 1 MiB."""
    from evidencekit.canonical import loads
    from evidencekit.custody.events import EventRequest
    from evidencekit.format.documents import CustodyEvent, Signer
    from evidencekit.format.reader import SMALL_MEMBER_LIMIT
    from evidencekit.publictext import LINE_LIMIT, TEXT_LIMIT

    key = SigningKey.generate("k")
    wide = "\U0001d11e"
    request = EventRequest("transferred", wide * LINE_LIMIT, key, wide * TEXT_LIMIT,
                           wide * LINE_LIMIT)
    event = CustodyEvent(case_id="C" * LINE_LIMIT, sequence=2, action="transferred",
                         time="2026-11-16T13:05:07.123456789Z", clock_source="ntp",
                         actor_name=request.actor_name,
                         actor=Signer("ssh-ed25519 AAAA", "SHA256:x"), host="h" * 255,
                         note=request.note, payload_sha256="0" * 64, previous_sha256="0" * 64,
                         counterparty=request.counterparty)
    data = event.to_json()
    assert len(data) < SMALL_MEMBER_LIMIT // 2
    escaped = EventRequest("note", "n", key, "\n\t\"\\" * (TEXT_LIMIT // 4))
    assert len(escaped.note) == TEXT_LIMIT
    assert loads(dataclasses.replace(event, note=escaped.note).to_json(), "x")


def test_no_event_larger_than_a_reader_accepts_is_written() -> None:
    from evidencekit.errors import UsageError
    from evidencekit.format.reader import SMALL_MEMBER_LIMIT
    from evidencekit.publictext import check_readable

    check_readable(b"x" * SMALL_MEMBER_LIMIT, "custody/000002.json")
    with pytest.raises(UsageError, match="more than the 1,048,576 a reader accepts"):
        check_readable(b"x" * (SMALL_MEMBER_LIMIT + 1), "custody/000002.json")


def test_json_of_the_new_fields_is_stable(tmp_path: Path, case: Case,
                                          config: dict[str, str]) -> None:
    """The fields added for trust are there with and without --trusted-key (schemas)."""
    plain = ok(cli(config, "verify", case.bundle, "--json")).json()
    assert plain["trusted_keys"] is None and plain["untrusted_entries"] == []
    assert [s["standing"] for s in plain["signers"]] == ["sealer"]
    assert plain["signers"][0]["sealer"] is True and plain["signers"][0]["events"] == [1]
    assert plain["signers"][0]["names"] == ["Jane Doe"] and plain["ok"] is True
