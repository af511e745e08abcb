"""Value kinds of the configuration table: how one variable's text is parsed, described and written.

Each kind turns the text of one environment variable into a Python value or raises ``ValueError`` with a
message that does not repeat the variable's name (the caller adds it) and never echoes a secret. The same
kind describes its type and limits for the documentation and renders a default for the example file, so
the table in ``config/settings.py`` is the only place a default or a limit is written.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from config import igloo_server

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


class Kind:
    """Base of every value kind."""

    def parse(self, text: str) -> Any:
        """The value of ``text`` (already stripped and non-empty); ``ValueError`` when it is not valid."""
        raise NotImplementedError

    def describe(self) -> str:
        """Type and limits, for the documentation table."""
        raise NotImplementedError

    def render(self, value: Any) -> str:
        """``value`` as it would be written in an environment file."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)


@dataclass(frozen=True)
class Integer(Kind):
    """A whole number in ``[low, high]``; ``unit`` only documents it."""

    low: int
    high: int
    unit: str = ""

    def parse(self, text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise ValueError("expected an integer") from None
        if not self.low <= number <= self.high:
            raise ValueError(f"expected an integer between {self.low} and {self.high}")
        return number

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"integer{unit}, {self.low} to {self.high}"


@dataclass(frozen=True)
class Number(Kind):
    """A decimal number in ``[low, high]``."""

    low: float
    high: float
    unit: str = ""

    def parse(self, text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            raise ValueError("expected a number") from None
        if not self.low <= number <= self.high:  # also refuses nan
            raise ValueError(f"expected a number between {self.low:g} and {self.high:g}")
        return number

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"number{unit}, {self.low:g} to {self.high:g}"


@dataclass(frozen=True)
class Milliseconds(Kind):
    """Written in milliseconds (Igloo Server's unit), kept in seconds.

    A value below ``low_ms`` is refused with the number to write instead, because it is almost always
    a number of seconds (``FROSTR_SIGN_TIMEOUT=30`` meant 30 s, which is 30000 here as there).
    """

    low_ms: int
    high_ms: int

    def parse(self, text: str) -> float:
        try:
            millis = int(text)
        except ValueError:
            raise ValueError("expected whole milliseconds, for example 30000 for 30 seconds") from None
        if 0 < millis < self.low_ms:
            raise ValueError(
                f"milliseconds, as in Igloo Server: {millis} would be {millis} ms; "
                f"for {millis} seconds write {millis * 1000}"
            )
        if not self.low_ms <= millis <= self.high_ms:
            raise ValueError(f"expected milliseconds between {self.low_ms} and {self.high_ms}")
        return millis / 1000.0

    def describe(self) -> str:
        return f"milliseconds, {self.low_ms} to {self.high_ms}"

    def render(self, value: Any) -> str:
        return str(round(float(value) * 1000))


class Boolean(Kind):
    """``true``/``false`` (also 1/0, yes/no, on/off, any case): Igloo's own switches."""

    def parse(self, text: str) -> bool:
        lowered = text.lower()
        if lowered in TRUE_WORDS:
            return True
        if lowered in FALSE_WORDS:
            return False
        raise ValueError("expected true or false")

    def describe(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class IglooServerSwitch(Kind):
    """A switch Igloo Server flips only on one exact word; any value it would read the other way is
    refused here instead of being read differently.

    ``exact`` is the only spelling of the non-default state (``false`` for AUTH_ENABLED, ``true`` for
    TRUST_PROXY); ``default_state`` is what every other value means in Igloo Server.
    """

    exact: str
    default_state: bool

    def parse(self, text: str) -> bool:
        if text == self.exact:
            return not self.default_state
        lowered = text.lower()
        default_words = TRUE_WORDS if self.default_state else FALSE_WORDS
        if lowered in default_words:
            return self.default_state
        state = "on" if self.default_state else "off"
        if lowered in TRUE_WORDS | FALSE_WORDS:
            raise ValueError(
                f"Igloo Server reads every value except the exact word {self.exact} as {state}; "
                f"write {self.exact} or {'true' if self.default_state else 'false'}"
            )
        raise ValueError("expected true or false")

    def describe(self) -> str:
        state = "on" if not self.default_state else "off"
        return f"true or false ({state} only for the exact word `{self.exact}`, as in Igloo Server)"


@dataclass(frozen=True)
class Choice(Kind):
    """One of a fixed set of words; ``upper`` folds the input to upper case first."""

    options: tuple[str, ...]
    upper: bool = False
    hint: str = ""

    def parse(self, text: str) -> str:
        value = text.upper() if self.upper else text
        if value not in self.options:
            words = ", ".join(self.options[:-1]) + " or " + self.options[-1]
            raise ValueError(f"expected {words}" + (f" ({self.hint})" if self.hint else ""))
        return value

    def describe(self) -> str:
        return " / ".join(f"`{o}`" for o in self.options)


class HostName(Kind):
    """A host name or IP address to listen on."""

    def parse(self, text: str) -> str:
        if any(c.isspace() for c in text) or "/" in text:
            raise ValueError("expected a host name or IP address")
        return text

    def describe(self) -> str:
        return "host name or IP address"


class HostList(Kind):
    """Comma-separated host names (optionally ``name:port``) a request's Host may name; ``*`` allows any."""

    def parse(self, text: str) -> tuple[str, ...]:
        hosts: list[str] = []
        for item in (part.strip().lower() for part in text.split(",")):
            if not item:
                continue
            if item != "*" and (any(c.isspace() or c in "/@?#" for c in item) or item.startswith(":")):
                raise ValueError(
                    f"expected comma-separated host names like igloo.example.com or *, got {item!r}")
            hosts.append(item.rstrip("."))
        return tuple(dict.fromkeys(hosts))

    def describe(self) -> str:
        return "comma-separated host names, `*`"

    def render(self, value: Any) -> str:
        return ",".join(value)


class Directory(Kind):
    """A filesystem path (not touched while parsing)."""

    def parse(self, text: str) -> Path:
        return Path(text)

    def describe(self) -> str:
        return "path"


@dataclass(frozen=True)
class Text(Kind):
    """Free text of at most ``max_length`` characters, no control characters."""

    max_length: int

    def parse(self, text: str) -> str:
        if len(text) > self.max_length:
            raise ValueError(f"at most {self.max_length} characters")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
            raise ValueError("control characters are not allowed")
        return text

    def describe(self) -> str:
        return f"text, at most {self.max_length} characters"


@dataclass(frozen=True)
class Secret(Kind):
    """A password-like secret of at least ``min_length`` characters.

    Igloo Server's published placeholders are refused: anyone can read them. The value is never echoed.
    """

    min_length: int

    def parse(self, text: str) -> str:
        reason = igloo_server.placeholder_reason(text)
        if reason is not None:
            raise ValueError(reason)
        if len(text) < self.min_length:
            raise ValueError(f"must be at least {self.min_length} characters")
        return text

    def describe(self) -> str:
        return f"secret, at least {self.min_length} characters"


class HexSecret(Kind):
    """32 random bytes as 64 hex characters (Igloo Server's SESSION_SECRET format)."""

    def parse(self, text: str) -> str:
        reason = igloo_server.placeholder_reason(text)
        if reason is not None:
            raise ValueError(reason)
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
        if len(text) != 64 or len(raw) != 32:
            raise ValueError(f"expected 64 hex characters (32 random bytes); generate with: {GENERATE_HEX}")
        return text.lower()

    def describe(self) -> str:
        return "secret, 64 hex characters"


GENERATE_HEX = "openssl rand -hex 32"
# A random 32-byte key has about 30 distinct byte values; fewer than this means it was typed, not drawn.
MIN_DISTINCT_KEY_BYTES = 16


def parse_key(text: str) -> bytes:
    """A 32-byte key given as 64 hex characters or as base64 of 32 bytes; anything else is refused."""
    stripped = text.strip()
    key: bytes | None = None
    if len(stripped) == 64:
        try:
            key = bytes.fromhex(stripped)
        except ValueError:
            key = None
    elif len(stripped) in (43, 44):
        padded = stripped + "=" * (-len(stripped) % 4)
        alphabet = b"-_" if ("-" in stripped or "_" in stripped) else b"+/"
        try:
            key = base64.b64decode(padded.encode("ascii"), altchars=alphabet, validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            key = None
    if key is None or len(key) != 32:
        raise ValueError(
            "expected 32 random bytes as 64 hex characters (or base64); generate with: " + GENERATE_HEX
        )
    if len(set(key)) < MIN_DISTINCT_KEY_BYTES:
        raise ValueError("does not look random (too few distinct bytes); generate one with: " + GENERATE_HEX)
    return key


class CredentialsKey(Kind):
    """The key that encrypts stored credentials."""

    def parse(self, text: str) -> bytes:
        return parse_key(text)

    def describe(self) -> str:
        return "secret, 32 random bytes as 64 hex characters or base64"


@dataclass(frozen=True)
class BechCredential(Kind):
    """A ``bfgroup1…`` / ``bfshare1…`` credential (fully decoded when the node starts)."""

    prefix: str

    def parse(self, text: str) -> str:
        if not text.startswith(self.prefix + "1"):
            raise ValueError(f"expected a {self.prefix}1... credential")
        return text

    def describe(self) -> str:
        return f"`{self.prefix}1…` credential"


class RelayList(Kind):
    """ws(s):// URLs: a JSON array, or separated by commas and/or spaces (every Igloo Server form)."""

    def parse(self, text: str) -> tuple[str, ...]:
        from node.validate import relay_urls  # the one relay-URL validator

        try:
            return tuple(relay_urls(text, field="RELAYS"))
        except ValueError as exc:
            raise ValueError(str(exc).removeprefix("RELAYS: ")) from None

    def describe(self) -> str:
        return "ws(s):// URLs: JSON array or comma/space list, at most 32"

    def render(self, value: Any) -> str:
        return json.dumps(list(value)) if value else ""


class BaseUrl(Kind):
    """This server's public http(s) base URL, without query or fragment (a trailing / is dropped)."""

    def parse(self, text: str) -> str:
        parts = urlsplit(text)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("expected this server's public base URL, like https://igloo.example.com")
        return text.rstrip("/")

    def describe(self) -> str:
        return "http(s):// base URL"


SELF_ORIGIN = "@self"


class OriginList(Kind):
    """Comma-separated browser origins; ``*`` allows any, ``@self`` the server's own host."""

    def parse(self, text: str) -> tuple[str, ...]:
        origins: list[str] = []
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            if item in ("*", SELF_ORIGIN):
                origins.append(item)
                continue
            parsed = urlsplit(item)
            if parsed.scheme not in {"http", "https"} or not parsed.netloc or parsed.path not in {"", "/"}:
                raise ValueError(
                    f"expected comma-separated origins like https://example.com, @self or *, got {item!r}"
                )
            origins.append(f"{parsed.scheme}://{parsed.netloc.lower()}")
        return tuple(dict.fromkeys(origins))

    def describe(self) -> str:
        return "comma-separated origins, `@self`, `*`"

    def render(self, value: Any) -> str:
        return ",".join(value)


class PeerPolicySetting(NamedTuple):
    """One PEER_POLICIES entry: ``send``/``recv`` are None where the entry leaves the direction alone."""

    pubkey: str
    send: bool | None
    recv: bool | None
    label: str | None
    note: str | None


MAX_PEER_POLICIES = 1000
MAX_POLICY_TEXT = 200
_SEND_NAMES = ("allowSend", "send")
_RECV_NAMES = ("allowReceive", "recv")
# Fields Igloo Server's policy schema accepts that carry no decision here; accepted so a copied value parses.
_IGNORED_POLICY_FIELDS = frozenset({"roles", "metadata", "source", "normalizedPubkey"})
_POLICY_FIELDS = frozenset({"pubkey", "policy", "label", "note", *_SEND_NAMES, *_RECV_NAMES})


class PeerPolicies(Kind):
    """Igloo Server's PEER_POLICIES: a JSON array of entries, or one entry.

    An entry is ``{"pubkey": hex|02/03-hex|npub, "allowSend"|"send": bool, "allowReceive"|"recv": bool,
    "policy": {"send", "recv"}, "label", "note"}``. Unlike Igloo Server, which logs a warning and drops
    the whole value when it cannot read it, a value that cannot be read stops start-up: a dropped
    policy would let a blocked peer in.
    """

    def parse(self, text: str) -> tuple[PeerPolicySetting, ...]:
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            raise ValueError('expected JSON: an array of {"pubkey", "allowSend", "allowReceive"}') from None
        entries = parsed if isinstance(parsed, list) else [parsed]
        if len(entries) > MAX_PEER_POLICIES:
            raise ValueError(f"at most {MAX_PEER_POLICIES} entries")
        policies: dict[str, PeerPolicySetting] = {}
        for number, entry in enumerate(entries, start=1):
            policy = _peer_policy(entry, f"entry {number}")
            if policy.pubkey in policies:
                raise ValueError(f"entry {number}: a second entry for the same pubkey")
            policies[policy.pubkey] = policy
        return tuple(policies.values())

    def describe(self) -> str:
        return "JSON array of `{pubkey, allowSend, allowReceive}` (Igloo Server's format)"

    def render(self, value: Any) -> str:
        return json.dumps([_policy_json(p) for p in value]) if value else ""


def _policy_json(policy: PeerPolicySetting) -> dict[str, Any]:
    out: dict[str, Any] = {"pubkey": policy.pubkey}
    if policy.send is not None:
        out["allowSend"] = policy.send
    if policy.recv is not None:
        out["allowReceive"] = policy.recv
    return out


def _peer_policy(entry: object, where: str) -> PeerPolicySetting:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object with a pubkey")
    unknown = sorted(k for k in entry if k not in _POLICY_FIELDS | _IGNORED_POLICY_FIELDS)
    if unknown:
        expected = "pubkey, allowSend, allowReceive, label, note"
        raise ValueError(f"{where}: unknown field {unknown[0]!r} (expected {expected})")
    pubkey = _policy_pubkey(entry.get("pubkey"), where)
    nested = entry.get("policy")
    if nested is not None and not isinstance(nested, dict):
        raise ValueError(f"{where}: policy must be an object with send and recv")
    send = _direction(entry, _SEND_NAMES, nested, "send", where)
    recv = _direction(entry, _RECV_NAMES, nested, "recv", where)
    return PeerPolicySetting(pubkey, send, recv, _text(entry, "label", where), _text(entry, "note", where))


def _policy_pubkey(value: object, where: str) -> str:
    from node.nostr.nip19 import npub_decode
    from node.validate import xonly_pubkey

    if isinstance(value, str) and value.strip().startswith("npub1"):
        try:
            return npub_decode(value.strip()).hex()
        except ValueError:
            raise ValueError(f"{where}: pubkey is not a valid npub") from None
    try:
        return xonly_pubkey(value, "pubkey")
    except ValueError:
        raise ValueError(f"{where}: pubkey must be 64 hex characters, 02/03 + 64, or an npub") from None


def _direction(entry: dict[str, Any], names: Iterable[str], nested: dict[str, Any] | None, inner: str,
               where: str) -> bool | None:
    """The first of ``names`` present (then ``policy.<inner>``), as Igloo Server's schema reads it."""
    for name in names:
        if name in entry and entry[name] is not None:
            return _flag(entry[name], name, where)
    if nested is not None and nested.get(inner) is not None:
        return _flag(nested[inner], f"policy.{inner}", where)
    return None


def _flag(value: object, name: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: {name} must be true or false")
    return value


def _text(entry: dict[str, Any], name: str, where: str) -> str | None:
    value = entry.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_POLICY_TEXT:
        raise ValueError(f"{where}: {name} must be text of at most {MAX_POLICY_TEXT} characters")
    return value
