"""Small helpers for browser tests that need more than one server: extra Igloo processes and API calls."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.browser.conftest import IglooProcess
from tests.igloo_process import free_port


def spawn(data_dir: Path, users: tuple[tuple[str, str], ...] = (), **env: str) -> IglooProcess:
    """Start one more ``python server.py`` with extra environment variables (after the defaults)."""
    proc = IglooProcess(data_dir, free_port())
    proc.env.update(env)
    for name, password in users:
        proc.adduser(name, password)
    proc.start()
    return proc


def api(proc: IglooProcess, method: str, path: str, body: Any = None, timeout: float = 30) -> tuple[int, Any]:
    """One JSON call with the server's API key: ``(status, parsed body)``."""
    request = urllib.request.Request(
        proc.base + path, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"X-API-Key": proc.env["API_KEY"], "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``check`` (bounded) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.05)
