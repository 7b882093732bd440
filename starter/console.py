"""What the `o2c` CLI prints and how it ends: data on stdout (a rich rendering, or one JSON
document with `--json`), progress and problems on stderr, and an exit code that means one thing.

    0  done
    1  a system problem (Temporal, the sandbox or a system did not answer, or answered an error)
    2  refused input (validation, unknown fields, a bad file, an unknown process)
    3  the process parked while `--wait` watched it (needs attention or awaits approval)
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

from rich import box
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

EXIT_DONE = 0
EXIT_SYSTEM = 1
EXIT_REFUSED = 2
EXIT_PARKED = 3

out = Console(soft_wrap=False, highlight=False)
err = Console(stderr=True, highlight=False)


class Refused(Exception):
    """Input o2c will not act on: printed without a traceback, exit 2."""


class SystemProblem(Exception):
    """Something o2c depends on did not answer or answered an error: named, exit 1."""


def say(text: str) -> None:
    """A line of data for the reader. Long lines are left to the terminal to wrap, so a
    script that greps the output finds each line whole."""
    out.print(text, soft_wrap=True, markup=False)


def note(text: str) -> None:
    """A line of progress on stderr, so stdout stays parseable."""
    err.print(text, soft_wrap=True, markup=False)


def show(renderable: RenderableType) -> None:
    out.print(renderable)


def text_of(renderable: RenderableType, width: int = 200) -> str:
    """A renderable as plain text, as a terminal of `width` columns shows it."""
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def emit_json(data: Any) -> None:
    """The one JSON document a `--json` command prints."""
    out.file.write(json.dumps(data, indent=2, default=str) + "\n")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, wide: Sequence[str] = ()) -> Table:
    """A table that fits the terminal: the `wide` columns (messages, reasons) take the room
    that is left and wrap at words; the others fold when they must but are never cut short,
    since identifiers and amounts are copied and compared."""
    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False)
    for header in headers:
        if header in wide:
            grid.add_column(header, ratio=1, min_width=20)
        else:
            grid.add_column(header, overflow="fold")
    for row in rows:
        # Text, not markup: a break's explanation may hold brackets.
        grid.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    return grid
