"""`python server.py` started in a directory of the test's choosing (so its `.env` is the one read),
with an environment stripped of every variable Igloo or Igloo Server reads."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import tornado.httpclient

from config import igloo_server
from config.settings import BY_NAME
from tests.igloo_process import ROOT, free_port

__all__ = ["Launched", "clean_environment", "free_port", "launch", "run_to_exit"]


def clean_environment(**extra: str) -> dict[str, str]:
    """The test process's environment without any configuration variable, plus ``extra``."""
    known = set(BY_NAME) | set(igloo_server.NO_EFFECT) | set(igloo_server.REFUSED)
    env = {k: v for k, v in os.environ.items() if k not in known}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


async def run_to_exit(cwd: Path, env: dict[str, str], timeout: float = 30.0) -> tuple[int, str]:
    """Run the server until it exits by itself (a configuration error); (exit code, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "server.py"), cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, stderr.decode(errors="replace")


class Launched:
    """A running server: its port, its log file, and a bounded stop."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int, log_path: Path) -> None:
        self.proc, self.port, self.log_path = proc, port, log_path
        self.base = f"http://127.0.0.1:{port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def launch(cwd: Path, env: dict[str, str], port: int, timeout: float = 30.0) -> Launched:
    """Start the server in ``cwd`` and wait until GET /api/status answers on ``port``."""
    log_path = cwd / "server.log"
    with log_path.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "server.py"), cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=log, stderr=log,
        )
    launched = Launched(proc, port, log_path)
    client = tornado.httpclient.AsyncHTTPClient()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {launched.log()[-2000:]}")
        try:
            response = await client.fetch(f"{launched.base}/api/status", raise_error=False, request_timeout=2)
            if response.code == 200:
                return launched
        except OSError:
            pass
        await asyncio.sleep(0.05)
    await launched.stop()
    raise RuntimeError(f"server did not answer within {timeout}s: {launched.log()[-2000:]}")
