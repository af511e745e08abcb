"""A peer whose ping answer says it refuses our requests (its recv policy for us is off) is asked last.

The reference refuses with silence (spec §4.7), so choosing it first costs half the signing deadline before
the fallback, every time a ping marks it online again.
"""

from __future__ import annotations

import time

import pytest

from tests.node.test_service import Group

pytestmark = pytest.mark.timeout(30)


async def test_a_peer_that_refuses_us_is_chosen_last_until_it_accepts_again() -> None:
    g = Group()
    a, b, c = await g.start()
    rec_b = g.recs[1]
    try:
        b.policies.set(a.pubkey, recv=False)
        policy_b, _ = await a.ping(b.pubkey)
        policy_c, _ = await a.ping(c.pubkey)
        assert (policy_b.recv, policy_c.recv) == (False, True)
        # b looks like the better co-signer: online and faster
        a.peer_table.mark_seen(b.pubkey, 0.1)
        a.peer_table.mark_seen(c.pubkey, 50.0)

        started = time.monotonic()
        await a.sign("11" * 32)
        assert time.monotonic() - started < a.options.sign_timeout / 2  # no wait on b's silence
        assert not [m for m in rec_b.messages("sign") if "request" in m]  # b was never asked

        b.policies.set(a.pubkey, recv=True)
        policy_b, _ = await a.ping(b.pubkey)
        assert policy_b.recv is True
        a.peer_table.mark_seen(b.pubkey, 0.1)
        await a.sign("22" * 32)
        await rec_b.wait_for("Signature response sent")  # b is chosen again once it accepts
    finally:
        await g.stop()
