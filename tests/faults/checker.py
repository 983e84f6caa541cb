"""A Jepsen-style checker: what should have arrived against what the portal and outbox hold.

The truth comes from the local data (`tests.e2e.harness.expected_from_demo`, which does not
use the connector's mapping); the evidence from the sandbox's SQLite (dossiers, steps with
their arrival `seq`, every header `application`) and the connector's state store (outbox
and audit trail). Every invariant is checked and every violation reported, not the first:

  (a) every valid source dossier and step is held by the portal, and nothing else is;
  (b) no dossier created twice, no header version applied twice in effect; unchanged
      re-applications (`noop`) and re-sent steps are counted and bounded;
  (c) each dossier's steps arrived in time order and never before its header (a step an
      operator retried from the dead letters may come after later ones, as documented);
  (d) nothing is acknowledged without a parsed success reply: every ACKED item is held and
      the audit trail has a reply covering its key with an acknowledgement;
  (e) every invalid record is a dead letter with its reason, and only those; nothing is
      left in flight, nothing valid is left pending.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from tests.e2e.harness import MAPPING, Expected, expected_from_demo

SHOWN = 40  # violations printed in full; the rest are counted


@dataclass
class Report:
    """The checker's findings: every violation, plus the figures the bounds were applied to."""

    violations: list[str] = field(default_factory=list)
    figures: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def add(self, invariant: str, message: str) -> None:
        self.violations.append(f"({invariant}) {message}")

    def __str__(self) -> str:
        head = f"{len(self.violations)} violation(s); figures {self.figures}"
        lines = self.violations[:SHOWN]
        more = len(self.violations) - len(lines)
        tail = [f"... and {more} more"] if more else []
        return "\n".join([head, *lines, *tail])


@dataclass(frozen=True)
class Bounds:
    """How much harmless repetition a run may show (a crash or an unknown outcome causes some)."""

    noop_applications: int = 0
    duplicate_steps: int = 0


NO_REPEATS = Bounds()


def check(
    demo_db: Path,
    sandbox_db: Path,
    state_store: Path | str,
    *,
    bounds: Bounds = NO_REPEATS,
    mapping: Path = MAPPING,
    expected: Expected | None = None,
    retried: frozenset[str] = frozenset(),
) -> Report:
    """Check invariants (a)–(e) and return the report (never raises on a violation).

    `expected` replaces what the local data says (and `mapping` then goes unused) when the
    portal, not the connector, refuses some records for good; `retried` are the step keys
    an operator sent again from the dead letters, which may arrive after their dossier's
    later steps (never before its header).
    """
    if expected is None:
        expected = expected_from_demo(demo_db, mapping)
    report = Report()
    with _ro(sandbox_db) as portal, read_state(state_store) as state:
        _held(report, expected, portal)
        _once(report, portal, bounds)
        _order(report, portal, retried)
        _acked(report, portal, state)
        _dead(report, expected, state)
    return report


def assert_clean(report: Report) -> None:
    """Fail with every violation printed when the report is not clean."""
    if not report.ok:
        raise AssertionError(f"checker found violations:\n{report}")


