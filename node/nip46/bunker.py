"""The bunker: NIP-46 remote signing with the threshold group key, behind a session gate.

Inbound kind-24133 events arrive from the :class:`~node.nip46.listener.Listener`. Each is checked in this
order, every step bounded and none of them blocking the loop: timestamp window, rate (per paired client;
one shared budget for everyone else), NIP-44 decryption with the transport key, request shape, duplicate
(client, id), then the session gate. Only ``connect`` with a valid single-use secret opens a session;
anything else from an unpaired key is answered with an error and nothing is stored. Work methods
(``sign_event``, ``nip04_*``, ``nip44_*``) are checked against the session's permissions: allowed ones run
at once, asked ones wait in the approval queue until a human decides or they expire, denied ones are
answered with an error at once. Every request gets exactly one answer, and every state change of a stored
request is one event on the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from node.crypto import curve
from node.errors import NodeError
from node.events import Emit, safe_data
from node.nip46 import protocol
from node.nip46.listener import Listener
from node.nip46.permissions import (
    PERMISSION_METHODS,
    SIGN_EVENT,
    Decision,
    Permissions,
    parse_requested,
)
from node.nip46.protocol import BadRequest, EventTemplate, Request
from node.nip46.records import (
    ACTIVE,
    APPROVED,
    BUNKER,
    COMPLETED,
    DENIED,
    EXPIRED,
    FAILED,
    NOSTRCONNECT,
    PAUSED,
    PENDING,
    InvalidTransition,
    Nip46Storage,
    RequestRecord,
    SecretCheck,
    Session,
)
from node.nip46.signer import GroupSigner
from node.nip46.uri import NostrConnectOffer, bunker_uri, client_profile
from node.nostr import nip44
from node.nostr.event import Event
from node.ratelimit import TokenBucket
from node.service import PoolFactory
from node.tasks import BackgroundTasks
from node.validate import MAX_RELAYS, relay_urls

log = logging.getLogger("igloo.nip46")

WORK_METHODS = frozenset({SIGN_EVENT, "nip44_encrypt", "nip44_decrypt", "nip04_encrypt", "nip04_decrypt"})
SESSION_METHODS = frozenset({"connect", "switch_relays", "logout"})
ACTIONS = ("approve", "deny", "always_allow", "always_deny")
REFUSAL_LOG_INTERVAL = 60.0  # at most one log line per this many seconds about refused strangers
REFRESH_INTERVAL = 300.0  # re-send the subscription with a current `since` this often
PRUNE_INTERVAL = 3600.0


class BunkerUnavailable(Exception):
    """The bunker cannot do this now (no signing node running, no transport key yet)."""


class TooManySessions(Exception):
    """The limit of new sessions per window is reached; ``retry_after`` says in how many seconds to retry."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many new sessions: try again in {retry_after} seconds")
        self.retry_after = retry_after


TOO_MANY_SESSIONS = "too many new sessions, try again later"


@dataclass(frozen=True)
class BunkerOptions:
    """Tunables passed in by the composition root (the node never reads the environment)."""

    relays: tuple[str, ...] = ()  # NIP46_RELAYS; empty = the node's relays
    secret_ttl: float = 600.0
    request_ttl: float = 120.0
    retention_days: int = 30
    max_pending: int = 50  # per session
    client_rate: float = 50.0  # requests per second per paired client
    client_burst: float = 500.0  # a DM inbox opening is a burst of decrypts
    stranger_rate: float = 5.0  # events per second from all unpaired keys together
    clock_skew: int = 300
    auth_url: str | None = None  # base URL of this server: ask-requests are answered with an auth_url first
    publish_timeout: float = 5.0
    connect_wait: float = 5.0
    tick_interval: float = 1.0
    session_limit: int = 120  # NIP46_SESSION_RATE_LIMIT_MAX: new sessions (any origin) per session_window
    session_window: float = 3600.0  # NIP46_SESSION_RATE_LIMIT_WINDOW, seconds


