"""Lists of records in a terminal: a table when it fits, else one block per record.

Dossier numbers, outbox ids and source references are what an operator copies into the
next command (`trace`, `outbox retry`, `resync --dossier`). A table squeezed into an
80-column terminal, or into the 80 columns rich assumes when the output goes to a file or
a pipe, cuts them to `002.01.…`. So identifiers are never cut here: a table is printed
only when every identifier fits whole and the free-text columns keep a readable width;
otherwise each record is printed as a block of `name  value` lines, whose values wrap.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

#: The narrowest a wrapping column (a reason, a detail) may get in a table.
MIN_TEXT_WIDTH = 30
#: What a table adds around each column: a space either side and one rule.
_PER_COLUMN = 3

#: A cell: plain text (never read as markup, so a reason quoting `[E21]` stays whole) or
#: styled `Text`.
Cell = str | Text


def print_records(
    console: Console,
    columns: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    wrap: Collection[str] = (),
) -> None:
    """Print `rows` under `columns`; only the columns named in `wrap` may wrap."""
    cells = [[_text(cell) for cell in row] for row in rows]
    widths = _least_widths(columns, cells, wrap)
    if sum(widths) + _PER_COLUMN * len(widths) + 1 <= console.width:
        console.print(_table(columns, cells, widths, wrap))
        return
    for row in cells:
        console.print(_block(columns, row))


def _least_widths(
    columns: Sequence[str], rows: Sequence[Sequence[Text]], wrap: Collection[str]
) -> list[int]:
    """Per column, the least width that cuts nothing: an identifier's longest value whole,
    a wrapping column's longest line up to `MIN_TEXT_WIDTH`."""
    widths = []
    for index, name in enumerate(columns):
        longest = max([cell_len(name), *(_cell_width(row[index]) for row in rows)])
        widths.append(min(longest, MIN_TEXT_WIDTH) if name in wrap else longest)
    return widths


def _text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


def _cell_width(cell: Text) -> int:
    return max((cell_len(line) for line in cell.plain.splitlines()), default=0)


def _table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Text]],
    widths: Sequence[int],
    wrap: Collection[str],
) -> Table:
    table = Table()
    for name, width in zip(columns, widths, strict=True):
        if name in wrap:
            table.add_column(name, ratio=1, min_width=width, overflow="fold")
        else:
            table.add_column(name, no_wrap=True, min_width=width)
    for row in rows:
        table.add_row(*row)
    return table


def _block(columns: Sequence[str], row: Sequence[Text]) -> RenderableType:
    block = Table.grid(padding=(0, 2))
    block.add_column(style="bold", no_wrap=True)
    block.add_column(overflow="fold")
    for name, cell in zip(columns, row, strict=True):
        block.add_row(name, cell)
    block.add_row("", "")
    return block
