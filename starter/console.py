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
    """A table or panel on stdout. Never narrower than its longest words need, so that no
    amount, date or identifier is folded into pieces: a table wider than the terminal wraps
    as whole lines, and one sent to a file or a pipe stays whole."""
    needed = out.measure(renderable).minimum
    out.print(renderable, width=max(out.width, needed), crop=False)


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
    that is left and wrap at words; the others keep their values whole (show() widens the table
    rather than fold them), since identifiers and amounts are copied and compared."""
    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False)
    for n, header in enumerate(headers):
        if header in wide:
            grid.add_column(header, ratio=1, min_width=20)
        else:
            longest = max((len(row[n]) for row in cells if n < len(row)), default=0)
            grid.add_column(header, overflow="fold", min_width=max(longest, *map(len, header.split())))
    for row in cells:
        # Text, not markup: a break's explanation may hold brackets.
        grid.add_row(*(Text(cell) for cell in row))
    return grid
