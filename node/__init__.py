"""The signing node: the only surface ``server.py`` and ``handlers/`` import."""

from node import keytools, nip46, validate
from node.errors import NodeError, NodeTimeout, NodeUnavailable, PeerResponseError, RelayUnavailable
from node.events import NodeEvent, safe_data
from node.manager import NodeManager, validate_credentials
from node.nostr import nip04, nip44
from node.nostr.event import Event, compute_event_id, verify_event
from node.nostr.filters import Filter
from node.nostr.messages import (
    ClientClose,
    ClientEvent,
    ClientReq,
    InvalidEventMessage,
    InvalidSubscription,
    build_closed,
    build_eose,
    build_notice,
    build_ok,
    event_json,
    parse_client_message,
    sub_id_prefix,
)
from node.policy import StoredPolicy
from node.ratelimit import Clock, TokenBucket
from node.service import NodeOptions, NodeService

__all__ = [
    "ClientClose",
    "ClientEvent",
    "ClientReq",
    "Clock",
    "Event",
    "Filter",
    "InvalidEventMessage",
    "InvalidSubscription",
    "NodeError",
    "NodeEvent",
    "NodeManager",
    "NodeOptions",
    "NodeService",
    "NodeTimeout",
    "NodeUnavailable",
    "PeerResponseError",
    "RelayUnavailable",
    "StoredPolicy",
    "TokenBucket",
    "build_closed",
    "build_eose",
    "build_notice",
    "build_ok",
    "compute_event_id",
    "event_json",
    "keytools",
    "nip04",
    "nip44",
    "nip46",
    "parse_client_message",
    "safe_data",
    "sub_id_prefix",
    "validate",
    "validate_credentials",
    "verify_event",
]
