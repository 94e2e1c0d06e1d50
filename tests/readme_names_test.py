"""The README's table of `lrjax.get` names is the registry's, so it cannot drift from the code.

The README shows two tables built from `lrjax.schedules.names_table()` (the full table is
docs/schedule_names.md): Hugging Face's `SchedulerType` names with HF's arguments, and lrjax's
own names grouped by the factory they build. Regenerate the block with
`python tests/readme_names_test.py` after changing a name.
"""

import re
from pathlib import Path

from lrjax import schedules
from lrjax.schedules import _registry

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- get-names: begin -->", "<!-- get-names: end -->"


def registry_rows() -> list[list[str]]:
    """The rows of `names_table()`: name, meaning, built with, arguments, notes."""
    rows = []
    for line in schedules.names_table().splitlines():
        if line.startswith("| `"):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def readme_block() -> str:
    """The README text between the markers, as `names_table()` makes it today."""
    rows = registry_rows()
    lines = [
        "| Hugging Face name | HF function | arguments | notes |",
        "|---|---|---|---|",
    ]
    for name, meaning, _, arguments, note in rows:
        if meaning.startswith("Hugging Face "):
            lines.append(
                f"| {name} | {meaning.removeprefix('Hugging Face ')} | {arguments} | {note} |"
            )
    lines += ["", "| lrjax names | factory | arguments |", "|---|---|---|"]
    by_factory: dict[str, list[list[str]]] = {}
    for row in rows:
        if row[1] == "lrjax":
            by_factory.setdefault(row[2], []).append(row)
    for factory, group in sorted(by_factory.items()):
        names = ", ".join(r[0] for r in group)
        lines.append(f"| {names} | {factory} | {group[0][3]} |")
    return "\n".join(lines)


def test_readme_names_table_matches_the_registry():
    text = (ROOT / "README.md").read_text()
    block = text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip()
    assert block == readme_block(), (
        "the README's table of lrjax.get names is stale; regenerate it with "
        "`python tests/readme_names_test.py`"
    )


def test_readme_names_table_lists_exactly_the_accepted_names():
    text = (ROOT / "README.md").read_text()
    block = text[text.index(BEGIN) : text.index(END)]
    first_cells = [line.split(" | ")[0] for line in block.splitlines() if line.startswith("| `")]
    listed = {name for cell in first_cells for name in re.findall(r"`([a-z_0-9]+)`", cell)}
    assert listed == set(_registry._BY_NAME) | set(_registry._HF_SCHEDULES)


if __name__ == "__main__":
    path = ROOT / "README.md"
    text = path.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    path.write_text(text[:start] + "\n" + readme_block() + "\n" + text[end:])
