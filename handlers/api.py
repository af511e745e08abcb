"""The node's REST API (Igloo Server paths and shapes).

Handlers stay thin: parse input (4xx naming the field), call one node method, map node errors to
status codes (``handlers.base.node_error_status``: 503 no node / not enough peers, 504 timeout, 502
wrong answers). Credentials are accepted here and never returned by any endpoint.
"""

from __future__ import annotations

from typing import Any

import tornado.web

from handlers.base import ApiHandler, node_error_status
from node import Event, NodeError, NodeManager, NodeService, keytools, validate, validate_credentials

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

    def require_change_rights(self) -> None:
        """The one gate in front of every write to the signer's relays and peer policies (the dashboard's
        relay editor, policy toggles and reset, ``PUT/DELETE /api/relays``, ``POST /api/env {RELAYS}``).

        Authentication is already checked in ``prepare``; a role check belongs here, raising
        ``tornado.web.HTTPError(403)`` for a caller who may not change them.
        """


def _peer_param(raw: str, field: str) -> str:
    """A peer pubkey from the path or the body, x-only; 400 naming ``field`` otherwise."""
    try:
        return validate.xonly_pubkey(tornado.escape.url_unescape(raw), field)
    except ValueError as exc:
        raise tornado.web.HTTPError(400, reason=str(exc)) from None


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
        pubkey = _peer_param(raw, "pubkey")
        if pubkey not in service.peers:
            raise tornado.web.HTTPError(404, reason="Peer is not a member of this group")
        return service, pubkey

    def get(self, raw: str) -> None:
        """``{policy}``."""
        service, pubkey = self._peer(raw)
        self.write_json({"policy": service.policies.summary(pubkey)})

    def put(self, raw: str) -> None:
        """Body ``{allowSend?, allowReceive?}`` (at least one boolean)."""
        self.require_change_rights()
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
        self.require_change_rights()
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
        pubkey = _peer_param(target, "target")
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


class SignApi(NodeApi):
    """POST /api/sign ``{message: hex64}`` or ``{event: {...}}`` → ``{id, signature}`` (+ ``event``)."""

    async def post(self) -> None:
        """Threshold-sign one message or event template."""
        service = self.service()
        body = self.body()
        template = body.get("event")
        event: Event | None = None
        try:
            if template is not None:
                event = await service.sign_event(template)
                msg_id, signature = event.id, event.sig
            else:
                msg_id, _, signature = await service.sign_message(body.get("message"))
        except NodeError as exc:
            self.node_error(exc)
            return
        except ValueError as exc:
            self.fail(400, str(exc))
            return
        response: dict[str, Any] = {"id": msg_id, "signature": signature}
        if event is not None:
            signed = event.to_json()
            # The template's fields as sent (tags and content only when given), then pubkey, id and sig.
            response["event"] = {
                **{k: signed[k] for k in ("kind", "created_at", "tags", "content") if k in body["event"]},
                "pubkey": event.pubkey,
                "id": event.id,
                "sig": event.sig,
            }
        self.write_json(response)


class CipherApi(NodeApi):
    """POST /api/nip44/(encrypt|decrypt) and /api/nip04/(encrypt|decrypt) via threshold ECDH.

    Body ``{peer_pubkey, content}`` (``pubkey`` also accepted) → ``{result}``; ``NodeService.encrypt`` /
    ``decrypt`` do the ECDH round and the scheme's key derivation.
    """

    async def post(self, scheme: str, mode: str) -> None:
        """Encrypt or decrypt ``content`` with the peer."""
        service = self.service()
        body = self.body()
        peer, content = body.get("peer_pubkey", body.get("pubkey")), body.get("content")
        run = service.encrypt if mode == "encrypt" else service.decrypt
        try:
            result = await run(scheme, peer, content)
        except NodeError as exc:
            self.node_error(exc)
            return
        except ValueError as exc:
            self.fail(400, str(exc))
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
        body = self.body()
        kind, credential = body.get("type"), body.get("credential")
        if not kind or not isinstance(credential, str):
            self.write_json({"success": False, "error": "Missing type or credential"}, status=400)
            return
        if kind not in ("group", "share"):
            error = 'Invalid type. Must be "group" or "share"'
            self.write_json({"success": False, "error": error}, status=400)
            return
        decoded: dict[str, Any] | None = None
        try:
            decoded = keytools.describe_credential(kind, credential)
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
                "FROSTR_SIGN_TIMEOUT": round(manager.options.sign_timeout * 1000),  # milliseconds
            }
        )

    async def post(self) -> None:
        """Validate (decode + share-in-group), store encrypted, restart the node; or move it to ``RELAYS``."""
        body = self.body()
        allowed = {"GROUP_CRED", "SHARE_CRED", "RELAYS"}
        rejected = sorted(k for k in body if k not in allowed)
        try:
            relays = validate.relay_urls(body.get("RELAYS")) if "RELAYS" in body else None
            if "GROUP_CRED" not in body and "SHARE_CRED" not in body:
                if relays is None:
                    raise ValueError("GROUP_CRED: required (with SHARE_CRED)")
                self.require_change_rights()
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


ROUTES: list[tuple[Any, ...]] = [
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
