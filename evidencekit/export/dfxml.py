"""DFXML (Digital Forensics XML): every item the manifest lists, as ``fileobject`` elements.

Written for the DFXML schema of the dfxml-working-group (dfxml.xsd, 1.x): ``metadata`` with one
Dublin Core element, ``creator`` (evidencekit, its version, the command), ``source`` (the
bundle), then one ``fileobject`` per manifest entry in walk order with the children the schema
allows, in its order: ``filename`` (the path as captured), ``id``, ``name_type``, ``filesize``,
``inode``, ``mode``, ``nlink``, ``uid``, ``gid``, the four times, ``link_target``, ``libmagic``
(the MIME type), and for stored files their MD5 (computed here from the decrypted content) and
SHA-256 (verified against the same bytes). Something XML 1.0 cannot carry (a control character
in a name) is written as ``\\xNN``, and said; what went wrong reading an item at capture is an
XML comment before it. Written element by element: memory stays flat.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, BinaryIO
from xml.sax.saxutils import escape, quoteattr

from evidencekit.export.content import Md5Visitor
from evidencekit.export.registry import ExportContext, Format, Written, register
from evidencekit.export.stored import original_path
from evidencekit.payload import Visitor
from evidencekit.verify import Report

NAMESPACE = "http://www.forensicswiki.org/wiki/Category:Digital_Forensics_XML"
DUBLIN_CORE = "http://purl.org/dc/elements/1.1/"
VERSION = "1.2.0"  # the elements used here are the same in 1.1.1, 1.2.0 and 2.0.0-beta.0
NAME_TYPES = {"file": "r", "directory": "d", "symlink": "l", "fifo": "p", "socket": "s",
              "char-device": "c", "block-device": "b"}
# XML 1.0 forbids these even as character references.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_TIMES = (("mtime", "mtime"), ("ctime", "ctime"), ("atime", "atime"), ("birthtime", "crtime"))


class DfxmlJob:
    def __init__(self, context: ExportContext) -> None:
        self.context = context
        self.content = Md5Visitor()
        self.replaced = 0

    def visitor(self) -> Visitor | None:
        return self.content

    def abandon(self) -> None:
        return None

    def finish(self, checked: Report, out: BinaryIO, staged: Path | None) -> Written:
        assert checked.seal is not None and checked.manifest is not None
        out.write(self._head(checked).encode("utf-8"))
        for number, entry in enumerate(checked.manifest.entries(), 1):
            if isinstance(entry, dict):
                out.write(self._fileobject(number, entry).encode("utf-8"))
        out.write(b"</dfxml>\n")
        written = Written()
        if self.replaced:
            written.notices.append(f"{self.replaced} text(s) held characters XML cannot carry; "
                                   "they are written as \\xNN")
        return written

    def _text(self, value: object) -> str:
        text = str(value)
        if _NOT_XML.search(text):
            self.replaced += 1
            text = _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}"
                                if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}", text)
        return escape(text, {"\r": "&#13;"})

    def _head(self, checked: Report) -> str:
        assert checked.seal is not None
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<dfxml xmlns={quoteattr(NAMESPACE)} xmlns:dc={quoteattr(DUBLIN_CORE)} "
            f'version="{VERSION}">\n'
            f"  <metadata><dc:type>Files of the evidence bundle {self._text(checked.seal.case_id)}"
            "</dc:type></metadata>\n"
            "  <creator>\n"
            "    <program>evidencekit</program>\n"
            f"    <version>{self._text(self.context.tool.split()[-1])}</version>\n"
            "    <execution_environment>\n"
            f"      <command_line>evidencekit export {self._text(self.context.bundle_name)} "
            "--format dfxml</command_line>\n"
            f"      <start_time>{self.context.generated}</start_time>\n"
            "    </execution_environment>\n"
            "  </creator>\n"
            f"  <source><image_filename>{self._text(self.context.bundle_name)}</image_filename>"
            "</source>\n")

    def _fileobject(self, number: int, entry: dict[str, Any]) -> str:
        lines = []
        if entry.get("error"):
            lines.append(f"  <!-- {self._text(comment_safe(str(entry['error'])))} -->\n")
        lines.append("  <fileobject>\n")
        lines.append(f"    <filename>{self._text(original_path(entry))}</filename>\n")
        lines.append(f"    <id>{number}</id>\n")
        lines.append(f"    <name_type>{NAME_TYPES.get(str(entry.get('kind')), '-')}</name_type>\n")
        for key, tag in (("size", "filesize"), ("inode", "inode"), ("mode", "mode"),
                         ("nlink", "nlink"), ("uid", "uid"), ("gid", "gid")):
            if isinstance(entry.get(key), int) and not isinstance(entry.get(key), bool) and \
                    entry[key] >= 0:
                lines.append(f"    <{tag}>{entry[key]}</{tag}>\n")
        for key, tag in _TIMES:
            if isinstance(entry.get(key), str):
                lines.append(f"    <{tag}>{self._text(entry[key])}</{tag}>\n")
        target = entry.get("target") if isinstance(entry.get("target"), str) else None
        if target is not None:
            lines.append(f"    <link_target>{self._text(target)}</link_target>\n")
        if isinstance(entry.get("mime"), str):
            lines.append(f"    <libmagic>{self._text(entry['mime'])}</libmagic>\n")
        if isinstance(entry.get("sha256"), str):
            md5 = self.content.hexdigest(str(entry.get("bag_path")))
            if md5 is not None:
                lines.append(f'    <hashdigest type="md5">{md5}</hashdigest>\n')
            lines.append(f'    <hashdigest type="sha256">{self._text(entry["sha256"])}'
                         "</hashdigest>\n")
        lines.append("  </fileobject>\n")
        return "".join(lines)


def comment_safe(text: str) -> str:
    """*text* without "--", which XML forbids inside a comment: a space after each "-" that
    another follows ("a---b" becomes "a- - -b"; replacing "--" by "- -" left "- --" there). The
    error text comes from the bundle, a name in it from whoever named the file."""
    return re.sub("-(?=-)", "- ", text)


FORMAT = register(Format("dfxml", "DFXML file list (names, metadata, MD5, SHA-256)", ".xml",
                         DfxmlJob))
