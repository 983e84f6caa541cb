"""Fixtures for the portal adapter tests: fake clock and sleep, respx, portal factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import respx
from pydantic import SecretStr

from connector.portals.rest import RestPortal
from tests.portals.portal_fakes import BASE_URL, PASSWORD, FakeClock, FakeSleep, make_settings


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleep(clock: FakeClock) -> FakeSleep:
    return FakeSleep(clock)


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def make_portal(
    clock: FakeClock, sleep: FakeSleep
) -> AsyncIterator[Callable[..., RestPortal]]:
    made: list[RestPortal] = []

    def factory(**overrides: Any) -> RestPortal:
        transport = overrides.pop("transport", None)
        portal = RestPortal(
            make_settings(**overrides),
            SecretStr(PASSWORD),
            transport=transport,
            sleep=sleep,
            clock=clock,
        )
        made.append(portal)
        return portal

    yield factory
    for portal in made:
        await portal.aclose()


@pytest.fixture
def portal(make_portal: Callable[..., RestPortal]) -> RestPortal:
    return make_portal()
