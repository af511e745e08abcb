"""The node's REST API (Igloo Server paths and shapes) and the configure page.

Handlers stay thin: parse and check input (4xx naming the field), call one node method, map
node errors to status codes (503 no node / not enough peers, 504 timeout, 502 wrong answers).
Credentials are accepted here and never returned by any endpoint.
"""

from __future__ import annotations

from typing import Any

import tornado.web

from handlers.base import ApiHandler, BaseHandler, node_error_status
from node import (
    NodeError,
    NodeManager,
    NodeService,
    compute_event_id,
    keytools,
    nip04,
    nip44,
    normalize_pubkey,
    queue_for,
    validate_credentials,
    validate_relays,
)

MAX_BODY = 64 * 1024


class NodeApi(ApiHandler):
    """Base for the node endpoints: the manager, the running service, JSON bodies, error mapping."""

    @property
    def manager(self) -> NodeManager:
        """The server's NodeManager (``settings['node']``)."""
        manager = self.node
        if manager is None:
            raise tornado.web.HTTPError(503, reason="Node not available")
        return manager  # type: ignore[no-any-return]

    def service(self) -> NodeService:
        """The running node, or a 503."""
        service = self.manager.service
        if service is None or not service.active:
            raise tornado.web.HTTPError(503, reason="Node not available")
        return service

    def body(self) -> dict[str, Any]:
        """The JSON object body (413 when too large)."""
        if len(self.request.body or b"") > MAX_BODY:
            raise tornado.web.HTTPError(413, reason="Request too large")
        return self.read_json()

    def fail(self, status: int, message: str, **extra: Any) -> None:
        """Finish with ``{error, ...}``."""
        self.write_json({"error": message, **extra}, status=status)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Node unavailability (503) keeps its reason; other errors as the base class says."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if status_code in (502, 503, 504) and isinstance(exc, tornado.web.HTTPError) and exc.reason:
            self.finish({"error": exc.reason})
            return
        super().write_error(status_code, **kwargs)

    def node_error(self, exc: NodeError) -> None:
        """Map a node failure to its status code."""
        self.fail(node_error_status(exc), str(exc) or type(exc).__name__)


def _peer_param(raw: str) -> str:
    try:
        return normalize_pubkey(tornado.escape.url_unescape(raw))
    except ValueError:
        raise tornado.web.HTTPError(400, reason="Peer pubkey must be a 64-character hex string") from None


class PeersApi(NodeApi):
    """GET /api/peers: every peer with status and policy."""

    def get(self) -> None:
        """``{peers, total, online}``."""
        peers = self.service().peers_json()
        self.write_json({"peers": peers, "total": len(peers), "online": sum(1 for p in peers if p["online"])})


class PeersSelfApi(NodeApi):
    """GET /api/peers/self."""

    def get(self) -> None:
        """``{pubkey, warnings}`` of this share."""
        self.write_json({"pubkey": self.service().pubkey, "warnings": []})


class PeersGroupApi(NodeApi):
    """GET /api/peers/group."""

    def get(self) -> None:
        """``{pubkey, threshold, totalShares}`` (x-only group key)."""
        service = self.service()
        self.write_json(
            {
                "pubkey": service.group_pubkey,
                "threshold": service.threshold,
                "totalShares": len(service.group.commits),
            }
        )


class PeerPoliciesApi(NodeApi):
    """GET /api/peers/policies."""

    def get(self) -> None:
        """Explicit policies, Igloo Server's shape."""
        service = self.service()
        policies = [service.policies.summary(pk) for pk in service.peers if service.policies.explicit(pk)]
        self.write_json({"policies": policies})


class PeerPolicyApi(NodeApi):
    """GET/PUT/DELETE /api/peers/{pubkey}/policy."""

    def _peer(self, raw: str) -> tuple[NodeService, str]:
        service = self.service()
        pubkey = _peer_param(raw)
        if pubkey not in service.peers:
            raise tornado.web.HTTPError(404, reason="Peer is not a member of this group")
        return service, pubkey

    def get(self, raw: str) -> None:
        """``{policy}``."""
        service, pubkey = self._peer(raw)
        self.write_json({"policy": service.policies.summary(pubkey)})

    def put(self, raw: str) -> None:
        """Body ``{allowSend?, allowReceive?}`` (at least one boolean)."""
        service, pubkey = self._peer(raw)
        body = self.body()
        send, recv = body.get("allowSend"), body.get("allowReceive")
        send = send if isinstance(send, bool) else None
        recv = recv if isinstance(recv, bool) else None
        if send is None and recv is None:
            self.fail(400, "Policy update requires allowSend and/or allowReceive")
            return
        service.policies.set(pubkey, send=send, recv=recv)
        summary = service.policies.summary(pubkey)
        self.events.publish(
            "info",
            "Peer policy updated",
            {"pubkey": pubkey, "allowSend": summary["allowSend"], "allowReceive": summary["allowReceive"]},
        )
        self.write_json({"policy": summary})

    def delete(self, raw: str) -> None:
        """Back to the default policy; 404 when none was set."""
        service, pubkey = self._peer(raw)
        if not service.policies.remove(pubkey):
            self.fail(404, "Policy not found")
            return
        self.events.publish("info", "Peer policy removed", {"pubkey": pubkey})
        self.write_json({"removed": True, "policy": service.policies.summary(pubkey)})


