"""The one adapter between the bunker and the node: NodeManager, NodeService, its sign queue and its cipher.

NIP-44/NIP-04 go through ``NodeService.encrypt``/``decrypt``, the same path as the REST routes, so both share
the node's rule for ECDH secrets (:mod:`node.ciphers`: cached only once a MAC has proven them).
"""

from __future__ import annotations

from typing import Any

from node.ciphers import ProvenCipher
from node.crypto import curve
from node.errors import NodeUnavailable, PeerResponseError
from node.service import NodeService


class NodeSigner:
    """``GroupSigner`` over a ``NodeManager`` (whose service is replaced when credentials change)."""

    def __init__(self, manager: Any) -> None:
        self._manager = manager

    def _service(self) -> NodeService:
        service: NodeService | None = self._manager.service
        if service is None or not service.active:
            raise NodeUnavailable("the signing node is not running")
        return service

    def group_pubkey(self) -> str | None:
        """The running node's x-only group key."""
        service = self._manager.service
        return service.group_pubkey if service is not None and service.active else None

    def node_relays(self) -> list[str]:
        """The node's relays (its stored list, else the defaults)."""
        return list(self._manager.relays())

    async def sign_event_id(self, event_id: str) -> str:
        """Through the batching sign queue, bounded by the node's sign timeout; verified before returning."""
        service = self._service()
        entry = await service.sign_message(event_id)
        sig = entry[2]
        if not curve.schnorr_verify(bytes.fromhex(service.group_pubkey), bytes.fromhex(event_id),
                                    bytes.fromhex(sig)):
            raise PeerResponseError("the combined signature does not verify")
        return sig

    def cipher(self) -> ProvenCipher:
        """The running node's cipher (a new node starts with an empty cache)."""
        return self._service().cipher

    async def encrypt(self, scheme: str, peer: str, plaintext: str) -> str:
        """Threshold-ECDH encryption."""
        return await self._service().encrypt(scheme, peer, plaintext)

    async def decrypt(self, scheme: str, peer: str, payload: str) -> str:
        """Threshold-ECDH decryption."""
        return await self._service().decrypt(scheme, peer, payload)
