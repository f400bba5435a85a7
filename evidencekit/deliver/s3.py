"""An S3 bucket as an evidence store: bundles land there under object lock, never overwritten.

Facts this module is built on (docs/decisions/s3-store.md, docs/FORMAT.md §6):

- an object's key comes from the bundle's case, the host that captured it and its payload's
  SHA-256 (:func:`object_key`): two bundles never share a key, and a retry finds the first
  delivery instead of making a second object;
- every upload is a multipart upload completed with ``If-None-Match: *``: the server refuses to
  complete it over an existing object, and until it is completed nothing is visible under the
  key (an interrupted upload is aborted and leaves no object);
- each part carries its SHA-256 (``x-amz-checksum-sha256``), which the server checks: botocore
  no longer adds Content-MD5 by itself, and a locked upload needs a checksum;
- retention is COMPLIANCE mode (nobody, not even the account's root, can shorten it or delete
  the object before the date), plus an optional legal hold; a bucket without object lock is
  refused unless the caller says so (``--no-lock``, recorded in the custody event);
- after the upload the object is read back and compared part by part with what was sent.
- a store that stalls or cannot be reached is given up in bounded time (:class:`Patience`),
  with one line and the upload aborted; a slow link that keeps moving is not cut.

Credentials come from boto3's standard chain (environment, profile, instance role); nothing
here prints or records them. boto3 is an optional extra (``pip install 'evidencekit[s3]'``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import ipaddress
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn, cast
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from evidencekit.deliver.base import BundleFacts, Delivery
from evidencekit.errors import BundleError, InputError, Interrupted, StoreError, UsageError
from evidencekit.format.outer import SeekBack
from evidencekit.progress import Progress
from evidencekit.rawreader import RawReader
from evidencekit.text import plural

if TYPE_CHECKING:
    from evidencekit.fs.direct import DiskWriter
    from evidencekit.verify import HashedRange, Report

SCHEME = "s3://"
SUFFIX = ".evidence"
# Parts grow by PART_SIZE every PARTS_PER_STEP parts (see part_size): 820 GiB in 10,000 parts
PART_SIZE = 8 << 20
PARTS_PER_STEP = 500
MIN_PART = 5 << 20  # S3's smallest part but the last
MAX_PARTS = 10_000  # S3's most parts in one upload
UPLOAD_THREADS = 2
_READ_CHUNK = 1 << 20
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
INSTALL_HINT = ("install the S3 support into evidencekit's environment: pip install "
                "'evidencekit[s3]' (installed with pipx: pipx inject evidencekit boto3)")


@dataclass(frozen=True)
class S3Url:
    """``s3://bucket/key-or-prefix``."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, text: str) -> S3Url:
        if not is_s3_url(text):
            raise UsageError(f"{text}: an S3 location starts with s3://")
        bucket, _, key = text[len(SCHEME):].partition("/")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
            raise UsageError(f"{text}: {bucket!r} is not an S3 bucket name",
                             hint="write s3://BUCKET/PREFIX/, e.g. s3://evidence/CASE-1/")
        # S3 takes '..' and '//' literally, but stores in front of a file system (SeaweedFS,
        # MinIO) fold them or refuse them: the key recorded would not be the key stored.
        if any(part in ("", ".", "..") for part in key.removesuffix("/").split("/")) and key:
            raise UsageError(f"{text}: a key or prefix with an empty, '.' or '..' part (such as "
                             "'//' or '../') names different objects on different stores",
                             hint="write s3://BUCKET/PREFIX/, e.g. s3://evidence/CASE-1/")
        return cls(bucket, key)

    @property
    def prefix(self) -> str:
        """The key as a folder: '' or ending with '/'."""
        return self.key if not self.key or self.key.endswith("/") else self.key + "/"

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


def is_s3_url(text: str) -> bool:
    return text.lower().startswith(SCHEME)


def object_key(prefix: str, facts: BundleFacts) -> str:
    """``PREFIX/CASE/HOST/PAYLOAD-SHA256.evidence``: names made of letters, digits, '.', '_' and
    '-' only (others become '_'); the hash alone keeps two bundles apart."""
    return f"{prefix}{_safe(facts.case_id)}/{_safe(facts.host)}/{facts.payload_sha256}{SUFFIX}"


# The names evidencekit gives objects (object_key, S3Capture), the folders before them the case
# and the host made safe (_safe): what verify s3:// and store get hold the bundle read to.
# A hex digest says the same in any case, and so does the suffix to a reader: a bundle stored as
# '…/E9B6….EVIDENCE', beside the one named, was not judged (verify exit 0 with another payload).
_PUT_NAME = re.compile(r"(?:.*/)?([^/]+)/([^/]+)/([0-9a-f]{64})" + re.escape(SUFFIX),
                       re.IGNORECASE)
_CAPTURE_NAME = re.compile(r"(?:.*/)?([^/]+)/([^/]+)/capture-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}"
                           + re.escape(SUFFIX), re.IGNORECASE)


def why_not_the_named_bundle(url: S3Url, report: Report) -> str | None:
    """Why the bundle read at *url* (its public parts verified: *report*) is not the one the
    object's name says it is, or None. A bundle verifies wherever it lies: one put in place of
    another (an unlocked bucket, a version deleted and written again) verified as if it were the
    one named, and ``store get`` said 'same SHA-256 as recorded when it was uploaded' (the
    metadata, which whoever writes the object sets). A name ``store put`` gives holds the case,
    the host and the payload's SHA-256; one ``capture -o s3://`` gives is recorded, whole, in
    the bundle's signed capture event. The prefix before the case is not judged (a bucket
    replicated, or copied under another prefix, holds the same bundle), nor another name
    (renamed by hand)."""
    seal = report.seal
    if seal is None or not report.events or report.payload is None:
        return None  # verification already says what is wrong
    first = report.events[0]
    named = _PUT_NAME.fullmatch(url.key)
    if named:
        case, host, payload = named.groups()
        if payload.lower() != report.payload.sha256:
            return (f"its name says payload {payload}, the bundle it holds has payload "
                    f"{report.payload.sha256}")
        if (case, host) != (_safe(seal.case_id), _safe(first.host)):
            return (f"its name says case {case!r} and host {host!r}, the bundle it holds is "
                    f"of case {seal.case_id!r}, captured on {first.host!r}")
        return None
    named = _CAPTURE_NAME.fullmatch(url.key)
    if named:
        recorded = first.details.get("key") if first.details.get("destination") == "s3" \
            else None
        if recorded is None or _last_three(recorded) != _last_three(url.key):
            return ("its capture event records that it was written "
                    + (f"to key {recorded!r}" if recorded else "elsewhere (not to a store)")
                    + f", not to {url.key!r}")
    return None


def _last_three(key: str) -> list[str]:
    """The case, the host and the name of a capture's key, the name in lower case (as the
    pattern that finds it takes it)."""
    *folders, name = key.split("/")[-3:]
    return [*folders, name.lower()]


def judge_name(location: str, report: Report) -> None:
    """verify s3://…: a finding when the bundle read is not the one the object's name says
    (:func:`why_not_the_named_bundle`)."""
    why = why_not_the_named_bundle(S3Url.parse(location), report)
    if why is not None:
        report.findings.error("store-name", location,
                              f"the object is not the bundle its name says: {why} (replaced, "
                              "or stored under another bundle's name)")


def check_downloaded(url: S3Url, downloaded: Path, progress: Progress,
                     payload_hashed: HashedRange | None = None) -> None:
    """store get: BundleError when the bundle downloaded to *downloaded* (not yet published)
    does not verify (its public parts, read from the file, and its payload hash: the one
    *payload_hashed* took from the bytes as they were written (:class:`PayloadWatch`), else
    read once more here), or is not the one the object's name says
    (:func:`why_not_the_named_bundle`). Its SHA-256 matching the object's metadata proves
    nothing against whoever wrote the object: they set both."""
    from evidencekit.verify import verify

    report = verify(downloaded, progress=progress, payload_hashed=payload_hashed)
    if not report.findings.ok:
        raise BundleError(f"{url}: the bundle read does not verify "
                          f"({report.findings.first_error_said(str(downloaded))}); nothing was "
                          "kept",
                          hint=f"'evidencekit verify {url}' lists every finding; the store's own "
                          "tools (aws s3api get-object) copy the object as it is, to examine it")
    why = why_not_the_named_bundle(url, report)
    if why is not None:
        raise BundleError(f"{url}: the object is not the bundle its name says: {why}; "
                          "nothing was kept", hint="someone replaced it, or stored another "
                          "bundle under this name: read its versions with the store's own tools "
                          "(aws s3api list-object-versions) and find out who wrote it")


