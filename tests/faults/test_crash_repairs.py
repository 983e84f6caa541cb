"""SIGKILL the daemon while the portal refuses records, items park, and an operator repairs.

The crash loop (`test_crash_loop.py`) only meets records the connector itself refuses. Here
the portal refuses valid-looking ones too: the sandbox's procedure catalogue leaves out
three procedures the demo uses, so it answers their dossiers with "MaTTHC: … is not in the
procedure catalogue" (code 400). And every failed call parks what it carried
(`delivery.max_attempts = 1`, no in-call retries), so the portal's faults park items. Then,
with the daemon still being killed, the operator repairs:

  - "fixed": those dossiers are moved to an accepted procedure in the local system; half get
    a new `modified_at` (the pull sends them again), half do not and are retried by id
    (`connector outbox retry ID…` re-reads them);
  - "lifted": the portal's catalogue gets their procedure back (the sandbox restarts), and
    `connector outbox retry --code 400` sends them again;
  - parked items are retried with `connector outbox retry --code parked`;
  - "refused": never repaired; they are retried with the rest and refused again.

Then faults stop, the last dead letters are retried once more, and the checker runs with
the refused dossiers counted as dead letters: they must be rejected with the portal's
reason, and every repaired one held by the portal (at its fixed version) and no dead letter.
The seed is printed; `CONNECTOR_CRASH_SEED=<seed>` replays the kill moments, the groups and
the sandbox's faults.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.harness import MAPPING, Expected, Stack, expected_from_demo, wait_until
from tests.faults import checker
from tests.faults.checker import Bounds, Report, assert_clean
from tests.faults.workload import drained

pytestmark = pytest.mark.e2e

SOAK = os.environ.get("CONNECTOR_SOAK") == "1"  # `make soak`: a longer run
DOSSIERS = 3_000 if SOAK else 300
HEADER_BATCH, STEP_BATCH = 20, 80
BACKFILL_KILLS = 20 if SOAK else 3
CROSSWALKS = MAPPING.parent / "demo"
REFUSAL = "is not in the procedure catalogue"
DEAD = ("invalid", "rejected", "parked")
FAULTS = (
    "--fault-rate", "0.15",
    "--faults", "503,reset,429,slow",
    "--slow-seconds", "0.3",
    "--retry-after", "0.2",
)  # fmt: skip


def _seed() -> int:
    given = os.environ.get("CONNECTOR_CRASH_SEED")
    return int(given) if given else random.SystemRandom().randrange(1 << 31)


@dataclass(frozen=True)
class Groups:
    """The valid dossiers whose procedure the portal's catalogue leaves out, by their fate."""

    codes: dict[str, str]  # role -> local procedure code ("lifted", "refused", "fixed", "to")
    national: dict[str, str]  # local procedure code -> national code
    lifted: frozenset[str]
    refused: frozenset[str]
    bumped: frozenset[str]  # fixed locally with a new modified_at: the pull sends them again
    unbumped: frozenset[str]  # fixed locally, modified_at kept: retried by id

    @property
    def fixed(self) -> frozenset[str]:
        return self.bumped | self.unbumped

    @property
    def withheld(self) -> frozenset[str]:
        return self.lifted | self.refused | self.fixed


@dataclass
class Run:
    """What the run did that the check needs: kills, portal restarts, faults, retried steps."""

    seed: int
    kills: int = 0
    portal_restarts: int = 0
    faults: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    retried_steps: set[str] = field(default_factory=set)


