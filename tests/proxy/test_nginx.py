"""A real reverse proxy with TLS in front of a real Igloo, on loopback, with the site block of docs/DEPLOY.md.

nginx (Debian's package; ``make test`` installs it when missing) runs the ``nginx`` block of docs/DEPLOY.md
as written, except for what only a test changes: its certificate (made here for ``igloo.test``), its listen
addresses (127.0.0.1 and free ports) and Igloo's port. Caddy (when installed) runs the ``caddy`` block the
same way. Igloo has ``TRUST_PROXY=true`` and ``ALLOWED_HOSTS=igloo.test``, as docs/DEPLOY.md says. Clients
reach the proxy as ``https://igloo.test:PORT``
(resolved to 127.0.0.1 in this process) from several loopback source addresses (127.0.0.2, .3), so the
proxy sees different clients. Checked: the API, the Secure session cookie, the login rate limit per client
(a client-sent X-Forwarded-For or X-Real-Ip changes nothing), the event-stream WebSocket with the origin
check (own origin live, foreign origin closed 1008), the relay WebSocket, the legacy 426.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient
import tornado.netutil
import tornado.websocket
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.igloo_process import API_KEY, ROOT, ServerProc, free_port

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

HOST = "igloo.test"
DEPLOY = (ROOT / "docs" / "DEPLOY.md").read_text()
PASSWORD = "proxy test password"
LOGIN_MAX = 3


def doc_block(marker: str, language: str) -> str:
    """The fenced block that follows ``<!-- marker ...-->`` in docs/DEPLOY.md."""
    match = re.search(rf"<!-- {marker}[^>]*-->\n```{language}\n(.*?)\n```", DEPLOY, re.S)
    assert match, f"docs/DEPLOY.md has no {language} block after <!-- {marker} -->"
    return match.group(1)


def find(binary: str) -> str | None:
    candidates = (Path("/usr/sbin") / binary, Path("/usr/bin") / binary)
    return shutil.which(binary) or next((str(p) for p in candidates if p.exists()), None)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for igloo.test (the clients trust exactly this one)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def nginx_config(work: Path, upstream: int, http_port: int, https_port: int, cert: Path, key: Path) -> Path:
    site = doc_block("nginx-site", "nginx")
    site = (site.replace("listen [::]:80;", "").replace("listen [::]:443 ssl;", "")
            .replace("listen 80;", f"listen 127.0.0.1:{http_port};")
            .replace("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
            .replace("/etc/letsencrypt/live/igloo.example.com/fullchain.pem", str(cert))
            .replace("/etc/letsencrypt/live/igloo.example.com/privkey.pem", str(key))
            .replace("igloo.example.com", HOST).replace("127.0.0.1:8002", f"127.0.0.1:{upstream}"))
    temp = "\n".join(f"    {name}_temp_path {work}/{name};" for name in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    config = work / "nginx.conf"
    config.write_text(f"""
