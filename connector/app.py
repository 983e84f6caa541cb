"""The composition root: settings → concrete adapters → jobs. Nothing else builds adapters.

Adapters are created lazily, so an operator command that only reads the outbox does not
open the local system or log in to the portal.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from connector import __version__
from connector.clock import SystemClock
from connector.core.delivery import RetryPolicy
from connector.core.mapping import CompiledMapping
from connector.core.masking import scrub_text, use_key
from connector.core.records import DEAD_STATES, Kind, State
from connector.errors import ConnectorError, StoreError
from connector.jobs.health import Health
from connector.jobs.pull import PullJob
from connector.jobs.push import PushJob
from connector.jobs.reconcile import ReconcileJob
from connector.mapfiles import load_mapping
from connector.metrics import Metrics
from connector.portals.rest import build_portal
from connector.ports import AuditEvent, Clock, Portal, Selection, Source, Store
from connector.saved_jobs import save_jobs, with_saved_jobs
from connector.settings import Settings
from connector.sources.sql import SqlSource
from connector.sources.streams import StreamSpec, compile_streams
from connector.status_cache import FiguresCache
from connector.store.sql import SqlStore

log = structlog.get_logger(__name__)

#: The most dead letters one retry of all (or of a code) takes; the rest wait for the next.
MAX_RETRY = 100_000


class App:
    """Holds the adapters for one configuration and builds the jobs over them."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.metrics = Metrics()
        self.health = Health()
        self.started_at = self.clock.now()
        self._figures = FiguresCache(
            self._store_figures, self.clock, max_age=settings.status.figures_max_age_seconds
        )

    @cached_property
    def store(self) -> Store:
        """The state store, opened; from here on masked values are fingerprinted with its
        key, the same in the daemon and in every command on it."""
        secret = self.settings.state.password.read("state.password")
        store = SqlStore.open(
            self.settings.state.url, password=secret.get_secret_value() if secret else None
        )
        use_key(store.fingerprint_key())
        return store

    @cached_property
    def mapping(self) -> CompiledMapping:
        return load_mapping(self.settings.source.mapping)

    @cached_property
    def source(self) -> Source:
        secret = self.settings.source.password.read("source.password")
        return SqlSource(
            self.settings.source.url,
            self.mapping.streams,
            password=secret.get_secret_value() if secret else None,
            timezone=self.mapping.timezone,
        )

    @cached_property
    def portal(self) -> Portal:
        if self.settings.portal.profile != "rest":
            from connector.errors import ConfigError

            raise ConfigError("portal.profile: only 'rest' is available in this version")
        return build_portal(self.settings.portal, self.settings.portal_password())

    def pull_job(self, **hooks: Any) -> PullJob:
        return PullJob(
            source=self.source,
            mapping=self.mapping,
            store=self.store,
            clock=self.clock,
            metrics=self.metrics,
            health=self.health,
            page_size=self.settings.source.page_size,
            **hooks,
        )

    def push_job(self) -> PushJob:
        d = self.settings.delivery
        policy = RetryPolicy(
            max_attempts=d.max_attempts,
            initial=d.backoff_initial,
            cap=d.backoff_max,
            park_after=d.park_after_seconds,
        )
        return PushJob(
            portal=self.portal,
            store=self.store,
            clock=self.clock,
            metrics=self.metrics,
            health=self.health,
            policy=policy,
            header_batch=self.settings.portal.header_batch_size,
            step_batch=self.settings.portal.step_batch_size,
            max_items_per_second=self.settings.portal.max_items_per_second,
        )

    def reconcile_job(self) -> ReconcileJob:
        return ReconcileJob(
            portal=self.portal,
            store=self.store,
            clock=self.clock,
            health=self.health,
            sample=self.settings.schedule.reconcile_sample,
        )

    def snapshot(self, *, fresh: bool = False) -> dict[str, Any]:
        """The status document served at /status and printed by `connector status`.

        The store figures are shared between requests for a while (`FiguresCache`), and
        `figures_as_of` / `figures_age_s` say how old they are; `fresh` computes them now.
        The jobs' health, the uptime and the session are always current. When the state
        store cannot be read, the document still comes, with the jobs' health and
        `state_store` saying why the outbox figures are missing.
        """
        figures = self._figures_part(fresh)
        now = self.clock.now()
        return {
            "version": __version__,
            "daemon": {
                "started_at": iso_utc(self.started_at),
                "uptime_s": round(now - self.started_at, 1),
            },
            **figures,
            **self.snapshot_jobs(),
            "session": self.portal.session_state() if "portal" in self.__dict__ else "none",
        }

    def save_jobs(self) -> None:
        """Keep the jobs' last state in the store for `connector status` after a stop."""
        save_jobs(self.store, self.snapshot_jobs(), saved_at=iso_utc(self.clock.now()) or "")

    def snapshot_jobs(self) -> dict[str, Any]:
        """The jobs' part of the status document."""
        return {
            "pull": _job(self.health.pull.as_dict()),
            "push": {
                **_job(self.health.push.as_dict()),
                "failed_calls_in_a_row": self.health.portal_failures,
            },
            "reconcile": {
                **_job(self.health.reconcile.as_dict()),
                "report": _report(self.health.reconcile_report),
            },
        }

    def offline_snapshot(self) -> dict[str, Any]:
        """The status document read from the store alone, the daemon not running: the jobs
        as the daemon last saved them, said so, and when."""
        snapshot = self.snapshot()
        snapshot["daemon"] = {"running": False}
        return with_saved_jobs(snapshot, self.store)

    def warm_figures(self) -> None:
        """Compute the store figures once, ahead of the first request.

        On a big store the first computation after a start reads cold pages and can outlast
        a monitoring probe's timeout; done at start, in the background, the first /status
        finds it done or in progress (and waits for it) instead of starting it. A failure
        is only logged: the next request tries again and reports it.
        """
        started = self.clock.monotonic()
        try:
            self._figures.get()
        except StoreError as exc:
            log.warning("status figures not computed at start", reason=str(exc))
            return
        took = round(self.clock.monotonic() - started, 3)
        log.info("status figures computed at start", took_s=took)

    def figures_changed(self) -> None:
        """The outbox changed by an operator's hand: the next snapshot computes anew."""
        self._figures.expire()

    def _figures_part(self, fresh: bool) -> dict[str, Any]:
        """The store figures with their age, or why there are none."""
        try:
            figures = self._figures.get(fresh=fresh)
        except StoreError as exc:
            return {"state_store": f"unavailable: {exc}"}
        return {
            **copy.deepcopy(figures.values),  # shared between requests: each gets its own
            "state_store": "ok",
            "figures_as_of": iso_utc(figures.as_of),
            "figures_age_s": round(figures.age(self.clock), 1),
        }

    def _store_figures(self, now: float) -> dict[str, Any]:
        counts = self.store.counts()
        outbox = {k.value: {s.value: counts.get((k, s), 0) for s in State} for k in Kind}
        blocked = self.store.blocked_steps()
        # Steps waiting for their dossier's header are not backlog the portal can take yet.
        outbox[Kind.STEP.value]["pending"] -= blocked
        outbox[Kind.STEP.value]["blocked"] = blocked
        acked = self.store.acked_since(now - 300)
        return {
            "outbox": outbox,
            "dead_letters": sum(n for (_, s), n in counts.items() if s in DEAD_STATES),
            "blocked_steps": blocked,
            "oldest_pending_age_s": self.store.oldest_pending_age(now),
            "cursors": self._cursors(now),
            "throughput": {
                "window_s": 300,
                "headers_per_min": round(acked.get(Kind.HEADER, 0) / 5, 1),
                "steps_per_min": round(acked.get(Kind.STEP, 0) / 5, 1),
            },
            "dead_letter_codes": [list(row) for row in self.store.stats_by_code()],
        }

    def _cursors(self, now: float) -> dict[str, Any]:
        out = {}
        for stream, (position, moved_at) in self.store.cursors().items():
            caught_up = self.health.caught_up.get(stream)
            behind = parse_stamp(position[0], self._stamp_zone(stream)) if position else None
            lag = 0.0 if caught_up or behind is None else max(0.0, now - behind)
            out[stream] = {
                "position": list(position),
                "moved_at": iso_utc(moved_at),
                "caught_up": caught_up,
                "lag_s": round(lag, 1),
            }
        return out

    def _stamp_zone(self, stream: str) -> ZoneInfo:
        """The zone of a stream's change stamps when they carry none: the stream's
        `changed_timezone`, else the mapping's `timezone` (most local systems keep Vietnam
        wall time). Read as UTC, such a stamp would hide the first seven hours of lag."""
        try:
            specs = self.stream_specs
        except ConnectorError:  # status must work even when the mapping does not load
            return ZoneInfo("UTC")
        default = ZoneInfo(self.mapping.timezone)
        spec = specs.get(stream)
        return (spec.stamp_zone(default) if spec is not None else None) or default

    @cached_property
    def stream_specs(self) -> Mapping[str, StreamSpec]:
        """The mapping's streams, compiled as the source compiles them."""
        return compile_streams(self.mapping.streams)

    def ready(self) -> tuple[bool, str]:
        """Ready when the store answers and the portal has not refused the connector.

        The store is asked a trivial read: a probe every few seconds must not scan the outbox.
        """
        try:
            self.store.ping()
        except Exception as exc:
            return False, f"state store: {exc}"
        if self.health.push.state == "refused":
            return False, self.health.push.last_error or "portal refused"
        if self.health.pull.state == "paused":
            return False, self.health.pull.last_error or "pull paused"
        return True, "ok"

    def lock_worker(self) -> None:
        """Take the state store for this process's pulling and pushing (see `store.worker`)
        until `unlock_worker` or `close`."""
        if "_worker_lock" not in self.__dict__:
            self._worker_lock = self.store.lock_worker(
                wait=self.settings.state.worker_lock_wait_seconds, on_wait=_waiting_for_worker
            )

    def unlock_worker(self) -> None:
        lock = self.__dict__.pop("_worker_lock", None)
        if lock is not None:
            lock.release()

    def close(self) -> None:
        self.unlock_worker()
        if "source" in self.__dict__:
            self.source.close()
        if "store" in self.__dict__:
            self.store.close()


