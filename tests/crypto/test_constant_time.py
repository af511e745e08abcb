"""Secret scalars stay in libsecp256k1's constant-time code (docs/SECURITY.md §5) and give exactly
the numbers of the integer formulas they replaced: the helpers, a partial signature, a session's
psigs, dealer shares and ECDH key shares are checked against plain Python-int references."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.crypto import curve, ecdh, frost, keygen, session
from node.crypto.curve import N, bytes32
from tests.crypto import keys
from tests.crypto.fuzz import prop

ROOT = Path(__file__).resolve().parents[2]
scalars = st.integers(min_value=1, max_value=N - 1)
publics = st.integers(min_value=0, max_value=2**256 - 1) | st.sampled_from([0, 1, N - 1, N, N + 1])
hex32 = st.binary(min_size=32, max_size=32).map(bytes.hex)


@prop(40)
@given(a=scalars, b=scalars, k=publics, t=publics)
def test_secret_helpers_match_integer_math(a: int, b: int, k: int, t: int) -> None:
    sa, sb = bytes32(a), bytes32(b)
    if (a + t) % N:
        assert curve.secret_add(sa, t) == bytes32((a + t) % N)
    else:
        with pytest.raises(ValueError, match="is zero"):
            curve.secret_add(sa, t)
    if k % N:
        assert curve.secret_mul(sa, k) == bytes32(a * k % N)
    else:
        with pytest.raises(ValueError, match="zero mod n"):
            curve.secret_mul(sa, k)
    expect = (a * k + b * t) % N
    assert curve.secret_lin_comb([(sa, k), (sb, t)]) == (bytes32(expect) if expect else None)
    assert curve.secret_lin_comb([(sa, N - 1)]) == bytes32(N - a)
    pb = curve.base_mul(b)
    assert curve.pubkey_of(sa) == curve.base_mul(a)
    assert curve.ecdh_point(sa, pb) == curve.point_mul(pb, a) == curve.base_mul(a * b)
    assert curve.ecdh_point(sa, pb[1:]) == curve.point_mul(curve.lift_x(pb[1:]), a)


def test_secret_edge_cases() -> None:
    five, seven = bytes32(5), bytes32(7)
    with pytest.raises(ValueError, match="secret scalar plus tweak is zero"):
        curve.secret_add(five, N - 5)
    assert curve.secret_add(five, 0) == five
    assert curve.secret_add(five, N + 2) == seven
    # a zero partial sum does not end the sum; zero factors are skipped; an empty or zero sum is None
    assert curve.secret_lin_comb([(five, 1), (five, N - 1), (seven, 1)]) == seven
    assert curve.secret_lin_comb([(five, 0), (seven, N)]) is None
    assert curve.secret_lin_comb([(five, 1), (five, -1)]) is None
    assert curve.secret_lin_comb([]) is None
    for bad in (bytes(32), bytes32(N), b"\xff" * 32, b"\x01" * 31, b"\x01" * 33):
        assert not curve.is_valid_seckey(bad)
        calls = [(curve.secret_add, (bad, 1)), (curve.secret_mul, (bad, 2)),
                 (curve.secret_lin_comb, ([(bad, 3)],)), (curve.ecdh_point, (bad, curve.base_mul(2))),
                 # the check rides on the call that uses the secret: every path of the sum must make it
                 (curve.secret_lin_comb, ([(bad, 1)],)), (curve.secret_lin_comb, ([(bad, N - 1)],)),
                 (curve.secret_lin_comb, ([(bytes32(5), 2), (bad, 1)],)), (curve.secret_mul, (bad, 1))]
        for call, args in calls:
            with pytest.raises(ValueError, match="secret key must be 32 bytes"):
                call(*args)  # type: ignore[operator]
    assert curve.is_valid_seckey(bytes32(1)) and curve.is_valid_seckey(bytes32(N - 1))


def sign_partial_reference(ctx: frost.SigningContext, idx: int, x: int, d: int, e: int) -> int:
    """The integer formula ``sign_partial`` used before (spec §3.6)."""
    if ctx.nonce_negated:
        d, e = N - d, N - e
    x = ctx.key.parity * ctx.key.state * x % N
    return (ctx.c * ctx.lambdas[idx] * x + d + ctx.rhos[idx] * e) % N


@prop(30)
@given(
    secrets=st.tuples(scalars, scalars, scalars),
    nonce_keys=st.lists(scalars, min_size=6, max_size=6),
    group_secret=scalars,
    tweaks=st.lists(st.binary(min_size=32, max_size=32), max_size=2),
    msg=st.binary(min_size=32, max_size=32),
)
def test_sign_partial_matches_integer_formula(
    secrets: tuple[int, int, int], nonce_keys: list[int], group_secret: int, tweaks: list[bytes], msg: bytes
) -> None:
    members = [1, 2, 3]
    nonces = {m: (curve.base_mul(nonce_keys[2 * i]), curve.base_mul(nonce_keys[2 * i + 1]))
              for i, m in enumerate(members)}
    key = frost.key_context(curve.base_mul(group_secret), tuple(tweaks))
    ctx = frost.signing_context(key, msg, members, nonces)
    x, d, e = secrets
    got = frost.sign_partial(ctx, 2, bytes32(x), bytes32(d), bytes32(e))
    assert got == sign_partial_reference(ctx, 2, x, d, e)


GROUP, SHARES = keys.keyset(2, 3, "constant-time")
vectors = st.lists(
    st.tuples(hex32, st.lists(hex32, max_size=2)), min_size=1, max_size=3, unique_by=lambda v: v[0]
).map(lambda vs: [[h, *tw] for h, tw in vs])


@prop(20)
@given(hashes=vectors, stamp=st.integers(0, 2**32 - 1), signer=st.sampled_from([0, 1]))
def test_sign_session_matches_integer_formula(hashes: list[list[str]], stamp: int, signer: int) -> None:
    share = SHARES[signer]
    sess = session.create_session(GROUP, [1, 2], hashes, stamp=stamp)
    pkg = session.sign_session(GROUP, share, sess)
    x, hidden, binder = (curve.int_from(v) for v in (share.seckey, share.hidden_sn, share.binder_sn))
    for (sighash, psig), vec in zip(pkg.psigs, session.session_context(GROUP, sess), strict=True):
        t = vec.binds[share.idx]
        want = sign_partial_reference(vec.frost, share.idx, x, (hidden + t) % N, (binder + t) % N)
        assert (sighash, psig) == (vec.sighash, bytes32(want).hex())


def horner(coeffs: list[int], idx: int) -> int:
    value = 0
    for coeff in reversed(coeffs):
        value = (value * idx + coeff) % N
    return value


@prop(15)
@given(coeffs=st.lists(scalars, min_size=1, max_size=5), total=st.integers(5, 8))
def test_dealer_shares_match_polynomial(coeffs: list[int], total: int) -> None:
    seeds = keys.derive("ct-seeds", total, 64)
    group, shares = keygen.generate_dealer_pkg(len(coeffs), total, [bytes32(c) for c in coeffs], seeds)
    assert group.group_pk == curve.base_mul(coeffs[0])
    assert [curve.int_from(s.seckey) for s in shares] == [horner(coeffs, i) for i in range(1, total + 1)]
    assert keygen.recover_secret(group, shares[-len(coeffs):]) == bytes32(coeffs[0])


def test_dealer_coefficients_out_of_range_and_zero_partial_sums() -> None:
    a0, a2 = 0x1234, 0xABCDEF
    # a1 = n - a0 makes f(1)'s partial sum a0 + a1 zero; a3 = 0 and a4 = n + 5 (≡ 5) are reduced
    raw = [bytes32(a0), bytes32(N - a0), bytes32(a2), bytes(32), bytes32(N + 5)]
    coeffs = [a0, N - a0, a2, 0, 5]
    seeds = keys.derive("ct-seeds", 6, 64)
    group, shares = keygen.generate_dealer_pkg(5, 6, raw, seeds)
    assert [curve.int_from(s.seckey) for s in shares] == [horner(coeffs, i) for i in range(1, 7)]
    assert keygen.recover_secret(group, shares[1:]) == bytes32(a0)
    with pytest.raises(ValueError, match=r"group secret must be in 1\.\.n-1"):
        keygen.generate_dealer_pkg(2, 3, [bytes32(N), bytes32(5)], seeds)


@prop(15)
@given(peer=scalars, members=st.sampled_from([[1, 2], [2, 3], [3, 1], [1, 2, 3]]))
def test_ecdh_keyshare_matches_integer_formula(peer: int, members: list[int]) -> None:
    peer_pk = curve.base_mul(peer)
    for idx in members:
        share = SHARES[idx - 1]
        pkg = ecdh.create_ecdh_pkg(GROUP, share, members, peer_pk.hex())
        k = frost.lagrange(idx, members) * curve.int_from(share.seckey) % N
        assert pkg.keyshare == curve.point_mul(peer_pk, k).hex()


MDWE_PROBE = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(77)
from node.crypto import curve, ecdh, session
from tests.crypto import keys
group, shares = keys.keyset(2, 3, "mdwe")
peer = curve.pubkey_of(bytes(range(1, 33)))
pkgs = [ecdh.create_ecdh_pkg(group, s, [1, 2], peer.hex()) for s in shares[:2]]
assert ecdh.combine_ecdh_pkgs(pkgs) == curve.ecdh_point(bytes(range(1, 33)), group.group_pk)
sess = session.create_session(group, [1, 2], [["11" * 32]], stamp=1)
sigs = session.combine_session(group, sess, [session.sign_session(group, s, sess) for s in shares[:2]])
print("ok", len(sigs))
"""


