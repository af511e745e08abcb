"""Every bound of the embedded relay in one frozen record (server.py fills it from the settings)."""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB

LOCAL_ADDRESSES = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})
"""Where the node's own connection comes from: a direct (unproxied) connection from one of these is local."""


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """Bounds of the embedded relay (published in NIP-11 where NIP-11 has a name for them).

    Storage is bounded by count, by accounted bytes (``max_bytes``, see ``relay.store.stored_cost``) and by
    age; one client address and one author may hold at most their quota of those bytes. A connection's
    token bucket (per address for outsiders) pays for frames by size, for EVENT and REQ messages, and for the
    work a REQ does on stored events; a connection in debt is not read until the debt is paid.
    """

    # storage
    max_events: int = 10_000
    max_bytes: int = 64 * MIB
    max_age: float = 3600.0
    address_quota: int = 8 * MIB
    author_quota: int = 8 * MIB
    # one event
    max_message_length: int = 128 * KIB
    max_event_bytes: int = 100 * KIB
    max_event_tags: int = 2000
    max_tag_strings: int = 64
    max_content_length: int = 100 * KIB
    max_future_seconds: int = 900
    # queries and subscriptions
    max_subscriptions: int = 20
    max_filters: int = 10
    max_limit: int = 500
    max_filter_values: int = 2000
    max_query_work: int = 50_000
    query_work_per_token: int = 200
    query_slice_work: int = 2000
    # connections
    max_connections: int = 1000
    max_connections_per_address: int = 10
    local_reserved: int = 20
    local_addresses: frozenset[str] = LOCAL_ADDRESSES
    # rate and sending
    event_rate: float = 100.0
    event_burst: float = 200.0
    frame_bytes_per_token: int = 16 * KIB
    refused_frame_cost: float = 0.1
    max_send_buffer: int = 4 * MIB
    ping_interval: float = 30.0
    max_known_addresses: int = 4096