def _safe(text: str) -> str:
    name = _SAFE.sub("_", text)[:100]
    return "_" if name in ("", ".", "..") else name


def finding_metadata(case_id: str, host: str, written_by: str,
                     payload_sha256: str = "") -> dict[str, str]:
    """User metadata (x-amz-meta-*) that lets ``store list`` say whose bundle an object is,
    whatever prefix it was stored under: the case and host exactly (percent-encoded: header
    values are ASCII), what wrote it, and the payload's SHA-256 when it is known as the upload
    starts (store put; a capture's is not). Whoever may write to the bucket can set these too:
    they help find bundles (a host that delivered twice), verification says what they are."""
    found = {"case": quote(case_id[:200], safe=""), "host": quote(host[:200], safe=""),
             "written-by": written_by}
    if payload_sha256:
        found["payload-sha256"] = payload_sha256
    return found


@dataclass(frozen=True)
class Lock:
    """What protects a new object: COMPLIANCE retention until *retain_until* and an optional
    legal hold; ``enabled`` False when the caller accepted a bucket without object lock."""

    retain_until: datetime | None
    legal_hold: bool = False
    enabled: bool = True

    @classmethod
    def from_options(cls, retain_until: str | None, retain_days: int | None, legal_hold: bool,
                     no_lock: bool, now: datetime) -> Lock:
        if no_lock:
            if retain_until or retain_days is not None or legal_hold:
                raise UsageError("--no-lock cannot be combined with --retain-until, "
                                 "--retain-days or --legal-hold")
            return cls(None, False, False)
        if retain_until and retain_days is not None:
            raise UsageError("give --retain-until or --retain-days, not both")
        if retain_days is not None:
            if retain_days < 1:
                raise UsageError("--retain-days must be 1 or more")
            try:
                until = now + timedelta(days=retain_days)
            except OverflowError:
                raise UsageError(f"--retain-days {retain_days}: that is past the year 9999"
                                 ) from None
        elif retain_until:
            until = _parse_date(retain_until)
        else:
            raise UsageError("say how long the store must keep the bundle: --retain-until DATE "
                             "or --retain-days N",
                             hint="nobody can delete it or shorten that time (COMPLIANCE "
                             "mode); --no-lock stores it without protection")
        if until <= now:
            raise UsageError(f"--retain-until {retain_until}: that date has passed")
        return cls(until.replace(microsecond=0), legal_hold, True)

    def upload_arguments(self) -> dict[str, Any]:
        if not self.enabled or self.retain_until is None:
            return {}
        arguments: dict[str, Any] = {"ObjectLockMode": "COMPLIANCE",
                                     "ObjectLockRetainUntilDate": self.retain_until}
        if self.legal_hold:
            arguments["ObjectLockLegalHoldStatus"] = "ON"
        return arguments


def _parse_date(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--retain-until {text}: not a date",
                         hint="write YYYY-MM-DD (midnight UTC) or YYYY-MM-DDTHH:MM:SSZ") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def rfc3339(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- talking to the store ------------------------------------------------------------------

@dataclass(frozen=True)
class Patience:
    """How long the store may stay silent before evidencekit gives up on a request.

    ``silence``: the longest wait for an answer (botocore's read timeout, between any two bytes
    received); ``stall``: the longest wait for a connection, and for any progress while sending
    (the connect timeout, which urllib3 keeps on the socket while it sends a request: per block
    of 128 KiB, since parts are sent from a file-like body, see :class:`_PartBody`); ``attempts``:
    tries per request, the first included. A slow store that keeps answering, or a slow network
    that keeps taking bytes, never trips these; a stalled or unreachable one ends in a StoreError
    after about ``attempts`` x ``silence`` (plus botocore's backoff, a few seconds).
    ``EVIDENCEKIT_S3_TIMEOUT`` (seconds) and ``AWS_MAX_ATTEMPTS`` change them.
    """

    silence: float = 30.0
    stall: float = 10.0
    attempts: int = 3

    @classmethod
    def from_environment(cls) -> Patience:
        silence = _positive_number("EVIDENCEKIT_S3_TIMEOUT", cls.silence)
        attempts = int(_positive_number("AWS_MAX_ATTEMPTS", cls.attempts, whole=True))
        return cls(silence, min(silence, cls.stall), attempts)

    @property
    def tries(self) -> str:
        return "1 try" if self.attempts == 1 else f"{self.attempts} tries"


def _positive_number(name: str, default: float, whole: bool = False) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = 0
    if not 0 < value < 86_400:
        raise UsageError(f"{name}={text}: not a {'whole ' if whole else ''}number of "
                         f"{'tries' if whole else 'seconds'} (default {default:g})")
    return value


def make_client(endpoint: str | None) -> Any:
    """An S3 client with boto3's standard credential chain; *endpoint* for S3-compatible
    stores (path-style addressing there: their buckets are rarely DNS names). Made by botocore
    itself: boto3's session adds resources and transfer helpers nothing here uses, and 3 MB to
    every process that talks to a store."""
    try:
        import botocore.session
        from botocore.config import Config
    except ImportError:
        raise UsageError("S3 support is not installed", hint=INSTALL_HINT) from None
    # botocore reads AWS_ENDPOINT_URL(_S3) itself when no --endpoint is given
    custom = endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get(
        "AWS_ENDPOINT_URL")
    _check_endpoint(endpoint)
    patience = Patience.from_environment()
    # botocore's 60 s timeouts, with the 6 tries asked for before, kept a command waiting
    # on a stalled store for six minutes per request
    config = Config(connect_timeout=patience.stall, read_timeout=patience.silence,
                    retries={"total_max_attempts": patience.attempts, "mode": "standard"},
                    tcp_keepalive=True,
                    s3={"addressing_style": "path"} if custom else {},
                    # the checksums are given explicitly (SHA-256), never guessed
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required")
    with talking_to(_without_secrets(endpoint) if endpoint else "S3"):
        try:
            return botocore.session.get_session().create_client("s3", endpoint_url=endpoint,
                                                                config=config)
        except ValueError as exc:  # an endpoint from the environment or an AWS profile
            raise UsageError(f"the S3 store's address is not usable: {_shown(str(exc))}",
                             hint=_ENDPOINT_HINT) from None


_ENDPOINT_HINT = ("write the store's address with http:// or https://, e.g. --endpoint "
                  "https://s3.example.org:9000 (or AWS_ENDPOINT_URL_S3)")


def _shown(text: str) -> str:
    """*text* without a user name and password, also where no scheme comes before them
    (KEY:SECRET@host:9000, which _scrubbed leaves)."""
    return re.sub(r"[^\s/@\"'<>]+@", "", _scrubbed(text))


def _check_endpoint(endpoint: str | None) -> None:
    """--endpoint as typed: without a scheme (127.0.0.1:9000) or empty, boto3 raised a
    ValueError when the client was made, which reached the CLI as an internal error (exit 5)."""
    if endpoint is None:
        return
    parts = urlsplit(endpoint)
    try:
        host = parts.hostname
        parts.port  # noqa: B018 (a port that is not a number raises ValueError)
    except ValueError:
        host = None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise UsageError(f"--endpoint {_shown(endpoint)!r} is not the address of a store",
                         hint=_ENDPOINT_HINT)


@contextmanager
def talking_to(where: str) -> Iterator[None]:
    """Turn botocore's errors into StoreError with plain words (never a credential)."""
    try:
        import botocore.exceptions as bx
    except ImportError:
        raise UsageError("S3 support is not installed", hint=INSTALL_HINT) from None
    try:
        yield
    except bx.NoCredentialsError:
        raise StoreError(f"no credentials for {where}",
                         hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, "
                         "or run where an instance role gives them") from None
    except bx.ReadTimeoutError:
        patience = Patience.from_environment()
        raise StoreError(f"{where} stopped answering (nothing for {patience.silence:g} s, "
                         f"{patience.tries})",
                         hint=_STALLED_HINT) from None
    except bx.ConnectTimeoutError:
        patience = Patience.from_environment()
        raise StoreError(f"cannot reach {where}: no connection within {patience.stall:g} s "
                         f"({patience.tries})",
                         hint="check --endpoint and the network") from None
    except bx.EndpointConnectionError as exc:
        raise StoreError(f"cannot reach {where}: {_scrubbed(str(exc))}",
                         hint="check --endpoint and the network") from None
    except bx.ConnectionClosedError:
        # also what urllib3 makes of a send that made no progress for the connect timeout
        patience = Patience.from_environment()
        raise StoreError(f"the connection to {where} broke or stalled (closed, or no progress "
                         f"for {patience.stall:g} s; {patience.tries})", hint=_STALLED_HINT
                         ) from None
    except bx.ClientError as exc:
        _raise_refusal(exc, where)
    except bx.BotoCoreError as exc:
        raise StoreError(f"{where}: {_scrubbed(str(exc))}") from None


_STALLED_HINT = ("the store or the network is stalled; try again later (a slow store that "
                 "needs longer: EVIDENCEKIT_S3_TIMEOUT=SECONDS)")


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s\"'<>]*@")


def _scrubbed(text: str) -> str:
    """*text* (botocore's words, which quote the endpoint's whole URL) without the user name
    and password an endpoint may carry (https://KEY:SECRET@host/)."""
    return _USERINFO.sub(r"\1", text)


_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
                     "ExpiredToken", "InvalidClientTokenId"}


