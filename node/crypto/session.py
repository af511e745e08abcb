"""The bifrost v1 session layer (spec §4): gid, sid, per-session nonces, psig packages, combine.

The public per-session context (tweaked nonces, rho, λ, R, c for every sighash vector) is
cached, so a requester that signs and then combines the same session computes it once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from node.crypto import curve, frost
from node.crypto.credentials import GroupPackage, SharePackage, parse_idx
from node.crypto.curve import N

_HEX32 = re.compile(r"[0-9a-fA-F]{64}")
_HEX_ANY = re.compile(r"(?:[0-9a-fA-F]{2})*")

SignatureEntry = tuple[str, str, str]


class PeerBlameError(ValueError):
    """A peer's partial signature (package) is invalid; names the member and the reason."""

    def __init__(self, idx: int | None, pubkey: str, reason: str) -> None:
        self.idx = idx
        self.pubkey = pubkey
        self.reason = reason
        super().__init__(f"{reason} : {pubkey}")


def _hex32(value: object, what: str) -> str:
    if not isinstance(value, str) or not _HEX32.fullmatch(value):
        raise ValueError(f"{what} must be 64 hex characters")
    return value.lower()


def get_group_id(group: GroupPackage) -> str:
    """gid = SHA256(sorted(bytes32(idx) ‖ hidden_pn ‖ binder_pn) ‖ group_pk) (spec §1.6)."""
    return _group_id(group)


@lru_cache(maxsize=64)
def _group_id(group: GroupPackage) -> str:
    nonces = {c.idx: (c.hidden_pn, c.binder_pn) for c in group.commits}
    return hashlib.sha256(frost.commit_list(nonces) + group.group_pk).hexdigest()


def _minimal_be(value: int) -> bytes:
    if value <= 0xFF:
        return value.to_bytes(1, "big")
    if value <= 0xFFFF:
        return value.to_bytes(2, "big")
    return value.to_bytes(4, "big")


def get_session_id(
    gid: str, members: list[int], hashes: list[list[str]], content: str | None, type: str, stamp: int
) -> str:
    """sid = SHA256(gid ‖ minimal(members…) ‖ hashes… ‖ content|0x00 ‖ utf8(type) ‖ u32(stamp))."""
    if content is not None and not _HEX_ANY.fullmatch(content):
        raise ValueError("session content must be even-length hex or null")
    if not 0 <= stamp < 2**32:
        raise ValueError("session stamp must fit in 32 bits")
    h = hashlib.sha256(bytes.fromhex(_hex32(gid, "session gid")))
    for member in members:
        h.update(_minimal_be(parse_idx(member, "session member")))
    for vector in hashes:
        for item in vector:
            h.update(bytes.fromhex(_hex32(item, "sighash vector entry")))
    h.update(bytes.fromhex(content) if content is not None else b"\x00")
    h.update(type.encode("utf-8"))
    h.update(stamp.to_bytes(4, "big"))
    return h.hexdigest()


