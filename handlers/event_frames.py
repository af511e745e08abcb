"""The event stream's wire format: the frame shape, its JSON encoding, the WebSocket frame, close codes.

No sockets and no state here: the publisher (``handlers/event_hub.py``) and the socket handler
(``handlers/events.py``) both build their frames with these functions.
"""

from __future__ import annotations

import json
import secrets
import struct
from datetime import UTC, datetime
from typing import Any

from node import safe_data

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_SLOW = 1013
CLOSE_AUTH_ENDED = 4401

UNSERIALIZABLE = {"error": "event data could not be serialized"}


def utc_now_iso() -> str:
    """The current time as ISO-8601 UTC with milliseconds (``...Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def frame_body(type_: str, message: str, data: object = None, seq: int | None = None) -> dict[str, Any]:
    """The standard frame shape."""
    return {
        "type": type_,
        "message": message,
        "data": data,
        "timestamp": utc_now_iso(),
        "id": secrets.token_hex(8),
        "seq": seq,
    }


def encode_payload(body: dict[str, Any]) -> bytes:
    """Serialize one frame body to compact UTF-8 JSON, never failing.

    Values JSON has no type for (bytes, dates, exceptions, sets, objects) go through the node's one
    converter, ``safe_data``. Data nested deeper than the parser allows is replaced by an error note.
    """
    try:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=safe_data).encode()
    except UnicodeEncodeError:
        pass  # a lone surrogate somewhere: ASCII-escaped JSON still carries it faithfully
    except (ValueError, TypeError, RecursionError):
        body = dict(body, data=UNSERIALIZABLE)
    try:
        return json.dumps(body, separators=(",", ":"), default=safe_data).encode("ascii")
    except (ValueError, TypeError, RecursionError):
        safe = dict(body, data=UNSERIALIZABLE)
        return json.dumps(safe, separators=(",", ":"), default=str).encode("ascii")


def websocket_text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented WebSocket text frame (server to client, RFC 6455 §5.2)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size <= 0xFFFF:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload
