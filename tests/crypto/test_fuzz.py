"""The long fuzzing group (``make fuzz``): the crypto properties again, at IGLOO_FUZZ_EXAMPLES."""

from __future__ import annotations

import pytest

from tests.crypto import test_properties as props
from tests.nostr import test_ciphers as ciphers

pytestmark = pytest.mark.fuzz


def test_fuzz_sign_and_verify() -> None:
    props.test_sign_and_verify()


def test_fuzz_recovery() -> None:
    props.test_recovery_needs_threshold()


def test_fuzz_ecdh() -> None:
    props.test_ecdh_equals_group_secret_times_point()


def test_fuzz_credentials() -> None:
    props.test_credential_round_trips()


def test_fuzz_ciphers() -> None:
    ciphers.test_nip44_round_trip()
    ciphers.test_nip44_tampering_is_rejected()
    ciphers.test_nip04_round_trip()
    ciphers.test_p2p_cipher_round_trip()
    ciphers.test_p2p_tampering_is_rejected()
    ciphers.test_envelope_round_trip()
