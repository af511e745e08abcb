"""bifrost v1 messages without I/O: seal and open kind-20004 events, check inbound requests and
responses, build outbound payloads (spec §4 to §6).

A responder checks what the reference node skips (spec §4.7, §9.2): the session's group id and
session id, membership and uniqueness of its members, the threshold, unique sighashes, a fresh
stamp and bounded sizes. A failed check raises :class:`Rejection` whose reason is safe to show.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from node.crypto import curve
from node.crypto.credentials import GroupPackage, SharePackage
from node.crypto.ecdh import EcdhPackage
from node.crypto.session import (
    PsigPackage,
    SessionPackage,
    get_group_id,
    get_session_id,
    verify_psig_pkg,
)
from node.nostr import cipher
from node.nostr.event import Event, sign_event_gen, verify_event
from node.policy import PeerPolicy
from node.validate import MAX_SIGHASH_VECTORS, is_hex, sighash_vectors, xonly_pubkey

KIND = 20004
PING_REQ, PING_RES = "/ping/req", "/ping/res"
ECHO_REQ, ECHO_RES = "/echo/req", "/echo/res"
SIGN_REQ, SIGN_RES = "/sign/req", "/sign/res"
ECDH_REQ, ECDH_RES = "/ecdh/req", "/ecdh/res"
RESPONSE_TAGS = frozenset({PING_RES, ECHO_RES, SIGN_RES, ECDH_RES})

MAX_CONTENT = 128 * 1024  # encrypted event content, characters
MAX_DATA = 64 * 1024  # decrypted envelope data, characters
STAMP_WINDOW = 300  # seconds either side of now


class Rejection(Exception):
    """An inbound message refused; ``str(self)`` says why (no secrets)."""


def compact(obj: Any) -> str:
    """JSON as ``JSON.stringify`` writes it."""
    return json.dumps(obj, separators=(",", ":"))


def new_msg_id() -> str:
    """A fresh message id: 16 random bytes as hex (spec §5.3)."""
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class Inbound:
    """A verified, decrypted message: who sent it, the envelope, and the carrying event's id."""

    sender: str
    tag: str
    id: str
    data: str
    event_id: str
    created_at: int


def subscription_filter(self_pubkey: str, peers: Iterable[str], since: int) -> dict[str, Any]:
    """The node's relay filter (spec §5.5), ``since`` already adjusted for clock skew."""
    return {"kinds": [KIND], "since": since, "authors": [*peers, self_pubkey], "#p": [self_pubkey]}


def seal(seckey: bytes, recipient: str, tag: str, msg_id: str, data: str, created_at: int) -> Event:
    """One kind-20004 event carrying ``[tag, id, data]`` encrypted to ``recipient`` (x-only hex)."""
    plaintext = cipher.encode_envelope(tag, msg_id, data)
    content = cipher.encrypt_payload_gen(seckey, bytes.fromhex(recipient), plaintext)
    return sign_event_gen(seckey, KIND, [["p", recipient]], content, created_at)


def open_event(seckey: bytes, self_pubkey: str, event: Event) -> Inbound:
    """Verify, check addressing, decrypt and parse one event; ``ValueError`` says why it bounced."""
    if event.kind != KIND:
        raise ValueError(f"unexpected event kind {event.kind}")
    if len(event.content) > MAX_CONTENT:
        raise ValueError("event content too large")
    if not any(len(t) >= 2 and t[0] == "p" and t[1] == self_pubkey for t in event.tags):
        raise ValueError("event is not addressed to this node")
    verify_event(event)
    plaintext = cipher.decrypt_payload(seckey, bytes.fromhex(event.pubkey), event.content)
    tag, msg_id, data = cipher.decode_envelope(plaintext)
    if len(data) > MAX_DATA:
        raise ValueError("message data too large")
    return Inbound(event.pubkey, tag, msg_id, data, event.id, event.created_at)


def member_idx(group: GroupPackage, pubkey: str) -> int | None:
    """The share index of an x-only member pubkey."""
    return group.idx_of_pubkey(pubkey)


def members_for(group: GroupPackage, pubkeys: Iterable[str]) -> list[int]:
    """Indexes of the commits whose x-only pubkey is in ``pubkeys``, in commit order (spec §4.7)."""
    wanted = set(pubkeys)
    return [c.idx for c in group.commits if curve.xonly(c.pubkey).hex() in wanted]


def policy_json(policy: PeerPolicy) -> str:
    """The ping/echo reply payload ``{"send":..,"recv":..}``."""
    return compact(policy.wire_json())


def parse_policy(data: str) -> PeerPolicy:
    """Parse a ping reply; ``ValueError`` when it is not ``{send: bool, recv: bool}``."""
    try:
        obj = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ValueError("ping reply is not JSON") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("send"), bool) or not isinstance(
        obj.get("recv"), bool
    ):
        raise ValueError("ping reply is not a policy object")
    return PeerPolicy(obj["send"], obj["recv"])


def _load(data: str, what: str) -> Any:
    if len(data) > MAX_DATA:
        raise Rejection(f"{what} too large")
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise Rejection(f"{what} is not valid JSON") from exc


