"""How a node request fails. The node knows nothing of HTTP: ``handlers.base`` maps each kind to a status."""

from __future__ import annotations


class NodeError(Exception):
    """A request to the node failed; ``str(self)`` says why (never a secret)."""


class NodeUnavailable(NodeError):
    """The node cannot serve the request (not running, not enough peers)."""


class NodeTimeout(NodeError):
    """Peers did not answer within the request's deadline."""


class PeerResponseError(NodeError):
    """Peers answered, but wrongly."""


class RelayUnavailable(NodeError):
    """No relay accepted the request (every relay down or refusing): a bad gateway, not a missing node."""
