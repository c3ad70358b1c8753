"""Write the table of STEERLAB_* variables in docs/settings.md from the settings model's field descriptions.

Run after adding or changing a setting: ``python scripts/write_settings_doc.py``. A unit test fails while
the page and the model disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

from steerlab.settings import OUTSIDE_THE_RUNTIME, Settings, variable_name

DOC = Path(__file__).resolve().parents[1] / "docs" / "settings.md"
BEGIN, END = "<!-- settings table: begin -->", "<!-- settings table: end -->"


def _default(field) -> str:
    if field.default_factory is not None:
        return f"`{field.default_factory()!r}`"
    if field.default is None:
        return "unset"
    value = str(field.default).replace(str(Path.home()), "~")
    return f"`{value}`"


def variables_table() -> str:
    """One row per variable: the settings model's fields, then those only the installer and tests read."""
    rows = ["| variable | default | what it does |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        rows.append(f"| `{variable_name(name)}` | {_default(field)} | {field.description} |")
    for name, description in OUTSIDE_THE_RUNTIME.items():
        rows.append(f"| `{name}` | | {description} |")
    return "\n".join(rows)


def with_table(page: str) -> str:
    """``page`` with the text between the table markers replaced by the current table."""
    head, rest = page.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{variables_table()}\n{END}{tail}"


if __name__ == "__main__":
    DOC.write_text(with_table(DOC.read_text()))
    sys.stdout.write(f"wrote {DOC}\n")
