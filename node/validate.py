"""Input validators shared by every layer: hex strings, public keys, relay URLs, sighash vectors.

Pure functions. A validator returns the value in its canonical form (lower-case hex, stripped URL) or
raises ``ValueError`` whose message starts with the field name and never echoes the input, so a message
can go straight into a 400 response or a configuration error.
"""

from __future__ import annotations

import json
import re
from typing import TypeGuard
from urllib.parse import urlsplit

HEX_DIGITS = frozenset("0123456789abcdef")
MAX_RELAY_URL_LENGTH = 512
MAX_RELAYS = 32
MAX_SIGHASH_VECTORS = 100  # per signing session (spec §4.7 leaves it open; bifrost has no cap)
MAX_TWEAKS = 8  # per sighash vector


def is_hex(value: object, nbytes: int | None = None) -> TypeGuard[str]:
    """True for a non-empty, even-length, lower-case hex string (of exactly ``nbytes`` bytes if given)."""
    if not isinstance(value, str) or not value or not set(value) <= HEX_DIGITS:
        return False
    return len(value) % 2 == 0 if nbytes is None else len(value) == 2 * nbytes


def hex_bytes(value: object, nbytes: int, field: str) -> str:
    """``value`` as lower-case hex of exactly ``nbytes`` bytes (upper-case input accepted)."""
    text = value.lower() if isinstance(value, str) else value
    if not is_hex(text, nbytes):
        raise ValueError(f"{field}: expected {2 * nbytes} hex characters")
    return text


def xonly_pubkey(value: object, field: str = "pubkey") -> str:
    """A public key as 64 lower-case hex characters; a 66-character 02/03-prefixed key is accepted.

    Only the form is checked; whether the x coordinate is on the curve is the caller's question.
    """
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected a 64-character hex public key")
    text = value.strip().lower()
    if len(text) == 66 and text[:2] in ("02", "03"):
        text = text[2:]
    if not is_hex(text, 32):
        raise ValueError(f"{field}: expected a 64-character hex public key")
    return text


def relay_url(value: object, field: str = "relay") -> str:
    """One ``ws://`` or ``wss://`` URL with a host, at most 512 characters, no spaces or control bytes."""
    if not isinstance(value, str):
        raise ValueError(f"{field}: every relay must be a string")
    url = value.strip()
    if len(url) > MAX_RELAY_URL_LENGTH or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError(f"{field}: relay URLs must be at most {MAX_RELAY_URL_LENGTH} characters, no spaces")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if parts is None or parts.scheme.lower() not in ("ws", "wss") or not host:
        raise ValueError(f"{field}: relay URLs must be ws:// or wss:// with a host")
    return url


def relay_urls(value: object, field: str = "RELAYS", max_count: int = MAX_RELAYS) -> list[str]:
    """A relay list, without duplicates, in order.

    Accepts a list of strings, or one string holding a JSON array or URLs separated by commas and/or
    whitespace (every form Igloo Server accepts). ``None`` is the empty list.
    """
    if value is None:
        return []
    items: object = value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                items = json.loads(text)
            except (ValueError, RecursionError):
                raise ValueError(f"{field}: expected a JSON array of relay URLs") from None
        else:
            items = text.replace(",", " ").split()
    if not isinstance(items, list):
        raise ValueError(f"{field}: expected a list of relay URLs")
    urls: list[str] = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        url = relay_url(item, field)
        if url not in urls:
            urls.append(url)
    if len(urls) > max_count:
        raise ValueError(f"{field}: at most {max_count} relays")
    return urls


def sighash_vectors(
    value: object, field: str = "message", *, max_vectors: int = MAX_SIGHASH_VECTORS
) -> list[list[str]]:
    """One 64-hex sighash, or a list of sighash vectors ``[sighash, ...tweaks]``, as lower-case vectors.

    1 to ``max_vectors`` vectors, each a sighash and at most ``MAX_TWEAKS`` tweaks of 32 bytes of hex
    (upper case accepted), no sighash twice. The one rule for requests we send and sessions we answer.
    """
    vectors = [[value]] if isinstance(value, str) else value
    if not isinstance(vectors, list) or not 1 <= len(vectors) <= max_vectors:
        raise ValueError(f"{field}: expected 1 to {max_vectors} sighash vectors (or one 64-hex sighash)")
    out: list[list[str]] = []
    for vector in vectors:
        if not isinstance(vector, list) or not 1 <= len(vector) <= 1 + MAX_TWEAKS:
            raise ValueError(f"{field}: each vector is [sighash, ...tweaks], at most {MAX_TWEAKS} tweaks")
        lowered = [item.lower() if isinstance(item, str) else item for item in vector]
        if not all(is_hex(item, 32) for item in lowered):
            raise ValueError(f"{field}: sighashes and tweaks must be 64 hex characters")
        out.append(lowered)
    if len({vector[0] for vector in out}) != len(out):
        raise ValueError(f"{field}: sighashes must be unique")
    return out


# ------------------------------------------------------------------------------------- redaction

REDACTED_PART = "***"
_RELAY_URL_IN_TEXT = re.compile(r"wss?://[^\s\"'<>\\]+", re.IGNORECASE)
_TRAILING_PUNCTUATION = ".,;:!)]}"


def redact_relay_url(url: str) -> str:
    """``url`` without what may be a credential: user info becomes ``***@`` and a query ``?***``.

    ``ws://user:pass@relay.example/path?auth=token`` → ``ws://***@relay.example/path?***``. The same URL
    always gives the same text, so a redacted URL still names one relay (``unredact_relay_urls`` maps it
    back). A URL that cannot be split keeps only its scheme.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return url.split("://", 1)[0] + "://" + REDACTED_PART
    if not host or (parts.username is None and parts.password is None and not parts.query
                    and not parts.fragment and "@" not in parts.netloc):
        return url if host else url.split("://", 1)[0] + "://" + REDACTED_PART
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    if "@" in parts.netloc:
        netloc = f"{REDACTED_PART}@{netloc}"
    query = f"?{REDACTED_PART}" if parts.query or parts.fragment else ""
    return f"{parts.scheme}://{netloc}{parts.path}{query}"


def redact_urls(text: str) -> str:
    """``text`` with every ws:// or wss:// URL in it passed through ``redact_relay_url``."""
    if "://" not in text:
        return text
    return _RELAY_URL_IN_TEXT.sub(_redact_match, text)


def _redact_match(found: re.Match[str]) -> str:
    url = found.group(0)
    kept = url.rstrip(_TRAILING_PUNCTUATION)  # "ws://relay/, and": the comma ends the sentence, not the URL
    return redact_relay_url(kept) + url[len(kept):]


def redact_urls_in(value: object) -> object:
    """A JSON-like value (dicts, lists, strings) with ``redact_urls`` applied to every string in it."""
    if isinstance(value, str):
        return redact_urls(value)
    if isinstance(value, dict):
        return {key: redact_urls_in(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_urls_in(item) for item in value]
    return value


def unredact_relay_urls(urls: list[str], known: list[str] | tuple[str, ...]) -> list[str]:
    """``urls`` with each redacted form of a ``known`` URL replaced by that URL.

    A form that showed relays redacted can be sent back unchanged without losing their credentials.
    """
    originals = {redact_relay_url(url): url for url in known}
    return [originals.get(url, url) for url in urls]
