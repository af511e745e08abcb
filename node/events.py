"""Node events and the one JSON-safe converter, which decides what may leave the node.

Every event the node emits goes through :func:`safe_data`, which turns its payload into
JSON-safe data (dates as ISO strings, bytes as hex, errors as ``{name, message}``,
depth- and size-limited) and redacts anything that looks like a secret: fields named like
secrets, and strings that are encoded shares or nsecs.

The event stream's frame encoder (``handlers/event_frames.py``) uses it too, as ``json.dumps``'s
``default``: any value JSON has no type for, in any event, is converted here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

REDACTED = "[redacted]"
MAX_DEPTH = 6
MAX_ITEMS = 100
MAX_STRING = 4096

# Field names whose values never leave the node, whatever their type.
SECRET_KEYS = frozenset(
    {
        "seckey",
        "secret",
        "secret_key",
        "binder_sn",
        "hidden_sn",
        "share",
        "share_cred",
        "sharecred",
        "sharecredential",
        "nsec",
        "password",
        "api_key",
        "apikey",
        "session_id",
        "sessionid",
        "credentials_key",
        "keyshare_secret",
        "shared_secret",
        "plaintext",
    }
)
# Prefixes of encoded secrets (bech32 share package, NIP-19 secret key).
SECRET_PREFIXES = ("bfshare1", "nsec1")

Emit = Callable[[str, str, Any], Any]


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """One event as the node emits it: Igloo Server's ``type`` vocabulary, a message, data."""

    type: str
    message: str
    data: Any = None

    def to_json(self) -> dict[str, Any]:
        """The event with its data made JSON-safe."""
        return {"type": self.type, "message": self.message, "data": safe_data(self.data)}


def _is_secret_key(name: str) -> bool:
    return name.lower().replace("-", "_") in SECRET_KEYS


def _safe_str(text: str) -> str:
    lowered = text.strip().lower()
    if any(prefix in lowered for prefix in SECRET_PREFIXES):
        return REDACTED
    if len(text) > MAX_STRING:
        return text[:MAX_STRING] + "…"
    return text


def error_json(exc: BaseException) -> dict[str, str]:
    """An exception as ``{name, message}`` with the message passed through the string filter."""
    return {"name": type(exc).__name__, "message": _safe_str(str(exc))}


def safe_data(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-safe data with secrets redacted (see the module docstring)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _safe_str(value)
    if depth >= MAX_DEPTH:
        return "[depth limit]"
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return safe_data(value.value, depth)
    if isinstance(value, BaseException):
        return error_json(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index >= MAX_ITEMS:
                out["…"] = f"{len(value) - MAX_ITEMS} more"
                break
            name = str(key)
            out[name] = REDACTED if _is_secret_key(name) else safe_data(item, depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        result = [safe_data(item, depth + 1) for item in items[:MAX_ITEMS]]
        if len(items) > MAX_ITEMS:
            result.append(f"… {len(items) - MAX_ITEMS} more")
        return result
    if hasattr(value, "to_public_json"):
        return safe_data(value.to_public_json(), depth)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return safe_data(fields, depth)
    # Unknown objects are named, never repr'd: a repr could carry anything.
    return f"<{type(value).__name__}>"
