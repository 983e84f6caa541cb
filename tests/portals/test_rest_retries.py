"""In-call retries: what is retried, how long the adapter waits, and what it re-raises."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import respx
from pydantic import SecretStr
from structlog.testing import capture_logs

from connector.core.records import OutcomeStatus
from connector.errors import PortalRefused, PortalTransient
from connector.portals.rest import RestPortal
from tests.portals.portal_fakes import (
    PASSWORD,
    FakeClock,
    FakeSleep,
    body_of,
    login_ok,
    make_settings,
    ok,
)

ITEM = [{"MaHoSo": "000.00.01.H26-220713-0001"}]


def service(mock: respx.MockRouter, *replies: httpx.Response | Exception) -> respx.Route:
    mock.post("/auth").mock(return_value=login_ok())
    return mock.post("/integration").mock(side_effect=list(replies))


async def test_429_waits_at_least_retry_after(
    mock: respx.MockRouter, portal: RestPortal, sleep: FakeSleep
) -> None:
    """HTTP 429 with Retry-After: 7 makes the adapter wait at least 7 s, then succeed."""
    route = service(mock, httpx.Response(429, headers={"Retry-After": "7"}), ok())
    reply = await portal.push_steps(ITEM)
    assert reply.outcomes[0].status is OutcomeStatus.OK
    assert route.call_count == 2
    assert len(sleep.waits) == 1 and sleep.waits[0] >= 7


async def test_429_with_an_http_date(
    mock: respx.MockRouter, portal: RestPortal, sleep: FakeSleep
) -> None:
    """Retry-After given as an HTTP-date is honoured as the seconds until that date."""
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    service(mock, httpx.Response(429, headers={"Retry-After": when}), ok())
    await portal.push_steps(ITEM)
    assert 18 <= sleep.waits[0] <= 21


async def test_retry_after_beyond_the_budget_gives_up_with_the_hint(
    mock: respx.MockRouter, make_portal: Callable[..., RestPortal], sleep: FakeSleep
) -> None:
    """A Retry-After longer than the time budget ends the call; the hint is kept for later."""
    portal = make_portal(retry={"attempts": 5, "max_seconds": 10})
    route = service(mock, httpx.Response(429, headers={"Retry-After": "120"}), ok())
    with pytest.raises(PortalTransient) as caught:
        await portal.push_steps(ITEM)
    assert caught.value.retry_after == 120
    assert route.call_count == 1
    assert sleep.waits == []


@pytest.mark.parametrize(("status", "throttled"), [(429, True), (503, False)])
async def test_a_retry_after_travels_on_429_and_5xx_and_only_429_is_throttling(
    mock: respx.MockRouter,
    make_portal: Callable[..., RestPortal],
    sleep: FakeSleep,
    status: int,
    throttled: bool,
) -> None:
    """The re-raised failure keeps the hint either way; only a 429 is marked `throttled`
    (the push job counts no attempt for it)."""
    portal = make_portal(retry={"attempts": 5, "max_seconds": 10})
    route = service(mock, httpx.Response(status, headers={"Retry-After": "120"}), ok())
    with pytest.raises(PortalTransient) as caught:
        await portal.push_headers(ITEM, updating=False)
    assert caught.value.retry_after == 120
    assert caught.value.throttled is throttled
    assert route.call_count == 1
    assert sleep.waits == []


async def test_a_503_with_retry_after_waits_at_least_that_long(
    mock: respx.MockRouter, portal: RestPortal, sleep: FakeSleep
) -> None:
    """A 503 with Retry-After: 7 is retried within the call no sooner than 7 s later."""
    route = service(mock, httpx.Response(503, headers={"Retry-After": "7"}), ok())
    reply = await portal.push_steps(ITEM)
    assert reply.outcomes[0].status is OutcomeStatus.OK
    assert route.call_count == 2
    assert len(sleep.waits) == 1 and sleep.waits[0] >= 7


async def test_a_throttled_login_stays_throttled(
    mock: respx.MockRouter, make_portal: Callable[..., RestPortal]
) -> None:
    """A 429 on the login call reaches the job as throttling, with its Retry-After."""
    portal = make_portal(retry={"attempts": 5, "max_seconds": 10})
    mock.post("/auth").mock(return_value=httpx.Response(429, headers={"Retry-After": "300"}))
    with pytest.raises(PortalTransient) as caught:
        await portal.push_steps(ITEM)
    assert caught.value.throttled is True
    assert caught.value.retry_after == 300


async def test_5xx_then_success(
    mock: respx.MockRouter, portal: RestPortal, sleep: FakeSleep
) -> None:
    """A 503 is retried after a backoff wait within the configured bounds."""
    route = service(mock, httpx.Response(503, text="busy"), ok())
    reply = await portal.push_headers(ITEM, updating=False)
    assert reply.outcomes[0].status is OutcomeStatus.OK
    assert route.call_count == 2
    assert len(sleep.waits) == 1 and 0.5 <= sleep.waits[0] <= 4


async def test_transient_exhaustion_reraises_the_last_transient(
    mock: respx.MockRouter, portal: RestPortal, sleep: FakeSleep
) -> None:
    """After `attempts` tries the last PortalTransient is raised (not a RetryError)."""
    route = service(
        mock,
        httpx.Response(500),
        httpx.Response(502),
        httpx.Response(504),
        ok(),
    )
    with capture_logs() as logs, pytest.raises(PortalTransient, match="HTTP 504"):
        await portal.push_steps(ITEM)
    assert route.call_count == 3
    assert len(sleep.waits) == 2
    assert sleep.waits[1] >= sleep.waits[0] - 0.5  # exponential, give or take the jitter
    assert [e["event"] for e in logs].count("portal.retry") == 2


async def test_backoff_never_exceeds_backoff_max(
    mock: respx.MockRouter, make_portal: Callable[..., RestPortal], sleep: FakeSleep
) -> None:
    """Waits grow exponentially but stay within backoff_max."""
    portal = make_portal(
        retry={"attempts": 8, "max_seconds": 1000, "backoff_initial": 1, "backoff_max": 3}
    )
    service(mock, *([httpx.Response(503)] * 8))
    with pytest.raises(PortalTransient):
        await portal.push_steps(ITEM)
    assert len(sleep.waits) == 7
    assert all(1 <= w <= 3 for w in sleep.waits)
    assert sleep.waits[-1] == 3


async def test_time_budget_stops_retries(
    mock: respx.MockRouter, make_portal: Callable[..., RestPortal], sleep: FakeSleep
) -> None:
    """No new attempt starts once max_seconds of the call's budget are spent."""
    portal = make_portal(
        retry={"attempts": 50, "max_seconds": 5, "backoff_initial": 2, "backoff_max": 2}
    )
    route = service(mock, *([httpx.Response(503)] * 50))
    with pytest.raises(PortalTransient):
        await portal.push_steps(ITEM)
    assert sum(sleep.waits) <= 5
    assert route.call_count < 50


