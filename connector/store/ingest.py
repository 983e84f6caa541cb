"""Ingest: turn one page of mapped items into outbox rows, in set-based statements.

Ingest is on the hot path (thousands of dossiers and tens of thousands of steps a second),
so a page costs a few `IN (...)` look-ups (`existing.look_up`), updates of the rows it
retires and one multi-row insert, never a query per item. `Planner` walks the items in
order, deciding each one against what is stored and against the rows already planned (a
page may hold two versions of one dossier); `apply` writes the plan. A header that would
reuse another local record's MaHoSo, or change its own, becomes a dead letter instead
(`Planner._identity`); the first to claim a number refuses the steps another record
queued under it (`Planner._first_claim`). Those and the fixing of a refused record cost
a statement more, only on the pages where they happen.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, bindparam, update

from connector.core.records import Kind, Mapped, Problem, State
from connector.ports import IngestResult
from connector.store.engine import among, insert_many, upsert
from connector.store.existing import Seen, records_with_refused_steps
from connector.store.rows import chunks, new_row
from connector.store.schema import outbox, rereads

Row = dict[str, Any]
_SUPERSEDED = State.SUPERSEDED.value
_PENDING = State.PENDING.value
_INVALID = State.INVALID.value


@dataclass(slots=True, kw_only=True)
class Plan:
    """Rows to insert and stored rows to retire, with the counts to report."""

    rows: list[Row] = field(default_factory=list)
    retire: set[int] = field(default_factory=set)
    #: Queued steps that turn out not to be their number's: id -> (source_ref, key, reason)
    refuse: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    #: Records whose refused header is valid now -> its number (see `_list_rereads`)
    fixed: dict[str, str] = field(default_factory=dict)
    queued: int = 0
    unchanged: int = 0
    invalid: int = 0
    newer: int = 0

    def result(self) -> IngestResult:
        return IngestResult(
            queued=self.queued,
            unchanged=self.unchanged,
            invalid=self.invalid + len(self.refuse),
            withdrawn=tuple(self.refuse.values()),
            newer=self.newer,
        )


class Planner:
    """Decides, item by item, what a page adds to the outbox and what it retires."""

    def __init__(self, seen: Seen, *, now: float, force: bool) -> None:
        self.seen = seen
        self.now = now
        self.force = force
        self.plan = Plan()
        self._pending_header: dict[str, Row] = {}  # planned pending header row per key
        self._invalid_by_ref: dict[tuple[str, str], Row] = {}  # planned invalid rows

    def add(self, item: Mapped) -> None:
        if self.seen.newer and (item.kind, item.source_ref) in self.seen.newer:
            # Read by an operator's command while the pull queued the record again: this
            # copy may be the older one, and queued last it would be sent last.
            self.plan.newer += 1
            return
        if item.ok and item.kind is Kind.HEADER:
            item = self._identity(item)
        elif item.ok and item.dossier_ref:
            item = self._belongs(item)
        if not item.ok:
            self._invalid(item)
            return
        self._fixed(item)
        if item.kind is Kind.HEADER:
            self._header(item)
        else:
            self._step(item)

    def _identity(self, item: Mapped) -> Mapped:
        """The item, or a dead letter when it would break a dossier's identity on the portal.

        A MaHoSo belongs to the first local record queued under it, and a local record keeps
        the first MaHoSo it was queued under: a second record must not overwrite the first
        one's dossier, and the portal's MaHoSo never changes. The dead letter is keyed by
        the source reference, so the owner's later versions do not retire it.
        """
        owner = self.seen.owner.get(item.dossier, item.source_ref)
        number = self.seen.number.get(item.source_ref, item.dossier)
        if owner != item.source_ref:
            reason = (
                f"dossier number already used by {owner}: {item.source_ref} has the same "
                "number and is not sent, so it cannot overwrite that dossier on the portal"
            )
        elif number != item.dossier:
            reason = (
                f"dossier number of {item.source_ref} changed from {number!r} to "
                f"{item.dossier!r} after it was queued; the portal's MaHoSo never changes, "
                f"so this version is not sent and {number!r} stays as it was"
            )
        else:
            if item.dossier not in self.seen.owner:
                self._first_claim(item)
            self.seen.claim(item.dossier, item.source_ref)
            return item
        problem = Problem(field="MaHoSo", reason=reason, value=item.dossier)
        return replace(item, key=item.source_ref, problems=(problem,))

    def _first_claim(self, header: Mapped) -> None:
        """The first record to claim a number decides whose its queued steps are.

        Steps queued before any record claimed the number (its header was invalid, say)
        could not be checked then; those of another record become dead letters now, as
        they would have been had the claim come first, and never reach this dossier.
        """
        for step in self.seen.unclaimed_steps.pop(header.dossier, ()):
            if step.dossier_ref != header.source_ref:
                problem = _not_its_number(header.source_ref, step.dossier_ref, header.dossier)
                self.plan.refuse[step.id] = (step.source_ref, step.key, str(problem))

    def _belongs(self, step: Mapped) -> Mapped:
        """The step, or a dead letter when its dossier record does not hold its MaHoSo.

        A step carries its dossier's number, not its record: without this, the steps of a
        second local record reusing a number would be added to the first record's dossier
        on the portal, and those of a renumbered record would wait for a header that is
        never sent. Only known when the mapping names the step's dossier record.
        """
        ref = step.dossier_ref
        owner = self.seen.owner.get(step.dossier, ref)
        number = self.seen.number.get(ref, step.dossier)
        if owner != ref:
            problem = _not_its_number(owner, ref, step.dossier)
        elif number != step.dossier:
            reason = (
                f"the step's dossier record {ref} was queued as {number!r}; the portal's "
                f"MaHoSo never changes, so a step under {step.dossier!r} is not sent"
            )
            problem = Problem(field="MaHoSo", reason=reason, value=step.dossier)
        else:
            return step
        return replace(step, problems=(problem,))

    def _header(self, item: Mapped) -> None:
        row = new_row(item, State.PENDING, now=self.now)
        held = self.seen.header_hash.get(item.key)
        if held is None:
            held = self.seen.known_hash.get(item.dossier)
        if held == row["content_hash"] and not self.force:
            self.plan.unchanged += 1
            return
        older = self._pending_header.get(item.key)
        if older is not None:
            older["state"] = _SUPERSEDED
        self._pending_header[item.key] = row
        self.seen.header_hash[item.key] = row["content_hash"]
        self.plan.retire.update(self.seen.pending_headers.pop(item.key, ()))
        self._queue(row)

    def _step(self, item: Mapped) -> None:
        # Forced (a resync) re-sends a step already sent, never one still waiting to go.
        queued = self.seen.pending_steps if self.force else self.seen.live_steps
        if item.key in queued and not self._another_records(item):
            self.plan.unchanged += 1
            return
        self.seen.live_steps.add(item.key)
        self.seen.queue_step(item.key, item.dossier_ref)
        self._queue(new_row(item, State.PENDING, now=self.now))

    def _another_records(self, step: Mapped) -> bool:
        """Whether the step waiting with this key is another dossier record's.

        A step's key is the portal's identity (MaHoSo, time, status), so two records on one
        number can queue steps with the same key before either claims it. Each is queued:
        the first claim then refuses the other record's (`_first_claim`) and keeps its own,
        which would otherwise never be sent, having been taken as the other.
        """
        records = self.seen.pending_records.get(step.key)
        return bool(step.dossier_ref and records and step.dossier_ref not in records)

    def _invalid(self, item: Mapped) -> None:
        reason = item.reason()
        stored = self.seen.invalid_by_ref.get((item.kind, item.source_ref), {})
        live = {i: r for i, r in stored.items() if i not in self.plan.retire}
        planned = self._invalid_by_ref.get((item.kind.value, item.source_ref))
        if planned is None and reason in live.values():
            self.plan.unchanged += 1
            return
        if planned is not None and planned["last_message"] == reason:
            self.plan.unchanged += 1
            return
        self.plan.retire.update(live)
        self._retire_planned(item)
        try:
            row = new_row(item, State.INVALID, now=self.now)
        except TypeError:  # not JSON (e.g. a lone surrogate): keep a printable copy instead
            row = new_row(
                replace(item, payload=_printable(item.payload)), State.INVALID, now=self.now
            )
        self._invalid_by_ref[(row["kind"], row["source_ref"])] = row
        self.plan.rows.append(row)
        self.plan.invalid += 1

    def _fixed(self, item: Mapped) -> None:
        """A valid version of a record retires its own dead letters (the record was fixed).

        Only its own: another local record refused under the same dossier number is still
        as it was, and its dead letter stays until it is read again or dismissed.
        """
        retired = self.seen.invalid_by_ref.pop((item.kind, item.source_ref), {})
        self.plan.retire.update(retired)
        if item.kind is Kind.HEADER and retired:
            self.plan.fixed[item.source_ref] = item.dossier
        self._retire_planned(item)

    def _retire_planned(self, item: Mapped) -> None:
        row = self._invalid_by_ref.pop((item.kind.value, item.source_ref), None)
        if row is not None:
            row["state"] = _SUPERSEDED

    def _queue(self, row: Row) -> None:
        self.plan.rows.append(row)
        self.plan.queued += 1


def _not_its_number(owner: str, record: str, dossier: str) -> Problem:
    """Why a step of `record` is not added to dossier `dossier`, which `owner` holds."""
    reason = (
        f"dossier number belongs to {owner}: this step's dossier record {record} has the "
        "same number, so the step is not added to that dossier"
    )
    return Problem(field="MaHoSo", reason=reason, value=dossier)


def _printable(value: Any) -> Any:
    """A JSON-safe copy of a refused payload: odd values spelled out, never dropped."""
    if isinstance(value, dict):
        return {str(key): _printable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(item) for item in value]
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if (
        value is None
        or isinstance(value, bool | float)
        or (isinstance(value, int) and -(2**63) <= value < 2**64)
    ):
        return value
    return repr(value)


def apply(conn: Connection, plan: Plan, *, now: float) -> None:
    """Retire the rows the plan replaces, then insert its rows in one executemany."""
    for part in chunks(sorted(plan.retire)):
        conn.execute(
            update(outbox)
            .where(among(conn, outbox.c.id, part))
            .values(state=_SUPERSEDED, updated_at=now)
        )
    if plan.refuse:
        statement = (
            update(outbox)
            .where(outbox.c.id == bindparam("item_id"), outbox.c.state == _PENDING)
            .values(state=_INVALID, last_code="invalid", last_message=bindparam("reason"))
            .values(updated_at=now)
        )
        refused = [{"item_id": i, "reason": r} for i, (_, _, r) in plan.refuse.items()]
        conn.execute(statement, refused)
    if plan.rows:
        insert_many(conn, outbox, plan.rows)
    _list_rereads(conn, plan.fixed, now)


def _list_rereads(conn: Connection, fixed: dict[str, str], now: float) -> None:
    """List for the pull the numbers of fixed records that have refused steps: those may
    have been refused for their header's sake (see `PullJob.read_steps_again`)."""
    if not fixed:
        return
    refused = records_with_refused_steps(conn, fixed)
    numbers = sorted({number for ref, number in fixed.items() if ref in refused})
    if numbers:
        queued = [{"dossier": number, "queued_at": now} for number in numbers]
        conn.execute(upsert(conn, rereads).on_conflict_do_nothing(), queued)
