"""NodeManager: which node runs, on which credentials and relays — boot, credential changes, the demo.

The server holds one manager for its whole life (handlers reach it as ``self.node``); the
NodeService behind it is replaced whenever the credentials change. A relay change does not
replace it: the running node moves to the new relays live (``set_relays``).

Where the relays come from, first match wins: the list set on the dashboard (``/api/relays``,
stored, until cleared), the relays saved with stored credentials, ``RELAYS`` from the
environment, the embedded relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol
from urllib.parse import urlsplit

from node.activity import ActivityLog, classify
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

log = logging.getLogger("igloo.node")

# Where the node's relays come from (``NodeManager.relay_choice``).
RELAYS_FROM_DASHBOARD = "dashboard"
RELAYS_FROM_CREDENTIALS = "credentials"
RELAYS_FROM_ENV = "environment"
RELAYS_EMBEDDED = "embedded"
RELAYS_DEMO = "demo"


class RelayListStoreLike(Protocol):
    """What the manager needs from ``store.relays.RelayListStore``."""

    def load(self) -> tuple[str, ...] | None: ...
    def save(self, relays: list[str] | tuple[str, ...]) -> None: ...
    def clear(self) -> bool: ...


class _MemoryRelayList:
    """A relay list kept in memory (when the server gives the manager no store)."""

    def __init__(self) -> None:
        self._relays: tuple[str, ...] | None = None

    def load(self) -> tuple[str, ...] | None:
        return self._relays

    def save(self, relays: list[str] | tuple[str, ...]) -> None:
        self._relays = tuple(relays)

    def clear(self) -> bool:
        had, self._relays = self._relays is not None, None
        return had


def is_loopback_url(url: str) -> bool:
    """True when the relay URL's host is a loopback name or address (only this machine reaches it)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        relay_store: RelayListStoreLike | None = None,
        relays_from_env: bool = False,
        exposed: bool = False,
        activity: ActivityLog | None = None,
    ) -> None:
        """``default_relays``: RELAYS (``relays_from_env``) or the embedded relay. ``exposed``: the server
        listens beyond loopback, so a node on loopback relays only is warned about. ``activity`` receives the
        running node's signing activity (``node.activity``)."""
        self._emit = emit
        self.options = options
        self.default_relays = list(default_relays)
        self._relays_from_env = relays_from_env
        self._relay_list: RelayListStoreLike = relay_store or _MemoryRelayList()
        self.exposed = exposed
        self._activity = activity
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
        self._demo_relays: list[str] = []

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
        """The relays the node uses (or would use when it starts)."""
        if self.service is not None:
            return list(self.service.relays)
        return self.relay_choice()[0]

    def _credentials_source(self) -> str | None:
        if self.source is not None:
            return self.source
        if all(self._env):
            return "env"
        return "stored" if self._store is not None and self._store.exists() else None

    def relay_choice(self, *, ignore_dashboard: bool = False) -> tuple[list[str], str]:
        """The relays a node on the current credentials uses and where they come from (``RELAYS_FROM_*``).

        ``ignore_dashboard``: what the node would use once the dashboard's list is cleared.
        """
        if self.demo and self.service is not None:
            return list(self.service.relays), RELAYS_DEMO
        chosen = None if ignore_dashboard else self._relay_list.load()
        if chosen:
            return list(chosen), RELAYS_FROM_DASHBOARD
        if self._credentials_source() == "stored" and self._store is not None:
            stored = list(self._store.relays())
            if stored:
                return stored, RELAYS_FROM_CREDENTIALS
        return list(self.default_relays), RELAYS_FROM_ENV if self._relays_from_env else RELAYS_EMBEDDED

    def relay_warning(self, relays: Sequence[str] | None = None) -> str | None:
        """Why remote peers cannot reach this node (exposed server, loopback relays only), with the fix."""
        urls = list(self.relays() if relays is None else relays)
        if not self.exposed or not urls or not all(is_loopback_url(url) for url in urls):
            return None
        if self.demo:
            return None  # the demo's peers run in this process
        return (f"This server is reachable from the network, but its signer only uses relays on this machine "
                f"({', '.join(urls)}): peers elsewhere cannot reach it. Fix: add a relay your peers use, "
                "here or as RELAYS=wss://relay.example.com in the environment.")

    def _warn_about_relays(self, relays: Sequence[str]) -> None:
        warning = self.relay_warning(relays)
        if warning is not None:
            log.warning("%s", warning)
            self.emit("warn", warning, {"relays": list(relays)})

    async def set_relays(self, relays: Sequence[str] | None) -> bool:
        """Set the relay list (stored; it wins over RELAYS) or clear it (None); the running node moves live.

        In the demo the list is not stored: only the demo node moves. Returns True when a running node
        moved. ``ValueError`` for an empty list (clear it instead).
        """
        if relays is not None and not relays:
            raise ValueError("relays: at least one relay is needed (clear the list to use the default)")
        async with self._lock:
            service = self.service
            if self.demo and service is not None:
                target = list(relays) if relays is not None else list(self._demo_relays)
                await service.set_relays(target)
                return True
            if relays is None:
                cleared = self._relay_list.clear()
                target, source = self.relay_choice()
                if cleared:
                    self.emit("info", f"Relay list cleared: using the relays from {source}",
                              {"relays": target, "source": source})
            else:
                self._relay_list.save(list(relays))
                target, source = self.relay_choice()
                self.emit("info", "Relay list set on the dashboard (wins over RELAYS until cleared)",
                          {"relays": target, "source": source})
            moved = False
            if service is not None and service.active:
                await service.set_relays(target)
                moved = True
            self._warn_about_relays(target)
            return moved

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
                await self._run(group, share, self.relay_choice()[0], "env")
                return
            if self._store is not None and self._store.exists():
                stored = self._store.load()
                group, share = validate_credentials(stored.group_cred, stored.share_cred)
                await self._run(group, share, self.relay_choice()[0], "stored")
                return
        except Exception as exc:  # noqa: BLE001 - a bad credential must not stop the server
            self.emit("error", "Node could not start", exc)
            return
        self.emit("info", "No credentials yet: configure the signer or start the demo")

    async def apply_credentials(
        self, group_cred: str, share_cred: str, relays: list[str] | None = None
    ) -> NodeService:
        """Validate, store encrypted, restart the node on them, then send a self-echo.

        Relays given here are saved with the credentials and replace a list set on the dashboard.
        """
        group, share = validate_credentials(group_cred, share_cred)
        if relays:
            self._relay_list.clear()
        if self._store is not None:
            self._store.save(encode_group(group), encode_share(share), relays or [])
        relay_list = list(relays) if relays else list(self._relay_list.load() or self.default_relays)
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

    async def update_relays(self, relays: list[str]) -> NodeService | None:
        """``POST /api/env {RELAYS}`` alone: set the relay list as the dashboard does (empty clears it)."""
        await self.set_relays(relays or None)
        return self.service

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
                list(relays),
                emit=self._emit_and_count,
                pool_factory=self._factory(),
                options=self.options,
                policy_store=None if source == "demo" else self._policy_store,
                budget_ledger=None if source == "demo" else self._budget_ledger,
            )
            if source != "demo" and self._peer_policies:
                self._apply_peer_policies(service)
            await service.start()
            self.service, self.source = service, source
            if source != "demo":
                self._warn_about_relays(relays)
            return service

    def _emit_and_count(self, type_: str, message: str, data: Any = None) -> None:
        """The running node's emit: publish, and count signing activity (never raises)."""
        self._emit(type_, message, data)
        if self._activity is None:
            return
        try:
            record = classify(type_, message, data)
            if record is not None:
                self._activity.record(record)
        except Exception as exc:  # noqa: BLE001 - counting must never stop the node
            log.warning("signing activity not counted: %s", type(exc).__name__)

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
        self._demo_relays = [relay_url]
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
            if type_.startswith("peer-") or type_ == "relay-status-internal":
                return  # the dashboard's peer and relay cards show this node's view only
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

    def relay_details(self) -> list[dict[str, Any]]:
        """Per relay: ``{url, state, connected, lastError, rtt, ...}`` (state ``idle`` while no node runs)."""
        if self.service is None:
            return [{"url": url, "state": "idle", "connected": False, "lastError": None, "rtt": None}
                    for url in self.relays()]
        details = self.service.relay_status()
        return details or [{"url": url, "state": "connecting", "connected": False, "lastError": None,
                            "rtt": None} for url in self.service.relays]

    def status(self) -> dict[str, Any]:
        """Node part of /api/status: nodeActive, hasCredentials, relays, relayDetails [{url, state, ...}]."""
        status: dict[str, Any] = {
            "nodeActive": False,
            "hasCredentials": self.has_credentials(),
            "credentialsSource": self.source,
            "demo": self.demo,
            "demoAvailable": self.demo_enabled and not self.has_credentials() and not self.demo,
        }
        if self.service is None:
            status["relays"] = [{"url": url, "state": "idle", "connected": False} for url in self.relays()]
            status["relayDetails"] = self.relay_details()
            return status
        status.update(self.service.status())
        status["groupNpub"] = npub_encode(bytes.fromhex(self.service.group_pubkey))
        status["hasCredentials"] = self.has_credentials() or self.demo
        status["relays"] = status["relays"] or [
            {"url": url, "state": "connecting", "connected": False} for url in self.service.relays
        ]
        status["relayDetails"] = self.relay_details()
        return status