def test_crash_repairs_deliver_the_repaired_and_keep_the_refused(tmp_path: Path) -> None:
    """Killed through refusals, parking and the operator's repairs, the daemon ends with every
    repaired record held once, in order, and exactly the unrepaired ones as dead letters."""
    from connector.demo.generate import init_demo

    seed = _seed()
    rng = random.Random(seed)
    run = Run(seed=seed)
    stack = Stack(tmp=tmp_path, header_batch=HEADER_BATCH, step_batch=STEP_BATCH)
    init_demo(stack.demo_db, CROSSWALKS, dossiers=DOSSIERS, seed=seed % 997)
    stack.write_config(max_attempts="1", attempts="1")
    groups = _groups(stack.demo_db, rng)
    print(f"crash repairs: seed={seed} dossiers={DOSSIERS} groups={_sizes(groups)}", flush=True)
    try:
        portal = _start_portal(stack, groups, seed, lifted=False)
        _backfill(stack, groups, rng, run)
        _repair(stack, groups, rng, run, portal)
        _finish(stack, groups, run)
    finally:
        stack.stop_all()
    _verify(stack, groups, run)


# --- the groups and the portal's catalogue


def _groups(demo_db: Path, rng: random.Random) -> Groups:
    """Four procedures with a few valid dossiers each: three the portal will not know, and
    the accepted one the "fixed" dossiers move to."""
    national = _crosswalk()
    valid = expected_from_demo(demo_db).dossiers
    with closing(sqlite3.connect(demo_db)) as db:
        rows = db.execute("SELECT dossier_no, procedure_code FROM dossiers ORDER BY id").fetchall()
    by_code: dict[str, list[str]] = defaultdict(list)
    for number, code in rows:
        if number in valid:
            by_code[code].append(number)
    candidates = sorted(code for code, numbers in by_code.items() if len(numbers) >= 4)
    lifted, refused, fixed, to = rng.sample(candidates, 4)
    moved = by_code[fixed]
    return Groups(
        codes={"lifted": lifted, "refused": refused, "fixed": fixed, "to": to},
        national=national,
        lifted=frozenset(by_code[lifted]),
        refused=frozenset(by_code[refused]),
        bumped=frozenset(moved[0::2]),
        unbumped=frozenset(moved[1::2]),
    )


def _crosswalk() -> dict[str, str]:
    with (CROSSWALKS / "procedures.csv").open(encoding="utf-8") as f:
        return {row["local_code"]: row["national_code"] for row in csv.DictReader(f)}


def _sizes(groups: Groups) -> dict[str, int]:
    return {
        "lifted": len(groups.lifted),
        "refused": len(groups.refused),
        "fixed-bumped": len(groups.bumped),
        "fixed-retried": len(groups.unbumped),
    }


def _catalogue(stack: Stack, groups: Groups, *, lifted: bool) -> Path:
    """The portal's procedure catalogue: the demo's, less the withheld procedures."""
    out = ["refused", "fixed"] if lifted else ["lifted", "refused", "fixed"]
    left_out = {groups.national[groups.codes[role]] for role in out}
    source = CROSSWALKS / "procedures.csv"
    with source.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or ())
        rows = [row for row in reader if row["national_code"] not in left_out]
    path = stack.tmp / f"procedures-{'lifted' if lifted else 'withheld'}.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _start_portal(
    stack: Stack, groups: Groups, seed: int, *, lifted: bool
) -> subprocess.Popen[bytes]:
    catalogue = _catalogue(stack, groups, lifted=lifted)
    return stack.start_sandbox(
        *FAULTS,
        "--seed", str(seed),
        "--procedures-csv", str(catalogue),
        "--agencies-csv", str(CROSSWALKS / "agencies.csv"),
        catalogue=False,
    )  # fmt: skip


def _restart_portal(
    stack: Stack, groups: Groups, run: Run, portal: subprocess.Popen[bytes]
) -> subprocess.Popen[bytes]:
    """Stop the sandbox (counting the faults it injected) and start it with the lifted
    catalogue; the daemon meanwhile meets a portal that is not there."""
    _count_faults(stack, run)
    portal.send_signal(signal.SIGTERM)
    portal.wait(timeout=30)
    run.portal_restarts += 1
    return _start_portal(stack, groups, run.seed + 1, lifted=True)


def _count_faults(stack: Stack, run: Run) -> None:
    for kind, n in stack.stats()["faults"].items():
        run.faults[kind] += int(n)


# --- the phases


def _backfill(stack: Stack, groups: Groups, rng: random.Random, run: Run) -> None:
    """Kill the daemon mid-backfill a few times, then let it refuse every withheld dossier."""
    for _ in range(BACKFILL_KILLS):
        daemon = stack.start_daemon()
        wait_until(
            _moved_on(stack, groups.withheld),
            timeout=60,
            interval=0.05,
            what=f"delivery before kill {run.kills + 1} (seed {run.seed})",
        )
        _kill_after(daemon, rng.uniform(0.0, 0.6), stack, run)  # a backfill takes ~2 s
    daemon = stack.start_daemon()
    wait_until(
        lambda: _all_dead(stack, groups.withheld),
        timeout=60,
        interval=0.2,
        what=f"every withheld dossier to be refused or parked (seed {run.seed})",
    )
    _kill_after(daemon, rng.uniform(0.0, 0.5), stack, run)


def _moved_on(stack: Stack, withheld: frozenset[str]) -> Callable[[], bool]:
    """A test that the portal received something since now, or that the backfill is over
    (every withheld dossier refused or parked): time for a kill mid-delivery."""
    before = _progress(stack)
    return lambda: _progress(stack) > before or _all_dead(stack, withheld)


def _repair(
    stack: Stack, groups: Groups, rng: random.Random, run: Run, portal: subprocess.Popen[bytes]
) -> None:
    """The operator's repairs, each while a daemon runs that is killed at a random moment."""
    _around_a_kill(stack, rng, run, lambda: _fix_locally(stack.demo_db, groups))

    def retry_by_id() -> None:
        _retry_killed(stack, run, rng, *_dead_ids(stack, groups.unbumped))
        _retry(stack, run, *_dead_ids(stack, groups.unbumped))

    _around_a_kill(stack, rng, run, retry_by_id)

    def lift() -> None:
        _restart_portal(stack, groups, run, portal)
        _retry(stack, run, "--code", "400")

    _around_a_kill(stack, rng, run, lift)
    _around_a_kill(stack, rng, run, lambda: _retry(stack, run, "--code", "parked"))


def _finish(stack: Stack, groups: Groups, run: Run) -> None:
    """Faults off, one last round of retries, then wait for the outbox to drain."""
    url = f"{stack.sandbox_url}/_sandbox/faults"
    reply = httpx.post(url, json={"fault_rate": 0.0}, timeout=10, trust_env=False)
    reply.raise_for_status()
    _count_faults(stack, run)  # once they are off: every fault injected is counted
    stack.start_daemon()
    invalid = _expected(stack.demo_db, groups).invalid
    for code in ("parked", "400"):
        wait_until(
            lambda: _quiet(stack.state_db),
            timeout=60,
            interval=0.3,
            what=f"the outbox to settle before retrying {code} (seed {run.seed})",
        )
        _retry(stack, run, "--code", code)
    wait_until(
        lambda: drained(stack.state_db, invalid) and _repaired(stack, groups) and _no_parked(stack),
        timeout=90,
        interval=0.5,
        what=f"the outbox to drain and the repairs to reach the portal (seed {run.seed})",
    )


def _around_a_kill(stack: Stack, rng: random.Random, run: Run, action: Callable[[], None]) -> None:
    """Start the daemon, and once it serves its status start `action` beside it; kill the
    daemon a random moment later, often while the repair runs or is being delivered."""
    daemon = stack.start_daemon()
    wait_until(
        lambda: stack.status() is not None,
        timeout=30,
        interval=0.05,
        what=f"the daemon to start before kill {run.kills + 1} (seed {run.seed})",
    )
    failed: list[BaseException] = []
    worker = threading.Thread(target=_catching(action, failed), daemon=True)
    worker.start()
    _kill_after(daemon, rng.uniform(0.0, 2.5), stack, run)
    worker.join(timeout=120)
    assert not worker.is_alive(), f"seed {run.seed}: a repair did not finish in 120 s"
    if failed:
        raise failed[0]


def _catching(action: Callable[[], None], failed: list[BaseException]) -> Callable[[], None]:
    """`action`, keeping what it raised for the test's thread to raise."""

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # re-raised by the test's thread
            failed.append(exc)

    return run


def _kill_after(daemon: subprocess.Popen[bytes], seconds: float, stack: Stack, run: Run) -> None:
    time.sleep(seconds)
    daemon.send_signal(signal.SIGKILL)
    daemon.wait(timeout=10)
    run.kills += 1
    print(f"kill {run.kills}: {_held(stack)}; outbox {_states(stack.state_db)}", flush=True)


def _held(stack: Stack) -> str:
    """What the portal holds, in words (it may be restarting, in the lifting repair)."""
    try:
        held = stack.stats()
    except httpx.HTTPError:
        return "portal restarting"
    return f"portal holds {held['dossiers']} dossiers, {held['steps']} steps"


# --- repairs


def _fix_locally(demo_db: Path, groups: Groups) -> None:
    """Move the "fixed" dossiers to an accepted procedure in the local system; only the
    bumped ones get a new `modified_at`, so only they are pulled again."""
    from connector.demo.schema import after, connect

    to = groups.codes["to"]
    with closing(connect(demo_db)) as db:
        (last,) = db.execute(
            "SELECT max(m) FROM (SELECT max(modified_at) AS m FROM dossiers"
            " UNION ALL SELECT max(modified_at) FROM steps)"
        ).fetchone()
        db.execute("BEGIN IMMEDIATE")
        for number in sorted(groups.unbumped):
            db.execute("UPDATE dossiers SET procedure_code = ? WHERE dossier_no = ?", (to, number))
        for number in sorted(groups.bumped):
            last = after(last)
            db.execute(
                "UPDATE dossiers SET procedure_code = ?, modified_at = ? WHERE dossier_no = ?",
                (to, last, number),
            )
        db.execute("COMMIT")
    print(f"fixed {len(groups.fixed)} dossiers locally (procedure {to})", flush=True)


def _retry(stack: Stack, run: Run, *args: str) -> None:
    """`connector outbox retry ARGS`; the dead steps it may send go late on purpose (their
    later steps went on without them), so the order check lets them."""
    if not args:
        return
    run.retried_steps |= _dead_step_keys(stack.state_db, args)
    done = stack.cli("outbox", "retry", *args, "--config", str(stack.config), check=False)
    actions = Counter(line.split(": ")[1] for line in done.stdout.splitlines() if ": " in line)
    print(f"outbox retry {' '.join(args[:3])}: {dict(actions)}, exit {done.returncode}")
    assert done.returncode == 0, f"seed {run.seed}: retry failed:\n{done.stdout}\n{done.stderr}"


def _retry_killed(stack: Stack, run: Run, rng: random.Random, *args: str) -> None:
    """`connector outbox retry ARGS` SIGKILLed at a random moment, often mid-way: each dead
    letter it reached must be queued again or still dead, never retired with nothing queued
    (the retry that follows sends what it left)."""
    if not args:
        return
    run.retried_steps |= _dead_step_keys(stack.state_db, args)
    command = [sys.executable, "-m", "connector", "outbox", "retry", *args]
    retry = subprocess.Popen(
        [*command, "--config", str(stack.config)],
        env=stack.env(),
        cwd=stack.tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(rng.uniform(0.5, 2.0))  # the command takes about a second to start and run
    retry.send_signal(signal.SIGKILL)
    retry.wait(timeout=10)
    print(f"outbox retry {' '.join(args[:3])}: killed (exit {retry.returncode})", flush=True)
    lost = sorted(_without_header(stack.state_db, [int(a) for a in args]))
    assert not lost, f"seed {run.seed}: a killed retry retired {lost} with nothing queued"


# --- reading the state store and the portal


def _ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def _rows(path: Path, sql: str, params: Iterable[Any] = ()) -> list[Any]:
    """Rows of a query on a read-only connection; none while the file is being created."""
    try:
        with closing(_ro(path)) as db:
            return db.execute(sql, tuple(params)).fetchall()
    except sqlite3.Error:
        return []


def _progress(stack: Stack) -> int:
    stats = stack.stats()
    return int(stats["dossiers"]) + int(stats["steps"])


def _states(state_db: Path) -> dict[str, int]:
    return dict(_rows(state_db, "SELECT state, count(*) FROM outbox GROUP BY state"))


def _all_dead(stack: Stack, dossiers: frozenset[str]) -> bool:
    """Every one of `dossiers` has a header refused by the portal or parked."""
    rows = _rows(
        stack.state_db,
        "SELECT DISTINCT dossier FROM outbox WHERE kind = 'header'"
        " AND state IN ('rejected', 'parked')",
    )
    return dossiers <= {dossier for (dossier,) in rows}


def _dead_ids(stack: Stack, dossiers: frozenset[str]) -> list[str]:
    rows = _rows(
        stack.state_db,
        "SELECT id, dossier FROM outbox WHERE kind = 'header' AND state IN ('rejected', 'parked')",
    )
    return [str(item_id) for item_id, dossier in rows if dossier in dossiers]


def _dead_step_keys(state_db: Path, args: tuple[str, ...]) -> set[str]:
    """The dead steps a retry with `args` (ids, or `--code CODE`) may send again."""
    query = "SELECT id, key, last_code FROM outbox WHERE kind = 'step'"
    rows = _rows(state_db, query + " AND state IN ('rejected', 'parked')")
    if args[0] == "--code":
        return {key for _, key, code in rows if code == args[1]}
    return {key for item_id, key, _ in rows if str(item_id) in args}


def _without_header(state_db: Path, item_ids: list[int]) -> set[str]:
    """Dossiers of `item_ids` left with no header to send or sent: none pending, in flight,
    acknowledged or dead, only superseded ones."""
    marks = ",".join("?" * len(item_ids))
    with closing(_ro(state_db)) as db:  # not `_rows`: a failed read must fail the check
        dossiers = db.execute(f"SELECT dossier FROM outbox WHERE id IN ({marks})", item_ids)
        found = [dossier for (dossier,) in dossiers]
        assert len(found) == len(item_ids), f"dead letters {item_ids} not all in the outbox"
        query = "SELECT state FROM outbox WHERE kind = 'header' AND dossier = ?"
        return {
            dossier
            for dossier in found
            if all(state == "superseded" for (state,) in db.execute(query, [dossier]))
        }


def _no_parked(stack: Stack) -> bool:
    return not _rows(stack.state_db, "SELECT 1 FROM outbox WHERE state = 'parked' LIMIT 1")


def _quiet(state_db: Path) -> bool:
    """Nothing pending but steps of dossiers whose header is a dead letter and never went."""
    rows = _rows(state_db, "SELECT kind, dossier, state FROM outbox")
    dead_headers = {d for kind, d, state in rows if kind == "header" and state in DEAD}
    acked = {d for kind, d, state in rows if kind == "header" and state == "acked"}
    blocked = dead_headers - acked
    return all(
        kind == "step" and dossier in blocked
        for kind, dossier, state in rows
        if state in ("pending", "in_flight")
    )


def _held_procedures(stack: Stack) -> dict[str, str]:
    """MaTTHC of every dossier the portal holds."""
    rows = _rows(stack.sandbox_db, "SELECT ma_ho_so, payload FROM dossiers")
    return {code: str(orjson.loads(payload).get("MaTTHC")) for code, payload in rows}


def _repaired(stack: Stack, groups: Groups) -> bool:
    """The portal holds every lifted dossier, and every fixed one at its fixed procedure."""
    held = _held_procedures(stack)
    to = groups.national[groups.codes["to"]]
    return groups.lifted <= held.keys() and all(held.get(n) == to for n in groups.fixed)


# --- the check


def _expected(demo_db: Path, groups: Groups) -> Expected:
    """What the source says must arrive, less the dossiers the portal refuses for good:
    those count as invalid (dead letters, their steps left waiting)."""
    source = expected_from_demo(demo_db)
    refused = groups.refused
    return Expected(
        dossiers=source.dossiers - refused,
        invalid=source.invalid | refused,
        steps=frozenset(s for s in source.steps if s[0] not in refused),
        status_of={k: v for k, v in source.status_of.items() if k not in refused},
    )


def _verify(stack: Stack, groups: Groups, run: Run) -> None:
    repeats = run.kills + run.portal_restarts + run.faults.get("reset", 0)
    bounds = Bounds(noop_applications=repeats * HEADER_BATCH, duplicate_steps=repeats * STEP_BATCH)
    report = _check(stack, groups, run, bounds)
    print(
        f"crash repairs: seed={run.seed} kills={run.kills} faults={dict(run.faults)} "
        f"retried steps={len(run.retried_steps)} figures={report.figures}",
        flush=True,
    )
    assert report.figures["dossiers"] > 0
    if not report.ok:
        raise AssertionError(
            f"seed {run.seed}: replay with CONNECTOR_CRASH_SEED={run.seed}\n{report}"
        )
    assert_clean(report)


def _check(stack: Stack, groups: Groups, run: Run, bounds: Bounds) -> Report:
    """The checker's invariants (a)–(e) against the adapted expectation, letting a retried
    dead step arrive after its later steps, plus the repairs' own checks."""
    report = checker.check(
        stack.demo_db,
        stack.sandbox_db,
        stack.state_db,
        bounds=bounds,
        expected=_expected(stack.demo_db, groups),
        retried=frozenset(run.retried_steps),
    )
    with closing(_ro(stack.state_db)) as state:
        _refused_with_reason(report, groups, state)
    _fixed_versions(report, stack, groups)
    return report


def _refused_with_reason(report: Report, groups: Groups, state: sqlite3.Connection) -> None:
    """(e) the never-repaired dossiers are dead letters with the portal's own reason: the
    header rejected, code 400, the catalogue named; none left parked."""
    rows = state.execute(
        "SELECT dossier, state, last_code, last_message FROM outbox WHERE kind = 'header'"
        " AND state IN ('rejected', 'parked')"
    ).fetchall()
    found: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for dossier, item_state, code, message in rows:
        found[dossier].append((item_state, code, message))
    national = groups.national[groups.codes["refused"]]
    for dossier in sorted(groups.refused):
        letters = found.get(dossier, [])
        if not letters:
            report.add("e", f"refused dossier {dossier} has no rejected header")
        for item_state, code, message in letters:
            if item_state != "rejected" or code != "400" or f"{national} {REFUSAL}" not in message:
                report.add(
                    "e",
                    f"refused dossier {dossier}: dead letter {item_state} {code} {message!r}, "
                    f"not the portal's refusal of {national}",
                )


def _fixed_versions(report: Report, stack: Stack, groups: Groups) -> None:
    """(a) the portal holds each repaired dossier at its repaired version: the fixed ones
    under their new procedure, the lifted ones under their own."""
    held = _held_procedures(stack)
    want = {n: groups.national[groups.codes["to"]] for n in groups.fixed}
    want |= {n: groups.national[groups.codes["lifted"]] for n in groups.lifted}
    for dossier, code in sorted(want.items()):
        got = held.get(dossier)
        if got != code:
            report.add("a", f"repaired dossier {dossier} holds MaTTHC {got}, not {code}")
