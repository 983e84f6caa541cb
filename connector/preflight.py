"""`connector check`: can this installation do its work? Each part it needs, tried once.

Meant for the first start and after every change of configuration, secrets, network or
certificates: the mapping is loaded, each stream's pull query is run for one record, the
one-dossier query (`select_dossier`, or `select`) is run for that record's dossier, the
state store is opened and read (a new one is created, as the daemon would), and the
portal is logged in to. Nothing is queued or sent. Every part is tried even when an earlier
one fails, so one run names every problem.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from sqlalchemy.engine import make_url

from connector.app import App
from connector.core.masking import scrub_text
from connector.errors import ConnectorError, MappingError, PortalRefused, PortalTransient
from connector.mapfiles import check_mapping
from connector.ports import Selection


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One part of the installation and what trying it showed."""

    part: str
    ok: bool
    detail: str


def preflight(app: App) -> list[Finding]:
    """Try the mapping, each stream of the local system, the state store and the portal."""
    findings = [_try("mapping", _mapping, app)]
    if findings[0].ok:
        findings += [
            _try(f"local system: {stream}", partial(_stream, stream=stream), app)
            for stream in app.mapping.streams
        ]
    findings.append(_try("state store", _store, app))
    findings.append(_try("portal", _portal, app))
    return findings


def _try(part: str, attempt: Callable[[App], str], app: App) -> Finding:
    try:
        return Finding(part=part, ok=True, detail=attempt(app))
    except PortalRefused as exc:
        return Finding(part=part, ok=False, detail=f"refused: {exc}")
    except PortalTransient as exc:
        return Finding(part=part, ok=False, detail=f"unreachable: {exc.reason}")
    except ConnectorError as exc:
        return Finding(part=part, ok=False, detail=str(exc))
    except Exception as exc:  # a check must report, not crash: the next parts still run
        return Finding(part=part, ok=False, detail=scrub_text(f"{type(exc).__name__}: {exc}"))


def _mapping(app: App) -> str:
    path = app.settings.source.mapping
    findings = check_mapping(path)
    errors = [f for f in findings if not f.startswith("warning:")]
    if errors:
        raise ConnectorError("; ".join(errors))
    warned = len(findings)
    note = f", {warned} warning(s): see `connector mapping check`" if warned else ""
    return f"{app.mapping.name} ({path}){note}"


def _stream(app: App, *, stream: str) -> str:
    """The pull query, then the query reading its first record's dossier alone: what a
    retry, a trace, a resync of one dossier and the pull's re-reads run."""
    page = app.source.pull(stream, None, 1)
    if not page.records:
        return "the pull query runs (no records yet)"
    mapping = app.mapping
    if stream not in (mapping.dossier_stream, mapping.step_stream):
        return "the pull query runs"
    number = mapping.map(stream, page.records[0]).dossier
    if not number:
        return "the pull query runs (its first record has no dossier number)"
    try:
        pages = app.source.select(stream, Selection(dossier=number), 1)
    except MappingError:  # no select: `mapping check` warns, the daemon goes on without
        return "the pull query runs; no query reads one dossier (see `connector mapping check`)"
    next(iter(pages), None)
    return "the pull query and the one-dossier query run"


def _store(app: App) -> str:
    """Where the store is, so a relative path that resolved somewhere unexpected shows:
    a store with no cursor was just made, or has never been pulled into."""
    app.store.ping()
    cursors = app.store.cursors()
    where = make_url(app.settings.state.url).render_as_string(hide_password=True)
    if not cursors:
        return f"answers at {where}; no stream cursor yet: a new store, or never pulled into"
    return f"answers at {where}; {len(cursors)} stream cursor(s) kept"


def _portal(app: App) -> str:
    async def login() -> None:
        try:
            await app.portal.probe()
        finally:
            await app.portal.aclose()

    asyncio.run(login())
    settings = app.settings.portal
    return f"logged in as {settings.username} at {settings.base_url}"
