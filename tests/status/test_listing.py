"""print_records: identifiers an operator copies into the next command are never cut."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.text import Text

from connector.listing import print_records
from connector.status_view import render_status

KEY = "000.06.00.H26-261126-0001"
REASON = (
    "MaTTHC: no crosswalk entry in procedures for local code 'HN-XX-99' "
    "(column procedure_code) (value 'HN-XX-99')"
)
COLUMNS = ("id", "kind", "key", "state", "attempts", "code", "reason", "source")
ROW = ("20163", "header", KEY, "invalid", "0", "invalid", REASON, "dossiers:2901")


def _printed(width: int, rows: list[tuple[str | Text, ...]]) -> str:
    console = Console(width=width, file=io.StringIO(), record=True)
    print_records(console, COLUMNS, rows, wrap={"reason"})
    return console.export_text()


def test_a_narrow_terminal_gets_one_block_per_record_with_every_value_whole() -> None:
    text = _printed(80, [ROW, ROW])
    assert text.count(f"key       {KEY}") == 2
    assert "source    dossiers:2901" in text
    assert "…" not in text
    assert "┃" not in text  # not a table
    assert "(column procedure_code) (value 'HN-XX-99')" in " ".join(text.split())


def test_a_wide_terminal_gets_a_table_whose_reason_wraps() -> None:
    text = _printed(160, [ROW])
    assert "┃ key" in text
    assert f"│ {KEY} │" in text
    assert "│ dossiers:2901 │" in text
    assert "…" not in text


def test_text_is_not_read_as_markup() -> None:
    """A reason quoting a bracketed code keeps it: plain strings are not console markup."""
    row = (*ROW[:6], "[E21] [bold]mã thủ tục[/bold] không tồn tại", ROW[7])
    for width in (80, 200):
        assert "[E21] [bold]mã thủ tục[/bold] không tồn tại" in _printed(width, [row])


def test_the_status_outbox_table_fits_80_columns_with_every_state_named() -> None:
    counts = {"pending": 1, "in_flight": 0, "acked": 3288, "rejected": 2, "invalid": 16}
    counts |= {"parked": 1, "superseded": 18, "blocked": 80}
    snapshot = {"outbox": {"header": counts, "step": dict(counts, acked=16817)}}
    console = Console(width=80, file=io.StringIO(), record=True)
    render_status(snapshot, console)
    text = console.export_text()
    for state in ("pending", "in_flight", "acked", "rejected", "superseded", "blocked"):
        assert f"│ {state}" in text, state
    assert "16817" in text
    assert "…" not in text


@pytest.mark.parametrize("reason", ["invalid", REASON, "x" * 29, "y" * 31])
def test_at_any_width_every_identifier_is_printed_whole(reason: str) -> None:
    """Whatever the terminal's width, a table or blocks: never a cut identifier."""
    row = (*ROW[:6], reason, ROW[7])
    for width in range(40, 200, 3):
        text = _printed(width, [row, ROW])
        assert text.count(KEY) == 2, width
        assert text.count("dossiers:2901") == 2, width
        assert "…" not in text, width
