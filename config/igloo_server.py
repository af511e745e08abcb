"""What Igloo does with the environment of an Igloo Server installation.

Igloo Server (FROSTR-ORG/igloo-server) reads more variables than Igloo has settings. Those with the same
meaning are rows of the settings table (``config/settings.py``); this module holds the rest:

- ``PLACEHOLDERS``: the example values of Igloo Server's ``env.example``. Anyone can read them, so a secret
  set to one of them is refused instead of protecting nothing.
- ``REFUSED``: variables whose Igloo Server meaning cannot be honoured here safely; start-up stops with
  what to write instead.
- ``NO_EFFECT``: variables that tune parts Igloo does not have, or loosen checks Igloo always keeps;
  ignoring them never weakens security, and start-up names them in one log line.

``docs/MIGRATING.md`` explains every one of them; a test keeps that table and these lists in step.
"""

from __future__ import annotations

from collections.abc import Mapping

ADMIN_SECRET_PLACEHOLDER = "REQUIRED_ADMIN_SECRET_NOT_SET"  # noqa: S105 - published, refused

# Example secrets from Igloo Server's env.example (commit e6f814a), with its commented deployment examples.
PLACEHOLDERS = frozenset({
    ADMIN_SECRET_PLACEHOLDER,
    "your-secure-api-key-here",
    "your-secure-password-here",
    "your-random-session-secret-here",
    "personal-server-key-2024",
    "personal-session-secret-32chars",
    "SecureTeamPassword123!",
    "team-automation-key-64chars",
    "team-session-secret-32plus-chars",
    "VerySecurePassword456!",
    "prod-api-key-with-64-random-chars-abcdef123456789",
    "prod-session-secret-256-bits-of-entropy-required-for-production",
})


def placeholder_reason(value: str) -> str | None:
    """Why ``value`` cannot be a secret (it is a published placeholder), or None."""
    if value == ADMIN_SECRET_PLACEHOLDER:
        return ("Igloo Server's placeholder, not a secret: set a real one (openssl rand -hex 32) or "
                "delete the line to use the one-time setup token in DATA_DIR/setup-token")
    if value in PLACEHOLDERS:
        return ("an example value from Igloo Server's env.example, which anyone can read: "
                "set your own (openssl rand -hex 32) or delete the line")
    return None


REFUSED: Mapping[str, str] = {
    "DB_PATH": (
        "Igloo keeps its own SQLite database as igloo.db in DATA_DIR and does not open Igloo Server's "
        "(its tables differ): write DATA_DIR=<directory> instead, and see docs/MIGRATING.md to bring "
        "data over"
    ),
}

NO_EFFECT: Mapping[str, str] = {
    "HEADLESS": "Igloo is both at once: GROUP_CRED/SHARE_CRED start the signer, accounts live in SQLite",
    "CREDENTIALS_SAVED_AT": "a timestamp Igloo Server writes into its .env; Igloo keeps its own",
    "AUTO_ADMIN_SECRET": "Igloo never invents an admin secret; it writes a one-time setup token instead",
    "SKIP_ADMIN_SECRET_VALIDATION": "Igloo always asks for ADMIN_SECRET or the setup token before the first "
                                    "account is created",
    "ENV_SHARES_INCLUDE_RAW": "Igloo never returns credentials from /api/env",
    "FINGERPRINT_SECRET": "Igloo's onboarding does not fingerprint clients",
    "LOG_FINGERPRINT_FALLBACK": "Igloo's onboarding does not fingerprint clients",
    "CLIENT_ID_TTL_MS": "Igloo's onboarding does not fingerprint clients",
    "AUTH_DERIVED_KEY_TTL_MS": "Igloo does not keep per-user password-derived keys in memory",
    "AUTH_DERIVED_KEY_MAX_READS": "Igloo does not keep per-user password-derived keys in memory",
    "AUTH_DERIVED_KEY_MAX_REHYDRATIONS": "Igloo does not keep per-user password-derived keys in memory",
    "VAULT_CLEANUP_INTERVAL_MS": "Igloo does not keep per-user password-derived keys in memory",
    "NODE_RESTART_DELAY": "Igloo's relay connections reconnect with their own backoff; the node is not "
                          "restarted",
    "NODE_MAX_RETRIES": "Igloo's relay connections reconnect with their own backoff; the node is not "
                        "restarted",
    "NODE_BACKOFF_MULTIPLIER": "Igloo's relay connections reconnect with their own backoff; the node is not "
                               "restarted",
    "NODE_MAX_RETRY_DELAY": "Igloo's relay connections reconnect with their own backoff; the node is not "
                            "restarted",
    "INITIAL_CONNECTIVITY_DELAY": "Igloo pings peers PEER_PING_INTERVAL seconds apart, the first after 2 s",
    "CONNECTIVITY_PING_TIMEOUT_MS": "peer pings time out with FROSTR_SIGN_TIMEOUT",
    "PING_TIMEOUT_MS": "peer pings time out with FROSTR_SIGN_TIMEOUT",
    "ECHO_TIMEOUT_MS": "the self-echo after saving credentials waits FROSTR_SIGN_TIMEOUT",
    "SELF_ECHO_TIMEOUT_MS": "the self-echo after saving credentials waits FROSTR_SIGN_TIMEOUT",
    "PUBLISH_EVENT_TIMEOUT_MS": "a request to peers is bounded by FROSTR_SIGN_TIMEOUT as a whole",
    "RELAY_PUBLISH_TIMEOUT": "a request to peers is bounded by FROSTR_SIGN_TIMEOUT as a whole",
    "RELAY_ALLOW_BENIGN_SWALLOW": "relay errors are always reported as events",
    "NODE_ALLOW_BENIGN_PUBLISH_SWALLOW": "relay errors are always reported as events",
    "NODE_PUBLISH_METRICS": "Igloo does not publish node metrics",
    "ERROR_CIRCUIT_WINDOW_MS": "Igloo does not exit on bursts of errors; systemd restarts it if it dies",
    "ERROR_CIRCUIT_THRESHOLD": "Igloo does not exit on bursts of errors; systemd restarts it if it dies",
    "ERROR_CIRCUIT_EXIT_CODE": "Igloo does not exit on bursts of errors; systemd restarts it if it dies",
}


def refused_variable(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """The first refused Igloo Server variable set in ``environ`` with why, or None."""
    for name, reason in REFUSED.items():
        if environ.get(name, "").strip():
            return name, reason
    return None


def unused_variables(environ: Mapping[str, str]) -> list[str]:
    """Igloo Server variables set in ``environ`` that have no effect here (for one start-up log line)."""
    return [name for name in NO_EFFECT if environ.get(name, "").strip()]