def test_constant_time_ecdh_works_with_memory_deny_write_execute() -> None:
    # igloo.service sets MemoryDenyWriteExecute=yes; the ECDH copy-out callback must not need W+X.
    result = subprocess.run([sys.executable, "-c", MDWE_PROBE], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    if result.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE")
    assert result.returncode == 0 and result.stdout.strip() == "ok 1", result.stderr


SECRET_NAMES = ("seckey", "secret", "_sn", "nonce", "share", "key")
# The one place a secret may become a Python int, with its reason in the code: a coefficient
# that is already known to be out of range (0 or >= n).
ALLOWED = {("keygen.py", "_coefficient")}


def test_secrets_never_become_python_ints_outside_the_seam() -> None:
    """Outside curve.py, no secret-named value in node/ goes through int.from_bytes / curve.int_from: not in
    the crypto, nor in parsing the owner's keys (nsec, hex) or making the bunker's transport key."""
    offenders = []
    for path in sorted((ROOT / "node").rglob("*.py")):
        if path.name == "curve.py":
            continue
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef):
                continue
            for node in ast.walk(func):
                if not (isinstance(node, ast.Call) and node.args):
                    continue
                name = ast.unparse(node.func)
                if name not in ("int.from_bytes", "curve.int_from", "int_from"):
                    continue
                arg = ast.unparse(node.args[0])
                if any(s in arg for s in SECRET_NAMES) and (path.name, func.name) not in ALLOWED:
                    offenders.append(f"{path.name}:{node.lineno} {func.name}: {name}({arg})")
    assert offenders == []
