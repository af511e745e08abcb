"""Fuzz credential parsing: random strings and mutations of valid credentials (bit flips, truncation, wrong
prefix or checksum variant, case, junk around them).

decode_group / decode_share / nip19 / keytools either accept the input or raise ValueError with a message
that never contains the input; POST /api/env answers 400 naming the field (or 200 when a mutation happens
to be valid, such as upper case or surrounding whitespace) and never echoes what it was sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import tornado.ioloop
import tornado.web
from hypothesis import given
from hypothesis import strategies as st

from node import keytools, validate_credentials
from node.crypto.credentials import decode_group, decode_share, encode_group, encode_share
from node.crypto.keygen import generate_dealer_pkg_gen
from node.nostr import nip19
from tests.fuzz.conftest import (
    JSON_HEADERS,
    ErrorTrap,
    World,
    build_request,
    fuzz_settings,
    raw_http,
    run,
    scales,
)
from tests.fuzz.mutate import mutations_of
from tests.fuzz.strategies import text

GROUP, SHARES = generate_dealer_pkg_gen(2, 3)
GROUP_CRED = encode_group(GROUP)
SHARE_CREDS = [encode_share(s) for s in SHARES]
NSEC = nip19.nsec_encode(SHARES[0].seckey)
NPUB = nip19.npub_encode(GROUP.group_pk[1:])

candidates = st.one_of(
    text,
    mutations_of(GROUP_CRED),
    mutations_of(SHARE_CREDS[0]),
    mutations_of(NSEC, "bech32"),
    mutations_of(NPUB, "bech32"),
    st.text(alphabet="qpzry9x8gf2tvdw0s3jn54khce6mua7l1", max_size=700).map(lambda s: "bfshare1" + s),
    st.text(alphabet="0123456789abcdefABCDEF", min_size=60, max_size=68),
)

PARSERS: dict[str, Callable[[str], Any]] = {
    "decode_group": decode_group,
    "decode_share": decode_share,
    "nsec_decode": nip19.nsec_decode,
    "npub_decode": nip19.npub_decode,
    "parse_secret": keytools.parse_secret,
    "recover(group=x)": lambda s: keytools.recover(s, SHARE_CREDS[:2]),
    "recover(shares=[x, share])": lambda s: keytools.recover(GROUP_CRED, [s, SHARE_CREDS[1]]),
    "validate_credentials(share=x)": lambda s: validate_credentials(GROUP_CRED, s),
    "validate_credentials(group=x)": lambda s: validate_credentials(s, SHARE_CREDS[0]),
}


def assert_not_echoed(value: str, message: str) -> None:
    """Neither the input nor its data part (the secret of a share or nsec) appears in the message."""
    core = value.strip()
    if len(core) >= 12:
        assert core not in message and core.lower() not in message.lower(), message
        data = core.rpartition("1")[2]
        if len(data) >= 12:
            assert data.lower() not in message.lower(), message


@pytest.mark.parametrize("examples", scales(150))
@pytest.mark.parametrize("name", sorted(PARSERS))
def test_parsers_raise_value_error_without_echo(name: str, examples: int) -> None:
    """Accept or ValueError with a message; never another exception type, never the input echoed."""
    parse = PARSERS[name]

    @fuzz_settings(examples)
    @given(value=candidates)
    def case(value: str) -> None:
        try:
            parse(value)
        except ValueError as exc:
            assert str(exc), "empty error message"
            assert_not_echoed(value, str(exc))

    case()


@pytest.mark.parametrize("examples", scales(40))
def test_env_api_refuses_mutated_credentials(
    world: World, http_server: Any, http_server_port: tuple[Any, int], io_loop: tornado.ioloop.IOLoop,
    errors: ErrorTrap, examples: int,
) -> None:
    """POST /api/env with a mutated group or share: 400 naming the field, the input never echoed."""
    port = http_server_port[1]
    group, share = world.group_cred, world.share_creds[0]

    @fuzz_settings(examples)
    @given(which=st.sampled_from(["GROUP_CRED", "SHARE_CRED"]),
           value=st.one_of(mutations_of(group), mutations_of(share), text))
    def case(which: str, value: str) -> None:
        body = {"GROUP_CRED": group, "SHARE_CRED": share, which: value}
        request = build_request("POST", "/api/env", JSON_HEADERS, json.dumps(body).encode())
        response = run(io_loop, lambda: raw_http(port, request))
        errors.check()
        assert response.status in (200, 400), response.status
        if response.status == 400:
            message = json.loads(response.body)["error"]
            assert message.startswith(("GROUP_CRED:", "SHARE_CRED:")), message
            assert_not_echoed(value, message)
        assert share.encode() not in response.body

    case()
