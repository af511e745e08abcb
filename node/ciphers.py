"""NIP-44 v2 and NIP-04 between the group key and a counterparty, through threshold ECDH.

The node computes the shared point with its co-signers; NIP-44 keys on ``HKDF-Extract("nip44-v2", shared_x)``,
NIP-04 on the raw shared x, so standard clients read what the group writes. The REST routes and the NIP-46
bunker both go through :class:`ProvenCipher` (``NodeService.cipher``), so they share one rule for secrets:

bifrost v1 key shares carry no proof, so one wrong key share from one co-signer makes the combined secret
wrong, and nothing in the round shows it. A secret is therefore cached only once a NIP-44 MAC has verified
with it; a MAC failure evicts it; a failure with a fresh secret is retried once with another set of
co-signers when one is online, and when that set's secret verifies, the co-signer whose share was wrong is
named when it can be told (:func:`node.crypto.ecdh.wrong_keyshares`). NIP-04 has no MAC: it uses a proven
secret when there is one and never proves one itself. Requests for one counterparty that arrive together
share one round.

Errors are ``ValueError`` whose message starts with the parameter it is about (``scheme: ...``,
``content: ...``), ready for a 400 or a NIP-46 error reply; co-signers that contradict each other raise
``PeerResponseError``.
"""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from node.crypto.ecdh import EcdhPackage, wrong_keyshares
from node.errors import PeerResponseError
from node.nostr import nip04, nip44

NIP44, NIP04 = "nip44", "nip04"
SCHEMES = (NIP44, NIP04)


def check_input(scheme: object, content: object, *, encrypting: bool) -> str:
    """``content`` once the checks that need no key pass, so bad input fails before any ECDH round."""
    if scheme not in SCHEMES:
        raise ValueError("scheme: expected nip44 or nip04")
    # NIP-44 cannot encrypt an empty message; NIP-04 can, and either may be asked to decrypt anything.
    if not isinstance(content, str) or (encrypting and scheme == NIP44 and not content):
        raise ValueError("content: must be a non-empty string")
    if not encrypting:
        try:
            nip44.parse_payload(content) if scheme == NIP44 else nip04.parse_payload(content)
        except ValueError as exc:
            raise ValueError(f"content: {exc}") from None
    return content


def is_mac_failure(exc: ValueError) -> bool:
    """True when a NIP-44 decryption failed on its MAC (wrong key or altered payload), not on its shape."""
    return "MAC" in str(exc)


@dataclass(frozen=True)
class SharedSecret:
    """One threshold ECDH result with a counterparty, and who contributed to it."""

    point: bytes  # the 33-byte shared point; its x is the shared secret
    cosigners: tuple[str, ...] = ()  # the co-signers asked (x-only pubkeys)
    keyshares: tuple[tuple[str, EcdhPackage], ...] = ()  # (member pubkey, package), ours included

    @property
    def shared_x(self) -> bytes:
        """The x coordinate: what NIP-04 uses raw and NIP-44 feeds to HKDF."""
        return self.point[1:]


Derive = Callable[[str, frozenset[str], float], Awaitable[SharedSecret]]
"""``(counterparty, co-signers to avoid, timeout)`` → a fresh ECDH result (never a cached one)."""
Retry = Callable[[SharedSecret], frozenset[str] | None]
"""The co-signers to avoid in a second round after ``first`` failed; ``None`` when no other set is online."""
Emit = Callable[[str, str, Any], None]


def _bad_payload(scheme: str) -> ValueError:
    if scheme == NIP44:
        return ValueError("content: nip44 payload has an invalid MAC (not encrypted for this key, or "
                          "altered)")
    return ValueError("content: nip04 payload does not decrypt (not encrypted for this key, or corrupted)")