class OperatorActions:
    """What `connector resync` / `outbox retry` and `POST /actions/resync` / `/actions/retry`
    run (`connector.jobs.resync`), recorded in the audit trail, then a wake-up for push.

    `origin` ("cli" or "http") goes into the audit record with what was asked, so the
    trail says where a repair came from and what it covered, not only what it queued.
    """

    def __init__(
        self, app: App, *, origin: str, on_queued: Callable[[], None] = lambda: None
    ) -> None:
        self._app = app
        self._origin = origin
        self._on_queued = on_queued

    def retry(
        self, ids: Sequence[int], *, all_dead: bool, code: str | None = None
    ) -> Mapping[str, Any]:
        """The dead letters `ids`, plus every one (`all_dead`) or every one whose last code
        is `code` (the portal's, or `invalid`, `parked`): the repair after a fix that
        concerns one kind of refusal, such as a crosswalk entry the portal's code needed."""
        from connector.jobs.resync import retry_dead

        app = self._app
        chosen = self._dead_letters(ids, every=all_dead, code=code)
        results = retry_dead(
            item_ids=chosen,
            source=app.source,
            mapping=app.mapping,
            store=app.store,
            clock=app.clock,
        )
        done: dict[str, int] = {}
        for r in results:
            done[r.action] = done.get(r.action, 0) + 1
        what = "all dead" if all_dead else "" if code is None else f"code={code}"
        self._record("retry", [str(i) for i in chosen], done, what)
        self._app.figures_changed()
        self._on_queued()
        shown = [
            {"id": r.item_id, "action": r.action} | ({"reason": r.reason} if r.reason else {})
            for r in results
        ]
        return {"results": shown, "done": done}

    def dismiss(self, ids: Sequence[int], *, code: str | None, reason: str) -> Mapping[str, Any]:
        """Retire the dead letters `ids`, plus every one whose last code is `code`, that the
        operator will not fix (a record the portal will never take), with the steps waiting
        behind a dismissed header. The reason goes into the audit record, masked. The rows
        are retired (purged later with the other finished rows); the local record is read
        again when it changes, or by `resync --dossier X --missing-only`."""
        app = self._app
        chosen = self._dead_letters(ids, every=False, code=code)
        done = app.store.dismiss(chosen, now=app.clock.now())
        counts = {"dismissed": len(done.ids), "steps": done.steps}
        what = f"reason={scrub_text(reason)}"
        if code is not None:
            what = f"code={code} {what}"
        self._record("dismiss", [str(i) for i in chosen], counts, what)
        self._app.figures_changed()
        kept = sorted(set(chosen) - set(done.ids))
        return {"dismissed": done.ids, "steps": done.steps, "not_dead": kept}

    def resync(
        self,
        selection: Selection,
        *,
        dry_run: bool,
        missing_only: bool = False,
        progress: Callable[[str, int], None] = lambda stream, n: None,
    ) -> Mapping[str, Any]:
        from connector.jobs.resync import resync

        app = self._app
        report = resync(
            source=app.source,
            mapping=app.mapping,
            store=app.store,
            clock=app.clock,
            selection=selection,
            dry_run=dry_run,
            force=not missing_only,
            progress=progress,
        )
        if not dry_run:
            keys = [selection.dossier] if selection.dossier else []
            self._record("resync", keys, report.queued, _asked(selection, missing_only))
            self._app.figures_changed()
            self._on_queued()
        return {
            "dry_run": dry_run,
            "missing_only": missing_only,
            "read": report.read,
            "queued": report.queued,
            "invalid": report.invalid,
            "newer": report.newer,
            "reasons": report.reasons,
        }

    def _dead_letters(self, ids: Sequence[int], *, every: bool, code: str | None) -> list[int]:
        """`ids`, then every dead letter (`every`) or every one whose last code is `code`."""
        chosen = list(dict.fromkeys(ids))
        if every or code is not None:
            only = None if every else code
            dead = self._app.store.items(states=sorted(DEAD_STATES), code=only, limit=MAX_RETRY)
            asked = set(chosen)
            chosen += [i.id for i in dead if i.id not in asked]
        return chosen

    def _record(self, service: str, keys: list[str], counts: Mapping[str, int], asked: str) -> None:
        outcome = ",".join(f"{k}={v}" for k, v in sorted(counts.items()))
        event = AuditEvent(
            at=self._app.clock.now(),
            action="operator",
            service=service,
            keys=keys,
            outcome=outcome,
            detail="; ".join(part for part in (self._origin, asked) if part),
        )
        self._app.store.audit([event])


