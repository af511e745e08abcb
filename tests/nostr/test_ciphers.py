"""NIP-44 v2, NIP-04, the nostr-p2p cipher and envelope, NIP-19 and bech32: known answers,
round trips (property-based) and rejection of tampered or malformed input."""

from __future__ import annotations

import base64

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from node.crypto import bech32, curve
from node.nostr import cipher, nip04, nip19, nip44
from tests.crypto.fuzz import prop

SK_A = (1).to_bytes(32, "big")
SK_B = (2).to_bytes(32, "big")
PK_A = curve.pubkey_of(SK_A)[1:]
PK_B = curve.pubkey_of(SK_B)[1:]
secret_keys = st.integers(min_value=1, max_value=curve.N - 1).map(curve.bytes32)
utf8_texts = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=400)

# --- NIP-44 ------------------------------------------------------------------------------

PADDING = {
    1: 32, 16: 32, 32: 32, 33: 64, 37: 64, 45: 64, 49: 64, 64: 64, 65: 96, 100: 128, 111: 128,
    200: 224, 250: 256, 320: 320, 383: 384, 384: 384, 400: 448, 500: 512, 512: 512, 515: 640,
    700: 768, 800: 896, 900: 1024, 1020: 1024, 65536: 65536,
}


@pytest.mark.parametrize(("length", "padded"), PADDING.items(), ids=[str(k) for k in PADDING])
def test_nip44_padding_table(length: int, padded: int) -> None:
    assert nip44.calc_padded_len(length) == padded


def test_nip44_padding_is_monotonic_and_tight() -> None:
    prev = 0
    for length in range(1, 5000):
        padded = nip44.calc_padded_len(length)
        assert padded >= length and padded >= prev
        prev = padded


def test_nip44_official_first_vector() -> None:
    """The first encrypt/decrypt vector of the NIP-44 spec (sec1 = 1, sec2 = 2, nonce = 1)."""
    key = nip44.conversation_key(SK_A, PK_B)
    assert key.hex() == "c41c775356fd92eadc63ff5a0dc1da211b268cbea22316767095b2871ea1412d"
    assert nip44.conversation_key(SK_B, PK_A) == key
    payload = nip44.encrypt(key, "a", (1).to_bytes(32, "big"))
    # version byte and nonce, then the spec's ciphertext and MAC
    assert payload == base64.b64encode(b"\x02" + (1).to_bytes(32, "big")).decode()[:-4] + (
        "AAABee0G5VSK0/9YypIObAtDKfYEAjD35uVkHyB0F4DwrcNaCXlCWZKaArsGrY6M9wnuTMxWfp1RTN9Xga8no+kF5Vsb"
    )
    assert nip44.decrypt(key, payload) == "a"


def test_nip44_payload_size_follows_padding() -> None:
    key = nip44.conversation_key(SK_A, PK_B)
    for length in (1, 32, 33, 300, 65535):
        raw = base64.b64decode(nip44.encrypt(key, "x" * length, bytes(32)))
        assert len(raw) == 1 + 32 + 2 + nip44.calc_padded_len(length) + 32


@prop(25)
@given(sk_a=secret_keys, sk_b=secret_keys, text=utf8_texts, nonce=st.binary(min_size=32, max_size=32))
def test_nip44_round_trip(sk_a: bytes, sk_b: bytes, text: str, nonce: bytes) -> None:
    key = nip44.conversation_key(sk_a, curve.pubkey_of(sk_b)[1:])
    assert key == nip44.conversation_key(sk_b, curve.pubkey_of(sk_a)[1:])
    payload = nip44.encrypt(key, text, nonce)
    assert nip44.decrypt(key, payload) == text
    assert nip44.decrypt(key, nip44.encrypt_gen(key, text)) == text


@prop(25)
@given(text=utf8_texts, data=st.data())
def test_nip44_tampering_is_rejected(text: str, data: st.DataObject) -> None:
    key = nip44.conversation_key(SK_A, PK_B)
    raw = bytearray(base64.b64decode(nip44.encrypt_gen(key, text)))
    pos = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(ValueError, match="nip44"):
        nip44.decrypt(key, base64.b64encode(bytes(raw)).decode())


