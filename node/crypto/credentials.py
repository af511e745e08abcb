"""FROSTR credentials: the ``bfgroup1…`` group package and the ``bfshare1…`` share package.

Binary layouts (spec §1.2, §1.3), bech32m without a length limit. Decoding is stricter than
the JS reference: every point must be on the curve, idxs must be ≥ 1 and unique and the
threshold must lie in 1..len(commits).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from node.crypto import bech32, curve

GROUP_HRP = "bfgroup"
SHARE_HRP = "bfshare"
COMMIT_SIZE = 103
GROUP_HEADER_SIZE = 37
SHARE_SIZE = 100
_HEX = frozenset("0123456789abcdefABCDEF")
_KNOWN_HRPS = frozenset({GROUP_HRP, SHARE_HRP, "nsec", "npub", "bfcred", "bfonboard"})


def parse_hex(value: object, size: int, what: str) -> bytes:
    """Parse a hex string of exactly ``size`` bytes; ``ValueError`` names ``what`` (never the value)."""
    if not isinstance(value, str) or len(value) != 2 * size or not set(value) <= _HEX:
        raise ValueError(f"{what} must be {2 * size} hex characters")
    return bytes.fromhex(value)


def parse_idx(value: object, what: str = "idx") -> int:
    """Parse a member index: an int in 1..2**32-1 (bools refused)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value < 2**32:
        raise ValueError(f"{what} must be an integer from 1 to 2^32-1")
    return value


def _require_scalar(value: bytes, what: str) -> None:
    if not curve.is_valid_seckey(value):  # constant time: these are share secrets
        raise ValueError(f"{what} must be a 32-byte scalar in 1..n-1")


@dataclass(frozen=True)
class Commit:
    """One member's public record: share pubkey and static nonce commitments (33-byte points)."""

    idx: int
    pubkey: bytes
    binder_pn: bytes
    hidden_pn: bytes

    def to_json(self) -> dict[str, Any]:
        """The commit in JS key order (``idx, binder_pn, hidden_pn, pubkey``)."""
        return {
            "idx": self.idx,
            "binder_pn": self.binder_pn.hex(),
            "hidden_pn": self.hidden_pn.hex(),
            "pubkey": self.pubkey.hex(),
        }

    @property
    def pubkey_xonly(self) -> str:
        """The member's Nostr identity: the x-only pubkey hex."""
        return self.pubkey[1:].hex()


@dataclass(frozen=True)
class GroupPackage:
    """The public group: group key, threshold and one commit per member (stored order)."""

    group_pk: bytes
    threshold: int
    commits: tuple[Commit, ...]

    def __post_init__(self) -> None:
        _validate_group(self)

    def to_json(self) -> dict[str, Any]:
        """The group as JSON (``commits, group_pk, threshold``; hex strings)."""
        return {
            "commits": [c.to_json() for c in self.commits],
            "group_pk": self.group_pk.hex(),
            "threshold": self.threshold,
        }

    @classmethod
    def from_json(cls, obj: Any) -> GroupPackage:
        """Parse and validate the JSON form."""
        if not isinstance(obj, dict):
            raise ValueError("group package must be an object")
        commits_obj = obj.get("commits")
        if not isinstance(commits_obj, list):
            raise ValueError("group package commits must be a list")
        commits = []
        for c in commits_obj:
            if not isinstance(c, dict):
                raise ValueError("group commit must be an object")
            commits.append(
                Commit(
                    idx=parse_idx(c.get("idx"), "commit idx"),
                    pubkey=parse_hex(c.get("pubkey"), 33, "commit pubkey"),
                    binder_pn=parse_hex(c.get("binder_pn"), 33, "commit binder_pn"),
                    hidden_pn=parse_hex(c.get("hidden_pn"), 33, "commit hidden_pn"),
                )
            )
        threshold = obj.get("threshold")
        if not isinstance(threshold, int) or isinstance(threshold, bool):
            raise ValueError("group threshold must be an integer")
        return cls(parse_hex(obj.get("group_pk"), 33, "group_pk"), threshold, tuple(commits))

    def member_pubkeys(self) -> list[str]:
        """The members' x-only pubkeys (hex), in commit order."""
        return [c.pubkey_xonly for c in self.commits]

    def commit_for(self, idx: int) -> Commit:
        """The commit of member ``idx``; ``ValueError`` when there is none."""
        for commit in self.commits:
            if commit.idx == idx:
                return commit
        raise ValueError(f"member idx {idx} is not in the group")

    def idx_of_pubkey(self, xonly_hex: str) -> int | None:
        """The idx of the member whose x-only pubkey is ``xonly_hex`` (any case), else ``None``."""
        wanted = xonly_hex.lower()
        for commit in self.commits:
            if commit.pubkey_xonly == wanted:
                return commit.idx
        return None

    @property
    def group_pubkey_xonly(self) -> str:
        """The group's Nostr pubkey (x-only hex)."""
        return self.group_pk[1:].hex()


