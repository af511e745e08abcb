"""NIP-46 remote signing over HTTP: ``/api/nip46/*`` (Igloo Server's paths, plus the bunker endpoints) and the
NIP-46 pages. Thin: parse and check input, call one bunker method, map its errors to status codes. The bunker
itself (``node.nip46``) publishes every state change on the event stream.
"""

from __future__ import annotations

from typing import Any

import tornado.escape
import tornado.web
from markupsafe import Markup

from handlers.base import ApiHandler, BaseHandler
from handlers.openapi import ANY_OBJECT, BOOL, ERROR, NUM, STR, arr, enum, nullable, obj, op
from handlers.roles import USER
from node import nip46, validate

MAX_LISTED = 500
RELAYS_REQUEST = obj({"relays": nullable(arr(STR))}, ["relays"])
RELAYS_SCHEMA = obj({"relays": arr(STR), "source": enum("custom", "env", "node")}, ["relays", "source"])


def qr_svg(text: str) -> Markup:
    """An inline SVG QR code of ``text`` (rendered here: the page needs no script or outside service)."""
    import segno  # loaded with the first QR code, not by every start of the server

    svg = segno.make(text, error="m").svg_inline(scale=4, border=2, dark="#0b1220", light="#ffffff")
    return Markup(svg)  # noqa: S704 - segno's own SVG markup; the text is encoded as modules, not as markup


def _session_param(raw: str) -> str:
    pubkey = tornado.escape.url_unescape(raw).strip().lower()
    if not validate.is_hex(pubkey, 32):
        raise tornado.web.HTTPError(400, reason="pubkey: expected a 64-character hex client pubkey")
    return pubkey


class Nip46Api(ApiHandler):
    """Base of the NIP-46 endpoints: the bunker (503 when disabled), JSON bodies, JSON errors.

    Relay URLs leave without credentials, except in a new bunker link and the relays that come with it: the
    app pasting the link needs them as they are, and the link is a secret shown to its owner only.
    """

    keeps_relay_urls = False

    def write_json(self, body: object, status: int = 200) -> None:
        """``ApiHandler.write_json`` with relay URLs redacted (``node.validate.redact_urls_in``)."""
        super().write_json(body if self.keeps_relay_urls else validate.redact_urls_in(body), status)

    @property
    def bunker(self) -> nip46.Bunker:
        """The server's bunker, or a 503."""
        bunker: nip46.Bunker | None = self.application.settings.get("bunker")
        if bunker is None or not bunker.started:
            raise tornado.web.HTTPError(503, reason="NIP-46 is not available (NIP46_ENABLED=false or no key)")
        return bunker


    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """503 keeps its reason; everything else as the base class says."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if status_code == 503 and isinstance(exc, tornado.web.HTTPError) and exc.reason:
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.finish({"error": exc.reason})
            return
        super().write_error(status_code, **kwargs)


class BunkerApi(Nip46Api):
    """GET /api/nip46/bunker → ``{pubkey, relays, ...}``; POST → a new single-use ``bunker://`` link."""

    openapi = {
        "get": op("The bunker: transport pubkey, relays, listening, sessions and pending counts",
                  errors=(503,), ok=ANY_OBJECT),
        "post": op("A new single-use bunker:// pairing link (older unused links stop working)", errors=(503,),
                   ok=obj({"uri": STR, "pubkey": STR, "relays": arr(STR), "expiresAt": {"anyOf": [STR, NUM]}},
                          ["uri", "pubkey", "relays"])),
    }

    def get(self) -> None:
        """The transport pubkey, relays, whether the listener runs, sessions and pending counts."""
        self.write_json(self.bunker.status())

    def post(self) -> None:
        """``{uri, pubkey, relays, expiresAt}`` (older unused links stop working)."""
        self.keeps_relay_urls = True
        try:
            self.write_json(self.bunker.new_bunker_link())
        except nip46.BunkerUnavailable as exc:
            self.fail(503, str(exc))


