"""What a paired client may do: allow / ask / deny per method, and per event kind for ``sign_event``.

A session's ``Permissions`` hold explicit decisions; anything not listed falls back to the defaults of a new
session (``get_public_key`` and ``ping`` allowed, everything else asked). For ``sign_event`` a kind-specific
entry wins over the ``"*"`` entry, which wins over the method entry; a method-level ``deny`` refuses every
kind. Igloo Server's JSON shape ``{methods: {name: bool}, kinds: {"<kind>"|"*": bool}}`` is accepted
(``true`` = allow, ``false`` = deny); the strings ``"allow"``, ``"ask"``, ``"deny"`` add the third state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

SIGN_EVENT = "sign_event"
PERMISSION_METHODS = (
    "get_public_key",
    "ping",
    "sign_event",
    "nip44_encrypt",
    "nip44_decrypt",
    "nip04_encrypt",
    "nip04_decrypt",
)
"""Methods a permission can name; session management (connect, switch_relays, logout) is always answered."""

MAX_KIND_ENTRIES = 256
MAX_REQUESTED = 64
_MAX_KIND = 65535


class Decision(StrEnum):
    """What happens to a request: answered at once, queued for a human, or refused at once."""

    ALLOW = "allow"
    ASK = "ask"
    DENY = "deny"


DEFAULT_METHODS: dict[str, Decision] = {"get_public_key": Decision.ALLOW, "ping": Decision.ALLOW}


def parse_decision(value: object, field_name: str) -> Decision:
    """``True``/``"allow"`` → allow, ``False``/``"deny"`` → deny, ``"ask"`` → ask; else ``ValueError``."""
    if value is True:
        return Decision.ALLOW
    if value is False:
        return Decision.DENY
    if isinstance(value, str) and value.lower() in Decision.__members__.values():
        return Decision(value.lower())
    raise ValueError(f"{field_name}: expected true, false, \"allow\", \"ask\" or \"deny\"")


def kind_key(value: object, field_name: str = "kinds") -> str:
    """A kinds-map key: ``"*"`` or a decimal kind 0..65535 (as a string)."""
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else None
    if text == "*":
        return text
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 5 or int(text) > _MAX_KIND:
        raise ValueError(f"{field_name}: keys must be \"*\" or an event kind 0..65535")
    return str(int(text))


@dataclass
class Permissions:
    """One session's explicit decisions (``methods`` by method name, ``kinds`` by kind or ``"*"``)."""

    methods: dict[str, Decision] = field(default_factory=dict)
    kinds: dict[str, Decision] = field(default_factory=dict)

    def method_decision(self, method: str) -> Decision:
        """The decision for a method, defaults included (kinds not considered)."""
        return self.methods.get(method) or DEFAULT_METHODS.get(method, Decision.ASK)

    def decide(self, method: str, kind: int | None = None) -> Decision:
        """The decision for one request."""
        base = self.method_decision(method)
        if method != SIGN_EVENT or base is Decision.DENY:
            return base
        if kind is not None and str(kind) in self.kinds:
            return self.kinds[str(kind)]
        if "*" in self.kinds:
            return self.kinds["*"]
        return base

    def patched(self, patch: object) -> Permissions:
        """A copy with ``{methods?, kinds?}`` applied (a ``null`` value removes the entry); ``ValueError``."""
        if not isinstance(patch, dict):
            raise ValueError("policy: expected an object with methods and/or kinds")
        unknown = sorted(k for k in patch if k not in ("methods", "kinds"))
        if unknown:
            raise ValueError("policy: only methods and kinds can be set")
        if "methods" not in patch and "kinds" not in patch:
            raise ValueError("policy: no changes given (methods and/or kinds)")
        methods, kinds = dict(self.methods), dict(self.kinds)
        raw_methods = patch.get("methods", {})
        if not isinstance(raw_methods, dict):
            raise ValueError("policy.methods: expected an object")
        for name, value in raw_methods.items():
            if name not in PERMISSION_METHODS:
                raise ValueError(f"policy.methods: unknown method (known: {', '.join(PERMISSION_METHODS)})")
            if value is None:
                methods.pop(name, None)
            else:
                methods[name] = parse_decision(value, f"policy.methods.{name}")
        raw_kinds = patch.get("kinds", {})
        if not isinstance(raw_kinds, dict):
            raise ValueError("policy.kinds: expected an object")
        for raw_key, value in raw_kinds.items():
            key = kind_key(raw_key, "policy.kinds")
            if value is None:
                kinds.pop(key, None)
            else:
                kinds[key] = parse_decision(value, f"policy.kinds.{key}")
        if len(kinds) > MAX_KIND_ENTRIES:
            raise ValueError(f"policy.kinds: at most {MAX_KIND_ENTRIES} entries")
        return Permissions(methods, kinds)

    def to_json(self) -> dict[str, Any]:
        """``{methods: {every known method: decision}, kinds: {explicit entries}}``."""
        return {
            "methods": {name: self.method_decision(name).value for name in PERMISSION_METHODS},
            "kinds": {key: value.value for key, value in sorted(self.kinds.items(), key=_kind_order)},
        }

    def to_stored(self) -> dict[str, Any]:
        """Only the explicit entries (what storage keeps)."""
        return {
            "methods": {k: v.value for k, v in self.methods.items()},
            "kinds": {k: v.value for k, v in self.kinds.items()},
        }

    @classmethod
    def from_stored(cls, obj: object) -> Permissions:
        """Read back what ``to_stored`` wrote (invalid entries are dropped, never guessed)."""
        if not isinstance(obj, dict):
            return cls()
        perms = cls()
        sources = (("methods", perms.methods, _method_name), ("kinds", perms.kinds, kind_key))
        for source, target, check in sources:
            entries = obj.get(source)
            if not isinstance(entries, dict):
                continue
            for key, value in entries.items():
                try:
                    target[check(key)] = parse_decision(value, source)
                except ValueError:
                    continue
        return perms


