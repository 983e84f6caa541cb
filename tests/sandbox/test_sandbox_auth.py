"""Login, dstcode and sessions of the sandbox portal."""

from __future__ import annotations

from tests.sandbox.sandbox_support import (
    DSTCODE,
    PASSWORD,
    UNIT,
    ClientFactory,
    FakeClock,
    make_config,
)


async def test_a_wrong_or_missing_dstcode_is_refused(make_client: ClientFactory) -> None:
    """Login and service calls without the configured dstcode get HTTP 403."""
    portal = make_client()
    for headers in ({}, {"dstcode": "OTHER"}):
        reply = await portal.http.post(
            "/auth", json={"username": "demo", "password": PASSWORD}, headers=headers
        )
        assert reply.status_code == 403
        assert reply.json() == {"error_code": "403", "message": "dstcode refused"}
    session = await portal.login()
    body = {"session": session, "madonvi": UNIT, "service": "TraCuuHoSo", "mahoso": "x"}
    assert (await portal.http.post("/integration", json=body)).status_code == 403
    assert (await portal.stats())["dstcode_refused"] == 3


async def test_login_hands_out_a_session(make_client: ClientFactory) -> None:
    """Right credentials get error_code "0" and a token that opens service calls."""
    portal = make_client()
    reply = await portal.http.post(
        "/auth", json={"username": "demo", "password": PASSWORD}, headers=DSTCODE
    )
    assert reply.status_code == 200
    assert reply.json()["error_code"] == "0"
    portal.session = reply.json()["session"]
    assert (await portal.lookup("000.00.01.H26-220713-0001"))["error_code"] == "0"
    assert (await portal.stats())["logins"] == 1


async def test_wrong_credentials_are_refused_with_401(make_client: ClientFactory) -> None:
    """A wrong password or a missing username gets HTTP 401 and no session."""
    portal = make_client()
    for body in ({"username": "demo", "password": "nope"}, {"password": PASSWORD}):
        reply = await portal.http.post("/auth", json=body, headers=DSTCODE)
        assert reply.status_code == 401
        assert reply.json() == {"error_code": "401", "message": "invalid credentials"}


async def test_a_body_that_is_not_json_gets_http_400(make_client: ClientFactory) -> None:
    """A login or service call whose body is not a JSON object is answered HTTP 400."""
    portal = make_client()
    assert (await portal.http.post("/auth", content=b"{nope", headers=DSTCODE)).status_code == 400
    assert (await portal.http.post("/integration", json=[1], headers=DSTCODE)).status_code == 400


async def test_sessions_expire_after_their_ttl(make_client: ClientFactory) -> None:
    """A token older than session_ttl gets error_code "-1" in an HTTP 200 reply."""
    clock = FakeClock()
    portal = make_client(make_config(session_ttl=60.0), clock=clock)
    await portal.login()
    clock.now += 59.0
    assert (await portal.lookup("x-1"))["error_code"] == "0"
    clock.now += 2.0
    reply = await portal.call("TraCuuHoSo", mahoso="x-1")
    assert reply.status_code == 200
    assert reply.json() == {"error_code": "-1", "message": "session expired"}


async def test_expired_sessions_can_be_answered_with_http_401(make_client: ClientFactory) -> None:
    """With session_expired_http an unknown token is answered HTTP 401."""
    portal = make_client(make_config(session_expired_http=True))
    portal.session = "forged-token"
    reply = await portal.call("TraCuuHoSo", mahoso="x-1")
    assert reply.status_code == 401
    assert reply.json()["error_code"] == "-1"
    assert (await portal.stats())["session_expired"] == 1
