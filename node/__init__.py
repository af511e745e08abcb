"""The signing node: the only surface ``server.py`` and ``handlers/`` import."""

from node import keytools
from node.events import NodeEvent, safe_data
from node.manager import NodeManager, validate_credentials, validate_relays
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
from node.peers import normalize_pubkey
from node.ratelimit import TokenBucket
from node.service import (
    NodeError,
    NodeOptions,
    NodeService,
    NodeTimeout,
    NodeUnavailable,
    PeerResponseError,
    RelayUnavailable,
)
from node.sign_queue import queue_for

__all__ = [
    "ClientClose",
    "ClientEvent",
    "ClientReq",
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
    "normalize_pubkey",
    "parse_client_message",
    "queue_for",
    "safe_data",
    "sub_id_prefix",
    "validate_credentials",
    "validate_relays",
    "verify_event",
]
