"""Who may write to the embedded relay.

``all``: any valid event, as a public relay. ``signer``: only what this signer needs, which is

- events whose author is a member of the running signing group (FROSTR kind 20004 and anything else a
  member's share key signs), from ``members()``;
- NIP-46 traffic (kind 24133) from or to one of this signer's NIP-46 transport keys, from ``nip46_keys()``:
  a client's request carries the transport key in a ``p`` tag, the signer's answer is authored by it.

Both are callables that ``server.py`` wires to the node (so a new group or a new transport key applies
to the next event) and that must be cheap: they run once per incoming event, before the signature is
verified. With no group running, ``signer`` accepts nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from node import Event

WRITE_ALL = "all"
WRITE_SIGNER = "signer"
WRITE_MODES = (WRITE_SIGNER, WRITE_ALL)
NIP46_KIND = 24133

PubkeySource = Callable[[], Collection[str]]


def _nobody() -> Collection[str]:
    return ()


class WritePolicy:
    """The relay's write rule (see the module doc)."""

    def __init__(self, mode: str = WRITE_ALL, members: PubkeySource = _nobody,
                 nip46_keys: PubkeySource = _nobody) -> None:
        if mode not in WRITE_MODES:
            raise ValueError(f"write mode must be one of {', '.join(WRITE_MODES)}")
        self.mode = mode
        self.members = members
        self.nip46_keys = nip46_keys

    @property
    def restricted(self) -> bool:
        """True when not everyone may write (NIP-11 ``restricted_writes``)."""
        return self.mode != WRITE_ALL

    def refusal(self, event: Event) -> str | None:
        """The ``restricted:`` reason for refusing this event, or None when it may be written."""
        if self.mode == WRITE_ALL or event.pubkey in self.members():
            return None
        if event.kind == NIP46_KIND:
            keys = self.nip46_keys()
            if keys and (event.pubkey in keys or any(
                len(tag) >= 2 and tag[0] == "p" and tag[1] in keys for tag in event.tags
            )):
                return None
        return "restricted: this relay only takes events of its own signing group"
