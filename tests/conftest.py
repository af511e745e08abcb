"""Fixtures shared by the whole suite."""

from __future__ import annotations

import json
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
