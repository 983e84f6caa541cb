"""Retry-After and outages hold the whole connector, not just the items that met them.

The push job runs against the REST adapter over a scripted HTTP transport (respx) and a
real SQLite outbox, on a clock the test moves by hand: nothing here waits in real time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from connector.core.delivery import RetryPolicy
from connector.core.records import Kind, Mapped, State
from connector.jobs.health import Health
from connector.jobs.push import FAILURES_KEY, PushJob
from connector.jobs.reconcile import ReconcileJob
from connector.metrics import Metrics
from connector.portals.rest import RestPortal
from connector.ports import OutboxItem
from connector.settings import RetrySettings
from connector.store import SqlStore
from tests.clocks import ManualClock
from tests.portals.portal_fakes import BASE_URL, PASSWORD, body_of, login_ok, make_settings, ok

HEADERS, STEPS, LOOKUP = "DongBoHoSoMC", "CapNhatTienDoHoSoMC", "TraCuuHoSo"
HOUR = 3600.0
#: The outbox's backoff cap: a Retry-After of an hour is longer, which the stranded-item
#: rule (an item due later than now + cap means the wall clock went back) must survive.
POLICY = RetryPolicy(max_attempts=3, initial=5.0, cap=900.0, park_after=7 * 24 * HOUR)


class Script:
    """The portal's service endpoint: queued replies first, then success; every call noted.

    `down` makes every call a 503 without Retry-After while it says so; `poison` makes
    every call carrying that dossier one.
    """

    def __init__(self) -> None:
        self.replies: list[httpx.Response] = []
        self.services: list[str] = []
        self.sizes: list[int] = []  # items carried by each call
        self.down: Callable[[], bool] = lambda: False
        self.poison: str | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = body_of(request)
        self.services.append(str(body["service"]))
        data = body.get("data", [])
        self.sizes.append(len(data) if isinstance(data, list) else 1)
        if self.replies:
            return self.replies.pop(0)
        carried = {entry.get("MaHoSo") for entry in data} if isinstance(data, list) else set()
        if self.down() or self.poison in carried:
            return httpx.Response(503, text="service unavailable")
        if body["service"] == LOOKUP:
            return ok(result=[{"MaHoSo": body["mahoso"], "SoBuocXuLy": "0"}])
        return ok()


class CountingStore(SqlStore):
    """The SQLite outbox, counting claims (a held push job must not even claim)."""

    claims = 0

    def claim(
        self, kind: Kind, limit: int, *, now: float, max_wait: float | None = None
    ) -> list[OutboxItem]:
        self.claims += 1
        return super().claim(kind, limit, now=now, max_wait=max_wait)


def throttled(seconds: float) -> httpx.Response:
    return httpx.Response(429, headers={"Retry-After": f"{seconds:g}"}, text="slow down")


def unavailable(seconds: float) -> httpx.Response:
    return httpx.Response(503, headers={"Retry-After": f"{seconds:g}"}, text="maintenance")


class Rig:
    """A clock, an outbox with 30 dossiers (a header and a step each), the portal, the jobs.

    Every odd dossier is already known to the portal, so a header batch holds both groups
    (isUpdating False and True) and those dossiers' steps are due from the start.
    """

    def __init__(self, tmp: Path, mock: respx.MockRouter) -> None:
        self.clock = ManualClock()
        store = CountingStore.open(f"sqlite:///{tmp / 'state.db'}")
        assert isinstance(store, CountingStore)
        self.store = store
        self.script = Script()
        mock.post("/auth").mock(return_value=login_ok())
        mock.post("/integration").mock(side_effect=self.script)
        self.portals: list[RestPortal] = []
        self.dossiers = [f"000.00.01.H26-250101-{n:04d}" for n in range(30)]
        now = self.clock.now()
        self.store.ingest("dossiers", [_header(d) for d in self.dossiers], None, now=now)
        self.store.ingest("steps", [_step(d) for d in self.dossiers], None, now=now)
        for dossier in self.dossiers[1::2]:
            self.store.set_known(dossier, True, now=now)
        self.restart()

    def restart(self) -> None:
        """A new process: fresh health (and hold), portal and jobs over the same outbox."""
        self.health = Health()
        portal = RestPortal(
            make_settings(
                retry=RetrySettings(attempts=3, max_seconds=10, backoff_initial=0.5, backoff_max=4)
            ),
            SecretStr(PASSWORD),
            sleep=self._sleep,
            clock=self.clock.monotonic,
        )
        self.portals.append(portal)
        self.push = PushJob(
            portal=portal,
            store=self.store,
            clock=self.clock,
            metrics=Metrics(),
            health=self.health,
            policy=POLICY,
            header_batch=10,
            step_batch=50,
        )
        self.reconcile = ReconcileJob(
            portal=portal, store=self.store, clock=self.clock, health=self.health, sample=5
        )

    async def _sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)

    async def close(self) -> None:
        for portal in self.portals:
            await portal.aclose()
        self.store.close()

    def all(self, kind: Kind | None = None) -> list[OutboxItem]:
        return self.store.items(kind=kind, limit=1000)

    def attempts(self) -> dict[str, int]:
        """Attempts counted per item key, over every item that has any."""
        return {i.key: i.attempts for i in self.all() if i.attempts}

    def states(self) -> dict[tuple[Kind, State], int]:
        return dict(self.store.counts())

    def delivered(self) -> bool:
        return self.states() == {(Kind.HEADER, State.ACKED): 30, (Kind.STEP, State.ACKED): 30}


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def rig(tmp_path: Path, mock: respx.MockRouter) -> Any:
    made = Rig(tmp_path, mock)
    yield made
    await made.close()


def _header(dossier: str) -> Mapped:
    return Mapped(
        kind=Kind.HEADER,
        key=dossier,
        dossier=dossier,
        source_ref=f"dossiers:{dossier}",
        payload={"MaHoSo": dossier, "TrangThaiHoSo": "1"},
    )


def _step(dossier: str) -> Mapped:
    at = "20250101080000"
    return Mapped(
        kind=Kind.STEP,
        key=f"{dossier}|{at}|2",
        dossier=dossier,
        source_ref=f"steps:{dossier}",
        payload={"MaHoSo": dossier, "ThoiDiemXuLy": at, "TrangThai": "2"},
        event_time=at,
    )


async def _quiet(rig: Rig, rounds: int = 3) -> None:
    """Drain and single rounds while held: not one call, not one claim."""
    calls, claims = len(rig.script.services), rig.store.claims
    for _ in range(rounds):
        assert await rig.push.drain(max_seconds=60) == 0
        assert await rig.push.round() == 0
    assert len(rig.script.services) == calls
    assert rig.store.claims == claims


def _no_dead(rig: Rig) -> None:
    assert not [key for key in rig.states() if key[1] in (State.PARKED, State.REJECTED)]


async def test_a_429_holds_every_call_until_retry_after_has_passed(rig: Rig) -> None:
    """429 with Retry-After: 3600 on the header call: the round stops (no other header
    group, no steps), no call or claim until the monotonic clock passes the hint, whatever
    the wall clock does; no attempt is counted, nothing is parked; then all is delivered."""
    rig.script.replies = [throttled(HOUR)]
    await rig.push.drain(max_seconds=60)
    assert rig.script.services == [HEADERS]
    assert rig.attempts() == {}
    _no_dead(rig)
    assert rig.states()[(Kind.HEADER, State.PENDING)] == 30  # none left in flight
    assert rig.health.push.state == "retrying"
    said = rig.health.push.last_error or ""
    assert "Retry-After" in said and "no calls until " in said
    assert " s left" not in said, "a count of seconds is stale as soon as the status shows it"

    await _quiet(rig)
    rig.clock.advance(HOUR / 2)
    await _quiet(rig)
    rig.clock.jump(+2 * HOUR)  # wall time says the hint has passed: monotonic time does not
    await _quiet(rig)
    rig.clock.jump(-4 * HOUR)  # now every throttled item looks stranded (due > now + cap)
    await _quiet(rig)
    rig.clock.jump(+2 * HOUR)
    rig.clock.advance(HOUR / 2 - 1)
    await _quiet(rig)

    rig.clock.advance(2)
    await rig.push.drain(max_seconds=60)
    assert rig.delivered()
    assert rig.attempts() == {}
    assert rig.script.services[1:].count(STEPS) >= 1
    assert rig.health.push.state == "ok"


async def test_a_503_with_retry_after_holds_alike_but_counts_an_attempt(rig: Rig) -> None:
    """503 with Retry-After: the same portal-wide hold; the items sent count one attempt."""
    rig.script.replies = [unavailable(HOUR)]
    await rig.push.drain(max_seconds=60)
    assert rig.script.services == [HEADERS]
    sent = {key for key, n in rig.attempts().items() if n == 1}
    assert len(sent) == 5 and rig.attempts() == dict.fromkeys(sent, 1)  # the first group only
    _no_dead(rig)
    assert "Retry-After" in (rig.health.push.last_error or "")

    await _quiet(rig)
    rig.clock.advance(HOUR - 1)
    await _quiet(rig)
    rig.clock.advance(2)
    await rig.push.drain(max_seconds=60)
    assert rig.delivered()
    assert rig.attempts() == dict.fromkeys(sent, 1)


async def test_throttling_alone_never_parks(rig: Rig) -> None:
    """More 429s in a row than max_attempts: nothing is parked, no attempt counted."""
    rig.script.replies = [throttled(60)] * (POLICY.max_attempts * 2)
    for _ in range(POLICY.max_attempts * 2):
        calls = len(rig.script.services)
        await rig.push.drain(max_seconds=60)
        assert len(rig.script.services) == calls + 1
        _no_dead(rig)
        rig.clock.advance(61)
    await rig.push.drain(max_seconds=60)
    assert rig.delivered()
    assert rig.attempts() == {}


async def test_after_a_restart_one_call_meets_the_throttle_and_the_hold_is_back(
    rig: Rig,
) -> None:
    """The hold lives in memory: after a restart at most one call is made before the
    portal's 429 sets it again, and that call counts no attempt either."""
    rig.script.replies = [throttled(HOUR)]
    await rig.push.drain(max_seconds=60)
    rig.clock.advance(60)
    rig.restart()
    rig.script.replies = [throttled(HOUR - 60)]
    await rig.push.drain(max_seconds=60)
    assert rig.script.services == [HEADERS, HEADERS]
    await _quiet(rig)
    assert rig.attempts() == {}
    _no_dead(rig)
    rig.clock.advance(HOUR)
    await rig.push.drain(max_seconds=60)
    assert rig.delivered()