def _raise_refusal(exc: Any, where: str) -> NoReturn:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = _scrubbed(str(error.get("Message", ""))) or code
    if code in _CREDENTIAL_CODES:
        raise StoreError(f"{where} refused the credentials ({code})",
                         hint="check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the profile"
                         ) from None
    if code == "NoSuchBucket":
        raise StoreError(f"{where}: there is no such bucket") from None
    if code in ("NoSuchKey", "404", "NotFound"):
        raise StoreError(f"{where}: there is no such object") from None
    if code in ("AccessDenied", "403"):
        raise StoreError(f"{where} refused: access denied", hint="the credentials may lack a "
                         "permission this needs") from None
    if code in _DIGEST_CODES:  # SeaweedFS says "Content-Md5" of a SHA-256 that did not match
        raise StoreError(f"{where} refused the upload: the bytes it received do not match the "
                         f"checksum sent with them ({code}): they were changed on the way",
                         hint="check the network path to the store (a proxy, a faulty link) "
                         "and try again") from None
    raise StoreError(f"{where} refused: {message} ({code})") from None


_DIGEST_CODES = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"})


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def bucket_has_lock(client: Any, bucket: str) -> bool:
    import botocore.exceptions as bx

    with talking_to(f"{SCHEME}{bucket}"):
        try:
            answer = client.get_object_lock_configuration(Bucket=bucket)
        except bx.ClientError as exc:
            if error_code(exc) == "ObjectLockConfigurationNotFoundError":
                return False
            raise
    return bool(answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled")


# --- writing one object ----------------------------------------------------------------------

def part_size(number: int) -> int:
    """The size of part *number* (1-based): 8 MiB, one more 8 MiB every 500 parts, so that
    10,000 parts (S3's limit) hold 820 GiB. Memory is about three parts (two on their way, one
    filling): 24 MiB for a bundle of up to 4 GiB. With 16 MiB parts, a capture -o s3:// held
    69 MiB of parts and peaked at 169 MB against 60 MB for a capture to a local file; parts of
    8 MiB upload as fast to a store on loopback (AWS's own tools use 8 MiB parts)."""
    return PART_SIZE * (1 + (number - 1) // PARTS_PER_STEP)


def _checksum_signs_part_body(context: dict[str, Any], **_: Any) -> None:
    """A part's body is sent as UNSIGNED-PAYLOAD: its SHA-256 travels in the
    ``x-amz-checksum-sha256`` header, which the signature covers and the store checks against
    the body, so SigV4's own hash of the body (which botocore computes over plain http, one more
    SHA-256 pass over every byte uploaded) protects nothing more. botocore does the same by
    itself over https when a checksum is given; here also over http (a store on loopback)."""
    from botocore.config import Config

    config = context.get("client_config")
    if config is not None:
        context["client_config"] = config.merge(Config(s3={
            **(getattr(config, "s3", None) or {}), "payload_signing_enabled": False}))


def parts_may_go_unsigned(endpoint_url: str) -> bool:
    """Whether parts may go as UNSIGNED-PAYLOAD to *endpoint_url*: over https (TLS keeps the
    bytes as sent) or to a store on this machine (loopback), not over plain http across a
    network. There a store that does not check ``x-amz-checksum-sha256`` (S3-compatible
    stores older than flexible checksums) would keep a part altered on the way, and complete
    it into a locked object that only the read-back then finds wrong: SigV4's hash of the
    body, which such stores check, makes them refuse the part."""
    url = urlsplit(endpoint_url)
    if url.scheme == "https":
        return True
    host = url.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _b64_sha256(data: bytes | bytearray | memoryview) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


class _PartBody(RawReader):
    """A part's bytes as a file, not as one bytes object: urllib3 sends a bytes body with one
    ``sendall``, whose socket timeout (the connect timeout) then bounds the whole part's
    sending, so a 16 MiB part on a slow uplink (under about 1.6 MB/s for 10 s) failed however
    steadily it went. A file is sent a block at a time (128 KiB), each under that timeout: a slow
    link works, a stalled one is noticed. Seekable, so that botocore can hash it for the
    signature and send it again on a retry."""

    def __init__(self, part: bytearray | memoryview) -> None:
        super().__init__()
        self._view = memoryview(part)
        self._at = 0

    def seekable(self) -> bool:
        return True

    def __len__(self) -> int:
        return len(self._view)

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), len(self._view) - self._at)
        memoryview(buffer).cast("B")[:count] = self._view[self._at : self._at + count]
        self._at += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._at, io.SEEK_END: len(self._view)}[whence]
        self._at = min(max(0, base + offset), len(self._view))
        return self._at

    def tell(self) -> int:
        return self._at

    def close(self) -> None:
        self._view.release()
        super().close()


class ObjectExists(StoreError):
    """The key is taken: the conditional upload was refused (HTTP 412), nothing was written."""


@dataclass
class Uploaded:
    key: str
    version_id: str
    size: int
    parts: list[tuple[int, str]] = field(default_factory=list)  # (size, SHA-256 hex) per part
    # the SHA-256 of the parts' SHA-256s (base64), as a store reports a multipart object's
    # checksum ("composite", with "-N" after it)
    composite: str = ""


