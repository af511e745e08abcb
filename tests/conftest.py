"""Fixtures shared by the whole suite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
VECTORS_DIR = REPO_ROOT.parent / "shared" / "vectors"


def load_vector_file(name: str) -> Any:
    """Load one file of ../shared/vectors, skipping the test when the folder is absent."""
    path = VECTORS_DIR / name
    if not path.exists():
        pytest.skip(f"reference vectors not found at {path} (../shared/vectors is absent)")
    return json.loads(path.read_text())