def _check_members(group: GroupPackage, share: SharePackage, sender_idx: int, members: Any) -> None:
    if not isinstance(members, list) or not all(
        isinstance(m, int) and not isinstance(m, bool) for m in members
    ):
        raise Rejection("members must be a list of share indexes")
    known = {c.idx for c in group.commits}
    if any(m not in known for m in members):
        raise Rejection("members contain an index outside the group")
    if len(set(members)) != len(members):
        raise Rejection("members contain duplicates")
    if len(members) < group.threshold:
        raise Rejection(f"members: {len(members)} is below the threshold {group.threshold}")
    if share.idx not in members:
        raise Rejection("this node's share is not among the members")
    if sender_idx not in members:
        raise Rejection("the requester is not among the members")


def check_sign_request(
    group: GroupPackage,
    share: SharePackage,
    sender: str,
    data: str,
    now: int,
    *,
    stamp_window: int = STAMP_WINDOW,
    max_hashes: int = MAX_SIGHASH_VECTORS,
) -> SessionPackage:
    """Parse and check a ``/sign/req`` session package from ``sender``; raise :class:`Rejection`."""
    sender_idx = member_idx(group, sender)
    if sender_idx is None:
        raise Rejection("sender is not a group member")
    obj = _load(data, "session")
    try:
        session = SessionPackage.from_json(obj)
    except (ValueError, TypeError, KeyError) as exc:
        raise Rejection(f"malformed session: {exc}") from exc
    if session.gid != get_group_id(group):
        raise Rejection("session group id does not match this group")
    _check_members(group, share, sender_idx, session.members)
    try:
        sighash_vectors(session.hashes, "session hashes", max_vectors=max_hashes)
    except ValueError as exc:
        raise Rejection(str(exc)) from None
    if session.content is not None and not (session.content == "" or is_hex(session.content)):
        raise Rejection("session content must be hex")
    if not isinstance(session.stamp, int) or abs(now - session.stamp) > stamp_window:
        raise Rejection(f"session stamp is outside the ±{stamp_window}s window")
    expected = get_session_id(
        session.gid, session.members, session.hashes, session.content, session.type, session.stamp
    )
    if expected != session.sid:
        raise Rejection("session id does not match its contents")
    return session


def check_ecdh_request(group: GroupPackage, share: SharePackage, sender: str, data: str) -> EcdhPackage:
    """Parse and check an ``/ecdh/req`` package (the requester's own share package)."""
    sender_idx = member_idx(group, sender)
    if sender_idx is None:
        raise Rejection("sender is not a group member")
    obj = _load(data, "ECDH package")
    try:
        pkg = EcdhPackage.from_json(obj)
    except (ValueError, TypeError, KeyError) as exc:
        raise Rejection(f"malformed ECDH package: {exc}") from exc
    if pkg.idx != sender_idx:
        raise Rejection("ECDH package index does not belong to the sender")
    _check_members(group, share, sender_idx, pkg.members)
    ecdh_pk = pkg.ecdh_pk.lower()
    try:
        xonly = xonly_pubkey(ecdh_pk, "ecdh_pk")
    except ValueError:
        raise Rejection("ecdh_pk must be an x-only or compressed public key") from None
    # A compressed key keeps its prefix: the key share is computed on that very point.
    point = ecdh_pk if len(ecdh_pk) == 66 else "02" + xonly
    if not curve.is_valid_point(bytes.fromhex(point)):
        raise Rejection("ecdh_pk is not a point on the curve")
    return pkg


def check_psig_response(
    group: GroupPackage, session: SessionPackage, sender: str, data: str
) -> PsigPackage:
    """Parse and verify a ``/sign/res``; ``ValueError`` names the problem."""
    sender_idx = member_idx(group, sender)
    try:
        pkg = PsigPackage.from_json(json.loads(data))
    except (json.JSONDecodeError, TypeError, KeyError) as exc:
        raise ValueError(f"malformed partial signature package: {exc}") from exc
    if pkg.idx != sender_idx:
        raise ValueError("partial signature index does not belong to the sender")
    if pkg.pubkey.lower() != group.commit_for(pkg.idx).pubkey.hex():
        raise ValueError("partial signature pubkey does not belong to the sender")
    verify_psig_pkg(group, session, pkg)
    return pkg


def check_ecdh_response(
    group: GroupPackage, members: list[int], ecdh_pk: str, sender: str, data: str
) -> EcdhPackage:
    """Parse and check an ``/ecdh/res``; ``ValueError`` names the problem."""
    try:
        pkg = EcdhPackage.from_json(json.loads(data))
    except (json.JSONDecodeError, TypeError, KeyError) as exc:
        raise ValueError(f"malformed ECDH package: {exc}") from exc
    if pkg.idx != member_idx(group, sender):
        raise ValueError("ECDH package index does not belong to the sender")
    if list(pkg.members) != list(members) or pkg.ecdh_pk.lower() != ecdh_pk:
        raise ValueError("ECDH package answers a different request")
    if not curve.is_valid_point(bytes.fromhex(pkg.keyshare)):
        raise ValueError("ECDH keyshare is not a point")
    return pkg