@dataclass
class SessionPackage:
    """A signing session as it travels in ``/sign/req`` (key order as JS emits it)."""

    content: str | None
    hashes: list[list[str]]
    members: list[int]
    stamp: int
    type: str
    gid: str
    sid: str

    def to_json(self) -> dict[str, Any]:
        """The session in JS key order (``content, hashes, members, stamp, type, gid, sid``)."""
        return {
            "content": self.content,
            "hashes": [list(v) for v in self.hashes],
            "members": list(self.members),
            "stamp": self.stamp,
            "type": self.type,
            "gid": self.gid,
            "sid": self.sid,
        }

    @classmethod
    def from_json(cls, obj: Any) -> SessionPackage:
        """Shape-check a received session (hex normalised to lowercase, member order kept)."""
        if not isinstance(obj, dict):
            raise ValueError("session package must be an object")
        content = obj.get("content")
        if content is not None and not isinstance(content, str):
            raise ValueError("session content must be a string or null")
        hashes = obj.get("hashes")
        if not isinstance(hashes, list) or not hashes:
            raise ValueError("session hashes must be a non-empty list of sighash vectors")
        vectors: list[list[str]] = []
        for vector in hashes:
            if not isinstance(vector, list) or not vector:
                raise ValueError("each sighash vector must be a non-empty list")
            vectors.append([_hex32(item, "sighash vector entry") for item in vector])
        members = obj.get("members")
        if not isinstance(members, list) or not members:
            raise ValueError("session members must be a non-empty list")
        stamp = obj.get("stamp")
        if not isinstance(stamp, int) or isinstance(stamp, bool) or not 0 <= stamp < 2**32:
            raise ValueError("session stamp must be an integer that fits in 32 bits")
        stype = obj.get("type")
        if not isinstance(stype, str):
            raise ValueError("session type must be a string")
        return cls(
            content=content,
            hashes=vectors,
            members=[parse_idx(m, "session member") for m in members],
            stamp=stamp,
            type=stype,
            gid=_hex32(obj.get("gid"), "session gid"),
            sid=_hex32(obj.get("sid"), "session sid"),
        )


def create_session(
    group: GroupPackage,
    members: list[int],
    hashes: list[list[str]],
    *,
    content: str | None = None,
    type: str = "message",
    stamp: int,
) -> SessionPackage:
    """A new session; members are sorted lexicographically, exactly as JS ``Array.sort()`` does."""
    ordered = sorted((parse_idx(m, "session member") for m in members), key=str)
    if len(set(ordered)) != len(ordered):
        raise ValueError("session members must be unique")
    for idx in ordered:
        group.commit_for(idx)
    if len(ordered) < group.threshold:
        raise ValueError(f"session needs at least {group.threshold} members, got {len(ordered)}")
    if not hashes:
        raise ValueError("session needs at least one sighash vector")
    vectors = [[_hex32(item, "sighash vector entry") for item in v] for v in hashes]
    if any(not v for v in vectors):
        raise ValueError("each sighash vector must be a non-empty list")
    if len({v[0] for v in vectors}) != len(vectors):
        raise ValueError("sighashes must be unique within a session")
    gid = get_group_id(group)
    sid = get_session_id(gid, ordered, vectors, content, type, stamp)
    return SessionPackage(content, vectors, ordered, stamp, type, gid, sid)


def tweak_seckey(secret: bytes, tweak: bytes) -> bytes:
    """``(secret + tweak) mod n`` for a 32-byte secret nonce below n (bifrost ``tweak_seckey``).

    The tweak is public (``bind_hash``); the addition is libsecp256k1's constant-time
    ``seckey_tweak_add``.
    """
    if len(secret) != 32 or len(tweak) != 32:
        raise ValueError("secret nonce and tweak must be 32 bytes")
    if not curve.is_valid_seckey(secret):
        raise ValueError("secret nonce must be in 1..n-1")
    try:
        return curve.secret_add(secret, curve.int_from(tweak))
    except ValueError:
        raise ValueError("tweaked secret nonce is zero") from None


def tweak_pubkey(point: bytes, tweak: bytes) -> bytes:
    """``P + tweak·G`` for a 33-byte compressed point (bifrost ``tweak_pubkey``)."""
    if len(point) != 33 or len(tweak) != 32:
        raise ValueError("public nonce must be 33 bytes and tweak 32 bytes")
    curve.require_point(point, "public nonce")
    return curve.point_add_base(point, int.from_bytes(tweak, "big"))


def bind_hash(sid: bytes, idx: int, vector: tuple[bytes, ...]) -> int:
    """The public nonce tweak t = SHA256(sid ‖ u32(idx) ‖ sighash ‖ tweaks…) (spec §4.4)."""
    h = hashlib.sha256(sid)
    h.update(idx.to_bytes(4, "big"))
    for item in vector:
        h.update(item)
    return int.from_bytes(h.digest(), "big")


