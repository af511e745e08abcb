"""The signer's relays: ``GET/PUT/DELETE /api/relays`` (and the relay card's view of them).

A list set here is stored and wins over ``RELAYS`` and over the relays saved with the credentials until it
is cleared (``DELETE``), whether the credentials come from the environment or from Configure. The running
node moves to it live: new relays are connected and subscribed before the removed ones go, so signing
requests in flight are not dropped.

Relay URLs go out without their credentials (``ws://***@host/?***``); a redacted URL sent back in a PUT stands
for the relay it names, credentials included.
"""

from __future__ import annotations

from typing import Any, cast

from handlers.api import NodeApi
from handlers.openapi import ANY_OBJECT, BOOL, STR, arr, nullable, obj, op
from handlers.throttle import ENV_WRITE
from node import NodeManager, validate

# How each source of the relay list is described on the dashboard.
SOURCE_TEXT = {
    "dashboard": "Set here: this list wins over RELAYS and over the relays saved with the credentials "
                 "until you go back to them.",
    "credentials": "Saved with the credentials (Configure). Changes here are stored and win over them "
                   "until you go back.",
    "environment": "From RELAYS in the environment. Changes here are stored and win over it until you go "
                   "back.",
    "embedded": "The relay embedded in this server (RELAYS is not set). Changes here are stored and win "
                "until you go back.",
    "demo": "Demo: changes move the demo node only and are not stored.",
}


RELAY_SETTINGS = obj(
    {"relays": arr(STR), "source": STR, "sourceText": STR, "override": BOOL,
     "default": obj({"relays": arr(STR), "source": STR}), "relayDetails": arr(ANY_OBJECT),
     "warning": nullable(STR), "nodeActive": BOOL},
    ["relays", "source", "relayDetails"],
)


def relay_settings(manager: NodeManager) -> dict[str, Any]:
    """``{relays, source, sourceText, override, default: {relays, source}, relayDetails, warning, ...}``,
    relay URLs without credentials."""
    relays, source = manager.relay_choice()
    if manager.service is not None:
        relays = list(manager.service.relays)
    default, default_source = manager.relay_choice(ignore_dashboard=True)
    return cast(dict[str, Any], validate.redact_urls_in({
        "relays": relays,
        "source": source,
        "sourceText": SOURCE_TEXT.get(source, ""),
        "override": source == "dashboard",
        "default": {"relays": default, "source": default_source},
        "relayDetails": manager.relay_details(),
        "warning": manager.relay_warning(),
        "nodeActive": bool(manager.service is not None and manager.service.active),
    }))


def known_relays(manager: NodeManager) -> list[str]:
    """Every relay URL the signer has now (running, chosen, default), to map redacted URLs back to."""
    running = list(manager.service.relays) if manager.service is not None else []
    return [*running, *manager.relay_choice()[0], *manager.relay_choice(ignore_dashboard=True)[0]]


class RelaysApi(NodeApi):
    """GET the relays and their live state; PUT ``{relays: [url, ...]}`` to set them; DELETE to go back."""

    rate_limits = {"PUT": ENV_WRITE, "DELETE": ENV_WRITE}

    openapi = {
        "get": op("The signer's relays, where the list comes from, and each relay's live state",
                  ok=RELAY_SETTINGS, errors=(503,)),
        "put": op("Set the signer's relays; the running node moves to them without a restart",
                  description="Stored, and wins over RELAYS and over the relays saved with the credentials "
                              "until DELETE. New relays are connected and subscribed before the removed ones "
                              "go, so requests in flight are kept.",
                  request=obj({"relays": arr(STR, minItems=1, maxItems=32)}, ["relays"]),
                  example={"relays": ["wss://relay.example.com"]},
                  ok=obj({**RELAY_SETTINGS["properties"], "applied": BOOL}), errors=(400, 413, 415, 503)),
        "delete": op("Go back to the default relays (saved with the credentials, RELAYS, or embedded)",
                     ok=obj({**RELAY_SETTINGS["properties"], "applied": BOOL}), errors=(503,)),
    }

    def get(self) -> None:
        """The relay settings (see ``relay_settings``)."""
        self.write_json(relay_settings(self.manager))

    async def put(self) -> None:
        """Set the list (1 to 32 ws:// or wss:// URLs); the node moves live. ``400 relays: ...`` otherwise."""
        self.require_change_rights()
        body = self.body()
        if "relays" not in body:
            self.fail(400, "relays: required (a list of ws:// or wss:// URLs)")
            return
        try:
            relays = validate.relay_urls(body["relays"], "relays")
            relays = validate.unredact_relay_urls(relays, known_relays(self.manager))
            if not relays:
                raise ValueError("relays: at least one relay is needed (DELETE /api/relays goes back to the "
                                 "default)")
            moved = await self.manager.set_relays(relays)
        except ValueError as exc:
            self.fail(400, str(exc))
            return
        self.write_json({**relay_settings(self.manager), "applied": moved})

    async def delete(self) -> None:
        """Clear the list set here: back to the credentials' relays, RELAYS or the embedded relay."""
        self.require_change_rights()
        moved = await self.manager.set_relays(None)
        self.write_json({**relay_settings(self.manager), "applied": moved})


ROUTES: list[tuple[Any, ...]] = [(r"/api/relays", RelaysApi)]
