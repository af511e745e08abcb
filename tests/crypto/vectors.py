"""Build pytest parameters from a reference vector file, one case per labelled entry.

The files live in tests/vectors. When one is missing there is a single ``missing`` case, which fails (through
``load_vector_file``) instead of vanishing from the run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from tests.conftest import VECTORS_DIR, load_vector_file


def cases(name: str, split: Callable[[Any], Iterable[tuple[str, Any]]]) -> list[Any]:
    """``pytest.param(case, id=label)`` for every ``(label, case)`` that ``split`` yields."""
    path = VECTORS_DIR / name
    if not path.exists():
        return [pytest.param((name, None), id="missing")]
    data = json.loads(path.read_text())
    return [pytest.param((name, case), id=label) for label, case in split(data)]


def unpack(param: tuple[str, Any]) -> Any:
    """The case itself; fails (via ``load_vector_file``) when the vector file is missing."""
    name, case = param
    if case is None:
        load_vector_file(name)
    return case
