"""Talking to a remote host with the system's OpenSSH client, its host key pinned.

OpenSSH does the cryptography, the authentication (keys, agent, ~/.ssh/config) and the host key
check; evidencekit decides which host key it accepts. The key is pinned in a known_hosts file of
one line, written for this connection only, with StrictHostKeyChecking=yes and the host key
algorithm restricted to that key's: ssh itself refuses any other key
(docs/decisions/remote-capture.md). Nothing else may vouch for a key: not the user's ssh
configuration (a KnownHostsCommand, or VerifyHostKeyDNS trusting a key published in DNS, are
turned off for this connection, and so is a connection shared with one opened before, through
ControlMaster, which checks no host key), and not a key that a known_hosts file marks ``@revoked``.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from evidencekit.errors import RemoteError, UsageError
from evidencekit.fs import leftovers

_ALIAS = "evidencekit-pinned-host"
_TIMEOUT = 20  # seconds to connect (ssh-keyscan and ssh)
_ASK_TIMEOUT = _TIMEOUT * 3  # seconds one ssh run asking for the host's key may take
# Host key algorithms a key type may be checked with (RSA keys sign with SHA-2 today).
_ALGORITHMS = {"ssh-rsa": "rsa-sha2-512,rsa-sha2-256,ssh-rsa"}
# The plain (not certificate) host key algorithms a host reached through a bastion is asked
# for, in ssh's order of preference (evidencekit.remote.ssh.offered_through_ssh).
_PLAIN_ALGORITHMS = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                     "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
                     "sk-ecdsa-sha2-nistp256@openssh.com", "rsa-sha2-512", "rsa-sha2-256",
                     "ssh-rsa")
# What the bundle crosses the wire in is already age ciphertext: SSH's own cipher is for the
# channel, and AES-GCM (hardware-accelerated on most servers) costs the two ends the least CPU.
# "^" moves these to the front of OpenSSH's defaults and keeps the rest after them.
_CIPHERS = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"
_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}=?$")
# What a shell reads in a word (and control characters), refused in a user name (Endpoint.parse)
_SHELL_READS = r"\x00-\x1f\x7f'`\"$;&<>|(){}*?!#~\[\]"


@dataclass(frozen=True)
class Endpoint:
    """``user@host[:port]`` (``user@[::1]:2222`` for an IPv6 address)."""

    user: str
    host: str
    port: int = 22
    # the port was typed (USER@HOST:PORT); without it, the ssh configuration's Port for HOST
    # applies, as it does for ssh itself
    port_given: bool = field(default=True, compare=False)

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        # A host name, an IPv4 or [IPv6] address, nothing a shell reads: --jump's ProxyCommand
        # holds the host (%h) unquoted, and an OpenSSH older than 9.6 (and a user's own
        # ProxyCommand or Match exec with %h / %r) hands it to the shell as it is:
        # 'admin@x$(touch f)' ran 'touch f' here. ssh 9.6 refuses such names itself. A user
        # may be DOMAIN\\name (Windows' OpenSSH), not end in a backslash (as for ssh).
        match = re.fullmatch(rf"([^@\s{_SHELL_READS}]+)@(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)"
                             r"(?::(\d{1,5}))?", text)
        if not match or match.group(1).startswith("-") or match.group(2).startswith("-") \
                or match.group(1).endswith("\\"):
            shaped = re.fullmatch(r"[^@\s]+@[^@\s]+", text) is not None
            raise UsageError(f"--remote {text!r}: expected USER@HOST or USER@HOST:PORT"
                             + ("; a user or host name holds none of ' \" ` $ ; & < > | "
                                "( ) { } * ? ! # ~ (a shell would read them)" if shaped else ""),
                             hint="e.g. --remote admin@web-17.example:22")
        port = int(match.group(3) or 22)
        if not 0 < port < 65536:
            raise UsageError(f"--remote {text!r}: {port} is not a port number")
        return cls(match.group(1), match.group(2).strip("[]"), port, match.group(3) is not None)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}" + (f":{self.port}" if self.port != 22 else "")


@dataclass(frozen=True)
class HostKey:
    """One of a host's public keys: its type, its base64 blob, and SHA256:… as ssh shows it."""

    kind: str
    blob: str

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def check_fingerprint(text: str) -> str:
    """A --host-key as ``SHA256:`` and 43 base64 characters, or UsageError. Also taken: the
    prefix in any case (``sha256:``) and the whole line ``ssh-keygen -lf`` prints (``256
    SHA256:… root@host (ED25519)``), which is what an administrator reads out or pastes; the
    base64 itself is compared exactly (its case matters)."""
    words = [w for w in text.split() if w[:7].upper() == "SHA256:"]
    candidate = "SHA256:" + words[0][7:] if len(words) == 1 else text.strip()
    if not _FINGERPRINT.match(candidate):
        md5 = text.strip().upper().startswith("MD5:") or re.fullmatch(
            r"(?:[0-9a-fA-F]{2}:){15}[0-9a-fA-F]{2}", text.strip()) is not None
        raise UsageError(f"--host-key {text!r} is not a SHA-256 key fingerprint"
                         + (" (an MD5 fingerprint does not pin a key safely)" if md5 else ""),
                         hint="ask the host's administrator for 'ssh-keygen -lf "
                         "/etc/ssh/ssh_host_ed25519_key.pub' (SHA256:…)")
    return candidate.rstrip("=")