@contextmanager
def read_state(store: Path | str) -> Iterator[Any]:
    """The state store, read with plain SQL: a SQLite file read-only, or a URL (PostgreSQL)
    through SQLAlchemy, whose rows unpack as sqlite3's do."""
    if isinstance(store, Path):
        with _ro(store) as db:
            yield db
        return
    engine = create_engine(store, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            yield _PlainSql(conn)
    finally:
        engine.dispose()


@dataclass
class _PlainSql:
    """`execute(sql)` as sqlite3 has it, over a SQLAlchemy connection."""

    conn: Connection

    def execute(self, sql: str) -> Any:
        return self.conn.exec_driver_sql(sql)


@contextmanager
def _ro(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
        yield db


def _held(report: Report, expected: Expected, portal: sqlite3.Connection) -> None:
    dossiers = {
        m: orjson.loads(p) for m, p in portal.execute("SELECT ma_ho_so, payload FROM dossiers")
    }
    steps = {tuple(r) for r in portal.execute("SELECT ma_ho_so, thoi_diem, trang_thai FROM steps")}
    report.figures.update(dossiers=len(dossiers), steps=len(steps))
    for missing in sorted(expected.dossiers - dossiers.keys()):
        report.add("a", f"dossier {missing} is not held by the portal")
    for extra in sorted(dossiers.keys() - expected.dossiers):
        report.add("a", f"dossier {extra} is held but is not a valid source dossier")
    for missing_step in sorted(expected.steps - steps):
        report.add("a", f"step {'|'.join(missing_step)} is not held by the portal")
    for extra_step in sorted(steps - expected.steps):
        report.add("a", f"step {'|'.join(extra_step)} is held but not in the source")
    for code, payload in sorted(dossiers.items()):
        want = expected.status_of.get(code)
        if want is not None and payload.get("TrangThaiHoSo") != want:
            got = payload.get("TrangThaiHoSo")
            report.add("a", f"dossier {code} holds status {got}, the source says {want}")


def _once(report: Report, portal: sqlite3.Connection, bounds: Bounds) -> None:
    rows = portal.execute(
        "SELECT ma_ho_so, hash, is_updating, noop FROM applications ORDER BY seq"
    ).fetchall()
    creates: Counter[str] = Counter()
    applied: Counter[tuple[str, str]] = Counter()
    noop = 0
    for code, digest, updating, is_noop in rows:
        if not updating:
            creates[code] += 1
        if is_noop:
            noop += 1
        else:
            applied[(code, digest)] += 1
    for code, n in sorted(creates.items()):
        if n > 1:
            report.add("b", f"dossier {code} was created {n} times")
    for (code, digest), n in sorted(applied.items()):
        if n > 1:
            report.add("b", f"dossier {code}: version {digest[:12]} was applied {n} times")
    (dup_steps,) = portal.execute(
        "SELECT COALESCE(SUM(received_count - 1), 0) FROM steps"
    ).fetchone()
    report.figures.update(applications=len(rows), noop_applications=noop, duplicate_steps=dup_steps)
    if noop > bounds.noop_applications:
        report.add("b", f"{noop} unchanged re-applications, more than {bounds.noop_applications}")
    if dup_steps > bounds.duplicate_steps:
        report.add("b", f"{dup_steps} re-sent steps, more than {bounds.duplicate_steps}")


def _order(report: Report, portal: sqlite3.Connection, retried: frozenset[str]) -> None:
    first_header = dict(
        portal.execute("SELECT ma_ho_so, MIN(seq) FROM applications GROUP BY ma_ho_so")
    )
    last: dict[str, tuple[str, int]] = {}
    report.figures["late_retried_steps"] = 0
    rows = portal.execute("SELECT ma_ho_so, thoi_diem, trang_thai, seq FROM steps ORDER BY seq")
    for code, at, status, seq in rows:
        header_seq = first_header.get(code)
        if header_seq is None or seq < header_seq:
            report.add("c", f"dossier {code}: step at {at} arrived (seq {seq}) before its header")
        previous = last.get(code)
        if previous is not None and at < previous[0] and f"{code}|{at}|{status}" in retried:
            report.figures["late_retried_steps"] += 1
        elif previous is not None and at < previous[0]:
            report.add(
                "c",
                f"dossier {code}: step at {at} arrived (seq {seq}) after the later step at "
                f"{previous[0]} (seq {previous[1]})",
            )
        if previous is None or at >= previous[0]:
            last[code] = (at, seq)


def _acked(report: Report, portal: sqlite3.Connection, state: sqlite3.Connection) -> None:
    held_dossiers = {r[0] for r in portal.execute("SELECT ma_ho_so FROM dossiers")}
    held_steps = {
        "|".join(r) for r in portal.execute("SELECT ma_ho_so, thoi_diem, trang_thai FROM steps")
    }
    confirmed = _acknowledged_keys(state)
    applied = {
        (code, digest) for code, digest in portal.execute("SELECT ma_ho_so, hash FROM applications")
    }
    acked = state.execute(
        "SELECT id, kind, key, dossier, payload FROM outbox WHERE state = 'acked'"
    )
    count = 0
    for item_id, kind, key, dossier, payload in acked:
        count += 1
        held = dossier in held_dossiers if kind == "header" else key in held_steps
        if not held:
            report.add("d", f"outbox item {item_id} ({kind} {key}) is ACKED but not held")
        if key not in confirmed[kind]:
            report.add("d", f"outbox item {item_id} ({kind} {key}) is ACKED without an ack reply")
        # The very version, not only its dossier: an earlier version's acknowledgement says
        # nothing about this one. The sandbox hashes the canonical JSON the outbox keeps.
        if kind == "header" and (dossier, hashlib.sha256(payload).hexdigest()) not in applied:
            report.add(
                "d", f"outbox item {item_id} (header {key}) is ACKED, a version never applied"
            )
    report.figures["acked_items"] = count


def _acknowledged_keys(state: sqlite3.Connection) -> dict[str, set[str]]:
    """Keys covered by a reply event that acknowledged at least one item, per kind."""
    services = {"DongBoHoSoMC": "header", "CapNhatTienDoHoSoMC": "step"}
    out: dict[str, set[str]] = defaultdict(set)
    rows = state.execute("SELECT service, keys, outcome FROM audit WHERE action = 'reply'")
    for service, keys, outcome in rows:
        if service in services and _acknowledges(outcome):
            out[services[service]].update(orjson.loads(keys))
    return out


def _acknowledges(outcome: str) -> bool:
    return any(part.startswith("ack=") for part in outcome.split(","))


def _dead(report: Report, expected: Expected, state: sqlite3.Connection) -> None:
    dead: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    rows = state.execute(
        "SELECT dossier, kind, state, last_message FROM outbox"
        " WHERE state IN ('invalid', 'rejected', 'parked')"
    )
    for dossier, kind, item_state, message in rows:
        dead[dossier].append((kind, item_state, message))
    report.figures["dead_letters"] = sum(len(v) for v in dead.values())
    for code in sorted(expected.invalid - dead.keys()):
        report.add("e", f"invalid dossier {code} is not in the dead-letter list")
    for code in sorted(dead.keys() - expected.invalid):
        states = sorted({s for _, s, _ in dead[code]})
        report.add("e", f"valid dossier {code} is a dead letter ({', '.join(states)})")
    for code in sorted(expected.invalid & dead.keys()):
        for kind, item_state, message in dead[code]:
            if not message.strip():
                report.add("e", f"dead letter {kind} of {code} ({item_state}) has no reason")
    _leftovers(report, expected, state)


def _leftovers(report: Report, expected: Expected, state: sqlite3.Connection) -> None:
    rows: Any = state.execute(
        "SELECT kind, dossier, state, COUNT(*) FROM outbox"
        " WHERE state IN ('pending', 'in_flight') GROUP BY kind, dossier, state"
    )
    for kind, dossier, item_state, n in rows:
        if item_state == "in_flight":
            report.add("e", f"{n} {kind} item(s) of {dossier} left in flight")
        elif not (kind == "step" and dossier in expected.invalid):
            report.add("e", f"{n} {kind} item(s) of {dossier} still pending")
