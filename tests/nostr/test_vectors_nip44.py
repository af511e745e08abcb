"""The official NIP-44 v2 vectors (tests/vectors/nip44.vectors.json, every case of every section).

The file is the one NIP-44 publishes by checksum: 44.md gives its sha256 rather than the vectors themselves,
so the first test pins the copy in the repository to that hash.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from node.crypto import curve
from node.nostr import nip44
from tests.conftest import VECTORS_DIR
from tests.crypto.vectors import cases, unpack

FILE = "nip44.vectors.json"
# nostr-protocol/nips 44.md, "Tests and code": "269ed0f6…5040  nip44.vectors.json".
NIP44_MD_SHA256 = "269ed0f69e4c192512cc779e78c555090cebc7c785b609e338a62afc3ce25040"


def test_the_file_is_the_one_nip44_names() -> None:
    assert hashlib.sha256((VECTORS_DIR / FILE).read_bytes()).hexdigest() == NIP44_MD_SHA256


def _section(kind: str, name: str) -> Any:
    def split(data: Any) -> list[tuple[str, Any]]:
        entries = data["v2"][kind][name]
        if isinstance(entries, dict):  # get_message_keys: one conversation key, many nonces
            return [(f"{i}", (entries["conversation_key"], key)) for i, key in enumerate(entries["keys"])]
        return [(f"{i}-{entry['note']}" if isinstance(entry, dict) and "note" in entry else f"{i}", entry)
                for i, entry in enumerate(entries)]

    return split


def _xonly(seckey: str) -> bytes:
    return curve.pubkey_of(bytes.fromhex(seckey))[1:]


@pytest.mark.parametrize("param", cases(FILE, _section("valid", "get_conversation_key")))
def test_valid_conversation_key(param: Any) -> None:
    case = unpack(param)
    key = nip44.conversation_key(bytes.fromhex(case["sec1"]), bytes.fromhex(case["pub2"]))
    assert key.hex() == case["conversation_key"]


@pytest.mark.parametrize("param", cases(FILE, _section("valid", "get_message_keys")))
def test_valid_message_keys(param: Any) -> None:
    conversation_key, case = unpack(param)
    keys = nip44.message_keys(bytes.fromhex(conversation_key), bytes.fromhex(case["nonce"]))
    assert [k.hex() for k in keys] == [case["chacha_key"], case["chacha_nonce"], case["hmac_key"]]


@pytest.mark.parametrize("param", cases(FILE, _section("valid", "calc_padded_len")))
def test_valid_padded_length(param: Any) -> None:
    length, padded = unpack(param)
    assert nip44.calc_padded_len(length) == padded


@pytest.mark.parametrize("param", cases(FILE, _section("valid", "encrypt_decrypt")))
def test_valid_encrypt_decrypt(param: Any) -> None:
    case = unpack(param)
    key = nip44.conversation_key(bytes.fromhex(case["sec1"]), _xonly(case["sec2"]))
    assert key.hex() == case["conversation_key"]
    assert nip44.conversation_key(bytes.fromhex(case["sec2"]), _xonly(case["sec1"])) == key
    assert nip44.encrypt(key, case["plaintext"], bytes.fromhex(case["nonce"])) == case["payload"]
    assert nip44.decrypt(key, case["payload"]) == case["plaintext"]


@pytest.mark.parametrize("param", cases(FILE, _section("valid", "encrypt_decrypt_long_msg")))
def test_valid_long_messages(param: Any) -> None:
    case = unpack(param)
    plaintext = case["pattern"] * case["repeat"]
    assert hashlib.sha256(plaintext.encode()).hexdigest() == case["plaintext_sha256"]
    key = bytes.fromhex(case["conversation_key"])
    payload = nip44.encrypt(key, plaintext, bytes.fromhex(case["nonce"]))
    assert hashlib.sha256(payload.encode()).hexdigest() == case["payload_sha256"]
    assert nip44.decrypt(key, payload) == plaintext


@pytest.mark.parametrize("param", cases(FILE, _section("invalid", "encrypt_msg_lengths")))
def test_invalid_message_lengths(param: Any) -> None:
    length = unpack(param)
    with pytest.raises(ValueError, match="1 to 65535 bytes"):
        nip44.encrypt(bytes(32), "a" * length, bytes(32))


@pytest.mark.parametrize("param", cases(FILE, _section("invalid", "get_conversation_key")))
def test_invalid_conversation_key(param: Any) -> None:
    case = unpack(param)
    with pytest.raises(ValueError):
        nip44.conversation_key(bytes.fromhex(case["sec1"]), bytes.fromhex(case["pub2"]))
    if case["note"].startswith("sec1"):  # these also carry a bad pub2: the secret alone must be refused too
        with pytest.raises(ValueError, match="secret key"):
            nip44.conversation_key(bytes.fromhex(case["sec1"]), _xonly("01" * 32))


@pytest.mark.parametrize("param", cases(FILE, _section("invalid", "decrypt")))
def test_invalid_payloads(param: Any) -> None:
    case = unpack(param)
    with pytest.raises(ValueError):
        nip44.decrypt(bytes.fromhex(case["conversation_key"]), case["payload"])
