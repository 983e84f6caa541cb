"""The human rendering of a status snapshot, for `connector status` in a terminal.

The snapshot comes from a running daemon or straight from the state store, so any part may
be missing or None: every lookup here tolerates that and prints "—" instead. Problems an
operator must act on (refused session, push errors, paused pull, dead letters) are red.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from connector.listing import Cell, print_records

NONE = "—"
#: Outbox states in the order of an item's life; unknown states follow these.
STATE_ORDER = ("pending", "in_flight", "acked", "rejected", "invalid", "parked", "superseded")
_DEAD_STATES = frozenset({"rejected", "invalid", "parked"})
_BAD = "bold red"
_WARN = "yellow"
_GOOD = "green"


def _get(data: Any, *path: str) -> Any:
    """The value at `path` in nested mappings, None wherever something is missing."""
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _text(value: Any) -> str:
    return NONE if value is None or value == "" else str(value)


def _duration(seconds: Any) -> str:
    """`2.5 s`, `3 m 12 s`, `1 h 02 m`, `2 d 03 h`: short enough for a table cell."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return NONE
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours:02d} h"
    if hours:
        return f"{hours} h {minutes:02d} m"
    return f"{minutes} m {secs:02d} s"


def _outbox_table(outbox: Any) -> Table:
    kinds = outbox if isinstance(outbox, Mapping) else {}
    seen = {str(s) for counts in kinds.values() if isinstance(counts, Mapping) for s in counts}
    states = [*STATE_ORDER, *sorted(seen - set(STATE_ORDER))]
    # A row per state, a column per kind: it fits in 80 columns, however many states.
    table = Table(title="Outbox", title_justify="left")
    table.add_column("state")
    for kind in kinds:
        table.add_column(str(kind), justify="right")
    for state in states:
        cells = [_state_cell(state, _count(_get(counts, state))) for counts in kinds.values()]
        table.add_row(state, *cells)
    return table


def _state_cell(state: str, count: int) -> Text:
    if count and state in _DEAD_STATES:
        return Text(str(count), style=_BAD)
    return Text(str(count))


def _dead_letters(snapshot: Mapping[str, Any]) -> Text:
    count = _count(snapshot.get("dead_letters"))
    text = Text(str(count), style=_BAD if count else _GOOD)
    codes = snapshot.get("dead_letter_codes")
    pairs = [p for p in codes or () if isinstance(p, list | tuple) and len(p) == 2]
    pairs.sort(key=lambda pair: -_count(pair[1]))
    if pairs:
        text.append("  top codes: " + ", ".join(f"{code} ×{n}" for code, n in pairs[:5]))
    return text


def _blocked(count: int) -> Text:
    """Steps waiting for their dossier's header, with where to see why."""
    if not count:
        return Text("0", style=_GOOD)
    return Text(str(count), style=_WARN).append("  why: connector outbox blocked")


def _session(value: Any) -> Text:
    state = _text(value)
    if state == "active":
        return Text(state, style=_GOOD)
    return Text(state, style=_BAD if state.startswith("refused") else _WARN)


def _state(value: Any) -> Text:
    """A job state: green when ok, red otherwise (paused, failing), plain when unknown or
    not run yet (idle)."""
    if value is None:
        return Text(NONE)
    if value == "idle":
        return Text(value)
    return Text(str(value), style=_GOOD if value == "ok" else _BAD)


def _pull(pull: Any) -> Text:
    text = _state(_get(pull, "state"))
    text.append(f"  last run {_text(_get(pull, 'last_run_at'))}")
    error = _get(pull, "last_error")
    if error:
        text.append(f"  error: {_error_message(error)}", style=_BAD)
    return text


def _push(push: Any) -> Text:
    text = _state(_get(push, "state"))
    success = _get(push, "last_success_at")
    text.append(f"  last success {_text(success)}")
    error = _get(push, "last_error")
    if error:
        at = _get(error, "at")
        when = f" at {at}" if at else ""
        style = _WARN if _recovered(at, success) else _BAD
        text.append(f"  last error{when}: {_error_message(error)}", style=style)
    return text


