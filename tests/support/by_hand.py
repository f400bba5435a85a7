"""docs/FORMAT.md §7.2 run by hand in tests: the documented procedure run with dash and a PATH of
standard tools only (:func:`by_hand`), its verdicts, and forgeries made with evidencekit's own
writers."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evidencekit.clock import parse_rfc3339, rfc3339
from evidencekit.crypto import age, sshsig
from evidencekit.crypto.keys import SigningKey
from evidencekit.format.documents import CustodyEvent, Signer, custody_member
from tests.support import terminal
from tests.support.bundles import Member, contents, rebuild
from tests.support.tools import require_tool

ROOT = Path(__file__).parents[2]


CASE = "FRAUD-2026-0117"


PASSPHRASE = "correct horse battery staple"


SECOND = 10**9


# Everything the procedure may call; nothing else is on PATH when it runs.
TOOLS = ("dash", "tar", "age", "ssh-keygen", "sha256sum", "awk", "sed", "grep", "find", "sort",
         "uniq", "comm", "cut", "paste", "wc", "tr", "cmp", "diff", "mkdir", "rm", "cat", "tail",
         "basename", "expr", "printf", "mv", "zstd", "head", "df")  # mv, zstd, head, df: v4


def documented_blocks() -> list[str]:
    """The ```sh blocks of FORMAT.md §7.2, in order."""
    text = (ROOT / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    section = text.split("### 7.2", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```sh\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)
    assert len(blocks) >= 10, "FORMAT.md §7.2 lost its shell blocks"
    return blocks


def documented_procedure() -> str:
    return "\n".join(documented_blocks())


def toolbox_in(folder: Path) -> Path:
    """A folder of links to the allowed tools only: the procedure's whole PATH."""
    folder.mkdir(exist_ok=True)
    for tool in TOOLS:
        os.symlink(require_tool(tool), folder / tool)
    os.symlink(require_tool("dash"), folder / "sh")
    return folder


@dataclass
class Outcome:
    code: int
    output: str

    @property
    def verdict(self) -> str:
        return self.output.rsplit("== Verdict", 1)[-1]


def by_hand(toolbox: Path, bundle: Path, *options: str | Path, answer: str | None = None
            ) -> Outcome:
    """Run the procedure taken from FORMAT.md on *bundle*, in a fresh folder. With *answer*, on
    a terminal (age asks for a passphrase there) and answering age's prompt with it."""
    script = bundle.parent / "by-hand.sh"
    script.write_text(documented_procedure(), encoding="utf-8")
    work = bundle.parent / f"{bundle.name}.checked"
    shutil.rmtree(work, ignore_errors=True)
    argv = [str(toolbox / "dash"), str(script), *map(str, options), str(bundle)]
    env = {"PATH": str(toolbox), "HOME": str(bundle.parent), "LC_ALL": "C"}
    if answer is None:
        result = subprocess.run(argv, cwd=bundle.parent, env=env, capture_output=True,
                                timeout=300, check=False)
        return Outcome(result.returncode, (result.stdout + result.stderr).decode(
            errors="replace"))
    return on_a_terminal(argv, bundle.parent, env, answer)


def on_a_terminal(argv: list[str], cwd: Path, env: dict[str, str], answer: str) -> Outcome:
    code, output = terminal.on_a_terminal(argv, [answer], prompt=b"Enter passphrase", cwd=cwd,
                                          env=env, timeout=300)
    return Outcome(code, output)


def passed(outcome: Outcome, *, evidence: bool = True) -> str:
    assert outcome.code == 0, outcome.output
    assert "FAILED" not in outcome.output, outcome.output
    expected = "VERIFIED BY HAND" if evidence else "PUBLIC PARTS VERIFIED BY HAND"
    assert expected in outcome.verdict, outcome.output
    return outcome.output


def failed(outcome: Outcome, *phrases: str) -> str:
    """Exit 1, the verdict says so, and names what is wrong (each phrase in a FAILED line)."""
    assert outcome.code == 1, outcome.output
    assert "VERIFICATION FAILED" in outcome.verdict, outcome.output
    lines = [line for line in outcome.output.splitlines() if "FAILED:" in line or
             line.startswith(" - ")]
    for phrase in phrases:
        assert any(phrase in line for line in lines), f"{phrase!r} not in:\n{outcome.output}"
    return outcome.output


