"""What the evidence shows, for people who cannot open the bundle: small pictures of the captured
images (screenshots, photos) and the envelope of captured e-mails (From, To, Date, Subject).

Gathered while ``verify`` decrypts the payload (:class:`PreviewCollector` is a payload visitor),
from the decrypted bytes themselves, never from files on disk. Each preview carries the SHA-256
computed here from exactly the bytes it was made from; the report keeps only previews whose hash
and size are the ones the signed manifest lists for that file (:func:`matching`).

Image and e-mail bytes are hostile input. Pictures: only PNG, JPEG, GIF and WebP, recognised by
their first bytes; at most :data:`MAX_PICTURE_BYTES` each and :data:`MAX_PIXELS` pixels (checked
from the header, before anything is decoded); decoded by Pillow restricted to those four formats,
shrunk, and re-encoded as a plain JPEG, so the report never carries the original bytes. A picture
Pillow cannot read gets no preview and a plain reason, never a traceback. E-mails: only the first
:data:`EMAIL_HEAD_BYTES` bytes are kept (the headers), each header is cut to
:data:`HEADER_CHARS` characters before it is decoded, and decoding errors fall back to the text
as stored. The whole header block (:class:`FullHeaders`, at most :data:`EMAIL_HEAD_BYTES`) is
kept for the e-mails marked (``report --full-headers``), or for all of them when they are few.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import tarfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timezone
from email import header as email_header
from email import policy, utils
from email.parser import BytesHeaderParser
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

MAX_PICTURES = 24  # previews in one report; the evidence list names every file
MAX_PICTURE_BYTES = 32 << 20  # a phone photo or a 4K screenshot fits
MAX_PIXELS = 50_000_000  # checked from the header, before decoding
THUMBNAIL_SIDE = 1000  # pixels, the longer side: a phone screenshot's text stays readable
THUMBNAIL_QUALITY = 82
MAX_EMAILS = 200  # e-mails listed in one report (None in a collector: all of them)
EMAIL_HEAD_BYTES = 64 << 10
FEW_EMAILS = 20  # a bundle with at most this many e-mails: every one's full headers are shown
MAX_FULL_HEADERS = 200  # full header blocks in one report (each at most EMAIL_HEAD_BYTES)
HEADER_CHARS = 300
EMAIL_SUFFIXES = (".eml",)

# First bytes of the formats shown (and the only ones Pillow is allowed to open).
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"),
               (b"GIF89a", "GIF"))


_SNIFF = 16  # bytes that tell the formats apart


def picture_format(first: bytes) -> str | None:
    """'PNG', 'JPEG', 'GIF' or 'WEBP' from a file's first bytes; None for anything else."""
    for signature, name in _SIGNATURES:
        if first.startswith(signature):
            return name
    if first[:4] == b"RIFF" and first[8:12] == b"WEBP":
        return "WEBP"
    return None


@dataclass
class Picture:
    bag_path: str
    sha256: str
    size: int
    format: str
    width: int = 0  # of the original, when its header could be read
    height: int = 0
    thumbnail: bytes | None = None  # JPEG
    problem: str = ""  # why there is no thumbnail, in plain words


@dataclass
class Email:
    bag_path: str
    sha256: str
    size: int
    sender: str = ""
    to: str = ""
    date: str = ""
    subject: str = ""
    problem: str = ""


@dataclass
class FullHeaders:
    """An e-mail's whole header block, as stored, for the investigator who asked for it."""

    bag_path: str
    sha256: str
    size: int
    text: str  # UTF-8 as a rule; other bytes written \xNN; line ends as "\n"
    cut: bool = False  # the block goes on past EMAIL_HEAD_BYTES
    marked: bool = False  # asked for (report --headers), not only shown because they are few


@dataclass
class Previews:
    """What the report shows of the evidence's content, and what it left out."""

    pictures: list[Picture] = field(default_factory=list)
    emails: list[Email] = field(default_factory=list)
    pictures_left_out: int = 0  # beyond MAX_PICTURES
    emails_left_out: int = 0
    gathered: bool = False  # False: nobody looked (verify ran without a PreviewCollector)
    headers: list[FullHeaders] = field(default_factory=list)
    headers_left_out: int = 0  # marked beyond MAX_FULL_HEADERS
    marks: tuple[str, ...] = ()  # the --headers patterns
    marks_unmatched: tuple[str, ...] = ()  # patterns that named no e-mail
    email_limit: int | None = MAX_EMAILS  # None: every e-mail is listed

    @property
    def emails_seen(self) -> int:
        return len(self.emails) + self.emails_left_out


