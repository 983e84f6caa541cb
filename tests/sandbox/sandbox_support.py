"""Helpers for the sandbox portal tests: payload builders and a REST-profile client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from connector.sandbox import SandboxConfig

PASSWORD = "s3cret-pw"
DSTCODE = {"dstcode": "DEMO-DST"}
UNIT = "000.00.01.H26"


def make_config(**overrides: Any) -> SandboxConfig:
    """A sandbox config with a throw-away database unless the test gives one."""
    return SandboxConfig(**{"password": PASSWORD, "db_path": ":memory:", **overrides})


def code(n: int = 1) -> str:
    """The n-th dossier code of the tests."""
    return f"{UNIT}-220713-{n:04d}"


def dossier(n: int = 1, **fields: Any) -> dict[str, Any]:
    """A complete, valid dossier header; `fields` override or (with None) remove keys."""
    base = {
        "MaHoSo": code(n),
        "MaTTHC": "1.000948",
        "TenTTHC": "Cấp giấy phép xây dựng",
        "MaLinhVuc": "G03-GD10",
        "TenLinhVuc": "Xây dựng",
        "LoaiDoiTuong": "1",
        "ChuHoSo": "Nguyễn Văn An",
        "Email": "an@example.vn",
        "SoDienThoai": "0912345678",
        "TrichYeuHoSo": "Xin cấp phép",
        "NgayTiepNhan": "20220713080000",
        "NgayHenTra": "20220720170000",
        "TrangThaiHoSo": "2",
        "HinhThuc": "0",
        "DonViXuLy": "UBND huyện",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def step(
    n: int = 1, at: str = "20220713090000", status: str = "4", **fields: Any
) -> dict[str, Any]:
    """A valid progress step of dossier n."""
    base = {
        "MaHoSo": code(n),
        "NguoiXuLy": "Trần Thị Bình",
        "ThoiDiemXuLy": at,
        "NoiDungXuLy": "Chuyển xử lý",
        "TrangThai": status,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class PortalClient:
    """Speaks the REST profile to a sandbox app, logging in on first use."""

    def __init__(self, http: httpx.AsyncClient, app: Any) -> None:
        self.http = http
        self.app = app
        self.session: str | None = None

    async def login(self) -> str:
        reply = await self.http.post(
            "/auth", json={"username": "demo", "password": PASSWORD}, headers=DSTCODE
        )
        self.session = reply.json()["session"]
        return self.session

    async def call(self, service: str, path: str = "/integration", **body: Any) -> httpx.Response:
        session = self.session or await self.login()
        payload = {"session": session, "madonvi": UNIT, "service": service, **body}
        return await self.http.post(path, json=payload, headers=DSTCODE)

    async def push(self, items: list[Any], updating: str = "False") -> dict[str, Any]:
        reply = await self.call("DongBoHoSoMC", isUpdating=updating, data=items)
        return dict(reply.json())

    async def steps(self, items: list[Any]) -> dict[str, Any]:
        return dict((await self.call("CapNhatTienDoHoSoMC", data=items)).json())

    async def lookup(self, mahoso: str) -> dict[str, Any]:
        return dict((await self.call("TraCuuHoSo", mahoso=mahoso)).json())

    async def stats(self) -> dict[str, Any]:
        return dict((await self.http.get("/_sandbox/stats")).json())


#: Builds a PortalClient of a fresh in-process sandbox (the `make_client` fixture).
ClientFactory = Callable[..., PortalClient]