def test_nip44_refusals() -> None:
    key = nip44.conversation_key(SK_A, PK_B)
    good = nip44.encrypt(key, "hello", bytes(32))
    with pytest.raises(ValueError, match="unsupported encryption version"):
        nip44.decrypt(key, "#" + good[1:])
    with pytest.raises(ValueError, match="invalid length"):
        nip44.decrypt(key, good[:100])
    with pytest.raises(ValueError, match="not base64"):
        nip44.decrypt(key, "!" * 132)
    with pytest.raises(ValueError, match="unknown version 1"):
        nip44.decrypt(key, base64.b64encode(b"\x01" + base64.b64decode(good)[1:]).decode())
    with pytest.raises(ValueError, match="invalid MAC"):
        nip44.decrypt(nip44.conversation_key(SK_A, PK_A), good)
    for bad in ("", "x" * 65536):
        with pytest.raises(ValueError, match="1 to 65535 bytes"):
            nip44.encrypt(key, bad, bytes(32))
    with pytest.raises(ValueError, match="nonce must be 32 bytes"):
        nip44.encrypt(key, "a", bytes(12))


# --- NIP-04 ------------------------------------------------------------------------------

def test_nip04_format() -> None:
    shared = curve.ecdh_x(SK_A, PK_B)
    payload = nip04.encrypt(shared, "hello", bytes(range(16)))
    ct, iv = payload.split("?iv=")
    assert base64.b64decode(iv) == bytes(range(16))
    assert len(base64.b64decode(ct)) == 16
    assert nip04.decrypt(shared, payload) == "hello"


@prop(25)
@given(sk_a=secret_keys, sk_b=secret_keys, text=st.text(max_size=300))
def test_nip04_round_trip(sk_a: bytes, sk_b: bytes, text: str) -> None:
    assume(not any(0xD800 <= ord(c) <= 0xDFFF for c in text))
    shared = curve.ecdh_x(sk_a, curve.pubkey_of(sk_b)[1:])
    assert shared == curve.ecdh_x(sk_b, curve.pubkey_of(sk_a)[1:])
    assert nip04.decrypt(shared, nip04.encrypt_gen(shared, text)) == text


def test_nip04_refusals() -> None:
    shared = curve.ecdh_x(SK_A, PK_B)
    good = nip04.encrypt_gen(shared, "hello world")
    with pytest.raises(ValueError, match="'<ciphertext>\\?iv=<iv>'"):
        nip04.decrypt(shared, good.replace("?iv=", "&iv="))
    with pytest.raises(ValueError, match="not base64"):
        nip04.decrypt(shared, "***?iv=" + good.split("?iv=")[1])
    with pytest.raises(ValueError, match="wrong length"):
        nip04.decrypt(shared, good.split("?iv=")[0] + "?iv=AAAA")
    wrong = curve.ecdh_x(SK_A, PK_A)
    try:
        assert nip04.decrypt(wrong, good) != "hello world"
    except ValueError as exc:
        assert "does not decrypt" in str(exc)


# --- nostr-p2p cipher and envelope -------------------------------------------------------

@prop(25)
@given(sk_a=secret_keys, sk_b=secret_keys, text=utf8_texts, iv=st.binary(min_size=24, max_size=24))
def test_p2p_cipher_round_trip(sk_a: bytes, sk_b: bytes, text: str, iv: bytes) -> None:
    pk_a, pk_b = curve.pubkey_of(sk_a)[1:], curve.pubkey_of(sk_b)[1:]
    content = cipher.encrypt_payload(sk_a, pk_b, text, iv)
    body, iv_text = content.split("?iv=")
    assert "=" not in body + iv_text
    assert iv_text == base64.urlsafe_b64encode(iv).decode().rstrip("=")
    assert cipher.decrypt_payload(sk_b, pk_a, content) == text
    assert cipher.decrypt_payload(sk_b, pk_a, cipher.encrypt_payload_gen(sk_a, pk_b, text)) == text


@prop(25)
@given(text=utf8_texts, data=st.data())
def test_p2p_tampering_is_rejected(text: str, data: st.DataObject) -> None:
    content = cipher.encrypt_payload_gen(SK_A, PK_B, text)
    body, iv = content.split("?iv=")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    pos = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(min_value=1, max_value=255))
    forged = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=") + "?iv=" + iv
    with pytest.raises(ValueError, match="authentication"):
        cipher.decrypt_payload(SK_B, PK_A, forged)


def test_p2p_refusals() -> None:
    good = cipher.encrypt_payload_gen(SK_A, PK_B, "x")
    body, iv = good.split("?iv=")
    for bad, match in (
        (body, "'<ciphertext>\\?iv=<iv>'"),
        (f"{body}?iv={iv}?iv={iv}", "'<ciphertext>\\?iv=<iv>'"),
        (f"{body}?iv=AAAA", "wrong length"),
        (f"{body}+/?iv={iv}", "not base64url"),
        (f"?iv={iv}", "wrong length"),
    ):
        with pytest.raises(ValueError, match=match):
            cipher.decrypt_payload(SK_B, PK_A, bad)
    with pytest.raises(ValueError, match="iv must be 24 bytes"):
        cipher.encrypt_payload(SK_A, PK_B, "x", bytes(12))


