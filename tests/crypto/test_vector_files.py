"""The reference vectors live in the repository: a missing file fails its tests instead of skipping them,
every file is listed with its source in tests/vectors/README.md, and no test reads outside the checkout."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO_ROOT, VECTORS_DIR, load_vector_file
from tests.crypto.vectors import cases, unpack


def test_a_missing_vector_file_fails_rather_than_skips() -> None:
    with pytest.raises(pytest.fail.Exception, match="missing"):
        load_vector_file("no-such-vectors.json")
    [param] = cases("no-such-vectors.json", lambda data: [])
    assert param.id == "missing"
    with pytest.raises(pytest.fail.Exception):
        unpack(param.values[0])


def test_every_vector_file_is_listed_with_its_source() -> None:
    readme = (VECTORS_DIR / "README.md").read_text()
    files = sorted(path.name for path in VECTORS_DIR.glob("*.json"))
    assert "nip44.vectors.json" in files and "frostr-py-vectors.json" in files
    for name in files:
        assert f"`{name}`" in readme, f"{name} is not described in tests/vectors/README.md"


def test_no_test_reads_outside_the_repository() -> None:
    outside = re.compile(r"""\.\./shared|parent\s*/\s*["']shared["']|/work/shared""")
    offenders = [str(path.relative_to(REPO_ROOT)) for path in (REPO_ROOT / "tests").rglob("*.py")
                 if path.is_relative_to(REPO_ROOT / "tests") and "node_modules" not in path.parts
                 and path.name != "test_vector_files.py" and outside.search(path.read_text())]
    assert offenders == []