class PingApi(NodeApi):
    """POST /api/peers/ping ``{target: "all" | pubkey}``."""

    async def post(self) -> None:
        """Ping one or every peer."""
        service = self.service()
        target = self.body().get("target")
        if target == "all":
            self.write_json({"results": await service.ping_all()})
            return
        if not isinstance(target, str):
            self.fail(400, "Invalid target parameter")
            return
        pubkey = _peer_param(target)
        if pubkey not in service.peers:
            self.fail(404, "Peer is not a member of this group")
            return
        try:
            _, latency = await service.ping(pubkey)
        except NodeError as exc:
            status = service.peer_table.status_json(pubkey)
            self.write_json({"pubkey": pubkey, "success": False, "error": str(exc), "status": status})
            return
        self.write_json(
            {
                "pubkey": pubkey,
                "success": True,
                "latency": round(latency, 1),
                "status": service.peer_table.status_json(pubkey),
            }
        )


def _hex64(value: object) -> str:
    if not isinstance(value, str) or len(value) != 64 or set(value.lower()) - set("0123456789abcdef"):
        raise ValueError("message: expected a 32-byte hex event id (or an event object)")
    return value.lower()


def event_id_for(service: NodeService, event: object) -> str:
    """The NIP-01 id of an event template signed by the group key; ``ValueError`` names the field."""
    if not isinstance(event, dict):
        raise ValueError("event: expected an object")
    kind, created_at = event.get("kind"), event.get("created_at")
    if not isinstance(kind, int) or isinstance(kind, bool) or not 0 <= kind <= 65535:
        raise ValueError("event.kind: must be an integer 0..65535")
    if not isinstance(created_at, int) or isinstance(created_at, bool) or created_at <= 0:
        raise ValueError("event.created_at: must be a positive integer timestamp")
    tags = event.get("tags", [])
    if not isinstance(tags, list) or not all(
        isinstance(t, list) and all(isinstance(x, str) for x in t) for t in tags
    ):
        raise ValueError("event.tags: must be a list of lists of strings")
    content = event.get("content", "")
    if not isinstance(content, str):
        raise ValueError("event.content: must be a string")
    pubkey = event.get("pubkey")
    if pubkey is not None and (not isinstance(pubkey, str) or pubkey.lower() != service.group_pubkey):
        raise ValueError("event.pubkey: must be the group pubkey (or omitted)")
    return compute_event_id(service.group_pubkey, created_at, kind, tags, content)


class SignApi(NodeApi):
    """POST /api/sign ``{message: hex64}`` or ``{event: {...}}`` → ``{id, signature}``."""

    async def post(self) -> None:
        """Threshold-sign one message or event id."""
        service = self.service()
        body = self.body()
        try:
            if "event" in body and body["event"] is not None:
                msg_id = event_id_for(service, body["event"])
            else:
                msg_id = _hex64(body.get("message"))
        except ValueError as exc:
            self.fail(400, str(exc))
            return
        try:
            # Concurrent requests share batched sessions: one co-signer message per batch, not per request.
            entry = await queue_for(service).sign(msg_id, service.options.sign_timeout)
        except NodeError as exc:
            self.node_error(exc)
            return
        except ValueError:
            self.fail(502, "invalid signature response from node")
            return
        response: dict[str, Any] = {"id": msg_id, "signature": entry[2]}
        if "event" in body and body["event"] is not None:
            response["event"] = {
                **{
                    k: body["event"][k]
                    for k in ("kind", "created_at", "tags", "content")
                    if k in body["event"]
                },
                "pubkey": service.group_pubkey,
                "id": msg_id,
                "sig": entry[2],
            }
        self.write_json(response)


