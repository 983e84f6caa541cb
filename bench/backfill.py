"""Backfill benchmark: a generated local system pushed to the sandbox portal by the daemon.

    python bench/backfill.py --dossiers 100000

Phases, all against real subprocesses on 127.0.0.1 (`connector sandbox`, `connector run`):

1. the per-dossier pattern (`bench/baseline.py`) over a sample, for the ratio;
2. the backfill: from the first pull to the last acknowledgement, with the daemon's CPU
   time (/proc/<pid>/stat) and peak resident set (VmHWM);
3. steady state: local changes at a fixed rate, latency from each change to its
   acknowledgement (the outbox's `updated_at` of its acknowledged rows);
4. outage and drain: the daemon restarted with `portal.max_items_per_second`, a sandbox
   outage while a backlog is queued, then the drain rate.

The last line is `dossiers_per_s=… steps_per_s=… peak_rss_mb=… ratio_vs_per_dossier=…`.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import measure
from bench.baseline import run_baseline
from bench.changes import drain_phase, steady_phase
from bench.procs import Processes, Tuning, cpu_seconds, memory_kb, wait_until
from bench.synth import Generated, generate


@dataclass(frozen=True, slots=True, kw_only=True)
class Backfill:
    dossiers: int
    steps: int
    seconds: float
    cpu_seconds: float
    portal_cpu_seconds: float
    peak_rss_kb: int

    @property
    def dossiers_per_s(self) -> float:
        return self.dossiers / self.seconds if self.seconds > 0 else 0.0

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_dossier(self) -> float:
        return 1000.0 * self.cpu_seconds / self.dossiers if self.dossiers else 0.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dossiers", type=int, default=100_000)
    p.add_argument("--baseline-dossiers", type=int, default=2000)
    p.add_argument("--steady-seconds", type=float, default=20.0)
    p.add_argument("--steady-rate", type=float, default=20.0, help="local changes per second")
    p.add_argument("--outage-seconds", type=float, default=5.0)
    p.add_argument("--drain-rate", type=float, default=2000.0, help="max_items_per_second")
    p.add_argument("--drain-dossiers", type=int, default=3000)
    p.add_argument("--template-dossiers", type=int, default=2000, help="made by the demo")
    p.add_argument("--timeout", type=float, default=3600.0, help="backfill time limit, s")
    p.add_argument("--workdir", type=Path, default=None, help="kept when given")
    p.add_argument("--page-size", type=int, default=Tuning.page_size)
    p.add_argument("--header-batch", type=int, default=Tuning.header_batch)
    p.add_argument("--step-batch", type=int, default=Tuning.step_batch)
    p.add_argument("--skip", default="", help="comma list of phases to skip: baseline,steady,drain")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    keep = args.workdir is not None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="connector-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    procs = Processes(workdir=workdir, password=secrets.token_urlsafe(16))
    try:
        return run(args, procs)
    finally:
        procs.stop_all()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def say(text: str) -> None:
    print(text, flush=True)


def run(args: argparse.Namespace, procs: Processes) -> int:
    skip = set(filter(None, args.skip.split(",")))
    tuning = Tuning(
        page_size=args.page_size,
        header_batch=args.header_batch,
        step_batch=args.step_batch,
    )
    started = time.monotonic()
    source = procs.workdir / "source.db"
    generated, cloner = generate(
        source, args.dossiers, template_dossiers=args.template_dossiers, workdir=procs.workdir
    )
    say(
        f"generated {generated.dossiers} dossiers, {generated.steps} steps "
        f"({generated.valid_dossiers} valid dossiers with {generated.valid_steps} steps) "
        f"in {time.monotonic() - started:.1f} s"
    )
    sandbox = procs.start_sandbox()
    baseline_rate = 0.0
    if "baseline" not in skip:
        base = run_baseline(procs, cloner, args.baseline_dossiers)
        baseline_rate = base.dossiers_per_s
        say(
            f"per-dossier pattern: {base.dossiers} dossiers, {base.steps} steps, "
            f"{base.requests} requests in {base.seconds:.1f} s: "
            f"{base.dossiers_per_s:.1f} dossiers/s, {base.steps_per_s:.1f} steps/s"
        )
    config = procs.write_config(source, tuning)
    say(f"daemon tuning: {tuning.describe()}")
    result = backfill(procs, config, generated, args.timeout, sandbox.pid)
    say(
        f"backfill: {result.dossiers} dossiers and {result.steps} steps in "
        f"{result.seconds:.1f} s: {result.dossiers_per_s:.0f} dossiers/s, "
        f"{result.steps_per_s:.0f} steps/s"
    )
    say(
        f"daemon: {result.cpu_seconds:.1f} CPU s = {result.cpu_ms_per_dossier * 1000:.0f} CPU s"
        f" per 1,000 dossiers ({result.cpu_ms_per_dossier:.3f} CPU ms per dossier); "
        f"peak RSS {result.peak_rss_kb / 1024:.1f} MB; the sandbox portal used "
        f"{result.portal_cpu_seconds:.1f} CPU s meanwhile"
    )
    say(f"portal checks: {measure.duplicates(procs.sandbox_db)}")
    daemon = procs.procs[-1]
    if "steady" not in skip:
        steady = steady_phase(procs, source, cloner, args.steady_seconds, args.steady_rate)
        say(steady.describe())
    procs.stop(daemon)
    if "drain" not in skip:
        drain_tuning = replace(tuning, rate=args.drain_rate)
        config = procs.write_config(source, drain_tuning, name="config-drain.toml")
        drain = drain_phase(procs, config, source, cloner, args.drain_dossiers, args.outage_seconds)
        say(drain.describe(args.drain_rate))
    # Without the baseline phase there is no ratio to give: "n/a", never a made-up 0.0.
    ratio = f"{result.dossiers_per_s / baseline_rate:.1f}" if baseline_rate else "n/a"
    say(
        f"dossiers_per_s={result.dossiers_per_s:.0f} steps_per_s={result.steps_per_s:.0f} "
        f"peak_rss_mb={result.peak_rss_kb / 1024:.1f} ratio_vs_per_dossier={ratio}"
    )
    return 0


def backfill(
    procs: Processes, config: Path, generated: Generated, timeout: float, sandbox_pid: int
) -> Backfill:
    """Run the daemon until the sandbox holds every valid dossier and step of the source.

    The sandbox's CPU over the same span is reported too: it shares the two cores, so it
    bounds the throughput whatever the daemon costs.
    """
    portal_before = cpu_seconds(sandbox_pid)
    before_dossiers, before_steps = measure.held(procs.sandbox_db)
    want_dossiers = before_dossiers + generated.valid_dossiers
    want_steps = before_steps + generated.valid_steps
    daemon = procs.start_daemon(config)
    peak = 0

    def delivered() -> bool:
        nonlocal peak
        if daemon.poll() is not None:
            raise RuntimeError(f"the daemon exited with {daemon.returncode}")
        peak = max(peak, memory_kb(daemon.pid, "VmHWM"))
        dossiers, steps = measure.held(procs.sandbox_db)
        return dossiers >= want_dossiers and steps >= want_steps

    wait_until(delivered, timeout=timeout, what="the backfill", every=0.5)
    cpu = cpu_seconds(daemon.pid)
    portal_cpu = cpu_seconds(sandbox_pid) - portal_before
    peak = max(peak, memory_kb(daemon.pid, "VmHWM"))
    blocked = generated.steps - generated.valid_steps  # steps of invalid dossiers wait
    wait_until(
        lambda: measure.pending(procs.state_db) <= blocked, timeout=60, what="the last settle"
    )
    first, last, _ = measure.span(procs.state_db)
    return Backfill(
        dossiers=generated.valid_dossiers,
        steps=generated.valid_steps,
        seconds=last - first,
        cpu_seconds=cpu,
        portal_cpu_seconds=portal_cpu,
        peak_rss_kb=peak,
    )


if __name__ == "__main__":
    sys.exit(main())
