"""Keep the demo alive: new dossiers arrive and open ones move one step at a time.

Every change stamps `modified_at` strictly after every stamp already in the database, so a
reader paging on (modified_at, id) never misses a change made after its cursor.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from connector.demo import lifecycle as lc
from connector.demo.catalogue import load_catalogue
from connector.demo.dossier import (
    INVALID_NO_DUE,
    DossierFactory,
    Ids,
    invalid_kind,
    new_rows,
    result_values,
)
from connector.demo.generate import write_rows
from connector.demo.officers import Officer, Offices
from connector.demo.schema import (
    COLUMNS,
    after,
    connect,
    insert_sql,
    local_text,
    parse_local,
    stamp,
    vn_now,
)

_OPEN = tuple(s for s in lc.STATUSES if s not in lc.TERMINAL)
_OPEN_SQL = f"status IN ({', '.join('?' for _ in _OPEN)})"


class _Stamps:
    """Hands out `modified_at` values: now, or just after the latest one, whichever is later."""

    def __init__(self, conn: sqlite3.Connection, now: datetime) -> None:
        row = conn.execute(
            "SELECT max(m) FROM (SELECT max(modified_at) AS m FROM dossiers"
            " UNION ALL SELECT max(modified_at) FROM steps)"
        ).fetchone()
        self._last: str = row[0] or ""
        self._now = stamp(now)

    def next(self, _at: datetime | None = None) -> str:
        self._last = self._now if self._now > self._last else after(self._last)
        return self._last


@dataclass(frozen=True, slots=True, kw_only=True)
class _Open:
    """An open dossier as the advance needs it."""

    id: int
    number: str
    status: str
    agency: str
    procedure: str
    received: str | None
    due: str | None
    duration: int
    last_action: str
    fee_due: bool


class DemoActivity:
    """One writer connection to the demo database; `tick` makes one round of activity."""

    def __init__(self, db_path: Path, crosswalk_dir: Path, *, seed: int = 11) -> None:
        self._catalogue = load_catalogue(crosswalk_dir)
        self._rng = random.Random(seed)
        self._conn = connect(db_path)
        self._offices = Offices()

    def tick(
        self, *, new_dossiers: int = 2, advances: int = 5, now: datetime | None = None
    ) -> tuple[int, int]:
        """Add `new_dossiers` dossiers and up to `advances` steps to open ones.

        Returns (dossiers created, steps added), arrivals' own first steps included.
        """
        local_now = vn_now(now)
        stamps = _Stamps(self._conn, local_now)
        steps = sum(self._arrive(local_now, stamps) for _ in range(new_dossiers))
        steps += sum(self._advance(local_now, stamps) for _ in range(advances))
        return new_dossiers, steps

    def close(self) -> None:
        self._conn.close()

    def _factory(self) -> DossierFactory:
        start = {
            table: self._conn.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()[0]
            for table in COLUMNS
        }
        return DossierFactory(self._catalogue, ids=Ids(start), sequence=self._sequence)

    def _sequence(self, agency: str, day: str) -> int:
        (last,) = self._conn.execute(
            "SELECT max(dossier_no) FROM dossiers WHERE dossier_no LIKE ?", (f"{agency}-{day}-%",)
        ).fetchone()
        return 1 if last is None else int(last[-4:]) + 1

    def _arrive(self, now: datetime, stamps: _Stamps) -> int:
        factory = self._factory()
        (next_id,) = self._conn.execute("SELECT coalesce(max(id), 0) + 1 FROM dossiers").fetchone()
        rows = new_rows()
        factory.make(
            rows, self._rng, received=now, now=now, invalid=invalid_kind(next_id - 1),
            stamper=stamps.next,
        )  # fmt: skip
        write_rows(self._conn, rows)
        return len(rows["steps"])

    def _advance(self, now: datetime, stamps: _Stamps) -> int:
        dossier = self._pick()
        if dossier is None:
            return 0
        status = lc.next_status(dossier.status, self._rng, fee_due=dossier.fee_due)
        if status is None:
            return 0
        at = max(now, parse_local(dossier.last_action) + timedelta(seconds=1)).replace(
            microsecond=0
        )
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._apply(dossier, status, at, stamps.next())
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return 1

    def _pick(self) -> _Open | None:
        (count,) = self._conn.execute(
            f"SELECT count(*) FROM dossiers WHERE {_OPEN_SQL}", _OPEN
        ).fetchone()
        if not count:
            return None
        row = self._conn.execute(
            "SELECT d.id, d.dossier_no, d.status, d.agency_code, d.procedure_code,"
            " d.received_at, d.due_at, coalesce(p.duration_days, 1),"
            " (SELECT max(action_at) FROM steps s WHERE s.dossier_id = d.id),"
            " EXISTS (SELECT 1 FROM fees f WHERE f.dossier_id = d.id) AND NOT EXISTS"
            " (SELECT 1 FROM steps s WHERE s.dossier_id = d.id AND s.status = 'awaiting_fee')"
            f" FROM dossiers d LEFT JOIN procedures p ON p.local_code = d.procedure_code"
            f" WHERE d.{_OPEN_SQL} ORDER BY d.id LIMIT 1 OFFSET ?",
            (*_OPEN, self._rng.randrange(count)),
        ).fetchone()
        return _Open(
            id=row[0], number=row[1], status=row[2], agency=row[3], procedure=row[4],
            received=row[5], due=row[6], duration=row[7], last_action=row[8] or row[5],
            fee_due=bool(row[9]),
        )  # fmt: skip

    def _apply(self, dossier: _Open, status: str, at: datetime, modified: str) -> None:
        actor = self._officer(dossier, lc.ROLE[status])
        text = lc.RESUMED if dossier.status == lc.SUPPLEMENT else lc.content(status, self._rng)
        self._conn.execute(
            insert_sql("steps"),
            (
                None, dossier.id, actor.name, actor.title, actor.department, local_text(at),
                text, status, dossier.last_action, dossier.due, modified,
            ),
        )  # fmt: skip
        updates = {"status": status, "modified_at": modified} | self._effects(dossier, status, at)
        assignments = ", ".join(f"{column} = ?" for column in updates)
        self._conn.execute(
            f"UPDATE dossiers SET {assignments} WHERE id = ?", (*updates.values(), dossier.id)
        )

    def _officer(self, dossier: _Open, role: str) -> Officer:
        agency = self._catalogue.agency(dossier.agency)
        return self._offices.pick(agency.local_code, agency.level, role, self._rng)

    def _effects(self, dossier: _Open, status: str, at: datetime) -> dict[str, str | None]:
        """The dossier columns (and child rows) a step into `status` changes."""
        when = local_text(at)
        if status == lc.RECEIVED:
            return {"received_at": when, "due_at": self._due(dossier, at)}
        if status == lc.SUPPLEMENT:
            self._ask(dossier, at)
            return {}
        if dossier.status == lc.SUPPLEMENT:
            return self._resume(dossier, at)
        if status == lc.DONE:
            self._conn.execute(insert_sql("results"), (None, *self._result(dossier)))
            return {"finished_at": when}
        if status in lc.FINISHING:
            return {"finished_at": when, "note": lc.content(status, self._rng)}
        return {"returned_at": when} if status == lc.RETURNED else {}

    def _due(self, dossier: _Open, at: datetime) -> str | None:
        if invalid_kind(dossier.id - 1) == INVALID_NO_DUE:
            return None
        return local_text(at + timedelta(days=dossier.duration))

    def _result(self, dossier: _Open) -> tuple[object, ...]:
        received = parse_local(dossier.received or dossier.last_action)
        name = self._catalogue.procedure(dossier.procedure).name
        return result_values(dossier.id, dossier.number, received, name)

    def _ask(self, dossier: _Open, at: datetime) -> None:
        asker = self._officer(dossier, "specialist").name
        self._conn.execute(
            insert_sql("supplements"),
            (
                None, dossier.id, asker, lc.content(lc.SUPPLEMENT, self._rng), local_text(at),
                None, None, "open", dossier.due, None,
            ),
        )  # fmt: skip

    def _resume(self, dossier: _Open, at: datetime) -> dict[str, str | None]:
        """Close the open supplement round; the due date moves by the time it stayed open."""
        row = self._conn.execute(
            "SELECT id, requested_at FROM supplements WHERE dossier_id = ? AND state = 'open'"
            " ORDER BY id DESC LIMIT 1",
            (dossier.id,),
        ).fetchone()
        if row is None or dossier.due is None:
            return {}
        new_due = local_text(parse_local(dossier.due) + (at - parse_local(row[1])))
        receiver = self._officer(dossier, "intake").name
        self._conn.execute(
            "UPDATE supplements SET received_by = ?, received_at = ?, state = 'closed',"
            " new_due_at = ? WHERE id = ?",
            (receiver, local_text(at), new_due, row[0]),
        )
        return {"due_at": new_due}


def run_activity(
    db_path: Path,
    crosswalk_dir: Path,
    *,
    interval: float = 1.0,
    stop: threading.Event | None = None,
    ticks: int | None = None,
    seed: int = 11,
) -> None:
    """Tick every `interval` seconds until `stop` is set or `ticks` ticks have run."""
    activity = DemoActivity(db_path, crosswalk_dir, seed=seed)
    done = 0
    try:
        while (ticks is None or done < ticks) and not (stop is not None and stop.is_set()):
            activity.tick()
            done += 1
            if ticks is not None and done >= ticks:
                break
            if stop is not None:
                stop.wait(interval)
            else:
                time.sleep(interval)
    finally:
        activity.close()
