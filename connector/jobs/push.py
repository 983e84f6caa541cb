"""Push: send due outbox items to the portal and settle each one by the portal's reply.

Headers go first so that, in the same round, the steps of newly acknowledged dossiers can
follow; a step is never claimed before its dossier's header is acknowledged (the store
enforces it). Every call is recorded in the audit trail before and after it is made.

Batches go one at a time, so a dossier's steps can never overtake each other in flight.
`max_items_per_second` paces every call with a token bucket.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread
import structlog

from connector.core import delivery
from connector.core.delivery import RetryPolicy, Verdict
from connector.core.hashing import combined_hash
from connector.core.hold import RETRY_AFTER, bounded
from connector.core.masking import mask, scrub_text
from connector.core.ratelimit import TokenBucket
from connector.core.records import BatchReply, Kind, Outcome, Outgoing, State
from connector.errors import PortalRefused, PortalTransient, StoreError
from connector.jobs.health import Health
from connector.metrics import Metrics
from connector.ports import AuditEvent, Clock, OutboxItem, Portal, Settlement, Store

log = structlog.get_logger(__name__)

SERVICE = {Kind.HEADER: "DongBoHoSoMC", Kind.STEP: "CapNhatTienDoHoSoMC"}
#: Where the count of portal calls failed in a row is kept (`Store.meta`).
FAILURES_KEY = "push_failed_calls_in_a_row"
_OUTCOME = {State.ACKED: "ok", State.REJECTED: "rejected", State.PARKED: "parked"}
Call = Callable[[Sequence[Outgoing]], Awaitable[BatchReply]]
P = ParamSpec("P")
R = TypeVar("R")


class PushJob:
    """One round claims a batch of headers, then a batch of steps, and settles them."""

    def __init__(
        self,
        *,
        portal: Portal,
        store: Store,
        clock: Clock,
        metrics: Metrics,
        health: Health,
        policy: RetryPolicy,
        header_batch: int,
        step_batch: int,
        refused_backoff: float = 60.0,
        rng: random.Random | None = None,
        max_items_per_second: float = 0.0,
    ) -> None:
        self._portal = portal
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._health = health
        self._policy = policy
        self._batch = {Kind.HEADER: header_batch, Kind.STEP: step_batch}
        self._refused_backoff = refused_backoff
        self._rng = rng or random.Random()
        self._refused_until = 0.0  # on the monotonic clock: wall-clock jumps do not matter
        self._refusals = 0
        self._hold = health.portal_hold  # the portal's Retry-After, shared with reconcile
        self._troubled = False  # this round met a transient failure: not a success
        self._resumed = False  # the count of calls failed in a row was read from the store
        self._bucket = (
            TokenBucket(max_items_per_second, now=clock.monotonic())
            if max_items_per_second > 0
            else None
        )

    async def drain(
        self, *, max_seconds: float = 30.0, should_stop: Callable[[], bool] = lambda: False
    ) -> int:
        """Rounds until nothing is due, the time box ends or a stop is asked for."""
        deadline = self._clock.monotonic() + max_seconds
        total = 0
        while self._clock.monotonic() < deadline and not should_stop():
            done = await self.round()
            total += done
            if done == 0:
                break
        return total

    async def round(self) -> int:
        """One header batch and one step batch. Returns how many items were claimed and
        sent, whatever became of them (0: nothing was due, or no call could be made)."""
        if self._clock.monotonic() < self._refused_until:
            return 0
        if self._held():  # the portal asked to wait (Retry-After): no call, no claim
            self._waiting()
            return 0
        self._troubled = False
        # Claimed items stay pending until settled, so a round cut short leaves nothing to
        # undo: whatever it did not settle is simply due again.
        try:
            if not self._resumed:
                await self.resume()
            sent = await self._kind(Kind.HEADER)
            sent += await self._kind(Kind.STEP)
        except PortalRefused as exc:
            self._refused(str(exc))
            return 0
        except StoreError as exc:
            self._health.push.failed(self._clock.now(), f"state store: {exc}")
            log.error("push paused", reason=str(exc))
            return 0
        except Exception as exc:  # a bug in one round must not stop the next ones
            log.exception("push round failed")
            self._health.push.failed(self._clock.now(), scrub_text(f"internal error: {exc!r}"))
            return 0
        if sent:
            self._refusals = 0
        if sent and not self._troubled:
            self._health.push.succeeded(self._clock.now())
        return sent

    async def _kind(self, kind: Kind) -> int:
        if self._held():  # the portal asked to wait: claim nothing until it has passed
            return 0
        # An item due later than now + cap is taken for a wall-clock jump back and claimed at
        # once. One waiting for a Retry-After longer than cap is never claimed early: the hold
        # stops every claim until the hint has passed, and then it is due anyway. After a
        # restart (the hold is gone) it may be: one call, a 429 again, the hold is back, and
        # no attempt is counted.
        #
        # While the portal seems down (calls failing in a row), each call after the wait is a
        # probe carrying one item, so a batch with an item the portal chokes on cannot
        # keep the connector from finding out that the portal is back.
        items = await self._db(
            self._store.claim,
            kind,
            1 if self._down() else self._batch[kind],
            now=self._clock.now(),
            max_wait=self._policy.cap,
        )
        if not items:
            return 0
        if kind == Kind.STEP:
            await self._deliver_parts(kind, self._parts(kind, items), self._portal.push_steps)
        else:
            for updating in (False, True):
                group = [i for i in items if i.updating is updating]
                if group:
                    call = self._headers_call(updating)
                    await self._deliver_parts(kind, self._parts(kind, group), call)
        return len(items)

    def _parts(self, kind: Kind, items: list[OutboxItem]) -> list[list[OutboxItem]]:
        return delivery.parts(
            items,
            self._batch[kind],
            attempts=lambda item: item.attempts,
            max_attempts=self._policy.max_attempts,
        )

    async def _paced(self, items: int) -> None:
        """Wait for the rate limit's tokens for `items` (no wait without a limit)."""
        if self._bucket is not None:
            wait = self._bucket.reserve(items, self._clock.monotonic())
            if wait > 0:
                await anyio.sleep(wait)

    def _headers_call(self, updating: bool) -> Call:
        async def call(payloads: Sequence[Outgoing]) -> BatchReply:
            return await self._portal.push_headers(payloads, updating=updating)

        return call

    async def _deliver(
        self, kind: Kind, items: list[OutboxItem], call: Call, *, repair: bool = True
    ) -> bool:
        """Send one batch and settle every item in it (recursively for splits and repairs).

        False when a call failed or was held back: the caller then sends no further part
        of the batch (`_deliver_parts`). Those parts stay pending, due, and go in a later
        round behind the failed ones, so a dossier's later steps never overtake its earlier
        ones.
        """
        if self._held():  # an earlier call met a Retry-After: the items stay pending as they are
            return False
        service = SERVICE[kind]
        keys = [i.key for i in items]
        digest = combined_hash(i.content_hash for i in items)
        now = self._clock.now()
        await self._audit(
            AuditEvent(at=now, action="send", service=service, keys=keys, payload_hash=digest)
        )
        await self._paced(len(items))
        started = time.perf_counter()
        try:
            reply = await call([i.outgoing for i in items])
        except PortalTransient as exc:
            await self._transient(kind, items, exc, digest)
            return False
        except PortalRefused as exc:
            await self._audit(
                AuditEvent(
                    at=self._clock.now(),
                    action="reply",
                    service=service,
                    keys=keys,
                    payload_hash=digest,
                    outcome=f"refused: {exc}",
                )
            )
            self._metrics.calls.labels(service, "refused").inc()
            raise
        await self._set_failures(0)
        self._metrics.call_seconds.labels(service).observe(time.perf_counter() - started)
        self._metrics.calls.labels(service, "ok").inc()
        return await self._settle_reply(kind, items, reply, call, digest, repair=repair)

    async def _settle_reply(
        self,
        kind: Kind,
        items: list[OutboxItem],
        reply: BatchReply,
        call: Call,
        digest: str,
        *,
        repair: bool,
    ) -> bool:
        verdicts = delivery.judge(reply, batch_size=len(items), kind=kind)
        await self._audit(
            AuditEvent(
                at=self._clock.now(),
                action="reply",
                service=SERVICE[kind],
                keys=[i.key for i in items],
                payload_hash=digest,
                outcome=_summary(verdicts),
            )
        )
        if verdicts and verdicts[0][0] == Verdict.SPLIT:
            return await self._deliver_parts(kind, delivery.halves(items), call, repair=repair)
        settlements: list[Settlement] = []
        to_repair: list[OutboxItem] = []
        to_resend: list[OutboxItem] = []
        now = self._clock.now()
        for item, (verdict, outcome) in zip(items, verdicts, strict=True):
            if verdict == Verdict.ACK:
                settlements.append(self._final(item, State.ACKED, outcome))
            elif verdict == Verdict.RESEND and len(items) > 1:
                to_resend.append(item)
            elif verdict == Verdict.RESEND:  # a batch of one cannot shrink: try again later
                settlements.append(
                    self._retry(item, now, None, f"outcome unknown: {outcome.message}")
                )
            elif verdict == Verdict.REPAIR and repair and kind == Kind.HEADER:
                to_repair.append(item)
            elif verdict == Verdict.REPAIR:
                settlements.append(
                    self._retry(item, now, None, f"{outcome.code} {outcome.message}")
                )
            else:
                settlements.append(self._final(item, State.REJECTED, outcome))
        moot = await self._db(self._store.settle, settlements, now=now)
        self._count(kind, settlements, moot)
        # The reply left these undecided: send them again in smaller batches (each a call of
        # its own in the audit trail) until a reply decides them; a batch of one always is.
        # Halves keep the batch's order, so a dossier's steps stay in time order.
        sent = await self._deliver_parts(kind, delivery.halves(to_resend), call, repair=repair)
        if to_repair:
            await self._repair(to_repair)
        return sent

    async def _deliver_parts(
        self, kind: Kind, parts: Sequence[list[OutboxItem]], call: Call, *, repair: bool = True
    ) -> bool:
        """The parts of a batch in order, stopping at the first that is not delivered."""
        for part in parts:
            if part and not await self._deliver(kind, part, call, repair=repair):
                return False
        return True

    async def _repair(self, items: list[OutboxItem]) -> None:
        """isUpdating was wrong: ask the portal what it holds, fix our knowledge, resend."""
        held: list[OutboxItem] = []
        fresh: list[OutboxItem] = []
        for item in items:
            if self._held():  # a lookup met a Retry-After: the rest stay pending, unsent
                break
            try:
                view = await self._portal.lookup(item.dossier)
            except PortalTransient as exc:
                now = self._clock.now()
                reason = f"lookup failed: {exc.reason}"
                hint = bounded(exc.retry_after)
                retry = self._retry(item, now, hint, reason, why=await self._failed_call(exc))
                moot = await self._db(self._store.settle, [retry], now=now)
                if retry.state is State.PARKED and retry.item_id not in moot:
                    self._dead_letter(Kind.HEADER, retry)
                self._pause(exc, hint)
                continue
            await self._set_failures(0)
            await self._db(
                self._store.set_known, item.dossier, view is not None, now=self._clock.now()
            )
            (held if view is not None else fresh).append(item)
            log.info("isUpdating repaired", dossier=item.dossier, held=view is not None)
        for updating, group in ((True, held), (False, fresh)):
            if group:
                await self._deliver(Kind.HEADER, group, self._headers_call(updating), repair=False)

    async def _transient(
        self, kind: Kind, items: list[OutboxItem], exc: PortalTransient, digest: str
    ) -> None:
        now = self._clock.now()
        hint = bounded(exc.retry_after)
        why = await self._failed_call(exc)
        settlements = [self._retry(i, now, hint, exc.reason, why=why) for i in items]
        moot = await self._db(self._store.settle, settlements, now=now)
        await self._audit(
            AuditEvent(
                at=now,
                action="reply",
                service=SERVICE[kind],
                keys=[i.key for i in items],
                payload_hash=digest,
                outcome=f"transient: {exc.reason}",
            )
        )
        outcome = "throttled" if exc.throttled else "transient"
        self._metrics.calls.labels(SERVICE[kind], outcome).inc()
        self._count(kind, settlements, moot)
        self._troubled = True
        self._health.push.failed(now, f"portal unavailable: {exc.reason}", state="retrying")
        self._pause(exc, hint)
        log.warning(
            "portal call failed, will retry",
            service=SERVICE[kind],
            items=len(items),
            reason=exc.reason,
            retry_after=exc.retry_after,
            failed_in_a_row=self._failures,
        )

    def _held(self) -> bool:
        return self._hold.remaining(self._clock.monotonic()) > 0

    async def _failed_call(self, exc: PortalTransient) -> str:
        """Count a failed call and say why it failed: 'transient' (an attempt of the items
        it carried), 'throttled' or 'outage' (neither counts).

        A 429 is the portal's limit (it answered, so it is up), and a failure right after
        another one is the portal being down: neither is the items' fault, so neither
        brings them nearer to being parked. Otherwise a long outage would park the whole
        backlog, one batch after the other, and the portal would get nothing when it came
        back.
        """
        if exc.throttled:
            return "throttled"
        await self._set_failures(self._failures + 1)
        return "outage" if self._down() else "transient"

    @property
    def _failures(self) -> int:
        """Portal calls failed in a row (an outage: see `_down`); 429s are not counted."""
        return self._health.portal_failures

    async def _set_failures(self, count: int) -> None:
        """Keep the count of calls failed in a row, in the store too (`meta`), so a restart
        during an outage goes on from it: the first failed call after the restart counts
        no attempt, and the first call is a probe of one item (`_kind`)."""
        if count == self._failures:
            return
        self._health.portal_failures = count
        await self._db(self._store.put_meta, FAILURES_KEY, str(count))

    async def resume(self) -> None:
        """Take up the count of calls failed in a row that a previous run left (0 when none,
        or unreadable). The daemon calls it at start, so the status shows an outage still
        going on from the first second; the first round calls it when nothing else has."""
        stored = (await self._db(self._store.meta)).get(FAILURES_KEY, "")
        self._health.portal_failures = int(stored) if stored.isdigit() else 0
        self._resumed = True

    def _down(self) -> bool:
        """The portal is taken as down: enough calls failed in a row for an outage wait."""
        return delivery.outage_wait(self._policy, self._failures) is not None

    def _pause(self, exc: PortalTransient, hint: float | None) -> None:
        """Hold every portal call when the portal asked for a wait (Retry-After, or a 429
        without one: then the outbox's first backoff) or seems down (`outage_wait`)."""
        self._troubled = True
        outage = delivery.outage_wait(self._policy, self._failures)
        throttled = self._policy.initial if exc.throttled else None
        waits = [w for w in (hint, throttled, outage) if w is not None]
        if not waits:
            return
        asked = hint is not None or exc.throttled
        cause = RETRY_AFTER if asked else "the portal to come back"
        reason = exc.reason if asked else f"{self._failures} calls failed in a row: {exc.reason}"
        seconds = self._hold.hold(
            max(waits), monotonic=self._clock.monotonic(), reason=reason, cause=cause
        )
        self._waiting()
        log.warning("no portal calls for a while", wait_s=seconds, waiting_for=cause)

    def _waiting(self) -> None:
        now, monotonic = self._clock.now(), self._clock.monotonic()
        message = self._hold.describe(monotonic=monotonic, now=now)
        self._health.push.failed(now, message, state="retrying")

    def _retry(
        self,
        item: OutboxItem,
        now: float,
        retry_after: float | None,
        reason: str,
        *,
        why: str = "transient",
    ) -> Settlement:
        """The item's next attempt after a failed call (`why`, see `_failed_call`)."""
        jitter = self._rng.random()
        if why == "throttled":  # the portal's limit: no attempt counted, never parked for it
            throttled = delivery.after_throttle(
                self._policy,
                attempts=item.attempts,
                now=now,
                retry_after=retry_after,
                jitter=jitter,
            )
            return self._pending(item, why, reason, throttled.at)
        counted = why == "transient"  # in an outage only the age limit can park the item
        decision = delivery.after_transient(
            self._policy,
            attempts=item.attempts + (1 if counted else 0),
            created_at=item.created_at,
            now=now,
            retry_after=retry_after,
            jitter=jitter,
        )
        if isinstance(decision, delivery.Park):
            return Settlement(
                item_id=item.id,
                state=State.PARKED,
                code="parked",
                message=f"{decision.reason}; last error: {reason}",
                kind=item.kind,
            )
        return self._pending(item, why, reason, decision.at)

    @staticmethod
    def _pending(item: OutboxItem, why: str, reason: str, at: float) -> Settlement:
        return Settlement(
            item_id=item.id,
            state=State.PENDING,
            code=why,
            message=reason,
            next_attempt_at=at,
            count_attempt=why == "transient",
            kind=item.kind,
        )

    @staticmethod
    def _final(item: OutboxItem, state: State, outcome: Outcome) -> Settlement:
        return Settlement(
            item_id=item.id,
            state=state,
            code=outcome.code,
            message=outcome.message,
            kind=item.kind,
        )

    def _refused(self, reason: str) -> None:
        now = self._clock.now()
        self._refusals += 1
        wait = min(900.0, self._refused_backoff * 2 ** (self._refusals - 1))
        self._refused_until = self._clock.monotonic() + wait
        self._health.push.failed(now, f"portal refused the connector: {reason}", state="refused")
        log.error("portal refused the connector; items stay queued", reason=reason, retry_in_s=wait)

    def _count(self, kind: Kind, settlements: list[Settlement], moot: frozenset[int]) -> None:
        """Tally what the calls did; a refusal of a version superseded meanwhile (`moot`)
        made no dead letter, so it is counted as sent but not as dead-lettered."""
        tally: dict[str, int] = {}
        for s in settlements:
            outcome = _OUTCOME.get(s.state, "transient")
            tally[outcome] = tally.get(outcome, 0) + 1
            if s.item_id in moot:
                log.info("dead letter moot: version superseded", item=s.item_id, code=s.code)
            elif s.state in (State.REJECTED, State.PARKED):
                self._dead_letter(kind, s)
        for outcome, n in tally.items():
            self._metrics.sent.labels(kind.value, outcome).inc(n)

    def _dead_letter(self, kind: Kind, s: Settlement) -> None:
        self._metrics.dead.labels(kind.value, s.state.value).inc()
        # The portal's message may quote the dossier's personal data: the log gets a
        # fingerprint (same message, same print); `outbox show` has the text.
        log.warning(
            "item dead-lettered",
            kind=kind.value,
            item=s.item_id,
            state=s.state.value,
            code=s.code,
            message=mask(s.message) if s.message else "",
        )

    async def _audit(self, event: AuditEvent) -> None:
        await self._db(self._store.audit, [event])

    @staticmethod
    async def _db(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Store calls run in a worker thread so the event loop keeps serving."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def _summary(verdicts: list[tuple[Verdict, Outcome]]) -> str:
    counts: dict[str, int] = {}
    for verdict, outcome in verdicts:
        label = verdict.value if verdict == Verdict.ACK else f"{verdict.value}:{outcome.code}"
        counts[label] = counts.get(label, 0) + 1
    return ",".join(f"{k}={v}" for k, v in sorted(counts.items()))
