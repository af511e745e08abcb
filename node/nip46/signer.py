"""What the bunker needs from the threshold signer, as a Protocol (the node adapter implements it)."""

from __future__ import annotations

from typing import Protocol


class GroupSigner(Protocol):
    """The user key behind the bunker: the FROSTR group key, reached through the signing node."""

    def group_pubkey(self) -> str | None:
        """The x-only group key (hex), or None while no node runs."""
        ...

    def node_relays(self) -> list[str]:
        """The relays the node uses (the bunker's default relay list)."""
        ...

    async def sign_event_id(self, event_id: str) -> str:
        """A BIP-340 signature (hex) of the 32-byte hex ``event_id`` by the group key.

        Raises the node's errors (not running, not enough peers, timeout) with readable messages.
        """
        ...

    async def encrypt(self, scheme: str, peer: str, plaintext: str) -> str:
        """``scheme`` ("nip44" | "nip04") encryption to ``peer`` (x-only hex) through threshold ECDH."""
        ...

    async def decrypt(self, scheme: str, peer: str, payload: str) -> str:
        """``scheme`` decryption of ``payload`` from ``peer``; ``ValueError`` when it does not decrypt."""
        ...
