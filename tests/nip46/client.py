"""A small NIP-46 client in Python for the bunker's tests: sends kind-24133 requests, collects responses.

It speaks the wire format directly (NIP-44 encrypted JSON, p-tagged), so tests can also send what no real
client would: malformed JSON, NIP-04 content, replays, wrong keys.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

from node.crypto import curve
from node.nostr import nip04, nip44
from node.nostr.event import Event, sign_event_gen
from node.transport.pool import RelayPool

KIND = 24133


class Nip46Client:
    """One client key talking to one bunker pubkey over ``relays``."""

    def __init__(self, relays: list[str], bunker_pubkey: str, seckey: bytes | None = None) -> None:
        self.relays = relays
        self.bunker = bunker_pubkey
        self.seckey = seckey or secrets.token_bytes(32)
        self.pubkey = curve.pubkey_of(self.seckey)[1:].hex()
        self.responses: list[dict[str, Any]] = []
        self.events: list[Event] = []
        self._eose = asyncio.Event()
        self._arrived = asyncio.Event()
        self.pool = RelayPool(relays, on_event=self._on_event, on_eose=lambda *_: self._eose.set())

    async def start(self) -> Nip46Client:
        """Connect and subscribe to answers (any author, so strangers' answers are seen too)."""
        since = int(time.time()) - 60
        self.pool.subscribe("client", [{"kinds": [KIND], "#p": [self.pubkey], "since": since}])
        self.pool.start()
        await asyncio.wait_for(self._eose.wait(), 5)
        return self

    async def close(self) -> None:
        """Close the relay connections."""
        await self.pool.close()

    def _on_event(self, event: Event, _url: str) -> None:
        self.events.append(event)
        content = event.content
        try:
            if "?iv=" in content:
                text = nip04.decrypt(curve.ecdh_x(self.seckey, bytes.fromhex(event.pubkey)), content)
            else:
                key = nip44.conversation_key(self.seckey, bytes.fromhex(event.pubkey))
                text = nip44.decrypt(key, content)
            body = json.loads(text)
        except ValueError:
            return
        if isinstance(body, dict):
            body["_author"] = event.pubkey
            self.responses.append(body)
            self._arrived.set()

    def seal(self, payload: str, *, scheme: str = "nip44", created_at: int | None = None,
             to: str | None = None) -> Event:
        """A signed kind-24133 event with ``payload`` encrypted to the bunker."""
        target = to or self.bunker
        if scheme == "nip04":
            content = nip04.encrypt_gen(curve.ecdh_x(self.seckey, bytes.fromhex(target)), payload)
        elif scheme == "raw":
            content = payload
        else:
            content = nip44.encrypt_gen(nip44.conversation_key(self.seckey, bytes.fromhex(target)), payload)
        stamp = int(time.time()) if created_at is None else created_at
        return sign_event_gen(self.seckey, KIND, [["p", target]], content, stamp)

    async def send(self, method: str, params: list[str] | None = None, *, request_id: str | None = None,
                   **seal_args: Any) -> str:
        """Publish one request; its id."""
        rid = request_id or secrets.token_hex(8)
        body = json.dumps({"id": rid, "method": method, "params": params or []})
        await self.publish(self.seal(body, **seal_args))
        return rid

    async def publish(self, event: Event) -> None:
        """Publish an event as is (a relay must accept it)."""
        accepted = await self.pool.publish(event, timeout=5)
        assert accepted, "no relay accepted the request"

    async def wait(self, request_id: str, timeout: float = 5.0, *, count: int = 1) -> list[dict[str, Any]]:
        """The first ``count`` responses with this id (TimeoutError when they do not come)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = [r for r in self.responses if r.get("id") == request_id]
            if len(found) >= count:
                return found[:count]
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no response to {request_id} within {timeout}s")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue

    async def call(self, method: str, params: list[str] | None = None, timeout: float = 5.0,
                   **kwargs: Any) -> dict[str, Any]:
        """Send and wait for the answer."""
        rid = await self.send(method, params, **kwargs)
        return (await self.wait(rid, timeout))[0]

    def answers_to(self, request_id: str) -> list[dict[str, Any]]:
        """Every response received with this id so far."""
        return [r for r in self.responses if r.get("id") == request_id]