class TransportApi(Nip46Api):
    """GET /api/nip46/transport → ``{pubkey}``; POST rotates the key (ends every session)."""

    openapi = {
        "get": op("The transport public key", errors=(503,), ok=obj({"pubkey": STR}, ["pubkey"])),
        "post": op("Rotate the transport key (every session ends)", errors=(503,),
                   ok=obj({"pubkey": STR, "sessionsEnded": BOOL}, ["pubkey", "sessionsEnded"])),
    }

    def get(self) -> None:
        """Only the pubkey: the transport secret key never leaves the server."""
        self.write_json({"pubkey": self.bunker.pubkey})

    async def post(self) -> None:
        """A new transport key; the listener restarts on it at once."""
        pubkey = await self.bunker.rotate_transport_key()
        self.write_json({"pubkey": pubkey, "sessionsEnded": True})


class RelaysApi(Nip46Api):
    """GET/PUT/POST /api/nip46/relays: the bunker's relays (PUT replaces, POST adds; null/[] = default)."""

    openapi = {
        "get": op("The bunker's relays", errors=(503,), ok=RELAYS_SCHEMA),
        "put": op("Replace the bunker's relays (null or [] = the default)", errors=(400, 413, 415, 503),
                  request=RELAYS_REQUEST, example={"relays": ["ws://127.0.0.1:8002/"]},
                  ok=RELAYS_SCHEMA),
        "post": op("Add relays to the bunker's list", errors=(400, 413, 415, 503),
                   request=RELAYS_REQUEST, example={"relays": ["ws://127.0.0.1:8002/"]},
                   ok=RELAYS_SCHEMA),
    }

    def get(self) -> None:
        """``{relays, source}`` with source ``custom`` | ``env`` | ``node``."""
        bunker = self.bunker
        self.write_json({"relays": bunker.bunker_relays(), "source": bunker.relays_source()})

    def put(self) -> None:
        """Replace the list; takes effect at once."""
        self._update(merge=False)

    def post(self) -> None:
        """Add to the list; takes effect at once."""
        self._update(merge=True)

    def _update(self, merge: bool) -> None:
        bunker = self.bunker
        body = self.body()
        if "relays" not in body:
            self.fail(400, 'relays: required (a list of ws:// or wss:// URLs, or null for the default)')
            return
        given = body["relays"]
        if isinstance(given, list) and all(isinstance(url, str) for url in given):
            given = validate.unredact_relay_urls(given, bunker.bunker_relays())  # shown redacted, sent back
        try:
            relays = bunker.set_relays(given, merge=merge)
        except ValueError as exc:
            self.fail(400, str(exc))
            return
        self.write_json({"relays": relays, "source": bunker.relays_source()})