def _method_name(value: object, field_name: str = "methods") -> str:
    if value not in PERMISSION_METHODS:
        raise ValueError(f"{field_name}: unknown method")
    return str(value)


def _kind_order(item: tuple[str, Decision]) -> tuple[int, int]:
    return (-1, 0) if item[0] == "*" else (0, int(item[0]))


@dataclass(frozen=True)
class RequestedPermission:
    """One entry of a client's ``perms`` list: ``method`` or ``sign_event:<kind>``."""

    method: str
    kind: int | None = None

    def __str__(self) -> str:
        return self.method if self.kind is None else f"{self.method}:{self.kind}"

    def grant(self, perms: Permissions) -> Permissions:
        """``perms`` with this permission allowed."""
        if self.kind is not None:
            return perms.patched({"kinds": {str(self.kind): "allow"}})
        return perms.patched({"methods": {self.method: "allow"}})


def parse_requested(text: object) -> list[RequestedPermission]:
    """The comma-separated ``method[:param]`` list of ``connect`` or ``nostrconnect://`` (spec §perms).

    Entries Igloo does not know are dropped (they could never be granted); at most 64 are kept.
    """
    if not isinstance(text, str) or not text.strip():
        return []
    out: list[RequestedPermission] = []
    for raw in text.split(",")[: 4 * MAX_REQUESTED]:
        name, _, param = raw.strip().partition(":")
        if name not in PERMISSION_METHODS:
            continue
        kind: int | None = None
        if param:
            if name != SIGN_EVENT:
                continue
            try:
                kind = int(kind_key(param))
            except ValueError:
                continue
        entry = RequestedPermission(name, kind)
        if entry not in out:
            out.append(entry)
        if len(out) >= MAX_REQUESTED:
            break
    return out
