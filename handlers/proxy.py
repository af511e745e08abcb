"""What a trusted reverse proxy says about a request: the client's address, the scheme and the host it used.

The one place that reads forwarded headers. With ``TRUST_PROXY=true`` Igloo runs behind one reverse proxy on
the same machine (nginx, Caddy; ``docs/DEPLOY.md``), and only what that proxy itself wrote is believed:

- **address**: the last ``X-Forwarded-For`` entry, the hop the proxy appended (nginx's
  ``$proxy_add_x_forwarded_for``, Caddy by default). Entries before it came from the client and can say
  anything, so they are skipped; ``X-Real-Ip`` is ignored for the same reason (a client can send it and many
  proxies pass it through). Without the header, the connection's own address.
- **scheme**: the last ``X-Forwarded-Proto`` value when it is ``http`` or ``https``.
- **host**: the last ``X-Forwarded-Host`` value when it looks like ``host[:port]``, else ``Host``.

Without ``TRUST_PROXY`` every forwarded header is ignored: the address is the TCP peer, the scheme the
connection's, the host the ``Host`` header. ``ProxyAwareApplication`` applies the address and scheme to each
request before it is routed, so every handler (rate limits, connection caps, Secure cookies, the relay's
admission) sees the same values; the origin check asks ``public_host``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

import tornado.httputil
import tornado.web

_NAME_RE = re.compile(r"^[A-Za-z0-9.-]+(?::\d{1,5})?$")
_PORT_RE = re.compile(r"^(?::\d{1,5})?$")
MAX_HOST_LENGTH = 255
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _last_value(header: str | None) -> str | None:
    """The last comma-separated value of a header (what the nearest proxy wrote), stripped."""
    if not header:
        return None
    value = header.rsplit(",", 1)[-1].strip()
    return value or None


def _valid_ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def forwarded_client(peer_ip: str, forwarded_for: str | None,
                     trusted: frozenset[str] = frozenset()) -> str:
    """The client address: the first hop from the right of ``X-Forwarded-For`` that is not a trusted proxy.

    ``trusted`` lists addresses of further proxies in front of the one that connects to Igloo (none by
    default: the last entry, the one the proxy appended, is the client). A malformed entry ends the walk and
    the peer's address is used: a proxy never writes one, so it came from the client.
    """
    if not forwarded_for:
        return peer_ip
    for entry in reversed(forwarded_for.split(",")):
        address = _valid_ip(entry)
        if address is None:
            return peer_ip
        if address not in trusted:
            return address
    return peer_ip


def forwarded_scheme(forwarded_proto: str | None) -> str | None:
    """``http`` or ``https`` from ``X-Forwarded-Proto``, else None."""
    value = (_last_value(forwarded_proto) or "").lower()
    return value if value in ("http", "https") else None


def valid_host(value: str | None) -> str | None:
    """``value`` when it is a plausible ``host[:port]`` or ``[IPv6][:port]`` (lower-cased), else None."""
    if not value or len(value) > MAX_HOST_LENGTH:
        return None
    if value.startswith("["):
        inner, _, rest = value[1:].partition("]")
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            return None
        return value.lower() if _PORT_RE.match(rest) else None
    return value.lower() if _NAME_RE.match(value) else None


def peer_ip(request: tornado.httputil.HTTPServerRequest) -> str:
    """The TCP peer's address (the proxy's, behind one), whatever the request's headers say."""
    context = getattr(request.connection, "context", None)
    address = getattr(context, "address", None)
    if isinstance(address, tuple) and address and isinstance(address[0], str):
        return address[0]
    return str(request.remote_ip or "unknown")


def apply_forwarded(request: tornado.httputil.HTTPServerRequest) -> None:
    """Set ``request.remote_ip`` and ``request.protocol`` from what the trusted proxy wrote."""
    headers = request.headers
    request.remote_ip = forwarded_client(peer_ip(request), headers.get("X-Forwarded-For"))
    scheme = forwarded_scheme(headers.get("X-Forwarded-Proto"))
    if scheme is not None:
        request.protocol = scheme


def public_host(request: tornado.httputil.HTTPServerRequest, trust_proxy: bool) -> str:
    """The host (and port) the client used: ``X-Forwarded-Host`` behind a trusted proxy, else ``Host``."""
    if trust_proxy:
        forwarded = valid_host(_last_value(request.headers.get("X-Forwarded-Host")))
        if forwarded is not None:
            return forwarded
    return (request.host or "").lower()


def _split_host(host: str) -> tuple[str, int | None]:
    """``(hostname, port or None)`` of ``host[:port]`` (IPv6 literals in brackets)."""
    parts = urlsplit("//" + host)
    try:
        port = parts.port
    except ValueError:
        return host, None
    return (parts.hostname or ""), port


def origin_matches_host(origin: str, host: str) -> bool:
    """True when a browser's ``Origin`` names the same host (and port) as the request.

    A port missing from ``Origin`` is its scheme's default. When the host carries no port, the hostname
    alone decides (as on Igloo Server): nginx's ``$host``, the usual ``Host``/``X-Forwarded-Host`` of a
    proxy, leaves the public port out, and a browser leaves out only a default one.
    """
    parts = urlsplit(origin.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return False
    try:
        origin_port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        return False
    hostname, port = _split_host(host)
    if hostname != parts.hostname.lower():
        return False
    return port is None or port == origin_port


def origin_allowed(origin: str | None, request: tornado.httputil.HTTPServerRequest, trust_proxy: bool,
                   allowed_origins: tuple[str, ...]) -> bool:
    """The WebSocket origin check: no Origin (not a browser), ``*``, a listed origin, or this server: its host
    (``origin_matches_host``) and its scheme (``request.protocol``, X-Forwarded-Proto behind the proxy), so an
    http page cannot speak for an https site of the same name."""
    if origin is None:
        return True
    if "*" in allowed_origins:
        return True
    normalized = origin.strip().lower().rstrip("/")
    if normalized in allowed_origins:
        return True
    if not origin_matches_host(normalized, public_host(request, trust_proxy)):
        return False
    own_scheme = "https" if getattr(request, "protocol", "http") == "https" else "http"
    return urlsplit(normalized).scheme == own_scheme


class ProxyAwareApplication(tornado.web.Application):
    """The Igloo application. With TRUST_PROXY each request's address and scheme come from
    ``apply_forwarded`` before routing, so handlers, the relay and the access log see the client."""

    def find_handler(self, request: tornado.httputil.HTTPServerRequest, **kwargs: Any) -> Any:
        """Apply the forwarded headers (when trusted), then route as usual."""
        config = self.settings.get("config")
        if config is not None and getattr(config, "trust_proxy", False):
            apply_forwarded(request)
        return super().find_handler(request, **kwargs)
