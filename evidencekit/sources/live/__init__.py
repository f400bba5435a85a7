"""Live response (``capture --live``): the state of the running system, collected in the order
of volatility (RFC 3227) and stored as JSON documents in ``data/`` (docs/FORMAT.md §4.3).

Every file is ``data/live.NAME`` (the source's name, ``live`` unless taken, a dot, then; its
path in the manifest is the same without ``data/``):

1. ``01-clock.json``: the system clock (UTC), how it is kept, the kernel's NTP state, uptime;
2. ``02-memory.image`` and ``02-memory.json``: RAM, only through ``--memory-tool`` (memory.py);
3. ``03-network.json``: connections and their owners, routes, ARP, interfaces;
4. ``04-processes.json``, and ``04-executable.PID-NAME``: each running executable whose file was
   deleted, copied in full from ``/proc/PID/exe``;
5. ``05-system.json``: sessions, kernel modules, mounts;
6. ``06-second-snapshot.json``: processes and connections again, and what changed;
7. ``07-collection.json``: how the collection went: who ran it, its own process, what it
   disturbs.

The names are flat, beside the other sources' names in ``data/``, not in a folder of their own: a
folder in the bag is a folder that was captured, with its own manifest entry and stat fields
(checked by hand too, FORMAT.md §7.2), and the live state has none.

Connections are read just before the processes, so that a connection's owner can be named from
the process list; each document says when it was collected. Nothing on the system is changed:
no module is loaded, no setting written; what the collection itself disturbs is listed in
``07-collection.json`` (``DISTURBS``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evidencekit import __version__
from evidencekit.clock import Clock, rfc3339, system_clock
from evidencekit.hostinfo import host_name, operating_system
from evidencekit.sources.base import BytesContent, Skip, SourceRecord, StreamEntry
from evidencekit.sources.files.walk import Entry, unique_name
from evidencekit.sources.live import changes, clock, network, processes, system
from evidencekit.sources.live.common import Document, Gaps, encoded, envelope
from evidencekit.sources.live.memory import DEFAULT_IDLE_TIMEOUT, MemoryImage

KIND = "live"
GIVEN = b"--live"
NAME = "live"
FIXED = ("01-clock.json", "02-memory.image", "02-memory.json", "03-network.json",
         "04-processes.json", "05-system.json", "06-second-snapshot.json", "07-collection.json")
EXECUTABLE = "04-executable."  # + PID-NAME: a deleted executable's copy
DISTURBS = [
    "evidencekit's own process (marked \"evidencekit\": true in the process lists), its threads "
    "and the processes it starts (marked \"started_by_evidencekit\"): libmagic workers, and the "
    "memory tool when one is named",
    "the memory it uses (tens of MiB, more while the process list is encoded) and the page cache "
    "filled by reading each running executable once to hash it",
    "files opened for reading: /proc (Linux), each running executable (through /proc/PID/exe; "
    "its access time may change where the file system records it and O_NOATIME is refused), "
    "the password database (user names), /etc/localtime",
    "the bundle being written, and with --memory-tool a private temporary folder holding one "
    "named pipe (removed at the end) and the encrypted spool next to the bundle",
    "the memory tool itself, when one is named: it may load a driver or kernel module of its "
    "own (LiME, WinPmem); evidencekit loads none and writes no setting",
]


class _HeldFile:
    """A deleted executable, read through the descriptor held since the process list."""

    def __init__(self, held: processes.DeletedExecutable) -> None:
        self._held = held
        self._offset = 0

    @property
    def size(self) -> int | None:
        return self._held.size

    def readinto(self, buffer: memoryview) -> int:
        count = os.preadv(self._held.fd, [buffer], self._offset)
        self._offset += count
        return count

    def changes(self) -> list[str]:
        return []


def withheld_counts(snapshot: Document, connections: list[dict[str, Any]]) -> dict[str, int]:
    """How many processes lack a detail, and connections their owner, because the system
    refused them (not run as administrator/root): each reason is in the documents, but a
    person reading only "Sealed" would not know how much is missing."""
    denied = "permission denied"
    return {"processes": sum(1 for p in snapshot["processes"]
                             if any(denied in why for why in p["not_collected"].values())),
            "connections": sum(1 for c in connections
                               if denied in c.get("not_collected", {}).get("pid", ""))}


class LiveSource:
    """The running system as a Source: one record (kind ``live``), collected when its entries
    are read. ``volatile``: capture reads it before the file walk (order of volatility)."""

    volatile = True

    def __init__(self, memory_tool: Path | None = None, clock_: Clock = system_clock,
                 memory_idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        self._memory_tool = memory_tool
        self._clock = clock_
        self._idle_timeout = memory_idle_timeout
        self._index = 0
        self._bag_name = NAME
        self._taken: set[str] = set()
        self.counts: dict[str, int] = {}
        self.withheld: dict[str, int] = {}  # what the system refused, for the person (not root)
        self._memory_images = 0  # whole images only: the public count said 1 for a failed tool

    def place(self, first_index: int, taken: set[str]) -> None:
        """Take ``live`` (else ``live~1`` …) such that every ``NAME.FILE`` is free too; keep
        *taken* to name the deleted executables' copies once the other sources have theirs."""
        self._index = first_index
        candidate = NAME
        number = 0
        while candidate in taken or any(f"{candidate}.{name}" in taken for name in FIXED):
            number += 1
            candidate = f"{NAME}~{number}"
        self._bag_name = candidate
        taken.add(candidate)
        taken.update(f"{candidate}.{name}" for name in FIXED)
        self._taken = taken

    def records(self) -> list[SourceRecord]:
        return [SourceRecord(self._index, GIVEN, os.fsencode(host_name()), self._bag_name,
                             kind=KIND)]

    def estimate(self, skip: Skip) -> tuple[int, int | None]:
        return 7 + (2 if self._memory_tool else 0), None  # sizes known only once collected

    def public_details(self) -> dict[str, str]:
        """Counts only, for the public first custody event (``inspect`` shows them)."""
        if not self.counts:
            return {}
        return {"live": ", ".join(f"{key} {value}" for key, value in sorted(self.counts.items()))}

    def entries(self, skip: Skip) -> Iterator[Entry | StreamEntry]:
        started = self._clock()
        yield self._document("01-clock.json", clock.collect(self._clock))
        if self._memory_tool is not None:
            yield from self._memory(self._memory_tool)
        connections_first = network.collect(self._clock, {})
        snapshot = processes.collect(self._clock)
        names = {p["pid"]: p["name"] for p in snapshot.document["processes"]}
        for connection in connections_first["connections"] or []:
            if connection["pid"] in names:
                connection["process"] = names[connection["pid"]]
        copies = self._name_copies(snapshot)
        yield self._document("03-network.json", connections_first)
        yield self._document("04-processes.json", snapshot.document)
        try:
            for held, name in copies:
                yield StreamEntry(self._index, self._path(name), self._bag(name),
                                  _HeldFile(held), mtime_ns=self._clock())
        finally:
            for held in snapshot.deleted:
                os.close(held.fd)
        yield self._document("05-system.json", system.collect(self._clock))
        second = changes.collect(self._clock, snapshot.document, connections_first["connections"])
        yield self._document("06-second-snapshot.json", second)
        self.withheld = withheld_counts(snapshot.document, connections_first["connections"] or [])
        self.counts = {"processes": snapshot.document["count"],
                       "connections": len(connections_first["connections"] or []),
                       "deleted executables copied": len(snapshot.deleted),
                       "memory images": self._memory_images}
        yield self._document("07-collection.json", self._collection(started))

    def _name_copies(self, snapshot: processes.Snapshot
                     ) -> list[tuple[processes.DeletedExecutable, str]]:
        """A free name for each deleted executable's copy, written into the process records
        that run it (``exe_copy``: its name in data/)."""
        by_pid = {p["pid"]: p for p in snapshot.document["processes"]}
        named = []
        for held in snapshot.deleted:
            full = unique_name(f"{self._bag_name}.{EXECUTABLE}{held.name}", self._taken)
            self._taken.add(full)
            for pid in held.pids:
                by_pid[pid]["exe_copy"] = full
            named.append((held, full[len(self._bag_name) + 1:]))
        return named

    def _memory(self, tool: Path) -> Iterator[StreamEntry]:
        image = MemoryImage(tool, self._clock, self._idle_timeout)
        try:
            yield StreamEntry(self._index, self._path("02-memory.image"),
                              self._bag("02-memory.image"), image, mtime_ns=self._clock())
        finally:
            image.close()
        document = image.document()
        self._memory_images = 1 if document["problem"] is None else 0
        yield self._document("02-memory.json", document)

    def _collection(self, started: int) -> Document:
        body: dict[str, Any] = {
            "evidencekit_version": __version__, "own_pid": os.getpid(),
            "host": host_name(), "os": operating_system(), "platform": sys.platform,
            "effective_uid": os.geteuid() if hasattr(os, "geteuid") else None,
            "order": ["clock", "memory", "network", "processes", "system", "second_snapshot"],
            "memory_tool": None if self._memory_tool is None else str(self._memory_tool),
            "disturbs": DISTURBS, "counts": self.counts,
            "finished": rfc3339(self._clock()),
        }
        return envelope("collection", self._clock, started, Gaps(), body)

    def _path(self, name: str) -> bytes:
        # The bag name, as for web pages: with live~1 (its name taken, e.g. by a file source
        # named live.01-clock.json) a path live.NAME was another entry's, and extract, which
        # gives each file its path's name when free, split the live state in two.
        return f"{self._bag_name}.{name}".encode()

    def _bag(self, name: str) -> str:
        return f"data/{self._bag_name}.{name}"

    def _document(self, name: str, document: Document) -> StreamEntry:
        return StreamEntry(self._index, self._path(name), self._bag(name),
                           BytesContent(encoded(document)), mtime_ns=self._clock())


__all__ = ["DEFAULT_IDLE_TIMEOUT", "KIND", "LiveSource"]