class CipherApi(NodeApi):
    """POST /api/nip44/(encrypt|decrypt) and /api/nip04/(encrypt|decrypt) via threshold ECDH.

    Body ``{peer_pubkey, content}`` (``pubkey`` also accepted) → ``{result}``. NIP-44 uses the
    HKDF conversation key of the shared x; NIP-04 uses the raw shared x as the AES key.
    """

    async def post(self, scheme: str, mode: str) -> None:
        """Encrypt or decrypt ``content`` with the peer."""
        service = self.service()
        body = self.body()
        raw_peer = body.get("peer_pubkey", body.get("pubkey"))
        try:
            peer = normalize_pubkey(raw_peer)
        except ValueError:
            self.fail(400, "peer_pubkey: must be a 64-hex x-only (or 66-hex compressed) public key")
            return
        content = body.get("content")
        if not isinstance(content, str) or (mode == "encrypt" and not content and scheme == "nip44"):
            self.fail(400, "content: must be a non-empty string")
            return
        try:
            shared = await service.ecdh(peer)
        except NodeError as exc:
            self.node_error(exc)
            return
        except ValueError as exc:
            self.fail(400, f"peer_pubkey: {exc}")
            return
        shared_x = shared[1:]
        try:
            if scheme == "nip44":
                key = nip44.conversation_key_from_shared_x(shared_x)
                result = nip44.encrypt_gen(key, content) if mode == "encrypt" else nip44.decrypt(key, content)
            else:
                result = (
                    nip04.encrypt_gen(shared_x, content)
                    if mode == "encrypt"
                    else nip04.decrypt(shared_x, content)
                )
        except ValueError as exc:
            self.fail(400, f"content: {exc}")
            return
        self.write_json({"result": result})


class RecoverApi(NodeApi):
    """POST /api/recover ``{groupCredential, shareCredentials}`` → ``{success, nsec, details}``."""

    def post(self) -> None:
        """Recover the group secret from threshold shares (sensitive: authenticated, no-store)."""
        body = self.body()
        group, shares = body.get("groupCredential"), body.get("shareCredentials")
        if (
            not isinstance(group, str)
            or not isinstance(shares, list)
            or not all(isinstance(s, str) for s in shares)
        ):
            self.write_json(
                {"success": False, "error": "Missing or invalid groupCredential or shareCredentials"},
                status=400,
            )
            return
        try:
            nsec = keytools.recover(group, shares)
        except ValueError as exc:
            self.write_json({"success": False, "error": str(exc)}, status=400)
            return
        self.events.publish("warn", "Secret key recovered through the API", {"sharesUsed": len(shares)})
        self.write_json({"success": True, "nsec": nsec, "details": {"sharesUsed": len(shares)}})


class RecoverValidateApi(NodeApi):
    """POST /api/recover/validate ``{type: "group"|"share", credential}``."""

    def post(self) -> None:
        """``{success, validation: {isValid, message}, decoded}``."""
        from node.crypto.credentials import decode_group, decode_share

        body = self.body()
        kind, credential = body.get("type"), body.get("credential")
        if not kind or not isinstance(credential, str):
            self.write_json({"success": False, "error": "Missing type or credential"}, status=400)
            return
        decoded: dict[str, Any] | None = None
        try:
            if kind == "group":
                group = decode_group(credential.strip())
                decoded = {"threshold": group.threshold, "totalShares": len(group.commits), "idx": None}
            elif kind == "share":
                decoded = {
                    "threshold": None,
                    "totalShares": None,
                    "idx": decode_share(credential.strip()).idx,
                }
            else:
                self.write_json(
                    {"success": False, "error": 'Invalid type. Must be "group" or "share"'}, status=400
                )
                return
            validation = {"isValid": True, "message": f"Valid {kind} credential"}
        except ValueError:
            validation = {"isValid": False, "message": f"Invalid {kind} credential"}
        self.write_json({"success": True, "validation": validation, "decoded": decoded})


class EnvApi(NodeApi):
    """GET/POST /api/env: presence flags and relays out, ``{GROUP_CRED, SHARE_CRED, RELAYS}`` in."""

    def get(self) -> None:
        """Never the credentials: only whether they exist, and the relays."""
        manager = self.manager
        self.write_json(
            {
                "RELAYS": manager.relays(),
                "hasCredentials": manager.has_credentials(),
                "credentialsSource": manager.source,
                "FROSTR_SIGN_TIMEOUT": manager.options.sign_timeout,
            }
        )

    async def post(self) -> None:
        """Validate (decode + share-in-group), store encrypted, restart the node."""
        body = self.body()
        allowed = {"GROUP_CRED", "SHARE_CRED", "RELAYS"}
        rejected = sorted(k for k in body if k not in allowed)
        try:
            relays = validate_relays(body.get("RELAYS")) if "RELAYS" in body else None
            if "GROUP_CRED" not in body and "SHARE_CRED" not in body:
                if relays is None:
                    raise ValueError("GROUP_CRED: required (with SHARE_CRED)")
                await self.manager.update_relays(relays)
            else:
                validate_credentials(body.get("GROUP_CRED"), body.get("SHARE_CRED"))
                await self.manager.apply_credentials(body["GROUP_CRED"], body["SHARE_CRED"], relays)
        except ValueError as exc:
            self.write_json({"success": False, "error": str(exc)}, status=400)
            return
        message = "Environment variables updated"
        if rejected:
            message += f". Rejected unauthorized keys: {', '.join(rejected)}"
        self.write_json(
            {"success": True, "message": message, **({"rejectedKeys": rejected} if rejected else {})}
        )


