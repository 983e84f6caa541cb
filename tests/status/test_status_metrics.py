"""Metrics: own registry, gauges from the snapshot, counters from the jobs."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from connector.metrics import Metrics


def _value(metrics: Metrics, metric: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(metric, labels)


def test_observe_sets_gauges_from_snapshot(snapshot: dict[str, Any]) -> None:
    """Each gauge takes its value from the matching snapshot field."""
    metrics = Metrics()
    metrics.observe(snapshot)
    assert _value(metrics, "connector_outbox_items", kind="header", state="acked") == 1200
    assert _value(metrics, "connector_outbox_items", kind="step", state="parked") == 2
    assert _value(metrics, "connector_dead_letters") == 5
    assert _value(metrics, "connector_blocked_steps") == 7
    assert _value(metrics, "connector_cursor_lag_seconds", stream="dossiers") == 1.2
    assert _value(metrics, "connector_session_active") == 1
    assert _value(metrics, "connector_oldest_pending_age_seconds") == 2.5
    # 2026-11-27T04:00:00Z
    assert _value(metrics, "connector_last_push_success_timestamp_seconds") == 1795752000.0
    assert _value(metrics, "connector_portal_failed_calls_in_a_row") == 3


def test_each_job_reports_its_current_state_and_only_that(snapshot: dict[str, Any]) -> None:
    """One series per job and state: 1 for the state the job is in, 0 for the others; a
    job the snapshot does not mention (reconcile here) is in none."""
    metrics = Metrics()
    paused = {**snapshot, "pull": {**snapshot["pull"], "state": "paused"}}
    metrics.observe(paused)
    states = ("ok", "idle", "paused", "retrying", "refused")
    pull = {s: _value(metrics, "connector_job_state", name="pull", state=s) for s in states}
    assert pull == {"ok": 0, "idle": 0, "paused": 1, "retrying": 0, "refused": 0}
    assert _value(metrics, "connector_job_state", name="push", state="ok") == 1
    assert (
        sum(_value(metrics, "connector_job_state", name="push", state=s) or 0 for s in states) == 1
    )
    assert not any(
        _value(metrics, "connector_job_state", name="reconcile", state=s) for s in states
    )
    metrics.observe(snapshot)
    assert _value(metrics, "connector_job_state", name="pull", state="paused") == 0
    assert _value(metrics, "connector_job_state", name="pull", state="ok") == 1


def test_observe_tolerates_an_empty_snapshot() -> None:
    """A snapshot with nothing in it reads as zeros, not an error."""
    metrics = Metrics()
    metrics.observe({"session": "refused: bad password", "push": None, "outbox": None})
    assert _value(metrics, "connector_session_active") == 0
    assert _value(metrics, "connector_last_push_success_timestamp_seconds") == 0
    assert _value(metrics, "connector_dead_letters") == 0
    assert _value(metrics, "connector_portal_failed_calls_in_a_row") == 0


def test_streams_and_states_that_disappear_are_dropped(snapshot: dict[str, Any]) -> None:
    """A cursor or outbox state absent from the next snapshot no longer reports a stale value."""
    metrics = Metrics()
    metrics.observe(snapshot)
    metrics.observe({**snapshot, "cursors": {}, "outbox": {"header": {"pending": 1}}})
    assert _value(metrics, "connector_cursor_lag_seconds", stream="dossiers") is None
    assert _value(metrics, "connector_outbox_items", kind="step", state="parked") is None
    assert _value(metrics, "connector_outbox_items", kind="header", state="pending") == 1


def test_counters_and_histogram_are_exposed() -> None:
    """Counters the jobs increment appear in the rendered exposition."""
    metrics = Metrics()
    metrics.pulled.labels(stream="dossiers").inc(3)
    metrics.queued.labels(kind="header").inc()
    metrics.dead.labels(kind="step", reason="rejected").inc()
    metrics.sent.labels(kind="header", outcome="ok").inc(2)
    metrics.calls.labels(service="DongBoHoSoMC", outcome="ok").inc()
    metrics.call_seconds.labels(service="DongBoHoSoMC").observe(0.3)
    text = metrics.render().decode()
    assert 'connector_pulled_records_total{stream="dossiers"} 3.0' in text
    assert 'connector_queued_items_total{kind="header"} 1.0' in text
    assert 'connector_dead_lettered_items_total{kind="step",reason="rejected"} 1.0' in text
    assert 'connector_sent_items_total{kind="header",outcome="ok"} 2.0' in text
    assert 'connector_portal_calls_total{outcome="ok",service="DongBoHoSoMC"} 1.0' in text
    assert 'connector_portal_call_seconds_bucket{le="0.5",service="DongBoHoSoMC"} 1.0' in text


def test_two_instances_do_not_share_the_global_registry() -> None:
    """Each Metrics has its own registry, so building two never raises a duplicate error."""
    first, second = Metrics(), Metrics()
    first.queued.labels(kind="step").inc()
    assert (
        second.registry.get_sample_value("connector_queued_items_total", {"kind": "step"}) is None
    )
    assert REGISTRY.get_sample_value("connector_queued_items_total", {"kind": "step"}) is None
