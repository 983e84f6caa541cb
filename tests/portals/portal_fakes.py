"""Helpers shared by the portal adapter tests: settings, canned replies, fake time."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from connector.settings import PortalSettings, RetrySettings, TimeoutSettings

BASE_URL = "https://127.0.0.1:8443/api"
PASSWORD = "S3cr3t-Pa55!word"
TOKEN = "tok-1"


class FakeClock:
    """A monotonic clock the test moves by hand (and the fake sleep moves too)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeSleep:
    """Records every wait instead of waiting, and advances the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.now += seconds


def make_settings(**overrides: Any) -> PortalSettings:
    values: dict[str, Any] = {
        "base_url": BASE_URL,
        "username": "svc-user",
        "dstcode": "DST-42",
        "madonvi": "000.00.01.H26",
        "retry": RetrySettings(attempts=3, max_seconds=60, backoff_initial=0.5, backoff_max=4),
        "timeouts": TimeoutSettings(connect=1, read=1, write=1, pool=1, total=5),
    }
    values.update(overrides)
    return PortalSettings(**values)


def ok(**extra: Any) -> httpx.Response:
    return httpx.Response(200, json={"error_code": 0, "message": "ok", **extra})


def login_ok(token: str = TOKEN) -> httpx.Response:
    return httpx.Response(200, json={"error_code": 0, "message": "ok", "session": token})


def body_of(request: httpx.Request) -> dict[str, Any]:
    value = orjson.loads(request.content)
    assert isinstance(value, dict)
    return value
