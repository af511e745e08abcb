"""NodeManager: which node runs, on which credentials — boot, credential changes, the demo.

The server holds one manager for its whole life (handlers reach it as ``self.node``); the
NodeService behind it is replaced whenever the credentials change.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from node.crypto.credentials import (
    GroupPackage,
    SharePackage,
    check_share_in_group,
    decode_group,
    decode_share,
    encode_group,
    encode_share,
)
from node.crypto.keygen import generate_dealer_pkg_gen
from node.events import Emit, safe_data
from node.nostr.nip19 import npub_encode
from node.policy import BudgetLedger, ConfiguredPolicy, PolicyStore
from node.service import NodeOptions, NodeService, PoolFactory


class CredentialStoreLike(Protocol):
    """What the manager needs from ``store.credentials.CredentialStore``."""

    def exists(self) -> bool: ...
    def load(self) -> Any: ...
    def save(self, group_cred: str, share_cred: str, relays: tuple[str, ...] | list[str]) -> None: ...
    def clear(self) -> None: ...
    def relays(self) -> tuple[str, ...]: ...


def validate_credentials(group_cred: object, share_cred: object) -> tuple[GroupPackage, SharePackage]:
    """Decode both credentials and check the share belongs to the group.

    ``ValueError`` messages start with the field name (GROUP_CRED / SHARE_CRED) and never echo input.
    """
    if not isinstance(group_cred, str) or not group_cred.strip():
        raise ValueError("GROUP_CRED: required (a bfgroup1… string)")
    if not isinstance(share_cred, str) or not share_cred.strip():
        raise ValueError("SHARE_CRED: required (a bfshare1… string)")
    try:
        group = decode_group(group_cred.strip())
    except ValueError as exc:
        raise ValueError(f"GROUP_CRED: {exc}") from None
    try:
        share = decode_share(share_cred.strip())
    except ValueError:
        raise ValueError("SHARE_CRED: not a valid share credential") from None
    try:
        check_share_in_group(group, share)
    except ValueError:
        raise ValueError("SHARE_CRED: this share does not belong to the group") from None
    return group, share


def default_pool_factory() -> PoolFactory:
    """The real relay pool (imported late so tests can run without it)."""
    from node.transport.pool import RelayPool

    return RelayPool


class NodeManager:
    """Owns the running NodeService (or none) and the optional demo peers."""

    def __init__(
        self,
        *,
        emit: Emit,
        options: NodeOptions,
        default_relays: list[str],
        env_group: str | None = None,
        env_share: str | None = None,
        credential_store: CredentialStoreLike | None = None,
        policy_store: PolicyStore | None = None,
        budget_ledger: BudgetLedger | None = None,
        pool_factory: PoolFactory | Callable[[], PoolFactory] | None = None,
        demo_enabled: bool = True,
        peer_policies: Sequence[ConfiguredPolicy] = (),
    ) -> None:
        self._emit = emit
        self.options = options
        self.default_relays = list(default_relays)
        self._env = (env_group, env_share)
        self._store = credential_store
        self._policy_store = policy_store
        self._budget_ledger = budget_ledger
        self._pool_factory = pool_factory
        self.demo_enabled = demo_enabled
        self._peer_policies = tuple(peer_policies)  # PEER_POLICIES, applied to every non-demo node
        self.service: NodeService | None = None
        self.source: str | None = None  # "env" | "stored" | "demo"
        self._demo_peers: list[NodeService] = []
        self._lock = asyncio.Lock()
        self._echo_task: asyncio.Future[None] | None = None

    def _factory(self) -> PoolFactory:
        if self._pool_factory is None:
            self._pool_factory = default_pool_factory()
        return self._pool_factory  # type: ignore[return-value]

    @property
    def demo(self) -> bool:
        """True while the demo group runs."""
        return self.source == "demo"

    def has_credentials(self) -> bool:
        """Credentials exist in the environment or the store (the demo's do not count)."""
        if all(self._env):
            return True
        return bool(self._store is not None and self._store.exists())

    def current_credentials(self) -> tuple[str, str] | None:
        """``(group, share)`` the node starts from: the environment's, else the stored ones, else None.

        For partial updates (a new share for the same group); the caller must never return them.
        """
        group_cred, share_cred = self._env
        if group_cred and share_cred:
            return group_cred, share_cred
        stored = self._store.load() if self._store is not None and self._store.exists() else None
        return (stored.group_cred, stored.share_cred) if stored is not None else None

    def relays(self) -> list[str]:
        """The relays the node uses (stored list, else the defaults)."""
        if self.service is not None:
            return self.service.relays
        stored = list(self._store.relays()) if self._store is not None else []
        return stored or self.default_relays

    def emit(self, type_: str, message: str, data: Any = None) -> None:
        """Emit through the server's publisher (never raises)."""
        with contextlib.suppress(Exception):
            self._emit(type_, message, safe_data(data))

    async def boot(self) -> None:
        """Start the node from GROUP_CRED/SHARE_CRED, else from stored credentials, else stay idle."""
        group_cred, share_cred = self._env
        try:
            if group_cred and share_cred:
                group, share = validate_credentials(group_cred, share_cred)
                await self._run(group, share, self.default_relays, "env")
                return
            if self._store is not None and self._store.exists():
                stored = self._store.load()
                group, share = validate_credentials(stored.group_cred, stored.share_cred)
                await self._run(group, share, list(stored.relays) or self.default_relays, "stored")
                return
        except Exception as exc:  # noqa: BLE001 - a bad credential must not stop the server
            self.emit("error", "Node could not start", exc)
            return
        self.emit("info", "No credentials yet: configure the signer or start the demo")

    async def apply_credentials(
        self, group_cred: str, share_cred: str, relays: list[str] | None = None
    ) -> NodeService:
        """Validate, store encrypted, restart the node on them, then send a self-echo."""
        group, share = validate_credentials(group_cred, share_cred)
        relay_list = relays or self.default_relays
        if self._store is not None:
            self._store.save(encode_group(group), encode_share(share), relays or [])
        self.emit("info", "Recreating node with new credentials", {"relays": relay_list})
        service = await self._run(group, share, relay_list, "stored")
        self._echo_task = asyncio.ensure_future(self._self_echo(service))
        return service

    async def clear_credentials(self) -> bool:
        """Stop a node running on stored credentials and forget them; True when some were stored.

        ``ValueError`` when the credentials come from the environment (they can only be removed there).
        """
        if all(self._env):
            raise ValueError("GROUP_CRED, SHARE_CRED: set in the server's environment; remove them there "
                             "and restart Igloo")
        async with self._lock:
            existed = self._store is not None and self._store.exists()
            if self.source == "stored":
                await self._stop_locked()
            if self._store is not None:
                self._store.clear()
        if existed:
            self.emit("info", "Stored credentials cleared: the signer stopped")
        return existed

    async def update_relays(self, relays: list[str]) -> NodeService:
        """Restart the node on new relays with the stored credentials."""
        stored = self._store.load() if self._store is not None else None
        if stored is None or self.source != "stored":
            raise ValueError(
                "RELAYS: only credentials saved here can change relays (set RELAYS in the environment)"
            )
        return await self.apply_credentials(stored.group_cred, stored.share_cred, relays)

    async def _self_echo(self, service: NodeService) -> None:
        with contextlib.suppress(Exception):
            await service.wait_ready(self.options.sign_timeout)
            await service.echo("echo")

    async def _run(
        self, group: GroupPackage, share: SharePackage, relays: list[str], source: str
    ) -> NodeService:
        async with self._lock:
            await self._stop_locked()
            service = NodeService(
                group,
                share,
                relays,
                emit=self._emit,
                pool_factory=self._factory(),
                options=self.options,
                policy_store=None if source == "demo" else self._policy_store,
                budget_ledger=None if source == "demo" else self._budget_ledger,
            )
            if source != "demo" and self._peer_policies:
                self._apply_peer_policies(service)
            await service.start()
            self.service, self.source = service, source
            return service

    def _apply_peer_policies(self, service: NodeService) -> None:
        unknown = service.policies.apply_configured(self._peer_policies)
        applied = len(self._peer_policies) - len(unknown)
        self.emit("info", f"Applied {applied} peer policies from PEER_POLICIES", {"count": applied})
        if unknown:
            # A typo here would leave a peer the operator meant to block unblocked: say so loudly.
            self.emit("warn", "PEER_POLICIES names keys that are not peers of this group: no effect for them",
                      {"pubkeys": unknown})

    async def start_demo(self, relay_url: str) -> NodeService:
        """A fresh 2-of-3 group: this node on share 1, two in-process peers on shares 2 and 3."""
        if not self.demo_enabled:
            raise ValueError("the demo is disabled (IGLOO_DEMO=false)")
        if self.has_credentials():
            raise ValueError("the demo only runs while no credentials are configured")
        group, shares = generate_dealer_pkg_gen(2, 3)
        service = await self._run(group, shares[0], [relay_url], "demo")
        demo_opts = replace(self.options, approval_mode=False, label="demo")
        for number, share in enumerate(shares[1:], start=2):
            peer = NodeService(
                group,
                share,
                [relay_url],
                emit=self._demo_emitter(number),
                pool_factory=self._factory(),
                options=demo_opts,
            )
            await peer.start()
            self._demo_peers.append(peer)
        self.emit(
            "info",
            "Demo started: a 2-of-3 group with two in-process peers (not your key)",
            {"groupPubkey": service.group_pubkey, "relay": relay_url},
        )
        return service

    def _demo_emitter(self, number: int) -> Emit:
        def emit(type_: str, message: str, data: Any = None) -> None:
            if type_.startswith("peer-"):
                return  # the dashboard's peer panel shows this node's view only
            self._emit(type_, f"[Demo peer {number}] {message}", data)

        return emit

    async def stop(self) -> None:
        """Stop the node and any demo peers."""
        async with self._lock:
            await self._stop_locked()

    async def _stop_locked(self) -> None:
        for peer in self._demo_peers:
            await peer.stop()
        self._demo_peers.clear()
        if self.service is not None:
            await self.service.stop()
        self.service, self.source = None, None

    def status(self) -> dict[str, Any]:
        """Node part of /api/status: nodeActive, hasCredentials, relays [{url, state, ...}], ..."""
        status: dict[str, Any] = {
            "nodeActive": False,
            "hasCredentials": self.has_credentials(),
            "credentialsSource": self.source,
            "demo": self.demo,
            "demoAvailable": self.demo_enabled and not self.has_credentials() and not self.demo,
        }
        if self.service is None:
            status["relays"] = [{"url": url, "state": "idle", "connected": False} for url in self.relays()]
            return status
        status.update(self.service.status())
        status["groupNpub"] = npub_encode(bytes.fromhex(self.service.group_pubkey))
        status["hasCredentials"] = self.has_credentials() or self.demo
        status["relays"] = status["relays"] or [
            {"url": url, "state": "connecting", "connected": False} for url in self.service.relays
        ]
        return status
