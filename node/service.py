"""NodeService: one FROSTR signer on a relay pool — lifecycle, requester API, responders.

The protocol steps live in :mod:`node.protocol`; this module only moves messages, keeps time,
applies policies and reports what happens through the ``emit(type, message, data)`` callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from node import ciphers, protocol, validate
from node.ciphers import ProvenCipher, SharedSecret
from node.crypto import curve
from node.crypto.credentials import GroupPackage, SharePackage
from node.crypto.ecdh import EcdhPackage, combine_ecdh_pkgs, create_ecdh_pkg
from node.crypto.session import PsigPackage, SignatureEntry, combine_session, create_session, sign_session
from node.errors import NodeError, NodeTimeout, NodeUnavailable, PeerResponseError, RelayUnavailable
from node.events import Emit, error_json, safe_data
from node.nostr.event import Event, template_event_id
from node.peers import PeerTable, iso
from node.policy import ApprovalQueue, BudgetLedger, PeerPolicy, PolicyBook, PolicyStore, SignBudget
from node.protocol import Inbound, Rejection
from node.sign_queue import SignQueue
from node.tasks import BackgroundTasks


def _curve_pubkey(value: object, field: str) -> str:
    """An x-only pubkey (02/03-prefixed accepted) whose x is on the curve; ``ValueError`` names ``field``."""
    xonly = validate.xonly_pubkey(value, field)
    if not curve.is_valid_point(bytes.fromhex("02" + xonly)):
        raise ValueError(f"{field}: not a point on the curve")
    return xonly


class Pool(Protocol):
    """The relay pool surface the node uses (``node.transport.pool.RelayPool``)."""

    def start(self) -> None: ...
    async def wait_connected(self, timeout: float) -> bool: ...
    def subscribe(self, sub_id: str, filters: list[dict[str, Any]]) -> None: ...
    def resubscribe(self) -> int: ...
    async def publish(self, event: Event, timeout: float = 5.0) -> list[str]: ...
    def status(self) -> list[dict[str, Any]]: ...
    async def close(self) -> None: ...
    async def set_urls(
        self, urls: list[str], *, settle_timeout: float = 5.0, drain_timeout: float = 5.0
    ) -> tuple[list[str], list[str]]: ...


PoolFactory = Callable[..., Pool]


_P = TypeVar("_P")
_R = TypeVar("_R")


@dataclass(frozen=True)
class _Round:
    """What names a co-signer round in events and errors: ``sign`` or ``ecdh``."""

    kind: str  # event type
    tag: str  # request message tag
    label: str  # first word of the event messages
    timeout_text: str


_SIGN_ROUND = _Round("sign", protocol.SIGN_REQ, "Signature", "signing timed out")
_ECDH_ROUND = _Round("ecdh", protocol.ECDH_REQ, "ECDH", "ECDH timed out")


@dataclass
class _Attempt(Generic[_P, _R]):
    """One request to the chosen co-signers: what to send, how to judge answers, how to finish."""

    data: str
    sent: dict[str, Any]  # data of the "request sent" event
    ident: dict[str, Any]  # fields naming the attempt in the "rejected: timeout" event
    check: Callable[[str, str], _P]  # (peer, answer data) -> package; ValueError when wrong
    finish: Callable[[list[_P]], _R]


@dataclass
class _Pending:
    """An outgoing request waiting for answers with its message id."""

    expected: set[str]
    answers: dict[str, Inbound] = field(default_factory=dict)
    arrived: dict[str, float] = field(default_factory=dict)  # time.monotonic() of each answer
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class NodeOptions:
    """Tunables passed in by the composition root (the node never reads the environment)."""

    sign_timeout: float = 5.0
    ping_interval: float = 30.0
    first_ping_delay: float | None = None
    sign_budget: int = 1200
    sign_budget_window: float = 3600.0
    approval_mode: bool = False
    stamp_window: int = protocol.STAMP_WINDOW
    since_skew: int = 10
    ecdh_cache_size: int = 256
    label: str = ""
    replay_memory: int = 10000


SUB_ID = "igloo-node"
RELAY_SETTLE_MAX = 5.0  # seconds a relay change waits for new relays to subscribe before dropping the old

MAX_SESSIONS_IN_FLIGHT = 16
"""Signing sessions the sign queue keeps in flight at most (spread over co-signers, or pipelined to one
whose rounds are mostly network time); further requests wait and go out batched."""


class NodeService:
    """A bifrost v1 node holding one share of a group."""

    def __init__(
        self,
        group: GroupPackage,
        share: SharePackage,
        relays: list[str],
        *,
        emit: Emit,
        pool_factory: PoolFactory,
        options: NodeOptions | None = None,
        policy_store: PolicyStore | None = None,
        budget_ledger: BudgetLedger | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.group = group
        self._share = share
        self.relays = list(relays)
        self.options = options or NodeOptions()
        self._emit_raw = emit
        self._pool_factory = pool_factory
        self._clock = clock
        self.pubkey = share.pubkey_xonly()
        self.group_pubkey = curve.xonly(group.group_pk).hex()
        self.peers = [pk for pk in group.member_pubkeys() if pk != self.pubkey]
        self.peer_table = PeerTable(
            self.peers, offline_after=2 * self.options.ping_interval + self.options.sign_timeout, clock=clock
        )
        self.policies = PolicyBook(self.peers, policy_store)
        self.budget = SignBudget(
            self.options.sign_budget, self.options.sign_budget_window, clock, budget_ledger
        )
        self.approvals = ApprovalQueue(clock)
        # Concurrent one-sighash requests share batched sessions, spread over the online co-signers.
        self.sign_queue = self._new_sign_queue()
        self._pool: Pool | None = None
        self._pending: dict[str, _Pending] = {}
        self._tasks = BackgroundTasks(lambda exc: self.emit("error", "Node error", error_json(exc)))
        self._ping_task: asyncio.Task[None] | None = None
        # NIP-44/NIP-04 for the REST routes and the NIP-46 bunker alike: secrets cached only once proven.
        self.cipher = ProvenCipher(self._cipher_round, retry=self._retry_avoiding, emit=self.emit,
                                   timeout=self.options.sign_timeout, cache_size=self.options.ecdh_cache_size)
        # Peers whose last ping answer said they do not handle our requests (their recv policy is off).
        self._refused_by: set[str] = set()
        self._seen_requests: OrderedDict[tuple[str, str], None] = OrderedDict()
        # Listening health: CLOSED answered with a new REQ, and rebuilds after every online peer went silent.
        self._resubscribes = 0
        self._rebuilds = 0
        self._last_rebuild: float | None = None
        self.started_at: float | None = None
        self.ready = False
        self.active = False

    # ----------------------------------------------------------------- events
    def emit(self, type_: str, message: str, data: Any = None) -> None:
        """Emit one event with JSON-safe, secret-free data (never raises)."""
        with contextlib.suppress(Exception):
            self._emit_raw(type_, message, safe_data(data))

    def _emit_peer(self, kind: str, pubkey: str, success: bool, event_type: str) -> None:
        # eventType (Igloo Server's field): the message tag behind the change, or "timeout" for silence.
        status = self.peer_table.status_json(pubkey)
        self.emit(kind, "", {"pubkey": pubkey, "status": status, "success": success, "eventType": event_type})

    # -------------------------------------------------------------- lifecycle
    @property
    def threshold(self) -> int:
        """Signatures needed (group threshold)."""
        return self.group.threshold

    async def start(self) -> None:
        """Connect to the relays, subscribe, start the periodic ping."""
        if self.active:
            return
        if self.sign_queue.closed:  # started again after a stop
            self.sign_queue = self._new_sign_queue()
        self.started_at = self._clock()
        self._pool = self._pool_factory(
            self.relays, on_event=self._on_event, on_state=self._on_state, on_eose=self._on_eose,
            on_closed=self._on_closed,
            on_rtt=self._on_rtt, rtt_interval=self.options.ping_interval,
        )
        since = int(self.started_at) - self.options.since_skew
        self._pool.subscribe(SUB_ID, [protocol.subscription_filter(self.pubkey, self.peers, since)])
        self._pool.start()
        self.active = True
        self.emit("info", "Node starting", {"pubkey": self.pubkey, "relays": self.relays})
        self._ping_task = asyncio.ensure_future(self._ping_loop())

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until at least one relay is connected."""
        if self._pool is None:
            return False
        return await self._pool.wait_connected(timeout)

    async def stop(self) -> None:
        """Stop pinging, deny pending approvals, fail pending requests, close the relays."""
        if not self.active:
            return
        self.active = False
        self.ready = False
        if self._ping_task is not None:
            self._ping_task.cancel()
        await self.sign_queue.close()
        self.approvals.cancel_all()
        for pending in self._pending.values():
            pending.done.set()
        self._tasks.cancel_all()
        if self._pool is not None:
            await self._pool.close()
        self.emit("info", "Node stopped", {"pubkey": self.pubkey})

    def relay_status(self) -> list[dict[str, Any]]:
        """The pool's per-relay status."""
        return self._pool.status() if self._pool is not None else []

    async def set_relays(self, relays: list[str]) -> tuple[list[str], list[str]]:
        """Move to ``relays`` without a restart; returns ``(added, removed)``.

        The pool connects and subscribes on the new relays before it lets the removed ones go (waiting at
        most ``sign_timeout``, and never more than ``RELAY_SETTLE_MAX`` seconds, for a new relay that does not
        answer), so requests in flight keep waiting for their answers and get them from whichever relay
        carries them. ``ValueError`` for an empty list.
        """
        wanted = list(dict.fromkeys(relays))
        if not wanted:
            raise ValueError("relays: at least one relay is needed")
        if self._pool is None or not self.active:
            self.relays = wanted
            return [], []
        settle = min(self.options.sign_timeout, RELAY_SETTLE_MAX)
        drain = self.options.sign_timeout
        added, removed = await self._pool.set_urls(wanted, settle_timeout=settle, drain_timeout=drain)
        self.relays = wanted
        if added or removed:
            self.emit("info", "Relays changed", {"relays": wanted, "added": added, "removed": removed})
        return added, removed

    def _relay_entry(self, url: str) -> dict[str, Any]:
        for entry in self.relay_status():
            if entry.get("url") == url:
                return entry
        return {"url": url}

    def _on_state(self, url: str, state: str) -> None:
        data = {**self._relay_entry(url), "url": url, "state": state}
        if state == "connected":
            self.emit("bifrost", f"Relay connected: {url}", data)
        elif state in ("disconnected", "error", "closed"):
            self.emit("warn", f"Relay disconnected: {url}", data)

    def _on_rtt(self, url: str, rtt: float | None) -> None:
        self.emit("relay-status-internal", "", {**self._relay_entry(url), "url": url, "rtt": rtt})

    def _on_eose(self, sub_id: str, url: str) -> None:
        if sub_id == SUB_ID and not self.ready:
            self.ready = True
            self.emit("ready", "Node is ready", {"pubkey": self.pubkey, "relay": url})

    def _on_closed(self, sub_id: str, url: str, reason: str, retry_in: float) -> None:
        if sub_id != SUB_ID:
            return
        self._resubscribes += 1
        self.emit("warn", f"Relay closed the node's subscription: {url}; asking again in {retry_in:.1f}s",
                  {"url": url, "reason": reason, "retryIn": round(retry_in, 3)})

    def _check_listening(self, online_before: set[str], timed_out: set[str], answered: bool) -> None:
        """Rebuild the subscriptions when every peer that was online went silent while relays look connected.

        A relay can drop a subscription without a word (restart behind a proxy, eviction): the socket stays
        up, pings go out, and answers never come back. Asking again costs one REQ per relay.
        """
        if answered or not online_before or not online_before <= timed_out or self._pool is None:
            return
        connected = [r["url"] for r in self.relay_status() if r.get("connected")]
        if not connected:
            return  # every relay is down: the connections reconnect and resubscribe by themselves
        relays = self._pool.resubscribe()
        self._rebuilds += 1
        self._last_rebuild = self._clock()
        self.emit("warn", "No online peer answered while relays look connected: subscriptions rebuilt",
                  {"silent": sorted(online_before), "relays": connected, "resent": relays,
                   "rebuilds": self._rebuilds})

    async def _ping_loop(self) -> None:
        if self.options.first_ping_delay is not None:
            # Shortly after start, so the peers panel is right at once rather than after a full interval
            # (the delay lets peers that start at the same moment subscribe first).
            await asyncio.sleep(self.options.first_ping_delay)
            if self.active:
                await self.ping_all()
        while self.active:
            await asyncio.sleep(self.options.ping_interval)
            if self.active:
                await self.ping_all()

    # ---------------------------------------------------------------- inbound
    def _on_event(self, event: Event, url: str) -> None:
        window = self.options.stamp_window
        if abs(int(self._clock()) - event.created_at) > window:
            # A captured message replayed later: its signature still verifies, its time does not.
            self.emit("bifrost", f"Message bounced: stale event (created_at outside ±{window}s)",
                      {"event": event.id, "from": event.pubkey, "relay": url})
            return
        try:
            inbound = protocol.open_event(self._share.seckey, self.pubkey, event)
        except ValueError as exc:
            self.emit("bifrost", f"Message bounced: {exc}", {"event": event.id, "relay": url})
            return
        if inbound.sender == self.pubkey:
            self._on_own_message(inbound)
            return
        if inbound.sender not in self.peer_table:
            self.emit("bifrost", "Message bounced: sender is not a group member",
                      {"from": inbound.sender, "tag": inbound.tag})
            return
        if inbound.tag not in protocol.RESPONSE_TAGS and self._replayed(inbound):
            # The pool drops a repeated event id; a re-sealed copy has a new event id but the same message id.
            self.emit("bifrost", "Message bounced: replayed message id",
                      {"from": inbound.sender, "tag": inbound.tag, "id": inbound.id, "event": event.id})
            return
        if inbound.tag in protocol.RESPONSE_TAGS:
            pending = self._pending.get(inbound.id)
            if pending is not None and inbound.sender in pending.expected:
                pending.answers.setdefault(inbound.sender, inbound)
                pending.arrived.setdefault(inbound.sender, time.monotonic())
                if pending.expected <= pending.answers.keys():
                    pending.done.set()
            else:
                # Late (after its request timed out) or never asked for: say so rather than drop it silently.
                self.emit("bifrost", "Message bounced: response to no pending request",
                          {"from": inbound.sender, "tag": inbound.tag, "id": inbound.id})
            return
        handler = {
            protocol.PING_REQ: self._on_ping,
            protocol.ECHO_REQ: self._on_echo,
            protocol.SIGN_REQ: self._on_sign,
            protocol.ECDH_REQ: self._on_ecdh,
        }.get(inbound.tag)
        if handler is None:
            self.emit("bifrost", f"Message received: {inbound.tag}", {"from": inbound.sender})
            return
        self._tasks.spawn(handler(inbound))

    def _replayed(self, inbound: Inbound) -> bool:
        """Remember a request's (sender, message id); True when it was handled before."""
        key = (inbound.sender, inbound.id)
        if key in self._seen_requests:
            self._seen_requests.move_to_end(key)
            return True
        self._seen_requests[key] = None
        while len(self._seen_requests) > self.options.replay_memory:
            self._seen_requests.popitem(last=False)
        return False

    def _on_own_message(self, inbound: Inbound) -> None:
        pending = self._pending.get(inbound.id)
        if pending is not None and self.pubkey in pending.expected:
            pending.answers.setdefault(self.pubkey, inbound)
            pending.done.set()
        elif inbound.tag == protocol.ECHO_REQ:
            self.emit("bifrost", "Echo received from another device with this share", {"id": inbound.id})

    async def _reply(self, inbound: Inbound, tag: str, data: str) -> bool:
        if self._pool is None:
            return False
        event = protocol.seal(self._share.seckey, inbound.sender, tag, inbound.id, data, int(self._clock()))
        accepted = await self._pool.publish(event, timeout=self.options.sign_timeout)
        return bool(accepted)

    def _seen(self, pubkey: str, tag: str, latency_ms: float | None = None) -> None:
        became_online = self.peer_table.mark_seen(pubkey, latency_ms)
        if became_online or latency_ms is not None:
            self._emit_peer("peer-status-internal", pubkey, True, tag)

    async def _on_ping(self, inbound: Inbound) -> None:
        self._seen(inbound.sender, inbound.tag)
        self.emit("bifrost", "Ping request", {"from": inbound.sender, "id": inbound.id})
        await self._reply(inbound, protocol.PING_RES, protocol.policy_json(self.policies.get(inbound.sender)))

    async def _on_echo(self, inbound: Inbound) -> None:
        self._seen(inbound.sender, inbound.tag)
        ok = await self._reply(
            inbound, protocol.ECHO_RES, protocol.policy_json(self.policies.get(inbound.sender))
        )
        if ok:
            self.emit("bifrost", "Echo response published", {"requesterPubkey": inbound.sender})

    async def _admit(self, kind: str, inbound: Inbound, count: int, summary: dict[str, Any]) -> None:
        """Apply recv policy, budget and approval to a request; raise Rejection to refuse it."""
        sender = inbound.sender
        if not self.policies.get(sender).recv:
            raise Rejection("unauthorized: this peer may not send requests (receive policy is off)")
        limit, window = self.budget.limit, int(self.budget.window)
        if not self.budget.allows(sender, count):
            raise Rejection(
                f"budget exhausted: asked for {count}, {self.budget.remaining(sender)} left of "
                f"{limit} per {window}s for this peer"
            )
        if self.options.approval_mode:
            approval = self.approvals.open(kind, sender, summary, self.options.sign_timeout)
            label = "Signature" if kind == "sign" else "ECDH"
            self.emit(kind, f"{label} request awaiting approval", {"approval": approval.to_json()})
            outcome = await self.approvals.wait(approval)
            self.emit("info", f"Approval {approval.id} {outcome}",
                      {"approvalId": approval.id, "outcome": outcome})
            if outcome != "approved":
                raise Rejection(f"approval {outcome}")
        if not self.budget.consume(sender, count):
            raise Rejection(f"budget exhausted: {limit} per {window}s for this peer")

    async def _on_sign(self, inbound: Inbound) -> None:
        self._seen(inbound.sender, inbound.tag)
        base = {"from": inbound.sender, "id": inbound.id}
        self.emit("sign", "Signature request received", base)
        try:
            session = protocol.check_sign_request(
                self.group, self._share, inbound.sender, inbound.data, int(self._clock()),
                stamp_window=self.options.stamp_window,
            )
            summary = {"sid": session.sid, "sighashes": [v[0] for v in session.hashes],
                       "members": session.members, "type": session.type}
            await self._admit("sign", inbound, len(session.hashes), summary)
            pkg = sign_session(self.group, self._share, session)
        except Rejection as exc:
            self.emit("sign", f"Signature request rejected: {exc}", {**base, "reason": str(exc)})
            return
        except ValueError as exc:
            self.emit("sign", f"Signature request rejected: {exc}", {**base, "reason": str(exc)})
            return
        if await self._reply(inbound, protocol.SIGN_RES, protocol.compact(pkg.to_json())):
            self.emit("sign", "Signature response sent", {**base, "sid": session.sid,
                                                          "sighashes": summary["sighashes"]})
        else:
            self.emit("warn", "Signature response could not be published", base)

    async def _on_ecdh(self, inbound: Inbound) -> None:
        self._seen(inbound.sender, inbound.tag)
        base = {"from": inbound.sender, "id": inbound.id}
        self.emit("ecdh", "ECDH request received", base)
        try:
            request = protocol.check_ecdh_request(self.group, self._share, inbound.sender, inbound.data)
            summary = {"ecdh_pk": request.ecdh_pk, "members": request.members}
            await self._admit("ecdh", inbound, 1, summary)
            pkg = create_ecdh_pkg(self.group, self._share, list(request.members), request.ecdh_pk)
        except (Rejection, ValueError) as exc:
            self.emit("ecdh", f"ECDH request rejected: {exc}", {**base, "reason": str(exc)})
            return
        if await self._reply(inbound, protocol.ECDH_RES, protocol.compact(pkg.to_json())):
            self.emit("ecdh", "ECDH response sent", {**base, "ecdh_pk": request.ecdh_pk})
        else:
            self.emit("warn", "ECDH response could not be published", base)

    # -------------------------------------------------------------- requester
    def _require_active(self) -> Pool:
        if not self.active or self._pool is None:
            raise NodeUnavailable("node is not running")
        return self._pool

    async def _request(self, tag: str, payloads: dict[str, str], wait: float,
                       arrived: dict[str, float] | None = None) -> dict[str, Inbound]:
        """Send one event per recipient with a shared id; collect answers until all arrive or ``wait``.

        ``arrived``, when given, gets the ``time.monotonic()`` at which each answer came in.
        """
        pool = self._require_active()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        msg_id = protocol.new_msg_id()
        pending = _Pending(set(payloads))
        self._pending[msg_id] = pending
        try:
            now = int(self._clock())
            events = [protocol.seal(self._share.seckey, peer, tag, msg_id, data, now)
                      for peer, data in payloads.items()]
            accepted = await asyncio.gather(*(pool.publish(ev, timeout=max(0.1, wait)) for ev in events))
            if events and not any(accepted):
                raise RelayUnavailable("no relay accepted the request")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pending.done.wait(), max(0.0, deadline - loop.time()))
            if arrived is not None:
                arrived.update(pending.arrived)
            return dict(pending.answers)
        finally:
            self._pending.pop(msg_id, None)

    async def ping(self, pubkey: str, timeout: float | None = None) -> tuple[PeerPolicy, float]:
        """Ping one peer; returns its policy towards us and the round-trip time in ms."""
        if pubkey not in self.peer_table:
            raise ValueError("pubkey is not a peer of this group")
        wait = timeout or self.options.sign_timeout
        self.peer_table.mark_attempt(pubkey)
        started = time.monotonic()
        answers = await self._request(protocol.PING_REQ, {pubkey: "ping"}, wait)
        latency = (time.monotonic() - started) * 1000
        answer = answers.get(pubkey)
        if answer is None:
            was_online = self.peer_table.mark_failed(pubkey, ping=True)
            self._emit_peer("peer-ping-internal", pubkey, False, "timeout")
            if was_online:
                self._emit_peer("peer-status-internal", pubkey, False, "timeout")
            raise NodeTimeout("ping timed out")
        try:
            policy = protocol.parse_policy(answer.data)
        except ValueError as exc:
            self.peer_table.mark_failed(pubkey, ping=True)
            self._emit_peer("peer-ping-internal", pubkey, False, answer.tag)
            raise PeerResponseError(str(exc)) from exc
        self.peer_table.mark_seen(pubkey, latency)
        if policy.recv:
            self._refused_by.discard(pubkey)
        else:
            self._refused_by.add(pubkey)
        self._emit_peer("peer-ping-internal", pubkey, True, answer.tag)
        return policy, latency

    async def ping_all(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """Ping every peer at once; one result dict per peer (Igloo Server's shape).

        When every peer that was online times out while relays look connected, the node may have gone deaf
        (a relay dropped its subscription silently): the subscriptions are rebuilt and an event says so.
        """
        online_before = {p for p in self.peers if self.peer_table.is_online(p)}
        timed_out: set[str] = set()

        async def one(pubkey: str) -> dict[str, Any]:
            try:
                _, latency = await self.ping(pubkey, timeout)
                return {"pubkey": pubkey, "success": True, "latency": round(latency, 1)}
            except NodeTimeout as exc:
                timed_out.add(pubkey)
                return {"pubkey": pubkey, "success": False, "error": str(exc)}
            except NodeError as exc:
                return {"pubkey": pubkey, "success": False, "error": str(exc)}

        results = list(await asyncio.gather(*(one(pk) for pk in self.peers)))
        self._check_listening(online_before, timed_out, any(r["success"] for r in results))
        return results

    async def echo(self, challenge: str = "echo", timeout: float | None = None) -> str:
        """Send ``/echo/req`` to ourselves and wait for a relay to reflect it (spec §4.10)."""
        answers = await self._request(protocol.ECHO_REQ, {self.pubkey: challenge},
                                      timeout or self.options.sign_timeout)
        answer = answers.get(self.pubkey)
        if answer is None:
            raise NodeTimeout("echo timed out")
        self.emit("bifrost", "Self echo returned", {"id": answer.id})
        return answer.data

    def _new_sign_queue(self) -> SignQueue:
        return SignQueue(self.sign, max_inflight=MAX_SESSIONS_IN_FLIGHT, send_now=self._send_now)

    def _send_now(self) -> bool:
        """The sign queue asks, while a session is in flight: send a waiting request now, or let it join
        the batch that leaves when a session ends? Now, when the co-signers it would go to are online and
        expected to answer no later than waiting would (an idle co-signer, or a busy one whose rounds are
        mostly network time); see :meth:`PeerTable.send_now`."""
        try:
            chosen, _ = self._choose(set())
        except NodeUnavailable:
            return False
        if not all(self.peer_table.is_online(peer) for peer in chosen):
            return False
        return self.peer_table.send_now(chosen)

    def _choose(self, excluded: set[str]) -> tuple[list[str], bool]:
        """``threshold - 1`` peers, online and least loaded first; and whether alternatives remain.

        Never more than the threshold needs: every extra partial signature is one more equation of the
        share leak (spec §9.1).
        """
        candidates = [p for p in self.peers if self.policies.get(p).send and p not in excluded]
        # A peer that told us it refuses our requests answers them with silence (spec §4.7): ask it last.
        ranked = sorted(self.peer_table.rank(candidates), key=lambda p: p in self._refused_by)
        need = self.threshold - 1
        if len(ranked) < need:
            raise NodeUnavailable(
                f"not enough peers to reach the threshold: need {need}, {len(ranked)} available"
            )
        return ranked[:need], len(ranked) > need

    def _attempt_wait(self, chosen: list[str], alternatives: bool, remaining: float) -> float:
        # With someone to fall back on, keep half the deadline for the retry: a peer marked online may
        # have died since it last answered, and waiting the whole deadline on it would fail the request.
        if alternatives:
            return remaining / 2
        return remaining

    def _note_silent(self, chosen: list[str], answers: dict[str, Inbound]) -> set[str]:
        silent = {p for p in chosen if p not in answers}
        for peer in silent:
            if self.peer_table.mark_failed(peer):
                self._emit_peer("peer-status-internal", peer, False, "timeout")
        for peer, answer in answers.items():
            self._seen(peer, answer.tag)
        return silent

    async def _timed_request(self, tag: str, chosen: list[str], data: str, wait: float) -> dict[str, Inbound]:
        """``_request`` to the chosen co-signers, counted as in flight with each of them while it lasts, and
        each answer's round trip recorded (what spreads the next rounds, see ``PeerTable.rank``)."""
        sent_at = time.monotonic()
        started = {peer: self.peer_table.begin_round(peer) for peer in chosen}
        arrived: dict[str, float] = {}
        try:
            return await self._request(tag, dict.fromkeys(chosen, data), wait, arrived)
        finally:
            for peer, began in started.items():
                at = arrived.get(peer)
                self.peer_table.end_round(peer, began, None if at is None else (at - sent_at) * 1000)

    async def _cosign(self, round_: _Round, timeout: float | None,
                      attempt: Callable[[list[str], list[int]], _Attempt[_P, _R]],
                      avoid: frozenset[str] = frozenset()) -> _R:
        """Ask ``threshold - 1`` co-signers until one set answers well or the deadline passes.

        ``attempt`` builds the request for the chosen peers and their member indexes; silent or
        wrong peers are excluded and the next attempt goes to others while any remain. Peers in
        ``avoid`` are never asked.
        """
        self._require_active()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout or self.options.sign_timeout)
        excluded: set[str] = set(avoid)
        last_error: NodeError | None = None
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise last_error or NodeTimeout(round_.timeout_text)
            try:
                chosen, alternatives = self._choose(excluded)
            except NodeUnavailable:
                if last_error is not None:
                    raise last_error from None
                raise
            members = protocol.members_for(self.group, [self.pubkey, *chosen])
            current = attempt(chosen, members)
            self.emit(round_.kind, f"{round_.label} request sent", current.sent)
            wait = self._attempt_wait(chosen, alternatives, remaining)
            answers = await self._timed_request(round_.tag, chosen, current.data, wait) if chosen else {}
            silent = self._note_silent(chosen, answers)
            pkgs: list[_P] = []
            for peer, answer in answers.items():
                try:
                    pkgs.append(current.check(peer, answer.data))
                except ValueError as exc:
                    excluded.add(peer)
                    last_error = PeerResponseError(f"{exc} : {peer}")
                    self.emit(round_.kind, f"{round_.label} share aggregation failed: {exc}", {"peer": peer})
            if silent or len(pkgs) != len(chosen):
                excluded |= silent
                if silent:
                    last_error = last_error if isinstance(last_error, PeerResponseError) else NodeTimeout(
                        round_.timeout_text)
                    self.emit(round_.kind, f"{round_.label} request rejected: timeout",
                              {**current.ident, "silent": sorted(silent)})
                continue
            return current.finish(pkgs)

    async def sign(
        self, message: str | list[list[str]], timeout: float | None = None
    ) -> list[SignatureEntry]:
        """Threshold-sign one sighash or a batch of vectors; ``SignatureEntry`` per vector."""
        vectors = validate.sighash_vectors(message)

        def attempt(chosen: list[str], members: list[int]) -> _Attempt[PsigPackage, list[SignatureEntry]]:
            session = create_session(self.group, members, vectors, stamp=int(self._clock()))

            def finish(pkgs: list[PsigPackage]) -> list[SignatureEntry]:
                own = sign_session(self.group, self._share, session)
                try:
                    entries = combine_session(self.group, session, [own, *pkgs])
                except ValueError as exc:
                    self.emit("sign", f"Signature share aggregation failed: {exc}", {"sid": session.sid})
                    raise PeerResponseError(f"aggregation failed: {exc}") from exc
                self.emit("sign", "Signature shares aggregated",
                          {"sid": session.sid, "signatures": [list(e) for e in entries]})
                return [tuple(e) for e in entries]  # type: ignore[misc]

            return _Attempt(
                data=protocol.compact(session.to_json()),
                sent={"sid": session.sid, "peers": chosen, "sighashes": [v[0] for v in vectors]},
                ident={"sid": session.sid},
                check=lambda peer, data: protocol.check_psig_response(self.group, session, peer, data),
                finish=finish,
            )

        return await self._cosign(_SIGN_ROUND, timeout, attempt)

    async def sign_message(self, message: object) -> SignatureEntry:
        """Threshold-sign one 64-hex sighash through the sign queue, within ``sign_timeout``.

        Callers that arrive while a session is in flight share the next batched session. ``ValueError``
        (naming ``message``) for anything but 32 bytes of hex; upper case is accepted.
        """
        sighash = validate.hex_bytes(message, 32, "message")
        try:
            return await self.sign_queue.sign(sighash, self.options.sign_timeout)
        except ValueError as exc:  # the input was checked above: this is the session going wrong
            raise PeerResponseError("invalid signature response from node") from exc

    async def sign_event(self, template: object) -> Event:
        """Sign a NIP-01 event template ``{kind, created_at, tags?, content?, pubkey?}`` with the group key.

        The id is computed with ``pubkey`` = the group's x-only key; ``ValueError`` names the bad field
        (``event.kind: ...``). The signing goes through the sign queue like :meth:`sign_message`.
        """
        event_id = template_event_id(template, self.group_pubkey)
        assert isinstance(template, dict)  # template_event_id refuses anything else
        entry = await self.sign_message(event_id)
        return Event(event_id, self.group_pubkey, template["created_at"], template["kind"],
                     template.get("tags", []), template.get("content", ""), entry[2])

    async def ecdh(self, pubkey: object, timeout: float | None = None) -> bytes:
        """Threshold ECDH with ``pubkey`` (x-only hex, or 02/03-prefixed): the 33-byte shared point.

        Always a fresh round: a combined result cannot be checked, so nothing unproven is kept here
        (``self.cipher`` caches secrets once a NIP-44 MAC has proven them).
        """
        ecdh_pk = _curve_pubkey(pubkey, "pubkey")
        return (await self._ecdh_round(ecdh_pk, timeout, frozenset())).point

    async def _ecdh_round(self, ecdh_pk: str, timeout: float | None, avoid: frozenset[str]) -> SharedSecret:
        """One threshold ECDH with the co-signers (none of ``avoid``): the point and every key share."""

        def attempt(chosen: list[str], members: list[int]) -> _Attempt[EcdhPackage, SharedSecret]:
            own = create_ecdh_pkg(self.group, self._share, members, ecdh_pk)

            def finish(pkgs: list[EcdhPackage]) -> SharedSecret:
                point = combine_ecdh_pkgs([own, *pkgs])
                self.emit("ecdh", "ECDH shares aggregated", {"ecdh_pk": ecdh_pk, "peers": chosen})
                keyshares = tuple((self.group.commit_for(pkg.idx).pubkey_xonly, pkg) for pkg in [own, *pkgs])
                return SharedSecret(point, tuple(chosen), keyshares)

            return _Attempt(
                data=protocol.compact(own.to_json()),
                sent={"ecdh_pk": ecdh_pk, "peers": chosen},
                ident={},
                check=lambda peer, data: protocol.check_ecdh_response(
                    self.group, members, ecdh_pk, peer, data),
                finish=finish,
            )

        return await self._cosign(_ECDH_ROUND, timeout, attempt, avoid)

    def _usable_without(self, avoid: frozenset[str]) -> int:
        """How many peers we may ask (send policy on) outside ``avoid``."""
        return sum(1 for p in self.peers if p not in avoid and self.policies.get(p).send)

    async def _cipher_round(self, peer: str, avoid: frozenset[str], timeout: float) -> SharedSecret:
        """The cipher's ECDH round; co-signers caught sending a wrong key share sit out while others can."""
        wary = avoid | self.cipher.wrong_cosigners
        if wary != avoid and self._usable_without(wary) >= self.threshold - 1:
            avoid = wary
        return await self._ecdh_round(peer, timeout, avoid)

    def _retry_avoiding(self, first: SharedSecret) -> frozenset[str] | None:
        """Who to leave out of a second ECDH round after ``first`` failed to open a payload.

        None of ``first``'s co-signers when enough other peers are online (then the set whose secret a
        MAC verifies tells who was wrong); else the first of them, replaced by an online peer; ``None``
        when no other peer is online to form another set.
        """
        used = frozenset(first.cosigners)
        if not used:
            return None  # a 1-of-n group combines our own share alone: there is no co-signer to doubt
        online = [p for p in self.peers
                  if p not in used and self.policies.get(p).send and self.peer_table.is_online(p)]
        if len(online) >= len(used):
            return used
        return frozenset(first.cosigners[:1]) if online else None

    async def encrypt(self, scheme: str, peer_pubkey: object, content: object) -> str:
        """``content`` encrypted from the group key to ``peer_pubkey`` with ``scheme`` (nip44 | nip04).

        The shared secret comes from threshold ECDH with the co-signers (``self.cipher``: a proven secret
        when there is one). ``ValueError`` names the parameter at fault (``peer_pubkey: ...``,
        ``content: ...``, ``scheme: ...``); a ``NodeError`` when the co-signers do not answer well.
        """
        peer = _curve_pubkey(peer_pubkey, "peer_pubkey")
        text = ciphers.check_input(scheme, content, encrypting=True)
        self._require_active()
        return await self.cipher.encrypt(scheme, peer, text)

    async def decrypt(self, scheme: str, peer_pubkey: object, content: object) -> str:
        """The plaintext of ``content`` that ``peer_pubkey`` encrypted to the group key.

        A malformed payload is refused before any ECDH round; a payload that does not open is refused
        with ``ValueError`` (``content: ...``) once the proven-secret rule of :mod:`node.ciphers` has
        ruled out a wrong co-signer share where it can.
        """
        peer = _curve_pubkey(peer_pubkey, "peer_pubkey")
        text = ciphers.check_input(scheme, content, encrypting=False)
        self._require_active()
        return await self.cipher.decrypt(scheme, peer, text)

    # ------------------------------------------------------------- dashboard
    def peers_json(self) -> list[dict[str, Any]]:
        """``[{pubkey, online, lastSeen, latency, lastPingAttempt, policy}]`` for every peer."""
        return [{**self.peer_table.status_json(pk), "policy": self.policies.summary(pk)} for pk in self.peers]

    def decide(self, approval_id: str, approve: bool) -> bool:
        """Approve or deny a pending request; False when it is unknown or already decided."""
        return self.approvals.decide(approval_id, approve) is not None

    def status(self) -> dict[str, Any]:
        """Node health for /api/status."""
        relays = self.relay_status()
        return {
            "nodeActive": self.active,
            "ready": self.ready,
            "pubkey": self.pubkey,
            "shareIdx": self._share.idx,
            "groupPubkey": self.group_pubkey,
            "threshold": self.threshold,
            "totalShares": len(self.group.commits),
            "relayCount": len(self.relays),
            "connectedRelays": sum(1 for r in relays if r.get("connected")),
            "relays": relays,
            "peersOnline": sum(1 for p in self.peers if self.peer_table.is_online(p)),
            "approvalMode": self.options.approval_mode,
            "pendingApprovals": len(self.approvals.pending()),
            "signBudget": {"limit": self.budget.limit, "window": int(self.budget.window)},
            "listening": {
                "resubscribes": self._resubscribes,
                "rebuilds": self._rebuilds,
                "lastRebuild": iso(self._last_rebuild),
            },
        }
