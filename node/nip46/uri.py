"""``bunker://`` links (this signer offers itself) and ``nostrconnect://`` links (a client offers itself)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, urlsplit

from node.nip46.permissions import RequestedPermission, parse_requested
from node.validate import relay_urls, xonly_pubkey

MAX_URI_LENGTH = 8192
MAX_URI_RELAYS = 8
MAX_SECRET_LENGTH = 256
MAX_NAME_LENGTH = 100
MAX_URL_LENGTH = 512


def bunker_uri(signer_pubkey: str, relays: list[str], secret: str | None) -> str:
    """``bunker://<remote-signer-pubkey>?relay=…&relay=…&secret=…`` (every value percent-encoded)."""
    parts = [f"relay={quote(url, safe='')}" for url in relays]
    if secret:
        parts.append(f"secret={quote(secret, safe='')}")
    return f"bunker://{signer_pubkey}" + ("?" + "&".join(parts) if parts else "")


@dataclass(frozen=True)
class NostrConnectOffer:
    """A parsed ``nostrconnect://`` link. ``name``/``url``/``image`` are unauthenticated display hints."""

    client_pubkey: str
    relays: list[str]
    secret: str = field(repr=False)
    requested: list[RequestedPermission]
    name: str = ""
    url: str = ""
    image: str = ""

    def profile(self) -> dict[str, str]:
        """The display hints that were given."""
        return {k: v for k, v in (("name", self.name), ("url", self.url), ("image", self.image)) if v}


def _web_url(value: str) -> str:
    """An http(s) URL for display, or "" (never a javascript: or data: link on our pages)."""
    text = value.strip()
    if len(text) > MAX_URL_LENGTH or any(ord(c) < 0x20 for c in text):
        return ""
    try:
        parts = urlsplit(text)
    except ValueError:
        return ""
    return text if parts.scheme in ("http", "https") and parts.netloc else ""


def _display_text(value: str, limit: int) -> str:
    return "".join(c for c in value if c.isprintable())[:limit].strip()


def parse_nostrconnect(uri: object) -> NostrConnectOffer:
    """Parse and check a ``nostrconnect://<client-pubkey>?relay=…&secret=…&perms=…&name=…`` link.

    ``ValueError`` names what is wrong (``uri``, ``uri.relay``, ``uri.secret``) without echoing the input.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError("uri: required (a nostrconnect:// link)")
    text = uri.strip()
    if len(text) > MAX_URI_LENGTH:
        raise ValueError(f"uri: longer than {MAX_URI_LENGTH} characters")
    if not text.lower().startswith("nostrconnect://"):
        raise ValueError("uri: must start with nostrconnect://")
    rest = text[len("nostrconnect://"):]
    pubkey_part, _, query = rest.partition("?")
    try:
        client = xonly_pubkey(pubkey_part.strip("/"), "uri")
    except ValueError:
        raise ValueError("uri: the client pubkey must be 64 hex characters") from None
    try:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=200)
    except ValueError:
        raise ValueError("uri: the query string cannot be read") from None
    relays = relay_urls(params.get("relay", []), "uri.relay", MAX_URI_RELAYS)
    if not relays:
        raise ValueError("uri.relay: at least one relay is required")
    secrets = params.get("secret", [])
    secret = secrets[0].strip() if secrets else ""
    if not secret:
        raise ValueError("uri.secret: required")
    if len(secret) > MAX_SECRET_LENGTH:
        raise ValueError(f"uri.secret: longer than {MAX_SECRET_LENGTH} characters")
    return NostrConnectOffer(
        client_pubkey=client,
        relays=relays,
        secret=secret,
        requested=parse_requested(",".join(params.get("perms", []))),
        name=_display_text(params.get("name", [""])[0], MAX_NAME_LENGTH),
        url=_web_url(params.get("url", [""])[0]),
        image=_web_url(params.get("image", [""])[0]),
    )


def client_profile(metadata: object) -> dict[str, str]:
    """The display hints of ``connect``'s 4th param (a JSON object with name/url/image), cleaned."""
    if not isinstance(metadata, dict):
        return {}
    out: dict[str, str] = {}
    name = metadata.get("name")
    if isinstance(name, str) and _display_text(name, MAX_NAME_LENGTH):
        out["name"] = _display_text(name, MAX_NAME_LENGTH)
    for key in ("url", "image"):
        value = metadata.get(key)
        if isinstance(value, str) and _web_url(value):
            out[key] = _web_url(value)
    return out