def secret_hash(secret: str) -> str:
    """How pairing secrets are stored and compared: SHA-256 hex (the secrets are 256-bit random)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class Bunker:
    """One NIP-46 remote signer for the group key (one transport key per Igloo server)."""

    def __init__(
        self,
        signer: GroupSigner,
        storage: Nip46Storage,
        *,
        emit: Emit,
        pool_factory: PoolFactory | None = None,
        options: BunkerOptions | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.storage = storage
        self.options = options or BunkerOptions()
        self._emit_raw = emit
        self._clock = clock
        if pool_factory is None:
            from node.transport.pool import RelayPool

            pool_factory = RelayPool
        self._listener = Listener(pool_factory, on_event=self._on_event, clock=clock,
                                  since_skew=self.options.clock_skew)
        self._sk: bytes | None = None
        self.pubkey: str | None = None
        self._sessions: dict[str, Session] = {}
        self._pending: dict[str, RequestRecord] = {}  # pending, or approved and running
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._conv_keys: OrderedDict[str, bytes] = OrderedDict()
        self._buckets: dict[str, TokenBucket] = {}
        self._error_buckets: dict[str, TokenBucket] = {}
        self._strangers = TokenBucket(self.options.stranger_rate, 4 * self.options.stranger_rate,
                                      clock=time.monotonic)
        # New sessions (bunker connect and nostrconnect alike) refill evenly over the window, at most
        # session_limit saved up; a pairing that fails spends nothing.
        self._new_sessions = TokenBucket(self.options.session_limit / self.options.session_window,
                                         self.options.session_limit, clock=clock)
        self._refused = 0
        self._refused_logged_at: float | None = None
        self._group: str | None = None
        self._listening = False
        self._restarted: list[RequestRecord] = []
        self._tasks = BackgroundTasks(self._task_failed)
        self._spawn = self._tasks.spawn  # one reply or request task per inbound event
        self._ticker: asyncio.Task[None] | None = None
        self._last_refresh = 0.0
        self._last_prune = 0.0
        self.started = False
        self.counters: dict[str, int] = {}

    # ------------------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Load the transport key (made on first use) and the sessions, then follow the node."""
        if self.started:
            return
        seckey = self.storage.load_transport_key()
        if seckey is None:
            seckey = _new_seckey()
            self.storage.save_transport_key(seckey)
        self._set_key(seckey)
        self._sessions = {s.client_pubkey: s for s in self.storage.load_sessions()}
        now = self._clock()
        # Requests that were waiting when the server stopped cannot be carried out (their params were never
        # stored): they end now, and their clients are told once the listener is up.
        for record in self.storage.load_requests([PENDING, APPROVED], 10_000):
            record.advance(EXPIRED if record.status == PENDING else FAILED, now, "the signer restarted")
            self.storage.save_request(record)
            self._emit_status(record)
            self._restarted.append(record)
        self.started = True
        self.sync()
        self._ticker = asyncio.ensure_future(self._tick_loop())

    async def stop(self) -> None:
        """Stop listening; waiting requests are answered with an error."""
        if not self.started:
            return
        self.started = False
        if self._ticker is not None:
            self._ticker.cancel()
        for record in list(self._pending.values()):
            if record.status == PENDING:
                self._finish(record, EXPIRED, "the signer is shutting down")
        await self.settle(self.options.publish_timeout)  # let those answers (and others in flight) go out
        self._tasks.cancel_all()
        await self._listener.close()
        self._listening = False

    def _set_key(self, seckey: bytes) -> None:
        self._sk = seckey
        self.pubkey = curve.pubkey_of(seckey)[1:].hex()
        self._conv_keys.clear()

    async def _tick_loop(self) -> None:
        while self.started:
            await asyncio.sleep(self.options.tick_interval)
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the ticker must survive a storage hiccup
                log.warning("nip46: periodic check failed: %s", type(exc).__name__)

    def tick(self) -> None:
        """One periodic pass: follow the node, expire waiting requests, refresh the subscription, prune."""
        self.sync()
        now = self._clock()
        self.expire_due(now)
        if now - self._last_refresh >= REFRESH_INTERVAL:
            self._last_refresh = now
            self._listener.refresh()
        if now - self._last_prune >= PRUNE_INTERVAL:
            self._last_prune = now
            self.storage.prune_requests(now - self.options.retention_days * 86400)
            self.storage.purge_secrets(now)

    def sync(self) -> None:
        """Follow the node: listen while it runs, on the current relays; end sessions of another group key."""
        if not self.started or self.pubkey is None:
            return
        group = self.signer.group_pubkey()
        if group is not None and group != self._group:
            self._group = group
            for session in list(self._sessions.values()):
                if session.user_pubkey != group:
                    self._end_session(session, "ended", "the signer's key changed")
        if group is None:
            if self._listening:
                self._listener.listen(self.pubkey, [])
                self._listening = False
                self.emit("info", "NIP-46 listener stopped (the signing node is not running)", {})
            return
        urls = self.listen_urls()
        changed = urls != self._listener.urls or self._listener.pubkey != self.pubkey
        self._listener.listen(self.pubkey, urls)
        if not self._listening or changed:
            self.emit("info", "NIP-46 listener started" if not self._listening else "NIP-46 relays changed",
                      {"pubkey": self.pubkey, "relays": urls})
        if not self._listening:
            self._listening = True
            for record in self._restarted:
                self._spawn(self._reply(record.client_pubkey, record.request_id, error=record.error or "",
                                        extra_urls=[record.relay]))
            self._restarted.clear()

    @property
    def listening(self) -> bool:
        """True while the listener runs (the node runs)."""
        return self._listening

    def bunker_relays(self) -> list[str]:
        """The relays in bunker links: set through the API, else NIP46_RELAYS, else the node's relays."""
        stored = self.storage.load_relays()
        if stored:
            return stored
        return list(self.options.relays) or self.signer.node_relays()

    def relays_source(self) -> str:
        """Where ``bunker_relays`` comes from: ``custom``, ``env`` or ``node``."""
        if self.storage.load_relays():
            return "custom"
        return "env" if self.options.relays else "node"

    def listen_urls(self) -> list[str]:
        """The bunker relays plus the relays of nostrconnect sessions (used for those sessions only)."""
        urls = self.bunker_relays()
        for session in self._sessions.values():
            urls.extend(session.relays)
        return list(dict.fromkeys(urls))

    def session_relays(self, session: Session) -> list[str]:
        """Where a session's answers go."""
        return list(session.relays) or self.bunker_relays()

    # ------------------------------------------------------------------------------------------ events

    def emit(self, type_: str, message: str, data: Any = None) -> None:
        """One event on the stream, JSON-safe and secret-free (never raises)."""
        with contextlib.suppress(Exception):
            self._emit_raw(type_, message, safe_data(data))

    def _session_event(self, session: Session | None, pubkey: str, change: str, message: str) -> None:
        data: dict[str, Any] = {"session": pubkey, "change": change}
        if session is not None:
            data.update({"status": session.status, "origin": session.origin, "profile": session.profile,
                         "requested": session.requested})
        self.emit("nip46:session_pending", message, data)

    def _request_event(self, record: RequestRecord) -> None:
        message = ("NIP-46 request waiting for approval" if record.status == PENDING
                   else "NIP-46 request accepted by policy")
        self.emit("nip46:request", message, self._request_data(record))

    def _emit_status(self, record: RequestRecord) -> None:
        self.emit("nip46:request_status", f"NIP-46 request {record.status}", self._request_data(record))

    def _request_data(self, record: RequestRecord) -> dict[str, Any]:
        data = record.to_json()
        session = self._sessions.get(record.client_pubkey)
        data["clientName"] = session.profile.get("name", "") if session else ""
        return data

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _note_refused(self) -> None:
        """One log line per minute at most, however many unpaired clients knock."""
        self._refused += 1
        now = time.monotonic()
        if self._refused_logged_at is None or now - self._refused_logged_at >= REFUSAL_LOG_INTERVAL:
            log.warning("nip46: refused %d request(s) from unpaired clients", self._refused)
            self._refused, self._refused_logged_at = 0, now

    # ------------------------------------------------------------------------------------------ inbound

    def _on_event(self, event: Event, url: str) -> None:
        try:
            self._inbound(event, url)
        except Exception as exc:  # one bad message must never stop the listener
            self._count("internal_error")
            log.warning("nip46: could not handle an event: %s", type(exc).__name__)
            log.debug("nip46: traceback", exc_info=exc)

    def _inbound(self, event: Event, url: str) -> None:
        now = self._clock()
        if abs(now - event.created_at) > self.options.clock_skew:
            self._count("stale")
            return
        sender = event.pubkey
        if sender == self.pubkey or self._sk is None:
            return
        session = self._sessions.get(sender)
        if session is None:
            if not self._strangers.take():
                self._count("stranger_dropped")
                self._note_refused()
                return
        elif not self._bucket(sender).take():
            self._count("rate_limited")
            if self._error_bucket(sender).take():
                self._answer_unreadable_later(event, url, "rate limited: too many requests")
            return
        scheme = protocol.transport_scheme(event.content)
        try:
            conv = self._conv_key(sender) if scheme == protocol.NIP44 else None
            plaintext = protocol.open_content(self._sk, sender, event.content, conv)
        except ValueError:
            self._count("undecryptable")
            if session is None:
                self._note_refused()
            return
        try:
            request = protocol.parse_request(plaintext)
        except BadRequest as exc:
            self._count("bad_request")
            if exc.request_id is not None:
                self._spawn(self._reply(sender, exc.request_id, error=f"invalid request: {exc}",
                                        extra_urls=[url], scheme=scheme))
            return
        if scheme == protocol.NIP04:
            self._count("nip04_transport")
            if session is None:
                self._note_refused()
            else:
                log.info("nip46: a paired client sent a NIP-04 encrypted request; answered with an error")
            self._spawn(self._reply(sender, request.id, scheme=protocol.NIP04, extra_urls=[url],
                                    error="NIP-04 encrypted requests are not supported: use NIP-44"))
            return
        if self._replayed(sender, request.id):
            self._count("duplicate")
            return
        if request.method == "connect":
            self._connect(sender, request, url)
            return
        if session is None or session.status != ACTIVE:
            self._count("refused")
            if session is None:
                self._note_refused()
            reason = ("this client is not paired: connect with a bunker:// secret first" if session is None
                      else "this session is paused on the signer")
            self._spawn(self._reply(sender, request.id, error=f"unauthorized: {reason}", extra_urls=[url]))
            return
        session.last_active_at = now
        self._dispatch(session, request, url)

    def _answer_unreadable_later(self, event: Event, url: str, error: str) -> None:
        """Answer a request we did not process (rate limit) when its id can be read."""
        if self._sk is None:
            return
        try:
            conv = self._conv_key(event.pubkey)
            plaintext = protocol.open_content(self._sk, event.pubkey, event.content, conv)
            request = protocol.parse_request(plaintext)
        except ValueError:
            return
        self._spawn(self._reply(event.pubkey, request.id, error=error, extra_urls=[url]))

    def _bucket(self, client: str) -> TokenBucket:
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = TokenBucket(self.options.client_rate, self.options.client_burst,
                                                          clock=time.monotonic)
        return bucket

    def _error_bucket(self, client: str) -> TokenBucket:
        bucket = self._error_buckets.get(client)
        if bucket is None:
            bucket = self._error_buckets[client] = TokenBucket(1.0, 5.0, clock=time.monotonic)
        return bucket

    def _conv_key(self, client: str) -> bytes:
        key = self._conv_keys.get(client)
        if key is None:
            assert self._sk is not None
            key = nip44.conversation_key(self._sk, bytes.fromhex(client))
            self._conv_keys[client] = key
            while len(self._conv_keys) > 1024:
                self._conv_keys.popitem(last=False)
        else:
            self._conv_keys.move_to_end(client)
        return key

    def _replayed(self, client: str, request_id: str) -> bool:
        key = (client, request_id)
        if key in self._seen:
            return True
        self._seen[key] = None
        while len(self._seen) > 10_000:
            self._seen.popitem(last=False)
        return False

    # ------------------------------------------------------------------------------------------ pairing

    def _connect(self, client: str, request: Request, url: str) -> None:
        params = request.params
        secret = params[1].strip() if len(params) > 1 else ""
        requested = [str(p) for p in parse_requested(params[2])] if len(params) > 2 else []
        profile: dict[str, str] = {}
        if len(params) > 3:
            with contextlib.suppress(ValueError, RecursionError):
                profile = client_profile(json.loads(params[3]))
        session = self._sessions.get(client)
        now = self._clock()
        if session is not None:
            # Clients send connect again on every start: already paired means "ack", whatever the secret.
            if (requested and requested != session.requested) or (profile and profile != session.profile):
                session.requested = requested or session.requested
                session.profile = profile or session.profile
                session.updated_at = now
                self.storage.save_session(session)
                self._session_event(session, client, "requested", "NIP-46 client updated its request")
            self._spawn(self._reply(client, request.id, result="ack", extra_urls=[url]))
            return
        group = self.signer.group_pubkey()
        error: str | None = None
        if not secret:
            error = "a secret is required to pair: use a bunker:// link from the signer"
        elif group is None:
            error = "the signer is not running"
        elif self._new_sessions.retry_after() > 0:
            error = TOO_MANY_SESSIONS  # checked before the secret, so the link still works later
            self._count("sessions_limited")
        else:
            outcome = self.storage.use_secret(secret_hash(secret), now, client)
            error = {
                SecretCheck.OK: None,
                SecretCheck.USED: "this secret was already used: ask the signer for a new bunker link",
                SecretCheck.EXPIRED: "this secret has expired: ask the signer for a new bunker link",
            }.get(outcome, "invalid secret: ask the signer for a new bunker link")
        if error is not None or group is None:
            self._count("pairing_refused")
            self._note_refused()
            self._spawn(self._reply(client, request.id, error=f"unauthorized: {error}", extra_urls=[url]))
            return
        self._new_sessions.charge(1.0)
        session = Session(client_pubkey=client, origin=BUNKER, user_pubkey=group, requested=requested,
                          profile=profile, secret_hash=secret_hash(secret), created_at=now, updated_at=now,
                          last_active_at=now)
        self._sessions[client] = session
        self.storage.save_session(session)
        self._session_event(session, client, "paired", "NIP-46 client paired")
        self._spawn(self._reply(client, request.id, result="ack", extra_urls=[url]))

    def new_bunker_link(self) -> dict[str, Any]:
        """A ``bunker://`` link with a new single-use secret (older unused links stop working)."""
        if self.pubkey is None:
            raise BunkerUnavailable("the bunker has not started")
        secret = secrets.token_hex(32)
        now = self._clock()
        expires = now + self.options.secret_ttl
        self.storage.add_secret(secret_hash(secret), now, expires)
        relays = self.bunker_relays()
        return {"uri": bunker_uri(self.pubkey, relays, secret), "pubkey": self.pubkey, "relays": relays,
                "expiresAt": int(expires)}

    async def pair_nostrconnect(self, offer: NostrConnectOffer, grant: list[str]) -> dict[str, Any]:
        """Answer a ``nostrconnect://`` offer: a session on the offer's relays, then the connect response.

        ``grant`` lists the requested permissions the user ticked (others stay at the defaults). Reports
        per relay whether it accepted the response; when none did, the session is removed again.
        Raises :class:`TooManySessions` when the limit of new sessions is reached (a session that replaces
        one of the same client is new too: it gets a new secret and permissions).
        """
        group = self.signer.group_pubkey()
        if group is None or self.pubkey is None or self._sk is None:
            raise BunkerUnavailable("the signing node is not running")
        wait = self._new_sessions.retry_after()
        if wait > 0:
            self._count("sessions_limited")
            raise TooManySessions(wait)
        offered = {str(p): p for p in offer.requested}
        unknown = [g for g in grant if g not in offered]
        if unknown:
            raise ValueError("grant: only permissions the client requested can be granted")
        permissions = Permissions()
        for name in grant:
            permissions = offered[name].grant(permissions)
        now = self._clock()
        previous = self._sessions.get(offer.client_pubkey)
        session = Session(client_pubkey=offer.client_pubkey, origin=NOSTRCONNECT, user_pubkey=group,
                          relays=list(offer.relays), permissions=permissions,
                          requested=[str(p) for p in offer.requested], profile=offer.profile(),
                          secret_hash=secret_hash(offer.secret), created_at=now, updated_at=now)
        self._sessions[offer.client_pubkey] = session
        self.sync()
        subscribed = await self._listener.wait_subscribed(offer.relays, self.options.connect_wait)
        text = protocol.response_text(secrets.token_hex(8), result=offer.secret)
        event = protocol.seal(self._sk, offer.client_pubkey, text, int(self._clock()),
                              conv_key=self._conv_key(offer.client_pubkey))
        accepted = await self._listener.publish(event, offer.relays, self.options.publish_timeout,
                                                wait_all=True)
        relays = [{"url": u, "subscribed": u in subscribed, "accepted": u in accepted} for u in offer.relays]
        if not accepted:
            if previous is not None:
                self._sessions[offer.client_pubkey] = previous
            else:
                self._sessions.pop(offer.client_pubkey, None)
            self.sync()
            return {"accepted": False, "relays": relays, "session": None}
        self._new_sessions.charge(1.0)  # overlapping pairings may leave it in debt: the next ones wait longer
        session.last_active_at = self._clock()
        self.storage.save_session(session)
        self._session_event(session, offer.client_pubkey, "paired", "NIP-46 client paired (nostrconnect)")
        return {"accepted": True, "relays": relays, "session": session.to_json(self.bunker_relays())}

    # ------------------------------------------------------------------------------------------ methods

    def _dispatch(self, session: Session, request: Request, url: str) -> None:
        method, client = request.method, session.client_pubkey
        if method == "switch_relays":
            self._spawn(self._reply(client, request.id, result=json.dumps(self.session_relays(session)),
                                    extra_urls=[url]))
            return
        if method == "logout":
            self._spawn(self._reply(client, request.id, result="ack", extra_urls=[url]))
            self._end_session(session, "logout", "the client logged out")
            return
        if method not in PERMISSION_METHODS:
            self._count("unsupported")
            self._spawn(self._reply(client, request.id, error=f"unsupported method: {method}",
                                    extra_urls=[url]))
            return
        try:
            preview, kind = self._check_params(request)
        except ValueError as exc:
            self._spawn(self._reply(client, request.id, error=str(exc), extra_urls=[url]))
            return
        decision = session.permissions.decide(method, kind)
        if decision is Decision.DENY:
            what = f"{method} of kind {kind}" if kind is not None else method
            self._spawn(self._reply(client, request.id, error=f"denied: this session may not use {what}",
                                    extra_urls=[url]))
            return
        if decision is Decision.ALLOW and method not in WORK_METHODS:
            self._spawn(self._answer_now(session, request, url))
            return
        if self.storage.seen_request(client, request.id):
            self._count("duplicate")
            return
        waiting = sum(1 for r in self._pending.values() if r.client_pubkey == client and r.status == PENDING)
        if decision is Decision.ASK and waiting >= self.options.max_pending:
            self._spawn(self._reply(client, request.id, extra_urls=[url],
                                    error="too many requests are waiting for approval"))
            return
        now = self._clock()
        record = RequestRecord(id=secrets.token_hex(16), client_pubkey=client, request_id=request.id,
                               method=method, status=PENDING, preview=preview, created_at=now,
                               expires_at=now + self.options.request_ttl, relay=url,
                               params=list(request.params))
        if decision is Decision.ALLOW:
            record.status, record.decided_at = APPROVED, now
        self._pending[record.id] = record
        self.storage.save_request(record)
        self._request_event(record)
        if record.status == APPROVED:
            self._spawn(self._execute(record))
        elif self.options.auth_url:
            link = f"{self.options.auth_url.rstrip('/')}/nip46?request={record.id}"
            self._spawn(self._reply(client, request.id, result="auth_url", error=link, extra_urls=[url]))

    def _check_params(self, request: Request) -> tuple[dict[str, Any], int | None]:
        """The approval preview and (for sign_event) the kind; ``ValueError`` for bad params."""
        if request.method == SIGN_EVENT:
            template = protocol.parse_event_template(request.params, self.signer.group_pubkey())
            return template.preview(), template.kind
        if request.method in WORK_METHODS:
            peer, text = protocol.parse_cipher_params(request.method, request.params)
            return {"counterparty": peer, "length": len(text)}, None
        return {}, None

    async def _answer_now(self, session: Session, request: Request, url: str) -> None:
        try:
            result = await self._run(request.method, request.params)
        except (NodeError, ValueError) as exc:
            await self._reply(session.client_pubkey, request.id, error=_message(exc), extra_urls=[url])
            return
        await self._reply(session.client_pubkey, request.id, result=result, extra_urls=[url])

    async def _run(self, method: str, params: list[str]) -> str:
        """Carry out one method through the signer; the result text for the client."""
        if method == "ping":
            return "pong"
        group = self.signer.group_pubkey()
        if group is None:
            raise BunkerUnavailable("the signing node is not running")
        if method == "get_public_key":
            return group
        if method == SIGN_EVENT:
            template: EventTemplate = protocol.parse_event_template(params, group)
            event_id = template.event_id(group)
            sig = await self.signer.sign_event_id(event_id)
            signed = template.signed(group, event_id, sig)
            return json.dumps(signed, separators=(",", ":"), ensure_ascii=False)
        peer, text = protocol.parse_cipher_params(method, params)
        scheme, _, mode = method.partition("_")
        if mode == "encrypt":
            return await self.signer.encrypt(scheme, peer, text)
        return await self.signer.decrypt(scheme, peer, text)

    async def _execute(self, record: RequestRecord) -> None:
        try:
            result = await self._run(record.method, record.params)
        except (NodeError, ValueError, BunkerUnavailable) as exc:
            error = _message(exc)
            await self._reply(record.client_pubkey, record.request_id, error=error, extra_urls=[record.relay])
            self._finish(record, FAILED, error)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the client still gets its one answer
            log.warning("nip46: %s failed: %s", record.method, type(exc).__name__)
            await self._reply(record.client_pubkey, record.request_id, error="internal error",
                              extra_urls=[record.relay])
            self._finish(record, FAILED, "internal error")
            return
        delivered = await self._reply(record.client_pubkey, record.request_id, result=result,
                                      extra_urls=[record.relay])
        if delivered:
            self._finish(record, COMPLETED)
        else:
            self._finish(record, FAILED, "no relay accepted the answer")

    def _finish(self, record: RequestRecord, status: str, error: str | None = None) -> None:
        """Advance, store, drop from memory when final, and emit — once per change."""
        record.advance(status, self._clock(), error)
        if status in (COMPLETED, FAILED, DENIED, EXPIRED):
            self._pending.pop(record.id, None)
        with contextlib.suppress(Exception):
            self.storage.save_request(record)
        self._emit_status(record)
        if status in (DENIED, EXPIRED) and error is not None:
            self._spawn(self._reply(record.client_pubkey, record.request_id, error=error,
                                    extra_urls=[record.relay]))

    # ------------------------------------------------------------------------------------------ approvals

    def pending(self) -> list[RequestRecord]:
        """Requests waiting for a decision, oldest first."""
        return sorted((r for r in self._pending.values() if r.status == PENDING), key=lambda r: r.created_at)

    def decide(self, record_id: str, action: str) -> RequestRecord:
        """Approve or deny a waiting request (optionally remembering the choice for its kind or method).

        ``KeyError`` when unknown, ``InvalidTransition`` when it is no longer pending, ``ValueError`` for a
        bad action.
        """
        if action not in ACTIONS:
            raise ValueError(f"action: must be one of {', '.join(ACTIONS)}")
        record = self._pending.get(record_id)
        if record is None:
            stored = self.storage.get_request(record_id)
            if stored is None:
                raise KeyError(record_id)
            raise InvalidTransition(f"request is {stored.status}; it can no longer be decided")
        if record.status != PENDING:
            raise InvalidTransition(f"request is {record.status}; it can no longer be decided")
        if action.startswith("always_"):
            session = self._sessions.get(record.client_pubkey)
            if session is not None:
                self._remember(session, record, Decision.ALLOW if action == "always_allow" else Decision.DENY)
        if record.status != PENDING:  # settled by the remembered choice
            return record
        if action in ("approve", "always_allow"):
            self._approve(record)
        else:
            self._finish(record, DENIED, "denied by the signer's owner")
        return record

    def _approve(self, record: RequestRecord) -> None:
        record.advance(APPROVED, self._clock())
        with contextlib.suppress(Exception):
            self.storage.save_request(record)
        self._emit_status(record)
        self._spawn(self._execute(record))

    def _remember(self, session: Session, record: RequestRecord, decision: Decision) -> None:
        """Store "always" for this request's kind (sign_event) or method; settle the requests it covers."""
        kind = record.preview.get("kind") if record.method == SIGN_EVENT else None
        patch = ({"kinds": {str(kind): decision.value}} if isinstance(kind, int)
                 else {"methods": {record.method: decision.value}})
        self.set_policy(session.client_pubkey, patch)
        for other in self.pending():
            if other.client_pubkey != session.client_pubkey:
                continue
            other_kind = other.preview.get("kind") if other.method == SIGN_EVENT else None
            kind_of = other_kind if isinstance(other_kind, int) else None
            verdict = session.permissions.decide(other.method, kind_of)
            if verdict is Decision.ALLOW:
                self._approve(other)
            elif verdict is Decision.DENY:
                self._finish(other, DENIED, "denied by the signer's owner")

    def expire_due(self, now: float | None = None) -> int:
        """Expire requests whose time ran out (their clients get an error); how many."""
        now = self._clock() if now is None else now
        due = [r for r in self._pending.values() if r.status == PENDING and r.expires_at <= now]
        reason = f"request expired: not approved within {int(self.options.request_ttl)} s"
        for record in due:
            self._finish(record, EXPIRED, reason)
        return len(due)

    def requests(self, statuses: list[str] | None = None, limit: int = 100) -> list[RequestRecord]:
        """Stored requests, newest first."""
        return self.storage.load_requests(statuses, limit)

    def delete_request(self, record_id: str) -> bool:
        """Forget a finished request; ``InvalidTransition`` while it is still pending or running."""
        if record_id in self._pending:
            raise InvalidTransition("request is still open: decide it first")
        return self.storage.delete_request(record_id)

    # ------------------------------------------------------------------------------------------ sessions

    def sessions(self) -> list[Session]:
        """Every session, newest first."""
        return sorted(self._sessions.values(), key=lambda s: s.created_at, reverse=True)

    def session(self, client_pubkey: str) -> Session | None:
        """One session."""
        return self._sessions.get(client_pubkey)

    def set_policy(self, client_pubkey: str, patch: object) -> Session:
        """Apply a permissions patch; ``KeyError`` unknown session, ``ValueError`` bad patch."""
        session = self._sessions.get(client_pubkey)
        if session is None:
            raise KeyError(client_pubkey)
        session.permissions = session.permissions.patched(patch)
        session.updated_at = self._clock()
        self.storage.save_session(session)
        self._session_event(session, client_pubkey, "policy", "NIP-46 session permissions changed")
        return session

    def set_status(self, client_pubkey: str, status: str) -> Session | None:
        """``active`` / ``paused`` (``pending`` is taken as paused) / ``revoked`` (ends it for good)."""
        session = self._sessions.get(client_pubkey)
        if session is None:
            raise KeyError(client_pubkey)
        status = PAUSED if status == "pending" else status
        if status == "revoked":
            self._end_session(session, "revoked", "session revoked on the signer")
            return None
        if status not in (ACTIVE, PAUSED):
            raise ValueError('status: must be "active", "paused" or "revoked"')
        if session.status != status:
            session.status, session.updated_at = status, self._clock()
            self.storage.save_session(session)
            self._session_event(session, client_pubkey, status, f"NIP-46 session {status}")
        return session

    def revoke(self, client_pubkey: str) -> bool:
        """End a session for good (the client must pair again with a new secret); False when unknown."""
        session = self._sessions.get(client_pubkey)
        if session is None:
            return False
        self._end_session(session, "revoked", "session revoked on the signer")
        return True

    def _end_session(self, session: Session, change: str, reason: str) -> None:
        client = session.client_pubkey
        self._sessions.pop(client, None)
        self._buckets.pop(client, None)
        self._error_buckets.pop(client, None)
        self.storage.delete_session(client)
        for record in list(self._pending.values()):
            if record.client_pubkey == client and record.status == PENDING:
                self._finish(record, DENIED, reason)
        self._session_event(None, client, change, f"NIP-46 session ended: {reason}")
        if session.relays:
            self.sync()

    async def rotate_transport_key(self) -> str:
        """A new transport key: every session ends, every link stops working, the listener restarts."""
        seckey = _new_seckey()
        self.storage.save_transport_key(seckey)
        for session in list(self._sessions.values()):
            self._end_session(session, "ended", "the signer's transport key was rotated")
        self.storage.purge_secrets(float("inf"))
        self._set_key(seckey)
        self.sync()
        self.emit("info", "NIP-46 transport key rotated", {"pubkey": self.pubkey})
        assert self.pubkey is not None
        return self.pubkey

    def set_relays(self, relays: object, *, merge: bool = False) -> list[str]:
        """Store the bunker relays (None or [] = back to the default) and listen on them now.

        ``relays`` is checked here (``ValueError`` naming ``relays``); ``merge`` adds to the current list.
        """
        urls = relay_urls(relays, "relays", MAX_RELAYS)
        if merge:
            urls = relay_urls([*self.bunker_relays(), *urls], "relays", MAX_RELAYS)
        self.storage.save_relays(urls or None)
        self.sync()
        return self.bunker_relays()

    # ------------------------------------------------------------------------------------------ replies

    async def _reply(self, client: str, request_id: str, *, result: str = "", error: str | None = None,
                     extra_urls: list[str] | None = None, scheme: str = protocol.NIP44) -> bool:
        """Send one response; True when a relay accepted it."""
        if self._sk is None:
            return False
        session = self._sessions.get(client)
        urls = (self.session_relays(session) if session is not None else []) + list(extra_urls or [])
        text = protocol.response_text(request_id, result, error)
        conv = self._conv_key(client) if scheme == protocol.NIP44 else None
        event = protocol.seal(self._sk, client, text, int(self._clock()), scheme=scheme, conv_key=conv)
        accepted = await self._listener.publish(event, urls, self.options.publish_timeout)
        if not accepted:
            self._count("reply_not_accepted")
        return bool(accepted)

    def _task_failed(self, exc: BaseException) -> None:
        self._count("task_error")
        log.warning("nip46: background task failed: %s", type(exc).__name__)

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until no reply or request task is running (tests and shutdown)."""
        await self._tasks.settle(timeout)

    # ------------------------------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """``{pubkey, relays, relaysSource, listening, relayStatus, sessions, pending}``."""
        return {
            "pubkey": self.pubkey,
            "relays": self.bunker_relays(),
            "relaysSource": self.relays_source(),
            "listening": self._listening,
            "relayStatus": self._listener.status(),
            "sessions": len(self._sessions),
            "pending": len(self.pending()),
        }


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    return text[:300] if text else type(exc).__name__


def _new_seckey() -> bytes:
    while True:
        seckey = secrets.token_bytes(32)
        if curve.is_valid_seckey(seckey):
            return seckey

