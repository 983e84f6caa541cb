"""Push calls of the REST adapter: bodies, headers and the verdicts drawn from replies."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
import respx

from connector.core.records import Encoded, Outcome, OutcomeStatus
from connector.portals.rest import RestPortal
from tests.portals.portal_fakes import PASSWORD, TOKEN, body_of, login_ok, ok

HEADERS = [
    {"MaHoSo": "000.00.01.H26-220713-0001", "MaTTHC": "1.000948"},
    {"MaHoSo": "000.00.01.H26-220713-0002", "MaTTHC": "2.002492"},
]


def routes(mock: respx.MockRouter, *replies: Any) -> tuple[respx.Route, respx.Route]:
    auth = mock.post("/auth").mock(return_value=login_ok())
    service = mock.post("/integration").mock(side_effect=list(replies))
    return auth, service


async def test_login_then_push_sends_exact_bodies_and_headers(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """The login and the push carry the documented bodies, dstcode and JSON headers."""
    auth, service = routes(mock, ok())
    reply = await portal.push_headers(HEADERS, updating=False)

    assert body_of(auth.calls[0].request) == {"username": "svc-user", "password": PASSWORD}
    assert body_of(service.calls[0].request) == {
        "session": TOKEN,
        "madonvi": "000.00.01.H26",
        "service": "DongBoHoSoMC",
        "isUpdating": "False",
        "data": HEADERS,
    }
    for call in (auth.calls[0], service.calls[0]):
        assert call.request.headers["dstcode"] == "DST-42"
        assert call.request.headers["Accept"] == "application/json"
        assert call.request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert call.request.url == "https://127.0.0.1:8443/api/integration"
    assert reply.per_item is False
    assert [o.status for o in reply.outcomes] == [OutcomeStatus.OK, OutcomeStatus.OK]
    assert portal.session_state() == "active"


async def test_updating_flag_is_the_string_true(mock: respx.MockRouter, portal: RestPortal) -> None:
    """isUpdating travels as the capitalised string "True", never a JSON boolean."""
    _, service = routes(mock, ok())
    await portal.push_headers(HEADERS, updating=True)
    assert body_of(service.calls[0].request)["isUpdating"] == "True"


async def test_push_steps_body(mock: respx.MockRouter, portal: RestPortal) -> None:
    """A step push names CapNhatTienDoHoSoMC and has no isUpdating key."""
    _, service = routes(mock, ok())
    steps = [{"MaHoSo": "X-1", "ThoiDiemXuLy": "20260101080000", "TrangThai": "2"}]
    reply = await portal.push_steps(steps)
    body = body_of(service.calls[0].request)
    assert body["service"] == "CapNhatTienDoHoSoMC"
    assert "isUpdating" not in body
    assert body["data"] == steps
    assert reply.outcomes == (Outcome(status=OutcomeStatus.OK, code="0", message="ok"),)


async def test_encoded_payloads_go_out_byte_for_byte_and_match_by_ma_ho_so(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """Stored JSON is spliced into the body as it is, and per-item results still match."""
    stored = [orjson.dumps(h, option=orjson.OPT_SORT_KEYS) for h in HEADERS]
    items = [Encoded(raw, str(h["MaHoSo"])) for raw, h in zip(stored, HEADERS, strict=True)]
    result = [
        {"MaHoSo": HEADERS[1]["MaHoSo"], "error_code": "99", "message": "Sai MaTTHC"},
        {"MaHoSo": HEADERS[0]["MaHoSo"], "error_code": 0, "message": "ok"},
    ]
    _, service = routes(mock, ok(result=result))
    reply = await portal.push_headers(items, updating=False)
    content = service.calls[0].request.content
    assert b'"data":[' + b",".join(stored) + b"]" in content
    assert body_of(service.calls[0].request)["data"] == HEADERS
    assert [o.code for o in reply.outcomes] == ["0", "99"]


@pytest.mark.parametrize("code", [0, "0", "00"])
async def test_every_success_code_spelling_is_success(
    mock: respx.MockRouter, portal: RestPortal, code: object
) -> None:
    """0, "0" and "00" all mean success."""
    routes(mock, httpx.Response(200, json={"error_code": code, "message": ""}))
    reply = await portal.push_steps([{"MaHoSo": "X-1"}])
    assert reply.outcomes[0].status is OutcomeStatus.OK


async def test_per_item_results_matched_by_ma_ho_so(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """Per-item results decide each item, matched by MaHoSo whatever their order."""
    items = [{"MaHoSo": k} for k in ("A", "B", "C", "D")]
    result = [
        {"MaHoSo": "D", "error_code": "99", "message": "Sai MaTTHC"},
        {"MaHoSo": "C", "error_code": "404", "message": "không tồn tại"},
        {"MaHoSo": "B", "error_code": "409", "message": "đã tồn tại"},
        {"MaHoSo": "A", "error_code": 0, "message": "ok"},
    ]
    routes(mock, ok(result=result))
    reply = await portal.push_headers(items, updating=False)
    assert reply.per_item is True
    assert reply.outcomes == (
        Outcome(status=OutcomeStatus.OK, code="0", message="ok"),
        Outcome(status=OutcomeStatus.EXISTS, code="409", message="đã tồn tại"),
        Outcome(status=OutcomeStatus.MISSING, code="404", message="không tồn tại"),
        Outcome(status=OutcomeStatus.REJECTED, code="99", message="Sai MaTTHC"),
    )


async def test_reordered_step_results_are_matched_by_step_identity(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """Steps sharing one MaHoSo are matched to results naming their step, in any order."""
    steps = [
        {"MaHoSo": "A", "ThoiDiemXuLy": "20260101080000", "TrangThai": "1"},
        {"MaHoSo": "A", "ThoiDiemXuLy": "20260101090000", "TrangThai": "2"},
    ]
    result = [
        {"MaHoSo": "A", "ThoiDiemXuLy": "20260101090000", "TrangThai": "2", "error_code": "7"},
        {"MaHoSo": "A", "ThoiDiemXuLy": "20260101080000", "TrangThai": "1", "error_code": "0"},
    ]
    routes(mock, httpx.Response(200, json={"error_code": "7", "result": result}))
    stored = [Encoded(orjson.dumps(s), "A") for s in steps]
    reply = await portal.push_steps(stored)
    assert reply.per_item is True
    assert [o.status for o in reply.outcomes] == [OutcomeStatus.OK, OutcomeStatus.REJECTED]


async def test_disagreeing_step_results_without_identity_are_unknown(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """Two steps of one dossier, one result ok and one rejected, nothing telling which:
    both are unknown (sent again in smaller batches), never matched by position."""
    steps = [{"MaHoSo": "A", "TrangThai": "1"}, {"MaHoSo": "A", "TrangThai": "2"}]
    result = [{"MaHoSo": "A", "error_code": "7"}, {"MaHoSo": "A", "error_code": "0"}]
    routes(mock, httpx.Response(200, json={"error_code": "0", "result": result}))
    reply = await portal.push_steps(steps)
    assert [o.status for o in reply.outcomes] == [OutcomeStatus.UNKNOWN] * 2


async def test_partial_results_of_a_successful_call_ack_the_items_they_do_not_name(
    mock: respx.MockRouter, portal: RestPortal, sleep: Any
) -> None:
    """Results naming only the failed item decide it; the call's success covers the rest."""
    result = [{"MaHoSo": "B", "error_code": "99", "message": "Sai MaTTHC"}]
    _, service = routes(mock, ok(result=result))
    reply = await portal.push_headers([{"MaHoSo": k} for k in "ABC"], updating=False)
    assert [o.status for o in reply.outcomes] == [
        OutcomeStatus.OK,
        OutcomeStatus.REJECTED,
        OutcomeStatus.OK,
    ]
    assert reply.outcomes[1] == Outcome(
        status=OutcomeStatus.REJECTED, code="99", message="Sai MaTTHC"
    )
    assert service.call_count == 1 and sleep.waits == []


