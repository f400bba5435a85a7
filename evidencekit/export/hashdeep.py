"""A hashdeep known-hash list (``hashdeep -a -k LIST``) of every file of the bag.

The list names each file as it lies in a folder made by ``evidencekit extract --as-stored``,
relative to that folder with a leading ``./``; hashdeep compares names too (a file found under
another name is "moved", and fails the audit), and prints them relative only with ``-l``. So:

    cd EXTRACTED && hashdeep -a -l -k LIST -r .

audits the folder: every file present with its size, MD5 and SHA-256, none missing, none added.
A name hashdeep's line format cannot hold (a line break in it) is left out and said (exit 3).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

from evidencekit.export.content import Md5Visitor
from evidencekit.export.registry import ExportContext, Format, Written, register
from evidencekit.export.stored import StoredFile, all_files
from evidencekit.payload import Visitor
from evidencekit.verify import Report

HEADER = "%%%% HASHDEEP-1.0\n%%%% size,md5,sha256,filename\n"
AUDIT = "cd EXTRACTED && hashdeep -a -l -k LIST -r ."


class HashdeepJob:
    def __init__(self, context: ExportContext) -> None:
        self.context = context
        self.content = Md5Visitor()

    def visitor(self) -> Visitor | None:
        return self.content

    def abandon(self) -> None:
        return None

    def finish(self, checked: Report, out: BinaryIO, staged: Path | None) -> Written:
        written = Written()
        case = checked.seal.case_id if checked.seal else ""
        out.write(HEADER.encode())
        for line in (f"## {self.context.tool}: every file of the evidence bundle "
                     f"{self.context.bundle.name} (case {case}), {self.context.generated}",
                     "## as 'evidencekit extract --as-stored' writes them; audit with:",
                     f"## {AUDIT}", "## "):
            out.write(_one_line(line).encode("utf-8", "surrogateescape") + b"\n")
        for stored in all_files(checked):
            row = self._row(stored, written)
            if row is not None:
                out.write(row)
        if written.left_out:
            written.notices.append(f"{len(written.left_out)} file(s) left out of the list: "
                                   "hashdeep cannot hold a line break in a name")
        return written

    def _row(self, stored: StoredFile, written: Written) -> bytes | None:
        if "\n" in stored.path or "\r" in stored.path:
            written.left_out.append(stored.path)
            return None
        md5 = self.content.hexdigest(stored.path) if stored.evidence else \
            _md5(stored.content or b"")
        if md5 is None:  # verify read every stored file; a missing one is a bug, said anyway
            written.left_out.append(stored.path)
            return None
        name = stored.path.encode("utf-8", "surrogateescape")
        return f"{stored.size},{md5},{stored.sha256},./".encode() + name + b"\n"


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


FORMAT = register(Format("hashdeep", "hashdeep known-hash list (size, MD5, SHA-256)", ".txt",
                         HashdeepJob))
