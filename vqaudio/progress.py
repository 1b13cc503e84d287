"""Rich progress bars for long work, one style across the toolkit."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def progress(transient: bool = False, disable: bool | None = None) -> Progress:
    """A Progress on stderr: description, bar, n/total, elapsed, remaining, and an `info` field.

    Shown only when stderr is a terminal (unless `disable` says otherwise), so logs and
    tests stay clean. Add tasks with `info=""`: `p.add_task("train", total=n, info="")`.
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=transient,
        disable=bool(disable) if disable is not None else not sys.stderr.isatty(),
    )