@dataclass(frozen=True, slots=True)
class _VectorCtx:
    sighash: str
    binds: dict[int, int]
    frost: frost.SigningContext


@lru_cache(maxsize=128)
def _session_ctx(
    group: GroupPackage, sid: str, members: tuple[int, ...], hashes: tuple[tuple[str, ...], ...]
) -> tuple[_VectorCtx, ...]:
    if len(set(members)) != len(members):
        raise ValueError("session members must be unique")
    commits = {idx: group.commit_for(idx) for idx in members}
    if len({v[0] for v in hashes}) != len(hashes):
        raise ValueError("sighashes must be unique within a session")
    sid_bytes = bytes.fromhex(sid)
    out = []
    for vector in hashes:
        raw = tuple(bytes.fromhex(item) for item in vector)
        key = frost.key_context(group.group_pk, raw[1:])
        binds: dict[int, int] = {}
        nonces: dict[int, tuple[bytes, bytes]] = {}
        for idx, commit in commits.items():
            t = bind_hash(sid_bytes, idx, raw)
            binds[idx] = t
            hidden, binder = curve.tweak_points((commit.hidden_pn, commit.binder_pn), t)
            nonces[idx] = (hidden, binder)
        out.append(_VectorCtx(vector[0], binds, frost.signing_context(key, raw[0], members, nonces)))
    return tuple(out)


def session_context(group: GroupPackage, session: SessionPackage) -> tuple[_VectorCtx, ...]:
    """The cached public signing context of every vector, from the session's own sid and members."""
    return _session_ctx(
        group,
        _hex32(session.sid, "session sid"),
        tuple(session.members),
        tuple(tuple(_hex32(i, "sighash vector entry") for i in v) for v in session.hashes),
    )


@dataclass
class PsigPackage:
    """A member's partial signatures for a session (``/sign/res`` payload)."""

    idx: int
    psigs: list[list[str]]
    pubkey: str
    sid: str

    def to_json(self) -> dict[str, Any]:
        """JS key order ``idx, psigs, pubkey, sid``."""
        return {
            "idx": self.idx,
            "psigs": [list(p) for p in self.psigs],
            "pubkey": self.pubkey,
            "sid": self.sid,
        }

    @classmethod
    def from_json(cls, obj: Any) -> PsigPackage:
        """Shape-check a received psig package."""
        if not isinstance(obj, dict):
            raise ValueError("psig package must be an object")
        psigs = obj.get("psigs")
        if not isinstance(psigs, list) or not psigs:
            raise ValueError("psig package psigs must be a non-empty list")
        entries = []
        for entry in psigs:
            if not isinstance(entry, list) or len(entry) != 2:
                raise ValueError("each psig entry must be [sighash, psig]")
            entries.append([_hex32(entry[0], "psig sighash"), _hex32(entry[1], "psig value")])
        pubkey = obj.get("pubkey")
        if not isinstance(pubkey, str) or not re.fullmatch(r"[0-9a-fA-F]{66}", pubkey):
            raise ValueError("psig package pubkey must be 66 hex characters")
        return cls(parse_idx(obj.get("idx"), "psig package idx"), entries, pubkey.lower(),
                   _hex32(obj.get("sid"), "psig package sid"))