def _validate_group(group: GroupPackage) -> None:
    if not group.commits:
        raise ValueError("group has no commits")
    if not 1 <= group.threshold <= len(group.commits):
        raise ValueError(
            f"group threshold {group.threshold} must be between 1 and the member count {len(group.commits)}"
        )
    curve.require_point(group.group_pk, "group_pk")
    seen: set[int] = set()
    for commit in group.commits:
        parse_idx(commit.idx, "commit idx")
        if commit.idx in seen:
            raise ValueError(f"group has a duplicate member idx {commit.idx}")
        seen.add(commit.idx)
        curve.require_point(commit.pubkey, f"pubkey of member {commit.idx}")
        curve.require_point(commit.binder_pn, f"binder_pn of member {commit.idx}")
        curve.require_point(commit.hidden_pn, f"hidden_pn of member {commit.idx}")


@dataclass(frozen=True)
class SharePackage:
    """One member's secret share and static secret nonces. ``repr`` never shows the secrets."""

    idx: int
    seckey: bytes = field(repr=False)
    binder_sn: bytes = field(repr=False)
    hidden_sn: bytes = field(repr=False)

    def __post_init__(self) -> None:
        parse_idx(self.idx, "share idx")
        _require_scalar(self.seckey, "share seckey")
        _require_scalar(self.binder_sn, "share binder_sn")
        _require_scalar(self.hidden_sn, "share hidden_sn")

    def __repr__(self) -> str:
        return f"SharePackage(idx={self.idx}, pubkey={self.pubkey_xonly()}, secrets=<redacted>)"

    __str__ = __repr__

    @cached_property
    def pubkey(self) -> bytes:
        """The compressed share pubkey ``seckey·G`` (computed once)."""
        return curve.pubkey_of(self.seckey)

    def pubkey_xonly(self) -> str:
        """The member's Nostr identity (x-only hex)."""
        return self.pubkey[1:].hex()

    def to_json(self) -> dict[str, Any]:
        """The share as JSON (``idx, binder_sn, hidden_sn, seckey``). Contains secrets."""
        return {
            "idx": self.idx,
            "binder_sn": self.binder_sn.hex(),
            "hidden_sn": self.hidden_sn.hex(),
            "seckey": self.seckey.hex(),
        }

    @classmethod
    def from_json(cls, obj: Any) -> SharePackage:
        """Parse and validate the JSON form."""
        if not isinstance(obj, dict):
            raise ValueError("share package must be an object")
        return cls(
            idx=parse_idx(obj.get("idx"), "share idx"),
            seckey=parse_hex(obj.get("seckey"), 32, "share seckey"),
            binder_sn=parse_hex(obj.get("binder_sn"), 32, "share binder_sn"),
            hidden_sn=parse_hex(obj.get("hidden_sn"), 32, "share hidden_sn"),
        )