class PreviewCollector:
    """A payload visitor (evidencekit.payload.Visitor) that makes previews as files go by.

    *marks*: patterns (fnmatch, on the file's name in ``data/`` or its whole path in the bag)
    of the e-mails whose full headers are wanted; *email_limit*: how many e-mails are listed
    (None: all of them)."""

    def __init__(self, marks: Sequence[str] = (), email_limit: int | None = MAX_EMAILS) -> None:
        self.found = Previews(gathered=True, marks=tuple(marks), email_limit=email_limit)
        self._unmatched = dict.fromkeys(marks)

    def directory(self, name: str, member: tarfile.TarInfo) -> None:
        pass

    def hard_link(self, name: str, member: tarfile.TarInfo, target: str) -> None:
        pass  # the same content as a file already seen

    def file(self, name: str, member: tarfile.TarInfo, chunks: Iterator[bytes]) -> None:
        if not name.startswith("data/"):
            return
        first = b""
        for chunk in chunks:  # enough to tell the format, wherever the pieces were cut
            first += chunk
            if len(first) >= _SNIFF:
                break
        kind = picture_format(first)
        if kind is not None:
            self._picture(name, member.size, kind, first, chunks)
        elif name.lower().endswith(EMAIL_SUFFIXES):
            self._email(name, member.size, first, chunks)

    def _picture(self, name: str, size: int, kind: str, first: bytes,
                 chunks: Iterator[bytes]) -> None:
        found = self.found
        if len(found.pictures) >= MAX_PICTURES:
            found.pictures_left_out += 1
            return
        digest = hashlib.sha256(first)
        if size > MAX_PICTURE_BYTES:
            for chunk in chunks:  # hashed all the same: the caption must name the right file
                digest.update(chunk)
            found.pictures.append(Picture(name, digest.hexdigest(), size, kind, problem=(
                f"no preview: larger than {MAX_PICTURE_BYTES >> 20} MiB")))
            return
        data = bytearray(first)
        for chunk in chunks:
            digest.update(chunk)
            data += chunk
        picture = Picture(name, digest.hexdigest(), size, kind)
        make_thumbnail(bytes(data), picture)
        found.pictures.append(picture)

    def _email(self, name: str, size: int, first: bytes, chunks: Iterator[bytes]) -> None:
        found = self.found
        # Nothing marked: every e-mail's headers, kept while the e-mails are few
        few = not found.marks and found.emails_seen < FEW_EMAILS
        listed = found.email_limit is None or len(found.emails) < found.email_limit
        marked = self._marked(name)
        if not listed:
            found.emails_left_out += 1
        if not few and any(not h.marked for h in found.headers):
            found.headers = [h for h in found.headers if h.marked]  # many: only the marked
        full = marked or few
        if marked and len(found.headers) >= MAX_FULL_HEADERS:
            found.headers_left_out += 1
            full = False
        if not (listed or full):
            return  # the payload reader reads (and checks) the rest of the file
        digest = hashlib.sha256(first)
        head = bytearray(first[:EMAIL_HEAD_BYTES])
        for chunk in chunks:
            digest.update(chunk)
            if len(head) < EMAIL_HEAD_BYTES:
                head += chunk[:EMAIL_HEAD_BYTES - len(head)]
        if listed:
            email = Email(name, digest.hexdigest(), size)
            read_envelope(bytes(head), email)
            found.emails.append(email)
        if full:
            text, cut = header_block(bytes(head))
            found.headers.append(FullHeaders(name, digest.hexdigest(), size, text, cut, marked))

    def _marked(self, name: str) -> bool:
        """Whether a --full-headers pattern names the file: its path in ``data/`` (as the
        report lists it), its path in the bag, or its own name."""
        short = name.removeprefix("data/")
        names = (short, name, short.rsplit("/", 1)[-1])
        hits = [mark for mark in self.found.marks
                if any(fnmatch.fnmatchcase(candidate, mark) for candidate in names)]
        for mark in hits:
            self._unmatched.pop(mark, None)
        return bool(hits)

    def finish(self) -> Previews:
        """What was found, with the patterns that named no e-mail."""
        self.found.marks_unmatched = tuple(self._unmatched)
        return self.found


def header_block(head: bytes) -> tuple[str, bool]:
    """The header block at the start of *head* (up to the first empty line) as text, and
    whether it goes on past *head*. Raw UTF-8 (RFC 6532) is read as such; any other byte is
    written ``\\xNN`` (never guessed at); line ends become ``\\n``, a lone CR stays."""
    ends = [at for at in (head.find(b"\r\n\r\n"), head.find(b"\n\n")) if at >= 0]
    block = head[:min(ends)] if ends else head
    cut = not ends and len(head) >= EMAIL_HEAD_BYTES
    text = block.decode("utf-8", "backslashreplace")
    return text.replace("\r\n", "\n"), cut