class ObjectWriter:
    """Uploads one new object as it is written, in parts, on *threads* threads (at most
    ``threads`` parts on their way, one filling, and a held first one in memory). Nothing is
    visible under the key until :meth:`complete`, which never replaces an object; :meth:`abort`
    (or any exception) leaves none.

    With *hold_first*, the first part (5 MiB) is kept in memory until :meth:`complete`, which
    may change it (``patch``) before sending it: S3 assembles the parts by number, not by
    arrival, so a header at the start can be completed at the end (capture's payload size).
    """

    def __init__(self, client: Any, bucket: str, key: str, lock: Lock,
                 metadata: dict[str, str] | None = None, *, hold_first: bool = False,
                 threads: int = UPLOAD_THREADS) -> None:
        self._client, self.bucket, self.key = client, bucket, key
        self._where = f"{SCHEME}{bucket}/{key}"
        meta = getattr(client, "meta", None)  # (a test's stand-in has none)
        events = getattr(meta, "events", None)
        if events is not None and parts_may_go_unsigned(str(getattr(meta, "endpoint_url", ""))):
            events.register("before-parameter-build.s3.UploadPart", _checksum_signs_part_body,
                            unique_id="evidencekit-checksum-signs-part-body")
        with talking_to(self._where):
            answer = client.create_multipart_upload(
                Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256",
                ContentType="application/octet-stream", Metadata=metadata or {},
                **lock.upload_arguments())
        self._upload_id: str = answer["UploadId"]
        self._hold_first = hold_first
        self.held: bytearray | None = None
        self._number = 1
        # A held first part is as small as S3 allows: it is sent last, after everything else.
        self._buffer = bytearray(MIN_PART if hold_first else part_size(1))
        self._filled = 0
        self._parts: dict[int, tuple[int, str, str]] = {}  # number -> size, checksum, ETag
        self._futures: list[Future[None]] = []
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="evidencekit-s3")
        self._slots = threading.BoundedSemaphore(threads)
        self._threads = threads
        self._spare: dict[int, list[bytearray]] = {}  # sent parts' buffers, by size, to reuse
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        total = len(view)
        while view:
            room = len(self._buffer) - self._filled
            count = min(room, len(view))
            self._buffer[self._filled : self._filled + count] = view[:count]
            self._filled += count
            view = view[count:]
            if self._filled == len(self._buffer):
                self._send_buffer()
        self.size += total
        return total

    def overwrite(self, offset: int, data: memoryview) -> None:
        """Change bytes already written, which must lie in the first part while it is still
        here (held, or not yet full): capture completing the payload's header."""
        end = offset + len(data)
        if self.held is not None and end <= len(self.held):
            self.held[offset:end] = data
        elif self._number == 1 and end <= self._filled:
            self._buffer[offset:end] = data
        else:
            raise ValueError(f"bytes {offset}-{end} of an upload were already sent")

    def _send_buffer(self, last: bool = False) -> None:
        number = self._number
        part: bytearray | memoryview = self._buffer
        if self._filled < len(self._buffer):  # the last part: its bytes, not a copy of them
            part = memoryview(self._buffer)[: self._filled]
            if number == 1 and self._hold_first:
                part = bytearray(part)  # held, and patched as a bytearray
        if number > MAX_PARTS:
            raise StoreError(f"{self._where}: more than an S3 object can hold in {MAX_PARTS:,} "
                             f"parts ({sum(map(part_size, range(1, MAX_PARTS + 1))) >> 30} GiB); "
                             "nothing was stored", hint="capture to a local file instead")
        self._number += 1
        self._filled = 0
        if number == 1 and self._hold_first:
            assert isinstance(part, bytearray)
            self.held = part
        else:
            self._send(number, part)
        # after the part is on its way (_send waits for a free thread): a buffer made before
        # that wait was one more part in memory (four of 16 MiB, not three)
        self._buffer = bytearray() if last else self._new_buffer()

    def _send(self, number: int, part: bytearray | memoryview) -> None:
        self._raise_failed()
        self._slots.acquire()
        try:
            future = self._pool.submit(self._upload_part, number, part)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def _raise_failed(self) -> None:
        """Raise the error of a part that failed; forget the parts that are done (the list stays
        as short as the parts on their way, whatever the number of parts)."""
        for future in [f for f in self._futures if f.done()]:
            future.result()
            self._futures.remove(future)

    def _upload_part(self, number: int, part: bytearray | memoryview) -> None:
        checksum = _b64_sha256(part)
        with talking_to(self._where), _PartBody(part) as body:
            answer = self._client.upload_part(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number,
                Body=body, ContentLength=len(part), ChecksumAlgorithm="SHA256",
                ChecksumSHA256=checksum)
        self._parts[number] = (len(part), checksum, str(answer["ETag"]))
        if isinstance(part, bytearray):  # a whole part (the last one is a view)
            spares = self._spare.setdefault(len(part), [])
            if len(spares) < self._threads:
                spares.append(part)  # the next part of this size is filled here: no new one

    def _new_buffer(self) -> bytearray:
        spares = self._spare.get(part_size(self._number))
        try:
            return spares.pop() if spares else bytearray(part_size(self._number))
        except IndexError:  # taken by a race with an upload thread: make one
            return bytearray(part_size(self._number))

    def complete(self, patch: Callable[[bytearray], None] | None = None) -> Uploaded:
        """Send what is left (the held first part last, after *patch*), and complete the
        upload unless an object exists under the key (:class:`ObjectExists`)."""
        if self._filled or self._number == 1:
            self._send_buffer(last=True)
        if self.held is not None:
            if patch is not None:
                patch(self.held)
            held, self.held = self.held, None
            self._send(1, held)
        for future in self._futures:
            future.result()
        self._pool.shutdown()
        numbers = sorted(self._parts)
        parts = [{"PartNumber": n, "ETag": self._parts[n][2],
                  "ChecksumSHA256": self._parts[n][1]} for n in numbers]
        import botocore.exceptions as bx

        with talking_to(self._where):
            try:
                answer = self._client.complete_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
                    MultipartUpload={"Parts": parts}, IfNoneMatch="*")
            except bx.ClientError as exc:
                if error_code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict",
                                           "NoSuchUpload"):
                    raise
                answer = self._completed_by_an_earlier_try(numbers)
                if answer is None:
                    self.abort()
                    raise ObjectExists(f"{self._where} exists already; nothing was "
                                       "overwritten") from None
        sizes = [(self._parts[n][0], base64.b64decode(self._parts[n][1]).hex()) for n in numbers]
        return Uploaded(self.key, version_of(answer), self.size, sizes,
                        self._composite(numbers))

    def _composite(self, numbers: list[int]) -> str:
        return base64.b64encode(hashlib.sha256(b"".join(
            base64.b64decode(self._parts[n][1]) for n in numbers)).digest()).decode("ascii")

    def _completed_by_an_earlier_try(self, numbers: list[int]) -> dict[str, Any] | None:
        """The object's head when it is this very upload, completed by a try whose answer was
        lost (botocore then tries again, and the store says the key is taken, or the upload
        gone); None when it is another object, or the store does not say. The store's
        checksum of a multipart object is the SHA-256 of its parts' SHA-256s (a "composite"
        checksum, which it computed from the bytes it checked), so an equal one with the same
        size is these bytes in these parts."""
        import botocore.exceptions as bx

        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self.key,
                                            ChecksumMode="ENABLED")
        except bx.ClientError:
            return None
        if (stored_composite(head) != self._composite(numbers)
                or int(head.get("ContentLength", -1)) != self.size):
            return None
        return dict(head)

    def abort(self) -> bool:
        """Give up: no object is left (parts already sent are discarded by the server). False
        when the store could not be told (stalled, unreachable): the parts then wait there,
        invisible, for the bucket's lifecycle rule."""
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True)
        self.held = None
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=self.key,
                                                UploadId=self._upload_id)
        except Exception:  # the error that made us give up is the one to report
            return False
        return True

    def give_up(self, error: BaseException) -> None:
        """Abort, and say in *error* (a StoreError, the store failing mid-upload) what that
        left: no object either way, but perhaps parts the store could not be told to drop."""
        aborted = self.abort()
        if isinstance(error, StoreError) and "nothing was" not in error.message:
            error.message += ("; nothing was stored" if aborted else
                              "; nothing was stored, but the parts sent could not be removed "
                              "(the bucket's lifecycle rule for incomplete uploads will)")
            error.args = (error.message,)


def version_of(answer: dict[str, Any]) -> str:
    """The version an answer names; '' when the bucket keeps none: AWS then names no version,
    moto and LocalStack name it "null" and refuse a HEAD or GET range naming it (400), though it
    is the object itself (a bucket without versioning has that one, which a write replaces)."""
    version = str(answer.get("VersionId") or "")
    return "" if version == "null" else version


