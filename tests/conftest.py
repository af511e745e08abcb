"""Fixtures shared by the whole suite."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
VECTORS_DIR = REPO_ROOT / "tests" / "vectors"


def load_vector_file(name: str) -> Any:
    """Load one file of tests/vectors (see its README); a missing file fails the test, it never skips."""
    path = VECTORS_DIR / name
    if not path.is_file():
        pytest.fail(f"vector file {name} is missing from {VECTORS_DIR} (it is kept in the repository)",
                    pytrace=False)
    return json.loads(path.read_text())


async def until(condition: Callable[[], bool], timeout: float = 3.0, what: str = "condition") -> None:
    """Wait for ``condition`` to hold (a marker), checking every loop turn or so; fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"{what} not reached within {timeout}s"
        await asyncio.sleep(0.005)
