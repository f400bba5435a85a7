"""WARC 1.1 records (ISO 28500:2017), each its own gzip member: the ``.warc.gz`` that web
archives read (warcio, pywb, the Wayback Machine's tools).

Written by hand (a record is a few header lines, a block and two line ends) so that every byte is
ours to explain; warcio, the reference implementation, is the test's oracle (``warcio check``,
``warcio index``). Digests are SHA-1 in base32, as WARC tools expect: ``WARC-Block-Digest`` over
the whole block, ``WARC-Payload-Digest`` over what follows the HTTP header block, as received
(warcio computes it the same way; chunked framing, if any, is part of it). The bundle's manifest
keeps the SHA-256 of the whole file, as for any file.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import uuid
from collections.abc import Callable

from evidencekit import __version__

VERSION = b"WARC/1.1"


def record_id(new: Callable[[], uuid.UUID] = uuid.uuid4) -> str:
    return f"<urn:uuid:{new()}>"


def warc_date(ns: int) -> str:
    """WARC-Date: UTC, to the microsecond (WARC 1.1 allows a fraction)."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    text = dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{fraction // 1000:06d}Z"


def sha1_label(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode("ascii")


def record(kind: str, block: bytes, date_ns: int, content_type: str | None,
           headers: list[tuple[str, str]], rec_id: str, payload_offset: int | None = None
           ) -> bytes:
    """One WARC record of type *kind*, gzip-compressed on its own. *payload_offset*: where the
    payload starts in an HTTP block (for WARC-Payload-Digest)."""
    fields: list[tuple[str, str]] = [("WARC-Type", kind), ("WARC-Record-ID", rec_id),
                                     ("WARC-Date", warc_date(date_ns)), *headers]
    if content_type is not None:
        fields.append(("Content-Type", content_type))
    fields.append(("WARC-Block-Digest", sha1_label(block)))
    if payload_offset is not None:
        fields.append(("WARC-Payload-Digest", sha1_label(block[payload_offset:])))
    fields.append(("Content-Length", str(len(block))))
    head = VERSION + b"\r\n" + b"".join(
        f"{name}: {_one_line(value)}\r\n".encode() for name, value in fields)
    return gzip.compress(head + b"\r\n" + block + b"\r\n\r\n", mtime=0)


def warcinfo(date_ns: int, filename: str, rec_id: str) -> bytes:
    """The first record: what made the file and how."""
    text = (f"software: evidencekit/{__version__}\r\n"
            "format: WARC File Format 1.1\r\n"
            "conformsTo: https://iso.org/standard/68004.html\r\n"
            "description: one web page and its own resources (images, style sheets, scripts, "
            "what its style sheets name, and what it asked in the browser that made its "
            "pictures), captured as evidence; robots.txt is not consulted\r\n")
    return record("warcinfo", text.encode(), date_ns, "application/warc-fields",
                  [("WARC-Filename", filename)], rec_id)


def _one_line(value: str) -> str:
    """Header values never carry a line end (a URL from a page could try)."""
    return value.replace("\r", "%0D").replace("\n", "%0A")
