"""Single-use form tokens: a form whose answer shows a secret once must not run twice.

Reloading the page a POST rendered sends the same body again; XSRF tokens do not stop that (they are the same
for every form of a session). Each rendering of such a form carries a fresh random token, and a POST runs
only if its token is unspent, spending it. Nothing of the answer is kept: a reload gets the form again with a
note, never the secret. Tokens live in memory (a restart only means the form must be filled again), at most
``capacity`` of them, each for ``ttl`` seconds.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict

from node import Clock

FIELD = "form_token"
ALREADY_USED = ("This form was already sent (a reload?): its result was shown once and is not kept. "
                "Fill the form again to do it again.")


class FormTokens:
    """Issue and redeem single-use tokens; bounded in number and age."""

    def __init__(self, ttl: float = 3600.0, capacity: int = 1000, clock: Clock = time.monotonic) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._clock = clock
        self._issued: OrderedDict[str, float] = OrderedDict()  # token -> expiry, oldest first

    def issue(self) -> str:
        """A new token for one rendering of a form (the oldest is dropped beyond ``capacity``)."""
        token = secrets.token_urlsafe(24)
        self._issued[token] = self._clock() + self.ttl
        while len(self._issued) > self.capacity:
            self._issued.popitem(last=False)
        return token

    def redeem(self, token: str) -> bool:
        """Spend ``token``: True once for a token issued here and not expired, False ever after."""
        expires = self._issued.pop(token, None)
        return expires is not None and self._clock() <= expires