async def test_partial_results_of_a_failed_call_leave_the_other_items_unknown(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """When the call failed, items the results do not name are unknown, not rejected."""
    result = [{"MaHoSo": "A", "error_code": "0"}]
    routes(mock, httpx.Response(200, json={"error_code": "12", "message": "x", "result": result}))
    reply = await portal.push_headers([{"MaHoSo": "A"}, {"MaHoSo": "B"}], updating=False)
    assert reply.per_item is True
    assert [o.status for o in reply.outcomes] == [OutcomeStatus.OK, OutcomeStatus.UNKNOWN]


async def test_whole_batch_rejection_without_per_item_results(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """A non-success code without results rejects every item with the code verbatim."""
    routes(mock, httpx.Response(200, json={"error_code": "-2", "message": "Dữ liệu sai"}))
    reply = await portal.push_headers(HEADERS, updating=False)
    expected = Outcome(status=OutcomeStatus.REJECTED, code="-2", message="Dữ liệu sai")
    assert reply == type(reply)(per_item=False, outcomes=(expected, expected))


async def test_whole_batch_already_exists(mock: respx.MockRouter, portal: RestPortal) -> None:
    """A call-level already-exists code marks every item EXISTS (not REJECTED)."""
    routes(mock, httpx.Response(200, json={"error_code": 409, "message": "exists"}))
    reply = await portal.push_headers(HEADERS[:1], updating=False)
    assert reply.outcomes[0].status is OutcomeStatus.EXISTS


async def test_a_bare_http_409_is_already_exists(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """HTTP 409 without an error_code on DongBoHoSoMC, 409 being among the already-exists
    codes: the items are EXISTS (isUpdating is repaired after a lookup), not dead-lettered.
    A bare 404 stays a rejection (a wrong path answers 404 too), and so does a bare 409 on
    steps: a conflict there confirms nothing."""
    routes(mock, httpx.Response(409, json={"message": "Hồ sơ đã tồn tại"}))
    reply = await portal.push_headers(HEADERS[:1], updating=False)
    assert reply.outcomes == (
        Outcome(status=OutcomeStatus.EXISTS, code="HTTP 409", message="Hồ sơ đã tồn tại"),
    )
    mock.post("/integration").mock(return_value=httpx.Response(404, text="Not Found"))
    reply = await portal.push_headers(HEADERS[:1], updating=True)
    assert reply.outcomes == (Outcome(status=OutcomeStatus.REJECTED, code="HTTP 404"),)
    mock.post("/integration").mock(return_value=httpx.Response(409, json={"message": "x"}))
    reply = await portal.push_steps([{"MaHoSo": "A"}])
    assert reply.outcomes == (Outcome(status=OutcomeStatus.REJECTED, code="HTTP 409", message="x"),)


async def test_one_result_sent_as_an_object_decides_its_item(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """`result` as one object rather than a list of one: its failure is not lost under the
    call's success. And `0.0` as a code is the success `0`."""
    one = {"MaHoSo": HEADERS[0]["MaHoSo"], "error_code": 7, "message": "Sai"}
    routes(mock, httpx.Response(200, json={"error_code": 0, "result": one}))
    reply = await portal.push_headers(HEADERS[:1], updating=False)
    assert reply.outcomes == (Outcome(status=OutcomeStatus.REJECTED, code="7", message="Sai"),)
    mock.post("/integration").mock(return_value=httpx.Response(200, json={"error_code": 0.0}))
    reply = await portal.push_headers(HEADERS[:1], updating=False)
    assert reply.outcomes[0].status is OutcomeStatus.OK


async def test_http_400_rejects_every_item_with_the_body_message(
    mock: respx.MockRouter, portal: RestPortal, sleep: Any
) -> None:
    """An HTTP 400 is a permanent rejection of the items, not retried."""
    _, service = routes(mock, httpx.Response(400, json={"message": "Thiếu trường MaTTHC"}))
    reply = await portal.push_headers(HEADERS, updating=False)
    assert reply.http_status == 400
    assert reply.per_item is False
    assert set(reply.outcomes) == {
        Outcome(status=OutcomeStatus.REJECTED, code="HTTP 400", message="Thiếu trường MaTTHC")
    }
    assert service.call_count == 1
    assert sleep.waits == []


async def test_http_4xx_rejection_keeps_the_portal_code_and_message(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """A 4xx with a coded JSON body rejects with the portal's code, verbatim."""
    body = {"error_code": "E-102", "message": "Sai định dạng NgayTiepNhan"}
    routes(mock, httpx.Response(422, json=body))
    reply = await portal.push_steps([{"MaHoSo": "A"}])
    assert reply.outcomes == (
        Outcome(
            status=OutcomeStatus.REJECTED,
            code="E-102",
            message="Sai định dạng NgayTiepNhan (HTTP 422)",
        ),
    )


async def test_http_422_without_json_rejects_with_empty_message(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """A 4xx with a non-JSON body still rejects, with the status as the code."""
    routes(mock, httpx.Response(422, text="<html>bad</html>"))
    reply = await portal.push_steps([{"MaHoSo": "A"}])
    assert reply.outcomes == (Outcome(status=OutcomeStatus.REJECTED, code="HTTP 422"),)


async def test_empty_batch_is_refused_before_any_call(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """An empty item list is a caller bug: ValueError, and nothing is sent."""
    auth, service = routes(mock)
    with pytest.raises(ValueError):
        await portal.push_headers([], updating=False)
    with pytest.raises(ValueError):
        await portal.push_steps([])
    assert auth.call_count == 0 and service.call_count == 0