async def test_transient_error_code_is_retried(mock: respx.MockRouter, portal: RestPortal) -> None:
    """An error_code listed in transient_codes is retried, never a rejection."""
    route = service(mock, httpx.Response(200, json={"error_code": "503", "message": "busy"}), ok())
    reply = await portal.push_steps(ITEM)
    assert reply.outcomes[0].status is OutcomeStatus.OK
    assert route.call_count == 2


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ConnectError("connection refused"),
        httpx.RemoteProtocolError("peer closed connection"),
        httpx.ReadError("connection reset by peer"),
    ],
)
async def test_transport_failure_then_success(
    mock: respx.MockRouter, portal: RestPortal, failure: Exception
) -> None:
    """Timeouts, refused connections and resets are retried, then the call succeeds."""
    route = service(mock, failure, ok())
    reply = await portal.push_steps(ITEM)
    assert reply.outcomes[0].status is OutcomeStatus.OK
    assert route.call_count == 2


async def test_transport_failure_exhaustion_is_transient(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """A portal that never answers ends in PortalTransient naming the failure."""
    service(mock, *([httpx.ReadTimeout("read timed out")] * 3))
    with pytest.raises(PortalTransient, match="timeout"):
        await portal.push_steps(ITEM)


async def test_login_transient_failure_is_retried(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """A 503 on the login call is retried like any transient failure."""
    auth = mock.post("/auth").mock(side_effect=[httpx.Response(503), login_ok()])
    mock.post("/integration").mock(return_value=ok())
    reply = await portal.push_steps(ITEM)
    assert reply.outcomes[0].status is OutcomeStatus.OK
    assert auth.call_count == 2


async def test_redirect_is_a_configuration_problem(
    mock: respx.MockRouter, portal: RestPortal, sleep: FakeSleep
) -> None:
    """A redirect is not followed (a POST would lose its body): PortalRefused, no retry."""
    mock.post("/auth").mock(
        return_value=httpx.Response(301, headers={"Location": "https://elsewhere/auth"})
    )
    with pytest.raises(PortalRefused, match="base_url"):
        await portal.push_steps(ITEM)
    assert sleep.waits == []


class GatedSleep:
    """A fake sleep that waits until the test opens it, then moves the fake clock: calls
    stay parked in their wait for as long as the test looks at what else happens."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []
        self.opened = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await self.opened.wait()
        self.clock.now += seconds


async def test_a_retry_after_holds_every_call_of_the_client_while_one_waits_it_out(
    mock: respx.MockRouter, clock: FakeClock
) -> None:
    """A push met a 429 (Retry-After: 5) and waits it out inside its call; a look-up made
    meanwhile (the reconcile job's) waits too, and reaches the portal only afterwards."""
    sleep = GatedSleep(clock)
    portal = RestPortal(make_settings(), SecretStr(PASSWORD), sleep=sleep, clock=clock)
    mock.post("/auth").mock(return_value=login_ok())
    first = True

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal first
        if body_of(request)["service"] == "TraCuuHoSo":
            return ok(result=[])
        throttled, first = first, False
        return httpx.Response(429, headers={"Retry-After": "5"}) if throttled else ok()

    route = mock.post("/integration").mock(side_effect=answer)
    try:
        push = asyncio.create_task(portal.push_steps(ITEM))
        while not sleep.waits:
            await asyncio.sleep(0)
        lookup = asyncio.create_task(portal.lookup("000.00.01.H26-220713-0002"))
        for _ in range(20):
            await asyncio.sleep(0)
        assert [body_of(c.request)["service"] for c in route.calls] == ["CapNhatTienDoHoSoMC"]
        assert sleep.waits == [5, 5], "the look-up waits out the push's Retry-After"
        sleep.opened.set()
        await asyncio.wait_for(asyncio.gather(push, lookup), timeout=10)
    finally:
        await portal.aclose()
    assert route.call_count == 3


async def test_a_call_the_retry_after_outlasts_gives_up_unsent_with_the_time_left(
    mock: respx.MockRouter, make_portal: Callable[..., RestPortal], clock: FakeClock
) -> None:
    """After a push gave up on a Retry-After beyond its budget, a look-up within that time
    does not reach the portal: it fails as throttled, with the time left as its hint, so
    its job holds as the push's does."""
    portal = make_portal(retry={"attempts": 5, "max_seconds": 10})
    route = service(mock, httpx.Response(429, headers={"Retry-After": "120"}), ok())
    with pytest.raises(PortalTransient):
        await portal.push_steps(ITEM)
    clock.now += 20
    with pytest.raises(PortalTransient) as caught:
        await portal.lookup("000.00.01.H26-220713-0002")
    assert route.call_count == 1
    assert caught.value.throttled and caught.value.retry_after == 100
    clock.now += 100
    await portal.push_steps(ITEM)
    assert route.call_count == 2


async def test_a_call_that_failed_on_its_own_keeps_its_failure_when_the_gate_stops_it(
    mock: respx.MockRouter, clock: FakeClock
) -> None:
    """A push's first attempt met a plain 503; before its second, a look-up met a
    Retry-After beyond the push's budget. The push reports its own 503 (a failed call, its
    outcome unknown), not "not sent", and carries the wait as its hint."""
    mock.post("/auth").mock(return_value=login_ok())
    replies = iter([httpx.Response(503), httpx.Response(429, headers={"Retry-After": "120"})])
    route = mock.post("/integration").mock(side_effect=lambda request: next(replies))
    looked_up: list[PortalTransient] = []

    async def meanwhile(seconds: float) -> None:
        """The push's backoff; during the first one the look-up runs (and gives up at once:
        its Retry-After is beyond its budget, so it never sleeps here)."""
        if not looked_up:
            with pytest.raises(PortalTransient) as met:
                await portal.lookup("000.00.01.H26-220713-0002")
            looked_up.append(met.value)
        clock.now += seconds

    settings = make_settings(retry={"attempts": 3, "max_seconds": 10})
    portal = RestPortal(settings, SecretStr(PASSWORD), sleep=meanwhile, clock=clock)
    try:
        with pytest.raises(PortalTransient) as caught:
            await portal.push_steps(ITEM)
    finally:
        await portal.aclose()
    assert looked_up and looked_up[0].retry_after == 120
    assert route.call_count == 2, "the push's second attempt was not sent"
    assert "503" in caught.value.reason and not caught.value.throttled
    assert caught.value.retry_after is not None and caught.value.retry_after > 100