async def test_reconcile_and_push_share_the_hold(rig: Rig) -> None:
    """A hold set by push stops reconcile's look-ups, and one set by a look-up stops push."""
    rig.script.replies = [throttled(HOUR)]
    await rig.push.drain(max_seconds=60)
    assert await rig.reconcile.run() == []
    assert rig.script.services == [HEADERS]
    assert rig.health.reconcile.state == "retrying"
    assert "Retry-After" in (rig.health.reconcile.last_error or "")

    rig.clock.advance(HOUR + 1)
    rig.script.replies = [throttled(600)]
    await rig.reconcile.run()
    assert rig.script.services == [HEADERS, LOOKUP]
    await _quiet(rig)
    rig.clock.advance(601)
    await rig.push.drain(max_seconds=60)
    assert rig.delivered()
    assert rig.attempts() == {}


async def test_a_long_outage_parks_nothing_and_is_probed_one_item_at_a_time(rig: Rig) -> None:
    """The portal answers 503 (no Retry-After) for six hours, longer than the backoff of
    every attempt allowed. Only the first failed call counts an attempt; from the second
    in a row every call waits (growing to a minute) and carries one item. Nothing is
    parked, the portal is found back within a minute, and everything is delivered."""
    end = rig.clock.monotonic() + 6 * HOUR
    rig.script.down = lambda: rig.clock.monotonic() < end
    for _ in range(3000):  # 10 s steps to two minutes before the end
        if rig.clock.monotonic() >= end - 120:
            break
        await rig.push.drain(max_seconds=60)
        _no_dead(rig)
        rig.clock.advance(10)
    assert rig.clock.monotonic() >= end - 120
    assert rig.health.push.state == "retrying"
    assert "calls failed in a row" in (rig.health.push.last_error or "")
    counted = rig.attempts()
    assert len(counted) == 5 and set(counted.values()) == {1}  # the first call's group alone
    calls = len(rig.script.services)
    # Two calls of five (three tries each within the call), then probes of one.
    assert rig.script.sizes[:6] == [5] * 6 and set(rig.script.sizes[6:]) == {1}
    assert calls <= 3 * (6 * HOUR / 60 + 10), calls  # a probe a minute, three tries each

    for _ in range(100):  # on to the end of the outage, and until all is delivered
        await rig.push.drain(max_seconds=60)
        if rig.delivered():
            break
        rig.clock.advance(10)
    assert rig.delivered()
    assert rig.clock.monotonic() - end <= 80  # found back within about a minute
    assert rig.attempts() == counted
    _no_dead(rig)
    assert rig.health.push.state == "ok"


