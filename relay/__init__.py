"""The embedded Nostr relay's state without sockets: store and indexes, queries, subscriptions, limits.

``handlers/relay.py`` is its only socket code; ``server.py`` builds the one ``RelayState``.
"""

from relay.clients import RELAY_FULL, TOO_MANY_FROM_ADDRESS, Admission, ClientAddress, address_key
from relay.limits import LOCAL_ADDRESSES, RelayLimits
from relay.policy import NIP46_KIND, WRITE_ALL, WRITE_MODES, WRITE_SIGNER, WritePolicy
from relay.query import StoredQuery, record_matches
from relay.state import Connection, RelayState
from relay.store import EventStore, StoredEvent, is_ephemeral, stored_cost
from relay.subscriptions import Subscription, SubscriptionIndex

__all__ = [
    "LOCAL_ADDRESSES",
    "NIP46_KIND",
    "RELAY_FULL",
    "TOO_MANY_FROM_ADDRESS",
    "WRITE_ALL",
    "WRITE_MODES",
    "WRITE_SIGNER",
    "Admission",
    "ClientAddress",
    "Connection",
    "EventStore",
    "RelayLimits",
    "RelayState",
    "StoredEvent",
    "StoredQuery",
    "Subscription",
    "SubscriptionIndex",
    "WritePolicy",
    "address_key",
    "is_ephemeral",
    "record_matches",
    "stored_cost",
]
