"""Who may write: everything, or only what this signer needs (its group's members, its NIP-46 traffic)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from config.settings import ConfigError, Settings
from relay import NIP46_KIND, RelayState, WritePolicy
from server import GroupMembers, build_relay
from tests.relay.helpers import RelayClient, make_event, pubkey

pytestmark = pytest.mark.timeout(30)

MEMBERS = {pubkey(0), pubkey(1)}
TRANSPORT_KEYS: set[str] = set()


@pytest.fixture
def relay_settings() -> dict[str, Any]:
    """Signer mode: keys 0 and 1 are the group, the NIP-46 transport keys are whatever the test sets."""
    TRANSPORT_KEYS.clear()
    policy = WritePolicy("signer", members=lambda: MEMBERS, nip46_keys=lambda: TRANSPORT_KEYS)
    return {"relay": RelayState(policy=policy)}


async def test_members_write_strangers_are_restricted(relay_url: str) -> None:
    listener, writer = await RelayClient.connect(relay_url), await RelayClient.connect(relay_url)
    await listener.req("all", {})
    member = make_event(1, kind=20004, tags=[["p", pubkey(0)]], content="frostr")
    assert await writer.publish(member) == ["OK", member.id, True, ""]
    assert await listener.recv() == ["EVENT", "all", member.to_json()]
    stored = make_event(0, kind=1, content="a member may also store")
    assert (await writer.publish(stored))[2] is True
    assert (await listener.recv())[2]["id"] == stored.id
    for stranger in (make_event(2, kind=20004, tags=[["p", pubkey(0)]]), make_event(3, kind=1)):
        reply = await writer.publish(stranger)
        assert reply[2] is False and reply[3].startswith("restricted:"), reply
    await listener.assert_quiet()
    assert [e["id"] for e in await writer.req("later", {})] == [stored.id]


async def test_nip46_traffic_to_and_from_the_transport_key(relay_url: str) -> None:
    client = await RelayClient.connect(relay_url)
    transport, app_key = pubkey(3), pubkey(4)
    request = make_event(4, kind=NIP46_KIND, tags=[["p", transport]], content="request")
    answer = make_event(3, kind=NIP46_KIND, tags=[["p", app_key]], content="answer")
    assert (await client.publish(request))[3].startswith("restricted:")  # no transport key yet
    TRANSPORT_KEYS.add(transport)
    assert await client.publish(request) == ["OK", request.id, True, ""]
    assert await client.publish(answer) == ["OK", answer.id, True, ""]
    elsewhere = make_event(4, kind=NIP46_KIND, tags=[["p", pubkey(2)]], content="to someone else")
    assert (await client.publish(elsewhere))[3].startswith("restricted:")
    other_kind = make_event(4, kind=1, tags=[["p", transport]], content="not NIP-46")
    assert (await client.publish(other_kind))[3].startswith("restricted:")


async def test_invalid_events_are_refused_as_before(relay_url: str) -> None:
    client = await RelayClient.connect(relay_url)
    forged = dict(make_event(0).to_json(), content="changed")  # a member's key, a broken id
    await client.send(["EVENT", forged])
    reply = await client.recv()
    assert reply[:3] == ["OK", forged["id"], False] and reply[3].startswith("invalid:")


async def test_nip11_says_writes_are_restricted(http_server_client: Any) -> None:
    response = await http_server_client.fetch("/", headers={"Accept": "application/nostr+json"})
    assert json.loads(response.body)["limitation"]["restricted_writes"] is True


def test_all_mode_takes_any_valid_event() -> None:
    relay = RelayState(policy=WritePolicy("all", members=lambda: MEMBERS))
    assert relay.publish(make_event(3)) == (True, "")
    assert not relay.policy.restricted


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="write mode"):
        WritePolicy("members")


def test_group_members_follow_the_node_managers_service() -> None:
    manager = SimpleNamespace(service=None)
    members = GroupMembers(manager)
    assert members() == frozenset()
    manager.service = SimpleNamespace(pubkey=pubkey(0), peers=[pubkey(1), pubkey(2)])
    assert members() == {pubkey(0), pubkey(1), pubkey(2)}
    manager.service = SimpleNamespace(pubkey=pubkey(3), peers=[pubkey(4)])  # new credentials, new group
    assert members() == {pubkey(3), pubkey(4)}


def test_build_relay_takes_every_relay_setting(tmp_path: Path) -> None:
    config = Settings.from_env({
        "DATA_DIR": str(tmp_path), "RELAY_WRITE": "all", "RELAY_MAX_PER_IP": "3", "RELAY_LOCAL_RESERVED": "2",
        "RELAY_MAX_BYTES": str(2 << 20), "RELAY_ADDRESS_QUOTA": "100000", "RELAY_AUTHOR_QUOTA": "90000",
        "RELAY_MAX_EVENT_BYTES": "5000", "RELAY_MAX_TAGS": "30", "RELAY_MAX_TAG_STRINGS": "5",
        "RELAY_MAX_FILTER_VALUES": "77", "RELAY_MAX_QUERY_WORK": "4321", "RELAY_EVENT_RATE": "7",
        "RELAY_MAX_CONNECTIONS": "9", "RELAY_MAX_EVENTS": "11", "RELAY_MAX_AGE": "12",
    })
    relay = build_relay(config)
    assert relay.policy.mode == "all"
    assert dataclasses.asdict(relay.limits).items() >= {
        "max_connections_per_address": 3, "local_reserved": 2, "max_bytes": 2 << 20, "address_quota": 100000,
        "author_quota": 90000, "max_event_bytes": 5000, "max_event_tags": 30, "max_tag_strings": 5,
        "max_filter_values": 77, "max_query_work": 4321, "event_rate": 7.0, "event_burst": 14.0,
        "max_connections": 9, "max_events": 11, "max_age": 12.0,
    }.items()
    assert build_relay(Settings(data_dir=tmp_path)).policy.mode == "signer"  # the default


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"RELAY_WRITE": "members"}, "RELAY_WRITE"),
        ({"RELAY_MAX_PER_IP": "0"}, "RELAY_MAX_PER_IP"),
        ({"RELAY_MAX_BYTES": "1000"}, "RELAY_MAX_BYTES"),
        ({"RELAY_MAX_EVENT_BYTES": "999999"}, "RELAY_MAX_EVENT_BYTES"),
        ({"RELAY_MAX_TAG_STRINGS": "1"}, "RELAY_MAX_TAG_STRINGS"),
        ({"RELAY_MAX_CONNECTIONS": "10", "RELAY_LOCAL_RESERVED": "10"}, "RELAY_LOCAL_RESERVED"),
    ],
)
def test_bad_relay_settings_name_the_variable(tmp_path: Path, env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=f"^{named}:"):
        Settings.from_env({"DATA_DIR": str(tmp_path), **env})