def stored_composite(head: dict[str, Any]) -> str:
    """The store's composite SHA-256 of an object ('' when it reports none)."""
    return str(head.get("ChecksumSHA256") or "").split("-", 1)[0]


def read_back(client: Any, uploaded: Uploaded, bucket: str) -> str:
    """Read the object just uploaded and compare it, part by part, with what was sent; its
    SHA-256 (hex). BundleError when the store holds other bytes."""
    where = f"{SCHEME}{bucket}/{uploaded.key}"
    whole = hashlib.sha256()
    with talking_to(where):
        body = client.get_object(Bucket=bucket, Key=uploaded.key,
                                 **({"VersionId": uploaded.version_id}
                                    if uploaded.version_id else {}))["Body"]
        for number, (size, expected) in enumerate(uploaded.parts, 1):
            part = hashlib.sha256()
            left = size
            while left:
                block = body.read(min(left, _READ_CHUNK))
                if not block:
                    break
                part.update(block)
                whole.update(block)
                left -= len(block)
            if left or part.hexdigest() != expected:
                raise BundleError(f"{where}: part {number} read back differs from what was "
                                  "sent", hint="the store does not keep what it is given; "
                                  "do not rely on this copy")
        if body.read(1):
            raise BundleError(f"{where}: the object read back is longer than what was sent")
    return whole.hexdigest()


@contextmanager
def stored_already(location: str, hint: str) -> Iterator[None]:
    """Ctrl-C or SIGTERM once an object is complete: it exists (locked, perhaps for years), so
    'nothing was written' would be false; say where it is and what was not done."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after the bundle was stored at {location} (it stays "
                          "there); checking and recording it were not finished",
                          hint=hint) from None


# --- the destination -------------------------------------------------------------------------

class S3Store:
    """Deliver bundles into ``s3://bucket/prefix/`` (see the module's docstring)."""

    def __init__(self, url: S3Url, lock: Lock, endpoint: str | None = None,
                 client: Any = None) -> None:
        self.url = url
        self.lock = lock
        self.client = client if client is not None else make_client(endpoint)
        self.endpoint = _recorded_endpoint(endpoint, self.client)

    def check_bucket(self) -> None:
        """Refuse a bucket without object lock unless the lock was explicitly given up."""
        if self.lock.enabled and not bucket_has_lock(self.client, self.url.bucket):
            raise StoreError(f"the bucket {self.url.bucket} has no object lock: a bundle there "
                             "could be deleted or replaced; nothing was stored",
                             hint="use a bucket created with object lock, or say --no-lock to "
                             "store it unprotected (the custody event records that)")

    def deliver(self, bundle: Path, facts: BundleFacts, progress: Progress) -> Delivery:
        self.check_bucket()
        key = object_key(self.url.prefix, facts)
        existing = self.head(key)
        if existing is not None:
            return self._found(key, existing, facts, progress)
        digest = _sha256_of_file(bundle)
        writer = ObjectWriter(self.client, self.url.bucket, key, self.lock, {
            "sha256": digest, **finding_metadata(facts.case_id, facts.host, "store put",
                                                 facts.payload_sha256)})
        try:
            with bundle.open("rb") as source:
                progress.start("Uploading", None, bundle.stat().st_size)
                sent = hashlib.sha256()
                while block := source.read(_READ_CHUNK):
                    sent.update(block)
                    writer.write(block)
                    progress.advance(nbytes=len(block))
                progress.finish()
            # Checked before completing: once complete, the object is locked for years under
            # the key that every retry takes as this bundle's delivery.
            if sent.hexdigest() != digest or facts.changed_since_verified(bundle):
                raise BundleError(f"{bundle} changed while it was being verified or uploaded; "
                                  "nothing was stored", hint="let whatever writes to it "
                                  "finish, then run 'evidencekit store put' again")
            uploaded = writer.complete()
        except ObjectExists:
            found = self.head(key)
            if found is None:
                raise
            return self._found(key, found, facts, progress)
        except BaseException as exc:
            writer.give_up(exc)
            raise
        with stored_already(f"{SCHEME}{self.url.bucket}/{key}", "run the same 'evidencekit "
                            "store put' again: it finds the stored copy, checks and records it"):
            read = read_back(self.client, uploaded, self.url.bucket)
            if read != digest:
                raise BundleError(f"{SCHEME}{self.url.bucket}/{key}: what the store holds is "
                                  f"not {bundle}", hint="do not rely on this copy")
            facts_now = self.head(key, uploaded.version_id)
            assert facts_now is not None
            return self.delivery(key, self.ensure_locked(key, facts_now), already_there=False)

    def _found(self, key: str, head: dict[str, Any], facts: BundleFacts,
               progress: Progress) -> Delivery:
        """An object under *key* already: taken as an earlier delivery of this bundle only when
        nobody wrote over it (the newest version would otherwise be locked and recorded as the
        bundle) and it is this bundle (:meth:`_is_this_bundle`); otherwise BundleError, and
        nothing is stored or recorded."""
        url = S3Url(self.url.bucket, key)
        version = the_only_version(self.client, url) or version_of(head)
        # the SHA-256 recorded is of bytes read (now, or by the delivery the custody log
        # names), never the metadata's: whoever put the object there wrote that
        sha256 = self._recorded(key, head, facts)
        if sha256 is None:
            why_not = self._why_not_this_bundle(url, version, facts, progress)
            if why_not is not None:
                raise BundleError(f"{url} exists and is not this bundle: {why_not}; nothing "
                                  "was stored or recorded",
                                  hint="find out who put it there (aws s3api head-object); "
                                  "keep this bundle under another prefix (s3://BUCKET/OTHER/)")
            sha256 = _sha256_of_object(self.client, url, version,
                                       int(head.get("ContentLength") or 0))
        return self.delivery(key, self.ensure_locked(key, head), already_there=True,
                             sha256=sha256)

    def _recorded(self, key: str, head: dict[str, Any], facts: BundleFacts) -> str | None:
        """The SHA-256 recorded when the bundle's own signed custody log names this very
        version, stored by an earlier ``store put`` (a retry after success): a version id names
        bytes that never change, so nothing needs reading. None otherwise, and for a store
        without versions (no id, or 'null': another object could have taken the key since)."""
        version = version_of(head)
        if version in ("", "null"):
            return None
        wanted = {"destination": "s3", "endpoint": self.endpoint or "",
                  "bucket": self.url.bucket, "key": key, "version_id": version,
                  "size": str(head.get("ContentLength", ""))}
        for event in facts.custody:
            if _recorded_delivery(event, wanted):
                return str(json.loads(event)["details"].get("sha256", ""))
        return None

    def _why_not_this_bundle(self, url: S3Url, version: str, facts: BundleFacts,
                             progress: Progress) -> str | None:
        """Read the object found (once, by ranges, nothing on disk) and verify it as a bundle:
        None when it is this bundle as it is or was (an upload completed whose recording was
        interrupted, perhaps before later events were added here), else what differs. The
        metadata's SHA-256 is not trusted: whoever may write to the bucket sets it."""
        from evidencekit.format.reader import open_stream
        from evidencekit.verify import verify

        try:
            opened = open_stream(cast(BinaryIO, RemoteObject(self.client, url, version)),
                                 Path(url.key))
        except (BundleError, InputError) as exc:
            return f"it is not a bundle ({exc.message})"
        try:
            with talking_to(str(url)):
                # its seal and custody log first (a few kilobytes): another bundle is told
                # without reading its payload; then the payload, hashed as it is read
                glance = verify(opened.path, opened=opened, check_payload_hash=False)
                why_not = facts.why_not_a_copy(glance, payload_read=False)
                if why_not is None:
                    found = verify(opened.path, opened=opened, progress=progress)
                    why_not = facts.why_not_a_copy(found)
        finally:
            opened.close()
        return why_not

    def ensure_locked(self, key: str, head: dict[str, Any]) -> dict[str, Any]:
        """The object's head once it holds the protection asked for. A store may ignore the lock
        asked for with the upload (moto's server does, for multipart uploads), and an object
        found from an earlier delivery may be held for less time: the retention is then set on
        that version (only ever lengthened) and read again. StoreError when the store still
        does not hold it: the object exists, unprotected, and the caller must know."""
        if not self.lock.enabled or self._holds(head):
            return head
        version = version_of(head)
        where = f"{SCHEME}{self.url.bucket}/{key}"
        target = {"Bucket": self.url.bucket, "Key": key,
                  **({"VersionId": version} if version else {})}
        with talking_to(where):
            if not self._retained(head):
                self.client.put_object_retention(**target, Retention={
                    "Mode": "COMPLIANCE", "RetainUntilDate": self.lock.retain_until})
            if self.lock.legal_hold and head.get("ObjectLockLegalHoldStatus") != "ON":
                self.client.put_object_legal_hold(**target, LegalHold={"Status": "ON"})
        again = self.head(key, version)
        if again is None or not self._holds(again):
            raise StoreError(f"{where} was stored, but the store does not hold the lock asked "
                             "for (COMPLIANCE retention until "
                             f"{rfc3339(self.lock.retain_until or datetime.now(timezone.utc))})",
                             hint="this store does not keep object lock: use another, or "
                             "--no-lock knowingly")
        return again

    def _retained(self, head: dict[str, Any]) -> bool:
        until = head.get("ObjectLockRetainUntilDate")
        asked = self.lock.retain_until
        return (head.get("ObjectLockMode") == "COMPLIANCE" and isinstance(until, datetime)
                and asked is not None and until >= asked - timedelta(seconds=1))

    def _holds(self, head: dict[str, Any]) -> bool:
        return self._retained(head) and (not self.lock.legal_hold
                                         or head.get("ObjectLockLegalHoldStatus") == "ON")

    def head(self, key: str, version_id: str = "") -> dict[str, Any] | None:
        """The object's head (with its lock), or None when there is none."""
        import botocore.exceptions as bx

        where = f"{SCHEME}{self.url.bucket}/{key}"
        with talking_to(where):
            try:
                return dict(self.client.head_object(
                    Bucket=self.url.bucket, Key=key, ChecksumMode="ENABLED",
                    **({"VersionId": version_id} if version_id else {})))
            except bx.ClientError as exc:
                if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise

    def delivery(self, key: str, head: dict[str, Any], already_there: bool,
                 sha256: str | None = None) -> Delivery:
        """What is recorded of the object at *key*: *sha256* as read, else (an upload just
        read back, whose metadata this process wrote) the metadata's."""
        location = f"{SCHEME}{self.url.bucket}/{key}"
        until = head.get("ObjectLockRetainUntilDate")
        details = {
            "destination": "s3",
            "endpoint": self.endpoint or "",
            "bucket": self.url.bucket,
            "key": key,
            "version_id": version_of(head),
            "sha256": sha256 if sha256 is not None
            else str(head.get("Metadata", {}).get("sha256", "")),
            "size": str(head.get("ContentLength", "")),
            "retention_mode": str(head.get("ObjectLockMode") or ""),
            "retain_until": rfc3339(until) if isinstance(until, datetime) else "",
            "legal_hold": "on" if head.get("ObjectLockLegalHoldStatus") == "ON" else "off",
            "object_lock": "required" if self.lock.enabled else "not required (--no-lock)",
        }
        where = f" at {self.endpoint}" if self.endpoint else ""
        return Delivery(location, f"S3 store {location}{where}", details, already_there)


