"""The shared validators (node/validate.py) and the one token bucket (node/ratelimit.py)."""

from __future__ import annotations

import pytest

from node.ratelimit import TokenBucket
from node.validate import hex_bytes, is_hex, relay_url, relay_urls, sighash_vectors, xonly_pubkey

KEY = "ab" * 32


def test_hex_forms() -> None:
    assert is_hex("00ff") and not is_hex("0f0") and not is_hex("") and not is_hex("AB")
    assert hex_bytes("AB" * 32, 32, "id") == KEY
    with pytest.raises(ValueError, match=r"^id: expected 64 hex characters$"):
        hex_bytes("zz" * 32, 32, "id")


def test_sighash_vectors_one_message_or_a_batch_lower_cased() -> None:
    assert sighash_vectors("AB" * 32) == [[KEY]]
    assert sighash_vectors([[KEY], ["cd" * 32, *["ef" * 32] * 8]]) == [[KEY], ["cd" * 32, *["ef" * 32] * 8]]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ([], "expected 1 to 100 sighash vectors"),
        ([[f"{i:064x}"] for i in range(101)], "expected 1 to 100 sighash vectors"),
        ({"a": 1}, "expected 1 to 100 sighash vectors"),
        ([[]], "at most 8 tweaks"),
        ([[KEY, *[KEY] * 9]], "at most 8 tweaks"),
        ([KEY], "at most 8 tweaks"),  # a vector must be a list, not a bare string
        ([[KEY[:-2]]], "64 hex characters"),
        ([[KEY, 7]], "64 hex characters"),
        ([[KEY], [KEY.upper()]], "unique"),
        ("zz", "64 hex characters"),
    ],
)
def test_sighash_vector_refusals_name_the_field(bad: object, reason: str) -> None:
    with pytest.raises(ValueError, match=f"^session hashes: .*{reason}"):
        sighash_vectors(bad, "session hashes")


def test_pubkey_accepts_compressed_and_names_the_field() -> None:
    assert xonly_pubkey("02" + KEY.upper()) == KEY
    with pytest.raises(ValueError, match=r"^peer_pubkey: "):
        xonly_pubkey("04" + KEY, "peer_pubkey")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('["ws://a.example/", "wss://b.example"]', ["ws://a.example/", "wss://b.example"]),
        ("ws://a.example, wss://b.example  ws://a.example", ["ws://a.example", "wss://b.example"]),
        ("wss://a.example\nwss://b.example", ["wss://a.example", "wss://b.example"]),
        (["ws://127.0.0.1:8002/", ""], ["ws://127.0.0.1:8002/"]),
        (None, []),
    ],
)
def test_relay_list_forms(value: object, expected: list[str]) -> None:
    assert relay_urls(value) == expected


@pytest.mark.parametrize("bad", ["ws://", "http://a.example", "wss://a b", "ws://" + "a" * 600, 5])
def test_relay_url_refusals_name_the_field_and_not_the_value(bad: object) -> None:
    with pytest.raises(ValueError) as info:
        relay_url(bad, "RELAYS")
    assert str(info.value).startswith("RELAYS: ")
    assert "a b" not in str(info.value)


def test_relay_list_cap() -> None:
    with pytest.raises(ValueError, match="at most 2 relays"):
        relay_urls([f"ws://r{i}.example" for i in range(3)], max_count=2)


def test_token_bucket_refills_on_its_clock() -> None:
    now = [100.0]
    bucket = TokenBucket(rate=2, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after() == 1
    now[0] += 0.5
    assert bucket.take() and not bucket.take()
    bucket.charge(5)
    assert bucket.retry_after() == 3
    now[0] += 100
    assert bucket.tokens <= 3 and bucket.take(3)


def test_hex_rules_live_only_in_node_validate() -> None:
    """No other module above node/crypto spells out a hex alphabet: they all call node.validate."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spelled = ("0123456789abcdef", "0-9a-f", "0-9A-F", "0-9a-fA-F")
    offenders = [
        str(path.relative_to(root))
        for folder in ("node", "handlers")
        for path in sorted((root / folder).rglob("*.py"))
        if "crypto" not in path.parts and path.name != "validate.py"
        and any(text in path.read_text() for text in spelled)
    ]
    assert offenders == []
