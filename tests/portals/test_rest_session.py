"""The session: login, expiry by code, 401 or age, one login for many callers, refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx
from structlog.testing import capture_logs

from connector.core.records import OutcomeStatus
from connector.errors import PortalRefused, PortalTransient
from connector.portals.rest import RestPortal
from tests.portals.portal_fakes import PASSWORD, FakeClock, body_of, login_ok, ok

ITEM = [{"MaHoSo": "000.00.01.H26-220713-0001"}]


class TokenPortal:
    """A portal that issues tok-1, tok-2, ... and says "-1" to tokens it has expired."""

    def __init__(self, *, delay: float = 0.0, expired_status: int = 200) -> None:
        self.delay = delay
        self.expired_status = expired_status  # the HTTP status carrying "-1"
        self.logins = 0
        self.expired: set[str] = set()
        self.seen: list[str] = []

    async def login(self, request: httpx.Request) -> httpx.Response:
        self.logins += 1
        await asyncio.sleep(self.delay)
        return login_ok(f"tok-{self.logins}")

    async def service(self, request: httpx.Request) -> httpx.Response:
        token = body_of(request)["session"]
        self.seen.append(token)
        await asyncio.sleep(self.delay)
        if token in self.expired:
            body = {"error_code": "-1", "message": "Session hết hạn"}
            return httpx.Response(self.expired_status, json=body)
        return ok()


def install(mock: respx.MockRouter, fake: TokenPortal) -> None:
    mock.post("/auth").mock(side_effect=fake.login)
    mock.post("/integration").mock(side_effect=fake.service)


async def test_a_5xx_with_the_expired_code_that_persists_is_a_failure_not_a_refusal(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """Some portals say "-1" for any error: a 503 with it meets a fresh session the same
    way, so it is a transient failure (retried, then given up), never a refused login; and
    a Retry-After on it is a wait to honour, not a session to renew."""
    auth = mock.post("/auth").mock(side_effect=[login_ok(f"tok-{n}") for n in range(1, 20)])
    failing = httpx.Response(503, json={"error_code": "-1", "message": "Lỗi hệ thống"})
    mock.post("/integration").mock(return_value=failing)
    with pytest.raises(PortalTransient) as caught:
        await portal.push_steps(ITEM)
    assert "HTTP 503" in caught.value.reason
    assert not portal.session_state().startswith("refused")
    logins = auth.call_count
    waited = httpx.Response(503, headers={"Retry-After": "120"}, json={"error_code": "-1"})
    mock.post("/integration").mock(return_value=waited)
    with pytest.raises(PortalTransient) as hinted:
        await portal.push_steps(ITEM)
    assert hinted.value.retry_after == 120.0
    assert auth.call_count == logins, "no new login for a wait the portal asked for"


@pytest.mark.parametrize("status", [200, 500, 503])
async def test_expired_code_logs_in_again_once_and_resends(
    mock: respx.MockRouter, portal: RestPortal, status: int
) -> None:
    """An error_code listed as session-expired triggers one new login and one resend, even
    on a 5xx: not retries with the stale token until the session's time runs out."""
    fake = TokenPortal(expired_status=status)
    install(mock, fake)
    await portal.push_steps(ITEM)
    fake.expired.add("tok-1")
    reply = await portal.push_steps(ITEM)
    assert reply.outcomes[0].status is OutcomeStatus.OK
    assert fake.logins == 2
    assert fake.seen == ["tok-1", "tok-1", "tok-2"]