def as_configured(endpoint: Endpoint, config: Path | None = None) -> Endpoint:
    """Where ssh will connect for *endpoint*: the HostName and Port its configuration
    (*config*, else the user's and the system's) gives the host named, an alias (``Host
    web-17`` / ``HostName 10.0.0.17`` / ``Port 2222``) as often as not. ssh-keyscan reads no
    configuration: it was sent to 'web-17' port 22 ('cannot reach an SSH server'), and ssh
    itself was given -p 22 over the configured Port. A port typed in --remote wins, as -p
    does for ssh."""
    return _as_said(endpoint, _configuration(endpoint, config))


def _as_said(endpoint: Endpoint, said: dict[str, str]) -> Endpoint:
    host, port = said.get("hostname", endpoint.host), said.get("port", "")
    if not port.isdigit() or not 0 < int(port) < 65536:
        return endpoint
    return Endpoint(endpoint.user, host, int(port))


def _configuration(endpoint: Endpoint, config: Path | None) -> dict[str, str]:
    """What ssh's configuration (*config*, else the user's and the system's) says for
    *endpoint* (``ssh -G``: option names in lower case); {} when ssh cannot tell."""
    argv = [_tool("ssh"), "-G", *(("-F", str(config)) if config else ()),
            *(("-p", str(endpoint.port)) if endpoint.port_given else ()),
            "-l", endpoint.user, "--", endpoint.host]
    try:
        done = subprocess.run(argv, capture_output=True, check=False, timeout=_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {}
    if done.returncode != 0:
        return {}
    return dict(line.split(" ", 1) for line in done.stdout.decode("utf-8", "replace")
                .splitlines() if " " in line)


def host_keys(endpoint: Endpoint) -> list[HostKey]:
    """The keys the host offers (ssh-keyscan). They are only candidates: the connection that
    follows checks that the host holds the private half of the one pinned."""
    tool = _tool("ssh-keyscan")
    try:
        done = subprocess.run([tool, "-p", str(endpoint.port), "-T", str(_TIMEOUT), "--",
                               endpoint.host], capture_output=True, timeout=_TIMEOUT * 3,
                              check=False)
    except subprocess.TimeoutExpired:
        raise RemoteError(f"{endpoint.host} port {endpoint.port} did not answer") from None
    keys = []
    for line in done.stdout.decode("ascii", "replace").splitlines():
        fields = line.split()
        if len(fields) >= 3 and not line.startswith("#"):
            keys.append(HostKey(fields[1], fields[2]))
    if not keys:
        raise RemoteError(f"cannot reach an SSH server at {endpoint.host} port {endpoint.port}",
                          hint="check the address, the port and the network")
    return keys


def pin_by_fingerprint(endpoint: Endpoint, fingerprint: str,
                       known_hosts: Path | None = None, config: Path | None = None,
                       jump: Endpoint | None = None) -> HostKey:
    """The host's key whose fingerprint is *fingerprint*; RemoteError when it offers none, or
    when a known_hosts file marks that key revoked. A host reached through a bastion (*jump*,
    or ProxyJump / ProxyCommand in the ssh configuration) is asked through ssh itself."""
    said = _configuration(endpoint, config)  # (asked once: ssh -G takes some 5 ms)
    offered = _offered(endpoint, said, config, jump, list(_PLAIN_ALGORITHMS),
                       lambda key: key.fingerprint == fingerprint)
    endpoint = _as_said(endpoint, said)
    for key in offered:
        if key.fingerprint == fingerprint:
            name = _known_hosts_name(endpoint)
            _refuse_if_revoked(name, key, _entries(name, _known_hosts_files(known_hosts, said)))
            return key
    raise RemoteError(
        f"the host key of {endpoint.host} port {endpoint.port} is not the one given "
        f"(--host-key {fingerprint}); it offers {', '.join(k.fingerprint for k in offered)}. "
        "Nothing was captured", exit_code=1,
        hint="someone may be impersonating the host, or its keys were changed: check the "
        "fingerprint with its administrator over another channel before trying again")


def pin_from_known_hosts(endpoint: Endpoint, known_hosts: Path | None = None,
                         config: Path | None = None, jump: Endpoint | None = None) -> HostKey:
    """The host's key as known_hosts records it (StrictHostKeyChecking=yes: an unknown host is
    refused, never learned), under the name ssh records it by (its configured HostName)."""
    said = _configuration(endpoint, config)
    name = _known_hosts_name(_as_said(endpoint, said))
    entries = _entries(name, _known_hosts_files(known_hosts, said))
    known = [key for key, marker, _ in entries if not marker]
    if not known:
        raise RemoteError(f"{name} is not in known_hosts; its host key was not pinned, so "
                          "nothing was captured", exit_code=1,
                          hint="give its fingerprint with --host-key SHA256:… (ask its "
                          "administrator for it over another channel)")
    recorded = {(k.kind, k.blob) for k in known}
    types = {algorithm for k in known for algorithm in _algorithms_of(k.kind)}
    offered = {(k.kind, k.blob) for k in _offered(
        endpoint, said, config, jump, [a for a in _PLAIN_ALGORITHMS if a in types],
        lambda key: (key.kind, key.blob) in recorded)}
    for key in known:
        if (key.kind, key.blob) in offered:
            _refuse_if_revoked(name, key, entries)
            return key
    raise RemoteError(f"the host key of {name} has CHANGED: it offers none of the keys "
                      "known_hosts records for it. Nothing was captured", exit_code=1,
                      hint="someone may be impersonating the host: check with its "
                      "administrator before trusting a new key")


def _offered(endpoint: Endpoint, said: dict[str, str], config: Path | None,
             jump: Endpoint | None, algorithms: list[str],
             wanted: Callable[[HostKey], bool]) -> list[HostKey]:
    """The keys the host offers (candidates: the connection that follows proves one): asked
    through ssh when a bastion carries the connection (*jump*, or the configuration *said*),
    else by ssh-keyscan at the address the configuration gives."""
    if jump is not None or _proxied(said):
        return offered_through_ssh(endpoint, config, jump, algorithms, wanted)
    return host_keys(_as_said(endpoint, said))


def proxied(endpoint: Endpoint, config: Path | None) -> bool:
    """Whether ssh's configuration reaches *endpoint* through another host (ProxyJump or
    ProxyCommand): ssh-keyscan, which reads no configuration, cannot ask it for its keys."""
    return _proxied(_configuration(endpoint, config))


def _proxied(said: dict[str, str]) -> bool:
    return any(said.get(option, "none") != "none" for option in ("proxyjump", "proxycommand"))


def offered_through_ssh(endpoint: Endpoint, config: Path | None, jump: Endpoint | None,
                        algorithms: list[str], wanted: Callable[[HostKey], bool]) -> list[HostKey]:
    """The keys the host offers, asked through ssh itself (so that the bastion of --jump or of
    the ssh configuration carries the connection), one connection per key: each run offers
    *algorithms* less those of the keys already seen, records the key the host answers with in
    a known_hosts file made for it (StrictHostKeyChecking=accept-new) and authenticates with
    nothing (PreferredAuthentications=none). It stops at the first key *wanted*, or when the
    host has no other key. Like ssh-keyscan's, these keys are only candidates (the host signs
    the key exchange, but ssh may record a key before it checks that signature): the connection
    that follows, with the key pinned, is what proves the host holds it."""
    offered: list[HostKey] = []
    folder = _working_folder()
    try:
        remaining = list(algorithms)
        while remaining:
            key = _offered_once(endpoint, config, jump, remaining, Path(folder))
            if key is None:
                break
            offered.append(key)
            if wanted(key):
                break
            remaining = [a for a in remaining if a not in _algorithms_of(key.kind)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return offered


def _offered_once(endpoint: Endpoint, config: Path | None, jump: Endpoint | None,
                  algorithms: list[str], folder: Path) -> HostKey | None:
    """The key the host answers with when offered *algorithms*; None when it has none of
    their types."""
    known = folder / "offered"
    known.unlink(missing_ok=True)
    argv = [*_ssh_base(endpoint, config, jump),
            "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"UserKnownHostsFile={known}",
            # the alias is looked for in that file: Debian's /etc/ssh/ssh_config hashes names
            "-o", "HashKnownHosts=no",
            # what ssh says is read below ('no matching host key type', said at INFO): a
            # configuration's 'LogLevel ERROR' made a host with no other key 'cannot reach'
            "-o", "LogLevel=INFO",
            "-o", f"HostKeyAlgorithms={','.join(algorithms)}",
            # no key, password or ticket is offered to a host not yet proven
            "-o", "PreferredAuthentications=none", "-o", "NumberOfPasswordPrompts=0",
            "-o", "PubkeyAuthentication=no", "-o", "GSSAPIAuthentication=no",
            "--", endpoint.host, "true"]
    try:
        done = _run_ending_its_proxy(argv, _ASK_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise RemoteError(f"{endpoint.host} did not answer through "
                          f"{_route(endpoint, config, jump)}") from None
    for line in (known.read_text("ascii", "replace") if known.exists() else "").splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0] == _ALIAS:
            return HostKey(fields[1], fields[2])
    said = done.stderr.decode("utf-8", "replace")
    if "no matching host key type" in said:
        return None  # ("Unable to negotiate …: no matching host key type found. Their offer: …")
    lines = [line.strip() for line in said.splitlines() if line.strip()][-3:]
    via = _route(endpoint, config, jump)
    if "Host key verification failed" in said:  # the bastion's (the host's is accepted here)
        raise RemoteError(f"the bastion's host key is unknown or has changed ({via}): "
                          f"{'; '.join(lines)}. Nothing was captured", exit_code=1,
                          hint="the bastion's own key is checked by ssh against your "
                          "known_hosts (~/.ssh/known_hosts, or the file your ssh configuration "
                          "names for it; --known-hosts pins the host only): add it there once "
                          "you have checked its fingerprint with its administrator")
    if "Permission denied" in said:  # the bastion's (the host is asked for no login here)
        raise RemoteError(f"the bastion refused the login ({via}): "
                          f"{'; '.join(line.rstrip('.') for line in lines)}. Nothing was captured",
                          hint="--ssh-identity is the host's key: ssh logs in to the bastion with "
                          "your agent, default keys and ssh configuration; add the bastion's key "
                          "to your agent (ssh-add KEY) or give the bastion an IdentityFile in an "
                          "ssh configuration (--ssh-config FILE)")
    raise RemoteError(f"cannot reach an SSH server at {endpoint.host} through {via}: "
                      f"{'; '.join(lines) or 'no answer'}",
                      hint="check that ssh reaches the bastion and that the bastion may "
                      "connect to the host")


def start(argv: list[str], stdin: int) -> subprocess.Popen[bytes]:
    """ssh started for a session (its output and errors piped here) in a process group of its
    own, so that stopping it (:func:`signal_all`) stops what it started too: killed alone, ssh
    leaves its ProxyCommand (an ``ssh -W`` to a bastion) running, a stalled one for ever. Ctrl-C
    then reaches ssh no more: whoever started it stops it."""
    return subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def signal_all(process: subprocess.Popen[bytes], sig: int) -> None:
    """*sig* to an ssh :func:`start` started and to what it started (its process group), those
    still there."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _run_ending_its_proxy(argv: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    """ssh run to its end, or stopped after *timeout* seconds (TimeoutExpired) with its
    ProxyCommand (subprocess.run's timeout kills ssh alone)."""
    with start(argv, subprocess.DEVNULL) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except BaseException:  # the timeout, or an interrupt
            signal_all(process, signal.SIGKILL)
            process.wait()
            raise
        return subprocess.CompletedProcess(argv, process.returncode, out, err)


def route(endpoint: Endpoint, config: Path | None, jump: Endpoint | None) -> str | None:
    """How ssh reaches *endpoint*, when not directly, in words (the received event records it):
    ``--jump USER@BASTION``, ``ProxyJump BASTION (ssh configuration)`` or ``ProxyCommand (ssh
    configuration)`` (the command itself, which may name local files, is not written down)."""
    if jump is not None:
        return f"--jump {jump}"
    said = _configuration(endpoint, config)
    if said.get("proxyjump", "none") != "none":
        return f"ProxyJump {said['proxyjump']} (ssh configuration)"
    if said.get("proxycommand", "none") != "none":
        return "ProxyCommand (ssh configuration)"
    return None


def _route(endpoint: Endpoint, config: Path | None, jump: Endpoint | None) -> str:
    return route(endpoint, config, jump) or "a direct connection"


def _algorithms_of(kind: str) -> list[str]:
    return _ALGORITHMS.get(kind, kind).split(",")


def proxy_command(jump: Endpoint, config: Path | None) -> str:
    """ssh's ProxyCommand for --jump: a second ssh to the bastion that forwards to the host
    (as ssh -J does), in batch mode and with the bastion's key checked strictly against the
    known_hosts ssh is configured with: an unknown bastion is refused, never asked about
    (ssh -J's own ssh is given neither). The bastion carries only the encrypted connection;
    the host's own key is pinned by the ssh it carries."""
    argv = [_tool("ssh"), *(("-F", str(config)) if config else ()),
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", "ControlMaster=no", "-o", "ControlPath=none",
            "-l", jump.user, *(("-p", str(jump.port)) if jump.port_given else ()),
            "-W", "[%h]:%p", "--", jump.host]
    # ssh expands %-tokens in the whole command, then runs it with the shell
    return " ".join(word if word == "[%h]:%p" else shlex.quote(word.replace("%", "%%"))
                    for word in argv)


def _ssh_base(endpoint: Endpoint, config: Path | None, jump: Endpoint | None) -> list[str]:
    """ssh's options shared by every connection to the host: batch mode, nothing forwarded,
    nothing but the known_hosts given vouching for its key, the route (--jump) to it."""
    port = ("-p", str(endpoint.port)) if endpoint.port_given else ()
    return [_tool("ssh"), *(("-F", str(config)) if config else ()), "-T", "-x", "-a", *port,
            "-l", endpoint.user,
            "-o", "BatchMode=yes",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", f"HostKeyAlias={_ALIAS}",
            "-o", "UpdateHostKeys=no", "-o", "CheckHostIP=no",
            # the pin alone vouches for the host: a user's ssh configuration may trust
            # keys from DNS (SSHFP) or from a command, beside any known_hosts file
            "-o", "VerifyHostKeyDNS=no", *_other_trust_off(),
            # a connection shared with one opened before (ControlMaster) checks no host
            # key at all: the pin would not be checked
            "-o", "ControlMaster=no", "-o", "ControlPath=none",
            "-o", "ClearAllForwardings=yes", "-o", "PermitLocalCommand=no",
            # the command is evidencekit's: a configuration's RemoteCommand made ssh refuse
            # ('Cannot execute command-line and remote command')
            *_if_known("RemoteCommand=none"),
            "-o", f"ConnectTimeout={_TIMEOUT}",
            *(("-o", f"ProxyCommand={proxy_command(jump, config)}") if jump else ())]


def _known_hosts_files(given: Path | None, said: dict[str, str]) -> list[Path]:
    """*given* (--known-hosts), else the files ssh itself would check for the host (*said*: its
    configuration for it): UserKnownHostsFile and GlobalKnownHostsFile (~/.ssh/known_hosts2 and
    /etc/ssh/ssh_known_hosts2 by default; a file the configuration names instead was not read,
    and a host recorded there, or a key marked @revoked there, was not seen)."""
    if given:
        return [given]
    named = [Path(word) for option in ("userknownhostsfile", "globalknownhostsfile")
             for word in said.get(option, "").split() if word != "none"]
    return named or [Path.home() / ".ssh" / "known_hosts", Path("/etc/ssh/ssh_known_hosts")]


def _known_hosts_name(endpoint: Endpoint) -> str:
    """The host as known_hosts names it: lower case, as ssh looks it up (a hashed entry is
    not found under 'Web-17.example'), with its port when it is not 22."""
    host = endpoint.host.lower()
    return host if endpoint.port == 22 else f"[{host}]:{endpoint.port}"


def _entries(name: str, files: list[Path]) -> list[tuple[HostKey, str, Path]]:
    """The keys the known_hosts *files* hold for *name* (hashed entries too: ssh-keygen -F
    finds them), each with its marker ('' , '@revoked', '@cert-authority') and its file."""
    found = []
    for path in files:
        if not path.is_file():
            continue
        done = subprocess.run([_tool("ssh-keygen"), "-F", name, "-f", str(path)],
                              capture_output=True, check=False)
        for line in done.stdout.decode("ascii", "replace").splitlines():
            fields = line.split()
            marker = fields[0] if fields and fields[0].startswith("@") else ""
            at = 2 if marker else 1  # after the marker and the host patterns
            if len(fields) > at + 1 and not line.startswith("#"):
                found.append((HostKey(fields[at], fields[at + 1]), marker, path))
    return found


def _refuse_if_revoked(name: str, key: HostKey,
                       entries: list[tuple[HostKey, str, Path]]) -> None:
    """RemoteError when one of the known_hosts *entries* for *name* (:func:`_entries`) marks
    *key* ``@revoked`` (as ssh itself refuses it): a key withdrawn there, stolen or replaced,
    speaks for nobody, also when its fingerprint is given with --host-key or another entry
    still lists it."""
    for found, marker, path in entries:
        if marker == "@revoked" and (found.kind, found.blob) == (key.kind, key.blob):
            raise RemoteError(
                f"the host key of {name} ({key.fingerprint}) is marked @revoked in {path}: "
                "it must not be trusted. Nothing was captured", exit_code=1,
                hint="the key was withdrawn (stolen or replaced): ask the host's "
                "administrator for its new key over another channel")


@dataclass(frozen=True)
class Connection:
    """How to run commands on *endpoint* with ssh, the host key pinned to *key*."""

    endpoint: Endpoint
    key: HostKey
    known_hosts: Path
    identity: Path | None = None
    config: Path | None = None
    jump: Endpoint | None = None  # --jump: the bastion ssh goes through

    def ssh_argv(self, *, subsystem: bool = False) -> list[str]:
        """ssh's options, up to the destination (the remote command follows)."""
        argv = [*_ssh_base(self.endpoint, self.config, self.jump),
                "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", f"HostKeyAlgorithms={_ALGORITHMS.get(self.key.kind, self.key.kind)}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
                "-o", f"Ciphers={_CIPHERS}",
                "-o", "LogLevel=ERROR"]
        if self.identity is not None:
            argv += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        if subsystem:
            argv.append("-s")
        return [*argv, "--", self.endpoint.host]


@contextmanager
def connection(endpoint: Endpoint, key: HostKey, identity: Path | None = None,
               config: Path | None = None,
               jump: Endpoint | None = None) -> Iterator[Connection]:
    """A :class:`Connection` whose known_hosts file (one line: *key*) lives while it is used."""
    folder = _working_folder()  # (one a kill -9 left goes next time)
    try:
        known = Path(folder) / "known_hosts"
        fd = os.open(known, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{_ALIAS} {key.kind} {key.blob}\n")
        yield Connection(endpoint, key, known, identity, config, jump)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# What ssh reads in an option's value in its own way: it splits UserKnownHostsFile at whitespace
# (a list of files), reads quotes and backslashes, and expands %-tokens and a leading ~.
_READ_BY_SSH = re.compile(r"[\s\"'\\%#]|^~")


def _working_folder() -> str:
    """A private folder for the known_hosts files given to ssh (UserKnownHostsFile=PATH), in
    the system's temporary folder. Under a TMPDIR such as '/tmp/case 42', ssh read
    '/tmp/case' (a file any local user may make) and 'dir/…' instead of the pin's file: a key
    written there by someone else was trusted for the host. Such a folder is refused."""
    folder = leftovers.working_folder("evidencekit-ssh")
    if _READ_BY_SSH.search(folder):
        shutil.rmtree(folder, ignore_errors=True)
        raise UsageError(f"the temporary folder {os.path.dirname(folder)!r} has a space, a "
                         "quote, a backslash, '%' or '#' in its name: ssh would read the pinned "
                         "host key's file under another name, so nothing was captured",
                         hint="set TMPDIR to a folder without one, e.g. TMPDIR=/tmp")
    return folder


def _other_trust_off() -> tuple[str, ...]:
    """Options that keep anything but the pin from vouching for the host, where this ssh knows
    them (an ssh refuses the whole command for an option it does not know, and then reads none
    from a configuration either): KnownHostsCommand (OpenSSH 8.5 and later) would add keys a
    command prints; GSSAPIKeyExchange (Debian's and others' patched OpenSSH) would let Kerberos
    stand in for the host key."""
    return tuple(word for setting in ("KnownHostsCommand=none", "GSSAPIKeyExchange=no")
                 for word in _if_known(setting))


@functools.cache
def _if_known(setting: str) -> tuple[str, ...]:
    option = ("-o", setting)
    try:
        done = subprocess.run([_tool("ssh"), "-G", "-F", "/dev/null", *option,
                               "evidencekit-probe"], capture_output=True, check=False,
                              timeout=_TIMEOUT)
    except subprocess.TimeoutExpired:
        return option
    return option if done.returncode == 0 else ()


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RemoteError(f"{name} was not found: remote capture uses the system's OpenSSH "
                          "client", hint="install OpenSSH's client (Debian: openssh-client)")
    return found