user root root;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {work}/access.log;
{temp}
{site}
}}
""")
    return config


def caddy_config(work: Path, upstream: int, http_port: int, https_port: int, cert: Path, key: Path) -> Path:
    site = doc_block("caddy-site", "caddy")
    site = (site.replace("igloo.example.com {", f"{HOST}:{https_port} {{\n    tls {cert} {key}")
            .replace("127.0.0.1:8002", f"127.0.0.1:{upstream}"))
    config = work / "Caddyfile"
    config.write_text(f"""{{
    admin off
    skip_install_trust
    auto_https disable_redirects
    http_port {http_port}
    https_port {https_port}
    storage file_system {work}/caddy
}}
{site}
""")
    return config


@dataclass
class Proxy:
    name: str
    https_port: int
    cert: Path
    work: Path

    @property
    def base(self) -> str:
        return f"https://{HOST}:{self.https_port}"

    @property
    def origin(self) -> str:
        return self.base


@contextlib.contextmanager
def proxy_process(name: str, work: Path, upstream: int, cert: Path, key: Path) -> Iterator[Proxy]:
    binary = find(name)
    if binary is None:
        pytest.skip(f"{name} is not installed (make test installs Debian's {name} package as root)")
    http_port, https_port = free_port(), free_port()
    if name == "nginx":
        config = nginx_config(work, upstream, http_port, https_port, cert, key)
        argv = [binary, "-p", str(work), "-c", str(config), "-g", "daemon off;"]
    else:
        config = caddy_config(work, upstream, http_port, https_port, cert, key)
        argv = [binary, "run", "--config", str(config), "--adapter", "caddyfile"]
    log = (work / f"{name}.out").open("wb")
    env = {"HOME": str(work), "XDG_DATA_HOME": str(work), "XDG_CONFIG_HOME": str(work),
           "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, (work / f"{name}.out").read_text()
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", https_port), timeout=0.5):
                    break
            assert time.monotonic() < deadline, f"{name} did not listen"
            time.sleep(0.05)
        yield Proxy(name, https_port, cert, work)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextlib.contextmanager
def igloo_test_resolves_to_loopback() -> Iterator[None]:
    """``igloo.test`` → 127.0.0.1 for this process's Tornado clients (so SNI and Host carry the name)."""
    tornado.netutil.Resolver.configure("tornado.netutil.OverrideResolver",
                                       resolver=tornado.netutil.DefaultExecutorResolver(),
                                       mapping={HOST: "127.0.0.1"})
    try:
        yield
    finally:
        tornado.netutil.Resolver.configure(None)


