"""Item 3: network connections with their owning processes, the routing tables, the ARP and
neighbour tables and the interfaces.

Connections come from psutil (on Linux from ``/proc/net/tcp*``/``udp*``; the owner is found
through each process's descriptors, so without privileges only the user's own processes are
named: the others are recorded with the reason). Routes and the ARP table are read from
``/proc/net`` on Linux; IPv6 neighbours are only available through netlink, which is not read.
"""

from __future__ import annotations

import socket
from typing import Any

import psutil

from evidencekit.clock import Clock
from evidencekit.sources.live.common import IS_LINUX, Document, Gaps, envelope, is_root

_FAMILIES = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6"}
_TYPES = {socket.SOCK_STREAM: "tcp", socket.SOCK_DGRAM: "udp"}
_OWNER_HIDDEN = "the owning process could not be seen (another user's: permission denied)"
# Said of every socket without a pid, these were false as root, and of TIME_WAIT for anyone:
_OWNER_NONE = ("no process owns it: the connection was closed, and the system keeps it a while "
               "to absorb late packets")
_OWNER_UNSEEN = ("no process evidencekit can see holds it (a socket of the kernel itself, or "
                 "of a process in another PID namespace, such as a container)")
_NO_OWNER_STATES = {psutil.CONN_TIME_WAIT, psutil.CONN_CLOSE}


def connections(gaps: Gaps, names: dict[int, str] | None = None) -> list[dict[str, Any]] | None:
    """The TCP and UDP sockets (IPv4, IPv6), sorted; each with its owner's pid (and name, when
    *names* knows it) or the reason it is not known."""
    found = gaps.attempt("connections", lambda: psutil.net_connections(kind="inet"))
    if found is None:
        return None
    listed = [_connection(c, names or {}) for c in found]
    listed.sort(key=connection_key)
    return listed


def connection_key(connection: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies a connection between two snapshots (its owner may change hands)."""
    return (connection["protocol"], connection["family"], connection["local"],
            connection["remote"] or "", connection["pid"] or 0, connection["fd"])


def _connection(c: Any, names: dict[int, str]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "family": _FAMILIES.get(c.family, str(c.family)),
        "protocol": _TYPES.get(c.type, str(c.type)),
        "local": _address(c.laddr), "remote": _address(c.raddr) if c.raddr else None,
        "status": c.status, "pid": c.pid, "fd": c.fd if c.fd is not None and c.fd >= 0 else -1,
    }
    if c.pid is None:
        record["not_collected"] = {"pid": _no_owner(c.status)}
    elif c.pid in names:
        record["process"] = names[c.pid]
    return record


def _no_owner(status: str) -> str:
    """Why a socket has no owner: none can have one, or a privileged collection would have
    seen it, or it is hidden from an unprivileged one."""
    if status in _NO_OWNER_STATES:
        return _OWNER_NONE
    return _OWNER_UNSEEN if is_root() else _OWNER_HIDDEN


def _address(address: Any) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def collect(clock: Clock, names: dict[int, str]) -> Document:
    started = clock()
    gaps = Gaps()
    body: dict[str, Any] = {"connections": connections(gaps, names)}
    if IS_LINUX:
        body["routes_ipv4"] = gaps.attempt("routes_ipv4", _routes_ipv4)
        body["routes_ipv6"] = gaps.attempt("routes_ipv6", _routes_ipv6)
        body["arp"] = gaps.attempt("arp", _arp)
    else:
        for item in ("routes_ipv4", "routes_ipv6", "arp"):
            body[item] = None
            gaps.unavailable(item, "read from /proc/net on Linux only")
    body["ipv6_neighbours"] = None
    gaps.unavailable("ipv6_neighbours", "only available through netlink, which is not read")
    body["interfaces"] = gaps.attempt("interfaces", _interfaces)
    return envelope("network", clock, started, gaps, body)


def _table(path: str) -> list[list[str]]:
    with open(path, encoding="ascii", errors="backslashreplace") as file:
        return [line.split() for line in file.read().splitlines() if line.strip()]


def _ipv4(hex_le: str) -> str:
    return socket.inet_ntop(socket.AF_INET, int(hex_le, 16).to_bytes(4, "little"))


def _routes_ipv4() -> list[dict[str, Any]]:
    rows = _table("/proc/net/route")
    header = rows[0]
    routes = []
    for row in rows[1:]:
        fields = dict(zip(header, row, strict=False))
        routes.append({"interface": fields["Iface"], "destination": _ipv4(fields["Destination"]),
                       "gateway": _ipv4(fields["Gateway"]), "mask": _ipv4(fields["Mask"]),
                       "flags": int(fields["Flags"], 16), "metric": int(fields["Metric"])})
    return routes


def _ipv6(hex_text: str) -> str:
    return socket.inet_ntop(socket.AF_INET6, bytes.fromhex(hex_text))


def _routes_ipv6() -> list[dict[str, Any]]:
    routes = []
    for row in _table("/proc/net/ipv6_route"):
        routes.append({"destination": f"{_ipv6(row[0])}/{int(row[1], 16)}",
                       "source": f"{_ipv6(row[2])}/{int(row[3], 16)}",
                       "gateway": _ipv6(row[4]), "metric": int(row[5], 16),
                       "flags": int(row[8], 16), "interface": row[9]})
    return routes


def _arp() -> list[dict[str, Any]]:
    rows = _table("/proc/net/arp")
    return [{"address": row[0], "hw_type": row[1], "flags": row[2], "hw_address": row[3],
             "interface": row[5]} for row in rows[1:] if len(row) >= 6]


def _interfaces() -> list[dict[str, Any]]:
    stats = psutil.net_if_stats()
    found = []
    for name, addresses in sorted(psutil.net_if_addrs().items()):
        state = stats.get(name)
        found.append({
            "name": name,
            "up": None if state is None else state.isup,
            "mtu": None if state is None else state.mtu,
            "addresses": [{"family": _family_name(a.family), "address": a.address,
                           "netmask": a.netmask, "broadcast": a.broadcast} for a in addresses],
        })
    return found


def _family_name(family: Any) -> str:
    if family == psutil.AF_LINK:
        return "link"
    return _FAMILIES.get(family, str(family))
