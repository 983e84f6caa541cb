"""Prometheus metrics: counters the jobs increment, gauges set from the status snapshot.

The metrics live in their own registry, not prometheus-client's global one, so two daemons
(or two tests) in one process never collide and nothing but our own series is exposed.
Gauges are derived from the same snapshot as `/status`, so the two never disagree.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: The states a job can be in (`JobHealth.state`), each a series of `connector_job_state`.
JOB_STATES = ("ok", "idle", "paused", "retrying", "refused")
JOBS = ("pull", "push", "reconcile")

#: Portal calls take from milliseconds to the configured total timeout (60 s by default).
_CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Every series the connector exposes on `/metrics`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._streams: set[str] = set()
        self._outbox_labels: set[tuple[str, str]] = set()
        self._counters()
        self._gauges()

    def _counters(self) -> None:
        reg = self.registry
        self.pulled = Counter(
            "connector_pulled_records",
            "Records read from the local system.",
            ["stream"],
            registry=reg,
        )
        self.queued = Counter(
            "connector_queued_items", "Items put into the outbox.", ["kind"], registry=reg
        )
        # Not `connector_dead_letters_total`: that family would clash with the gauge below.
        self.dead = Counter(
            "connector_dead_lettered_items",
            "Items that became dead letters (invalid|rejected|parked).",
            ["kind", "reason"],
            registry=reg,
        )
        self.sent = Counter(
            "connector_sent_items",
            "Items sent to the portal by outcome.",
            ["kind", "outcome"],
            registry=reg,
        )
        self.calls = Counter(
            "connector_portal_calls",
            "Calls to the portal by outcome.",
            ["service", "outcome"],
            registry=reg,
        )
        self.call_seconds = Histogram(
            "connector_portal_call_seconds",
            "Duration of portal calls.",
            ["service"],
            buckets=_CALL_BUCKETS,
            registry=reg,
        )

    def _gauges(self) -> None:
        reg = self.registry
        self.outbox_items = Gauge(
            "connector_outbox_items",
            "Outbox items by kind and state.",
            ["kind", "state"],
            registry=reg,
        )
        self.dead_letters = Gauge(
            "connector_dead_letters", "Dead letters waiting for an operator.", registry=reg
        )
        self.blocked_steps = Gauge(
            "connector_blocked_steps",
            "Steps held back until their dossier is acked.",
            registry=reg,
        )
        self.cursor_lag = Gauge(
            "connector_cursor_lag_seconds",
            "How far each pull cursor trails the source.",
            ["stream"],
            registry=reg,
        )
        self.last_push_success = Gauge(
            "connector_last_push_success_timestamp_seconds",
            "Unix time of the last successful push (0 if none yet).",
            registry=reg,
        )
        self.failed_calls_in_a_row = Gauge(
            "connector_portal_failed_calls_in_a_row",
            "Push calls to the portal failed one after the other (2 or more: taken as down).",
            registry=reg,
        )
        self.session_active = Gauge(
            "connector_session_active", "1 while the portal session is active.", registry=reg
        )
        self.oldest_pending_age = Gauge(
            "connector_oldest_pending_age_seconds",
            "Age of the oldest pending outbox item.",
            registry=reg,
        )
        # One series per job and state, 1 for the current one: an alert can say "the pull
        # has been paused for ten minutes" without parsing /status. The job's label is
        # `name`: Prometheus gives every scraped series its own `job` label.
        self.job_state = Gauge(
            "connector_job_state",
            f"1 for each job's current state ({', '.join(JOB_STATES)}), 0 for the others.",
            ["name", "state"],
            registry=reg,
        )

    def observe(self, snapshot: Mapping[str, Any]) -> None:
        """Set every gauge from a status snapshot; missing values read as 0."""
        with self._lock:
            self._observe_outbox(snapshot.get("outbox"))
            self._observe_cursors(snapshot.get("cursors"))
            self.dead_letters.set(_number(snapshot.get("dead_letters")))
            self.blocked_steps.set(_number(snapshot.get("blocked_steps")))
            self.oldest_pending_age.set(_number(snapshot.get("oldest_pending_age_s")))
            push = _mapping(snapshot.get("push"))
            self.last_push_success.set(_timestamp(push.get("last_success_at")))
            self.failed_calls_in_a_row.set(_number(push.get("failed_calls_in_a_row")))
            self.session_active.set(1.0 if snapshot.get("session") == "active" else 0.0)
            for job in JOBS:
                current = _mapping(snapshot.get(job)).get("state")
                for state in JOB_STATES:
                    self.job_state.labels(job, state).set(1.0 if state == current else 0.0)

    def _observe_outbox(self, outbox: Any) -> None:
        seen: set[tuple[str, str]] = set()
        for kind, states in _mapping(outbox).items():
            for state, count in _mapping(states).items():
                labels = (str(kind), str(state))
                self.outbox_items.labels(*labels).set(_number(count))
                seen.add(labels)
        for gone in self._outbox_labels - seen:
            self.outbox_items.remove(*gone)
        self._outbox_labels = seen

    def _observe_cursors(self, cursors: Any) -> None:
        seen: set[str] = set()
        for stream, cursor in _mapping(cursors).items():
            self.cursor_lag.labels(str(stream)).set(_number(_mapping(cursor).get("lag_s")))
            seen.add(str(stream))
        for gone in self._streams - seen:
            self.cursor_lag.remove(gone)
        self._streams = seen

    def render(self) -> bytes:
        """The text exposition format (0.0.4) of this registry."""
        with self._lock:
            return generate_latest(self.registry)


def _mapping(value: Any) -> Mapping[Any, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> float:
    """A gauge value: numbers as they are, anything else (None, text, NaN) as 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value) if math.isfinite(value) else 0.0


def _timestamp(value: Any) -> float:
    """Unix seconds from an ISO 8601 string (UTC unless zoned) or a number; 0 when unreadable."""
    if not isinstance(value, str):
        return _number(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