@contextlib.asynccontextmanager
async def igloo_behind(proxy_name: str, tmp_path: Path) -> AsyncIterator[tuple[ServerProc, Proxy]]:
    data_dir = tmp_path / "igloo"
    data_dir.mkdir()
    server = ServerProc(data_dir, env={"TRUST_PROXY": "true", "ALLOWED_HOSTS": HOST,
                                       "RATE_LIMIT_LOGIN_MAX": str(LOGIN_MAX),
                                       "IGLOO_DEMO": "false"})
    created = subprocess.run([*server_cli(), "adduser", "alice", "--password-stdin"], input=PASSWORD + "\n",
                             env=server.env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert created.returncode == 0, created.stderr
    cert, key = make_certificate(tmp_path)
    work = tmp_path / proxy_name
    work.mkdir()
    await server.start()
    try:
        with igloo_test_resolves_to_loopback(), \
                proxy_process(proxy_name, work, server.port, cert, key) as proxy:
            yield server, proxy
    finally:
        await server.stop()
        server.client.close()


def server_cli() -> list[str]:
    return [sys.executable, str(ROOT / "server.py")]


def client() -> tornado.httpclient.AsyncHTTPClient:
    return tornado.httpclient.AsyncHTTPClient(force_instance=True)


async def fetch(proxy: Proxy, path: str, *, source: str = "127.0.0.2", method: str = "GET", body: Any = None,
                headers: dict[str, str] | None = None) -> tornado.httpclient.HTTPResponse:
    request = tornado.httpclient.HTTPRequest(
        proxy.base + path, method=method, headers=headers or {}, network_interface=source,
        body=None if body is None else json.dumps(body), ca_certs=str(proxy.cert), request_timeout=15,
        follow_redirects=False)
    http = client()
    try:
        return await http.fetch(request, raise_error=False)
    finally:
        http.close()


async def login(proxy: Proxy, password: str, source: str, extra: dict[str, str] | None = None
                ) -> tornado.httpclient.HTTPResponse:
    return await fetch(proxy, "/api/auth/login", source=source, method="POST",
                       body={"username": "alice", "password": password},
                       headers={"Content-Type": "application/json", **(extra or {})})


async def open_stream(proxy: Proxy, origin: str, source: str = "127.0.0.2"
                      ) -> tornado.websocket.WebSocketClientConnection:
    request = tornado.httpclient.HTTPRequest(
        f"wss://{HOST}:{proxy.https_port}/api/events", headers={"X-API-Key": API_KEY, "Origin": origin},
        network_interface=source, ca_certs=str(proxy.cert), connect_timeout=10)
    return await tornado.websocket.websocket_connect(request)


async def check_igloo_behind_proxy(server: ServerProc, proxy: Proxy) -> None:
    # The API through TLS.
    status = await fetch(proxy, "/api/status", headers={"X-API-Key": API_KEY})
    assert status.code == 200 and json.loads(status.body)["serverRunning"] is True

    # The session cookie is Secure: the proxy said https (X-Forwarded-Proto), Igloo listens on plain HTTP.
    ok = await login(proxy, PASSWORD, "127.0.0.4")
    assert ok.code == 200, ok.body
    assert "Secure" in ok.headers["Set-Cookie"] and "HttpOnly" in ok.headers["Set-Cookie"]

    # The login limiter counts per client address as the proxy saw it.
    for _ in range(LOGIN_MAX):
        assert (await login(proxy, "wrong password", "127.0.0.2")).code == 401
    assert (await login(proxy, "wrong password", "127.0.0.2")).code == 429
    # Claiming another address in the headers changes nothing: Igloo takes the hop the proxy appended.
    spoofed = {"X-Forwarded-For": "198.51.100.7", "X-Real-Ip": "198.51.100.8"}
    assert (await login(proxy, "wrong password", "127.0.0.2", spoofed)).code == 429
    assert (await login(proxy, "wrong password", "127.0.0.3")).code == 401  # another client is not limited

    # The event stream upgrades through the proxy; the page's own origin is accepted with no ALLOWED_ORIGINS.
    ws = await open_stream(proxy, proxy.origin)
    greeting = json.loads(await asyncio.wait_for(ws.read_message(), 10))  # type: ignore[arg-type]
    assert greeting["message"] == "Connected to event stream"
    ws.close()
    # A page of another site is closed with 1008 before it receives anything.
    foreign = await open_stream(proxy, f"https://evil.example:{proxy.https_port}")
    assert await asyncio.wait_for(foreign.read_message(), 10) is None
    assert foreign.close_code == 1008

    # The relay's WebSocket at / goes through too.
    relay_request = tornado.httpclient.HTTPRequest(f"wss://{HOST}:{proxy.https_port}/",
                                                   ca_certs=str(proxy.cert), network_interface="127.0.0.3",
                                                   connect_timeout=10)
    relay = await tornado.websocket.websocket_connect(relay_request)
    await relay.write_message(json.dumps(["REQ", "s1", {"kinds": [1], "limit": 1}]))
    assert json.loads(await asyncio.wait_for(relay.read_message(), 10)) == ["EOSE", "s1"]  # type: ignore[arg-type]
    relay.close()

    # A plain GET of the stream gets the legacy 426 naming the public wss:// address.
    legacy = await fetch(proxy, "/api/events", headers={"X-API-Key": API_KEY})
    assert legacy.code == 426 and f"wss://{HOST}" in json.loads(legacy.body)["message"]


async def test_nginx_in_front_of_igloo(tmp_path: Path) -> None:
    async with igloo_behind("nginx", tmp_path) as (server, proxy):
        await check_igloo_behind_proxy(server, proxy)
        # nginx saw the clients' own addresses (what Igloo trusted is what the proxy wrote).
        assert "127.0.0.2" in (proxy.work / "access.log").read_text()


async def test_caddy_in_front_of_igloo(tmp_path: Path) -> None:
    async with igloo_behind("caddy", tmp_path) as (server, proxy):
        await check_igloo_behind_proxy(server, proxy)


def test_deploy_doc_blocks_are_the_tested_ones() -> None:
    """The blocks the tests run are the ones a reader copies (markers in place, standard headers present)."""
    nginx = doc_block("nginx-site", "nginx")
    for line in ("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                 "proxy_set_header X-Forwarded-Proto $scheme;", "proxy_set_header Upgrade $http_upgrade;",
                 "proxy_pass http://127.0.0.1:8002;"):
        assert line in nginx
    assert "reverse_proxy 127.0.0.1:8002" in doc_block("caddy-site", "caddy")
