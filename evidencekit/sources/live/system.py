"""Item 5: who is logged in (sessions), the kernel modules loaded, the mounted file systems.

Read only: ``/proc/modules`` lists the modules (nothing is loaded or unloaded), mounts come from
``/proc/self/mountinfo`` on Linux and psutil elsewhere, sessions from the utmp database (psutil).
"""

from __future__ import annotations

from typing import Any

import psutil

from evidencekit.clock import Clock, rfc3339
from evidencekit.sources.live.common import IS_LINUX, Document, Gaps, envelope, text


def collect(clock: Clock) -> Document:
    started = clock()
    gaps = Gaps()
    body: dict[str, Any] = {"sessions": gaps.attempt("sessions", _sessions)}
    if IS_LINUX:
        body["kernel_modules"] = gaps.attempt("kernel_modules", _modules)
        body["mounts"] = gaps.attempt("mounts", _mountinfo)
    else:
        body["kernel_modules"] = None
        gaps.unavailable("kernel_modules", "listed from /proc/modules on Linux only")
        body["mounts"] = gaps.attempt("mounts", _partitions)
    return envelope("system", clock, started, gaps, body)


def _sessions() -> list[dict[str, Any]]:
    return [{"user": u.name, "terminal": u.terminal, "host": u.host,
             "started": rfc3339(int(u.started * 1_000_000_000)), "pid": u.pid}
            for u in psutil.users()]


def _modules() -> list[dict[str, Any]]:
    with open("/proc/modules", "rb") as file:
        lines = file.read().splitlines()
    found = []
    for line in lines:
        parts = text(line).split()
        if len(parts) < 5:
            continue
        found.append({"name": parts[0], "size": int(parts[1]), "instances": int(parts[2]),
                      "used_by": [u for u in parts[3].split(",") if u and u != "-"],
                      "state": parts[4], "taint": " ".join(parts[6:]) or None})
    return found


def _mountinfo() -> list[dict[str, Any]]:
    """One record per line of mountinfo (proc(5)): ids, the device, where, how, what."""
    with open("/proc/self/mountinfo", "rb") as file:
        lines = file.read().splitlines()
    found = []
    for line in lines:
        fields = text(line).split(" ")
        split = fields.index("-")
        found.append({"mount_id": int(fields[0]), "parent_id": int(fields[1]),
                      "device": fields[2], "root": _unescape(fields[3]),
                      "mount_point": _unescape(fields[4]), "options": fields[5],
                      "fs_type": fields[split + 1], "source": _unescape(fields[split + 2]),
                      "super_options": fields[split + 3] if len(fields) > split + 3 else ""})
    return found


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040 …)."""
    for code in ("040", "011", "012", "134"):
        field = field.replace("\\" + code, chr(int(code, 8)))
    return field


def _partitions() -> list[dict[str, Any]]:
    return [{"device": p.device, "mount_point": p.mountpoint, "fs_type": p.fstype,
             "options": p.opts} for p in psutil.disk_partitions(all=True)]
