"""Hypothesis settings for the crypto and nostr property tests (applied per test, not globally).

``IGLOO_FUZZ_EXAMPLES`` raises the number of examples per property (``make fuzz`` sets 10 000);
by default the suite runs a small, derandomized number so it stays fast and reproducible.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES = int(os.environ.get("IGLOO_FUZZ_EXAMPLES", "0") or 0)


def prop(default: int = 15) -> settings:
    """Settings for one property: ``default`` examples unless IGLOO_FUZZ_EXAMPLES is set."""
    return settings(
        max_examples=FUZZ_EXAMPLES or default,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=not FUZZ_EXAMPLES,
        database=None,
    )
