"""What every request passes before any handler sees it: who the client is, which host it named, how large
its body is; and the security headers on every response.

``IglooApplication.find_handler`` runs once per request, right after its headers arrived and before a byte
of its body is read:

1. **Client address and scheme** (``handlers/proxy.py``). With ``TRUST_PROXY=true`` the client is the
   *last* ``X-Forwarded-For`` address (the one the proxy itself appended), the scheme the last
   ``X-Forwarded-Proto``, and the host the last ``X-Forwarded-Host``; ``X-Real-Ip`` is never read. Without
   ``TRUST_PROXY`` the socket's peer and the ``Host`` header.
2. **Host allow-list** (DNS rebinding). A page on ``evil.example`` whose name resolves to 127.0.0.1 reaches a
   loopback Igloo with ``Host: evil.example``; only ``HOST_NAME``, ``localhost``, IP literals (a page can only
   be *on* an IP address by being served from it), the hosts of ``ALLOWED_ORIGINS`` / ``NIP46_AUTH_URL`` and
   ``ALLOWED_HOSTS`` are answered. Others get 421. The relay at ``/`` answers every name: Nostr clients reach
   it by whatever name points at the machine, and it holds nothing a cross-site page could not already get
   (WebSockets ignore the same-origin policy, NIP-11 is sent with ``Access-Control-Allow-Origin: *``).
3. **Body size.** A ``Content-Length`` above ``MAX_BODY`` gets 413 (JSON under ``/api/``) at once; the body
   is never buffered or parsed, and the connection closes after the answer (``Refusal``). A chunked body is
   cut off at the same size by the HTTP server's ``max_body_size`` (``handlers/connections.py``).

``SecurityHeaders`` (an output transform, so it covers static files, errors, the relay and WebSocket
handshakes too) sends ``X-Content-Type-Options: nosniff``, a Content-Security-Policy that allows this site's
own scripts and styles only (no inline script, no inline style), ``X-Frame-Options: DENY``,
``Referrer-Policy``, HSTS over https, and a ``Server`` header without a framework version.
"""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import tornado.httputil
import tornado.iostream
import tornado.web

from config.settings import Settings
from handlers.proxy import ProxyAwareApplication, apply_forwarded, public_host

log = logging.getLogger("igloo.http")

MAX_BODY = 64 * 1024  # bytes: the API's documented limit; no route needs more
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
RELAY_PATH = "/"
DRAIN_BYTES = 8 << 20  # of a refused request's body, read and dropped so the client gets the answer
DRAIN_SECONDS = 2.0
DRAIN_CHUNK = 64 * 1024
MISDIRECTED = 421
SERVER_NAME = "Igloo"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HSTS = "max-age=31536000"
REFUSED_HOSTS_KEPT = 64  # distinct refused host names remembered, so each is logged once an hour
REFUSAL_LOG_INTERVAL = 3600.0


def host_name(host: str) -> str:
    """The name part of a Host header value, lower-case: ``[::1]:8002`` → ``::1``, ``a.b:80`` → ``a.b``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def is_ip_literal(name: str) -> bool:
    """True when ``name`` is an IPv4 or IPv6 address as written in a URL's host."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostPolicy:
    """The host names this server answers to (see the module docstring)."""

    def __init__(self, config: Settings) -> None:
        self.any_host = "*" in config.allowed_hosts
        names: set[str] = set(LOOPBACK_NAMES)
        with_port: set[str] = set()
        for entry in config.allowed_hosts:
            if entry == "*":
                continue
            (with_port if ":" in entry and not entry.startswith("[") else names).add(entry)
        names.add(host_name(config.host_name))
        for url in (*config.allowed_origins, config.nip46_auth_url or ""):
            if "://" in url:
                hostname = urlsplit(url).hostname
                if hostname:
                    names.add(hostname.rstrip("."))
        self.names = frozenset(names)
        self.names_with_port = frozenset(with_port)

    def allows(self, host: str) -> bool:
        """True when a request naming ``host`` (a Host header value) may be answered."""
        if self.any_host:
            return True
        name = host_name(host)
        if not name:
            return False
        if name in self.names or is_ip_literal(name):
            return True
        return host.strip().lower().rstrip(".") in self.names_with_port


def declared_body_size(headers: tornado.httputil.HTTPHeaders) -> int | None:
    """The body size a request announces in Content-Length (None when absent or not a plain number)."""
    raw = headers.get("Content-Length")
    if raw is None:
        return None
    first = raw.split(",", 1)[0].strip()
    return int(first) if first.isascii() and first.isdigit() else None


