"""Who is connected to the embedded relay: admission by address, and the token bucket each client pays from.

A connection is *local* when it comes straight from one of ``local_addresses`` (127.0.0.1 and ::1: the
node's own connection to its embedded relay) with no proxy header (``X-Forwarded-For``, ``X-Real-IP``,
``Forwarded``). A reverse proxy on the same machine also connects from 127.0.0.1, but it adds those headers,
so what it forwards counts as an outsider: under the proxy's address, or under the client's own when
``TRUST_PROXY`` lets ``handlers/proxy.py`` read it from the headers. A forged header only ever makes a client
an outsider.

- Local connections skip the per-address cap, and ``local_reserved`` of the ``max_connections`` slots are
  theirs alone, so outsiders filling the relay cannot lock the node out. Each pays its own token bucket.
- Outsiders may hold ``max_connections_per_address`` connections per address (an IPv6 address counts by
  its /64, which one subscriber usually owns), and every connection of one address pays from one token
  bucket, so opening more connections buys no more work. Buckets of recent addresses are kept (at most
  ``max_known_addresses``), so reconnecting does not refill one.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from node import TokenBucket
from relay.limits import RelayLimits

PROXY_HEADERS = ("X-Forwarded-For", "X-Real-Ip", "Forwarded")

TOO_MANY_FROM_ADDRESS = 429
RELAY_FULL = 503


def address_key(remote_ip: str) -> str:
    """The address a client is counted under: the IP itself, or the /64 network of an IPv6 address."""
    try:
        ip = ipaddress.ip_address(remote_ip)
    except ValueError:
        return remote_ip
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        if not ip.is_loopback:
            return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(frozen=True, slots=True)
class ClientAddress:
    """Where a connection comes from, as admission sees it."""

    key: str
    local: bool

    @classmethod
    def of(cls, remote_ip: str | None, headers: Mapping[str, str], local_addresses: frozenset[str]
           ) -> ClientAddress:
        """Classify a request by its (possibly proxy-reported) address and its headers."""
        ip = remote_ip or "unknown"
        proxied = any(name in headers for name in PROXY_HEADERS)
        return cls(address_key(ip), ip in local_addresses and not proxied)


class Admission:
    """Connection counts per address and overall, and the per-address token buckets."""

    def __init__(self, limits: RelayLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._per_address: dict[str, int] = {}
        self._outsiders = 0
        self._locals = 0
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def refusal(self, client: ClientAddress) -> tuple[int, str] | None:
        """The HTTP status and reason for refusing a new connection now, or None to admit it."""
        limits = self.limits
        if self._outsiders + self._locals >= limits.max_connections:
            return RELAY_FULL, "relay is full"
        if client.local:
            return None
        if self._outsiders >= limits.max_connections - limits.local_reserved:
            return RELAY_FULL, "relay is full"
        if self._per_address.get(client.key, 0) >= limits.max_connections_per_address:
            return TOO_MANY_FROM_ADDRESS, "too many relay connections from this address"
        return None

    def admit(self, client: ClientAddress) -> None:
        """Count a connection in (after ``refusal`` said None)."""
        if client.local:
            self._locals += 1
            return
        self._outsiders += 1
        self._per_address[client.key] = self._per_address.get(client.key, 0) + 1

    def release(self, client: ClientAddress) -> None:
        """Count a connection out (once per ``admit``)."""
        if client.local:
            self._locals -= 1
            return
        self._outsiders -= 1
        left = self._per_address.get(client.key, 0) - 1
        if left > 0:
            self._per_address[client.key] = left
        else:
            self._per_address.pop(client.key, None)

    def open_count(self) -> int:
        """Connections counted in right now."""
        return self._outsiders + self._locals

    def connections_from(self, key: str) -> int:
        """Outsider connections from one address."""
        return self._per_address.get(key, 0)

    def bucket(self, client: ClientAddress) -> TokenBucket:
        """The token bucket a new connection pays from: its own when local, its address's otherwise."""
        limits = self.limits
        if client.local:
            return TokenBucket(limits.event_rate, limits.event_burst, self._clock)
        bucket = self._buckets.get(client.key)
        if bucket is None:
            bucket = TokenBucket(limits.event_rate, limits.event_burst, self._clock)
            self._buckets[client.key] = bucket
            while len(self._buckets) > limits.max_known_addresses:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client.key)
        return bucket
