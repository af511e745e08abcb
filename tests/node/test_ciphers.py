"""The node's cipher rule (node/ciphers.py) with scripted ECDH rounds: a secret is cached only once a NIP-44
MAC has proven it, a MAC failure evicts it, a failure with a fresh secret is retried once with another set
of co-signers, and the co-signer whose key share was wrong is named when that can be told."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from node.ciphers import ProvenCipher, SharedSecret
from node.crypto import curve, ecdh
from node.crypto.keygen import generate_dealer_pkg_gen
from node.errors import PeerResponseError
from node.nostr import nip04, nip44

pytestmark = pytest.mark.timeout(30)


def party() -> tuple[bytes, str]:
    sk = secrets.token_bytes(32)
    return sk, curve.pubkey_of(sk)[1:].hex()


def wrong_point() -> bytes:
    return curve.pubkey_of(secrets.token_bytes(32))


class Deriver:
    """Hands out scripted ECDH results (``None`` = the right one, else that wrong point), counting rounds."""

    def __init__(self, group_sk: bytes, script: list[bytes | None] | None = None) -> None:
        self.group_sk = group_sk
        self.script = list(script or [])
        self.calls: list[frozenset[str]] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, peer: str, avoid: frozenset[str], timeout: float) -> SharedSecret:
        self.calls.append(avoid)
        if self.gate is not None:
            await self.gate.wait()
        wrong = self.script.pop(0) if self.script else None
        return SharedSecret(wrong or curve.ecdh_point(self.group_sk, bytes.fromhex(peer)), ("cosigner",))


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, Any]] = []

    def __call__(self, type_: str, message: str, data: Any) -> None:
        self.seen.append((type_, message, data))


async def test_a_wrong_secret_is_never_cached_and_a_proven_one_saves_every_later_round() -> None:
    group_sk, group_pk = party()
    peer_sk, peer_pk = party()
    key = nip44.conversation_key(peer_sk, bytes.fromhex(group_pk))
    derive = Deriver(group_sk, [wrong_point()])
    cipher = ProvenCipher(derive)  # no retry: no other co-signer set
    message = nip44.encrypt_gen(key, "first")
    with pytest.raises(ValueError, match="co-signer's ECDH share was wrong"):
        await cipher.decrypt("nip44", peer_pk, message)
    assert not cipher.proven(peer_pk)
    assert await cipher.decrypt("nip44", peer_pk, message) == "first"  # a fresh round, right this time
    assert cipher.proven(peer_pk) and cipher.rounds == 2
    for n in range(5):
        assert await cipher.decrypt("nip44", peer_pk, nip44.encrypt_gen(key, f"m{n}")) == f"m{n}"
    assert nip44.decrypt(key, await cipher.encrypt("nip44", peer_pk, "reply")) == "reply"
    assert cipher.rounds == 2


async def test_a_mac_failure_evicts_then_a_fresh_round_decides_who_was_wrong() -> None:
    group_sk, group_pk = party()
    peer_sk, peer_pk = party()
    key = nip44.conversation_key(peer_sk, bytes.fromhex(group_pk))
    cipher = ProvenCipher(Deriver(group_sk))
    await cipher.decrypt("nip44", peer_pk, nip44.encrypt_gen(key, "proof"))
    with pytest.raises(ValueError, match=r"^content: nip44 payload has an invalid MAC"):
        await cipher.decrypt("nip44", peer_pk, nip44.encrypt_gen(secrets.token_bytes(32), "not for us"))
    assert cipher.rounds == 2 and cipher.proven(peer_pk)  # the fresh round agreed: the payload was wrong
    with pytest.raises(ValueError, match=r"^content: nip44 payload has an unsupported encryption version"):
        await cipher.decrypt("nip44", peer_pk, "#" + "A" * 200)  # a malformed payload costs no round
    with pytest.raises(ValueError, match=r"^content: nip04 payload must be"):
        await cipher.decrypt("nip04", party()[1], "no iv")
    assert cipher.rounds == 2


async def test_a_fresh_round_that_disagrees_with_the_proven_secret_is_not_believed() -> None:
    group_sk, group_pk = party()
    peer_sk, peer_pk = party()
    key = nip44.conversation_key(peer_sk, bytes.fromhex(group_pk))
    derive = Deriver(group_sk)
    cipher = ProvenCipher(derive)
    await cipher.decrypt("nip44", peer_pk, nip44.encrypt_gen(key, "proof"))
    derive.script.append(wrong_point())  # the next round comes from a set with a wrong share
    with pytest.raises(ValueError, match="invalid MAC"):
        await cipher.decrypt("nip44", peer_pk, nip44.encrypt_gen(secrets.token_bytes(32), "not for us"))
    assert cipher.proven(peer_pk)  # the proven secret stays; the wrong one was never cached
    assert await cipher.decrypt("nip44", peer_pk, nip44.encrypt_gen(key, "still")) == "still"
    assert cipher.rounds == 2


async def test_a_burst_for_a_new_counterparty_shares_one_round() -> None:
    group_sk, group_pk = party()
    peer_sk, peer_pk = party()
    key = nip44.conversation_key(peer_sk, bytes.fromhex(group_pk))
    derive = Deriver(group_sk)
    derive.gate = asyncio.Event()
    cipher = ProvenCipher(derive)
    tasks = [asyncio.ensure_future(cipher.decrypt("nip44", peer_pk, nip44.encrypt_gen(key, f"dm {n}")))
             for n in range(20)]
    while not derive.calls:
        await asyncio.sleep(0)
    derive.gate.set()
    assert await asyncio.gather(*tasks) == [f"dm {n}" for n in range(20)]
    assert cipher.rounds == 1


async def test_nip04_uses_the_raw_shared_x_and_never_proves_a_secret() -> None:
    group_sk, group_pk = party()
    peer_sk, peer_pk = party()
    cipher = ProvenCipher(Deriver(group_sk))
    shared = curve.ecdh_x(peer_sk, bytes.fromhex(group_pk))
    assert await cipher.decrypt("nip04", peer_pk, nip04.encrypt_gen(shared, "legacy")) == "legacy"
    assert nip04.decrypt(shared, await cipher.encrypt("nip04", peer_pk, "back")) == "back"
    assert not cipher.proven(peer_pk) and cipher.rounds == 2


async def test_a_failure_is_retried_with_another_set_and_the_result_proven() -> None:
    group_sk, group_pk = party()
    peer_sk, peer_pk = party()
    key = nip44.conversation_key(peer_sk, bytes.fromhex(group_pk))
    derive = Deriver(group_sk, [wrong_point()])
    retried: list[SharedSecret] = []

    def retry(first: SharedSecret) -> frozenset[str]:
        retried.append(first)
        return frozenset(first.cosigners)

    cipher = ProvenCipher(derive, retry=retry)
    assert await cipher.decrypt("nip44", peer_pk, nip44.encrypt_gen(key, "hello")) == "hello"
    assert derive.calls == [frozenset(), frozenset({"cosigner"})] and len(retried) == 1
    assert cipher.proven(peer_pk)
    # NIP-04 gets the retry too (bad padding with a fresh secret), but proves nothing.
    other_sk, other_pk = party()
    derive.script.append(wrong_point())
    shared = curve.ecdh_x(other_sk, bytes.fromhex(group_pk))
    long_text = "a NIP-04 message long enough that a wrong key cannot pass for valid UTF-8 " * 3
    assert await cipher.decrypt("nip04", other_pk, nip04.encrypt_gen(shared, long_text)) == long_text
    assert not cipher.proven(other_pk) and len(retried) == 2


async def test_two_sets_that_disagree_and_both_fail_are_reported_as_co_signer_trouble() -> None:
    group_sk, group_pk = party()
    peer_sk, peer_pk = party()
    key = nip44.conversation_key(peer_sk, bytes.fromhex(group_pk))
    cipher = ProvenCipher(Deriver(group_sk, [wrong_point(), wrong_point()]),
                          retry=lambda first: frozenset(first.cosigners))
    with pytest.raises(PeerResponseError, match="co-signers disagree"):
        await cipher.decrypt("nip44", peer_pk, nip44.encrypt_gen(key, "lost"))
    # Two sets that agree on a secret that fails: the payload is what is wrong.
    agreeing = ProvenCipher(Deriver(group_sk), retry=lambda first: frozenset(first.cosigners))
    with pytest.raises(ValueError, match=r"^content: nip44 payload has an invalid MAC"):
        await agreeing.decrypt("nip44", peer_pk, nip44.encrypt_gen(secrets.token_bytes(32), "junk"))
    assert not cipher.proven(peer_pk) and not agreeing.proven(peer_pk)


def test_the_wrong_key_share_is_named_by_the_set_that_verified() -> None:
    group, shares = generate_dealer_pkg_gen(3, 5)
    peer = party()[1]

    def packages(members: list[int], liar: int | None = None) -> list[ecdh.EcdhPackage]:
        pkgs = [ecdh.create_ecdh_pkg(group, shares[i - 1], members, peer) for i in members]
        return [ecdh.EcdhPackage(p.idx, curve.point_add(bytes.fromhex(p.keyshare), curve.base_mul(7)).hex(),
                                 p.members, p.ecdh_pk) if p.idx == liar else p for p in pkgs]

    right = packages([1, 4, 5])
    assert ecdh.combine_ecdh_pkgs(packages([1, 2, 3], liar=2)) != ecdh.combine_ecdh_pkgs(right)
    # disjoint co-signers: two suspects, neither certain
    assert ecdh.wrong_keyshares(packages([1, 2, 3], liar=2), right) == ([2, 3], False)
    # one co-signer swapped: the shared one checks out (λ ratio), so the one only in the wrong set is named
    assert ecdh.wrong_keyshares(packages([1, 2, 3], liar=3), packages([1, 2, 4])) == ([3], True)
    # the shared co-signer lied: its λ ratio breaks, and it is named although another was swapped too
    assert ecdh.wrong_keyshares(packages([1, 2, 3], liar=2), packages([1, 2, 4])) == ([2], True)
