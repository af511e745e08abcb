"""The coincurve seam: the batched helpers agree with the plain operations; bad keys are refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.crypto import curve
from tests.crypto.fuzz import prop

scalars = st.integers(min_value=1, max_value=curve.N - 1)


@prop(25)
@given(a=scalars, b=scalars, t=st.integers(min_value=0, max_value=2**256 - 1))
def test_helpers_agree(a: int, b: int, t: int) -> None:
    p, q = curve.base_mul(a), curve.base_mul(b)
    assert curve.pubkey_of(curve.bytes32(a)) == p
    assert curve.tweak_points([p, q], t) == [curve.point_add_base(p, t), curve.point_add_base(q, t)]
    if (a + t) % curve.N:
        assert curve.point_add_base(p, t) == curve.base_mul(a + t)
    if (a + b * t) % curve.N and t % curve.N:
        assert curve.lin_comb([(p, 1), (q, t)]) == curve.base_mul(a + b * t)
    if (a + b) % curve.N:
        assert curve.point_add(p, q) == curve.base_mul(a + b)
    assert curve.negate(p) == curve.base_mul(curve.N - a)
    assert curve.point_mul(p, b) == curve.base_mul(a * b)
    assert curve.ecdh_x(curve.bytes32(a), q[1:]) == curve.ecdh_x(curve.bytes32(b), curve.lift_x(p[1:]))


@pytest.mark.parametrize("key", [b"\x01" * 31, b"\x01" * 33, bytes(32), curve.bytes32(curve.N)])
def test_secret_keys_must_be_32_bytes_in_range(key: bytes) -> None:
    for call in (lambda: curve.pubkey_of(key), lambda: curve.ecdh_x(key, curve.base_mul(2)),
                 lambda: curve.schnorr_sign(key, bytes(32), bytes(32))):
        with pytest.raises(ValueError, match="secret key must be 32 bytes"):
            call()


def test_points_at_infinity_and_off_curve() -> None:
    p = curve.base_mul(5)
    with pytest.raises(ValueError):
        curve.point_add(p, curve.negate(p))
    with pytest.raises(ValueError):
        curve.lin_comb([(p, 1), (p, curve.N - 1)])
    assert not curve.is_valid_point(b"\x04" + p[1:])
    assert not curve.is_valid_point(p[:-1])
    with pytest.raises(ValueError, match="x-only key"):
        curve.lift_x(b"\xff" * 32)
    assert not curve.schnorr_verify(p[1:], bytes(32), bytes(64))
