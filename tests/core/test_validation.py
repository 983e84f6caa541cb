"""The portal's field rules for dossier headers and progress steps."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest

from connector.core.validation import (
    HEADER_FIELDS,
    LIST_FIELDS,
    STEP_FIELDS,
    Catalogue,
    check_header,
    check_step,
    is_portal_time,
)

HEADER: dict[str, Any] = {
    "MaHoSo": "000.00.11.H26-261127-0001",
    "MaTTHC": "1.001193",
    "TenTTHC": "Đăng ký khai sinh",
    "MaLinhVuc": "G09-HT",
    "TenLinhVuc": "Hộ tịch",
    "LoaiDoiTuong": "1",
    "ChuHoSo": "Nguyễn Văn An",
    "Email": "an.nguyen@example.vn",
    "SoDienThoai": "0912345678",
    "TrichYeuHoSo": "Đăng ký khai sinh cho con",
    "NgayTiepNhan": "20261127080000",
    "NgayHenTra": "20261128170000",
    "TrangThaiHoSo": "2",
    "HinhThuc": "0",
    "KenhThucHien": "2",
    "DonViXuLy": "Sở Tư pháp",
    "TaiLieuNop": [{"TepDinhKemId": "1", "TenTepDinhKem": "Tờ khai", "IsDeleted": "False"}],
}
STEP: dict[str, Any] = {
    "MaHoSo": "000.00.11.H26-261127-0001",
    "NguoiXuLy": "Trần Thị Bình",
    "ThoiDiemXuLy": "20261127090000",
    "NoiDungXuLy": "Tiếp nhận hồ sơ",
    "TrangThai": "2",
}
CATALOGUE = Catalogue(procedures=frozenset({"1.001193"}), agencies=frozenset({"000.00.11.H26"}))


def fields_and_reasons(problems: tuple[Any, ...]) -> list[tuple[str, str]]:
    return [(p.field, p.reason) for p in problems]


def test_valid_header_and_step_pass() -> None:
    """A complete, well-formed header and step have no problems."""
    assert check_header(HEADER, CATALOGUE) == ()
    assert check_step(STEP) == ()


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"MaHoSo": "H26-261127-1"}, "MaHoSo", "not a dossier code"),
        ({"MaHoSo": "000.00.11.H26-261340-0001"}, "MaHoSo", "not a real yyMMdd date"),
        ({"MaHoSo": "000.00.99.H26-261127-0001"}, "MaHoSo", "not in the agency catalogue"),
        ({"MaTTHC": "1.999999"}, "MaTTHC", "not in the procedure catalogue"),
        ({"MaTTHC": "HN-HT-01"}, "MaTTHC", "not a national procedure code"),
        ({"NgayHenTra": None}, "NgayHenTra", "required by the portal but missing"),
        ({"NgayHenTra": ""}, "NgayHenTra", "required by the portal but missing"),
        ({"MaLinhVuc": "   "}, "MaLinhVuc", "required by the portal but missing"),
        ({"DonViXuLy": "\u00a0"}, "DonViXuLy", "required by the portal but missing"),
        ({"GhiChu": ""}, "GhiChu", "empty or blank"),
        ({"GhiChu": " \t "}, "GhiChu", "empty or blank"),
        ({"TaiLieuNop": [{"TenTepDinhKem": "  "}]}, "TaiLieuNop[0].TenTepDinhKem", "blank"),
        ({"NgayHenTra": "20261126170000"}, "NgayHenTra", "earlier than NgayTiepNhan"),
        ({"NgayTiepNhan": "20261131080000"}, "NgayTiepNhan", "not a real time"),
        ({"NgayTiepNhan": "2026112708000"}, "NgayTiepNhan", "not a real time"),
        ({"NgayTiepNhan": "20261127250000"}, "NgayTiepNhan", "not a real time"),
        ({"TrangThaiHoSo": "11"}, "TrangThaiHoSo", "not one of the portal's codes"),
        ({"TrangThaiHoSo": 2}, "TrangThaiHoSo", "must be a string, got int"),
        ({"LoaiDoiTuong": "3"}, "LoaiDoiTuong", "not one of the portal's codes"),
        ({"KenhThucHien": "4"}, "KenhThucHien", "not one of the portal's codes"),
        ({"HinhThuc": "2"}, "HinhThuc", "not one of the portal's codes"),
        ({"DuocThanhToanTrucTuyen": "3"}, "DuocThanhToanTrucTuyen", "portal's codes"),
        ({"Email": "not-an-address"}, "Email", "not a plausible e-mail address"),
        ({"SoDienThoai": "09-1234"}, "SoDienThoai", "not a phone number"),
        ({"SoDienThoai": "0912"}, "SoDienThoai", "not a phone number"),
        ({"ChuHoSo": "Nguyễn\r\nVăn An"}, "ChuHoSo", "control character"),
        ({"TenTTHC": "Đăng ký\x00"}, "TenTTHC", "control character"),
        ({"TenTTHC": "tab\there"}, "TenTTHC", "control character"),
        ({"TrichYeuHoSo": unicodedata.normalize("NFD", "Hộ tịch")}, "TrichYeuHoSo", "NFC"),
        ({"TrichYeuHoSo": "x" * 2001}, "TrichYeuHoSo", "longer than 2000 characters (2001)"),
        ({"TenTTHC": "x" * 256}, "TenTTHC", "longer than 255 characters"),
        ({"SoBienNhanMoi": "1"}, "SoBienNhanMoi", "unknown field"),
        ({"TaiLieuNop": "file"}, "TaiLieuNop", "must be a list, got str"),
        ({"TaiLieuNop": [{"Ten": "x"}]}, "TaiLieuNop[0].Ten", "unknown field"),
        ({"TaiLieuNop": [{"IsDeleted": "no"}]}, "TaiLieuNop[0].IsDeleted", "portal's codes"),
        ({"TaiLieuNop": [{"TepDinhKemId": 1}]}, "TaiLieuNop[0].TepDinhKemId", "must be a str"),
    ],
)
def test_header_rules(change: dict[str, Any], field: str, words: str) -> None:
    """Each broken rule yields a problem naming the field and saying what is wrong."""
    payload = {**HEADER, **change}
    problems = fields_and_reasons(check_header(payload, CATALOGUE))
    assert any(f == field and words in r for f, r in problems), problems


@pytest.mark.parametrize("blank", ["", " ", "   ", "\t", "\u00a0", "\u3000"])
def test_a_blank_required_field_is_one_missing_problem(blank: str) -> None:
    """Blank text is missing: one problem, the same as for an absent field, and no other."""
    assert fields_and_reasons(check_header({**HEADER, "TrangThaiHoSo": blank}, CATALOGUE)) == [
        ("TrangThaiHoSo", "required by the portal but missing")
    ]
    assert fields_and_reasons(check_step({**STEP, "NguoiXuLy": blank})) == [
        ("NguoiXuLy", "required by the portal but missing")
    ]


def test_text_with_something_in_it_is_not_blank() -> None:
    """Surrounding spaces around real content are not blank (nor refused)."""
    assert check_header({**HEADER, "GhiChu": " ghi chú "}, CATALOGUE) == ()


def test_procedure_with_unit_suffix_matches_its_base_code() -> None:
    """'1.001193.H26' is accepted when the catalogue holds '1.001193'."""
    assert check_header({**HEADER, "MaTTHC": "1.001193.H26"}, CATALOGUE) == ()


def test_without_catalogue_codes_are_only_pattern_checked() -> None:
    """An empty Catalogue does not check membership."""
    payload = {**HEADER, "MaTTHC": "2.000001", "MaHoSo": "000.00.99.H26-261127-0001"}
    assert check_header(payload, Catalogue()) == ()


def test_every_missing_required_header_field_is_named() -> None:
    """An empty header lists each required field once."""
    problems = check_header({}, CATALOGUE)
    assert {p.field for p in problems} == {
        "MaHoSo", "MaTTHC", "TenTTHC", "MaLinhVuc", "TenLinhVuc", "LoaiDoiTuong", "Email",
        "SoDienThoai", "TrichYeuHoSo", "NgayTiepNhan", "NgayHenTra", "TrangThaiHoSo",
        "HinhThuc", "DonViXuLy",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"NguoiXuLy": None}, "NguoiXuLy", "required"),
        ({"ThoiDiemXuLy": "2026-11-27"}, "ThoiDiemXuLy", "not a real time"),
        ({"TrangThai": "0"}, "TrangThai", "not one of the portal's codes"),
        ({"NoiDungXuLy": "x" * 2001}, "NoiDungXuLy", "longer than 2000"),
        ({"TrangThaiHoSo": "2"}, "TrangThaiHoSo", "unknown field"),
        ({"TaiLieuNop": []}, "TaiLieuNop", "unknown field"),
    ],
)
def test_step_rules(change: dict[str, Any], field: str, words: str) -> None:
    """Steps have their own required fields and know no header fields."""
    problems = fields_and_reasons(check_step({**STEP, **change}))
    assert any(f == field and words in r for f, r in problems), problems


def test_personal_values_are_masked_in_problems() -> None:
    """A bad e-mail or phone is shown only as a fingerprint."""
    payload = {**HEADER, "Email": "an.nguyen@@example", "SoDienThoai": "09123x5678"}
    problems = check_header(payload, CATALOGUE)
    shown = " ".join(str(p) for p in problems)
    assert "an.nguyen" not in shown
    assert "09123x5678" not in shown
    assert shown.count("«masked:") == 2


def test_long_free_text_is_shown_shortened() -> None:
    """A 100 KB summary is reported with a short excerpt, not the whole text."""
    (problem,) = check_header({**HEADER, "TrichYeuHoSo": "a" * 100_000}, CATALOGUE)
    assert problem.value is not None and len(problem.value) < 100


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("20261127003000", True),
        ("20240229235959", True),
        ("20250229000000", False),
        ("20261131000000", False),
        ("20261301000000", False),
        ("20261127240000", False),
        ("20261127006000", False),
        ("00001127000000", False),
        ("2026112700300", False),
        ("2026112700300٠", False),
    ],
)
def test_is_portal_time(text: str, ok: bool) -> None:
    """Only 14 ASCII digits naming a real calendar time pass."""
    assert is_portal_time(text) is ok


def test_field_lists_include_the_newer_fields() -> None:
    """The newer header fields and list item fields are known to the validator."""
    assert {"KenhThucHien", "NgayNopHoSo", "SoDinhDanh", "DonViTinh"} <= HEADER_FIELDS
    assert {"DuocSoHoa", "DuocLayTuKhoDMQG"} <= LIST_FIELDS["TaiLieuNop"]
    assert {"MaGiayToKetQua", "MaKetQua"} <= LIST_FIELDS["DanhSachGiayToKetQua"]
    assert "ChucDanh" in STEP_FIELDS and "ChucDanh" not in HEADER_FIELDS
