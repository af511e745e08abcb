"""NIP-01 relay messages: strict parsing and cheap building of the JSON arrays on the wire.

Client to relay: ``EVENT``, ``REQ``, ``CLOSE``. Relay to client: ``EVENT``, ``OK``, ``EOSE``,
``CLOSED``, ``NOTICE``. Parsers raise ``ValueError`` (or a subclass that carries the event or
subscription id, so a relay can answer with ``OK`` / ``CLOSED`` instead of a bare ``NOTICE``).

``parse_client_message`` also accepts ``["REQ", id, [filter, ...]]``, the non-standard form that
bifrost 1.0.7 nodes send (a list of filters wrapped in one more array); builders always write
the standard form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from node.nostr.event import Event
from node.nostr.filters import Filter
from node.validate import is_hex

MAX_SUB_ID_LENGTH = 64
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class InvalidEventMessage(ValueError):
    """An ``EVENT`` frame whose event is malformed; ``event_id`` is set when it could be read."""

    def __init__(self, message: str, event_id: str | None) -> None:
        super().__init__(message)
        self.event_id = event_id


class InvalidSubscription(ValueError):
    """A ``REQ`` frame with a readable subscription id but bad filters."""

    def __init__(self, message: str, sub_id: str) -> None:
        super().__init__(message)
        self.sub_id = sub_id


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """``["EVENT", event]`` from a client (shape checked; signature not yet verified)."""

    event: Event


@dataclass(frozen=True, slots=True)
class ClientReq:
    """``["REQ", sub_id, filter, ...]`` from a client."""

    sub_id: str
    filters: list[Filter]


@dataclass(frozen=True, slots=True)
class ClientClose:
    """``["CLOSE", sub_id]`` from a client."""

    sub_id: str


@dataclass(frozen=True, slots=True)
class RelayEvent:
    """``["EVENT", sub_id, event]`` from a relay (shape checked; signature not yet verified)."""

    sub_id: str
    event: Event


@dataclass(frozen=True, slots=True)
class RelayOk:
    """``["OK", event_id, accepted, message]`` from a relay."""

    event_id: str
    accepted: bool
    message: str


@dataclass(frozen=True, slots=True)
class RelayEose:
    """``["EOSE", sub_id]``: stored events have all been sent."""

    sub_id: str


@dataclass(frozen=True, slots=True)
class RelayClosed:
    """``["CLOSED", sub_id, message]``: the relay ended a subscription."""

    sub_id: str
    message: str


@dataclass(frozen=True, slots=True)
class RelayNotice:
    """``["NOTICE", message]``: a human-readable note from the relay."""

    message: str


ClientMessage = ClientEvent | ClientReq | ClientClose
RelayMessage = RelayEvent | RelayOk | RelayEose | RelayClosed | RelayNotice


def _decode(text: str | bytes) -> list[Any]:
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError("message is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"message is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        raise ValueError("message must be a JSON array starting with a type string")
    return value


def _has_lone_surrogate(text: str | bytes, value: Any) -> bool:
    """True when a ``\\udXXX`` escape decoded to a lone surrogate: not Unicode, cannot be sent as UTF-8.

    Only messages that contain such an escape (rare: a valid pair, or an attack) pay for the re-encoding.
    """
    raw = text.decode("latin-1") if isinstance(text, bytes) else text
    if not _SURROGATE_ESCAPE.search(raw):
        return False
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return True
    return False


def _sub_id(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_SUB_ID_LENGTH:
        raise ValueError(f"subscription id must be a string of 1 to {MAX_SUB_ID_LENGTH} characters")
    return value


def _event_id_of(obj: object) -> str | None:
    if isinstance(obj, dict):
        value = obj.get("id")
        if is_hex(value, 32):
            return value
    return None


def _req_filters(args: list[Any], sub_id: str) -> list[Filter]:
    raw: list[Any] = []
    for arg in args:
        # bifrost 1.0.7 wraps its filters in one extra list: ["REQ", id, [filter]].
        if isinstance(arg, list):
            raw.extend(arg)
        else:
            raw.append(arg)
    if not raw:
        raise InvalidSubscription("REQ needs at least one filter", sub_id)
    try:
        return [Filter.from_json(obj) for obj in raw]
    except ValueError as exc:
        raise InvalidSubscription(str(exc), sub_id) from None


def parse_client_message(text: str | bytes) -> ClientMessage:
    """Parse one client-to-relay frame; ``ValueError`` (or a subclass) explains what is wrong."""
    msg = _decode(text)
    kind = msg[0]
    if _has_lone_surrogate(text, msg):
        problem = "message has a lone surrogate escape (not valid Unicode)"
        if kind == "EVENT" and len(msg) == 2:
            raise InvalidEventMessage(problem, _event_id_of(msg[1]))
        raise ValueError(problem)
    if kind == "EVENT":
        if len(msg) != 2:
            raise InvalidEventMessage(
                "EVENT takes exactly one event", _event_id_of(msg[1] if len(msg) > 1 else None)
            )
        try:
            return ClientEvent(Event.from_json(msg[1]))
        except ValueError as exc:
            raise InvalidEventMessage(str(exc), _event_id_of(msg[1])) from None
    if kind == "REQ":
        if len(msg) < 2:
            raise ValueError("REQ needs a subscription id")
        sub_id = _sub_id(msg[1])
        return ClientReq(sub_id, _req_filters(msg[2:], sub_id))
    if kind == "CLOSE":
        if len(msg) != 2:
            raise ValueError("CLOSE takes exactly one subscription id")
        return ClientClose(_sub_id(msg[1]))
    raise ValueError(f"unsupported message type {json.dumps(kind)[:20]}")


def parse_relay_message(text: str | bytes) -> RelayMessage:
    """Parse one relay-to-client frame; ``ValueError`` explains what is wrong."""
    msg = _decode(text)
    kind = msg[0]
    if _has_lone_surrogate(text, msg):
        raise ValueError("message has a lone surrogate escape (not valid Unicode)")
    if kind == "EVENT":
        if len(msg) != 3:
            raise ValueError("EVENT from a relay takes a subscription id and one event")
        return RelayEvent(_sub_id(msg[1]), Event.from_json(msg[2]))
    if kind == "OK":
        if (
            len(msg) != 4
            or _event_id_of({"id": msg[1]}) is None
            or not isinstance(msg[2], bool)
            or not isinstance(msg[3], str)
        ):
            raise ValueError('OK must be ["OK", <event id>, <bool>, <string>]')
        return RelayOk(msg[1], msg[2], msg[3])
    if kind == "EOSE":
        if len(msg) != 2:
            raise ValueError("EOSE takes exactly one subscription id")
        return RelayEose(_sub_id(msg[1]))
    if kind == "CLOSED":
        if len(msg) not in (2, 3) or (len(msg) == 3 and not isinstance(msg[2], str)):
            raise ValueError('CLOSED must be ["CLOSED", <sub id>, <string>]')
        return RelayClosed(_sub_id(msg[1]), msg[2] if len(msg) == 3 else "")
    if kind == "NOTICE":
        if len(msg) != 2 or not isinstance(msg[1], str):
            raise ValueError('NOTICE must be ["NOTICE", <string>]')
        return RelayNotice(msg[1])
    raise ValueError(f"unsupported message type {json.dumps(kind)[:20]}")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def event_json(event: Event) -> str:
    """The event serialized once, compactly, for splicing into frames."""
    return _dumps(event.to_json())


def build_event(event: Event) -> str:
    """Client frame ``["EVENT", event]``."""
    return '["EVENT",' + event_json(event) + "]"


def build_req(sub_id: str, filters: Sequence[Filter | dict[str, Any]]) -> str:
    """Client frame ``["REQ", sub_id, filter, ...]`` (always the standard NIP-01 form)."""
    _sub_id(sub_id)
    if not filters:
        raise ValueError("REQ needs at least one filter")
    objs = [flt.to_json() if isinstance(flt, Filter) else flt for flt in filters]
    return _dumps(["REQ", sub_id, *objs])


def build_close(sub_id: str) -> str:
    """Client frame ``["CLOSE", sub_id]``."""
    return _dumps(["CLOSE", _sub_id(sub_id)])


def sub_id_prefix(sub_id: str) -> str:
    """``["EVENT",<sub id>,`` — cache it per subscription and splice event JSON after it."""
    return '["EVENT",' + _dumps(sub_id) + ","


def build_relay_event(sub_id: str, event_text: str) -> str:
    """Relay frame ``["EVENT", sub_id, event]`` from already-serialized event JSON."""
    return sub_id_prefix(sub_id) + event_text + "]"


def build_ok(event_id: str, accepted: bool, message: str = "") -> str:
    """Relay frame ``["OK", event_id, accepted, message]``."""
    return _dumps(["OK", event_id, accepted, message])


def build_eose(sub_id: str) -> str:
    """Relay frame ``["EOSE", sub_id]``."""
    return _dumps(["EOSE", sub_id])


def build_closed(sub_id: str, message: str) -> str:
    """Relay frame ``["CLOSED", sub_id, message]``."""
    return _dumps(["CLOSED", sub_id, message])


def build_notice(message: str) -> str:
    """Relay frame ``["NOTICE", message]``."""
    return _dumps(["NOTICE", message])