def _recorded_endpoint(endpoint: str | None, client: Any) -> str | None:
    """The store's address as recorded (None: AWS). Without --endpoint, the one botocore took
    from AWS_ENDPOINT_URL(_S3) or the profile's endpoint_url: recording none would say AWS."""
    if endpoint:
        return _without_secrets(endpoint)
    used = str(getattr(getattr(client, "meta", None), "endpoint_url", "") or "")
    host = urlsplit(used).hostname or ""
    if not used or host == "amazonaws.com" or host.endswith(".amazonaws.com"):
        return None
    return _without_secrets(used)


def _without_secrets(endpoint: str) -> str:
    """An endpoint as it may be recorded and shown: without a user name or password in it."""
    parts = urlsplit(endpoint)
    if parts.username is None and parts.password is None:
        return endpoint
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _recorded_delivery(event_json: bytes, wanted: dict[str, str]) -> bool:
    """Whether a custody event (its JSON as signed) is a ``transferred`` event whose details
    hold every item of *wanted*."""
    event = json.loads(event_json)
    details = event.get("details") or {}
    return bool(event.get("action") == "transferred"
                and all(details.get(name) == value for name, value in wanted.items()))


def _sha256_of_object(client: Any, url: S3Url, version_id: str, size: int) -> str:
    """The SHA-256 of one version of an object of *size* bytes, read once in blocks (constant
    memory)."""
    digest = hashlib.sha256()
    with talking_to(str(url)):
        answer = client.get_object(Bucket=url.bucket, Key=url.key,
                                   **({"VersionId": version_id} if version_id else {}))
        for block in object_blocks(answer, size, url):
            digest.update(block)
    return digest.hexdigest()


def object_blocks(answer: dict[str, Any], size: int, url: S3Url) -> Iterator[bytes]:
    """The body of a GET *answer* in blocks: exactly *size* bytes (the object's, as its head
    or the answer's Content-Length gives it), else StoreError. A store that kept sending
    (a chunked answer without end) filled the disk of 'store get' to its last byte: 428 MB
    written for an object of 3 MB when a file size limit stopped it."""
    body = answer["Body"]
    left = size
    while left >= 0:
        block = body.read(min(_READ_CHUNK, left + 1))
        if not block:
            break
        left -= len(block)
        if left < 0:
            body.close()
            raise StoreError(f"{url}: the store sent more than the {plural(size, 'byte')} the "
                             "object holds; it was stopped and nothing was kept",
                             hint="the store (or something in between) is broken or hostile")
        yield block
    if left:
        raise StoreError(f"{url}: the store sent {plural(size - left, 'byte')} of the "
                         f"{plural(size, 'byte')} the object holds; nothing was kept",
                         hint="try again; the connection may have been cut")


def _sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_READ_CHUNK):
            digest.update(block)
    return digest.hexdigest()


# --- a capture straight into the store ------------------------------------------------------

class SeekableUpload(SeekBack):
    """The file capture writes a bundle to, when it goes straight to a store: writes append to
    an :class:`ObjectWriter` that holds the first part back; a seek back (to complete the
    payload's outer header, which lies in the first kilobytes) changes that held part."""

    what = "an upload"

    def __init__(self, writer: ObjectWriter) -> None:
        super().__init__()
        self._writer = writer

    def written(self) -> int:
        return self._writer.size

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self._position == self._writer.size:
            self._writer.write(view)
        else:
            self._writer.overwrite(self._position, view)
        self._position += len(view)
        return len(view)

    def flush(self) -> None:
        pass


