"""Where the connector's CPU goes: each stage of a backfill timed on its own, in one process.

`backfill.py` gives the daemon's CPU per dossier as a whole and `floor.py` the least the
outbox's SQL could cost; this splits the first into the stages the code is built from. The
stages run one after the other in this process, so each one's CPU time is its own:

- pull, page by page as `PullJob` does it: reading the local system (`Source.pull`),
  mapping and validating (`map_records`), deciding against the store
  (`Store.preview_ingest`: the look-ups and the planner), and the ingest's writes
  (`Store.ingest` less the preview, which it repeats: insert, retire, cursor, commit);
- push, `PushJob` rounds against the sandbox portal on 127.0.0.1 until nothing is due: the
  store's claims, settles and audit records, the REST client (encoding, HTTP, reading the
  replies; the sandbox's own CPU is another process's), and the job's own work (batching,
  verdicts, metrics, the event loop and the worker thread).

Unlike the daemon, nothing overlaps: the pull ends before the push starts, and there is no
scheduler or status server. The sum is therefore below `backfill.py`'s figure.

    python bench/stages.py --dossiers 20000

Prints CPU ms per dossier for each stage; the last line has them all.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.inprocess import options, set_up
from bench.synth import Generated
from connector.app import App
from connector.core.records import Kind, State
from connector.jobs.pull import map_records

#: CPU seconds per stage.
Spent = defaultdict[str, float]

PULL = ("source", "mapping", "look-up and plan", "ingest writes")
PUSH = ("claim", "settle", "audit", "REST client", "push job")
#: Each stage's name on the last line.
SHORT = dict(zip(PULL + PUSH, ("source", "mapping", "plan", "write", "claim", "settle", "audit",
                               "rest", "job"), strict=True))  # fmt: skip
#: A push is over once this many rounds in a row found nothing due.
IDLE_ROUNDS = 20


class Timed:
    """Delegates to `inner`, adding the CPU time of each call of the methods named in `stages`
    to `spent[stage]`: the calling thread's for a plain call (the push job runs the store's
    calls in a worker thread), the process's for a coroutine (awaited on the event loop)."""

    def __init__(self, inner: Any, stages: Mapping[str, str], spent: Spent) -> None:
        self._inner, self._stages, self._spent = inner, stages, spent

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)
        stage = self._stages.get(name)
        if stage is None:
            return method
        if inspect.iscoroutinefunction(method):
            return self._timed_async(method, stage)
        return self._timed(method, stage)

    def _timed(self, method: Callable[..., Any], stage: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                self._spent[stage] += time.thread_time() - start

        return call

    def _timed_async(self, method: Callable[..., Any], stage: str) -> Callable[..., Any]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return await method(*args, **kwargs)
            finally:
                self._spent[stage] += time.process_time() - start

        return call


def pull(app: App, spent: Spent) -> None:
    """Every stream drained page by page, each call timed as its stage."""
    page_size = app.settings.source.page_size
    for stream in app.source.streams():
        while True:
            cursor = app.store.cursor(stream)
            start = time.process_time()
            page = app.source.pull(stream, cursor, page_size)
            spent["source"] += time.process_time() - start
            if not page.records:
                break
            start = time.process_time()
            mapped = map_records(app.mapping, stream, page.records)
            spent["mapping"] += time.process_time() - start
            start = time.process_time()
            app.store.preview_ingest(mapped, now=app.clock.now())
            planned = time.process_time() - start
            start = time.process_time()
            app.store.ingest(stream, mapped, page.cursor, now=app.clock.now())
            spent["look-up and plan"] += planned
            spent["ingest writes"] += time.process_time() - start - planned
            if len(page.records) < page_size:
                break


def push(app: App, spent: Spent) -> int:
    """`PushJob` rounds until nothing is due; returns the items sent."""
    portal = app.portal
    app.store = Timed(app.store, {"claim": "claim", "settle": "settle", "audit": "audit"}, spent)
    app.portal = Timed(portal, {"push_headers": "REST client", "push_steps": "REST client"}, spent)
    job = app.push_job()

    async def rounds() -> int:
        sent, idle = 0, 0
        try:
            while idle < IDLE_ROUNDS:
                done = await job.round()
                sent += done
                idle = 0 if done else idle + 1
        finally:
            await portal.aclose()
        return sent

    start = time.process_time()
    sent = asyncio.run(rounds())
    total = time.process_time() - start
    spent["push job"] = total - sum(spent[stage] for stage in PUSH[:-1])
    return sent


def check(app: App, generated: Generated) -> None:
    """Every valid dossier and step was acknowledged, or the figures measure other work."""
    counts = app.store.counts()
    acked = (counts.get((Kind.HEADER, State.ACKED), 0), counts.get((Kind.STEP, State.ACKED), 0))
    if acked != (generated.valid_dossiers, generated.valid_steps):
        raise RuntimeError(
            f"{acked[0]} dossiers and {acked[1]} steps acknowledged of "
            f"{generated.valid_dossiers} and {generated.valid_steps}"
        )


def report(spent: Spent, dossiers: int) -> None:
    def ms(seconds: float) -> float:
        return 1000 * seconds / dossiers

    for group, stages in (("pull", PULL), ("push", PUSH)):
        parts = ", ".join(f"{stage} {ms(spent[stage]):.3f}" for stage in stages)
        subtotal = ms(sum(spent[stage] for stage in stages))
        print(f"{group}: {parts}; {subtotal:.3f} CPU ms per dossier")
    fields = " ".join(f"{SHORT[stage]}_ms={ms(spent[stage]):.3f}" for stage in PULL + PUSH)
    print(f"{fields} total_ms={ms(sum(spent.values())):.3f}")


def main(argv: list[str] | None = None) -> int:
    args = options(__doc__.splitlines()[0]).parse_args(argv)
    with set_up(args, "connector-stages-") as bench:
        spent: Spent = defaultdict(float)
        pull(bench.app, spent)
        sent = push(bench.app, spent)
        check(bench.app, bench.generated)
        generated = bench.generated
        print(
            f"{generated.valid_dossiers} valid dossiers of {generated.dossiers}, {sent} items sent"
        )
        report(spent, generated.valid_dossiers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