class ProvenCipher:
    """Encrypt and decrypt with counterparties; a shared secret is cached once a MAC has proven it."""

    def __init__(self, derive: Derive, *, retry: Retry | None = None, emit: Emit | None = None,
                 timeout: float = 5.0, cache_size: int = 256) -> None:
        self._derive = derive
        self._retry = retry
        self._emit = emit
        self._timeout = timeout
        self._cache_size = cache_size
        self._proven: OrderedDict[str, SharedSecret] = OrderedDict()
        self._inflight: dict[tuple[str, frozenset[str]], asyncio.Future[SharedSecret]] = {}
        self.rounds = 0  # ECDH rounds started (for tests and the bench)
        self.wrong_cosigners: set[str] = set()  # co-signers certainly caught sending a wrong key share

    def proven(self, peer: str) -> bool:
        """True when a proven secret for ``peer`` is cached."""
        return peer in self._proven

    def forget(self) -> None:
        """Drop every cached secret."""
        self._proven.clear()

    # ------------------------------------------------------------------------------------- the rule
    def _cached(self, peer: str) -> SharedSecret | None:
        secret = self._proven.get(peer)
        if secret is not None:
            self._proven.move_to_end(peer)
        return secret

    def _prove(self, peer: str, secret: SharedSecret) -> None:
        self._proven[peer] = secret
        self._proven.move_to_end(peer)
        while len(self._proven) > self._cache_size:
            self._proven.popitem(last=False)

    async def _round(self, peer: str, avoid: frozenset[str], timeout: float) -> SharedSecret:
        """A fresh ECDH result; requests that arrive while the same round is in flight share it."""
        key = (peer, avoid)
        future = self._inflight.get(key)
        if future is None:
            self.rounds += 1
            future = asyncio.ensure_future(self._derive(peer, avoid, timeout))
            self._inflight[key] = future
            future.add_done_callback(functools.partial(self._round_done, key))
        secret = await asyncio.shield(future)
        if len(secret.point) != 33:
            raise ValueError("ECDH returned a shared point of the wrong size")
        return secret

    def _round_done(self, key: tuple[str, frozenset[str]], future: asyncio.Future[SharedSecret]) -> None:
        if self._inflight.get(key) is future:
            del self._inflight[key]
        if not future.cancelled():
            future.exception()  # retrieved here: every waiter may have gone

    def _open(self, scheme: str, peer: str, secret: SharedSecret, payload: str) -> str | None:
        """The plaintext, or ``None`` when this secret does not open the payload (it may be the wrong one).

        A NIP-44 payload whose MAC verifies proves the secret, even if what it carries is then malformed.
        """
        if scheme == NIP04:
            try:
                return nip04.decrypt(secret.shared_x, payload)
            except ValueError:
                return None
        try:
            plaintext = nip44.decrypt(nip44.conversation_key_from_shared_x(secret.shared_x), payload)
        except ValueError as exc:
            if is_mac_failure(exc):
                return None
            self._prove(peer, secret)
            raise ValueError(f"content: {exc}") from None
        self._prove(peer, secret)
        return plaintext

    def _blame(self, peer: str, wrong: SharedSecret, right: SharedSecret) -> list[str]:
        """Name the co-signers whose share made ``wrong`` differ from the proven ``right`` (in an event)."""
        if not wrong.keyshares or not right.keyshares:
            return []
        holders = {pkg.idx: member for member, pkg in wrong.keyshares}
        idxs, certain = wrong_keyshares([pkg for _, pkg in wrong.keyshares],
                                        [pkg for _, pkg in right.keyshares])
        names = [holders[idx] for idx in idxs]
        if certain:
            self.wrong_cosigners.update(names)
        if names and self._emit is not None:
            message = ("ECDH key share from a co-signer was wrong" if certain
                       else "ECDH key share from one of these co-signers was wrong")
            self._emit("warn", message, {"peers": names, "certain": certain, "counterparty": peer,
                                         "provenBy": list(right.cosigners)})
        return names

    # ------------------------------------------------------------------------------------------ API
    async def encrypt(self, scheme: str, peer: str, plaintext: str) -> str:
        """Encrypt ``plaintext`` for ``peer`` (x-only hex) with the proven secret, else a fresh one.

        A fresh secret cannot be checked here (only the counterparty can open the result); it is used for
        this message and not cached.
        """
        secret = self._cached(peer) or await self._round(peer, frozenset(), self._timeout)
        try:
            if scheme == NIP44:
                return nip44.encrypt_gen(nip44.conversation_key_from_shared_x(secret.shared_x), plaintext)
            return nip04.encrypt_gen(secret.shared_x, plaintext)
        except ValueError as exc:
            raise ValueError(f"content: {exc}") from None

    async def decrypt(self, scheme: str, peer: str, payload: str) -> str:
        """Decrypt ``payload`` from ``peer``; ``ValueError`` when it does not decrypt.

        ``PeerResponseError`` when two co-signer sets give different secrets and neither opens the payload:
        a co-signer's share was wrong (the message names the suspects).
        """
        check_input(scheme, payload, encrypting=False)  # a malformed payload costs no round
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        proven = self._cached(peer)
        if proven is not None:
            plaintext = self._open(scheme, peer, proven, payload)
            if plaintext is not None:
                return plaintext
            if scheme == NIP04:  # the secret is MAC-proven: the payload is what is wrong
                raise _bad_payload(scheme)
            self._proven.pop(peer, None)
        first = await self._round(peer, frozenset(), self._timeout)
        if proven is not None and first.shared_x == proven.shared_x:
            self._prove(peer, proven)  # a fresh round agrees with the proven secret: the payload is wrong
            raise _bad_payload(scheme)
        plaintext = self._open(scheme, peer, first, payload)
        if plaintext is not None:
            return plaintext
        if proven is not None:
            # Two secrets disagree and the proven one failed only this payload: the fresh set was wrong.
            self._prove(peer, proven)
            self._blame(peer, first, proven)
            raise _bad_payload(scheme)
        avoid = self._retry(first) if self._retry is not None else None
        remaining = deadline - loop.time()
        if avoid is None or remaining <= 0:
            detail = "invalid MAC" if scheme == NIP44 else "does not decrypt (bad padding)"
            raise ValueError(f"content: {scheme} payload {detail}: not encrypted for this key, altered, or a "
                             "co-signer's ECDH share was wrong (no other set of co-signers online to tell)")
        second = await self._round(peer, avoid, remaining)
        plaintext = self._open(scheme, peer, second, payload)
        if plaintext is not None:
            if scheme == NIP44:  # the MAC proved the second secret: the first set had a wrong share
                self._blame(peer, first, second)
            return plaintext
        if second.shared_x == first.shared_x:
            raise _bad_payload(scheme)  # two co-signer sets agree: the payload is what is wrong
        suspects = sorted({*first.cosigners, *second.cosigners})
        raise PeerResponseError(
            f"co-signers disagree on the ECDH secret with {peer}: one of {', '.join(suspects)} sent a wrong "
            "key share, and neither secret opens the payload"
        )