@prop(25)
@given(tag=st.text(min_size=3, max_size=256), msg_id=st.binary(min_size=16, max_size=16), data=st.text())
def test_envelope_round_trip(tag: str, msg_id: bytes, data: str) -> None:
    text = cipher.encode_envelope(tag, msg_id.hex(), data)
    assert cipher.decode_envelope(text) == (tag, msg_id.hex(), data)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("not json", "not JSON"),
        ('{"a":1}', r"\[tag, id, data\] array"),
        ('["/ping/req","' + "ab" * 16 + '"]', r"\[tag, id, data\] array"),
        ('["/p","' + "ab" * 16 + '","x"]', "tag must be a string of 3 to 256"),
        ('["' + "t" * 257 + '","' + "ab" * 16 + '","x"]', "tag must be a string of 3 to 256"),
        ('["/ping/req","' + "ab" * 32 + '","x"]', "id must be 32 hex"),
        ('["/ping/req","' + "zz" * 16 + '","x"]', "id must be 32 hex"),
        ('["/ping/req","' + "ab" * 16 + '",{"a":1}]', "data must be a string"),
    ],
)
def test_envelope_refusals(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cipher.decode_envelope(text)


def test_envelope_matches_json_stringify() -> None:
    # JSON.stringify keeps non-ASCII as is and escapes control characters in lowercase hex
    text = cipher.encode_envelope("/sign/req", "ab" * 16, 'é"\n\x01{}')
    assert text == '["/sign/req","' + "ab" * 16 + '","é\\"\\n\\u0001{}"]'


# --- NIP-19 and bech32 -------------------------------------------------------------------

@prop(25)
@given(key=secret_keys)
def test_nip19_round_trip(key: bytes) -> None:
    assert nip19.nsec_decode(nip19.nsec_encode(key)) == key
    pub = curve.pubkey_of(key)[1:]
    assert nip19.npub_decode(nip19.npub_encode(pub)) == pub


def test_nip19_known_answer_and_refusals() -> None:
    # NIP-19's own example
    npub = "npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg"
    assert nip19.npub_decode(npub).hex() == "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e"
    with pytest.raises(ValueError, match="expected an nsec1 string"):
        nip19.nsec_decode(npub)
    with pytest.raises(ValueError, match="not a valid secp256k1 secret key"):
        nip19.nsec_decode(nip19.nsec_encode(bytes(32)))
    with pytest.raises(ValueError, match="payload must be 32 bytes"):
        nip19.npub_decode(bech32.encode("npub", bytes(31), variant="bech32"))
    with pytest.raises(ValueError, match="checksum"):
        nip19.npub_decode(npub[:-1] + "q")


@pytest.mark.parametrize(
    ("text", "variant"),
    [
        ("A12UEL5L", "bech32"),
        ("a12uel5l", "bech32"),
        ("abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw", "bech32"),
        ("A1LQFN3A", "bech32m"),
        ("a1lqfn3a", "bech32m"),
        ("abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx", "bech32m"),
    ],
)
def test_bech32_bip_vectors(text: str, variant: str) -> None:
    hrp, data = bech32.decode(text, variant=variant)  # type: ignore[arg-type]
    other = "bech32m" if variant == "bech32" else "bech32"
    with pytest.raises(ValueError, match="checksum"):
        bech32.decode(text, variant=other)  # type: ignore[arg-type]
    assert hrp == text.lower()[: text.rfind("1")]
    assert bech32.decode(bech32.encode(hrp, data, variant=variant), variant=variant)[1] == data  # type: ignore[arg-type]


@prop(25)
@given(data=st.binary(max_size=300), hrp=st.sampled_from(["bfgroup", "bfshare", "nsec", "x"]))
def test_bech32_round_trip_without_length_limit(data: bytes, hrp: str) -> None:
    for variant in ("bech32", "bech32m"):
        text = bech32.encode(hrp, data, variant=variant)  # type: ignore[arg-type]
        assert bech32.decode(text, variant=variant) == (hrp, data)  # type: ignore[arg-type]
        assert bech32.decode(text.upper(), variant=variant) == (hrp, data)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("A1lqfn3a", "mixes upper and lower case"),
        ("lqfn3a", "no valid separator"),
        ("a1lqfn3c", "checksum"),
        ("a1lqfn3i", "outside the bech32 alphabet"),
        ("1lqfn3aaa", "no valid separator"),
    ],
)
def test_bech32_refusals(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        bech32.decode(text, variant="bech32m")
