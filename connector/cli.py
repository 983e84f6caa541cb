"""Operator commands: the only place that prints.

Exit codes: 0 success; 1 the command ran but found a problem (dead letters retried
without success, audit chain broken, crosswalk codes the portal does not list); 2
configuration or usage error (including a mapping file that cannot be loaded, and for
`mapping check --portal` a portal that refuses the connector's login).
Every failure ends with one line on stderr saying why.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from connector import settings as settings_mod
from connector.app import App, iso_utc
from connector.cli_demo import demo_app, sandbox_command
from connector.core.masking import SHOWABLE_FIELDS, scrub_text
from connector.core.records import DEAD_STATES, Kind, Mapped, State
from connector.errors import (
    ConfigError,
    ConnectorError,
    MappingError,
    PortalRefused,
    PortalTransient,
)
from connector.listing import print_records
from connector.logs import configure_logging
from connector.ports import BlockedDossier, OutboxItem, Selection
from connector.settings import Settings
from connector.store.audit import (
    AuditRecord,
    archive_audit,
    dossier_keys,
    read_audit,
    verify_audit,
)
from connector.store.sql import SqlStore
from connector.trace import Trace, dead_letter_hint, read_local, trace, verdict

out = Console()
err = Console(stderr=True)

cli = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Connector: local one-stop systems → National Public Service Portal.",
)
outbox_app = typer.Typer(no_args_is_help=True, help="Inspect and retry outbox items.")
mapping_app = typer.Typer(no_args_is_help=True, help="Check and preview mapping files.")
audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit trail.")
state_app = typer.Typer(no_args_is_help=True, help="The state store.")
cli.add_typer(outbox_app, name="outbox")
cli.add_typer(mapping_app, name="mapping")
cli.add_typer(audit_app, name="audit")
cli.add_typer(state_app, name="state")
cli.add_typer(demo_app, name="demo")
cli.command("sandbox")(sandbox_command)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="TOML configuration (default: $CONNECTOR_CONFIG or ./config.toml)."
    ),
]
CodeOpt = Annotated[
    str | None,
    typer.Option(help="Only the items whose last code is this (a portal code, invalid, parked)."),
]


def fail(message: str, code: int = 1) -> NoReturn:
    # escaped: messages name places like "[dossier.fields]", which are not console markup
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def guarded() -> Iterator[None]:
    """Turn the connector's errors into a one-line reason and a meaningful exit code."""
    try:
        yield
    except (ConfigError, MappingError) as exc:
        fail(str(exc), 2)
    except ConnectorError as exc:
        fail(str(exc), 1)


def load(config: Path | None) -> Settings:
    with guarded():
        return settings_mod.load(config)
    raise AssertionError  # unreachable: guarded() exits on error


@contextmanager
def opened(config: Path | None) -> Iterator[App]:
    settings = load(config)
    configure_logging(fmt=settings.logging.format, level=settings.logging.level)
    app = App(settings)
    try:
        with guarded():
            yield app
    finally:
        app.close()


@cli.command()
def run(
    config: ConfigOpt = None,
    once: Annotated[bool, typer.Option(help="One pull and one push drain, then exit.")] = False,
) -> None:
    """Run the daemon: pull, push, reconcile and housekeeping on schedule."""
    from connector.daemon import run_daemon, run_once

    settings = load(config)
    configure_logging(fmt=settings.logging.format, level=settings.logging.level)
    with guarded():
        app = App(settings)
        if once:
            report = run_once(app)
            out.print_json(data=report)
        else:
            run_daemon(app)


