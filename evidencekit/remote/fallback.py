"""capture --remote without evidencekit on the host: the files read over SFTP and sealed here
(a source of kind ``remote-logical``, evidencekit.sources.remote_logical). The plaintext only
passes through this process's memory into the encrypted payload: nothing unencrypted is
written to disk here, and nothing is written there."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from evidencekit.capture import CaptureRequest, CaptureResult, capture
from evidencekit.errors import RemoteError
from evidencekit.remote.receive import ErrorChannel, RemoteRequest, host_key_refused
from evidencekit.remote.sftp import SftpEnded, SftpError, SftpSession, SftpSessionOver, SftpStalled
from evidencekit.remote.ssh import as_configured, connection, signal_all, start
from evidencekit.sources.remote_logical import RemoteHost, RemoteLogicalSource, remote_paths


def capture_over_sftp(request: RemoteRequest, command_line: list[str],
                      exclude: tuple[Path, ...] = ()) -> CaptureResult:
    """Read *request.paths* over SFTP and seal them into *request.output*, signed here."""
    endpoint = request.endpoint
    deadline = request.deadline()
    with connection(endpoint, request.host_key, request.identity, request.ssh_config,
                    request.jump) as conn:
        process = start([*conn.ssh_argv(subsystem=True), "sftp"], subprocess.PIPE)
        assert process.stderr is not None
        errors = ErrorChannel(process.stderr)
        try:
            session = SftpSession(process, request.stall_timeout, str(endpoint), deadline)
        except SftpStalled:
            signal_all(process, signal.SIGKILL)
            process.wait()
            raise
        except (SftpError, SftpEnded):
            signal_all(process, signal.SIGKILL)
            process.wait()
            said = errors.said()[-4096:]
            refused = host_key_refused(str(endpoint), conn, said)
            if refused is not None:  # (ssh's long banner says nothing more)
                raise refused from None
            raise RemoteError(f"could not open an SFTP session on {endpoint}: "
                              f"{said or 'the server offers no SFTP'}; nothing was captured",
                              hint="check the address and your SSH key (--ssh-identity), or "
                              "install evidencekit there") from None
        port = as_configured(endpoint, request.ssh_config).port  # an alias's, not 22
        host = RemoteHost(str(endpoint), endpoint.host, port, endpoint.user,
                          request.host_key.fingerprint, request.host_key.kind)
        source = RemoteLogicalSource(session, host, remote_paths(list(request.paths)),
                                     clock=request.clock)
        try:
            return capture(CaptureRequest(
                [], request.output, request.case, request.recipients, request.signing_key,
                command_line=command_line, clock=request.clock, progress=request.progress,
                exclude_paths=exclude, more_sources=(source,)))
        except SftpSessionOver as exc:  # not waited for as a session that ends well is
            signal_all(process, signal.SIGKILL)
            if isinstance(exc, SftpEnded) and (said := _last_line(errors)):
                exc.message += f" (ssh said: {said})"
                exc.args = (exc.message,)
            raise
        finally:
            session.close()


def _last_line(errors: ErrorChannel) -> str:
    """ssh's last message (e.g. 'Connection to HOST closed by remote host.'), for people."""
    lines = [line.strip() for line in errors.said().splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""
