"""What a bank clerk sees of the evidence: small pictures of the screenshots and the envelope of
the e-mails, made from the decrypted payload, only for files whose SHA-256 matched the signed
manifest; hostile pictures and e-mails give a plain "no preview", never a traceback."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
import time
from pathlib import Path

import pytest
from pypdf import PdfReader

from evidencekit.report import previews
from evidencekit.report.previews import Email, Picture, PreviewCollector, Previews, matching
from tests.support.cli import run_cli
from tests.support.fraud_case import SELLER_SUBJECT, FraudCase, report_of, screenshot
from tests.support.html import Page


def thumbnails(html: str) -> list[bytes]:
    return [base64.b64decode(uri) for uri in
            re.findall(r'<img src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', html)]


def test_the_html_report_shows_the_pictures_and_e_mails(fraud_case: FraudCase, tmp_path: Path):
    from PIL import Image

    output = tmp_path / "r.html"
    assert report_of(fraud_case, output).code == 0
    html = output.read_text("utf-8")
    shown = thumbnails(html)
    assert len(shown) == 2  # the PNG and the JPEG screenshot; the damaged one has none
    sizes = sorted(Image.open(io.BytesIO(jpeg)).size for jpeg in shown)
    assert sizes == [(462, 1000), (1000, 625)]  # shrunk, proportions kept
    assert len(html) < 400_000
    page = Page()
    page.feed(html)
    plain = page.plain
    assert "6 files (" in plain and "3 folders; 2 pictures and 2 e-mails shown in section 5" \
        in plain  # on page 1, in the summary
    section = plain[plain.index("5. Pictures and e-mails"):plain.index("6. Evidence items")]
    assert "evidence/Screenshots/chat with the seller.png" in section
    assert "1080 × 2340 pixels, PNG" in section and "1280 × 800 pixels, JPEG" in section
    assert "evidence/Screenshots/damaged.png" in section
    assert "no preview: the picture is damaged" in section
    assert "Jürgen Müller <bike.seller@example.net>" in section
    assert SELLER_SUBJECT in section
    assert 'Jane Victim <jane@example.org>, "Example Bank fraud desk" <fraud@bank.example>' \
        in section
    assert "Sat, 14 Nov 2026 10:31:00 +0100 (2026-11-14 09:31:00 UTC)" in section
    assert "Your transfer TX-4411 was executed" in section
    alts = [value for name, value in page.attributes if name == "alt"]
    assert any(alt.startswith("Picture #") and "chat with the seller.png" in alt for alt in alts)


def test_the_pdf_report_shows_the_pictures_and_e_mails(fraud_case: FraudCase, tmp_path: Path):
    output = tmp_path / "r.pdf"
    assert report_of(fraud_case, output).code == 0
    reader = PdfReader(output)
    images = [image for page in reader.pages for image in page.images]
    assert len(images) == 2
    text = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
    assert "5. Pictures and e-mails in the evidence" in text
    assert "Jürgen Müller" in text and SELLER_SUBJECT in text
    assert "no preview: the picture is damaged" in text
    assert output.stat().st_size < 400_000


def test_the_html_loads_nothing_and_runs_nothing(fraud_case: FraudCase, tmp_path: Path):
    output = tmp_path / "r.html"
    assert report_of(fraud_case, output).code == 0
    html = output.read_text("utf-8")
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
    assert policy and "default-src 'none'" in policy[1] and "img-src data:" in policy[1]
    style = re.search(r"<style>(.*?)</style>", html, re.S)
    assert style
    digest = base64.b64encode(hashlib.sha256(style[1].encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy[1]  # the one style sheet, nothing inline
    page = Page()
    page.feed(html)
    assert "script" not in page.tags and "link" not in page.tags
    names = {name for name, _ in page.attributes}
    assert "style" not in names and not any(n.startswith("on") for n in names)
    sources = [value for name, value in page.attributes if name in ("src", "href")]
    assert all(v.startswith(("data:image/jpeg;base64,", "#")) for v in sources), sources


# ----------------------------------------------------------------- only what matched the manifest
def test_previews_are_kept_only_for_content_the_manifest_lists():
    picture = Picture("data/a.png", "aa" * 32, 10, "PNG")
    email = Email("data/b.eml", "bb" * 32, 20, subject="hello")
    found = Previews([picture], [email])
    assert matching(found, {"data/a.png": ("aa" * 32, 10), "data/b.eml": ("bb" * 32, 20)}) \
        .pictures == [picture]
    assert matching(found, {"data/a.png": ("cc" * 32, 10)}).pictures == []  # other content
    assert matching(found, {"data/a.png": ("aa" * 32, 11)}).pictures == []  # other size
    assert matching(found, {"data/c.png": ("aa" * 32, 10)}).pictures == []  # other file
    assert matching(found, {}).emails == []


def test_the_collector_hashes_exactly_the_bytes_it_shows():
    data = screenshot((200, 100), ["hi"], "PNG")
    collector = PreviewCollector()
    member = tarfile.TarInfo("bag/data/x.png")
    member.size = len(data)
    collector.file("data/x.png", member, iter([data[:7], data[7:50], data[50:]]))
    picture = collector.found.pictures[0]
    assert picture.sha256 == hashlib.sha256(data).hexdigest() and picture.thumbnail


def test_a_report_of_a_bundle_that_fails_shows_no_content(fraud_case: FraudCase, tmp_path):
    damaged = tmp_path / "damaged.evidence"
    data = bytearray(fraud_case.path.read_bytes())
    data[len(data) // 2] ^= 1  # inside payload.age
    damaged.write_bytes(bytes(data))
    output = tmp_path / "f.html"
    forced = run_cli("report", damaged, "-i", fraud_case.keys["identity"], "-o", output,
                     "--force")
    assert forced.code == 1
    html = output.read_text("utf-8")
    assert thumbnails(html) == [] and "Jürgen" not in html
    assert "Not shown: the bundle did not pass verification" in html


# ----------------------------------------------------------------------------- hostile content
def _png_header(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + chunk(b"IEND", b""))


HOSTILE_PICTURES = {
    "truncated PNG": screenshot((300, 300), ["cut"], "PNG")[:400],
    "truncated JPEG": screenshot((300, 300), ["cut"], "JPEG")[:600],
    "bomb": _png_header(100_000, 100_000),
    "large": _png_header(9_000, 9_000),  # under Pillow's own limit, over ours
    "signature only": b"\x89PNG\r\n\x1a\n",
    "GIF junk": b"GIF89a" + bytes(range(256)) * 4,
    "WebP junk": b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\xff" * 100,
    "JPEG junk": b"\xff\xd8\xff" + b"\x00\xff" * 500,
}


@pytest.mark.parametrize("name", HOSTILE_PICTURES)
def test_a_hostile_picture_gets_a_plain_reason_never_a_traceback(name: str):
    data = HOSTILE_PICTURES[name]
    picture = Picture("data/x", hashlib.sha256(data).hexdigest(), len(data),
                      previews.picture_format(data) or "")
    assert picture.format
    started = time.monotonic()
    previews.make_thumbnail(data, picture)
    assert time.monotonic() - started < 5
    assert picture.thumbnail is None
    assert picture.problem.startswith("no preview: ")
    assert "object at 0x" not in picture.problem and "Error" not in picture.problem
    if name in ("bomb", "large"):
        assert "more pixels than a preview is made of" in picture.problem
    if name == "large":
        assert "(9000 × 9000)" in picture.problem


def test_transparent_palette_and_animated_pictures_get_previews():
    from PIL import Image

    for mode, fmt in (("RGBA", "PNG"), ("P", "GIF"), ("LA", "PNG"), ("RGB", "WEBP")):
        out = io.BytesIO()
        Image.new(mode, (40, 30)).save(out, fmt)
        data = out.getvalue()
        picture = Picture("data/x", "", len(data), previews.picture_format(data) or "?")
        previews.make_thumbnail(data, picture)
        assert picture.thumbnail and Image.open(io.BytesIO(picture.thumbnail)).size == (40, 30), \
            (mode, fmt, picture.problem)


def test_a_large_picture_is_named_but_not_read(monkeypatch):
    monkeypatch.setattr(previews, "MAX_PICTURE_BYTES", 1000)
    data = screenshot((400, 400), ["big"], "PNG")
    collector = PreviewCollector()
    member = tarfile.TarInfo("bag/data/big.png")
    member.size = len(data)
    collector.file("data/big.png", member, iter([data[:100], data[100:]]))
    picture = collector.found.pictures[0]
    assert picture.thumbnail is None and "larger than" in picture.problem
    assert picture.sha256 == hashlib.sha256(data).hexdigest()


def test_only_so_many_pictures_and_the_rest_is_counted(monkeypatch):
    monkeypatch.setattr(previews, "MAX_PICTURES", 3)
    collector = PreviewCollector()
    data = screenshot((20, 20), ["x"], "PNG")
    for n in range(5):
        member = tarfile.TarInfo(f"bag/data/{n}.png")
        member.size = len(data)
        collector.file(f"data/{n}.png", member, iter([data]))
    assert len(collector.found.pictures) == 3 and collector.found.pictures_left_out == 2


def envelope(raw: bytes) -> Email:
    email = Email("data/m.eml", "", len(raw))
    previews.read_envelope(raw[:previews.EMAIL_HEAD_BYTES], email)
    return email


def test_e_mail_headers_are_decoded_bounded_and_never_fatal():
    long = envelope(b"Subject: " + b"A" * 1_000_000 + b"\n\nbody")
    assert len(long.subject) == previews.HEADER_CHARS and long.subject.endswith("…")
    bad_word = envelope(b"From: =?utf-8?q?broken?=?= <x@y>\nSubject: =?x-unknown?b?!!!?=\n\n")
    assert "x@y" in bad_word.sender and bad_word.subject  # shown as stored
    latin = envelope("Subject: Überweisung\n\n".encode("latin-1"))
    assert "berweisung" in latin.subject
    none = envelope(b"\x00\x01binary, not an e-mail" * 100)
    assert none.problem and not none.subject
    undated = envelope(b"Date: sometime soon\nSubject: x\n\n")
    assert undated.date == "sometime soon"
    nested = envelope(b"From: " + b"(" * 50_000 + b"\n\n")
    assert nested.sender.startswith("(((")


def test_only_the_head_of_an_e_mail_is_kept():
    collector = PreviewCollector()
    raw = b"Subject: big\n\n" + b"x" * (5 << 20)
    member = tarfile.TarInfo("bag/data/big.eml")
    member.size = len(raw)
    chunks = [raw[i:i + (1 << 20)] for i in range(0, len(raw), 1 << 20)]
    collector.file("data/big.eml", member, iter(chunks))
    email = collector.found.emails[0]
    assert email.subject == "big" and email.sha256 == hashlib.sha256(raw).hexdigest()


def test_a_report_made_without_looking_does_not_say_there_is_nothing(fraud_case, tmp_path):
    """collect() without the collector (a library caller): the section says nobody looked,
    never "no pictures were found"."""
    from evidencekit.crypto import age
    from evidencekit.report import collect
    from evidencekit.report.html import render_html
    from evidencekit.verify import verify

    identities = age.parse_identity_file(fraud_case.keys["identity"].read_bytes())
    html = render_html(collect(verify(fraud_case.path, identities), "case.evidence",
                               "2026-11-24T10:00:00.000000000Z"))
    assert "were not looked for" in html and "No pictures or e-mails were found" not in html


def test_raw_utf8_headers_are_read_as_utf8():
    """RFC 6532: mailers send 'Subject: Überweisung' as raw UTF-8; the report shows it so, not
    as replacement characters. Bytes that are not UTF-8 stay replacement characters."""
    sent = envelope("Subject: Überweisung bestätigt\r\nFrom: Jürgen Müller <j@x.de>\r\n"
                    "To: a@x.de,\r\n b@x.de\r\nTo: c@x.de\r\n\r\nbody".encode())
    assert sent.subject == "Überweisung bestätigt"
    assert sent.sender == "Jürgen Müller <j@x.de>" and sent.to == "a@x.de, b@x.de, c@x.de"
    assert envelope("Subject: Überweisung\n\n".encode("latin-1")).subject == "\ufffdberweisung"


_MEMORY_PROBE = """
import resource, struct, zlib
from evidencekit.report import previews
import PIL.Image, PIL.ImageOps, PIL.PngImagePlugin, PIL.JpegImagePlugin
w = h = 5000
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
z = zlib.compressobj(9)
idat = b"".join(z.compress(b"\\0" + b"\\0" * (w * 3)) for _ in range(h)) + z.flush()
data = (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
picture = previews.Picture("data/x.png", "", len(data), "PNG")
previews.make_thumbnail(data, picture)
assert picture.thumbnail, picture.problem
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_a_picture_is_shrunk_without_copying_it_whole():
    """A 300 KB PNG of 5000 × 5000 pixels decodes to 95 MiB; making its preview must not hold
    copies of it (turning it upright before shrinking it took 228 MiB, now about 130)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _MEMORY_PROBE], capture_output=True, text=True,
                          check=True, timeout=120)
    assert int(done.stdout) < 170, done.stdout


@pytest.mark.parametrize("resealer", ["stranger", "sealer"])
def test_a_resealed_bundle_whose_picture_was_swapped_shows_no_attacker_content(
        fraud_case: FraudCase, tmp_path: Path, resealer: str):
    """A custodian who can decrypt swaps a screenshot for one of their own and reseals (a
    well-formed 'resealed' event, even one signed by the sealer's own key): the report fails,
    and neither picture nor any other preview is shown."""
    from types import SimpleNamespace

    from evidencekit.crypto import age
    from evidencekit.crypto.keys import SigningKey, load_signing_key
    from tests.support.by_hand import change_file, forged_reseal

    planted = screenshot((1080, 2340), ["PLANTED by the attacker"], "PNG")
    keys = SimpleNamespace(
        identity=age.parse_identity_file(fraud_case.keys["identity"].read_bytes())[0],
        stranger=SigningKey.generate("mallory"))
    signer = load_signing_key(fraud_case.keys["signer"]) if resealer == "sealer" else None
    name = "bag/data/evidence/Screenshots/chat with the seller.png"
    forged = forged_reseal(fraud_case.path, tmp_path / "forged.evidence",
                           keys,  # type: ignore[arg-type]
                           change_file(name, planted), resealer=signer)
    output = tmp_path / "forged.html"
    made = run_cli("report", forged, "-i", fraud_case.keys["identity"], "-o", output, "--force")
    assert made.code == 1, made.stdout + made.stderr
    html = output.read_text("utf-8")
    assert thumbnails(html) == [] and "Jürgen" not in html
    assert "Not shown: the bundle did not pass verification" in html
