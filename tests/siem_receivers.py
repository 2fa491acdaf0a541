"""Real receivers for the SIEM exporter tests: rsyslog (TCP and TLS) and a HEC-style server.

rsyslog is started as a subprocess on loopback with a generated configuration: imtcp on one
port (plain) and one port with the OpenSSL stream driver and a certificate made here; every
message is written to a file as its parsed RFC 5424 fields, ``|``-separated.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.services import unavailable

FIELDS = "%pri%|%protocol-version%|%timestamp:::date-rfc3339%|%hostname%|%app-name%|%procid%|"
FIELDS += "%msgid%|%structured-data%|%msg%\\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for localhost / 127.0.0.1: (ca, cert, key) PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "siem test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@dataclass
class Rsyslog:
    """One rsyslogd in the foreground, listening on ``tcp_port`` (plain) and ``tls_port``."""

    directory: Path
    tcp_port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def out(self) -> Path:
        return self.directory / "received.log"

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    def write_config(self) -> Path:
        ca, cert, key = make_tls_files(self.directory)
        work = self.directory / "work"
        work.mkdir(exist_ok=True)
        conf = self.directory / "rsyslog.conf"
        conf.write_text(
            f"""
global(workDirectory="{work}" maxMessageSize="128k"
       defaultNetstreamDriverCAFile="{ca}" defaultNetstreamDriverCertFile="{cert}"
       defaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" maxSessions="20")
template(name="fields" type="string" string="{FIELDS}")
input(type="imtcp" address="127.0.0.1" port="{self.tcp_port}" ruleset="out")
input(type="imtcp" address="127.0.0.1" port="{self.tls_port}" ruleset="out"
      streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="anon")
ruleset(name="out") {{
  action(type="omfile" file="{self.out}" template="fields" flushOnTXEnd="on"
         asyncWriting="off")
}}
"""
        )
        return conf

    def _spawn(self) -> subprocess.Popen[bytes]:
        binary = shutil.which("rsyslogd") or shutil.which("rsyslogd", path="/usr/sbin")
        if binary is None:
            unavailable("rsyslogd is not installed (`make sysdeps` installs it)")
        conf = self.directory / "rsyslog.conf"
        if not conf.exists():
            conf = self.write_config()
        with open(self.directory / "rsyslogd.err", "ab") as err:
            return subprocess.Popen(
                [binary, "-n", "-f", str(conf), "-i", str(self.directory / "rsyslogd.pid")],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    async def start(self) -> None:
        self.proc = self._spawn()
        for port in (self.tcp_port, self.tls_port):
            await _wait_listening(port, self.proc, self.directory / "rsyslogd.err")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(self.proc.wait, 10)
        self.proc = None

    def received(self) -> list[list[str]]:
        if not self.out.exists():
            return []
        lines = self.out.read_text(encoding="utf-8").splitlines()
        return [line.split("|", 8) for line in lines if line]


async def _wait_listening(port: int, proc: subprocess.Popen[bytes], err: Path) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise RuntimeError(f"rsyslogd exited, see {err}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"rsyslogd did not listen on {port}")


@dataclass
class HecServer:
    """A loopback HTTP Event Collector: checks the token and the body shape, records events."""

    token: str
    port: int = field(default_factory=free_port)
    events: list[dict[str, Any]] = field(default_factory=list)
    bad_requests: list[str] = field(default_factory=list)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/collector/event"

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Splunk {self.token}":
            return web.json_response({"text": "Invalid token", "code": 4}, status=403)
        body = await request.read()
        try:
            items = [orjson.loads(line) for line in body.split(b"\n") if line.strip()]
            for item in items:
                assert set(item) >= {"time", "sourcetype", "event", "source", "host"}, item
                assert isinstance(item["time"], int | float)
                assert item["sourcetype"].startswith("ocsf:")
                assert isinstance(item["event"]["class_uid"], int)
        except (ValueError, AssertionError, KeyError, TypeError) as exc:
            self.bad_requests.append(repr(exc))
            return web.json_response({"text": "Invalid data format", "code": 6}, status=400)
        self.events.extend(item["event"] for item in items)
        return web.json_response({"text": "Success", "code": 0})

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/services/collector/event", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