@cli.command()
def check(
    config: ConfigOpt = None,
    json: Annotated[bool, typer.Option("--json", help="One JSON object per part.")] = False,
) -> None:
    """Try every part the connector needs, once: the mapping, each stream of the local
    system, the state store, a login to the portal. Sends nothing; exit 1 if a part fails."""
    from connector.preflight import preflight

    with opened(config) as app:
        findings = preflight(app)
    if json:
        for finding in findings:
            line = {"part": finding.part, "ok": finding.ok, "detail": finding.detail}
            sys.stdout.write(orjson.dumps(line).decode() + "\n")
    else:
        cells = [
            (
                finding.part,
                Text("ok", style="green") if finding.ok else Text("FAILED", style="red"),
                finding.detail,
            )
            for finding in findings
        ]
        print_records(out, ("part", "result", "detail"), cells, wrap={"detail"})
    failed = [finding.part for finding in findings if not finding.ok]
    if failed:
        fail(f"{len(failed)} part(s) failed: {', '.join(failed)}")
    if not json:
        out.print("[green]ready[/green]: every part answered")


@cli.command("trace")
def trace_command(
    dossier: Annotated[str, typer.Argument(help="The dossier number (MaHoSo).")],
    config: ConfigOpt = None,
    portal: Annotated[
        bool, typer.Option("--portal/--no-portal", help="Ask the portal (TraCuuHoSo).")
    ] = True,
    json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Where one dossier stands: the local record mapped now, its outbox rows, the calls
    that carried it, what the portal holds, and one line saying what to do."""
    with opened(config) as app:
        found = trace(app, dossier, ask_portal=portal)
    if json:
        sys.stdout.write(orjson.dumps(_trace_document(found, verdict(found))).decode() + "\n")
        return
    out.print(f"[bold]{escape(dossier)}[/bold]: {escape(verdict(found))}", highlight=False)
    for line in _trace_lines(found):
        out.print(escape(line), highlight=False)
    if found.calls:
        _print_audit(found.calls, dossier)


def _trace_lines(found: Trace) -> list[str]:
    local = found.local_header()
    steps = [m for m in found.local if m.kind is Kind.STEP]
    refused = sum(1 for m in steps if not m.ok)
    header = "none" if local is None else ("valid" if local.ok else f"refused: {local.reason()}")
    row = found.header_row()
    queued = "none" if row is None else f"item {row.id}, {row.state.value}, {row.attempts} attempts"
    counts = ", ".join(f"{n} {state.value}" for state, n in sorted(found.steps().items()))
    if found.portal is not None:
        fields = found.portal.fields
        held = (
            f"holds it: TrangThaiHoSo {fields.get('TrangThaiHoSo', '?')}, "
            f"NgayHenTra {fields.get('NgayHenTra', '?')}, {found.portal.step_count} step(s)"
        )
    else:
        held = "does not hold it" if found.looked_up else found.portal_said
    return [
        f"local system: header {header}; {len(steps)} step(s), {refused} refused",
        f"outbox: header {queued}; steps {counts or 'none'}",
        f"portal: {held}",
        f"calls that carried it: {len(found.calls)} (newest last)",
    ]


def _trace_document(found: Trace, said: str) -> dict[str, Any]:
    return {
        "dossier": found.dossier,
        "verdict": said,
        "local": [
            {"kind": m.kind.value, "key": m.key, "ok": m.ok, "reason": m.reason()}
            for m in found.local
        ],
        "outbox": [_listed(i) for i in found.outbox],
        "calls": [
            {**{f.name: getattr(r, f.name) for f in fields(r)}, "at": iso_utc(r.at)}
            for r in found.calls
        ],
        "portal": None
        if found.portal is None
        else {  # codes and dates only: a portal may return names too, which stay out
            "fields": {k: v for k, v in found.portal.fields.items() if k in SHOWABLE_FIELDS},
            "step_count": found.portal.step_count,
        },
        "looked_up": found.looked_up,
        "portal_said": found.portal_said,
    }


@cli.command()
def status(
    config: ConfigOpt = None,
    json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the daemon's status (or the state store's, when the daemon is not running)."""
    from connector.status_view import render_status

    settings = load(config)
    snapshot = _fetch_status(settings)
    if snapshot is None:
        with opened(config) as app:
            snapshot = app.offline_snapshot()
    if json:
        sys.stdout.write(orjson.dumps(snapshot, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        render_status(snapshot, out)


def _fetch_status(settings: Settings) -> dict[str, Any] | None:
    cfg = settings.status
    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::") else cfg.host
    headers = {}
    with guarded():
        token = settings.status_token()
    if token is not None:
        headers["Authorization"] = f"Bearer {token.get_secret_value()}"
    try:
        reply = httpx.get(
            f"http://{host}:{cfg.port}/status", headers=headers, timeout=3.0, trust_env=False
        )
    except httpx.HTTPError:
        return None
    if reply.status_code != 200:
        fail(f"status endpoint answered HTTP {reply.status_code}")
    data: dict[str, Any] = reply.json()
    data.setdefault("daemon", {})["running"] = True
    return data


def _date(value: str | None, option: str) -> datetime | None:
    return None if value is None else _moment(value, option)


def _moment(value: str, option: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option}: expected a date like 2026-11-01 or 2026-11-01T08:00, got {value!r}", 2)


@cli.command()
def resync(
    config: ConfigOpt = None,
    dossier: Annotated[str | None, typer.Option(help="One dossier (MaHoSo).")] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Received on or after (YYYY-MM-DD[THH:MM], the local system's time)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Received before (YYYY-MM-DD[THH:MM], the local system's time)."),
    ] = None,
    changed_since: Annotated[
        str | None,
        typer.Option(help="Changed on or after (YYYY-MM-DD[THH:MM], local time unless zoned)."),
    ] = None,
    changed_until: Annotated[
        str | None, typer.Option(help="Changed before (same form as --changed-since).")
    ] = None,
    agency: Annotated[str | None, typer.Option(help="Local agency code.")] = None,
    procedure: Annotated[str | None, typer.Option(help="Local procedure code.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be queued; queue nothing.")
    ] = False,
    missing_only: Annotated[
        bool,
        typer.Option(
            "--missing-only",
            help="Queue only what the outbox does not hold yet: new records, changed "
            "headers, steps never queued (changes the pull missed). Default: everything.",
        ),
    ] = False,
) -> None:
    """Re-read dossiers from the local system and queue them again (headers and steps)."""
    from connector.app import OperatorActions

    selection = Selection(
        dossier=dossier,
        since=_date(since, "--since"),
        until=_date(until, "--until"),
        changed_since=_date(changed_since, "--changed-since"),
        changed_until=_date(changed_until, "--changed-until"),
        agency=agency,
        procedure=procedure,
    )
    if selection == Selection():
        fail(
            "resync needs at least one of --dossier, --since, --until, --changed-since, "
            "--changed-until, --agency, --procedure",
            2,
        )
    for start, end in selection.backwards():
        fail(f"--{start.replace('_', '-')} must be before --{end.replace('_', '-')}", 2)
    with opened(config) as app, _progress() as advance:
        report = OperatorActions(app, origin="cli").resync(
            selection, dry_run=dry_run, missing_only=missing_only, progress=advance
        )
    verb = "would queue" if dry_run else "queued"
    read, invalid, queued = report["read"], report["invalid"], report["queued"]
    for stream, n in read.items():
        newer = report["newer"].get(stream, 0)
        left = f", newer already queued {newer}" if newer else ""
        out.print(
            f"{stream}: read {n}, {verb} {queued.get(stream, 0)}, "
            f"invalid {invalid.get(stream, 0)}{left}"
        )
    for reason in report["reasons"]:
        out.print(f"  [yellow]refused[/yellow] {escape(reason)}", highlight=False)
    if not read:
        out.print("nothing matched the selection")
        if agency or procedure:
            out.print(
                "--agency and --procedure take the local system's codes, not the portal's "
                "(the mapping's crosswalks translate one into the other)"
            )


@contextmanager
def _progress() -> Iterator[Callable[[str, int], None]]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} records"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def advance(stream: str, n: int) -> None:
            if stream not in tasks:
                tasks[stream] = bar.add_task(stream, total=None)
            bar.advance(tasks[stream], n)

        yield advance


STATE_CHOICES = ", ".join([*(s.value for s in State), "dead"])


@outbox_app.command("list")
def outbox_list(
    config: ConfigOpt = None,
    state: Annotated[str, typer.Option(help=f"One of: {STATE_CHOICES}.")] = "dead",
    kind: Annotated[str | None, typer.Option(help="header or step.")] = None,
    dossier: Annotated[str | None, typer.Option(help="Only this MaHoSo.")] = None,
    code: CodeOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=100000)] = 50,
    oldest: Annotated[
        bool, typer.Option("--oldest", help="Queued longest ago first (default: newest first).")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List outbox items (dead letters by default), newest first unless --oldest."""
    states = _states(state)
    kind_value = _kind(kind)
    with opened(config) as app:
        rows = app.store.items(
            states=states, kind=kind_value, dossier=dossier, limit=limit, code=code, oldest=oldest
        )
    if json:
        for r in rows:
            sys.stdout.write(orjson.dumps(_listed(r)).decode() + "\n")
        return
    cells = [
        (
            str(r.id),
            r.kind.value,
            r.key,
            r.state.value,
            str(r.attempts),
            r.last_code,
            scrub_text(r.last_message),
            r.source_ref,
        )
        for r in rows
    ]
    columns = ("id", "kind", "key", "state", "attempts", "code", "reason", "source")
    print_records(out, columns, cells, wrap={"reason"})
    out.print(f"{len(rows)} item(s)")


def _listed(item: OutboxItem) -> dict[str, Any]:
    """An outbox row as the JSON lists give it: without the payload, and with the portal's
    message masked, since a portal may quote the record back (`outbox show` has it whole)."""
    row = {f.name: getattr(item, f.name) for f in fields(item) if f.name != "body"}
    row["last_message"] = scrub_text(item.last_message)
    return row


@outbox_app.command("blocked")
def outbox_blocked(
    config: ConfigOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=100000)] = 50,
    json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Dossiers whose steps wait for their header, longest waiting first, and why."""
    with opened(config) as app:
        blocked = app.store.blocked_dossiers(limit=limit)
    if json:
        for b in blocked:
            line = {
                "dossier": b.dossier,
                "steps": b.steps,
                "first_queued_at": iso_utc(b.first_queued_at),
                "header_id": b.header.id if b.header else None,
                "header_state": b.header.state.value if b.header else None,
                "reason": blocked_reason(b),
            }
            sys.stdout.write(orjson.dumps(line).decode() + "\n")
        return
    cells = [
        (
            b.dossier,
            str(b.steps),
            iso_utc(b.first_queued_at) or "-",
            f"{b.header.id} ({b.header.state.value})" if b.header else "-",
            blocked_reason(b),
        )
        for b in blocked
    ]
    columns = ("dossier", "steps", "waiting since", "header", "why")
    print_records(out, columns, cells, wrap={"why"})
    out.print(f"{len(blocked)} dossier(s)")


def blocked_reason(blocked: BlockedDossier) -> str:
    """Why the portal does not hold the dossier yet, and what unblocks it."""
    header = blocked.header
    if header is None:
        return "no header queued under this dossier number: check the steps' MaHoSo"
    if header.state is State.PENDING and header.attempts == 0:
        return "header queued, not yet acknowledged: the steps follow it"
    if header.state is State.PENDING:
        tried = scrub_text(header.last_message)
        return f"header being retried ({header.attempts} attempts): {tried}"
    what = {State.INVALID: "refused by validation", State.REJECTED: "rejected by the portal"}
    said = scrub_text(header.last_message)
    if header.state is State.REJECTED:  # the portal's own code; the others' say nothing more
        said = f"{header.last_code} {said}".strip()
    done = what.get(header.state, header.state.value)
    return f"header {done}: {said}; {dead_letter_hint(str(header.id))}"


def _states(value: str) -> list[State]:
    if value == "dead":
        return sorted(DEAD_STATES)
    if value == "blocked":  # a figure of the status, not a state an item is in
        fail(
            "--state blocked: blocked steps are pending steps waiting for their dossier's "
            "header; `connector outbox blocked` lists their dossiers and why",
            2,
        )
    try:
        return [State(value)]
    except ValueError:
        fail(f"--state: expected one of {STATE_CHOICES}, got {value!r}", 2)


def _kind(value: str | None) -> Kind | None:
    if value is None:
        return None
    try:
        return Kind(value)
    except ValueError:
        fail(f"--kind: expected header or step, got {value!r}", 2)


@outbox_app.command("show")
def outbox_show(item_id: int, config: ConfigOpt = None) -> None:
    """Show one item: its state, the portal's code and message, and the payload."""
    with opened(config) as app:
        item = app.store.get(item_id)
    if item is None:
        fail(f"no outbox item {item_id}")
    for name, value in ((f.name, getattr(item, f.name)) for f in fields(item)):
        if name == "body":
            continue
        shown = iso_utc(value) if name.endswith("_at") and isinstance(value, float) else value
        out.print(f"[bold]{name}[/bold]: {escape(str(shown))}", highlight=False, soft_wrap=True)
    out.print("[bold]payload[/bold]:")
    out.print_json(data=item.payload)


@outbox_app.command("retry")
def outbox_retry(
    item_ids: Annotated[list[int] | None, typer.Argument(help="Item ids to retry.")] = None,
    config: ConfigOpt = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Every dead letter.")] = False,
    code: Annotated[
        str | None,
        typer.Option(
            help="Every dead letter whose last code is this one (see `connector status`'s "
            "dead letters by code), e.g. after fixing the crosswalk a rejection was about."
        ),
    ] = None,
) -> None:
    """Send dead letters again: parked ones as they are, refused ones re-read and re-mapped."""
    from connector.app import OperatorActions
    from connector.jobs.resync import GONE, NOT_RETRIED

    if not item_ids and not all_dead and code is None:
        fail("give item ids, --all-dead or --code", 2)
    if all_dead and code is not None:
        fail("give --all-dead or --code, not both", 2)
    with opened(config) as app:
        actions = OperatorActions(app, origin="cli")
        report = actions.retry(list(item_ids or []), all_dead=all_dead, code=code)
    results = report["results"]
    if not results:
        out.print("nothing to retry: no dead letter matches", highlight=False)
    for r in results:
        reason = f": {r['reason']}" if r.get("reason") else ""
        out.print(
            f"{r['id']}: {r['action']}{reason}", highlight=False, markup=False, soft_wrap=True
        )
    if any(r["action"] == GONE for r in results):
        out.print(
            "kept as dead letters: their records are no longer under these numbers in the "
            "local system (renumbered or deleted). A record keeps the first number it was "
            "queued under: if the portal never took it, dismiss these (`connector outbox "
            "dismiss ID… --reason …`), then `connector resync --dossier NEW_NUMBER "
            "--missing-only` queues the record under its new number; if the portal holds "
            "it, give the record its number back in the local system",
            highlight=False,
        )
    left = [r for r in results if r["action"] in NOT_RETRIED]
    if left:
        fail(f"{len(left)} of {len(results)} dead letter(s) not retried (see above)")


@outbox_app.command("dismiss")
def outbox_dismiss(
    item_ids: Annotated[list[int] | None, typer.Argument(help="Item ids to dismiss.")] = None,
    config: ConfigOpt = None,
    code: Annotated[
        str | None, typer.Option(help="Every dead letter whose last code is this one.")
    ] = None,
    reason: Annotated[
        str, typer.Option(help="Why they will not be fixed; kept in the audit trail.")
    ] = "",
) -> None:
    """Retire dead letters that will not be fixed (a record the portal will never take),
    with the steps waiting behind a dismissed header; the reason goes into the audit trail.
    The local record goes again when it changes, or with `resync --dossier X --missing-only`."""
    from connector.app import OperatorActions

    if not item_ids and code is None:
        fail("give item ids or --code", 2)
    if not reason.strip():
        fail("give --reason: the audit trail keeps why these were dismissed", 2)
    with opened(config) as app:
        report = OperatorActions(app, origin="cli").dismiss(
            list(item_ids or []), code=code, reason=reason
        )
    dismissed, kept = report["dismissed"], report["not_dead"]
    out.print(
        f"dismissed {len(dismissed)} dead letter(s) and {report['steps']} step(s) waiting "
        "behind them"
    )
    if kept:
        out.print(f"not dead letters (or not found), left as they are: {kept}")
        raise typer.Exit(1)


@mapping_app.command("check")
def mapping_check(
    path: Annotated[
        Path | None, typer.Argument(help="Mapping file (default: the config's).")
    ] = None,
    config: ConfigOpt = None,
    portal: Annotated[
        bool,
        typer.Option(
            "--portal",
            help="Then log in to the configured portal and check every crosswalk target "
            "code against its catalogues; exit 1 if it does not list one.",
        ),
    ] = False,
) -> None:
    """Validate a mapping file and its crosswalks; exit 2 on an error (warnings are shown).

    With --portal, then compare the crosswalk target codes with the portal's catalogues.
    """
    from connector.mapfiles import check_mapping

    target = path or load(config).source.mapping
    findings = check_mapping(target)
    warnings = [f for f in findings if f.startswith("warning:")]
    for finding in warnings:
        out.print(f"[yellow]{escape(finding)}[/yellow]", highlight=False)
    errors = [f for f in findings if f not in warnings]
    if errors:
        fail("; ".join(errors), 2)
    out.print(f"[green]{target}: ok[/green]", highlight=False)
    if portal:
        _check_against_portal(target, config)


def _check_against_portal(target: Path, config: Path | None) -> None:
    """`mapping check --portal`: crosswalk targets against the portal's catalogues.

    Exit 1 when a code is not listed (or a catalogue comes back empty) or the portal cannot
    be reached; 2 when the portal refuses the connector (credentials, dstcode, TLS trust).
    """
    from connector.core.catalogue_check import compare
    from connector.mapfiles import catalogue_codes

    with guarded():
        crosswalks = catalogue_codes(target)
    if not crosswalks:
        out.print("no crosswalk feeds a portal catalogue: nothing to ask the portal")
        return
    services = sorted({c.kind.service for c in crosswalks})
    with opened(config) as app:
        listings = _fetch_catalogues(app, services)
    report = compare(crosswalks, listings)
    for finding in report.unknown:
        out.print(
            f"[red]unknown:[/red] {escape(finding.describe())}", highlight=False, soft_wrap=True
        )
    for kind in report.empty:
        out.print(
            f"[red]empty:[/red] the portal's {kind.name} catalogue ({kind.service}) lists "
            "no code; its crosswalk codes were not checked",
            highlight=False,
            soft_wrap=True,
        )
    for count in report.counts:
        out.print(
            f"{count.kind.name} ({count.kind.service}, {count.listed} listed): "
            f"{count.checked} checked, {count.unknown} unknown",
            highlight=False,
            soft_wrap=True,
        )
    unknown = len(report.unknown)
    out.print(
        f"portal catalogues: {report.checked} crosswalk code(s) checked, {unknown} unknown"
        + (f", {report.unchecked} not checked" if report.unchecked else ""),
        highlight=False,
        soft_wrap=True,
    )
    if unknown:
        fail(f"{unknown} crosswalk code(s) not in the portal's catalogues")
    if report.empty:
        names = ", ".join(kind.service for kind in report.empty)
        fail(f"the portal returned an empty catalogue: {names}")


def _fetch_catalogues(app: App, services: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The catalogues from the daemon's own portal adapter (same TLS, secrets, retries)."""

    async def fetch() -> dict[str, list[dict[str, Any]]]:
        portal = app.portal
        try:
            return {service: await portal.catalogue(service) for service in services}
        finally:
            await portal.aclose()

    where = f"portal {app.settings.portal.base_url}"
    try:
        return asyncio.run(fetch())
    except PortalRefused as exc:
        reason = " ".join(str(exc).split())
        fail(f"{where} refused the connector: {reason} (check [portal] credentials and tls)", 2)
    except PortalTransient as exc:
        reason = " ".join(exc.reason.split())
        fail(f"{where} cannot be reached or did not answer: {reason}")


@mapping_app.command("preview")
def mapping_preview(
    dossier: Annotated[str, typer.Option(help="MaHoSo (dossier number) in the local system.")],
    config: ConfigOpt = None,
) -> None:
    """Print the exact payloads one dossier would produce, without sending anything."""
    with opened(config) as app:
        records = read_local(app, dossier)
    if not records:
        fail(f"no record for dossier {dossier!r} in the local system")
    for mapped in records:
        _print_mapped(mapped)


def _print_mapped(mapped: Mapped) -> None:
    service = "DongBoHoSoMC" if mapped.kind == Kind.HEADER else "CapNhatTienDoHoSoMC"
    reason = escape(mapped.reason())
    verdict = "[green]valid[/green]" if mapped.ok else f"[red]refused[/red]: {reason}"
    out.print(f"# {service} {mapped.key} ({mapped.source_ref}) {verdict}", highlight=False)
    out.print_json(data=mapped.payload)


AUDIT_ACTIONS = ("send", "reply", "operator")


@audit_app.command("show")
def audit_show(
    config: ConfigOpt = None,
    dossier: Annotated[
        str | None, typer.Option(help="Only calls that carried this dossier (MaHoSo).")
    ] = None,
    action: Annotated[str | None, typer.Option(help=f"One of: {', '.join(AUDIT_ACTIONS)}.")] = None,
    since: Annotated[
        str | None, typer.Option(help="On or after (ISO 8601; UTC unless a zone is given).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Before (same form as --since).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100000)] = 50,
    json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    archive: Annotated[
        list[Path] | None,
        typer.Option(
            "--archive",
            help="Also read this archive (`audit archive`), oldest first; repeat for each.",
        ),
    ] = None,
) -> None:
    """The newest records of the audit trail, oldest first: each call sent, the portal's
    reply, and operator actions. With --dossier: what was sent for it, and the answers."""
    if action is not None and action not in AUDIT_ACTIONS:
        fail(f"--action: expected one of {', '.join(AUDIT_ACTIONS)}, got {action!r}", 2)
    after = None if since is None else _instant(since, "--since")
    before = None if until is None else _instant(until, "--until")
    with opened(config) as app:
        records = read_audit(
            _sql_store(app, "audit show"),
            dossier=dossier,
            action=action,
            since=after,
            until=before,
            limit=limit,
            archives=archive or [],
        )
    if json:
        for r in records:
            line = {f.name: getattr(r, f.name) for f in fields(r)}
            line["at"] = iso_utc(r.at)
            if dossier:
                line["dossier_keys"] = dossier_keys(r, dossier)
            sys.stdout.write(orjson.dumps(line).decode() + "\n")
        return
    _print_audit(records, dossier)
    out.print(f"{len(records)} record(s)")


_AUDIT_COLUMNS = ("seq", "at (UTC)", "action", "service", "items", "outcome", "payload", "detail")


def _print_audit(records: list[AuditRecord], dossier: str | None) -> None:
    """The records as a table, or as blocks when one would not fit: an audit view wraps,
    never cuts (the payload hash is what a record is checked against)."""
    cells = []
    for r in records:
        mine = dossier_keys(r, dossier) if dossier else []
        items = f"{len(mine)} of {len(r.keys)}" if dossier else str(len(r.keys))
        cells.append(
            (
                str(r.seq),
                iso_utc(r.at) or "-",
                r.action,
                r.service,
                items,
                r.outcome,
                r.payload_hash,
                r.detail,
            )
        )
    print_records(out, _AUDIT_COLUMNS, cells, wrap={"outcome", "detail"})


def _instant(value: str, option: str) -> float:
    """Epoch seconds from an ISO 8601 date or time; UTC unless it names a zone."""
    moment = _moment(value, option)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _sql_store(app: App, command: str) -> SqlStore:
    store = app.store
    if not isinstance(store, SqlStore):
        fail(f"{command} needs the SQL state store")
    return store


@audit_app.command("verify")
def audit_verify(
    config: ConfigOpt = None,
    archive: Annotated[
        list[Path] | None,
        typer.Option(
            "--archive",
            help="An archive `audit archive` wrote, oldest first (repeat for each): the "
            "chain is then walked from its very first record.",
        ),
    ] = None,
) -> None:
    """Check the audit trail's hash chain; exit 1 if a record was edited, deleted or moved."""
    with opened(config) as app:
        check = verify_audit(_sql_store(app, "audit verify"), archives=archive or [])
    if check.ok:
        out.print(f"[green]audit trail intact[/green]: {check.checked} records")
        if check.trusted_up_to:
            out.print(
                f"records up to seq {check.trusted_up_to} were archived: the chain was "
                "walked from the last one on trust; `--archive FILE` (each archive, oldest "
                "first) walks it from the first record",
                highlight=False,
            )
        return
    fail(f"audit trail broken at record {check.first_bad_seq}: {check.reason}")


@audit_app.command("archive")
def audit_archive(
    target: Annotated[Path, typer.Argument(help="A new file for the archived records.")],
    before: Annotated[
        str, typer.Option(help="Move the records written before this (ISO 8601; UTC unless zoned).")
    ],
    config: ConfigOpt = None,
) -> None:
    """Move old audit records to a file (JSON lines, hashes kept), out of the state store.
    Keep the files: `audit verify --archive …` walks the chain through them."""
    cut = _instant(before, "--before")
    with opened(config) as app:
        done = archive_audit(_sql_store(app, "audit archive"), before=cut, target=target)
    if done.records == 0:
        out.print(f"nothing written before {before} is left in the store; no file written")
        return
    out.print(
        f"archived {done.records} records (seq {done.first_seq}–{done.last_seq}) to "
        f"{done.path}; the store's trail now goes on from seq {done.last_seq}",
        highlight=False,
    )


@state_app.command("backup")
def state_backup(
    target: Annotated[Path, typer.Argument(help="A new file for the copy.")],
    config: ConfigOpt = None,
) -> None:
    """Copy the SQLite state store to a new file while the daemon runs, then check the
    copy (SQLite's quick check, the audit chain); exit 1 if the copy is not sound."""
    from connector.store.backup import back_up

    with opened(config) as app:
        done = back_up(_sql_store(app, "state backup").engine, target)
    size = done.size / 1_000_000
    out.print(f"copied to {done.path}: {size:.1f} MB in {done.seconds:.1f} s", highlight=False)
    if not done.ok:
        fail(
            f"the copy is not sound: integrity {done.integrity}; audit {done.audit.reason or 'ok'}"
        )
    records = done.audit.checked
    out.print(f"[green]copy checked[/green]: integrity ok, audit trail intact ({records} records)")


def main() -> None:
    cli()