def make_thumbnail(data: bytes, picture: Picture) -> None:
    """Fill *picture* with a small JPEG of *data*, or with the reason there is none."""
    from PIL import Image  # here, not at start-up: only a report with pictures needs it

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's decompression-bomb warning: checked below
            with Image.open(io.BytesIO(data), formats=[picture.format]) as image:
                picture.width, picture.height = image.size
                if picture.width * picture.height > MAX_PIXELS:
                    picture.problem = (f"no preview: the picture has more pixels than a preview "
                                       f"is made of ({picture.width} × {picture.height})")
                    return
                # Shrunk in place before anything else (JPEG: decoded scaled down): turning the
                # full picture upright first copied it, three times its pixels in memory at once
                # (a 190 KB PNG of 7000 × 7000 pixels took 650 MB).
                image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
                picture.thumbnail = _as_jpeg(_upright(image))
    except Exception as exc:  # any damage in hostile bytes: no preview, never a traceback
        picture.thumbnail = None
        picture.problem = _damage(exc)


def _damage(exc: Exception) -> str:
    """Why Pillow could not read a picture, in words (its messages name Python objects)."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(exc, Image.DecompressionBombError):
        return "no preview: the picture has more pixels than a preview is made of"
    if isinstance(exc, UnidentifiedImageError):
        return "no preview: the picture is damaged (its beginning cannot be read)"
    if isinstance(exc, (OSError, EOFError, SyntaxError)):  # Pillow's "truncated", "broken data"
        return "no preview: the picture is damaged or incomplete"
    return "no preview: the picture could not be read"


def _upright(image: PILImage) -> PILImage:
    """The picture turned as the camera meant (EXIF orientation); as stored if that fails."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a damaged EXIF block: the picture itself may still be fine
        image.load()
        return image


def _as_jpeg(image: PILImage) -> bytes:
    from PIL import Image

    if image.mode not in ("RGB", "L"):  # transparency and palettes: on white, as on screen
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, "white")
        image.paste(rgba, mask=rgba.getchannel("A"))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return out.getvalue()


def read_envelope(head: bytes, email: Email) -> None:
    """From, To, Date and Subject of the e-mail whose first bytes are *head*, decoded."""
    try:
        message = BytesHeaderParser(policy=policy.compat32).parsebytes(head)
        # raw_items: the values as stored; get_all would have replaced 8-bit bytes already
        raw: dict[str, list[str]] = {"from": [], "to": [], "date": [], "subject": []}
        for name, value in message.raw_items():
            if name.lower() in raw:
                raw[name.lower()].append(value)
        values = {name: _header(raw[name.lower()]) for name in ("From", "To", "Date", "Subject")}
    except Exception:  # hostile bytes: say so, never a traceback
        email.problem = "the e-mail's headers could not be read"
        return
    email.sender, email.to, email.subject = values["From"], values["To"], values["Subject"]
    email.date = _date(values["Date"])
    if not any(values.values()):
        email.problem = "no From, To, Date or Subject found (is it an e-mail?)"


def _header(raw_values: Sequence[object]) -> str:
    """A header as people read it: encoded words decoded, folding removed, cut to length."""
    parts = []
    for raw in raw_values:
        text = _eight_bit(str(raw)[:HEADER_CHARS * 4])  # cut first: decoding time stays bounded
        with suppress(Exception):  # when it cannot be decoded: shown as stored
            text = str(email_header.make_header(email_header.decode_header(text)))
        parts.append(" ".join(text.split()))
    joined = ", ".join(p for p in parts if p)
    return joined if len(joined) <= HEADER_CHARS else joined[:HEADER_CHARS - 1] + "…"


def _eight_bit(text: str) -> str:
    """A header's raw 8-bit bytes read as UTF-8 (RFC 6532: 'Subject: Überweisung' sent as is,
    as many mailers do), not as the replacement characters of the ASCII the parser assumes;
    bytes that are not UTF-8 stay replacement characters (no guess at another charset)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _date(text: str) -> str:
    """The Date header as written, with the same moment in UTC when it can be read."""
    if not text:
        return ""
    try:
        moment = utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return text
    if moment.tzinfo is None:
        return text
    return f"{text} ({moment.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC)"


def matching(previews: Previews, listed: dict[str, tuple[str, int | None]]) -> Previews:
    """Only the previews made from bytes whose SHA-256 and size are the ones the signed manifest
    lists for that file (*listed*: bag path → (sha256, size))."""
    def verified(path: str, sha256: str, size: int) -> bool:
        return listed.get(path) == (sha256, size)

    return Previews(
        pictures=[p for p in previews.pictures if verified(p.bag_path, p.sha256, p.size)],
        emails=[e for e in previews.emails if verified(e.bag_path, e.sha256, e.size)],
        pictures_left_out=previews.pictures_left_out, emails_left_out=previews.emails_left_out,
        gathered=previews.gathered,
        headers=[h for h in previews.headers if verified(h.bag_path, h.sha256, h.size)],
        headers_left_out=previews.headers_left_out, marks=previews.marks,
        marks_unmatched=previews.marks_unmatched, email_limit=previews.email_limit)
