"""What every destination shares: the facts of a bundle it is given, what a delivery tells, and
how a delivery is recorded in the bundle's custody log.

A destination receives the bytes of a finished bundle and says where they went
(:class:`Delivery`). The delivery is then recorded as a ``transferred`` custody event in the
local bundle (docs/FORMAT.md §6): the copy that was delivered does not hold that event (it did
not exist yet), the bundle that stays behind does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from evidencekit.custody.append import require_intact
from evidencekit.custody.events import EventRequest, append_event
from evidencekit.errors import InputError
from evidencekit.format.documents import CustodyEvent
from evidencekit.progress import Progress
from evidencekit.verify import Report, verify


@dataclass(frozen=True)
class BundleFacts:
    """What a destination may name a bundle by: its case, the host that captured it (custody
    event 1) and its current payload's SHA-256; read from a bundle that verified."""

    case_id: str
    host: str
    payload_sha256: str
    # the file as it was when verified (file_state): a destination refuses to complete a copy
    # of a file that has changed since, so what it stores is what was verified
    verified_state: tuple[int, ...] | None = None
    # its signed seal and custody events (JSON as signed): what a copy found at a destination
    # is compared with (:meth:`why_not_a_copy`)
    seal_json: bytes = b""
    custody: tuple[bytes, ...] = ()

    @classmethod
    def of(cls, report: Report, verified_state: tuple[int, ...] | None = None) -> BundleFacts:
        require_intact(report)
        assert report.seal is not None and report.payload_sha256 is not None
        return cls(report.seal.case_id, report.events[0].host, report.payload_sha256,
                   verified_state, report.seal.to_json(),
                   tuple(event.to_json() for event in report.events))

    def why_not_a_copy(self, found: Report, payload_read: bool = True) -> str | None:
        """None when *found* (the public verification of a bundle found at a destination) is
        this bundle as it is or was: intact, the same seal and payload, and a custody log that
        this one's begins with (the copy was delivered before later events were added here).
        Otherwise what differs, in a few words. *payload_read* False: *found* was verified
        without reading the payload (``check_payload_hash=False``), whose hash is not judged."""
        if not found.ok:
            errors = found.findings.errors
            return "it is not an intact bundle" + (
                f" ({errors[0].where}: {errors[0].problem})" if errors else "")
        if found.seal is None or found.seal.to_json() != self.seal_json:
            return "it is another bundle (another seal)"
        if payload_read and found.payload_sha256 != self.payload_sha256:
            return "its payload is not this bundle's"
        theirs = tuple(event.to_json() for event in found.events)
        if theirs != self.custody[: len(theirs)]:
            return ("its custody log is not this bundle's (events this one does not have, or "
                    "other ones)")
        return None

    def changed_since_verified(self, bundle: Path) -> bool:
        return self.verified_state is not None and file_state(bundle) != self.verified_state


def file_state(path: Path) -> tuple[int, ...]:
    """What changes when a file is written to or replaced: its inode, size and change times."""
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class Delivery:
    """Where a bundle went. *counterparty* and *details* become the custody event's fields of
    the same names; *already_there*: an earlier delivery of the same payload was found there
    (nothing was written again)."""

    location: str
    counterparty: str
    details: dict[str, str] = field(default_factory=dict)
    already_there: bool = False


class Destination(Protocol):
    """A place a finished bundle can be delivered to (deliver.local, deliver.s3)."""

    def deliver(self, bundle: Path, facts: BundleFacts, progress: Progress) -> Delivery:
        """Copy *bundle* there, never over something else, and check the copy; raise an
        EvidenceKitError when it cannot be done (nothing that looks valid is left behind)."""
        ...


def checked_facts(bundle: Path) -> tuple[BundleFacts, Report]:
    """Verify the public parts of *bundle* (signatures, custody chain, payload hash) and return
    what destinations name it by: only an intact bundle is delivered."""
    try:
        state = file_state(bundle)
    except FileNotFoundError:  # before, 'internal error: FileNotFoundError' (exit 5)
        raise InputError(f"bundle not found: {bundle}", hint="check the path") from None
    except OSError as exc:
        raise InputError(f"cannot read {bundle}: {exc.strerror or exc}") from None
    report = verify(bundle)
    return BundleFacts.of(report, state), report


def already_recorded(report: Report, delivery: Delivery) -> bool:
    """Whether the bundle's log already holds this very delivery (a retry after success)."""
    return any(event.action == "transferred" and event.details == delivery.details
               for event in report.events)


def record_delivery(bundle: Path, delivery: Delivery, request: EventRequest, report: Report,
                    waiting: Callable[[], None] | None = None) -> CustodyEvent:
    """Append the ``transferred`` event for *delivery* to the local *bundle* (signed by
    *request*'s key); *report* is the verification the delivery was based on, so an event is
    never added to a bundle whose payload changed meanwhile."""
    event_request = EventRequest("transferred", request.actor_name, request.signing_key,
                                 request.note, delivery.counterparty, dict(delivery.details),
                                 request.clock)
    return append_event(bundle, event_request, report=report, waiting=waiting)
