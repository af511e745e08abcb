"""Igloo's own server as a real subprocess for interop tests and the signing bench: a node with the
group and share given as arguments, started until ready.

```python
async with IglooServer(group, share, data_dir, relays=[]) as igloo:   # [] = the embedded relay
    igloo.relay_url                      # ws://127.0.0.1:<port>/ (its embedded relay)
    status, body = await igloo.post("/api/sign", {"message": sighash})
```

Everything else (requests with the API key, the event stream, bounded stop, the log) is
:class:`tests.igloo_process.ServerProc`.
"""

from __future__ import annotations

from pathlib import Path

from tests.igloo_process import API_KEY, ServerProc

__all__ = ["API_KEY", "IglooServer"]


class IglooServer(ServerProc):
    """`python server.py` on a free loopback port with GROUP_CRED/SHARE_CRED from the environment."""

    def __init__(
        self,
        group: str,
        share: str,
        data_dir: Path,
        *,
        relays: list[str] | None = None,
        sign_timeout: float = 5.0,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
        python_args: list[str] | None = None,
    ) -> None:
        env = {
            "GROUP_CRED": group,
            "SHARE_CRED": share,
            "RELAYS": ",".join(relays or []),
            "FROSTR_SIGN_TIMEOUT": str(round(sign_timeout * 1000)),  # milliseconds
            **(extra_env or {}),
        }
        super().__init__(data_dir, port=port, env=env, python_args=python_args)

    async def start(self, timeout: float = 20.0, ready: bool = True) -> IglooServer:
        """Spawn the server and wait until its node is ready (raises with the log tail otherwise)."""
        await super().start(timeout, ready)
        return self

    async def stop(self) -> None:
        """SIGTERM, then kill after 8 s; bounded. Also closes the HTTP client (never restarted here)."""
        await super().stop()
        self.client.close()
