"""Reports: JSON with every figure, Markdown tables (results.md) and rich tables on the terminal.

Results are dataclasses and dicts of plain numbers; `to_plain` turns them into JSON-ready data
(NaN and infinities become null, numpy scalars and arrays become Python numbers and lists).
A `Table` is what a person reads: a title, column names and formatted rows, printed the same way
in Markdown and on the terminal.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vqaudio.fileio import atomic_write_text


def to_plain(obj: Any) -> Any:
    """Dataclasses, numpy values, tuples and dicts -> JSON-ready Python data (non-finite floats -> None)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_plain(obj.tolist())
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    return str(obj)


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write `data` (see `to_plain`) as indented, strict JSON, atomically."""
    atomic_write_text(path, json.dumps(to_plain(data), indent=2, allow_nan=False) + "\n")


def fmt(value: Any, digits: int = 3, percent: bool = False) -> str:
    """One cell: numbers rounded (or as percentages), missing values as an en dash."""
    if value is None or (isinstance(value, (float, np.floating)) and not math.isfinite(float(value))):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{100 * float(value):.1f}%" if percent else f"{float(value):.{digits}f}"
    return str(value)


@dataclass
class Table:
    """A titled table of already formatted cells; `notes` are printed under it."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"table '{self.title}': {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([c if isinstance(c, str) else fmt(c) for c in cells])


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(tables: list[Table], title: str | None = None) -> str:
    """GitHub-flavoured Markdown: a `##` heading, a pipe table and notes per table."""
    out = [f"# {title}", ""] if title else []
    for t in tables:
        out += [f"## {t.title}", "", "| " + " | ".join(_md_cell(c) for c in t.columns) + " |",
                "|" + "|".join("---" for _ in t.columns) + "|"]
        out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
        out += [""] + [f"- {n}" for n in t.notes] + ([""] if t.notes else [])
    return "\n".join(out).rstrip() + "\n"


def write_markdown(path: str | os.PathLike, tables: list[Table], title: str | None = None) -> None:
    atomic_write_text(path, to_markdown(tables, title))


def print_tables(tables: list[Table], console: Any = None) -> None:
    """Print each table with rich (on stdout unless a Console is given)."""
    from rich.console import Console
    from rich.table import Table as RichTable

    console = console or Console()
    for t in tables:
        rt = RichTable(title=t.title, title_justify="left", show_lines=False)
        for i, c in enumerate(t.columns):
            rt.add_column(c, justify="left" if i == 0 else "right")
        for row in t.rows:
            rt.add_row(*row)
        console.print(rt)
        for n in t.notes:
            console.print(f"  [dim]{n}[/]", highlight=False)
