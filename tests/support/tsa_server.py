"""A real RFC 3161 time stamping authority on 127.0.0.1, for tests.

A test CA and TSA certificate are made with openssl; a tiny HTTP server (in a thread) answers each
POSTed request by running ``openssl ts -reply``. The server is stopped whatever happens (the
fixture's ``finally``). Modes make it misbehave in the ways a test needs: another nonce than the
request's (a replayed answer), a certificate already expired, a signature that does not verify
(its last byte changed), an answer sent a byte at a time (drip), a status no RFC defines.
"""

from __future__ import annotations

import http.server
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.serving import serving
from tests.support.tools import require_tool

_CONFIG = """\
[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
dir = {dir}
serial = {dir}/serial
crypto_device = builtin
signer_cert = {dir}/{cert}
certs = {dir}/{cert}
signer_key = {dir}/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5
digests = sha256, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


@dataclass
class LocalTSA:
    url: str
    folder: Path
    root: Path  # the CA certificate (PEM), for --tsa-ca
    cert: Path  # the TSA certificate (PEM), for openssl ts -verify -untrusted
    # "good", "other-nonce", "expired", "bad-signature", "drip", "unknown-status"
    mode: str = "good"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([require_tool("openssl"), *args], cwd=cwd, check=True, capture_output=True)


def make_pki(folder: Path, name: str = "Test TSA Root", rsa: bool = False) -> None:
    """ca.crt/ca.key, and tsa.crt (valid) and expired.crt (expired) for tsa.key, with the
    critical timeStamping usage."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "rsa:2048", "-nodes"] if rsa else \
        ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
             "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    _openssl("req", *ec, "-keyout", "tsa.key", "-out", "tsa.csr", "-subj", "/CN=Test TSA",
             cwd=folder)
    (folder / "tsa.ext").write_text("extendedKeyUsage = critical, timeStamping\n"
                                    "keyUsage = critical, digitalSignature\n"
                                    "basicConstraints = CA:FALSE\n")
    _openssl("x509", "-req", "-in", "tsa.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-set_serial", "2", "-days", "365", "-extfile", "tsa.ext", "-out", "tsa.crt",
             cwd=folder)
    # valid from 2020-01-01 to 2020-01-02: long expired
    _openssl("x509", "-req", "-in", "tsa.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-set_serial", "3", "-not_before", "20200101000000Z", "-not_after",
             "20200102000000Z", "-extfile", "tsa.ext", "-out", "expired.crt", cwd=folder) \
        if _supports_not_before() else _expired_by_hand(folder)
    (folder / "serial").write_text("01\n")


def _supports_not_before() -> bool:
    proc = subprocess.run([require_tool("openssl"), "x509", "-help"], capture_output=True,
                          text=True)
    return "-not_before" in proc.stdout + proc.stderr


def _expired_by_hand(folder: Path) -> None:
    """openssl 3.0's x509 has no -not_before: sign with `openssl ca` and fixed dates."""
    (folder / "ca-db").mkdir(exist_ok=True)
    (folder / "ca-db" / "index.txt").write_text("")
    (folder / "ca.cnf").write_text(
        "[ ca ]\ndefault_ca = test\n[ test ]\n"
        f"dir = {folder}\ndatabase = {folder}/ca-db/index.txt\nnew_certs_dir = {folder}/ca-db\n"
        f"certificate = {folder}/ca.crt\nprivate_key = {folder}/ca.key\n"
        f"serial = {folder}/ca-db/serial\ndefault_md = sha256\npolicy = anything\n"
        "copy_extensions = none\nunique_subject = no\n"
        "[ anything ]\ncommonName = supplied\n"
        "[ tsa_ext ]\nextendedKeyUsage = critical, timeStamping\n"
        "keyUsage = critical, digitalSignature\nbasicConstraints = CA:FALSE\n")
    (folder / "ca-db" / "serial").write_text("03\n")
    _openssl("ca", "-batch", "-config", "ca.cnf", "-extensions", "tsa_ext", "-in", "tsa.csr",
             "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
             "-out", "expired.crt", "-notext", cwd=folder)


class _Handler(http.server.BaseHTTPRequestHandler):
    tsa: LocalTSA

    def do_POST(self) -> None:
        query = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with tempfile.TemporaryDirectory(dir=self.tsa.folder) as work:
            if self.tsa.mode == "other-nonce":
                query = _with_other_nonce(query)
            (Path(work) / "q.tsq").write_bytes(query)
            cert = "expired.crt" if self.tsa.mode == "expired" else "tsa.crt"
            (Path(work) / "tsa.cnf").write_text(_CONFIG.format(dir=self.tsa.folder, cert=cert))
            proc = subprocess.run([require_tool("openssl"), "ts", "-reply", "-queryfile", "q.tsq",
                                   "-config", "tsa.cnf", "-out", "r.tsr"], cwd=work,
                                  capture_output=True)
            if proc.returncode != 0:
                self.send_error(500)
                return
            answer = (Path(work) / "r.tsr").read_bytes()
        if self.tsa.mode == "bad-signature":  # the last byte is the signature's
            answer = answer[:-1] + bytes([answer[-1] ^ 1])
        if self.tsa.mode == "unknown-status":  # 30 82 LL LL 30 03 02 01 <status>
            assert answer[4:8] == b"\x30\x03\x02\x01"
            answer = answer[:8] + b"\x07" + answer[9:]
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if self.tsa.mode == "drip":  # a byte every 20 ms: each read is quick, the whole is not
            for byte in answer:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.02)
            return
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _with_other_nonce(query: bytes) -> bytes:
    """The same request with another nonce: the request ends with the nonce INTEGER then
    certReq (``01 01 ff``), so flipping the byte before those three changes only the nonce."""
    assert query.endswith(b"\x01\x01\xff")
    changed = bytearray(query)
    changed[-4] ^= 0x55
    return bytes(changed)


@contextmanager
def running_tsa(folder: Path, mode: str = "good") -> Iterator[LocalTSA]:
    if not (folder / "ca.crt").exists():
        make_pki(folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    tsa = LocalTSA(f"http://127.0.0.1:{server.server_address[1]}/", folder, folder / "ca.crt",
                  folder / ("expired.crt" if mode == "expired" else "tsa.crt"), mode)
    server.RequestHandlerClass = type("Handler", (_Handler,), {"tsa": tsa})
    with serving(server):
        yield tsa


def down_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port just released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"