def _reconcile(reconcile: Any) -> Text:
    """The job's state and what its last sample found: drift is an operator's business."""
    text = _state(_get(reconcile, "state"))
    report = _get(reconcile, "report")
    if isinstance(report, Mapping) and report.get("at"):
        checked = _count(report.get("checked"))
        text.append(f"  last sample {_text(report.get('at'))}: {checked} checked, ")
        text.append_text(_drift(report.get("drift")))
    error = _get(reconcile, "last_error")
    if error:
        text.append(f"  error: {_error_message(error)}", style=_BAD)
    return text


def _drift(drift: Any) -> Text:
    counts = {str(k): _count(v) for k, v in drift.items()} if isinstance(drift, Mapping) else {}
    drifted = sum(counts.values())
    if not drifted:
        return Text("no drift", style=_GOOD)
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
    return Text(f"{drifted} drifted ({kinds})", style=_BAD)


def _recovered(error_at: Any, success_at: Any) -> bool:
    """True when a push succeeded after the last error (ISO UTC strings sort by time)."""
    return isinstance(error_at, str) and isinstance(success_at, str) and success_at > error_at


def _error_message(error: Any) -> str:
    return _text(_get(error, "message") if isinstance(error, Mapping) else error)


def _throughput(throughput: Any) -> str:
    if not isinstance(throughput, Mapping):
        return NONE
    window = _duration(throughput.get("window_s"))
    headers = _rate(throughput.get("headers_per_min"))
    steps = _rate(throughput.get("steps_per_min"))
    return f"{headers} headers/min, {steps} steps/min (over {window})"


def _rate(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else NONE


def _figures(snapshot: Mapping[str, Any]) -> Text:
    """How old the store figures are (a daemon shares them between requests for a while),
    or why the store gave none."""
    store = snapshot.get("state_store")
    if isinstance(store, str) and store != "ok":
        return Text(store, style=_BAD)
    as_of = snapshot.get("figures_as_of")
    if not as_of:
        return Text(NONE)
    return Text(f"as of {as_of} ({_duration(snapshot.get('figures_age_s'))} old)")


def _summary_table(snapshot: Mapping[str, Any]) -> Table:
    blocked = _count(snapshot.get("blocked_steps"))
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("dead letters", _dead_letters(snapshot))
    table.add_row("blocked steps", _blocked(blocked))
    table.add_row("oldest pending", _duration(snapshot.get("oldest_pending_age_s")))
    table.add_row("session", _session(snapshot.get("session")))
    table.add_row("pull", _pull(snapshot.get("pull")))
    table.add_row("push", _push(snapshot.get("push")))
    table.add_row("reconcile", _reconcile(snapshot.get("reconcile")))
    table.add_row("throughput", _throughput(snapshot.get("throughput")))
    table.add_row("figures", _figures(snapshot))
    return table


def _print_cursors(cursors: Any, console: Console) -> None:
    """Where each stream stopped: a position is copied into a SQL query or compared with the
    local system, so it is printed whole (`print_records`), never cut or wrapped."""
    console.print(Text("Cursors", style="italic"))
    rows: list[list[Cell]] = []
    for stream, cursor in (cursors if isinstance(cursors, Mapping) else {}).items():
        position = _get(cursor, "position")
        shown = " / ".join(map(str, position)) if isinstance(position, list | tuple) else position
        rows.append(
            [
                str(stream),
                _text(shown),
                _text(_get(cursor, "moved_at")),
                _duration(_get(cursor, "lag_s")),
            ]
        )
    print_records(console, ("stream", "position", "moved at", "lag"), rows)


def _heading(snapshot: Mapping[str, Any]) -> Text:
    version = snapshot.get("version")
    title = f"connector {version}" if version else "connector"
    if _get(snapshot, "daemon", "running") is False:
        saved = _get(snapshot, "daemon", "jobs_saved_at")
        jobs = f"; jobs as the daemon left them at {saved}" if saved else ""
        return Text(f"{title}: daemon not running (read from the state store{jobs})", style=_WARN)
    started = _text(_get(snapshot, "daemon", "started_at"))
    uptime = _duration(_get(snapshot, "daemon", "uptime_s"))
    return Text(f"{title}: started {started}, up {uptime}", style="bold")


def render_status(snapshot: Mapping[str, Any], console: Console) -> None:
    """Print a readable summary of `snapshot` on `console`, problems highlighted in red."""
    console.print(_heading(snapshot))
    console.print(_summary_table(snapshot))
    console.print(_outbox_table(snapshot.get("outbox")))
    _print_cursors(snapshot.get("cursors"), console)
