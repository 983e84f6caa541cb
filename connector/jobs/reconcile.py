"""Reconcile (first version): look a sample of acknowledged dossiers up with TraCuuHoSo
and report where the portal's view drifted from what was acknowledged."""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio.to_thread
import structlog

from connector.core.reconcile import Finding, compare
from connector.core.records import Kind, State
from connector.errors import PortalError, PortalTransient
from connector.jobs.health import Health
from connector.ports import Clock, OutboxItem, Portal, Store

log = structlog.get_logger(__name__)


class ReconcileJob:
    def __init__(
        self, *, portal: Portal, store: Store, clock: Clock, health: Health, sample: int
    ) -> None:
        self._portal = portal
        self._store = store
        self._clock = clock
        self._health = health
        self._sample = sample

    async def run(self) -> list[Finding]:
        if self._held():  # the portal asked to wait (Retry-After): not even one look-up
            self._waiting(checked=0)
            return []
        dossiers = await anyio.to_thread.run_sync(self._store.known_sample, self._sample)
        findings: list[Finding] = []
        checked = 0
        try:
            for dossier in dossiers:
                if self._held():  # met by push or by a look-up of this run
                    break
                findings += await self._check(dossier)
                checked += 1
        except PortalError as exc:
            self._hold_if_asked(exc)
            self._health.reconcile.failed(self._clock.now(), f"portal: {exc}")
            log.warning("reconcile interrupted", reason=str(exc), checked=checked)
        else:
            if checked < len(dossiers):
                self._waiting(checked=checked)
            else:
                self._health.reconcile.succeeded(self._clock.now())
        self._report(checked, findings)
        return findings

    def _held(self) -> bool:
        return self._health.portal_hold.remaining(self._clock.monotonic()) > 0

    def _hold_if_asked(self, exc: PortalError) -> None:
        """A Retry-After holds every job's portal calls, the push job's too."""
        if isinstance(exc, PortalTransient) and exc.retry_after is not None:
            self._health.portal_hold.hold(
                exc.retry_after, monotonic=self._clock.monotonic(), reason=exc.reason
            )

    def _waiting(self, *, checked: int) -> None:
        hold, now, monotonic = self._health.portal_hold, self._clock.now(), self._clock.monotonic()
        message = f"{hold.describe(monotonic=monotonic, now=now)}; checked {checked}"
        self._health.reconcile.failed(now, message, state="retrying")
        log.warning(
            "reconcile stopped: the portal asked to wait",
            wait_s=round(hold.remaining(monotonic)),
            checked=checked,
        )

    async def _check(self, dossier: str) -> list[Finding]:
        view = await self._portal.lookup(dossier)
        history = await anyio.to_thread.run_sync(self._store.dossier_history, dossier)
        sent, steps = _acknowledged(history)
        return compare(dossier, view, sent, steps)

    def _report(self, checked: int, findings: list[Finding]) -> None:
        by_drift = Counter(f.drift.value for f in findings)
        report: dict[str, Any] = {
            "at": self._clock.now(),
            "checked": checked,
            "drift": dict(by_drift),
            "examples": [
                {"dossier": f.dossier, "drift": f.drift.value, "detail": f.detail}
                for f in findings[:10]
            ],
        }
        self._health.reconcile_report = report
        for f in findings:
            log.warning("portal drift", dossier=f.dossier, drift=f.drift.value, detail=f.detail)
        log.info("reconcile done", checked=checked, drifted=len(findings))


def _acknowledged(history: list[OutboxItem]) -> tuple[dict[str, Any] | None, int]:
    """The newest acknowledged header payload and the number of distinct acknowledged steps."""
    headers = [h for h in history if h.kind == Kind.HEADER and h.state == State.ACKED]
    sent = max(headers, key=lambda h: h.id).payload if headers else None
    steps = {h.key for h in history if h.kind == Kind.STEP and h.state == State.ACKED}
    return sent, len(steps)
