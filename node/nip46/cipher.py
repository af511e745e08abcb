"""NIP-44 / NIP-04 with a counterparty through threshold ECDH, caching only secrets a MAC has proven.

A threshold ECDH result cannot be checked share by share (bifrost v1 keyshares carry no proof), so one wrong
keyshare from one co-signer yields a wrong shared secret. Caching that secret would make every later message
with that counterparty unreadable. The rule here: a shared x is cached only after a NIP-44 MAC verified with
it; a MAC failure evicts it; an unproven secret is used for the request at hand and dropped. Concurrent
requests for the same counterparty share one ECDH round (a client opening a DM inbox sends a burst), and once
one NIP-44 message has verified, the rest of the conversation costs no round at all.

Nothing here talks to the node: ``derive(pubkey)`` must return a *fresh* threshold ECDH x coordinate (never
a cached one). This module is meant to live under ``node/`` as the node-level cipher the REST routes use too.
"""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from node.nostr import nip04, nip44

Derive = Callable[[str], Awaitable[bytes]]
NIP44, NIP04 = "nip44", "nip04"


def is_mac_failure(exc: ValueError) -> bool:
    """True when a NIP-44 decryption failed on its MAC (wrong key or tampered payload), not on its shape."""
    return "MAC" in str(exc)


class ProvenCipher:
    """Encrypt and decrypt with counterparties; shared secrets cached per counterparty once proven."""

    def __init__(self, derive: Derive, *, cache_size: int = 256) -> None:
        self._derive = derive
        self._cache_size = cache_size
        self._proven: OrderedDict[str, bytes] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        self.rounds = 0  # ECDH rounds started (for tests and the bench)

    def proven(self, peer: str) -> bool:
        """True when a proven secret for ``peer`` is cached."""
        return peer in self._proven

    def forget(self) -> None:
        """Drop every cached secret (the group key changed)."""
        self._proven.clear()

    def _cached(self, peer: str) -> bytes | None:
        secret = self._proven.get(peer)
        if secret is not None:
            self._proven.move_to_end(peer)
        return secret

    def _prove(self, peer: str, secret: bytes) -> None:
        self._proven[peer] = secret
        self._proven.move_to_end(peer)
        while len(self._proven) > self._cache_size:
            self._proven.popitem(last=False)

    async def _fresh(self, peer: str) -> bytes:
        """A fresh ECDH result; requests that arrive while one is in flight share it."""
        future = self._inflight.get(peer)
        if future is None:
            self.rounds += 1
            future = asyncio.ensure_future(self._derive(peer))
            self._inflight[peer] = future
            future.add_done_callback(functools.partial(self._round_done, peer))
        secret = await asyncio.shield(future)
        if len(secret) != 32:
            raise ValueError("ECDH returned a shared secret of the wrong size")
        return secret

    def _round_done(self, peer: str, future: asyncio.Future[bytes]) -> None:
        if self._inflight.get(peer) is future:
            del self._inflight[peer]
        if not future.cancelled():
            future.exception()  # retrieved here: every waiter may have gone

    async def encrypt(self, scheme: str, peer: str, plaintext: str) -> str:
        """Encrypt ``plaintext`` for ``peer`` (x-only hex)."""
        secret = self._cached(peer) or await self._fresh(peer)
        if scheme == NIP44:
            return nip44.encrypt_gen(nip44.conversation_key_from_shared_x(secret), plaintext)
        return nip04.encrypt_gen(secret, plaintext)

    async def decrypt(self, scheme: str, peer: str, payload: str) -> str:
        """Decrypt ``payload`` from ``peer``; ``ValueError`` when it does not decrypt."""
        if scheme == NIP04:
            # NIP-04 has no MAC: it never proves a secret, it only uses one.
            return nip04.decrypt(self._cached(peer) or await self._fresh(peer), payload)
        cached = self._cached(peer)
        if cached is not None:
            try:
                return nip44.decrypt(nip44.conversation_key_from_shared_x(cached), payload)
            except ValueError as exc:
                if not is_mac_failure(exc):
                    raise
                self._proven.pop(peer, None)
        secret = await self._fresh(peer)
        if cached is not None and secret == cached:
            # A fresh round agrees with the proven secret: the secret is right, the payload is not.
            self._prove(peer, secret)
            raise ValueError("nip44 payload has an invalid MAC (not encrypted for this key, or altered)")
        try:
            plaintext = nip44.decrypt(nip44.conversation_key_from_shared_x(secret), payload)
        except ValueError as exc:
            if is_mac_failure(exc):
                raise ValueError(
                    "nip44 payload has an invalid MAC (not encrypted for this key, altered, or a co-signer's "
                    "ECDH share was wrong)"
                ) from None
            raise
        self._prove(peer, secret)
        return plaintext