def sign_session(group: GroupPackage, share: SharePackage, session: SessionPackage) -> PsigPackage:
    """This member's partial signature for every vector, built from the session's sid as received."""
    if share.idx not in session.members:
        raise ValueError(f"share idx {share.idx} is not a member of this session")
    if group.commit_for(share.idx).pubkey != share.pubkey:
        raise ValueError(f"share idx {share.idx} does not belong to this group")
    psigs = []
    for vec in session_context(group, session):
        t = vec.binds[share.idx]  # public: SHA-256 of the session and the vector
        # A zero session nonce would need t ≡ -nonce, a SHA-256 output hitting a secret
        # (probability 2^-256): secret_add's ValueError is all that case deserves.
        hidden = curve.secret_add(share.hidden_sn, t)
        binder = curve.secret_add(share.binder_sn, t)
        z = frost.sign_partial(vec.frost, share.idx, share.seckey, hidden, binder)
        psigs.append([vec.sighash, curve.bytes32(z).hex()])
    return PsigPackage(share.idx, psigs, share.pubkey.hex(), session.sid)


def _psig_values(
    group: GroupPackage, session: SessionPackage, pkg: PsigPackage, ctx: tuple[_VectorCtx, ...]
) -> list[int]:
    """Structural checks of a package; the psig scalars in vector order. Raises PeerBlameError."""

    def blame(reason: str) -> PeerBlameError:
        return PeerBlameError(pkg.idx, pkg.pubkey, reason)

    if pkg.sid.lower() != session.sid.lower():
        raise blame("psig package is for another session")
    if pkg.idx not in session.members:
        raise blame(f"psig package idx {pkg.idx} is not a session member")
    if group.commit_for(pkg.idx).pubkey.hex() != pkg.pubkey.lower():
        raise blame(f"psig package pubkey is not the group pubkey of member {pkg.idx}")
    by_hash: dict[str, str] = {}
    for entry in pkg.psigs:
        if len(entry) != 2 or entry[0].lower() in by_hash:
            raise blame("psig package has a malformed or duplicate entry")
        by_hash[entry[0].lower()] = entry[1]
    if set(by_hash) != {vec.sighash for vec in ctx}:
        raise blame("psig package does not cover exactly the session's sighashes")
    values = []
    for vec in ctx:
        try:
            z = int.from_bytes(bytes.fromhex(_hex32(by_hash[vec.sighash], "psig value")), "big")
        except ValueError:
            raise blame("psig value is not 64 hex characters") from None
        if not 0 < z < N:
            raise blame("psig value is out of range")
        values.append(z)
    return values


def verify_psig_pkg(group: GroupPackage, session: SessionPackage, pkg: PsigPackage) -> None:
    """Raise ``PeerBlameError`` unless every psig verifies as a full point (x-only forgeries fail)."""
    ctx = session_context(group, session)
    values = _psig_values(group, session, pkg, ctx)
    pubkey = group.commit_for(pkg.idx).pubkey
    for vec, z in zip(ctx, values, strict=True):
        if not frost.verify_partial(vec.frost, pkg.idx, pubkey, z):
            raise PeerBlameError(pkg.idx, pkg.pubkey, f"psig for sighash {vec.sighash} is invalid")


def combine_session(
    group: GroupPackage, session: SessionPackage, pkgs: list[PsigPackage]
) -> list[SignatureEntry]:
    """Aggregate one psig package per member into BIP-340 signatures, each verified before return.

    Individual psigs are checked only when an aggregate fails, to name the member at fault.
    """
    ctx = session_context(group, session)
    got = sorted(p.idx for p in pkgs)
    if got != sorted(session.members):
        want = sorted(session.members)
        raise ValueError(f"need exactly one psig package per session member {want}, got {got}")
    per_pkg = [_psig_values(group, session, pkg, ctx) for pkg in pkgs]
    entries: list[SignatureEntry] = []
    for i, vec in enumerate(ctx):
        sig = frost.aggregate(vec.frost, [values[i] for values in per_pkg])
        group_pk = vec.frost.key.group_pk
        if not curve.schnorr_verify(group_pk[1:], vec.frost.msg, sig):
            for pkg in pkgs:
                verify_psig_pkg(group, session, pkg)
            raise ValueError(f"aggregate signature for sighash {vec.sighash} failed BIP-340 verification")
        entries.append((vec.sighash, group_pk.hex(), sig.hex()))
    return entries
