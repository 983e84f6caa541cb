"""Local changes made while the daemon runs: the steady-state and outage-drain phases.

A change is either a new dossier (a clone with all its steps) or an existing dossier moving
on (one new step, the header's status and `modified_at` updated). Its time is taken right
after its commit; its acknowledgement is the latest `updated_at` of the outbox rows it
queued, once all of them are acknowledged.
"""

from __future__ import annotations

import contextlib
import http.client
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from bench import measure
from bench.procs import Processes, wait_until
from bench.synth import CHILDREN, Cloner
from connector.demo.schema import COLUMNS, connect, insert_sql, local_text, stamp, vn_now

_STEP_STATUS = "processing"


class Changes:
    """Writes changes to the local system with strictly increasing `modified_at` stamps."""

    def __init__(self, source: Path, cloner: Cloner) -> None:
        self._conn = connect(source)
        self._cloner = cloner
        self._last = ""
        self.steps_added = 0
        row = self._conn.execute("SELECT max(id) FROM dossiers").fetchone()
        self._advance_next = 1
        self._advance_limit = int(row[0] or 0)

    def close(self) -> None:
        self._conn.close()

    def _stamp(self) -> str:
        now = stamp(vn_now())
        if now <= self._last:
            moment = datetime.strptime(self._last, "%Y-%m-%dT%H:%M:%S.%fZ")
            now = (moment + timedelta(microseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self._last = now
        return now

    def new_dossiers(self, count: int) -> list[str]:
        """`count` new valid dossiers in one transaction; returns their numbers."""
        numbers: list[str] = []
        batch: dict[str, list[tuple[object, ...]]] = {t: [] for t in ("dossiers", *CHILDREN)}
        ordinal = 0
        while len(numbers) < count:
            rows, template = self._cloner.clone(ordinal, lambda _j: self._stamp())
            ordinal += 1
            if not template.valid:
                continue
            for table, new in rows.items():
                batch[table].extend(new)
            numbers.append(str(rows["dossiers"][0][1]))
            self.steps_added += len(rows["steps"])
        self._conn.execute("BEGIN IMMEDIATE")
        for table, rows_ in batch.items():
            if rows_:
                self._conn.executemany(insert_sql(table), rows_)
        self._conn.execute("COMMIT")
        return numbers

    def advance(self) -> str:
        """The next valid backfilled dossier gets one new step; returns its number."""
        while self._advance_next <= self._advance_limit:
            dossier_id = self._advance_next
            self._advance_next += 1
            template = self._cloner.templates[(dossier_id - 1) % len(self._cloner.templates)]
            if template.valid and template.children["steps"]:
                return self._advance(dossier_id, template.children["steps"][-1])
        raise RuntimeError("no dossier left to advance")

    def _advance(self, dossier_id: int, model: tuple[object, ...]) -> str:
        at = local_text(vn_now())
        modified = self._stamp()
        step_id = self._cloner.take("steps")
        row = (step_id, dossier_id, *model[2:5], at, "Xem xét, cho ý kiến", _STEP_STATUS,
               model[5], model[9], modified)  # fmt: skip
        assert len(row) == len(COLUMNS["steps"])
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute(insert_sql("steps"), row)
        self._conn.execute(
            "UPDATE dossiers SET status = ?, finished_at = NULL, returned_at = NULL,"
            " modified_at = ? WHERE id = ?",
            (_STEP_STATUS, modified, dossier_id),
        )
        self._conn.execute("COMMIT")
        found = self._conn.execute("SELECT dossier_no FROM dossiers WHERE id = ?", (dossier_id,))
        return str(found.fetchone()[0])


@dataclass(frozen=True, slots=True, kw_only=True)
class Steady:
    changes: int
    acknowledged: int
    rate: float
    latencies: list[float]

    def describe(self) -> str:
        if not self.latencies:
            return f"steady state: {self.changes} changes, none acknowledged"
        ordered = sorted(self.latencies)
        p50 = statistics.median(ordered)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        return (
            f"steady state: {self.changes} local changes at {self.rate:g}/s, "
            f"{self.acknowledged} acknowledged; change → acknowledgement p50 {p50:.2f} s, "
            f"p95 {p95:.2f} s, max {ordered[-1]:.2f} s"
        )


def steady_phase(
    procs: Processes, source: Path, cloner: Cloner, seconds: float, rate: float
) -> Steady:
    """Changes at `rate` per second for `seconds` (new and advancing dossiers alternately)."""
    changes = Changes(source, cloner)
    made: dict[str, float] = {}
    since = time.time()
    try:
        interval = 1.0 / rate
        start = time.monotonic()
        for n in range(max(1, int(seconds * rate))):
            delay = start + n * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            number = changes.new_dossiers(1)[0] if n % 2 == 0 else changes.advance()
            made[number] = time.time()
    finally:
        changes.close()
    acked: dict[str, float] = {}

    def all_acked() -> bool:
        acked.update(measure.ack_times(procs.state_db, list(made), since))
        return len(acked) >= len(made)

    with contextlib.suppress(TimeoutError):  # reported: fewer acknowledged than made
        wait_until(all_acked, timeout=120, what="the steady-state changes", every=1.0)
    latencies = [acked[d] - made[d] for d in made if d in acked]
    return Steady(changes=len(made), acknowledged=len(acked), rate=rate, latencies=latencies)


@dataclass(frozen=True, slots=True, kw_only=True)
class Drain:
    times: list[float]  # acknowledgement times after the outage, sorted
    outage: float

    def rate(self, skip: int = 0) -> float:
        """Items per second over the acknowledgements after the first `skip`."""
        times = self.times[skip:]
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        return (len(times) - 1) / span if span > 0 else 0.0

    def describe(self, limit: float) -> str:
        burst = int(limit)  # the bucket starts full: one second's worth goes at once
        span = self.times[-1] - self.times[0] if len(self.times) > 1 else 0.0
        overall, steady = self.rate(), self.rate(burst)
        return (
            f"outage of {self.outage:g} s with a backlog queued, then drain at "
            f"max_items_per_second={limit:g}: {len(self.times)} items in {span:.1f} s = "
            f"{overall:.0f} items/s overall, {steady:.0f} items/s after the first burst "
            f"({steady / limit:.2f} × the limit)"
        )


def outage(port: int, seconds: float) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/_sandbox/outage", body=orjson.dumps({"seconds": seconds}))
        reply = conn.getresponse()
        reply.read()
    finally:
        conn.close()
    if reply.status != 200:
        raise RuntimeError(f"outage request: HTTP {reply.status}")


def drain_phase(
    procs: Processes, config: Path, source: Path, cloner: Cloner, dossiers: int, seconds: float
) -> Drain:
    """Restart the daemon with a rate limit, queue a backlog during an outage, time the drain."""
    outage(procs.sandbox_port, seconds)
    ends = time.time() + seconds
    changes = Changes(source, cloner)
    try:
        numbers = changes.new_dossiers(dossiers)
    finally:
        changes.close()
    expected = len(numbers) + changes.steps_added
    since = time.time() - 1.0
    daemon = procs.start_daemon(config)
    try:
        wait_until(
            lambda: len(measure.acked_between(procs.state_db, since, time.time() + 1)) >= expected,
            timeout=600,
            what="the backlog to drain",
            every=1.0,
        )
    finally:
        procs.stop(daemon)
    times = [t for t in measure.acked_between(procs.state_db, since, time.time()) if t >= ends]
    return Drain(times=times, outage=seconds)
