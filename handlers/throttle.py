"""Per-client request limits: one token bucket per client address and limit, in bounded memory.

Each limit is Igloo Server's ``RATE_LIMIT_*`` pair: at most ``max`` requests at once, refilled at
``max / window`` per second (``node.ratelimit.TokenBucket``). A client over a limit gets 429 with
``Retry-After``; one log line and one event say so per client, limit and window, however many requests it
keeps sending.

Memory: each limit keeps at most ``max_clients`` buckets. A full bucket is the same as none, so the least
recently used full one makes room for a new client; when every kept bucket is in use (more than
``max_clients`` addresses active within one window: an address spray), newcomers share one overflow bucket
of the same size until buckets refill. Nobody gets fresh tokens by spraying, and memory stays bounded.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from config.settings import Settings
from node import Clock, TokenBucket
from relay import address_key

MAX_CLIENTS = 4096
OVERFLOW = "*"

# The limits and the requests they count (handlers name them in ``rate_limits``).
CREDENTIALS = "credentials"  # failed X-API-Key / Bearer / Basic, per address (RATE_LIMIT_LOGIN_*)
API = "api"  # authenticated /api requests (RATE_LIMIT_MAX per RATE_LIMIT_WINDOW)
SIGN = "sign"  # /api/sign and the NIP-44/NIP-04 routes (the same numbers, their own buckets)
RECOVERY = "recovery"  # /api/recover (RATE_LIMIT_RECOVERY_*)
ENV_WRITE = "env-write"  # POST /api/env and /configure (RATE_LIMIT_ENV_WRITE_*)
WS_UPGRADE = "ws-upgrade"  # event-stream upgrade attempts (RATE_LIMIT_WS_UPGRADE_*)


@dataclass(frozen=True)
class RateLimit:
    """``max`` requests per ``window`` seconds."""

    name: str
    max: int
    window: float  # seconds

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self.max / self.window


class _Client:
    __slots__ = ("bucket", "reported_at")

    def __init__(self, bucket: TokenBucket) -> None:
        self.bucket = bucket
        self.reported_at: float | None = None


class ClientThrottle:
    """One limit's buckets, per client address (IPv6 counted by its /64)."""

    def __init__(self, limit: RateLimit, clock: Clock = time.monotonic,
                 max_clients: int = MAX_CLIENTS) -> None:
        self.limit = limit
        self.max_clients = max_clients
        self._clock = clock
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._overflow = _Client(self._bucket())

    def _bucket(self) -> TokenBucket:
        return TokenBucket(self.limit.rate, self.limit.max, clock=self._clock)

    def __len__(self) -> int:
        return len(self._clients)

    def _client(self, address: str, create: bool) -> _Client | None:
        """The entry of ``address`` (a new one when ``create``), or the shared overflow entry when full."""
        key = address_key(address)
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        while len(self._clients) >= self.max_clients:
            oldest = next(iter(self._clients.values()))
            if oldest.bucket.retry_after(oldest.bucket.burst):  # least recently used, still in use: no room
                return self._overflow
            self._clients.popitem(last=False)
        if not create:
            return None
        client = self._clients[key] = _Client(self._bucket())
        return client

    def retry_after(self, address: str) -> int:
        """Seconds until ``address`` may make one more request (0: now), spending nothing."""
        client = self._client(address, create=False)
        if client is None:
            return 0
        return client.bucket.retry_after()

    def take(self, address: str) -> int:
        """Spend one token of ``address``: 0 when it had one, else the seconds until it has."""
        client = self._client(address, create=True)
        assert client is not None
        return 0 if client.bucket.take() else client.bucket.retry_after()

    def first_refusal(self, address: str) -> bool:
        """True for the first refusal of ``address`` in a window (log and publish once, not per request)."""
        client = self._client(address, create=False)
        if client is None:
            return False
        now = self._clock()
        if client.reported_at is not None and now - client.reported_at < self.limit.window:
            return False
        client.reported_at = now
        return True


class Throttles:
    """Every per-client limit of one server, by name (``enabled`` False: RATE_LIMIT_ENABLED=false)."""

    def __init__(self, limits: list[RateLimit], clock: Clock = time.monotonic, enabled: bool = True,
                 always_on: frozenset[str] = frozenset({CREDENTIALS}),
                 max_clients: int = MAX_CLIENTS) -> None:
        self.enabled = enabled
        self.always_on = always_on
        self.by_name = {limit.name: ClientThrottle(limit, clock, max_clients) for limit in limits}

    @classmethod
    def from_config(cls, config: Settings, clock: Clock = time.monotonic) -> Throttles:
        """The limits of the ``RATE_LIMIT_*`` settings."""
        c = config
        limits = [
            RateLimit(CREDENTIALS, c.rate_limit_login_max, c.rate_limit_login_window),
            RateLimit(API, c.rate_limit_max, c.rate_limit_window),
            RateLimit(SIGN, c.rate_limit_max, c.rate_limit_window),
            RateLimit(RECOVERY, c.rate_limit_recovery_max, c.rate_limit_recovery_window),
            RateLimit(ENV_WRITE, c.rate_limit_env_write_max, c.rate_limit_env_write_window),
            RateLimit(WS_UPGRADE, c.rate_limit_ws_upgrade_max, c.rate_limit_ws_upgrade_window),
        ]
        return cls(limits, clock, enabled=config.rate_limit_enabled)

    def get(self, name: str) -> ClientThrottle | None:
        """The limit called ``name``, or None when it is off."""
        if not self.enabled and name not in self.always_on:
            return None
        return self.by_name.get(name)