class ApprovalsApi(NodeApi):
    """GET /api/approvals: requests waiting for a decision."""

    def get(self) -> None:
        """``{approvals: [...], approvalMode}``."""
        service = self.service()
        self.write_json(
            {
                "approvals": [a.to_json() for a in service.approvals.pending()],
                "approvalMode": service.options.approval_mode,
            }
        )


class ApprovalApi(NodeApi):
    """POST /api/approvals/{id} ``{action: "approve"|"deny"}`` (or ``{approve: bool}``)."""

    def post(self, approval_id: str) -> None:
        """Decide one pending request."""
        service = self.service()
        body = self.body()
        action = body.get("action")
        if isinstance(body.get("approve"), bool):
            action = "approve" if body["approve"] else "deny"
        if action not in ("approve", "deny"):
            self.fail(400, 'action: must be "approve" or "deny"')
            return
        if not service.decide(approval_id, action == "approve"):
            self.fail(404, "Approval not found or already decided")
            return
        self.write_json({"success": True, "id": approval_id, "action": action})


class DemoApi(NodeApi):
    """POST /api/demo/start: the first-run demo group on the embedded relay."""

    async def post(self) -> None:
        """Start the demo (409 when credentials exist or it is disabled)."""
        manager = self.manager
        if manager.demo and manager.service is not None:
            self.write_json({"success": True, "demo": True, "groupPubkey": manager.service.group_pubkey})
            return
        relay = f"ws://127.0.0.1:{self.config.host_port}/"
        try:
            service = await manager.start_demo(relay)
        except ValueError as exc:
            self.fail(409, str(exc))
            return
        self.write_json({"success": True, "demo": True, "groupPubkey": service.group_pubkey})


class ConfigurePage(BaseHandler):
    """GET/POST /configure: credentials and relays in a form (XSRF-protected)."""

    def get(self) -> None:
        """Show the form (never pre-filled with credentials)."""
        if not self.require_page_auth():
            return
        self._show()

    def _show(self, error: str | None = None, saved: bool = False, status: int = 200) -> None:
        manager: NodeManager | None = self.node
        self.set_status(status)
        self.render_page(
            "configure.html",
            error=error,
            saved=saved,
            has_credentials=bool(manager and manager.has_credentials()),
            relays="\n".join(manager.relays() if manager else []),
            status=manager.status() if manager else {},
        )

    async def post(self) -> None:
        """Validate and apply; re-show the form with the error naming the field."""
        if not self.require_page_auth():
            return
        manager: NodeManager | None = self.node
        if manager is None:
            raise tornado.web.HTTPError(503, reason="Node not available")
        group = self.get_body_argument("group_cred", "")
        share = self.get_body_argument("share_cred", "")
        relays_text = self.get_body_argument("relays", "")
        try:
            relays = validate_relays([line for line in relays_text.replace(",", "\n").splitlines()])
            await manager.apply_credentials(group, share, relays or None)
        except ValueError as exc:
            self._show(error=str(exc), status=400)
            return
        self._show(saved=True)


ROUTES: list[tuple[Any, ...]] = [
    (r"/configure", ConfigurePage),
    (r"/api/peers", PeersApi),
    (r"/api/peers/self", PeersSelfApi),
    (r"/api/peers/group", PeersGroupApi),
    (r"/api/peers/policies", PeerPoliciesApi),
    (r"/api/peers/ping", PingApi),
    (r"/api/peers/([^/]+)/policy", PeerPolicyApi),
    (r"/api/sign", SignApi),
    (r"/api/(nip44|nip04)/(encrypt|decrypt)", CipherApi),
    (r"/api/recover", RecoverApi),
    (r"/api/recover/validate", RecoverValidateApi),
    (r"/api/env", EnvApi),
    (r"/api/approvals", ApprovalsApi),
    (r"/api/approvals/([A-Za-z0-9-]{1,64})", ApprovalApi),
    (r"/api/demo/start", DemoApi),
]
