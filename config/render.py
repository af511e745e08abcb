"""The two files written from the configuration table: the example environment file and the docs table.

``python -m config`` rewrites both; ``tests/config/test_table.py`` fails when either is stale.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from config.settings import SECTIONS, TABLE, Variable

ROOT = Path(__file__).resolve().parent.parent
ENV_EXAMPLE = ROOT / "config" / "igloo.env.example"
DOCS_TABLE = ROOT / "docs" / "configuration.md"
WIDTH = 110

ENV_HEADER = """\
# Igloo configuration. Copy to /etc/igloo/igloo.env (service), to .env in the directory you start Igloo
# from (make run), or export in your shell. Every variable is optional; the value shown is the default,
# and a line starting with # shows an example. A bad value stops start-up with one line naming the
# variable (exit code 2). Names follow Igloo Server where it had one; docs/MIGRATING.md lists every
# Igloo Server variable and what it does here. Generated from config/settings.py by `python -m config`.
"""

DOCS_HEADER = """\
# Configuration

Igloo reads environment variables once at start-up (the process environment, over a `.env` file in the
working directory when there is one) into a frozen settings object. A bad value stops start-up with one
line naming the variable, for example `igloo-server: configuration error: HOST_PORT: expected an integer`,
and exit code 2; no message repeats a secret. Igloo Server's variables are listed, with what each does
here, in [MIGRATING.md](MIGRATING.md).

This page is generated from the table in `config/settings.py` by `python -m config` (which also writes
`config/igloo.env.example`); a test fails when it is out of date.
"""


def _comment(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH - 2, initial_indent="# ", subsequent_indent="# ")


def _notes(row: Variable) -> str:
    notes = []
    if row.aliases:
        also = " and ".join(row.aliases)
        notes.append(f"Igloo Server's name {also} is read too.")
    if row.inherit:
        notes.append(f"Unset: the value of {row.inherit}.")
    return " ".join(notes)


def env_example() -> str:
    """The text of ``config/igloo.env.example``."""
    lines = [ENV_HEADER.rstrip("\n")]
    for section in SECTIONS:
        lines += ["", f"# --- {section} " + "-" * max(3, WIDTH - 7 - len(section))]
        for row in (r for r in TABLE if r.section == section):
            lines += _comment(" ".join(filter(None, [row.description, _notes(row)])))
            if row.default in (None, ()) or row.inherit or row.commented:
                value = row.example if row.example is not None else row.kind.render(row.default)
                lines.append(f"#{row.name}={value}")
            else:
                lines.append(f"{row.name}={row.kind.render(row.default)}")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def docs_table() -> str:
    """The text of ``docs/configuration.md``."""
    lines = [DOCS_HEADER.rstrip("\n")]
    for section in SECTIONS:
        lines += ["", f"## {section}", "", "| variable | field | type and limits | default | description |",
                  "|---|---|---|---|---|"]
        for row in (r for r in TABLE if r.section == section):
            if row.inherit:
                default = f"= `{row.inherit}`"
            elif row.default in (None, ()):
                default = "unset"
            else:
                default = f"`{row.kind.render(row.default)}`"
            names = "<br>".join(f"`{n}`" for n in row.names())
            secret_note = "Secret: never shown." if row.secret else ""
            description = " ".join(filter(None, [row.description, secret_note]))
            lines.append(f"| {names} | `{row.field}` | {_cell(row.kind.describe())} | {default} | "
                         f"{_cell(description)} |")
    return "\n".join(lines) + "\n"


def write() -> list[Path]:
    """Rewrite both files; return those that changed."""
    changed = []
    for path, text in ((ENV_EXAMPLE, env_example()), (DOCS_TABLE, docs_table())):
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed
