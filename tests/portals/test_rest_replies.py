"""Replies whose outcome is unknown: malformed, oversized or too slow are never success."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import respx

from connector.errors import PortalTransient
from connector.portals.rest import RestPortal
from tests.portals.portal_fakes import login_ok

ITEM = [{"MaHoSo": "000.00.01.H26-220713-0001"}]


@pytest.fixture
def once(make_portal: Callable[..., RestPortal]) -> RestPortal:
    """A portal that tries each call once, so each test sees the first verdict."""
    return make_portal(retry={"attempts": 1})


def answer(mock: respx.MockRouter, reply: httpx.Response) -> None:
    mock.post("/auth").mock(return_value=login_ok())
    mock.post("/integration").mock(return_value=reply)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (httpx.Response(200, text="Service Unavailable"), "not JSON"),
        (
            httpx.Response(200, html="<!DOCTYPE html><html><body>Lỗi hệ thống</body></html>"),
            "not JSON",
        ),
        (httpx.Response(200, content=b'{"error_code": "0", "message": "\xff\xfe"}'), "UTF-8"),
        (httpx.Response(200, json=[{"error_code": 0}]), "not an object"),
        (httpx.Response(200, json={"message": "ok"}), "no error_code"),
        (httpx.Response(200, content=b""), "not JSON"),
    ],
    ids=["text", "html-200", "invalid-utf8", "json-array", "no-code", "empty"],
)
async def test_unreadable_replies_are_transient(
    mock: respx.MockRouter, once: RestPortal, reply: httpx.Response, reason: str
) -> None:
    """A reply that cannot be read as a coded JSON object is transient, never success."""
    answer(mock, reply)
    with pytest.raises(PortalTransient, match=reason):
        await once.push_headers(ITEM, updating=False)


async def test_oversized_streamed_reply_is_cut_off(
    mock: respx.MockRouter, make_portal: Callable[..., RestPortal]
) -> None:
    """Reading stops past max_reply_bytes even when no Content-Length announced it."""
    portal = make_portal(retry={"attempts": 1}, max_reply_bytes=1024)
    pulled: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            pulled.append(1)
            yield b" " * 512

    answer(mock, httpx.Response(200, content=chunks()))
    with pytest.raises(PortalTransient, match="larger than 1024 bytes"):
        await portal.push_steps(ITEM)
    assert len(pulled) < 5


async def test_oversized_declared_reply_is_refused_before_reading(
    mock: respx.MockRouter, make_portal: Callable[..., RestPortal]
) -> None:
    """A Content-Length above the cap is refused at once."""
    portal = make_portal(retry={"attempts": 1}, max_reply_bytes=64)
    answer(mock, httpx.Response(200, json={"error_code": 0, "message": "x" * 100}))
    with pytest.raises(PortalTransient, match="larger than 64 bytes"):
        await portal.push_steps(ITEM)


async def test_total_deadline_cuts_a_trickling_reply(
    mock: respx.MockRouter, make_portal: Callable[..., RestPortal]
) -> None:
    """A server that trickles its body cannot hold a call beyond timeouts.total."""
    portal = make_portal(
        retry={"attempts": 1},
        timeouts={"connect": 1, "read": 5, "write": 1, "pool": 1, "total": 0.3},
    )

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"error_code": '
        for _ in range(100):
            await asyncio.sleep(0.1)  # each chunk well inside the read timeout
            yield b" "

    answer(mock, httpx.Response(200, content=trickle()))
    started = time.monotonic()
    with pytest.raises(PortalTransient, match=r"within 0\.3 s"):
        await portal.push_steps(ITEM)
    assert time.monotonic() - started < 2


async def test_timeout_then_success(
    mock: respx.MockRouter, make_portal: Callable[..., RestPortal]
) -> None:
    """A slow first reply hits the total deadline; the retry gets the answer."""
    calls: list[float] = []

    async def reply(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            await asyncio.sleep(5)
        return httpx.Response(200, json={"error_code": 0})

    mock.post("/auth").mock(return_value=login_ok())
    mock.post("/integration").mock(side_effect=reply)
    portal = make_portal(timeouts={"connect": 1, "read": 1, "write": 1, "pool": 1, "total": 0.2})
    result = await portal.push_steps(ITEM)
    assert result.outcomes[0].code == "0"
    assert len(calls) == 2
