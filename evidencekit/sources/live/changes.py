"""Item 6: a second, short snapshot of the processes and connections, and what differs from the
first: what started, what ended, which connections opened or closed while evidencekit collected.
"""

from __future__ import annotations

from typing import Any

from evidencekit.clock import Clock
from evidencekit.sources.live import network, processes
from evidencekit.sources.live.common import Document, Gaps, envelope


def _process_key(record: dict[str, Any]) -> tuple[int, str]:
    """A process is the same one if its pid and its start time are (pids are reused)."""
    return record["pid"], record["start_time"] or ""


def _short(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record.get(key) for key in ("pid", "ppid", "name", "start_time", "cmdline",
                                             "exe", "user")}


def collect(clock: Clock, first: Document, first_connections: list[dict[str, Any]] | None
            ) -> Document:
    started = clock()
    gaps = Gaps()
    second = processes.collect(clock, details=False).document
    names = {p["pid"]: p["name"] for p in second["processes"]}
    connections = network.connections(gaps, names)
    before = {_process_key(p): p for p in first["processes"]}
    after = {_process_key(p): p for p in second["processes"]}
    body: dict[str, Any] = {
        "first_processes_collected": first["collected_started"],
        "processes": [_short(p) for p in second["processes"]],
        "connections": connections,
        "processes_started": [_short(after[k]) for k in sorted(after.keys() - before.keys())],
        "processes_ended": [_short(before[k]) for k in sorted(before.keys() - after.keys())],
    }
    if connections is None or first_connections is None:
        body["connections_opened"] = body["connections_closed"] = None
        gaps.unavailable("connection_changes", "a snapshot of the connections is missing")
    else:
        old = {network.connection_key(c): c for c in first_connections}
        new = {network.connection_key(c): c for c in connections}
        body["connections_opened"] = [new[k] for k in sorted(new.keys() - old.keys())]
        body["connections_closed"] = [old[k] for k in sorted(old.keys() - new.keys())]
    return envelope("second_snapshot", clock, started, gaps, body)
