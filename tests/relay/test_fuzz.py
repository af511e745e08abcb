"""The long fuzzing group (``make fuzz``): the relay message and query properties at IGLOO_FUZZ_EXAMPLES."""

from __future__ import annotations

import pytest

from tests.relay import test_properties as props

pytestmark = pytest.mark.fuzz


def test_fuzz_client_parser() -> None:
    props.test_client_parser_raises_only_value_error()


def test_fuzz_relay_parser() -> None:
    props.test_relay_parser_raises_only_value_error()


def test_fuzz_query() -> None:
    props.test_query_equals_brute_force()
