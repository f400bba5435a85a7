"""A compromised host's stand-in for ``evidencekit serve-capture`` (tests/remote): run there as
``python -m tests.support.hostile_sender MODE serve-capture ARGS…``. It captures what it was
asked with the real library, then sends back, framed as the real one does
(evidencekit.remote.protocol), a bundle changed as MODE says; or it sends as a STREAMS mode says
(a capture that stops moving, one that never ends)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from evidencekit.capture import CaptureRequest, CaseInfo, capture
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.custody.events import EventRequest, append_event
from evidencekit.format.outer import END_OF_ARCHIVE, OuterWriter
from evidencekit.remote.protocol import FramedWriter


def _asked(args: list[str]) -> tuple[CaseInfo, list[age.Recipient], list[str], str]:
    case, examiner, request, recipients, paths = "", "", "", [], []
    at = args.index("--")
    options, paths = args[:at], args[at + 1:]
    for i, word in enumerate(options):
        if word == "--case":
            case = options[i + 1]
        elif word == "--examiner":
            examiner = options[i + 1]
        elif word == "--request":
            request = options[i + 1]
        elif word == "-r":
            recipients.append(age.parse_recipient(options[i + 1]))
    return CaseInfo(case, examiner), recipients, paths, request


class _FileWithRequest:
    """capture's ``stream_to``: a file here, whose capture event carries the request as the
    real remote evidencekit's does (the bundle is then changed as a MODE says)."""

    location = "(a file here)"
    queue_blocks = 8

    def __init__(self, path: Path, request: str) -> None:
        self._path, self._request = path, request

    def check(self) -> None:
        pass

    def public_details(self) -> dict[str, str]:
        return {"destination": "ssh-stream", "request": self._request}

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        with self._path.open("w+b") as out:
            yield out


def _bundle(folder: Path, args: list[str]) -> Path:
    case, recipients, paths, request = _asked(args)
    out = folder / "made-here.evidence"
    capture(CaptureRequest([os.fsencode(p) for p in paths], out, case, recipients,
                           SigningKey.generate("per-acquisition"), command_line=["serve-capture"],
                           stream_to=_FileWithRequest(out, request)))
    return out


def _forged_custody(bundle: Path) -> None:
    """A second event, signed by a key of the attacker's, in the investigator's name."""
    append_event(bundle, EventRequest("transferred", "The Investigator",
                                      SigningKey.generate("The Investigator"),
                                      "handed over to the investigator", "The Investigator"))


def _extra_member(bundle: Path) -> None:
    """One more member after the last, where the tar's end was."""
    data = bundle.read_bytes()
    assert data.endswith(END_OF_ARCHIVE)
    with bundle.open("r+b") as f:
        f.seek(len(data) - len(END_OF_ARCHIVE))
        writer = OuterWriter(f)
        writer.add_bytes("zz-extra.txt", b"not part of any bundle\n", 0)
        writer.finish()


def _damaged_header(bundle: Path) -> None:
    """One bit flipped in the first member's tar header (byte 100: its mode)."""
    with bundle.open("r+b") as f:
        f.seek(100)
        byte = f.read(1)[0]
        f.seek(100)
        f.write(bytes([byte ^ 1]))


MODES = {"forged-custody": _forged_custody, "extra-member": _extra_member,
         "damaged-header": _damaged_header}


def _stalled(writer: FramedWriter, bundle: bytes) -> None:
    """Half the bundle, then nothing, the channel held open (a capture there stuck reading)."""
    writer.write(bundle[:len(bundle) // 2])
    writer.flush()
    time.sleep(120)


def _endless(writer: FramedWriter, bundle: bytes) -> None:
    """Frames in order, without end (a capture of something endless, or a host filling the
    receiver's disk)."""
    block = bytes(1 << 20)
    while True:
        writer.write(block)


def _slow(writer: FramedWriter, bundle: bytes) -> None:
    """The whole bundle in four pieces, 2 s apart (a slow capture, moving), then its end."""
    step = len(bundle) // 4 + 1
    for start in range(0, len(bundle), step):
        writer.write(bundle[start:start + step])
        writer.flush()
        time.sleep(2)
    writer.finish()


def _trickle(writer: FramedWriter, bundle: bytes) -> None:
    """The bundle one byte a second, each in its own frame (a host that never stalls by the
    byte and never ends: 2 KiB would take over half an hour)."""
    for at in range(len(bundle)):
        writer.write(bundle[at:at + 1])
        writer.flush()
        time.sleep(1)
    writer.finish()


STREAMS = {"stalled": _stalled, "endless": _endless, "slow": _slow, "trickle": _trickle}


def main() -> None:
    mode, args = sys.argv[1], sys.argv[3:]  # argv[2] is serve-capture
    if mode in STREAMS:
        with tempfile.TemporaryDirectory() as folder:
            data = _bundle(Path(folder), args).read_bytes()
        writer = FramedWriter(os.fdopen(1, "wb"))
        STREAMS[mode](writer, data)
        return
    with tempfile.TemporaryDirectory() as folder:
        bundle = _bundle(Path(folder), args)
        MODES[mode](bundle)
        out = os.fdopen(1, "wb")
        writer = FramedWriter(out)
        writer.write(bundle.read_bytes())
        writer.finish()


if __name__ == "__main__":
    main()
