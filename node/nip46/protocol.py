"""NIP-46 messages on the wire, without I/O: open a kind-24133 request, check it, seal a response.

Requests are NIP-44 encrypted JSON ``{id, method, params: [string]}``; responses ``{id, result, error?}``
NIP-44 encrypted to the client and p-tagged to it. Everything here is bounded: payload size, JSON depth,
number and size of params.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from node import validate
from node.crypto import curve
from node.nostr import nip04, nip44
from node.nostr.event import Event, compute_event_id, sign_event_gen, template_fields

KIND = 24133
MAX_ID_LENGTH = 128
MAX_METHOD_LENGTH = 64
MAX_PARAMS = 8
MAX_PLAINTEXT = 65535  # NIP-44's own limit
NIP44 = "nip44"
NIP04 = "nip04"


class BadRequest(ValueError):
    """A request that cannot be served; ``request_id`` is set when the id could be read (so we can answer)."""

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


@dataclass(frozen=True)
class Request:
    """One decrypted, shape-checked request."""

    id: str
    method: str
    params: list[str]


def transport_scheme(content: str) -> str:
    """``nip04`` for the legacy ``<b64>?iv=<b64>`` form, else ``nip44``."""
    return NIP04 if "?iv=" in content else NIP44


def open_content(transport_sk: bytes, sender: str, content: str, conv_key: bytes | None = None) -> str:
    """Decrypt a request's content (NIP-44, or legacy NIP-04 so the refusal can be read); ``ValueError``."""
    if transport_scheme(content) == NIP04:
        return nip04.decrypt(curve.ecdh_x(transport_sk, bytes.fromhex(sender)), content)
    key = conv_key if conv_key is not None else nip44.conversation_key(transport_sk, bytes.fromhex(sender))
    return nip44.decrypt(key, content)


def _unicode(text: str) -> bool:
    """False for text with a lone surrogate (JSON can escape one; it cannot be sent back as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _readable_id(obj: object) -> str | None:
    if isinstance(obj, dict):
        value = obj.get("id")
        if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH and _unicode(value):
            return value
    return None


def parse_request(plaintext: str) -> Request:
    """Check ``{id, method, params}``; ``BadRequest`` (with the id when readable) otherwise."""
    if len(plaintext) > MAX_PLAINTEXT:
        raise BadRequest("request too large")
    try:
        obj = json.loads(plaintext)
    except RecursionError:
        raise BadRequest("request is nested too deeply") from None
    except ValueError:
        raise BadRequest("request is not JSON") from None
    request_id = _readable_id(obj)
    if request_id is None:
        raise BadRequest("request needs a string id of 1 to 128 characters")
    assert isinstance(obj, dict)
    method = obj.get("method")
    if not isinstance(method, str) or not 0 < len(method) <= MAX_METHOD_LENGTH:
        raise BadRequest("request needs a method name", request_id)
    params = obj.get("params", [])
    strings = isinstance(params, list) and all(isinstance(p, str) for p in params)
    if not strings or len(params) > MAX_PARAMS:
        raise BadRequest(f"params must be a list of at most {MAX_PARAMS} strings", request_id)
    if not _unicode(method) or not all(_unicode(p) for p in params):
        raise BadRequest("request is not valid Unicode (a lone surrogate)", request_id)
    return Request(request_id, method, list(params))


def response_text(request_id: str, result: str = "", error: str | None = None) -> str:
    """``{"id", "result", "error"?}`` as compact JSON."""
    body: dict[str, Any] = {"id": request_id, "result": result}
    if error is not None:
        body["error"] = error
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    # Whatever slipped through must still go out as UTF-8: escaped JSON carries any code point.
    return text if _unicode(text) else json.dumps(body, separators=(",", ":"))


def seal(transport_sk: bytes, client: str, text: str, created_at: int, *, scheme: str = NIP44,
         conv_key: bytes | None = None) -> Event:
    """A signed kind-24133 event carrying ``text`` encrypted to ``client`` and p-tagged to it."""
    if scheme == NIP04:
        content = nip04.encrypt_gen(curve.ecdh_x(transport_sk, bytes.fromhex(client)), text)
    else:
        key = conv_key or nip44.conversation_key(transport_sk, bytes.fromhex(client))
        content = nip44.encrypt_gen(key, text)
    return sign_event_gen(transport_sk, KIND, [["p", client]], content, created_at)


# ----- method parameters --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventTemplate:
    """A ``sign_event`` param with its fields checked."""

    kind: int
    created_at: int
    tags: list[list[str]]
    content: str

    def event_id(self, pubkey: str) -> str:
        """The NIP-01 id this template gets under ``pubkey``."""
        return compute_event_id(pubkey, self.created_at, self.kind, self.tags, self.content)

    def signed(self, pubkey: str, event_id: str, sig: str) -> dict[str, Any]:
        """The full event as NIP-01 JSON."""
        return {"id": event_id, "pubkey": pubkey, "created_at": self.created_at, "kind": self.kind,
                "tags": self.tags, "content": self.content, "sig": sig}

    def preview(self, excerpt: int = 140) -> dict[str, Any]:
        """What the approval card shows: kind, a content excerpt, how many tags."""
        text = self.content if len(self.content) <= excerpt else self.content[:excerpt] + "…"
        return {"kind": self.kind, "content": text, "tags": len(self.tags), "createdAt": self.created_at}


def parse_event_template(params: list[str], group_pubkey: str | None = None) -> EventTemplate:
    """``sign_event``'s one param: JSON ``{kind, created_at, tags?, content?, pubkey?}``.

    Missing ``kind`` or ``created_at`` is an error, never a default. A ``pubkey`` other than the group key is
    refused (the signature would not be for it).
    """
    if len(params) != 1:
        raise ValueError("sign_event takes one param: the event as JSON")
    try:
        obj = json.loads(params[0])
    except RecursionError:
        raise ValueError("event is nested too deeply") from None
    except ValueError:
        raise ValueError("event is not JSON") from None
    if not isinstance(obj, dict):
        raise ValueError("event must be a JSON object")
    kind, created_at, tags, content = template_fields(obj)
    if not _unicode(json.dumps([tags, content], ensure_ascii=False)):
        raise ValueError("event: not valid Unicode (a lone surrogate in the content or tags)")
    pubkey = obj.get("pubkey")
    if pubkey not in (None, "") and (
        not isinstance(pubkey, str) or group_pubkey is None or pubkey.lower() != group_pubkey
    ):
        raise ValueError("event.pubkey: must be this signer's user pubkey (or omitted)")
    return EventTemplate(kind, created_at, tags, content)


def parse_cipher_params(method: str, params: list[str]) -> tuple[str, str]:
    """``[third_party_pubkey, text]`` for the nip04/nip44 methods; the pubkey must be on the curve."""
    if len(params) != 2:
        raise ValueError(f"{method} takes two params: the other party's pubkey and the text")
    peer, text = params
    try:
        peer = validate.xonly_pubkey(peer)
    except ValueError:
        peer = ""
    if not peer or not curve.is_valid_point(bytes.fromhex("02" + peer)):
        raise ValueError(f"{method}: the first param must be a valid 64-hex public key")
    if method.endswith("_encrypt") and len(text.encode("utf-8", "surrogatepass")) > MAX_PLAINTEXT:
        raise ValueError(f"{method}: the plaintext is larger than {MAX_PLAINTEXT} bytes")
    return peer, text
