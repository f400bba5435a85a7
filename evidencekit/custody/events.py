"""Custody events (docs/FORMAT.md §6): the request a person signs, the next event of a
verified bundle, appending it under the bundle's lock, and what people and --json read of one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evidencekit import fs, publictext
from evidencekit.clock import Clock, clock_source, parse_rfc3339, rfc3339, system_clock
from evidencekit.crypto import sshsig
from evidencekit.crypto.keys import SigningKey
from evidencekit.custody.append import (
    append_failed,
    append_outer_members,
    appendable,
    require_intact,
)
from evidencekit.errors import BundleError, UsageError
from evidencekit.format.documents import ACTIONS, CustodyEvent, Signer, custody_member
from evidencekit.hostinfo import host_name
from evidencekit.verify import Report, verify

APPENDABLE = tuple(a for a in ACTIONS if a not in ("captured", "resealed"))


@dataclass(frozen=True)
class EventRequest:
    """A custody event to sign. Its texts are checked when it is made, before any bundle is
    read: what a reader could not read back is never written (evidencekit.publictext)."""

    action: str
    actor_name: str
    signing_key: SigningKey
    note: str = ""
    counterparty: str = ""
    details: dict[str, str] = field(default_factory=dict)
    clock: Clock = system_clock

    def __post_init__(self) -> None:
        publictext.check_line(self.actor_name, "--actor")
        publictext.check_text(self.note, "--note")
        publictext.check_line(self.counterparty, COUNTERPARTY_OPTION.get(self.action, "--to"))


# Who else took part (FORMAT.md §6, ``counterparty``): to whom a bundle was handed, from whom
# it was received. Only these two actions have one, and each needs it.
COUNTERPARTY_OPTION = {"transferred": "--to", "received": "--from"}


def counterparty_for(action: str, to_party: str | None, from_party: str | None) -> str:
    """The ``counterparty`` of a new event: --to for 'transferred', --from for 'received' (each
    required there), neither for any other action."""
    wanted = COUNTERPARTY_OPTION.get(action)
    given = {"--to": to_party, "--from": from_party}
    for option, value in given.items():
        if value and option != wanted:
            where = f"for '{action}' give {wanted}" if wanted else \
                "put who else took part into --note"
            raise UsageError(f"{option} cannot be used with --action {action}; {where}",
                             hint="--to is whom a bundle was handed to (transferred); --from "
                             "is who handed it over (received)")
    if wanted is None:
        return ""
    value = given[wanted]
    if not value or not value.strip():
        whom = "to whom the bundle was handed" if action == "transferred" else \
            "who handed the bundle over"
        raise UsageError(f"--action {action} needs {wanted}: {whom}",
                         hint=f'e.g. {wanted} "Det. A. Smith, Cyber Unit"')
    return value


def counterparty_text(event: CustodyEvent) -> str:
    """'to Det. Smith', 'from J. Doe': the counterparty as people read it."""
    if not event.counterparty:
        return ""
    word = {"transferred": "to", "received": "from"}.get(event.action)
    return f"{word} {event.counterparty}" if word else event.counterparty


def signer_of(key: SigningKey) -> Signer:
    public = key.public
    return Signer(" ".join(public.openssh_line().split()[:2]), public.fingerprint)


def checked_for_note(bundle: Path) -> Report:
    """*bundle* verified (its payload's hash too, no key needed) before a person is asked to
    confirm a public note: a note would vouch for it. append_event checks again under the
    lock; this check comes first so that nobody confirms a note that cannot be added."""
    checked = verify(bundle, check_payload_hash=True)
    if not checked.ok:
        first = checked.findings.errors[0] if checked.findings.errors else None
        raise BundleError("the bundle does not verify, so no note was added"
                          + (f" ({first.where}: {first.problem})" if first else ""),
                          hint="run 'evidencekit verify' to see every problem")
    return checked


def build_event(report: Report, request: EventRequest, *, action: str | None = None,
                payload_sha256: str | None = None) -> CustodyEvent:
    """The next event for a verified bundle (report from ``verify``)."""
    assert report.seal is not None and report.events
    last = report.events[-1]
    previous_json = last.to_json()
    return CustodyEvent(
        case_id=report.seal.case_id, sequence=last.sequence + 1, action=action or request.action,
        time=rfc3339(request.clock()), clock_source=clock_source(),
        actor_name=request.actor_name, actor=signer_of(request.signing_key), host=host_name(),
        note=request.note, payload_sha256=payload_sha256 or report.payload_sha256 or "",
        previous_sha256=hashlib.sha256(previous_json).hexdigest(),
        counterparty=request.counterparty, details=dict(request.details),
    )


def append_event(bundle: Path, request: EventRequest, report: Report | None = None,
                 waiting: Callable[[], None] | None = None,
                 linked: Callable[[int], None] | None = None) -> CustodyEvent:
    """Verify the public parts of *bundle*, then append a signed event, atomically: the bundle
    is replaced by a copy that holds the event (evidencekit.fs.replace_end), so a kill or a full
    disk at any instant leaves it whole, with or without the event.

    One writer at a time: another evidencekit command appending to the same bundle is waited
    for (*waiting* is called when that happens), and the bundle is checked again once it is
    ours, so the event follows whatever that command added. A *report* from a verify that just
    ran (``verify --record``) must describe the same payload as the bundle found then.

    The bundle is replaced, so another name it had (a hard link) keeps the bundle as it was:
    *linked* is then told how many such names there were, to say so.
    """
    if request.action not in APPENDABLE:
        raise UsageError(f"action must be one of: {', '.join(APPENDABLE)}")
    target = appendable(bundle)
    try:
        with fs.locked(target, waiting) as fd:
            current = verify(target)
            require_intact(current)
            if report is not None and report.payload_sha256 != current.payload_sha256:
                raise BundleError("the bundle changed while it was being checked; no custody "
                                  "event was added", hint="run the command again")
            event = build_event(current, request)
            publictext.check_readable(event.to_json(), custody_member(event.sequence))
            others = os.fstat(fd).st_nlink - 1
            append_event_members(target, fd, event, request.signing_key)
    except OSError as exc:
        raise append_failed(bundle, "the custody event", exc,
                            "free some space on that disk, or copy the bundle to a disk with "
                            "more room and add the event there") from None
    if others > 0 and linked is not None:
        linked(others)
    return event


def append_event_members(bundle: Path, fd: int, event: CustodyEvent, key: SigningKey) -> None:
    """The bundle with the event's two members appended (docs/FORMAT.md §6)."""
    data = event.to_json()
    mtime = member_time(event.time)
    name = custody_member(event.sequence)
    append_outer_members(bundle, fd, [(name, data, mtime),
                                      (name + ".sig", sshsig.sign(key, data), mtime)])


def member_time(stamp: str) -> int:
    """The tar header time (whole seconds) of the members of an event made at *stamp*."""
    return parse_rfc3339(stamp) // 1_000_000_000


def event_summary(event: CustodyEvent) -> dict[str, Any]:
    return {"sequence": event.sequence, "action": event.action, "time": event.time,
            "actor": event.actor_name, "fingerprint": event.actor.fingerprint,
            "host": event.host, "counterparty": event.counterparty, "note": event.note,
            "details": event.details, "clock_source": event.clock_source,
            "payload_sha256": event.payload_sha256,
            "event_sha256": hashlib.sha256(event.to_json()).hexdigest()}
