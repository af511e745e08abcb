"""The node's REST API (Igloo Server paths and shapes).

Handlers stay thin: parse input (4xx naming the field), call one node method, map node errors to
status codes (``handlers.base.node_error_status``: 503 no node / not enough peers, 504 timeout, 502
wrong answers). Credentials are accepted here and never returned by any endpoint.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import tornado.web

from handlers.base import ApiHandler, node_error_status
from handlers.keys import keyset_name, recovery_wait
from handlers.openapi import ANY_OBJECT, BOOL, ERROR, HEX64, INT, NUM, STR, arr, enum, nullable, obj, op
from handlers.roles import READ, USER
from handlers.throttle import ENV_WRITE, RECOVERY, SIGN
from node import Event, NodeError, NodeService, keytools, validate, validate_credentials

PEER_SCHEMA = obj({"pubkey": STR, "online": BOOL}, ["pubkey", "online"], additionalProperties=True)
POLICY_SCHEMA = obj({"pubkey": STR, "allowSend": BOOL, "allowReceive": BOOL},
                    ["pubkey", "allowSend", "allowReceive"], additionalProperties=True)


INVALID_JSON_MESSAGE = "Invalid JSON body"


def iso_time(stamp: float) -> str:
    """Unix seconds as ISO-8601 UTC with milliseconds and ``Z`` (Igloo Server's timestamps)."""
    return datetime.fromtimestamp(stamp, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_now() -> str:
    """The current time as ``iso_time`` writes it."""
    return iso_time(datetime.now(UTC).timestamp())


class NodeApi(ApiHandler):
    """Base for the node endpoints: the manager, the running service, JSON bodies, error mapping.

    A route that sets ``error_codes`` (status → Igloo Server's ``code``) answers every error as
    ``{code, error}``, including the 401 of ``prepare`` and the errors of ``write_error``.
    """

    error_codes: ClassVar[dict[int, str]] = {}

    def service(self) -> NodeService:
        """The running node, or a 503."""
        service = self.manager.service
        if service is None or not service.active:
            raise tornado.web.HTTPError(503, reason="Node not available")
        return service


    def error_code(self, status: int, message: str) -> str | None:
        """Igloo Server's ``code`` for an error of this route (None when the route has no codes)."""
        if not self.error_codes:
            return None
        if message == INVALID_JSON_MESSAGE:
            return "INVALID_JSON"
        if message.startswith("Storage unavailable"):
            return "STORAGE_UNAVAILABLE"
        return self.error_codes.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")

    def write_json(self, body: object, status: int = 200) -> None:
        """Send JSON; an error body of a route with codes gets its ``code``."""
        if status >= 400 and isinstance(body, dict) and "error" in body and "code" not in body:
            code = self.error_code(status, str(body["error"]))
            if code is not None:
                body = {"code": code, **body}
        super().write_json(body, status)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Node unavailability (503) keeps its reason; other errors as the base class says."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if status_code in (502, 503, 504) and isinstance(exc, tornado.web.HTTPError) and exc.reason:
            self.write_json({"error": exc.reason}, status=status_code)
            return
        super().write_error(status_code, **kwargs)

    def node_error(self, exc: NodeError) -> None:
        """Map a node failure to its status code."""
        self.fail(node_error_status(exc), str(exc) or type(exc).__name__)

    def require_change_rights(self) -> None:
        """The one gate in front of every write to the signer's relays and peer policies (the dashboard's
        relay editor, policy toggles and reset, ``PUT/DELETE /api/relays``, ``POST /api/env {RELAYS}``).

        Only administrators change them (403 otherwise): the route's ``access`` cannot say so where the same
        method also serves users (a relays-only ``POST /api/env`` next to credentials, policy reads).
        """
        self.require_admin()


# Igloo Server's error codes on /api/sign (src/routes/sign.ts), by status.
SIGN_ERROR_CODES = {
    400: "BAD_REQUEST", 401: "AUTH_REQUIRED", 403: "FORBIDDEN", 413: "REQUEST_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE", 429: "RATE_LIMITED", 500: "SIGN_ERROR", 502: "SIGN_FAILED",
    503: "NODE_UNAVAILABLE", 504: "SIGN_TIMEOUT",
}
# The NIP-44/NIP-04 routes: Igloo Server sends no codes there; Igloo uses the same vocabulary, ECDH_* for
# the co-signers' part.
CIPHER_ERROR_CODES = {**SIGN_ERROR_CODES, 500: "INTERNAL_ERROR", 502: "ECDH_FAILED", 504: "ECDH_TIMEOUT"}


def _peer_param(raw: str, field: str) -> str:
    """A peer pubkey from the path or the body, x-only; 400 naming ``field`` otherwise."""
    try:
        return validate.xonly_pubkey(tornado.escape.url_unescape(raw), field)
    except ValueError as exc:
        raise tornado.web.HTTPError(400, reason=str(exc)) from None


class PeersApi(NodeApi):
    """GET /api/peers: every peer with status and policy."""

    access = READ
    openapi = {"get": op("Every peer with its status and policy", errors=(503,),
                         ok=obj({"peers": arr(PEER_SCHEMA), "total": INT, "online": INT},
                                ["peers", "total", "online"]))}

    def get(self) -> None:
        """``{peers, total, online}``."""
        peers = self.service().peers_json()
        self.write_json({"peers": peers, "total": len(peers), "online": sum(1 for p in peers if p["online"])})


class PeersSelfApi(NodeApi):
    """GET /api/peers/self."""

    access = READ
    openapi = {"get": op("This share's public key", errors=(503,),
                         ok=obj({"pubkey": HEX64, "warnings": arr(STR)}, ["pubkey"]))}

    def get(self) -> None:
        """``{pubkey, warnings}`` of this share."""
        self.write_json({"pubkey": self.service().pubkey, "warnings": []})


class PeersGroupApi(NodeApi):
    """GET /api/peers/group."""

    access = READ
    openapi = {"get": op("The group's public key and threshold", errors=(503,),
                         ok=obj({"pubkey": HEX64, "threshold": INT, "totalShares": INT},
                                ["pubkey", "threshold", "totalShares"]))}

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

    access = READ
    openapi = {"get": op("Explicit peer policies", errors=(503,),
                         ok=obj({"policies": arr(POLICY_SCHEMA)}, ["policies"]))}

    def get(self) -> None:
        """Explicit policies, Igloo Server's shape."""
        service = self.service()
        policies = [service.policies.summary(pk) for pk in service.peers if service.policies.explicit(pk)]
        self.write_json({"policies": policies})


class PeerPolicyApi(NodeApi):
    """GET/PUT/DELETE /api/peers/{pubkey}/policy."""

    access = {"GET": READ}
    path_params = ("pubkey",)
    openapi = {
        "get": op("One peer's policy", errors=(400, 404, 503), ok=obj({"policy": POLICY_SCHEMA}, ["policy"])),
        "put": op("Set one peer's policy", errors=(400, 404, 413, 415, 503),
                  request=obj({"allowSend": BOOL, "allowReceive": BOOL}),
                  example={"allowSend": True, "allowReceive": False},
                  ok=obj({"policy": POLICY_SCHEMA}, ["policy"])),
        "delete": op("Back to the default policy", errors=(400, 404, 503),
                     ok=obj({"removed": BOOL, "policy": POLICY_SCHEMA}, ["removed", "policy"])),
    }

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

    access = USER
    openapi = {"post": op("Ping one peer or all", errors=(400, 404, 413, 415, 503),
                          request=obj({"target": STR}, ["target"]), example={"target": "all"},
                          description='`target` is "all" or a peer pubkey.',
                          ok=obj({"results": arr(ANY_OBJECT), "pubkey": STR, "success": BOOL, "latency": NUM,
                                  "error": STR, "status": ANY_OBJECT}))}

    async def post(self) -> None:
        """Ping one or every peer."""
        service = self.service()
        target = self.body().get("target")
        if target == "all":
            results = await service.ping_all()
            self.write_json({"results": [{**result, "timestamp": iso_now()} for result in results]})
            return
        if not isinstance(target, str):
            self.fail(400, "Invalid target parameter")
            return
        pubkey = _peer_param(target, "target")
        if pubkey not in service.peers:
            self.fail(404, "Peer is not a member of this group")
            return
        try:
            policy, latency = await service.ping(pubkey)
        except NodeError as exc:
            status = service.peer_table.status_json(pubkey)
            self.write_json({"pubkey": pubkey, "success": False, "error": str(exc), "status": status,
                             "timestamp": iso_now()})
            return
        self.write_json(
            {
                "pubkey": pubkey,
                "success": True,
                "latency": round(latency, 1),
                "policy": policy.wire_json(),  # the peer's policy towards us, from its answer
                "status": service.peer_table.status_json(pubkey),
                "timestamp": iso_now(),
            }
        )


class SignApi(NodeApi):
    """POST /api/sign ``{message: hex64}`` or ``{event: {...}}`` → ``{id, signature}`` (+ ``event``)."""

    rate_limits = {"POST": SIGN}
    access = USER
    openapi = {"post": op("Threshold-sign a message or an event", errors=(400, 413, 415, 502, 503, 504),
                          request=obj({"message": HEX64, "event": ANY_OBJECT}),
                          example={"message": "a" * 64},
                          description="`message`: a 32-byte hex sighash; or `event`: a Nostr event template "
                                      "(kind, created_at, tags, content) signed by the group key.",
                          ok=obj({"id": STR, "signature": STR, "event": ANY_OBJECT}, ["id", "signature"]))}
    error_codes = SIGN_ERROR_CODES

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

    rate_limits = {"POST": SIGN}
    access = USER
    path_params = ("scheme", "mode")
    openapi = {"post": op("NIP-44 / NIP-04 encrypt or decrypt with a peer (threshold ECDH)",
                          errors=(400, 413, 415, 502, 503, 504),
                          request=obj({"peer_pubkey": HEX64, "pubkey": HEX64, "content": STR}, ["content"]),
                          example={"peer_pubkey": "b" * 64, "content": "hello"},
                          ok=obj({"result": STR}, ["result"]))}
    error_codes = CIPHER_ERROR_CODES

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

    rate_limits = {"POST": RECOVERY}
    openapi = {"post": op("Recover the group's nsec from threshold shares", errors=(400, 413, 415, 429),
                          request=obj({"groupCredential": STR, "shareCredentials": arr(STR)},
                                      ["groupCredential", "shareCredentials"]),
                          example={"groupCredential": "bfgroup1...",
                                   "shareCredentials": ["bfshare1...", "bfshare1..."]},
                          description="Never logged; one event says a recovery happened. A few per hour for "
                                      "the whole server (shared with the Recover page).",
                          ok=obj({"success": BOOL, "nsec": STR, "details": obj({"sharesUsed": INT})},
                                 ["success", "nsec"]))}

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
        wait = recovery_wait(self)
        if wait:
            self.set_header("Retry-After", str(wait))
            error = "Too many recoveries. Please try again later."
            self.write_json({"success": False, "error": error}, status=429)
            return
        try:
            nsec = keytools.recover(group, shares)
        except ValueError as exc:
            self.write_json({"success": False, "error": str(exc)}, status=400)
            return
        self.events.publish("warn", "Secret key recovered through the API", {"sharesUsed": len(shares)})
        threshold = keytools.describe_credential("group", group)["threshold"]
        self.write_json({"success": True, "nsec": nsec,
                         "details": {"sharesUsed": len(shares), "thresholdRequired": threshold}})


class RecoverValidateApi(NodeApi):
    """POST /api/recover/validate ``{type: "group"|"share", credential}``."""

    openapi = {"post": op("Check one group or share credential", errors=(400, 413, 415),
                          request=obj({"type": enum("group", "share"), "credential": STR},
                                      ["type", "credential"]),
                          example={"type": "group", "credential": "bfgroup1..."},
                          ok=obj({"success": BOOL, "validation": obj({"isValid": BOOL, "message": STR}),
                                  "decoded": nullable(ANY_OBJECT)}, ["success", "validation"]))}

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


# Keys Igloo Server's POST /api/env accepts that Igloo takes from its environment at start-up instead, with
# what to do; CREDENTIALS_SAVED_AT is written by the server itself.
ENV_KEYS_ELSEWHERE = {
    "GROUP_NAME": "set GROUP_NAME in the server's environment",
    "PEER_POLICIES": "use PUT /api/peers/{pubkey}/policy, or PEER_POLICIES in the server's environment",
    "CREDENTIALS_SAVED_AT": "set by the server when credentials are saved",
    **{
        name: "a server setting: set it in the server's environment and restart"
        for name in (
            "SESSION_TIMEOUT", "FROSTR_SIGN_TIMEOUT", "RATE_LIMIT_ENABLED", "RATE_LIMIT_WINDOW",
            "RATE_LIMIT_MAX", "NODE_RESTART_DELAY", "NODE_MAX_RETRIES", "NODE_BACKOFF_MULTIPLIER",
            "NODE_MAX_RETRY_DELAY", "INITIAL_CONNECTIVITY_DELAY", "CONNECTIVITY_PING_TIMEOUT_MS",
            "ALLOWED_ORIGINS",
        )
    },
}
ENV_WRITABLE = ("GROUP_CRED", "SHARE_CRED", "RELAYS")


def rejected_reasons(keys: list[str]) -> dict[str, str]:
    """Why each of ``keys`` is not applied by POST /api/env."""
    return {key: ENV_KEYS_ELSEWHERE.get(key, "not a setting POST /api/env changes") for key in keys}


class CredentialsApi(NodeApi):
    """Shared steps of the routes that save credentials and relays (never returning them)."""

    rate_limits = {"POST": ENV_WRITE, "PUT": ENV_WRITE}  # every write counts against RATE_LIMIT_ENV_WRITE_*

    async def save(self, group: object, share: object, relays_value: object, relays_given: bool) -> None:
        """Apply a full or partial update: credentials (one may come from what the node runs on), relays.

        ``ValueError`` names the field that is missing or wrong.
        """
        manager = self.manager
        relays = validate.relay_urls(relays_value) if relays_given else None
        if relays is not None:  # URLs shown redacted and sent back mean the relays they stand for
            relays = validate.unredact_relay_urls(relays, manager.relays())
        if group is None and share is None:
            if relays is None:
                raise ValueError("GROUP_CRED: required (with SHARE_CRED), or RELAYS")
            self.require_change_rights()
            await manager.update_relays(relays)
            return
        if group is None or share is None:
            current = manager.current_credentials()
            missing = "GROUP_CRED" if group is None else "SHARE_CRED"
            if current is None:
                raise ValueError(f"{missing}: required (no credentials are configured to keep it from)")
            group = current[0] if group is None else group
            share = current[1] if share is None else share
        validate_credentials(group, share)
        await manager.apply_credentials(group, share, relays)  # type: ignore[arg-type]


class EnvApi(CredentialsApi):
    """GET/POST /api/env: settings out (never the credentials), ``{GROUP_CRED?, SHARE_CRED?, RELAYS?}`` in.

    Relay URLs go out without credentials (``ws://***@host/?***``); sent back unchanged, such a URL keeps the
    credentials of the relay it names.
    """

    openapi = {
        "get": op("Settings (never the credentials)", errors=(503,),
                  ok=obj({"RELAYS": arr(STR), "hasCredentials": BOOL, "credentialsSource": nullable(STR),
                          "FROSTR_SIGN_TIMEOUT": INT}, ["RELAYS", "hasCredentials"])),
        "post": op("Save credentials and/or relays; the signer restarts", errors=(400, 413, 415, 503),
                   request=obj({"GROUP_CRED": STR, "SHARE_CRED": STR, "RELAYS": {"anyOf": [arr(STR), STR]}}),
                   example={"RELAYS": ["ws://127.0.0.1:8002/"]},
                   ok=obj({"success": BOOL, "message": STR, "rejectedKeys": arr(STR)},
                          ["success", "message"])),
    }

    def get(self) -> None:
        """Whether credentials exist (never their values), the relays and the public settings."""
        manager = self.manager
        config = self.config
        body: dict[str, Any] = {
            "RELAYS": [validate.redact_relay_url(url) for url in manager.relays()],
            "hasCredentials": manager.has_credentials(),
            "credentialsSource": manager.source,
            "FROSTR_SIGN_TIMEOUT": round(manager.options.sign_timeout * 1000),  # milliseconds
            "SESSION_TIMEOUT": config.session_timeout,
            "RATE_LIMIT_ENABLED": config.rate_limit_enabled,
            "RATE_LIMIT_WINDOW": config.rate_limit_window,
            "RATE_LIMIT_MAX": config.rate_limit_max,
            "ALLOWED_ORIGINS": ",".join(config.allowed_origins),
            "adminSecretAvailable": False,  # Igloo never reveals ADMIN_SECRET over HTTP
        }
        name = keyset_name(self)
        if name:
            body["GROUP_NAME"] = name
        self.write_json(body)

    async def post(self) -> None:
        """Validate, store encrypted, restart the node. Any subset of the writable keys (partial update);
        other keys Igloo Server took are listed in ``rejectedKeys`` with ``rejectedReasons``. ``RELAYS`` alone
        moves the running node to them live."""
        body = self.body()
        given = [key for key in ENV_WRITABLE if key in body and body[key] is not None]
        rejected = sorted(k for k in body if k not in ENV_WRITABLE)
        reasons = rejected_reasons(rejected)
        if not given:
            detail = "; ".join(f"{key}: {why}" for key, why in reasons.items())
            error = "No valid environment variables provided" + (f" ({detail})" if detail else "")
            self.write_json({"success": False, "error": error, "rejectedKeys": rejected,
                             "rejectedReasons": reasons}, status=400)
            return
        try:
            await self.save(body.get("GROUP_CRED"), body.get("SHARE_CRED"), body.get("RELAYS"),
                            "RELAYS" in given)
        except ValueError as exc:
            self.write_json({"success": False, "error": str(exc)}, status=400)
            return
        message = "Environment variables updated"
        if rejected:
            message += f". Rejected unauthorized keys: {', '.join(rejected)}"
        extra = {"rejectedKeys": rejected, "rejectedReasons": reasons} if rejected else {}
        self.write_json({"success": True, "message": message, **extra})


class EnvSharesApi(CredentialsApi):
    """GET/POST /api/env/shares (Igloo Server's headless share routes)."""

    openapi = {
        "get": op("Igloo Server's share list: whether credentials exist (never their values)", errors=(503,),
                  ok=arr(obj({"hasShareCredential": BOOL, "hasGroupCredential": BOOL, "isValid": BOOL,
                              "savedAt": nullable(STR), "id": STR,
                              "source": enum("environment", "stored")}))),
        "post": op("Save a share and its group (Igloo Server's headless route)", errors=(400, 413, 415, 503),
                   request=obj({"shareCredential": STR, "groupCredential": STR},
                               ["shareCredential", "groupCredential"]),
                   example={"shareCredential": "bfshare1...", "groupCredential": "bfgroup1..."},
                   ok=obj({"success": BOOL, "message": STR}, ["success", "message"])),
    }

    def get(self) -> None:
        """Igloo Server's metadata list (never the credentials, as there without a debug flag)."""
        manager = self.manager
        if not manager.has_credentials():
            self.write_json([])
            return
        self.write_json([{
            "hasShareCredential": True,
            "hasGroupCredential": True,
            "isValid": True,
            "savedAt": None,
            "id": "env-stored-share",
            "source": "environment" if manager.source == "env" else "stored",
        }])

    async def post(self) -> None:
        """``{shareCredential, groupCredential}`` → ``{success, message}``."""
        body = self.body()
        share, group = body.get("shareCredential"), body.get("groupCredential")
        if not share or not group:
            self.write_json({"success": False, "error": "Missing shareCredential or groupCredential"},
                            status=400)
            return
        try:
            await self.save(group, share, None, relays_given=False)
        except ValueError as exc:
            self.write_json({"success": False, "error": str(exc)}, status=400)
            return
        self.write_json({"success": True, "message": "Share saved successfully"})


class UserCredentialsApi(CredentialsApi):
    """/api/user/credentials: saving works; reading is refused (Igloo never returns credentials)."""

    CREDENTIALS_BODY = obj({"group_cred": STR, "share_cred": STR, "group_name": STR,
                            "relays": {"anyOf": [arr(STR), STR, {"type": "null"}]}})
    openapi = {
        "get": op("Refused: Igloo never returns credentials", responses={403: ("Refused on purpose", ERROR)}),
        "post": op("Save credentials and/or relays (Igloo Server's database mode)",
                   errors=(400, 413, 415, 503),
                   request=CREDENTIALS_BODY, example={"relays": ["ws://127.0.0.1:8002/"]},
                   ok=obj({"success": BOOL, "message": STR}, ["success", "message"])),
        "put": op("The same as POST", errors=(400, 413, 415, 503), request=CREDENTIALS_BODY,
                  example={"relays": ["ws://127.0.0.1:8002/"]},
                  ok=obj({"success": BOOL, "message": STR}, ["success", "message"])),
        "delete": op("Not here: clear credentials with POST /api/env/delete",
                     responses={405: ("Use POST /api/env/delete", ERROR)}),
    }

    def get(self) -> None:
        """Refused on purpose, with the reason."""
        self.fail(403, NEVER_RETURNED)

    async def post(self) -> None:
        """``{group_cred?, share_cred?, relays?}`` (Igloo Server's database mode) → ``{success, message}``."""
        body = self.body()
        unknown = sorted(k for k in body if k not in ("group_cred", "share_cred", "relays", "group_name"))
        if unknown:
            self.fail(400, f"{unknown[0]}: not a credential field (group_cred, share_cred, relays)")
            return
        try:
            await self.save(body.get("group_cred"), body.get("share_cred"), body.get("relays"),
                            body.get("relays") is not None)
        except ValueError as exc:
            self.fail(400, str(exc))
            return
        self.write_json({"success": True, "message": "Credentials updated successfully"})

    put = post

    def delete(self) -> None:
        """Not here: the signer's credentials are cleared with POST /api/env/delete."""
        self.fail(405, 'Clear the credentials with POST /api/env/delete '
                       '{"keys": ["GROUP_CRED", "SHARE_CRED"]}')


class UserRelaysApi(CredentialsApi):
    """GET/POST/PUT /api/user/relays: the signer's relays (Igloo runs one signer for every account)."""

    openapi = {
        "get": op("The signer's relays", errors=(503,), ok=obj({"relays": arr(STR)}, ["relays"])),
        "post": op("Set the signer's relays (null: the default)", errors=(400, 413, 415, 503),
                   request=obj({"relays": nullable(arr(STR))}, ["relays"]), example={"relays": ["ws://127.0.0.1:8002/"]},
                   ok=obj({"success": BOOL, "message": STR}, ["success", "message"])),
        "put": op("The same as POST", errors=(400, 413, 415, 503),
                  request=obj({"relays": nullable(arr(STR))}, ["relays"]), example={"relays": ["ws://127.0.0.1:8002/"]},
                  ok=obj({"success": BOOL, "message": STR}, ["success", "message"])),
    }

    def get(self) -> None:
        """``{relays}`` (without credentials in their URLs)."""
        self.write_json({"relays": [validate.redact_relay_url(url) for url in self.manager.relays()]})

    async def post(self) -> None:
        """``{relays: [...] | null}`` → ``{success, message}``; null means the default relays."""
        body = self.body()
        if "relays" not in body:
            self.fail(400, "Missing required field: relays")
            return
        relays = body["relays"]
        try:
            await self.save(None, None, relays if relays is not None else [], relays_given=True)
        except ValueError as exc:
            self.fail(400, str(exc).replace("RELAYS:", "relays:", 1))
            return
        self.write_json({"success": True, "message": "Relays updated successfully"})

    put = post


class UserProfileApi(NodeApi):
    """GET /api/user/profile: the signed-in account."""

    openapi = {"get": op("The signed-in account (401 for API keys and Basic credentials)", errors=(401,),
                         ok=obj({"id": STR, "username": STR, "createdAt": nullable(STR),
                                 "hasCredentials": BOOL}, ["id", "username"]))}

    def get(self) -> None:
        """``{id, username, createdAt, hasCredentials}``; 401 for API-key and Basic callers (as there)."""
        principal = self.principal
        if principal is None or principal.user_id is None:
            self.fail(401, "Database user authentication required: API keys and Basic credentials have no "
                           "profile")
            return
        row = self.db.query_one("SELECT created_at FROM users WHERE id = ?", (principal.user_id,))
        created = iso_time(float(row["created_at"])) if row is not None else None
        manager = self.node
        self.write_json({"id": str(principal.user_id), "username": principal.username, "createdAt": created,
                         "hasCredentials": bool(manager is not None and manager.has_credentials())})


NEVER_RETURNED = (
    "Igloo never returns credentials or secrets over HTTP (a deliberate difference from Igloo Server): "
    "GET /api/env tells whether credentials are configured; to move them, use the share you hold"
)


NIP46_HISTORY_MESSAGE = ("Igloo has no NIP-46 history summary: use GET /api/nip46/sessions (each app's "
                         "permissions) and GET /api/nip46/requests (its recent requests)")


class NotHereApi(NodeApi):
    """An Igloo Server route Igloo does not have: 410 with ``message`` (what to use instead), not a 404."""

    access = READ  # it only says what to use instead
    openapi = {m: op("An Igloo Server route Igloo does not have: what to use instead",
                     responses={410: ("Gone: the message names the replacement", ERROR)})
               for m in ("get", "post", "put", "delete")}

    def initialize(self, message: str) -> None:
        """``message``: the replacement."""
        self.message = message

    def get(self) -> None:
        """410 with the message."""
        self.fail(410, self.message)

    post = put = delete = get


class NeverReturnedApi(NodeApi):
    """Igloo Server routes that reveal secrets (/api/env/admin-secret): refused with the reason."""

    access = READ  # it refuses everyone, saying why
    openapi = {m: op("Refused on purpose: Igloo never returns secrets", responses={403: ("Refused", ERROR)})
               for m in ("get", "post")}

    def post(self) -> None:
        """403 naming the difference."""
        self.fail(403, NEVER_RETURNED)

    get = post


class ApprovalsApi(NodeApi):
    """GET /api/approvals: requests waiting for a decision."""

    openapi = {"get": op("Requests waiting for a decision (APPROVAL_MODE)", errors=(503,),
                         ok=obj({"approvals": arr(ANY_OBJECT), "approvalMode": BOOL},
                                ["approvals", "approvalMode"]))}

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

    access = USER  # deciding whether this share co-signs is signing
    path_params = ("id",)
    openapi = {"post": op("Approve or deny a waiting request", errors=(400, 404, 413, 415, 503),
                          request=obj({"action": enum("approve", "deny"), "approve": BOOL}),
                          example={"action": "approve"},
                          ok=obj({"success": BOOL, "id": STR, "action": STR}, ["success", "id", "action"]))}

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

    openapi = {"post": op("Start the demo group", errors=(409, 503),
                          ok=obj({"success": BOOL, "demo": BOOL, "groupPubkey": STR}, ["success", "demo"]))}

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
    (r"/api/env/shares", EnvSharesApi),
    (r"/api/env/admin-secret", NeverReturnedApi),
    (r"/api/user/profile", UserProfileApi),
    (r"/api/user/credentials", UserCredentialsApi),
    (r"/api/user/relays", UserRelaysApi),
    (r"/api/nip46/history", NotHereApi, {"message": NIP46_HISTORY_MESSAGE}),
    (r"/api/approvals", ApprovalsApi),
    (r"/api/approvals/([A-Za-z0-9-]{1,64})", ApprovalApi),
    (r"/api/demo/start", DemoApi),
]