@dataclass(frozen=True)
class Keys:
    folder: Path
    sealer: SigningKey
    officer: SigningKey
    stranger: SigningKey
    identity: age.X25519Identity

    def file(self, name: str) -> Path:
        return self.folder / name


def copy_of(bundle: Path, tmp_path: Path, name: str = "case.evidence") -> Path:
    copy = tmp_path / name
    shutil.copyfile(bundle, copy)
    return copy


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def event_of(members: list[Member], sequence: int) -> CustodyEvent:
    data = dict((n, d) for n, d, _ in members)[custody_member(sequence)]
    return CustodyEvent.from_json(data, custody_member(sequence))


def replace_event(members: list[Member], sequence: int, event: CustodyEvent,
                  key: SigningKey) -> list[Member]:
    """Event *sequence* replaced by *event*, signed by *key* (whatever key the event names)."""
    data = event.to_json()
    stamp = parse_rfc3339(event.time) // SECOND
    replaced = {custody_member(sequence): (data, stamp),
                custody_member(sequence) + ".sig": (sshsig.sign(key, data), stamp)}
    return [(n, *replaced[n]) if n in replaced else (n, d, t) for n, d, t in members]


def signer_of(key: SigningKey) -> Signer:
    return Signer(" ".join(key.public.openssh_line().split()[:2]), key.public.fingerprint)


def forged_reseal(bundle: Path, out: Path, keys: Keys,
                  edit: Callable[[list[tuple[tarfile.TarInfo, bytes]]], None],
                  resealer: SigningKey | None = None, raw: bytes = b"") -> Path:
    """What a custodian who can decrypt could do: decrypt, change the plaintext tar (*edit* on
    its members; *raw*: hand-made members after them), re-encrypt to the same key and append a
    well-formed 'resealed' event, signed by *resealer* and chained to the log; the seal and
    everything before are untouched."""
    members = contents(bundle)
    data = {n: d for n, d, _ in members}
    plaintext = age.decrypt(data["payload.age"], [keys.identity])
    with tarfile.open(fileobj=io.BytesIO(plaintext), format=tarfile.PAX_FORMAT,
                      encoding="utf-8", errors="surrogateescape") as tar:
        items = [(m, tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
                 for m in tar.getmembers()]
    edit(items)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tar:
        for info, content in items:
            info.size = len(content) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(content) if info.isfile() else None)
        tar.fileobj.write(raw)  # type: ignore[union-attr]
        tar.offset += len(raw)
    payload = age.encrypt(buffer.getvalue(), [keys.identity.recipient()])
    events = (len(members) - 4) // 2
    last = event_of(members, events)
    key = resealer or keys.stranger
    event = dataclasses.replace(
        last, sequence=events + 1, action="resealed", actor=signer_of(key), actor_name="Mallory",
        time=rfc3339(parse_rfc3339(last.time) + 60 * SECOND), note="re-encrypted",
        counterparty="", payload_sha256=sha(payload), previous_sha256=sha(data[custody_member(events)]),
        details={"old_payload_sha256": sha(data["payload.age"]),
                 "new_payload_sha256": sha(payload), "new_payload_size": str(len(payload)),
                 "recipients": str(keys.identity.recipient())})
    event_json = event.to_json()
    stamp = parse_rfc3339(event.time) // SECOND
    rebuilt = [(n, payload if n == "payload.age" else d, t) for n, d, t in members]
    rebuilt += [(custody_member(events + 1), event_json, stamp),
                (custody_member(events + 1) + ".sig", sshsig.sign(key, event_json), stamp)]
    return rebuild(out, rebuilt)


def member_named(items: list[tuple[tarfile.TarInfo, bytes]], name: str) -> int:
    return next(i for i, (info, _) in enumerate(items) if info.name == name)


def add_folder(name: str) -> Callable[[list[tuple[tarfile.TarInfo, bytes]]], None]:
    def edit(items: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        at = member_named(items, "bag/manifest-sha256.txt")
        items.insert(at, (info, b""))
    return edit


def change_file(name: str, content: bytes) -> Callable[[list[tuple[tarfile.TarInfo, bytes]]],
                                                       None]:
    def edit(items: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        at = member_named(items, name)
        items[at] = (items[at][0], content)
    return edit


def hard_link(name: str, target: str) -> Callable[[list[tuple[tarfile.TarInfo, bytes]]], None]:
    def edit(items: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        at = member_named(items, name)
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.LNKTYPE, target
        items[at] = (info, b"")
    return edit
