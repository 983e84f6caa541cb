"""TraCuuHoSo and the catalogues: what the portal holds, or an honest 'unknown'."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import respx

from connector.errors import PortalTransient
from connector.portals.rest import RestPortal
from tests.portals.portal_fakes import TOKEN, body_of, login_ok, ok

CODE = "000.00.01.H26-220713-0001"


def lookup_route(mock: respx.MockRouter, *replies: httpx.Response) -> respx.Route:
    mock.post("/auth").mock(return_value=login_ok())
    return mock.post("/integration").mock(side_effect=list(replies))


@pytest.fixture
def once(make_portal: Callable[..., RestPortal]) -> RestPortal:
    return make_portal(retry={"attempts": 1})


async def test_lookup_found(mock: respx.MockRouter, portal: RestPortal) -> None:
    """A found dossier yields its fields and step count; the body names mahoso."""
    row = {"MaHoSo": CODE, "TrangThaiHoSo": "4", "SoBuocXuLy": "3"}
    route = lookup_route(mock, ok(result=[row]))
    view = await portal.lookup(CODE)
    assert body_of(route.calls[0].request) == {
        "session": TOKEN,
        "madonvi": "000.00.01.H26",
        "service": "TraCuuHoSo",
        "mahoso": CODE,
    }
    assert view is not None
    assert view.ma_ho_so == CODE
    assert view.fields["TrangThaiHoSo"] == "4"
    assert view.step_count == 3


async def test_lookup_result_as_one_object(mock: respx.MockRouter, portal: RestPortal) -> None:
    """The documented shape: `result` is the one object the portal holds."""
    row = {"MaHoSo": CODE, "TrangThaiHoSo": "4", "SoBuocXuLy": 5}
    lookup_route(mock, ok(result=row))
    view = await portal.lookup(CODE)
    assert view is not None
    assert view.fields["TrangThaiHoSo"] == "4" and view.step_count == 5


async def test_lookup_without_step_count(mock: respx.MockRouter, portal: RestPortal) -> None:
    """A result without SoBuocXuLy counts zero steps."""
    lookup_route(mock, ok(result=[{"MaHoSo": CODE}]))
    view = await portal.lookup(CODE)
    assert view is not None and view.step_count == 0


@pytest.mark.parametrize(
    "reply",
    [
        ok(result=[]),
        ok(),
        ok(result=None),
        ok(result={}),
        httpx.Response(200, json={"error_code": "404", "message": "none"}),
    ],
    ids=["empty-result", "no-result", "null-result", "empty-object", "not-found-code"],
)
async def test_lookup_not_found(
    mock: respx.MockRouter, portal: RestPortal, reply: httpx.Response
) -> None:
    """An empty result or a not-found code means the portal holds nothing."""
    lookup_route(mock, reply)
    assert await portal.lookup(CODE) is None


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(200, json={"error_code": "77", "message": "lỗi"}),
        httpx.Response(400, json={"message": "bad"}),
        ok(result="000.00.01.H26-220713-0001"),
    ],
    ids=["other-code", "http-400", "result-a-string"],
)
async def test_lookup_other_failures_are_unknown(
    mock: respx.MockRouter, once: RestPortal, reply: httpx.Response
) -> None:
    """A lookup that neither finds nor denies the dossier is transient, never 'absent'."""
    lookup_route(mock, reply)
    with pytest.raises(PortalTransient):
        await once.lookup(CODE)


async def test_catalogue_uses_the_share_path(mock: respx.MockRouter, portal: RestPortal) -> None:
    """Catalogues are asked on share_path and return their rows."""
    mock.post("/auth").mock(return_value=login_ok())
    rows = [{"MATTHC": "1.000948", "TENTTHC": "Cấp giấy phép"}]
    route = mock.post("/share").mock(return_value=ok(result=rows))
    assert await portal.catalogue("LayDanhSachTTHC") == rows
    assert body_of(route.calls[0].request)["service"] == "LayDanhSachTTHC"


async def test_catalogue_rejects_unknown_services(portal: RestPortal) -> None:
    """Only the three catalogue services can be asked for."""
    with pytest.raises(ValueError, match="unknown catalogue"):
        await portal.catalogue("DongBoHoSoMC")
