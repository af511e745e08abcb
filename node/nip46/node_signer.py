"""The one adapter between the bunker and today's node: NodeManager, NodeService, its sign queue, ECDH.

When the node's own API grows a sign-event-id call and a node-level cipher (with the proven-secret rule of
:mod:`node.nip46.cipher`), only this module changes.
"""

from __future__ import annotations

from typing import Any

from node.crypto import curve
from node.errors import NodeUnavailable, PeerResponseError
from node.nip46.cipher import ProvenCipher
from node.service import NodeService


class NodeSigner:
    """``GroupSigner`` over a ``NodeManager`` (whose service is replaced when credentials change)."""

    def __init__(self, manager: Any, *, cache_size: int = 256) -> None:
        self._manager = manager
        self._cache_size = cache_size
        self._cipher_for: NodeService | None = None
        self._cipher: ProvenCipher | None = None

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
        """The proven-secret cipher of the running node (a new node starts with an empty cache)."""
        service = self._service()
        if self._cipher is None or self._cipher_for is not service:
            self._cipher = ProvenCipher(self._derive_for(service), cache_size=self._cache_size)
            self._cipher_for = service
        return self._cipher

    @staticmethod
    def _derive_for(service: NodeService) -> Any:
        async def derive(peer: str) -> bytes:
            # NodeService.ecdh keeps every combined secret, proven or not; the bunker must never read an
            # unproven one, so it is dropped from that cache before and after the round.
            cache = getattr(service, "_ecdh_cache", {})
            cache.pop(peer, None)
            try:
                point = await service.ecdh(peer, service.options.sign_timeout)
            finally:
                cache.pop(peer, None)
            return curve.xonly(point)

        return derive

    async def encrypt(self, scheme: str, peer: str, plaintext: str) -> str:
        """Threshold-ECDH encryption."""
        return await self.cipher().encrypt(scheme, peer, plaintext)

    async def decrypt(self, scheme: str, peer: str, payload: str) -> str:
        """Threshold-ECDH decryption."""
        return await self.cipher().decrypt(scheme, peer, payload)