async def test_http_401_on_a_service_call_renews_the_session(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """HTTP 401 on a push means the token expired: log in again and resend."""
    auth = mock.post("/auth").mock(side_effect=[login_ok("tok-1"), login_ok("tok-2")])
    service = mock.post("/integration").mock(side_effect=[httpx.Response(401), ok()])
    reply = await portal.push_steps(ITEM)
    assert reply.outcomes[0].status is OutcomeStatus.OK
    assert auth.call_count == 2
    assert [body_of(c.request)["session"] for c in service.calls] == ["tok-1", "tok-2"]


async def test_still_expired_after_a_new_login_is_refused(
    mock: respx.MockRouter, portal: RestPortal, sleep: Any
) -> None:
    """If the fresh token is refused too, the call is refused (items stay queued, status
    says why), not transient: resending cannot help and must not cost the items attempts."""
    fake = TokenPortal()
    install(mock, fake)
    fake.expired.update({"tok-1", "tok-2"})
    with pytest.raises(PortalRefused, match="right after a fresh login: error_code -1"):
        await portal.push_steps(ITEM)
    assert fake.logins == 2
    assert fake.seen == ["tok-1", "tok-2"]  # not retried in-call
    assert sleep.waits == []
    assert portal.session_state().startswith("refused: ")
    fake.expired.clear()
    await portal.push_steps(ITEM)  # the next call logs in again
    assert fake.logins == 3 and portal.session_state() == "active"


async def test_http_401_after_a_new_login_is_refused(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """HTTP 401 on the resend that follows a fresh login is a refusal naming the status."""
    auth = mock.post("/auth").mock(side_effect=[login_ok("tok-1"), login_ok("tok-2")])
    unauthorised = httpx.Response(401, json={"message": "Token không hợp lệ"})
    service = mock.post("/integration").mock(return_value=unauthorised)
    with pytest.raises(PortalRefused) as caught:
        await portal.push_headers(ITEM, updating=False)
    assert "refused the session right after a fresh login: HTTP 401 Token không hợp lệ" in str(
        caught.value
    )
    assert auth.call_count == 2 and service.call_count == 2


async def test_token_older_than_ttl_is_renewed_before_sending(
    mock: respx.MockRouter, make_portal: Callable[..., RestPortal], clock: FakeClock
) -> None:
    """A token past session_ttl_seconds is replaced before the next call, unprompted."""
    portal = make_portal(session_ttl_seconds=600)
    fake = TokenPortal()
    install(mock, fake)
    await portal.push_steps(ITEM)
    clock.now += 599
    await portal.push_steps(ITEM)
    assert fake.logins == 1
    clock.now += 2
    assert portal.session_state() == "none"
    await portal.push_steps(ITEM)
    assert fake.logins == 2
    assert fake.seen == ["tok-1", "tok-1", "tok-2"]


async def test_twenty_concurrent_pushes_share_one_renewal(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """Twenty pushes hitting the same expired token cause exactly one new login."""
    fake = TokenPortal(delay=0.01)
    install(mock, fake)
    await portal.push_steps(ITEM)
    fake.expired.add("tok-1")
    replies = await asyncio.gather(*(portal.push_steps(ITEM) for _ in range(20)))
    assert all(r.outcomes[0].status is OutcomeStatus.OK for r in replies)
    assert fake.logins == 2
    assert fake.seen.count("tok-1") == 21  # every push really met the expired token
    assert fake.seen.count("tok-2") == 20


async def test_twenty_concurrent_first_calls_log_in_once(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """Before any session exists, concurrent callers wait for a single login."""
    fake = TokenPortal(delay=0.01)
    install(mock, fake)
    await asyncio.gather(*(portal.push_steps(ITEM) for _ in range(20)))
    assert fake.logins == 1


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(200, json={"error_code": "1", "message": "Sai mật khẩu"}),
        httpx.Response(401, json={"message": "Unauthorized"}),
        httpx.Response(403, text="Forbidden"),
    ],
)
async def test_login_refused_never_reveals_the_password(
    mock: respx.MockRouter, make_portal: Callable[..., RestPortal], reply: httpx.Response
) -> None:
    """A refused login raises PortalRefused without the password in text or logs."""
    portal = make_portal()
    auth = mock.post("/auth").mock(return_value=reply)
    service = mock.post("/integration").mock(return_value=ok())
    with capture_logs() as logs, pytest.raises(PortalRefused) as caught:
        await portal.push_steps(ITEM)
    assert "login refused" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(logs)
    assert any(entry["event"] == "portal.login_refused" for entry in logs)
    assert auth.call_count == 1  # a refusal is never retried in-call
    assert service.call_count == 0
    assert portal.session_state().startswith("refused: login refused")


async def test_refusal_names_the_portal_code_and_message(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """The refusal reason carries the portal's code and message for the operator."""
    mock.post("/auth").mock(
        return_value=httpx.Response(200, json={"error_code": 5, "message": "dstcode không đúng"})
    )
    with pytest.raises(PortalRefused, match="error_code 5 dstcode không đúng"):
        await portal.push_steps(ITEM)


async def test_password_echoed_by_the_portal_is_redacted(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """Even a portal that echoes the password back cannot get it into the reason."""
    echo = {"error_code": "1", "message": f"wrong password {PASSWORD}"}
    mock.post("/auth").mock(return_value=httpx.Response(200, json=echo))
    with capture_logs() as logs, pytest.raises(PortalRefused) as caught:
        await portal.push_steps(ITEM)
    assert PASSWORD not in str(caught.value)
    assert "***" in str(caught.value)
    assert PASSWORD not in repr(logs)


async def test_concurrent_callers_share_one_refused_login(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """Callers queued behind a refused login get its refusal instead of logging in again."""

    async def refuse(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        return httpx.Response(200, json={"error_code": "1", "message": "no"})

    auth = mock.post("/auth").mock(side_effect=refuse)
    results = await asyncio.gather(
        *(portal.push_steps(ITEM) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, PortalRefused) for r in results)
    assert auth.call_count == 1


async def test_successful_login_clears_a_refusal(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """session_state goes none → refused → active as the operator fixes the credentials."""
    assert portal.session_state() == "none"
    mock.post("/auth").mock(
        side_effect=[httpx.Response(200, json={"error_code": "1", "message": "no"}), login_ok()]
    )
    mock.post("/integration").mock(return_value=ok())
    with pytest.raises(PortalRefused):
        await portal.push_steps(ITEM)
    assert portal.session_state().startswith("refused: ")
    await portal.push_steps(ITEM)
    assert portal.session_state() == "active"


async def test_403_on_a_service_call_is_refused(
    mock: respx.MockRouter, portal: RestPortal, sleep: Any
) -> None:
    """HTTP 403 on a push is a call-level refusal: not retried, not an item rejection."""
    mock.post("/auth").mock(return_value=login_ok())
    service = mock.post("/integration").mock(
        return_value=httpx.Response(403, json={"message": "Đơn vị không có quyền"})
    )
    with pytest.raises(PortalRefused, match="403"):
        await portal.push_headers(ITEM, updating=False)
    assert service.call_count == 1
    assert sleep.waits == []
    assert portal.session_state().startswith("refused: ")


async def test_session_token_never_logged(mock: respx.MockRouter, portal: RestPortal) -> None:
    """Log events of a full login-expiry-renewal cycle hold neither password nor token."""
    fake = TokenPortal()
    install(mock, fake)
    with capture_logs() as logs:
        await portal.push_steps(ITEM)
        fake.expired.add("tok-1")
        await portal.push_steps(ITEM)
    text = repr(logs)
    assert "portal.login_ok" in text and "portal.session_expired" in text
    assert "tok-1" not in text and "tok-2" not in text and PASSWORD not in text
