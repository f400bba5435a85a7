"""E01 (EnCase 6 Expert Witness Format) of a disk image in the bundle, written by Debian's
``ewfacquirestream`` (ewf-tools, libewf) from the decrypted image as verify reads it.

Why that program: the PyPI build of libewf-python is compiled without zlib and refuses to write
(docs/decisions/e01.md). ``ewfacquirestream`` reads the image on its standard input and writes
one segment file with the case fields, the MD5 and SHA-1 of the data, which ``ewfverify``
checks.

Which image: the bundle's payload holds the evidence before its manifest, so the choice is
made as the files go by: the first stored file that can be a disk image (whole 512-byte
sectors, not empty) is streamed; the files before it cannot be one (a device captured with a
folder of notes: their files come first). At the end, the signed manifest
must confirm it: it is the image of a ``capture --device`` source, or the only stored file of
the bundle (a raw image captured as a file). Otherwise nothing is published and the export
says why. EWF stores whole 512-byte sectors: an image of another size is refused too (its
digests would not match what ewfverify reads back).

The case fields come from the bundle's public parts: case number (the seal's case id),
description (the capture event's note, the case's public label), examiner (who signed the
capture, as they call themself), evidence number (the image's path in the bag), notes.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import IO, Any, BinaryIO

from evidencekit.errors import BundleError, OutputError, UsageError
from evidencekit.export.registry import ExportContext, Format, Stdout, Written, register
from evidencekit.export.stored import evidence_files
from evidencekit.fs import leftovers
from evidencekit.payload import Visitor
from evidencekit.verify import Report, verify

SECTOR = 512
PROGRAM = "ewfacquirestream"
SEGMENT = "7.9EiB"  # EnCase 6's largest: one segment file, whatever the image's size

# ewfacquirestream finishes a valid E01 of whatever it read when its input ends: after
# evidencekit is killed outright (kill -9, a power cut of the process), the pipe's end would
# make an E01 of part of the image that ewfverify passes. This guard holds a copy of the
# pipe's writing end, so that the input never ends that way: it lets go when evidencekit says
# the image was fed whole ("1" on the control pipe); when that pipe ends without it (evidencekit
# is gone), it kills ewfacquirestream first. (-B, the image's size, would make a short input an
# error, but ewfacquirestream 20140813 then writes a broken E01 when a read of the pipe is short.)
_GUARD = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for evidencekit, which ends us
child, control = int(sys.argv[1]), int(sys.argv[2])
try:
    handle = os.pidfd_open(child)
except (AttributeError, OSError):
    handle = None
if os.read(control, 1) != b"1":
    try:
        if handle is not None:
            signal.pidfd_send_signal(handle, signal.SIGKILL)
        else:
            os.kill(child, signal.SIGKILL)
    except OSError:
        pass
"""


