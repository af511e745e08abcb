"""The signing node: the only surface ``server.py`` and ``handlers/`` import."""

from node.events import NodeEvent, safe_data
from node.manager import NodeManager, validate_credentials, validate_relays
from node.peers import normalize_pubkey
from node.service import (
    NodeError,
    NodeOptions,
    NodeService,
    NodeTimeout,
    NodeUnavailable,
    PeerResponseError,
    RelayUnavailable,
)

__all__ = [
    "NodeError",
    "NodeEvent",
    "NodeManager",
    "NodeOptions",
    "NodeService",
    "NodeTimeout",
    "NodeUnavailable",
    "PeerResponseError",
    "RelayUnavailable",
    "normalize_pubkey",
    "safe_data",
    "validate_credentials",
    "validate_relays",
]