class S3Capture:
    """A capture's destination in a store (``capture -o s3://BUCKET/PREFIX/``): the bundle is
    uploaded as it is sealed, nothing is written to local disk, and the object appears only
    when the capture has finished (an interrupted capture aborts the upload: no object).

    Its key is ``PREFIX/CASE/HOST/capture-TIME-RANDOM.evidence``: S3 fixes a key when the upload
    starts, before the payload's hash exists, and cannot rename (a server-side copy would write
    every byte twice), so the payload hash that names ``store put``'s objects cannot name
    this one. The lock is set when the upload starts, as for ``store put``.
    """

    def __init__(self, store: S3Store, case_id: str, host: str, now: datetime,
                 random_hex: str) -> None:
        self.store = store
        self.metadata = finding_metadata(case_id, host, "capture")
        stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.key = (f"{store.url.prefix}{_safe(case_id)}/{_safe(host)}/"
                    f"capture-{stamp}-{random_hex}{SUFFIX}")
        self.location = f"{SCHEME}{store.url.bucket}/{self.key}"
        self.delivery: Delivery | None = None

    # The upload fills a part in memory and waits for a free thread when both are busy: a
    # queue of 8 MiB before it only held as much again (6 MB of a capture's peak)
    queue_blocks = 2

    def public_details(self) -> dict[str, str]:
        """For the first custody event: where the bundle is written and how it is locked."""
        lock = self.store.lock
        return {"destination": "s3", "endpoint": self.store.endpoint or "",
                "bucket": self.store.url.bucket, "key": self.key,
                "retention_mode": "COMPLIANCE" if lock.enabled else "",
                "retain_until": rfc3339(lock.retain_until) if lock.retain_until else "",
                "legal_hold": "on" if lock.legal_hold else "off",
                "object_lock": "required" if lock.enabled else "not required (--no-lock)"}

    def check(self) -> None:
        """Before any evidence is read: the bucket is reachable and locked (or --no-lock)."""
        self.store.check_bucket()

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        writer = ObjectWriter(self.store.client, self.store.url.bucket, self.key,
                              self.store.lock, self.metadata, hold_first=True)
        try:
            yield cast(BinaryIO, SeekableUpload(writer))
            uploaded = writer.complete()
        except BaseException as exc:
            writer.give_up(exc)
            raise
        with stored_already(self.location, f"'evidencekit verify {self.location}' checks it"):
            head = self.store.head(self.key, uploaded.version_id)
            if head is None or int(head.get("ContentLength", -1)) != uploaded.size or (
                    stored_composite(head) not in ("", uploaded.composite)):
                raise BundleError(f"{self.location}: the store does not hold what was uploaded",
                                  hint="do not rely on this copy")
            self.delivery = self.store.delivery(
                self.key, self.store.ensure_locked(self.key, head), already_there=False)


# --- reading the store ------------------------------------------------------------------------

@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    last_modified: str
    version_id: str
    sha256: str
    retention_mode: str
    retain_until: str
    legal_hold: bool
    # versions and delete markers under this key (0: not known); more than 1: written over,
    # and what the other fields describe (the newest) is not what evidencekit stored
    versions: int = 0
    # from the metadata set as the upload started (finding_metadata; '' when none)
    case: str = ""
    host: str = ""
    written_by: str = ""
    payload_sha256: str = ""
    # what the store said of this key that does not hold together ('' when nothing)
    problem: str = ""
    missing: bool = False  # listed, but not found when asked for (problem says so)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "size": self.size, "last_modified": self.last_modified,
                "version_id": self.version_id, "sha256": self.sha256,
                "retention_mode": self.retention_mode, "retain_until": self.retain_until,
                "legal_hold": self.legal_hold, "versions": self.versions,
                "case": self.case, "host": self.host, "written_by": self.written_by,
                "payload_sha256": self.payload_sha256, "problem": self.problem}


def list_objects(client: Any, url: S3Url) -> list[StoredObject]:
    """Every object under *url*'s prefix, with its lock as the store reports it. Each is
    asked for again (its head: the lock, the metadata, the size a download gets); a key
    listed that is then not found (deleted meanwhile, or a listing that is wrong), and a size
    the listing gives that is not the object's, are said in its ``problem``, never dropped."""
    found: list[StoredObject] = []
    versions = _versions_per_key(client, url)
    with talking_to(str(url)):
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=url.bucket,
                                                                 Prefix=url.prefix)
        for page in pages:
            for item in page.get("Contents", []):
                found.append(_stored_object(client, url, item, versions.get(item["Key"], 0)))
    return found


def _stored_object(client: Any, url: S3Url, item: dict[str, Any], versions: int
                   ) -> StoredObject:
    import botocore.exceptions as bx

    key, listed = str(item["Key"]), int(item["Size"])
    try:
        head = client.head_object(Bucket=url.bucket, Key=key)
    except bx.ClientError as exc:
        if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
            raise
        return StoredObject(key, listed, rfc3339(item["LastModified"]), "", "", "", "", False,
                            versions, problem="listed by the store, but not found when asked "
                            "for (deleted meanwhile, or the listing is wrong)", missing=True)
    until = head.get("ObjectLockRetainUntilDate")
    metadata = {str(k).lower(): str(v) for k, v in (head.get("Metadata") or {}).items()}
    size = int(head.get("ContentLength", listed))
    problem = "" if size == listed else (f"the listing says {plural(listed, 'byte')}, the "
                                         f"object holds {plural(size, 'byte')}")
    return StoredObject(
        key, size, rfc3339(item["LastModified"]), version_of(head),
        metadata.get("sha256", ""), str(head.get("ObjectLockMode") or ""),
        rfc3339(until) if isinstance(until, datetime) else "",
        head.get("ObjectLockLegalHoldStatus") == "ON", versions,
        unquote(metadata.get("case", "")), unquote(metadata.get("host", "")),
        metadata.get("written-by", ""), metadata.get("payload-sha256", ""), problem)


def _versions_per_key(client: Any, url: S3Url) -> dict[str, int]:
    """How many versions and delete markers each key under *url* has ({} when these
    credentials may not list versions)."""
    import botocore.exceptions as bx

    counts: dict[str, int] = {}
    with talking_to(str(url)):
        try:
            for page in client.get_paginator("list_object_versions").paginate(
                    Bucket=url.bucket, Prefix=url.prefix):
                for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    counts[entry["Key"]] = counts.get(entry["Key"], 0) + 1
        except bx.ClientError as exc:
            if error_code(exc) in ("AccessDenied", "403", "NotImplemented", "501"):
                return {}
            raise
    return counts


def the_only_version(client: Any, url: S3Url) -> str:
    """The version id of the object at *url* ('' when the store keeps no versions or does not
    let these credentials list them). BundleError when the key was written over: object lock
    keeps a version from being changed or deleted, not a new version from being put on top,
    and a plain GET reads the newest. evidencekit writes a key once (If-None-Match: *), so a
    second version, or a delete marker, is someone else's."""
    import botocore.exceptions as bx

    with talking_to(str(url)):
        try:
            answer = client.list_object_versions(Bucket=url.bucket, Prefix=url.key)
        except bx.ClientError as exc:
            if error_code(exc) in ("AccessDenied", "403", "NotImplemented", "501"):
                return ""
            raise
    versions = [v for v in answer.get("Versions", []) if v.get("Key") == url.key]
    markers = [m for m in answer.get("DeleteMarkers", []) if m.get("Key") == url.key]
    if len(versions) + len(markers) <= 1:
        return version_of(versions[0]) if versions else ""
    # S3 lists a key's versions newest first; times tie within a second
    versions = sorted(reversed(versions), key=lambda v: v["LastModified"])
    first = versions[0] if versions else None
    raise BundleError(
        f"{url} was written over: it has {_count(len(versions), 'version')}"
        + (f" and {_count(len(markers), 'delete marker')}" if markers else "")
        + ", and evidencekit stores a bundle under a key only once"
        + (f"; the first, version {first.get('VersionId')} of "
           f"{rfc3339(first['LastModified'])}, is the one it stored" if first else ""),
        hint="read each version with the store's own tools (aws s3api list-object-versions, "
        "get-object --version-id) and find out who wrote the others")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


