"""The configuration table is the one place a default is written: parsing, the example file and the docs
table all follow it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from config import render
from config.settings import BY_NAME, SECTIONS, TABLE, Settings, Variable
from config.startup import load_environment


def test_every_field_is_one_row_with_unique_names() -> None:
    fields = [f.name for f in dataclasses.fields(Settings)]
    assert [row.field for row in TABLE] == fields
    names = [name for row in TABLE for name in row.names()]
    assert len(names) == len(set(names)) == len(BY_NAME)
    assert all(row.section in SECTIONS and row.description.endswith(".") for row in TABLE)
    assert all(BY_NAME[row.inherit].field != row.field for row in TABLE if row.inherit)


@pytest.mark.parametrize("row", [r for r in TABLE if r.default not in (None, ())], ids=lambda r: r.name)
def test_each_default_is_a_valid_value_of_its_kind(row: Variable) -> None:
    """Rendering a default and parsing it back gives the default: limits and default agree."""
    assert row.kind.parse(row.kind.render(row.default)) == row.default


def test_an_empty_environment_gives_the_dataclass_defaults() -> None:
    assert Settings.from_env({}) == Settings()


def test_generated_files_are_current() -> None:
    """Run `python -m config` after changing config/settings.py."""
    assert render.ENV_EXAMPLE.read_text() == render.env_example()
    assert render.DOCS_TABLE.read_text() == render.docs_table()


def test_example_file_loads_as_the_defaults(tmp_path: Path) -> None:
    values = load_environment(render.ENV_EXAMPLE, {})
    assert Settings.from_env(values) == Settings()
    commented = {line.split("=", 1)[0].lstrip("#") for line in render.ENV_EXAMPLE.read_text().splitlines()
                 if line.startswith("#") and "=" in line and line[1:2].isupper()}
    assert set(values) | commented == {row.name for row in TABLE}


def test_docs_table_lists_every_variable_with_its_limits() -> None:
    text = render.DOCS_TABLE.read_text()
    for row in TABLE:
        line = next(line for line in text.splitlines() if line.startswith(f"| `{row.name}`"))
        assert f"`{row.field}`" in line and row.kind.describe().replace("|", "\\|") in line
    sign_timeout = ("| `FROSTR_SIGN_TIMEOUT`<br>`SIGN_TIMEOUT_MS` | `sign_timeout` "
                    "| milliseconds, 100 to 600000 | `5000` |")
    assert sign_timeout in text
