"""NIP-46 remote signing ("bunker") with the threshold group key: no HTTP here, only the signer side.

- ``bunker``: the service (listener, session gate, methods, approval queue, pairing)
- ``listener``: its own relay connections, one pool per relay, changed live
- ``protocol``: kind-24133 messages, request and param checks (pure)
- ``permissions``: allow / ask / deny per method and per kind (pure)
- ``records``: sessions, requests and their state machine, the storage Protocol
- ``uri``: ``bunker://`` and ``nostrconnect://`` links (pure)
- ``signer``: what the bunker needs from the node (a Protocol); ``node_signer``: the adapter over NodeManager
  (NIP-44/NIP-04 through the node's own cipher, ``node.ciphers``)
"""

from node.nip46.bunker import ACTIONS, Bunker, BunkerOptions, BunkerUnavailable, TooManySessions
from node.nip46.node_signer import NodeSigner
from node.nip46.permissions import PERMISSION_METHODS, Decision, Permissions, RequestedPermission
from node.nip46.records import REQUEST_STATES, InvalidTransition, RequestRecord, Session
from node.nip46.uri import NostrConnectOffer, bunker_uri, parse_nostrconnect

__all__ = [
    "ACTIONS",
    "PERMISSION_METHODS",
    "REQUEST_STATES",
    "Bunker",
    "BunkerOptions",
    "BunkerUnavailable",
    "Decision",
    "InvalidTransition",
    "NodeSigner",
    "NostrConnectOffer",
    "Permissions",
    "RequestRecord",
    "RequestedPermission",
    "Session",
    "TooManySessions",
    "bunker_uri",
    "parse_nostrconnect",
]