def _asked(selection: Selection, missing_only: bool) -> str:
    """A resync's selection as the audit trail records it: `since=2026-11-01 agency=…`.
    Dates, agency and procedure codes only: a dossier number is in the record's keys."""
    parts = [
        f"{name}={value.isoformat() if isinstance(value, datetime) else value}"
        for name, value in (
            ("since", selection.since),
            ("until", selection.until),
            ("changed_since", selection.changed_since),
            ("changed_until", selection.changed_until),
            ("agency", selection.agency),
            ("procedure", selection.procedure),
        )
        if value is not None
    ]
    if missing_only:
        parts.append("missing-only")
    return " ".join(parts)


def _report(report: dict[str, Any]) -> dict[str, Any]:
    """The last reconciliation's report, its time in ISO UTC as every time in the status."""
    if "at" not in report:
        return dict(report)
    return {**report, "at": iso_utc(report["at"])}


def iso_utc(ts: float | None) -> str | None:
    """Epoch seconds as the status document and the CLI show them: `2026-11-27T08:00:00Z`."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _job(d: dict[str, Any]) -> dict[str, Any]:
    out = dict(d)
    for key in ("last_run_at", "last_success_at"):
        out[key] = iso_utc(out.get(key))
    if out.get("last_error"):
        out["last_error"] = {**out["last_error"], "at": iso_utc(out["last_error"]["at"])}
    return out


def parse_stamp(value: Any, zone: ZoneInfo) -> float | None:
    """A cursor's first column as epoch seconds, when it is a timestamp; one without a
    zone is taken in `zone`."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)).timestamp()


def _waiting_for_worker(reason: str) -> None:
    log.warning("waiting for the state store's worker lock", reason=reason)