class PayloadWatch:
    """Hashes a bundle's payload as the bundle streams by, in order (``store get``: the bytes
    written to the file are the bytes hashed, and verification need not read them again).

    The payload's range is found from the member headers before it, at the start of the
    bundle (README.txt, then payload.age: docs/FORMAT.md §2); a stream whose payload header
    does not start within its first MiB, or whose headers do not parse, gives no range
    (:meth:`hashed` None), and verification then reads the payload from the file as before.
    """

    LOOK = 1 << 20

    def __init__(self) -> None:
        self._size = -1  # the object's, told by begin()
        self._head = bytearray()  # the stream's first bytes, until the payload's header
        self._at = 0  # stream offset of the next byte fed
        self._next_header = 0
        self._range: tuple[int, int] | None = None
        self._gave_up = False
        self._hash = hashlib.sha256()

    def begin(self, size: int) -> None:
        self._size = size

    def feed(self, block: bytes) -> None:
        start, self._at = self._at, self._at + len(block)
        if self._range is None and not self._gave_up:
            self._head += block[: max(0, self.LOOK - start)]
            self._find()
        if self._range is not None:
            first, end = self._range
            low, high = max(first, start), min(end, self._at)
            if low < high:
                self._hash.update(memoryview(block)[low - start : high - start])

    def _find(self) -> None:
        from evidencekit.format.documents import PAYLOAD
        from evidencekit.format.outer import HEADER_LEN, padding, parse_member

        while self._next_header + HEADER_LEN <= len(self._head):
            header = bytes(self._head[self._next_header : self._next_header + HEADER_LEN])
            try:
                member = parse_member(header, self._next_header, self._size)
            except BundleError:
                self._give_up()
                return
            if member.name == PAYLOAD:
                self._range = (member.offset, member.offset + member.size)
                self._head = bytearray()
                return
            self._next_header = member.offset + member.size + len(padding(member.size))
        if self._next_header + HEADER_LEN > self.LOOK:
            self._give_up()

    def _give_up(self) -> None:
        self._gave_up = True
        self._head = bytearray()

    def hashed(self) -> HashedRange | None:
        """The payload's range and SHA-256, once the whole stream was fed; else None."""
        from evidencekit.verify import HashedRange

        if self._range is None or self._at != self._size:
            return None
        first, end = self._range
        return HashedRange(first, end - first, self._hash.hexdigest())


def download(client: Any, url: S3Url, out: BinaryIO | DiskWriter, progress: Progress,
             watch: PayloadWatch | None = None) -> tuple[str, str]:
    """Write the object at *url* to *out*; (its SHA-256 as read, the one recorded at upload or
    ''). BundleError when they differ, or when the key was written over. *watch* is given
    every block written, in order (:class:`PayloadWatch`)."""
    digest = hashlib.sha256()
    version = the_only_version(client, url)
    with talking_to(str(url)):
        answer = client.get_object(Bucket=url.bucket, Key=url.key,
                                   **({"VersionId": version} if version else {}))
        recorded = str(answer.get("Metadata", {}).get("sha256", ""))
        size = answer.get("ContentLength")
        if size is None:  # a chunked answer: the object's size is its head's
            size = client.head_object(Bucket=url.bucket, Key=url.key,
                                      **({"VersionId": version} if version else {})
                                      )["ContentLength"]
        if watch is not None:
            watch.begin(int(size))
        progress.start("Downloading", None, int(size) or None)
        for block in object_blocks(answer, int(size), url):
            digest.update(block)
            out.write(memoryview(block))
            if watch is not None:
                watch.feed(block)
            progress.advance(nbytes=len(block))
        progress.finish()
    if recorded and recorded != digest.hexdigest():
        raise BundleError(f"{url}: the object read is not the one uploaded (SHA-256 "
                          f"{digest.hexdigest()}, recorded {recorded}); nothing was kept")
    return digest.hexdigest(), recorded


# --- reading an object in place (verify s3://…, no local copy) -------------------------------

class _Cursor:
    """One open ranged GET, continued while reads follow on from each other; its window grows
    (64 KiB, doubling to 64 MiB) so that headers cost one small request and the payload few."""

    FIRST_WINDOW = 64 << 10
    LAST_WINDOW = 64 << 20

    def __init__(self) -> None:
        self.body: Any = None
        self.at = -1  # offset of the next byte the open body gives
        self.end = -1  # offset just past the open range
        self.window = self.FIRST_WINDOW
        self.lock = threading.Lock()

    def close(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None


class RemoteObject(RawReader):
    """A read-only, seekable file over one version of an S3 object, read by byte ranges.

    ``pread_into`` (what evidencekit.format.outer.MemberReader uses instead of a descriptor's
    pread) keeps its own position, as pread does, so reading the payload ahead on a thread does
    not disturb reads of the small members.
    """

    def __init__(self, client: Any, url: S3Url, version_id: str = "") -> None:
        super().__init__()
        self._client, self._url = client, url
        with talking_to(str(url)):
            head = client.head_object(Bucket=url.bucket, Key=url.key,
                                      **({"VersionId": version_id} if version_id else {}))
        self.size = int(head["ContentLength"])
        self.version_id = version_of(head) or version_id  # every range of one version
        # a store without versions: every range of the object as it was at the head
        self._etag = "" if self.version_id else str(head.get("ETag") or "")
        self._position = 0
        self._main, self._side = _Cursor(), _Cursor()

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        raise io.UnsupportedOperation("an object in a store has no file descriptor")

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        """Fills *buffer* unless the object ends first (a file's read, not a socket's)."""
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view):
            count = self._read(self._main, view[done:], self._position)
            if not count:
                break
            self._position += count
            done += count
        return done

    def pread_into(self, view: memoryview, offset: int) -> int:
        return self._read(self._side, view, offset)

    def _read(self, cursor: _Cursor, view: memoryview, offset: int) -> int:
        wanted = min(len(view), self.size - offset)
        if wanted <= 0:
            return 0
        with cursor.lock, talking_to(str(self._url)):
            if cursor.body is None or cursor.at != offset or cursor.at >= cursor.end:
                self._open(cursor, offset, wanted)
            data = cursor.body.read(min(wanted, cursor.end - offset))
            if not data:
                raise BundleError(f"{self._url}: the object ended early at byte {offset}")
            view[: len(data)] = data
            cursor.at += len(data)
            return len(data)

    def _open(self, cursor: _Cursor, offset: int, wanted: int) -> None:
        sequential = cursor.body is not None and cursor.at == offset
        cursor.close()
        cursor.window = min(cursor.window * 2, cursor.LAST_WINDOW) if sequential \
            else cursor.FIRST_WINDOW
        end = min(self.size, offset + max(wanted, cursor.window))
        import botocore.exceptions as bx

        try:
            answer = self._client.get_object(
                Bucket=self._url.bucket, Key=self._url.key, Range=f"bytes={offset}-{end - 1}",
                **({"VersionId": self.version_id} if self.version_id else {}),
                **({"IfMatch": self._etag} if self._etag else {}))
        except bx.ClientError as exc:
            if error_code(exc) != "PreconditionFailed":
                raise
            raise StoreError(f"{self._url} was replaced while it was being read (the store "
                             "keeps no versions of it)", hint="read it again; if it changes "
                             "again, find out who writes to that key") from None
        self._require_range(answer, offset, end)
        cursor.body, cursor.at, cursor.end = answer["Body"], offset, end

    def _require_range(self, answer: dict[str, Any], offset: int, end: int) -> None:
        """The bytes asked for, or the whole object from its start (HTTP lets a server ignore
        a range): a store that answers other bytes, read as the ones asked for, made verify
        report the bundle as damaged ('non-zero padding after member README.txt', exit 1)
        when the store was at fault."""
        said = str(answer.get("ContentRange") or "")
        if said == f"bytes {offset}-{end - 1}/{self.size}" or (
                not said and offset == 0 and int(answer.get("ContentLength", -1)) == self.size):
            return
        answer["Body"].close()
        raise StoreError(f"{self._url}: asked for bytes {offset} to {end - 1} of "
                         f"{self.size:,}, the store answered "
                         f"{repr(said[:100]) if said else 'the whole object'}: it does not "
                         "serve byte ranges as S3 does, so the bundle cannot be read in place "
                         "(nothing was found wrong with the bundle itself)",
                         hint="download it with 'evidencekit store get' and verify the copy")

    def close(self) -> None:
        self._main.close()
        self._side.close()
        super().close()


def open_remote_bundle(client: Any, url: S3Url) -> Any:
    """The bundle stored at *url*, opened for reading in place (evidencekit.format.reader)."""
    from evidencekit.format.reader import open_stream

    if not url.key or url.key.endswith("/"):
        raise UsageError(f"{url}: name one object (s3://BUCKET/KEY); 'evidencekit store list' "
                         "shows them")
    return open_stream(cast(BinaryIO, RemoteObject(client, url, the_only_version(client, url))),
                       Path(url.key))