class RequestsApi(Nip46Api):
    """GET /api/nip46/requests (``?status=a,b&limit=n``), POST ``{id, action}``, DELETE ``{id}``."""

    access = {"POST": USER}  # approve/deny; always_allow/always_deny change permissions: administrators only
    openapi = {
        "get": op("Stored requests, newest first", errors=(400, 503),
                  query={"status": STR, "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LISTED}},
                  ok=obj({"requests": arr(ANY_OBJECT)}, ["requests"])),
        "post": op("Decide a waiting request", errors=(400, 403, 404, 409, 413, 415, 503),
                   description="`approve` and `deny` are for users and administrators; `always_allow` and "
                               "`always_deny` change the app's permissions and are for administrators.",
                   request=obj({"id": STR, "action": enum(*nip46.ACTIONS)}, ["id", "action"]),
                   example={"id": "00000000-0000-0000-0000-000000000000", "action": "deny"},
                   ok=obj({"request": ANY_OBJECT}, ["request"])),
        "delete": op("Forget a finished request", errors=(400, 404, 409, 413, 415, 503),
                     request=obj({"id": STR}, ["id"]), example={"id": "00000000-0000-0000-0000-000000000000"},
                     ok=obj({"ok": BOOL}, ["ok"])),
    }

    def get(self) -> None:
        """Stored requests, newest first."""
        raw = self.get_query_argument("status", "")
        statuses = [s.strip().lower() for s in raw.split(",") if s.strip()]
        unknown = [s for s in statuses if s not in nip46.REQUEST_STATES]
        if unknown:
            self.fail(400, f"status: must be among {', '.join(nip46.REQUEST_STATES)}")
            return
        raw_limit = self.get_query_argument("limit", "100")
        if not raw_limit.isascii() or not raw_limit.isdigit() or not 1 <= int(raw_limit[:6]) <= MAX_LISTED:
            self.fail(400, f"limit: must be an integer 1..{MAX_LISTED}")
            return
        records = self.bunker.requests(statuses or None, int(raw_limit))
        self.write_json({"requests": [r.to_json() for r in records]})

    def _id(self, body: dict[str, Any]) -> str | None:
        value = body.get("id")
        if not isinstance(value, str) or not value.strip() or len(value) > 64:
            self.fail(400, "id: required (the request's id)")
            return None
        return value.strip()

    def post(self) -> None:
        """Decide a pending request: ``approve`` | ``deny`` | ``always_allow`` | ``always_deny``."""
        bunker = self.bunker
        body = self.body()
        record_id = self._id(body)
        if record_id is None:
            return
        action = body.get("action")
        if action not in nip46.ACTIONS:
            self.fail(400, f"action: must be one of {', '.join(nip46.ACTIONS)}")
            return
        if action not in ("approve", "deny"):
            self.require_admin()  # always_allow / always_deny change the app's permissions
        try:
            record = bunker.decide(record_id, action)
        except KeyError:
            self.fail(404, "Request not found")
            return
        except nip46.InvalidTransition as exc:
            self.fail(409, str(exc))
            return
        self.write_json({"request": record.to_json()})

    def delete(self) -> None:
        """Forget a finished request (409 while it is still open)."""
        bunker = self.bunker
        record_id = self._id(self.body())
        if record_id is None:
            return
        try:
            removed = bunker.delete_request(record_id)
        except nip46.InvalidTransition as exc:
            self.fail(409, str(exc))
            return
        if not removed:
            self.fail(404, "Request not found")
            return
        self.write_json({"ok": True})


class ConnectApi(Nip46Api):
    """POST /api/nip46/connect ``{uri, grant?: [perm, ...]}``: answer a ``nostrconnect://`` offer."""

    openapi = {"post": op("Pair with an app's nostrconnect:// link", errors=(400, 413, 415, 429, 502, 503),
                          request=obj({"uri": STR, "grant": arr(STR)}, ["uri"]),
                          example={"uri": "nostrconnect://...", "grant": ["sign_event:1"]},
                          ok=obj({"success": BOOL, "session": ANY_OBJECT, "relays": arr(ANY_OBJECT)},
                                 ["success", "session", "relays"]))}

    async def post(self) -> None:
        """``{success, session, relays: [{url, subscribed, accepted}]}``; 502 when no relay accepted."""
        bunker = self.bunker
        body = self.body()
        grant = body.get("grant", [])
        if not isinstance(grant, list) or not all(isinstance(g, str) for g in grant):
            self.fail(400, "grant: must be a list of requested permissions")
            return
        try:
            offer = nip46.parse_nostrconnect(body.get("uri"))
            result = await bunker.pair_nostrconnect(offer, grant)
        except ValueError as exc:
            self.fail(400, str(exc))
            return
        except nip46.BunkerUnavailable as exc:
            self.fail(503, str(exc))
            return
        except nip46.TooManySessions as exc:
            self.set_header("Retry-After", str(exc.retry_after))
            self.fail(429, f"{exc} (NIP46_SESSION_RATE_LIMIT_MAX)")
            return
        if not result["accepted"]:
            self.fail(502, "no relay accepted the connect response", success=False, relays=result["relays"])
            return
        self.write_json({"success": True, "session": result["session"], "relays": result["relays"]})


class SessionsApi(Nip46Api):
    """GET /api/nip46/sessions."""

    openapi = {
        "get": op("Connected apps and their permissions", errors=(503,),
                  ok=obj({"sessions": arr(ANY_OBJECT)}, ["sessions"])),
        "post": op("Not here: apps pair through a bunker:// or nostrconnect:// link",
                   responses={405: ("Sessions are created by pairing", ERROR)}),
    }

    def get(self) -> None:
        """``{sessions: [...]}`` in Igloo Server's shape (plus origin, requested, userPubkey)."""
        bunker = self.bunker
        relays = bunker.bunker_relays()
        self.write_json({"sessions": [s.to_json(relays) for s in bunker.sessions()]})

    def post(self) -> None:
        """Igloo Server's session upsert is not offered here: a session comes from pairing."""
        self.fail(405, "NIP-46 sessions are created by pairing, not by POST: give the app a bunker:// "
                       "link (POST /api/nip46/bunker) or answer its nostrconnect:// link "
                       "(POST /api/nip46/connect)")


class SessionPolicyApi(Nip46Api):
    """PUT /api/nip46/sessions/{pubkey}/policy ``{methods?, kinds?}`` (true/false/"allow"/"ask"/"deny")."""

    path_params = ("pubkey",)
    openapi = {"put": op("Change an app's permissions", errors=(400, 404, 413, 415, 503),
                         request=obj({"methods": ANY_OBJECT, "kinds": ANY_OBJECT}),
                         example={"methods": {"nip44_encrypt": "ask"}, "kinds": {"1": "allow"}},
                         ok=obj({"ok": BOOL, "session": ANY_OBJECT}, ["ok", "session"]))}

    def put(self, raw: str) -> None:
        """Patch the session's permissions."""
        bunker = self.bunker
        pubkey = _session_param(raw)
        body = self.body()
        try:
            session = bunker.set_policy(pubkey, body)
        except KeyError:
            self.fail(404, "Session not found")
            return
        except ValueError as exc:
            self.fail(400, str(exc))
            return
        self.write_json({"ok": True, "session": session.to_json(bunker.bunker_relays())})


class SessionStatusApi(Nip46Api):
    """PUT /api/nip46/sessions/{pubkey}/status ``{status: "active" | "paused" | "revoked"}``."""

    path_params = ("pubkey",)
    openapi = {"put": op("Pause, resume or revoke an app", errors=(400, 404, 413, 415, 503),
                         request=obj({"status": enum("active", "paused", "revoked")}, ["status"]),
                         example={"status": "paused"},
                         ok=obj({"ok": BOOL, "session": nullable(ANY_OBJECT)}, ["ok"]))}

    def put(self, raw: str) -> None:
        """Pause, resume or revoke (revoked sessions are gone for good)."""
        bunker = self.bunker
        pubkey = _session_param(raw)
        status = self.body().get("status")
        if status not in ("active", "paused", "pending", "revoked"):
            self.fail(400, 'status: must be "active", "paused" or "revoked"')
            return
        try:
            session = bunker.set_status(pubkey, status)
        except KeyError:
            self.fail(404, "Session not found")
            return
        payload = session.to_json(bunker.bunker_relays()) if session is not None else None
        self.write_json({"ok": True, "session": payload})


class SessionApi(Nip46Api):
    """DELETE /api/nip46/sessions/{pubkey}: revoke (the client must pair again with a new secret)."""

    path_params = ("pubkey",)
    openapi = {"delete": op("Revoke an app (it must pair again)", errors=(400, 404, 503),
                            ok=obj({"ok": BOOL}, ["ok"]))}

    def delete(self, raw: str) -> None:
        """``{ok: true}``, or 404."""
        if not self.bunker.revoke(_session_param(raw)):
            self.fail(404, "Session not found")
            return
        self.write_json({"ok": True})


# ----------------------------------------------------------------------------------------- pages


class Nip46PageBase(BaseHandler):
    """The NIP-46 pages: the bunker (or a page saying why there is none)."""

    def bunker_or_none(self) -> nip46.Bunker | None:
        """The running bunker, or None."""
        bunker: nip46.Bunker | None = self.application.settings.get("bunker")
        return bunker if bunker is not None and bunker.started else None


class Nip46Page(Nip46PageBase):
    """GET /nip46: the bunker link with its QR code, sessions, waiting requests; POST /nip46 = a new link."""

    def get(self) -> None:
        """Render with a fresh link (each link's secret is single-use and expires)."""
        if not self.require_page_auth():
            return
        self.show()

    def post(self) -> None:
        """"New link": the previous unused link stops working."""
        if not self.require_page_auth():
            return
        self.show()

    def show(self, error: str | None = None, status: int = 200) -> None:
        """The page."""
        bunker = self.bunker_or_none()
        ctx: dict[str, Any] = {"enabled": bunker is not None, "error": error, "since": self.events.last_seq,
                               "highlight": self.get_query_argument("request", "")[:64]}
        ctx["can_pair"] = self.can_admin
        if bunker is not None:
            # A pairing link lets an app sign: only administrators get one (users see the apps and requests).
            link = bunker.new_bunker_link() if self.can_admin else None
            relays = bunker.bunker_relays()
            redact = validate.redact_urls_in  # the link (and its relays) stays whole: the app needs it so
            ctx.update(
                link=link,
                qr=qr_svg(link["uri"]) if link is not None else None,
                state=redact(bunker.status()),
                sessions=redact([s.to_json(relays) for s in bunker.sessions()]),
                pending=redact([r.to_json() for r in bunker.pending()]),
                recent=redact([r.to_json() for r in bunker.requests(None, 20)]),
                methods=nip46.PERMISSION_METHODS,
                signer_running=bunker.signer.group_pubkey() is not None,
            )
        self.set_status(status)
        self.render_page("nip46.html", **ctx)


class Nip46ConnectPage(Nip46PageBase):
    """POST /nip46/connect: a pasted ``nostrconnect://`` link, shown for confirmation with checkboxes."""

    def post(self) -> None:
        """The confirmation page (nothing is paired yet)."""
        if not self.require_page_auth():
            return
        uri = self.get_body_argument("uri", "")
        try:
            offer = nip46.parse_nostrconnect(uri)
        except ValueError as exc:
            self.set_status(400)
            self.render_page("nip46_connect.html", error=str(exc), offer=None, uri=uri, result=None)
            return
        self.render_page("nip46_connect.html", error=None, offer=offer, uri=uri, result=None,
                         requested=[str(p) for p in offer.requested])


class Nip46ConfirmPage(Nip46PageBase):
    """POST /nip46/connect/confirm: pair with the ticked permissions and say which relays took the answer."""

    async def post(self) -> None:
        """The result page."""
        if not self.require_page_auth():
            return
        bunker = self.bunker_or_none()
        uri = self.get_body_argument("uri", "")
        grant = self.get_body_arguments("grant")
        error: str | None = None
        result: dict[str, Any] | None = None
        offer = None
        status = 200
        try:
            offer = nip46.parse_nostrconnect(uri)
            if bunker is None:
                raise nip46.BunkerUnavailable("NIP-46 is not enabled on this server")
            result = await bunker.pair_nostrconnect(offer, grant)
        except (ValueError, nip46.BunkerUnavailable) as exc:
            error, status = str(exc), 400
        except nip46.TooManySessions as exc:
            self.set_header("Retry-After", str(exc.retry_after))
            error = f"Too many new apps were paired lately: try again in {exc.retry_after} seconds."
            status = 429
        if result is not None and not result["accepted"]:
            status = 502
        self.set_status(status)
        self.render_page("nip46_connect.html", error=error, offer=offer, uri=uri, result=result,
                         requested=[str(p) for p in offer.requested] if offer else [])


ROUTES: list[tuple[Any, ...]] = [
    (r"/nip46", Nip46Page),
    (r"/nip46/connect", Nip46ConnectPage),
    (r"/nip46/connect/confirm", Nip46ConfirmPage),
    (r"/api/nip46/bunker", BunkerApi),
    (r"/api/nip46/transport", TransportApi),
    (r"/api/nip46/relays", RelaysApi),
    (r"/api/nip46/requests", RequestsApi),
    (r"/api/nip46/connect", ConnectApi),
    (r"/api/nip46/sessions", SessionsApi),
    (r"/api/nip46/sessions/([^/]+)/policy", SessionPolicyApi),
    (r"/api/nip46/sessions/([^/]+)/status", SessionStatusApi),
    (r"/api/nip46/sessions/([^/]+)", SessionApi),
]