class Refusal(tornado.httputil.HTTPMessageDelegate):
    """Answers a request refused before routing (421 wrong host, 413 too large), JSON under /api/.

    It takes the connection over as soon as the headers are in, writes the answer, and closes it the way a
    careful server does: it stops sending, then reads and drops what the client is still sending for a moment
    (at most ``DRAIN_BYTES`` bytes and ``DRAIN_SECONDS`` seconds), so the client's kernel does not receive a
    reset that destroys the answer before the client has read it. Nothing of the body is kept, parsed or
    handed to a handler (no cookie or session is looked at either).
    """

    def __init__(self, request: tornado.httputil.HTTPServerRequest, status: int, message: str,
                 closing: set[asyncio.Task[None]]) -> None:
        self.request = request
        self.status = status
        self.message = message
        self.closing = closing  # the tasks closing refused connections (kept here so none is collected)

    def headers_received(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: tornado.httputil.HTTPHeaders,
    ) -> None:
        """Write the answer on the detached connection and close it."""
        connection = self.request.connection
        detach = getattr(connection, "detach", None)
        if detach is None:  # not an HTTP/1 connection: nothing else exists in Igloo
            return
        stream = detach()
        task = asyncio.ensure_future(self._answer_and_close(stream))
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)

    async def _answer_and_close(self, stream: tornado.iostream.IOStream) -> None:
        try:
            await stream.write(self.response())
            if stream.socket is not None:
                stream.socket.shutdown(socket.SHUT_WR)
            deadline = asyncio.get_running_loop().time() + DRAIN_SECONDS
            dropped = 0
            while dropped < DRAIN_BYTES:
                chunk = await asyncio.wait_for(stream.read_bytes(DRAIN_CHUNK, partial=True),
                                               deadline - asyncio.get_running_loop().time())
                dropped += len(chunk)
        except (tornado.iostream.StreamClosedError, OSError, TimeoutError):
            pass
        finally:
            stream.close()

    def response(self) -> bytes:
        """The whole HTTP response."""
        if self.request.path.startswith("/api/"):
            content_type, body = "application/json; charset=UTF-8", json.dumps({"error": self.message})
        else:
            content_type, body = "text/plain; charset=UTF-8", f"{self.status} {self.message}\n"
        data = body.encode("utf-8")
        reason = http.client.responses.get(self.status, "Refused")
        lines = [f"HTTP/1.1 {self.status} {reason}", f"Content-Type: {content_type}",
                 f"Content-Length: {len(data)}", "Connection: close", "Cache-Control: no-store"]
        lines += [f"{name}: {value}" for name, value in security_headers(self.request.protocol == "https")]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


class IglooApplication(ProxyAwareApplication):
    """The Tornado application with the checks of this module in front of its routes."""

    def __init__(self, handlers: Any, config: Settings, **settings: Any) -> None:
        super().__init__(handlers, transforms=[SecurityHeaders], config=config, **settings)
        self.host_policy = HostPolicy(config)
        self.trust_proxy = config.trust_proxy
        self._refused_hosts: dict[str, float] = {}
        self.closing: set[asyncio.Task[None]] = set()

    def find_handler(  # type: ignore[override]  # a router may return any delegate (tornado.routing.Router)
        self, request: tornado.httputil.HTTPServerRequest, **kwargs: Any
    ) -> tornado.httputil.HTTPMessageDelegate:
        """Resolve the client, check the host and the announced body size, then route."""
        if self.trust_proxy:
            apply_forwarded(request)  # (ProxyAwareApplication does it again when routing: the same values)
        host = public_host(request, self.trust_proxy)
        if request.path != RELAY_PATH and not self.host_policy.allows(host):
            self._log_refused_host(host, request)
            message = "Host not allowed: add this name to ALLOWED_HOSTS on the server"
            return Refusal(request, MISDIRECTED, message, self.closing)
        size = declared_body_size(request.headers)
        if size is not None and size > MAX_BODY:
            return Refusal(request, 413, f"Request body too large: at most {MAX_BODY} bytes", self.closing)
        delegate: tornado.httputil.HTTPMessageDelegate = super().find_handler(request, **kwargs)
        return delegate

    def _log_refused_host(self, host: str, request: tornado.httputil.HTTPServerRequest) -> None:
        """One warning per refused host name and hour (the names kept are bounded)."""
        name = host_name(host)[:100]
        now = time.monotonic()
        last = self._refused_hosts.get(name)
        if last is not None and now - last < REFUSAL_LOG_INTERVAL:
            return
        if last is None and len(self._refused_hosts) >= REFUSED_HOSTS_KEPT:
            self._refused_hosts = {n: t for n, t in self._refused_hosts.items()
                                   if now - t < REFUSAL_LOG_INTERVAL}
            if len(self._refused_hosts) >= REFUSED_HOSTS_KEPT:
                return
        self._refused_hosts[name] = now
        log.warning("refused a request for host %r from %s (not HOST_NAME, localhost or in ALLOWED_HOSTS; "
                    "a DNS rebinding attempt, or a name to add to ALLOWED_HOSTS)", name, request.remote_ip)


class SecurityHeaders(tornado.web.OutputTransform):
    """The security headers on every response (see the module docstring)."""

    def __init__(self, request: tornado.httputil.HTTPServerRequest) -> None:
        super().__init__(request)
        self._https = request.protocol == "https"

    def transform_first_chunk(
        self, status_code: int, headers: tornado.httputil.HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, tornado.httputil.HTTPHeaders, bytes]:
        """Add the headers; the ``Server`` header names Igloo without a version."""
        for name, value in security_headers(self._https):
            headers[name] = value
        return status_code, headers, chunk


def security_headers(https: bool) -> Iterable[tuple[str, str]]:
    """The (name, value) pairs ``SecurityHeaders`` sets."""
    yield "Server", SERVER_NAME
    yield "X-Content-Type-Options", "nosniff"
    yield "Content-Security-Policy", CONTENT_SECURITY_POLICY
    yield "X-Frame-Options", "DENY"
    yield "Referrer-Policy", "same-origin"
    if https:
        yield "Strict-Transport-Security", HSTS

