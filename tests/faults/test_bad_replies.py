"""Replies that cannot be trusted, after the portal applied the batch: never a success."""

from __future__ import annotations

import pytest

from connector.app import App
from connector.core.records import OutcomeStatus
from connector.portals.classify import ItemResult, ReplyCodes, decide_batch, outcome_for
from tests.faults.badportal import BadPortal
from tests.faults.checker import Bounds, assert_clean
from tests.faults.workload import Rig, close_app, drive

pytestmark = pytest.mark.e2e

BROKEN = [
    "html200",
    "truncated_json",
    "invalid_utf8",
    "not_object",
    "oversized",
    "oversized_chunked",
    "dup_results",
]
HEADERS, STEPS = 20, 80


def _sent(app: App, kind: str, outcome: str) -> float:
    value = app.metrics.registry.get_sample_value(
        "connector_sent_items_total", {"kind": kind, "outcome": outcome}
    )
    return value or 0.0


async def test_malformed_and_oversized_replies_are_retried(rig: Rig) -> None:
    """HTML with status 200, cut JSON, invalid UTF-8, a JSON array and replies over the byte
    cap leave the outcome unknown: resent, and acknowledged only by a later, well-formed
    reply. Per-item results all naming one dossier decide that one; the others share the
    call's success (the portal did apply the batch)."""
    plan = BROKEN * 2
    with rig.portal() as sandbox, BadPortal(sandbox.url, plan=plan) as bad:
        settings = rig.settings(bad.url, portal={"max_reply_bytes": 65536})
        app = App(settings)
        try:
            await drive(app, until=rig.drained, timeout=90)
        finally:
            await close_app(app)
        assert not bad.plan, "every broken reply was served"
    limit = len(plan)
    assert_clean(
        rig.check(Bounds(noop_applications=limit * HEADERS, duplicate_steps=limit * STEPS))
    )


async def test_duplicate_acknowledgements_are_counted_once(rig: Rig) -> None:
    """When the portal took a batch but answered 503, the resend is acknowledged again: each
    item is still acknowledged once in the outbox and once in the metrics."""
    plan = ["ack_then_503"] * 6
    with rig.portal() as sandbox, BadPortal(sandbox.url, plan=plan) as bad:
        app = App(rig.settings(bad.url))
        try:
            await drive(app, until=rig.drained, timeout=90)
        finally:
            await close_app(app)
        assert bad.applied["ack_then_503"] == 6
    report = rig.check(Bounds(noop_applications=6 * HEADERS, duplicate_steps=6 * STEPS))
    assert_clean(report)
    assert report.figures["noop_applications"] + report.figures["duplicate_steps"] > 0
    acked = report.figures["acked_items"]
    assert _sent(app, "header", "ok") + _sent(app, "step", "ok") == acked


def test_results_naming_other_dossiers_decide_nothing() -> None:
    """Per-item results naming dossiers not in the batch decide none of its items, and a
    failure among them keeps even a success call from acknowledging the items nothing named
    (positions cannot be trusted): they are unknown, sent again in smaller batches. A batch
    of one that nothing names takes the call's outcome, or, when the call succeeded, the
    failure reported (it may be its own under a misspelt MaHoSo)."""
    codes = ReplyCodes(success=frozenset({"0"}))
    results = [ItemResult(code="0", key="X"), ItemResult(code="7", key="Y")]
    for call in (outcome_for("0", "ok", codes), outcome_for("7", "bad", codes)):
        reply = decide_batch(call, results, ["A", "B"], codes)
        assert [o.status for o in reply.outcomes] == [OutcomeStatus.UNKNOWN] * 2
    rejected = outcome_for("7", "bad", codes)
    assert decide_batch(rejected, results, ["A"], codes).outcomes == (rejected,)
    succeeded = decide_batch(outcome_for("0", "ok", codes), results, ["A"], codes)
    assert succeeded.outcomes == (outcome_for("7", "", codes),)