class E01Job:
    def __init__(self, context: ExportContext) -> None:
        if context.output is None:
            raise UsageError("an E01 export needs an output name")
        program = shutil.which(PROGRAM)
        if program is None:
            raise UsageError(f"E01 export needs {PROGRAM} (Debian/Ubuntu: apt install ewf-tools)",
                             hint="it writes the E01; evidencekit feeds it the verified image")
        self.program = program
        self.context = context
        self.fields = _public_fields(context.bundle)
        # ewfacquirestream writes the decrypted image under the umask (0644, for any user to
        # read while it is written) and a kill -9 leaves what it wrote (an E01 that ewfverify
        # refuses: _GUARD): it writes in a private folder (0700) whose name says what it is,
        # made at the first file. Its name holds this process's id: the next command writing
        # there removes it once that process is gone (evidencekit.fs.leftovers).
        self.folder = context.output.absolute().parent / \
            f"{leftovers.prefix_for(context.output)}{secrets.token_hex(6)}" \
            f"{leftovers.E01_SUFFIX}"
        self.target = self.folder / "image"
        self.process: subprocess.Popen[bytes] | None = None
        self.feed: BinaryIO | None = None  # the writing end of ewfacquirestream's input
        self.guard: subprocess.Popen[bytes] | None = None
        self.control: int | None = None  # "1" here: the image was fed whole
        self.errors: IO[bytes] | None = None
        self.streamed: str | None = None  # the bag path of the file fed to ewfacquirestream
        self.refused: str | None = None  # why the first file passed by could not be an E01

    @property
    def segment(self) -> Path:
        return self.target.with_name(self.target.name + ".E01")

    # ------------------------------------------------------------------ the payload visitor
    def visitor(self) -> Visitor | None:
        return self

    def directory(self, name: str, member: tarfile.TarInfo) -> None:
        return None

    def hard_link(self, name: str, member: tarfile.TarInfo, target: str) -> None:
        return None

    def file(self, name: str, member: tarfile.TarInfo, chunks: Iterator[bytes]) -> None:
        if self.streamed is not None:
            return
        if member.size == 0 or member.size % SECTOR:  # not an image: the next file may be
            self.refused = self.refused or (f"{name} is {member.size} bytes, not a whole "
                                            f"number of {SECTOR}-byte sectors, which EWF stores")
            return
        self.streamed = name
        self._start(name)
        assert self.process is not None and self.feed is not None
        try:
            for chunk in chunks:
                self.feed.write(chunk)
            self.feed.close()
        except BrokenPipeError:
            pass  # said below, with what the program wrote
        self._release_guard(fed=True)
        if self.process.wait() != 0:
            raise OutputError(f"{PROGRAM} failed: {self._said()}",
                              hint="check free space next to the output")

    def _start(self, name: str) -> None:
        fields = self.fields
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115  (closed by abandon())
        os.mkdir(self.folder, 0o700)
        command = [self.program, "-q", "-f", "encase6", "-d", "sha1", "-c", "empty-block",
                   "-S", SEGMENT, "-P", str(SECTOR), "-t", str(self.target),
                   "-C", fields["case"], "-D", fields["description"] or "-",
                   "-e", fields["examiner"], "-E", name,
                   "-N", f"Exported by {self.context.tool} from the verified evidence bundle "
                   f"{self.context.bundle.name}, sealed by {fields['sealer']}"]
        reading, writing = os.pipe()
        control_reading, self.control = os.pipe()
        try:
            self.process = subprocess.Popen(command, stdin=reading,
                                            stdout=subprocess.DEVNULL, stderr=self.errors,
                                            umask=0o077)
            self.guard = subprocess.Popen(
                [sys.executable, "-S", "-c", _GUARD, str(self.process.pid),
                 str(control_reading)], pass_fds=(writing, control_reading),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            os.close(reading)
            os.close(control_reading)
        self.feed = os.fdopen(writing, "wb")

    def _release_guard(self, fed: bool) -> None:
        """Tell the guard the image was fed whole (*fed*: it lets go of the input, which then
        ends) or not (it kills ewfacquirestream first), and wait for it."""
        if self.control is not None:
            with suppress(OSError):
                if fed:
                    os.write(self.control, b"1")
            os.close(self.control)
            self.control = None
        if self.guard is not None:
            self.guard.wait()
            self.guard = None

    def _said(self) -> str:
        if self.errors is None:
            return "no output"
        self.errors.seek(0)
        text = self.errors.read()[-2000:].decode("utf-8", "replace").strip()
        return " ".join(text.split()) or "no output"

    # --------------------------------------------------------------------------- the end
    def finish(self, checked: Report, out: BinaryIO, staged: Path | None) -> Written:
        if staged is None:  # (refused before: an E01 is a file another program writes)
            raise UsageError("an E01 is written as a file, not to standard output")
        if self.streamed is None and self.refused is not None:
            raise UsageError(f"no E01 was made: {self.refused}")
        if self.streamed is None or not self.segment.exists():
            raise UsageError("no E01 was made: the bundle holds no stored file")
        problem = _not_an_image(checked, self.streamed)
        if problem is not None:
            raise UsageError(f"no E01 was made: {problem}",
                             hint="E01 holds one disk image: a bundle made by 'capture "
                             "--device', or one that holds a single raw image file")
        fd = os.open(self.segment, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(self.segment, 0o600)
        os.replace(self.segment, staged)  # the E01 takes the staged file's place, then its name
        return Written()

    def abandon(self) -> None:
        if self.feed is not None:
            with suppress(OSError):
                self.feed.close()
        self._release_guard(fed=False)
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.errors is not None:
            self.errors.close()
        for leftover in (self.segment, self.target):
            with suppress(FileNotFoundError):
                os.unlink(leftover)
        with suppress(FileNotFoundError, OSError):
            os.rmdir(self.folder)


def _public_fields(bundle: Path) -> dict[str, str]:
    """Case fields from the parts anyone can read, before anything is decrypted."""
    public = verify(bundle, check_payload_hash=False)
    if public.seal is None or not public.events:
        raise BundleError("this file is not a readable evidence bundle, so nothing was exported",
                          hint="run 'evidencekit verify' on it to see what is wrong")
    captured = public.events[0]
    return {"case": _one_line(public.seal.case_id), "description": _one_line(captured.note),
            "examiner": _one_line(captured.actor_name),
            "sealer": public.seal.signer.fingerprint}


def _one_line(text: str) -> str:
    return " ".join(text.split())[:1000]


def _not_an_image(checked: Report, streamed: str) -> str | None:
    """None when the signed manifest says *streamed* is a disk image; else why not."""
    sources: Any = checked.manifest.get("sources") if checked.manifest is not None else None
    for record in sources if isinstance(sources, list) else []:
        if isinstance(record, dict) and record.get("kind") == "device" and \
                f"data/{record.get('bag_name')}" == streamed:
            return None
    stored = [f.path for f in evidence_files(checked)]
    if stored == [streamed]:
        return None
    return (f"the bundle holds {len(stored)} stored files and the first, {streamed}, is not the "
            "image of a device source")


FORMAT = register(Format("e01", "EnCase 6 E01 of a disk image (MD5, SHA-1; ewfverify checks it)",
                         ".E01", E01Job, stdout=Stdout.NEVER))
