"""The sandbox's field rules, checked directly (no HTTP)."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest

from connector.sandbox.rules import check_dossier, check_step, is_portal_date
from tests.sandbox.sandbox_support import dossier, step

DECOMPOSED = unicodedata.normalize("NFD", "Nguyễn Văn An")


def test_a_complete_dossier_passes() -> None:
    """A dossier with every required field in the right form is accepted."""
    assert check_dossier(dossier(), None) is None


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"Foo": "1"}, "Foo"),
        ({"ChuHoSo": ""}, "ChuHoSo"),
        ({"GhiChu": None}, "GhiChu"),
        ({"ChuHoSo": DECOMPOSED}, "ChuHoSo"),
        ({"NgayHenTra": "20220231170000"}, "NgayHenTra"),
        ({"NgayTiepNhan": "2022-07-13 08:00"}, "NgayTiepNhan"),
        ({"MaHoSo": "000.00.01.H26-220713-01"}, "MaHoSo"),
        ({"MaHoSo": "H26-220713-0001"}, "MaHoSo"),
        ({"MaTTHC": "TTHC-01"}, "MaTTHC"),
        ({"TrangThaiHoSo": "11"}, "TrangThaiHoSo"),
        ({"TrangThaiHoSo": 2}, "TrangThaiHoSo"),
        ({"LoaiDoiTuong": "3"}, "LoaiDoiTuong"),
        ({"KenhThucHien": "4"}, "KenhThucHien"),
        ({"HinhThuc": "2"}, "HinhThuc"),
        ({"Email": None}, "Email"),
        ({"TaiLieuNop": {"TenTepDinhKem": "a.pdf"}}, "TaiLieuNop"),
        ({"TaiLieuNop": [{"TenTepDinhKem": "a.pdf", "Size": "1"}]}, "TaiLieuNop[0].Size"),
        ({"DanhSachLePhi": [{"Gia": 0}]}, "DanhSachLePhi[0].Gia"),
        ({"DanhSachLePhi": ["phí"]}, "DanhSachLePhi[0]"),
        ({"DanhSachHoSoBoSung": [{"NgayBoSung": "2022"}]}, "DanhSachHoSoBoSung[0].NgayBoSung"),
    ],
)
def test_a_faulty_dossier_is_refused_naming_the_field(fields: dict[str, Any], named: str) -> None:
    """Each broken rule refuses the dossier with a message that names the field."""
    item = dossier()
    item.update(fields)  # keeps None values, unlike the builder
    problem = check_dossier(item, None)
    assert problem is not None
    assert problem.startswith(named)


def test_email_left_out_is_reported_missing() -> None:
    """Leaving out a required field is refused as missing."""
    item = dossier()
    del item["Email"]
    assert check_dossier(item, None) == "Email: required field missing"


def test_list_fields_accept_known_item_keys() -> None:
    """Lists with their documented item keys, including nested supplement lists, pass."""
    item = dossier(
        TaiLieuNop=[{"TepDinhKemId": "1", "TenTepDinhKem": "đơn.pdf", "IsDeleted": "False"}],
        DanhSachLePhi=[{"TenPhiLePhi": "Lệ phí", "Gia": "0"}],
        DanhSachHoSoBoSung=[{"HoSoBoSungId": "1", "DanhSachGiayToBoSung": [{"Ten": "a"}]}],
        KenhThucHien="2",
    )
    assert check_dossier(item, None) is None


def test_procedure_catalogue_is_enforced_when_loaded() -> None:
    """With a catalogue, an unknown MaTTHC is refused and a known one (even suffixed) passes."""
    catalogue = frozenset({"1.000948"})
    assert check_dossier(dossier(MaTTHC="1.000948.H26"), catalogue) is None
    assert "catalogue" in (check_dossier(dossier(MaTTHC="2.002492"), catalogue) or "")


def test_a_step_needs_its_fields_and_a_known_status() -> None:
    """A step is refused when a required field is missing, a key unknown or a code wrong."""
    assert check_step(step()) is None
    assert check_step(step(NoiDungXuLy=None)) == "NoiDungXuLy: required field missing"
    assert (check_step(step(MaBuoc="1")) or "").startswith("MaBuoc")
    assert (check_step(step(status="0")) or "").startswith("TrangThai")
    assert (check_step(step(at="20221301000000")) or "").startswith("ThoiDiemXuLy")


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("20240229235959", True),
        ("20230229000000", False),
        ("20220713246000", False),
        ("20220700080000", False),
        ("00000101000000", False),
        ("2022071308000", False),
        ("٢٠٢٢٠٧١٣٠٨٠٠٠٠", False),
    ],
)
def test_portal_dates_must_be_real_times(text: str, ok: bool) -> None:
    """Only 14 ASCII digits forming a real calendar time are a portal date."""
    assert is_portal_date(text) is ok