async def test_a_batch_the_portal_keeps_failing_is_still_parked(rig: Rig) -> None:
    """Every call carrying one dossier fails with 503 while the others succeed: its
    failures are not an outage, so it is parked after max_attempts, not retried for ever.
    Its calls shrink with each failure, so the dossiers that went with it are delivered."""
    poison = rig.dossiers[0]
    rig.script.poison = poison
    for _ in range(200):
        await rig.push.drain(max_seconds=60)
        if (Kind.HEADER, State.PENDING) not in rig.states():
            break
        rig.clock.advance(30)
    states = {item.key: item.state for item in rig.all(Kind.HEADER)}
    assert states[poison] == State.PARKED
    assert {key for key, state in states.items() if state != State.ACKED} == {poison}


async def test_a_restart_during_an_outage_counts_no_attempt_and_probes_first(rig: Rig) -> None:
    """The count of calls failed in a row is kept in the store: restarts during an outage
    (a crash loop, say) do not each count an attempt of the items of their first call,
    and the first call after each is a probe of one item. The portal's return resets it."""
    rig.script.down = lambda: True
    await rig.push.drain(max_seconds=60)
    counted = rig.attempts()
    assert len(counted) == 5 and set(counted.values()) == {1}  # the first call's group
    assert rig.health.portal_failures == 2  # the second call (the other group) failed too
    for _ in range(5):
        rig.clock.advance(POLICY.cap + 1)  # every item is due again
        rig.restart()
        calls = len(rig.script.sizes)
        await rig.push.drain(max_seconds=60)
        assert rig.attempts() == counted
        assert rig.script.sizes[calls:] == [1, 1, 1]  # one probe, three tries in the call
        _no_dead(rig)
    assert rig.health.portal_failures == 7
    assert rig.store.meta()[FAILURES_KEY] == "7"

    rig.script.down = lambda: False
    rig.clock.advance(POLICY.cap + 1)
    rig.restart()
    assert rig.health.portal_failures == 0
    calls = len(rig.script.sizes)
    await rig.push.resume()  # what the daemon does at start, before any round
    assert rig.health.portal_failures == 7
    assert len(rig.script.sizes) == calls  # read from the store, no portal call
    await rig.push.drain(max_seconds=60)
    assert rig.delivered()
    assert rig.script.sizes[-1] > 1  # full batches again once the portal answered
    assert rig.store.meta()[FAILURES_KEY] == "0"
    assert rig.attempts() == counted
