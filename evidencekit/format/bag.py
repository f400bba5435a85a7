"""BagIt (RFC 8493) pieces of the payload: tag files, manifest lines and their path encoding."""

from __future__ import annotations

from collections.abc import Iterator

from evidencekit.errors import BundleError

BAG_ROOT = "bag"  # the payload tar holds one directory: bag/
BAGIT_TXT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
MANIFEST = "manifest-sha256.txt"
TAGMANIFEST = "tagmanifest-sha256.txt"
BAG_INFO = "bag-info.txt"
BAGIT = "bagit.txt"
EK_MANIFEST = "evidencekit/manifest.json"
EK_MANIFEST_SIG = "evidencekit/manifest.json.sig"
EK_INCIDENT = "evidencekit/incident.json"  # optional; its SHA-256 is in manifest.json
# Every tag file a bag may hold (FORMAT.md §4.2); a reader refuses any other.
TAG_FILES = frozenset({BAGIT, MANIFEST, BAG_INFO, EK_INCIDENT, EK_MANIFEST, EK_MANIFEST_SIG,
                       TAGMANIFEST})


def encode_path(path: str) -> str:
    """RFC 8493 §2.1.3: in manifest paths only CR, LF and % are percent-encoded."""
    return path.replace("%", "%25").replace("\n", "%0A").replace("\r", "%0D")


def decode_path(encoded: str) -> str:
    if "%" not in encoded:  # nearly every path: nothing to decode
        return encoded
    out: list[str] = []
    i = 0
    while i < len(encoded):
        if encoded[i] == "%":
            code = encoded[i + 1 : i + 3].upper()
            if code not in ("25", "0A", "0D"):
                raise BundleError(f"manifest path {encoded!r} has an invalid percent escape")
            out.append({"25": "%", "0A": "\n", "0D": "\r"}[code])
            i += 3
        else:
            out.append(encoded[i])
            i += 1
    return "".join(out)


def manifest_line(hexdigest: str, path: str) -> bytes:
    """One manifest line: ``<sha256>  <path>`` (two spaces, as sha256sum writes)."""
    return f"{hexdigest}  {encode_path(path)}\n".encode()


def parse_manifest(data: bytes, what: str) -> dict[str, str]:
    """Parse a manifest into {path: sha256}; every defect raises BundleError naming the line."""
    return dict(iter_manifest(data, what))


def iter_manifest(data: bytes, what: str, seen: set[str] | None = None
                  ) -> Iterator[tuple[str, str]]:
    """(path, sha256) for each line of a manifest, in order, checked as `parse_manifest` checks
    them; what it keeps is the set of paths seen (a manifest lists a line per payload file),
    which it fills into *seen* when given, so a caller needing it has no second copy."""
    if data and not data.endswith(b"\n"):
        raise BundleError(f"{what} does not end with a newline")
    seen = set() if seen is None else seen
    start = 0
    number = 0
    # Lines end with LF only: str.splitlines() would also split inside names holding a vertical
    # tab, form feed, U+0085, U+2028 … (legal in file names, not percent-encoded by RFC 8493).
    # A LF byte is never part of a longer UTF-8 sequence, so each line decodes on its own.
    while start < len(data):
        end = data.index(b"\n", start)
        number += 1
        try:
            line = data[start:end].decode("utf-8")
        except UnicodeDecodeError:
            raise BundleError(f"{what} is not UTF-8") from None
        start = end + 1
        digest, sep, encoded = line.partition("  ")
        if not sep or len(digest) != 64 or not _is_lower_hex(digest) or not encoded:
            raise BundleError(f"{what} line {number} is malformed")
        path = decode_path(encoded)
        if path in seen:
            raise BundleError(f"{what} lists {path!r} twice")
        if path.startswith(("/", "~")) or ".." in path.split("/") or path[:1] == "\\":
            raise BundleError(f"{what} line {number} has an unsafe path {path!r}")
        seen.add(path)
        yield path, digest


def _is_lower_hex(text: str) -> bool:
    return not text.strip("0123456789abcdef")  # every character is one of those


def evidencekit_bag_info(*, tool_version: str, bagging_date: str, case_id: str, examiner: str,
                         organisation: str, description: str, total_bytes: int,
                         files: int) -> bytes:
    """The bag-info.txt evidencekit writes. Every value comes from the signed manifest.json
    (§4.2), so a verifier rebuilds it from there and requires the same bytes: nothing signs
    bag-info.txt itself, and BagIt tools show it."""
    fields = [
        ("Bag-Software-Agent", f"evidencekit {tool_version}"),
        ("Bagging-Date", bagging_date),
        ("External-Identifier", case_id),
        ("Contact-Name", examiner),
        ("Payload-Oxum", f"{total_bytes}.{files}"),
    ]
    if organisation:
        fields.insert(0, ("Source-Organization", organisation))
    if description:
        fields.append(("External-Description", description))
    return bag_info(fields)


def bag_info(fields: list[tuple[str, str]]) -> bytes:
    """bag-info.txt; multi-line values are folded with leading spaces as RFC 8493 §2.2.2 allows."""
    lines = []
    for label, value in fields:
        folded = "\n  ".join(value.replace("\r", "").split("\n"))
        lines.append(f"{label}: {folded}\n")
    return "".join(lines).encode("utf-8")