def serialize_group(group: GroupPackage) -> bytes:
    """The raw ``bfgroup`` bytes: group_pk ‖ u32 threshold ‖ (u32 idx ‖ pubkey ‖ binder ‖ hidden)*."""
    out = [group.group_pk, group.threshold.to_bytes(4, "big")]
    for c in group.commits:
        out += [c.idx.to_bytes(4, "big"), c.pubkey, c.binder_pn, c.hidden_pn]
    return b"".join(out)


def deserialize_group(data: bytes) -> GroupPackage:
    """Parse raw ``bfgroup`` bytes (validated)."""
    if len(data) < GROUP_HEADER_SIZE + COMMIT_SIZE:
        raise ValueError(f"group data is too short ({len(data)} bytes)")
    if (len(data) - GROUP_HEADER_SIZE) % COMMIT_SIZE:
        raise ValueError(f"group commit data is malformed: {len(data) - GROUP_HEADER_SIZE} bytes "
                         f"is not a multiple of {COMMIT_SIZE}")
    commits = []
    for off in range(GROUP_HEADER_SIZE, len(data), COMMIT_SIZE):
        rec = data[off : off + COMMIT_SIZE]
        commits.append(Commit(int.from_bytes(rec[0:4], "big"), rec[4:37], rec[37:70], rec[70:103]))
    return GroupPackage(data[0:33], int.from_bytes(data[33:37], "big"), tuple(commits))


def serialize_share(share: SharePackage) -> bytes:
    """The raw 100 ``bfshare`` bytes: u32 idx ‖ seckey ‖ binder_sn ‖ hidden_sn."""
    return share.idx.to_bytes(4, "big") + share.seckey + share.binder_sn + share.hidden_sn


def deserialize_share(data: bytes) -> SharePackage:
    """Parse raw ``bfshare`` bytes (validated)."""
    if len(data) != SHARE_SIZE:
        raise ValueError(f"share data must be {SHARE_SIZE} bytes, got {len(data)}")
    return SharePackage(int.from_bytes(data[0:4], "big"), data[4:36], data[36:68], data[68:100])


def _decode(text: str, hrp: str, what: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a string")
    text = text.strip()
    try:
        got_hrp, data = bech32.decode(text, variant="bech32m")
    except ValueError as exc:
        raise ValueError(f"{what} is not valid bech32m: {exc}") from None
    if got_hrp != hrp:
        # only echo well-known prefixes: an unknown one may be part of a pasted secret
        seen = f"a {got_hrp}1 string" if got_hrp in _KNOWN_HRPS else "another kind of string"
        raise ValueError(f"{what} must start with {hrp}1, got {seen}")
    return data


def encode_group(group: GroupPackage) -> str:
    """The ``bfgroup1…`` string of a group."""
    return bech32.encode(GROUP_HRP, serialize_group(group), variant="bech32m")


def decode_group(text: str) -> GroupPackage:
    """Parse and validate a ``bfgroup1…`` string."""
    return deserialize_group(_decode(text, GROUP_HRP, "group credential"))


def encode_share(share: SharePackage) -> str:
    """The ``bfshare1…`` string of a share (a secret)."""
    return bech32.encode(SHARE_HRP, serialize_share(share), variant="bech32m")


def decode_share(text: str) -> SharePackage:
    """Parse and validate a ``bfshare1…`` string."""
    return deserialize_share(_decode(text, SHARE_HRP, "share credential"))


def check_share_in_group(group: GroupPackage, share: SharePackage) -> None:
    """``ValueError`` unless the share's pubkey and nonce commitments are those of its idx in the group."""
    commit = next((c for c in group.commits if c.idx == share.idx), None)
    if commit is None:
        raise ValueError(f"share idx {share.idx} is not a member of this group")
    if commit.pubkey != share.pubkey:
        raise ValueError(f"share idx {share.idx} does not belong to this group (pubkey mismatch)")
    if (
        curve.pubkey_of(share.binder_sn) != commit.binder_pn
        or curve.pubkey_of(share.hidden_sn) != commit.hidden_pn
    ):
        raise ValueError(f"share idx {share.idx} nonces do not match the group's commitments")
