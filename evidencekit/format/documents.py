"""The signed JSON documents of a bundle: the seal and custody events. Parse = validate.

Both are canonical JSON (evidencekit.canonical) and carry a ``type`` field, so a signature made for
one kind of document can never be passed off as another (the SSHSIG namespace is shared).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from evidencekit import canonical
from evidencekit.clock import parse_rfc3339
from evidencekit.errors import BundleError

FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
# Format version 4: a seal that says the payload is compressed (docs/FORMAT.md §3, §9). Only the
# seal says 4; the manifest and the custody events keep version 2, as nothing in them changed.
COMPRESSED_VERSION = 4
SEAL_VERSIONS = (*SUPPORTED_VERSIONS, COMPRESSED_VERSION)
COMPRESSIONS = ("zstd",)
SEAL_TYPE = "evidencekit.seal"
EVENT_TYPE = "evidencekit.custody-event"
MANIFEST_TYPE = "evidencekit.manifest"

README = "README.txt"
PAYLOAD = "payload.age"
SEAL = "seal.json"
SEAL_SIG = "seal.json.sig"
CUSTODY_DIR = "custody/"

ACTIONS = ("captured", "transferred", "received", "verified", "accessed", "resealed", "exported",
           "note")

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def custody_member(sequence: int) -> str:
    return f"{CUSTODY_DIR}{sequence:06d}.json"


TIMESTAMP_DIR = "timestamps/"  # format version 3: RFC 3161 responses (docs/FORMAT.md §6.1)


def timestamp_member(sequence: int) -> str:
    return f"{TIMESTAMP_DIR}{sequence:06d}.tsr"


class Fields:
    """Typed access to a parsed JSON object; every wrong type raises BundleError naming the field."""

    def __init__(self, document: dict[str, Any], what: str) -> None:
        self._doc = document
        self._what = what

    def _get(self, key: str, kind: type | tuple[type, ...], doc: dict[str, Any] | None = None) -> Any:
        source = self._doc if doc is None else doc
        if key not in source:
            raise BundleError(f"{self._what} has no field {key!r}")
        value = source[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise BundleError(f"{self._what}: field {key!r} has the wrong type")
        return value

    def text(self, key: str, doc: dict[str, Any] | None = None) -> str:
        value: str = self._get(key, str, doc)
        return value

    def integer(self, key: str, doc: dict[str, Any] | None = None) -> int:
        value: int = self._get(key, int, doc)
        if value < 0:
            raise BundleError(f"{self._what}: field {key!r} is negative")
        return value

    def flag(self, key: str, doc: dict[str, Any] | None = None) -> bool:
        value: bool = self._get(key, bool, doc)
        return value

    def obj(self, key: str, doc: dict[str, Any] | None = None) -> dict[str, Any]:
        value: dict[str, Any] = self._get(key, dict, doc)
        return value

    def sequence(self) -> int:
        """The ``sequence`` of an event or addendum: numbered from 1."""
        value = self.integer("sequence")
        if value < 1:
            raise BundleError(f"{self._what}: sequence must start at 1")
        return value

    def text_map(self, key: str) -> dict[str, str]:
        """An object whose values are all strings (the ``details`` of events and addenda)."""
        value = self.obj(key)
        if not all(isinstance(item, str) for item in value.values()):
            raise BundleError(f"{self._what}: every value in {key!r} must be a string")
        return dict(value)

    def person(self, key: str) -> dict[str, Any]:
        """The object naming who signed (``actor``, ``author``): exactly name, key, fingerprint."""
        value = self.obj(key)
        self.exact_keys({"name", "public_key", "fingerprint"}, value)
        return value

    def signer(self, person: dict[str, Any]) -> Signer:
        return Signer(self.text("public_key", person), self.text("fingerprint", person))

    def sha256(self, key: str, doc: dict[str, Any] | None = None) -> str:
        value = self.text(key, doc)
        if not _HEX64.match(value):
            raise BundleError(f"{self._what}: field {key!r} is not a SHA-256 hex digest")
        return value

    def time(self, key: str, doc: dict[str, Any] | None = None) -> str:
        value = self.text(key, doc)
        try:
            parse_rfc3339(value)
        except ValueError:
            raise BundleError(f"{self._what}: field {key!r} is not a UTC timestamp") from None
        return value

    def exact_keys(self, keys: set[str], doc: dict[str, Any] | None = None) -> None:
        source = self._doc if doc is None else doc
        extra = set(source) - keys
        missing = keys - set(source)
        if extra or missing:
            raise BundleError(f"{self._what}: unexpected fields {sorted(extra)} / missing fields "
                              f"{sorted(missing)}")


def document_json(doc_type: str, version: int, case_id: str, fields: dict[str, Any]) -> bytes:
    """The canonical JSON of a signed document: the header every kind carries (its ``type``,
    ``format_version`` and ``case_id``) and its own *fields*."""
    return canonical.dumps({"type": doc_type, "format_version": version, "case_id": case_id,
                            **fields})


def open_document(data: bytes, what: str, doc_type: str,
                  versions: tuple[int, ...] = SUPPORTED_VERSIONS) -> tuple[Fields, int]:
    """Parse the canonical JSON of a signed document of type *doc_type*: its fields and its
    format version (one of *versions*); BundleError naming *what* otherwise."""
    fields = Fields(canonical.loads(data, what), what)
    if fields.text("type") != doc_type:
        raise BundleError(f"{what} is not of type {doc_type}")
    version = fields.integer("format_version")
    if version not in versions:
        raise BundleError(f"{what} has format version {version}, which this evidencekit "
                          f"does not know (it reads versions {list(versions)})",
                          hint="update evidencekit")
    return fields, version


@dataclass(frozen=True)
class Signer:
    public_key: str  # OpenSSH line without comment
    fingerprint: str

    def person_json(self, name: str) -> dict[str, str]:
        """The object naming who signed, as events and addenda hold it."""
        return {"name": name, "public_key": self.public_key, "fingerprint": self.fingerprint}


_SEAL_KEYS = {"type", "format_version", "case_id", "created", "capture_started", "readme_sha256",
              "payload", "manifest_root", "manifest_sha256", "counts", "total_bytes", "complete",
              "signer", "tool"}
COUNT_KEYS = ("files", "directories", "symlinks", "special", "errors", "changed", "skipped")


@dataclass(frozen=True)
class Seal:
    case_id: str
    created: str
    capture_started: str
    readme_sha256: str
    payload_size: int
    payload_sha256: str
    manifest_root: str
    manifest_sha256: str
    counts: dict[str, int]
    total_bytes: int
    complete: bool
    signer: Signer
    tool_version: str
    format_version: int = FORMAT_VERSION
    # Version 4 only: how the payload tar was compressed before age encrypted it ("zstd").
    payload_compression: str | None = None

    def to_json(self) -> bytes:
        compression = {} if self.payload_compression is None else \
            {"payload_compression": self.payload_compression}
        return document_json(SEAL_TYPE, self.format_version, self.case_id, {
            **compression,
            "created": self.created,
            "capture_started": self.capture_started,
            "readme_sha256": self.readme_sha256,
            "payload": {"name": PAYLOAD, "size": self.payload_size, "sha256": self.payload_sha256},
            "manifest_root": self.manifest_root,
            "manifest_sha256": self.manifest_sha256,
            "counts": self.counts,
            "total_bytes": self.total_bytes,
            "complete": self.complete,
            "signer": {"public_key": self.signer.public_key,
                       "fingerprint": self.signer.fingerprint},
            "tool": {"name": "evidencekit", "version": self.tool_version},
        })

    @classmethod
    def from_json(cls, data: bytes) -> Seal:
        f, version = open_document(data, "seal.json", SEAL_TYPE, SEAL_VERSIONS)
        compression = None
        if version == COMPRESSED_VERSION:
            f.exact_keys(_SEAL_KEYS | {"payload_compression"})
            compression = f.text("payload_compression")
            if compression not in COMPRESSIONS:
                raise BundleError(f"seal.json: the payload is compressed with {compression[:40]!r},"
                                  " which this evidencekit does not know (it knows "
                                  f"{', '.join(COMPRESSIONS)})", hint="update evidencekit")
        else:
            f.exact_keys(_SEAL_KEYS)
        payload = f.obj("payload")
        f.exact_keys({"name", "size", "sha256"}, payload)
        if f.text("name", payload) != PAYLOAD:
            raise BundleError("seal.json names an unexpected payload member")
        counts = f.obj("counts")
        f.exact_keys(set(COUNT_KEYS), counts)
        signer = f.obj("signer")
        f.exact_keys({"public_key", "fingerprint"}, signer)
        tool = f.obj("tool")
        return cls(
            case_id=f.text("case_id"), created=f.time("created"),
            capture_started=f.time("capture_started"), readme_sha256=f.sha256("readme_sha256"),
            payload_size=f.integer("size", payload), payload_sha256=f.sha256("sha256", payload),
            manifest_root=f.sha256("manifest_root"), manifest_sha256=f.sha256("manifest_sha256"),
            counts={k: f.integer(k, counts) for k in COUNT_KEYS}, total_bytes=f.integer("total_bytes"),
            complete=f.flag("complete"),
            signer=Signer(f.text("public_key", signer), f.text("fingerprint", signer)),
            tool_version=f.text("version", tool), format_version=version,
            payload_compression=compression,
        )


_EVENT_KEYS = {"type", "format_version", "case_id", "sequence", "action", "time", "clock_source",
               "actor", "host", "counterparty", "note", "details", "payload_sha256",
               "previous_sha256"}


@dataclass(frozen=True)
class CustodyEvent:
    case_id: str
    sequence: int
    action: str
    time: str
    clock_source: str
    actor_name: str
    actor: Signer
    host: str
    note: str
    payload_sha256: str
    previous_sha256: str  # SHA-256 of the previous event's JSON; of seal.json for the first
    counterparty: str = ""  # to whom (transferred) or from whom (received) the bundle went
    details: dict[str, str] = field(default_factory=dict)  # action-specific facts (§6)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        return document_json(EVENT_TYPE, self.format_version, self.case_id, {
            "sequence": self.sequence,
            "action": self.action,
            "time": self.time,
            "clock_source": self.clock_source,
            "actor": self.actor.person_json(self.actor_name),
            "host": self.host,
            "counterparty": self.counterparty,
            "note": self.note,
            "details": self.details,
            "payload_sha256": self.payload_sha256,
            "previous_sha256": self.previous_sha256,
        })

    @classmethod
    def from_json(cls, data: bytes, what: str) -> CustodyEvent:
        f, version = open_document(data, what, EVENT_TYPE)
        f.exact_keys(_EVENT_KEYS)
        actor = f.person("actor")
        action = f.text("action")
        if action not in ACTIONS:
            raise BundleError(f"{what}: unknown custody action {action!r}")
        sequence = f.sequence()
        details = f.text_map("details")
        return cls(
            case_id=f.text("case_id"), sequence=sequence, action=action, time=f.time("time"),
            clock_source=f.text("clock_source"), actor_name=f.text("name", actor),
            actor=f.signer(actor),
            host=f.text("host"), note=f.text("note"), payload_sha256=f.sha256("payload_sha256"),
            previous_sha256=f.sha256("previous_sha256"), counterparty=f.text("counterparty"),
            details=details, format_version=version,
        )
