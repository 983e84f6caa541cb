"""`connector trace`: where one dossier stands, from the local system to the portal.

The question a department asks an IT centre is "why is dossier X not on the national
portal?". The answer is spread over four places, read here side by side: the local
record as the mapping sees it now, the outbox rows queued for it, the audit trail's calls
that carried it, and what the portal itself holds (`TraCuuHoSo`). `verdict` turns them
into one line that says what to do; it is pure, so each case is tested without I/O.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, replace

from connector.app import App
from connector.core.masking import scrub_text
from connector.core.records import DEAD_STATES, Kind, Mapped, PortalView, State
from connector.errors import PortalRefused, PortalTransient
from connector.jobs.pull import read_whole_dossier
from connector.ports import OutboxItem
from connector.store.audit import AuditRecord, read_audit
from connector.store.sql import SqlStore


@dataclass(frozen=True, slots=True, kw_only=True)
class Trace:
    """One dossier, as each place sees it."""

    dossier: str
    local: list[Mapped]  # its records re-read from the local system and mapped now
    outbox: list[OutboxItem]  # every row the outbox holds for it, oldest first
    calls: list[AuditRecord]  # the newest calls that carried it, oldest first
    acked_at: float | None = None  # when the portal last acknowledged its header
    purged: frozenset[str] = frozenset()  # keys of its acknowledged steps whose rows went
    portal: PortalView | None = None  # what TraCuuHoSo returned (None: nothing held)
    looked_up: bool = False  # the portal answered the lookup
    portal_said: str = ""  # when it did not: "not asked", or the error met

    def local_header(self) -> Mapped | None:
        return next((m for m in self.local if m.kind is Kind.HEADER), None)

    def header_row(self) -> OutboxItem | None:
        """The newest header row (superseded versions aside)."""
        rows = [i for i in self.outbox if i.kind is Kind.HEADER and i.state is not State.SUPERSEDED]
        return rows[-1] if rows else None

    def steps(self) -> Counter[State]:
        return Counter(i.state for i in self.outbox if i.kind is Kind.STEP)

    def never_queued(self) -> list[Mapped]:
        """Valid local steps with no live row and not purged as sent: what `resync
        --missing-only` queues (the pull missed them, or an operator retired them)."""
        rows = [i for i in self.outbox if i.kind is Kind.STEP and i.state is not State.SUPERSEDED]
        queued = {i.key for i in rows} | self.purged
        return [m for m in self.local if m.kind is Kind.STEP and m.ok and m.key not in queued]

    def dead_steps(self) -> list[OutboxItem]:
        return [i for i in self.outbox if i.kind is Kind.STEP and i.state in DEAD_STATES]


def verdict(trace: Trace) -> str:
    """One line: where the dossier stands and, when it is stuck, what unsticks it."""
    number, local, row = trace.dossier, trace.local_header(), trace.header_row()
    resync = f"`connector resync --dossier {number}`"
    if local is None and row is None:
        return "not in the local system under this number, and never queued"
    if local is not None and not local.ok:
        again = f"`connector outbox retry {row.id}`" if row is not None else resync
        return (
            f"the local record is refused: {local.reason()}; fix the record or the mapping, "
            f"then {again} (it reads and maps the record again)"
        )
    if row is None and trace.acked_at is None:
        return f"in the local system but never queued: {resync} (see mappings/README.md)"
    if row is None:  # acknowledged long ago: its rows were purged after `retention_days`
        return _acknowledged(trace, 0, resync)
    if row.state in DEAD_STATES:
        said = f"{row.last_code} {scrub_text(row.last_message)}".strip()
        return f"header {row.state.value}: {said}; {dead_letter_hint(str(row.id))}"
    waiting = trace.steps()[State.PENDING]
    if row.state is State.PENDING:
        last = scrub_text(row.last_message)
        tried = f" ({row.attempts} attempts; last: {last})" if row.attempts else ""
        return f"header queued, not acknowledged yet{tried}; {waiting} step(s) wait for it"
    return _acknowledged(trace, waiting, resync)


def dead_letter_hint(ids: str, *, many: bool = False) -> str:
    """The two ways out of a dead letter: fixed and sent again, or dismissed for good."""
    them, they = ("them", "they") if many else ("it", "it")
    return (
        f"fix {them}, then `connector outbox retry {ids}`; if {they} will never be sent, "
        f"`connector outbox dismiss {ids} --reason …`"
    )


def _acknowledged(trace: Trace, waiting: int, resync: str) -> str:
    valid_steps = sum(1 for m in trace.local if m.kind is Kind.STEP and m.ok)
    queued = f"; {waiting} step(s) queued" if waiting else ""
    if not trace.looked_up:
        return f"header acknowledged; portal not looked up ({trace.portal_said}){queued}"
    if trace.portal is None:
        return f"header acknowledged, but the portal does not hold it: {resync}"
    held = trace.portal.step_count
    status = trace.portal.fields.get("TrangThaiHoSo", "?")
    line = f"the portal holds it (TrangThaiHoSo {status}) with {held} of {valid_steps} steps"
    if held >= valid_steps or waiting:
        return line + queued
    if trace.never_queued():
        return f"{line}, and none is queued: {resync[:-1]} --missing-only`"
    dead = trace.dead_steps()
    if dead:
        ids = " ".join(str(i.id) for i in dead[:5]) + (" …" if len(dead) > 5 else "")
        return f"{line}; {len(dead)} step(s) dead: {dead_letter_hint(ids, many=True)}"
    # Every step was acknowledged, yet the portal holds fewer: only a plain resync resends
    # them (`--missing-only` skips what was acknowledged).
    return f"{line}, though it acknowledged every one: {resync} sends them again"


# --- gathering -----------------------------------------------------------------------------


def trace(app: App, dossier: str, *, ask_portal: bool = True, calls: int = 20) -> Trace:
    """Read the four places; the portal is only asked when `ask_portal` (a `TraCuuHoSo`)."""
    local = read_local(app, dossier)
    found = Trace(
        dossier=dossier,
        local=local,
        outbox=app.store.dossier_history(dossier),
        acked_at=app.store.acked_at(dossier),
        purged=frozenset(app.store.purged_steps([m for m in local if m.kind is Kind.STEP])),
        calls=_calls(app, dossier, calls),
        portal_said="not asked",
    )
    if not ask_portal:
        return found
    try:
        view = asyncio.run(_look_up(app, dossier))
    except PortalRefused as exc:
        return replace(found, portal_said=f"refused: {exc}")
    except PortalTransient as exc:
        return replace(found, portal_said=f"unreachable: {exc.reason}")
    return replace(found, portal=view, looked_up=True, portal_said="")


def read_local(app: App, dossier: str) -> list[Mapped]:
    """The dossier's records in the local system (header and steps), mapped now."""
    local = read_whole_dossier(app.source, app.mapping, dossier)
    return [mapped for records in local.values() for mapped in records]


def _calls(app: App, dossier: str, limit: int) -> list[AuditRecord]:
    store = app.store
    return read_audit(store, dossier=dossier, limit=limit) if isinstance(store, SqlStore) else []


async def _look_up(app: App, dossier: str) -> PortalView | None:
    try:
        return await app.portal.lookup(dossier)
    finally:
        await app.portal.aclose()
