"""The portal's field rules, as the sandbox enforces them.

This is a second, independent reading of the contract (portal-protocol.md §1 and §3 and the
field tables of dvcqg-reference.md §4–§6). It deliberately shares no code with the
connector's own validation: the sandbox exists to catch the connector's mistakes, which a
shared rule would repeat on both sides.

Each check returns a message naming the offending field, or None; the portal code for a rule
failure is always "400". The checks run once per item on the hot path, so the tables are
built at import and every test is a set lookup, a precompiled regex or a few int() calls.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Mapping
from typing import Any
from unicodedata import is_normalized

#: The portal code for an item or call that breaks a rule.
RULE_CODE = "400"

_STATUS = frozenset(str(n) for n in range(1, 11))

HEADER_FIELDS = frozenset(
    {
        # dvcqg-reference.md §4, the OpenCPS table
        "MaHoSo", "MaTTHC", "TenTTHC", "MaLinhVuc", "TenLinhVuc", "SoBienNhan", "ChuHoSo",
        "LoaiDoiTuong", "MaDoiTuong", "ThongTinKhac", "Email", "Fax", "SoDienThoai",
        "TrichYeuHoSo", "NgayTiepNhan", "NgayHenTra", "TrangThaiHoSo", "NgayTra", "ThongTinTra",
        "HinhThuc", "NgayKetThucXuLy", "DonViXuLy", "GhiChu",
        # §4, the "newer fields" table
        "KenhThucHien", "NgayNopHoSo", "NgayTuChoi", "NoiNopHoSo", "HoSoCoThanhPhanSoHoa",
        "TaiKhoanDuocXacThucVoiVNeID", "DuocThanhToanTrucTuyen", "LoaiDinhDanh", "SoDinhDanh",
        "MaCSDL", "ThoiGianGiaiQuyet", "DonViTinh",
    }
)  # fmt: skip

#: The list fields of a dossier and the keys their items may carry.
LIST_FIELDS: Mapping[str, frozenset[str]] = {
    "TaiLieuNop": frozenset(
        {
            "TepDinhKemId", "TenTepDinhKem", "IsDeleted", "MaThanhPhanHoSo",
            "DuongDanTaiTepTin", "DuocSoHoa", "DuocLayTuKhoDMQG",
        }
    ),
    "DanhSachLePhi": frozenset(
        {"TenPhiLePhi", "MaPhiLePhi", "HinhThucThu", "Gia", "LoaiPhiLePhi"}
    ),
    "DanhSachTepDinhKemKhac": frozenset({"TenGiayTo", "SoLuong", "LoaiGiayTo"}),
    "DanhSachHoSoBoSung": frozenset(
        {
            "HoSoBoSungId", "NguoiYeuCauBoSung", "NoiDungBoSung", "NgayBoSung",
            "NguoiTiepNhanBoSung", "ThongTinTiepNhan", "NgayTiepNhanBoSung", "TrangThaiBoSung",
            "DanhSachGiayToBoSung", "DanhSachLePhiBoSung", "NgayHenTraTruoc", "NgayHenTraMoi",
        }
    ),
    "DanhSachGiayToKetQua": frozenset(
        {
            "TenGiayTo", "MaThanhPhanHoSo", "GiayToId", "DuongDanTepTinKetQua",
            "MaGiayToKetQua", "MaKetQua",
        }
    ),
}  # fmt: skip

#: Supplement-round keys whose content the reference leaves open: a string, or a list of
#: flat objects of strings.
_OPEN_NESTED = frozenset({"DanhSachGiayToBoSung", "DanhSachLePhiBoSung"})

DOSSIER_REQUIRED = frozenset((
    "MaHoSo", "MaTTHC", "TenTTHC", "MaLinhVuc", "TenLinhVuc", "LoaiDoiTuong", "Email",
    "SoDienThoai", "TrichYeuHoSo", "NgayTiepNhan", "NgayHenTra", "TrangThaiHoSo", "HinhThuc",
    "DonViXuLy",
))  # fmt: skip

STEP_REQUIRED = frozenset(("MaHoSo", "NguoiXuLy", "ThoiDiemXuLy", "NoiDungXuLy", "TrangThai"))
STEP_FIELDS = frozenset(
    {*STEP_REQUIRED, "ChucDanh", "PhongBanXuLy", "NgayBatDau", "NgayKetThucTheoQuyDinh"}
)

_MA_HO_SO = re.compile(r"[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}-[0-9]{6}-[0-9]{4}")
_MA_TTHC = re.compile(r"[0-9]\.[0-9]{6}(?:\.[0-9A-Z]+)*")


_LAST_DAY = {
    "01": "31", "02": "28", "03": "31", "04": "30", "05": "31", "06": "30",
    "07": "31", "08": "31", "09": "30", "10": "31", "11": "30", "12": "31",
}  # fmt: skip


def is_portal_date(text: str) -> bool:
    """True for a real calendar time written `yyyyMMddHHmmss`.

    Compared as digit strings (equal widths sort like numbers): this runs for every date
    of every item, and string comparisons cost a fraction of building a datetime.
    """
    if len(text) != 14 or not (text.isascii() and text.isdigit()) or text[:4] == "0000":
        return False
    month, day = text[4:6], text[6:8]
    last = _LAST_DAY.get(month)
    if last is None or day == "00":
        return False
    if day > last and not (month == "02" and day == "29" and calendar.isleap(int(text[:4]))):
        return False
    return text[8:10] < "24" and text[10:12] < "60" and text[12:14] < "60"


def is_ma_ho_so(text: str) -> bool:
    """True for a dossier code `<unit code>-<yyMMdd>-<4 digits>`."""
    return _MA_HO_SO.fullmatch(text) is not None


def _one_of(values: frozenset[str]) -> Callable[[str], bool]:
    return values.__contains__


_DATE = (is_portal_date, "not a yyyyMMddHHmmss date")
_FORMATS: Mapping[str, tuple[Callable[[str], bool], str]] = {
    "MaHoSo": (is_ma_ho_so, "not a dossier code like 000.00.01.H26-220713-0001"),
    "MaTTHC": (lambda v: _MA_TTHC.fullmatch(v) is not None, "not a code like 1.000948"),
    "TrangThaiHoSo": (_one_of(_STATUS), "not a status code 1..10"),
    "TrangThai": (_one_of(_STATUS), "not a status code 1..10"),
    "LoaiDoiTuong": (_one_of(frozenset({"1", "2"})), "not 1 or 2"),
    "KenhThucHien": (_one_of(frozenset({"1", "2", "3"})), "not 1, 2 or 3"),
    "HinhThuc": (_one_of(frozenset({"0", "1"})), "not 0 or 1"),
    **dict.fromkeys(
        (
            "NgayTiepNhan", "NgayHenTra", "NgayTra", "NgayKetThucXuLy", "NgayNopHoSo",
            "NgayTuChoi", "NgayBoSung", "NgayTiepNhanBoSung", "NgayHenTraTruoc",
            "NgayHenTraMoi", "ThoiDiemXuLy", "NgayBatDau", "NgayKetThucTheoQuyDinh",
        ),
        _DATE,
    ),
}  # fmt: skip


def check_value(key: str, value: Any) -> str | None:
    """Why a scalar field's value is refused: empty, not a string, not NFC, or malformed."""
    if not isinstance(value, str) or not value:
        if value is None or value == "":
            return f"{key}: empty or null value (leave the key out instead)"
        return f"{key}: must be a string"
    if not value.isascii() and not is_normalized("NFC", value):
        return f"{key}: text is not Unicode NFC"
    rule = _FORMATS.get(key)
    if rule is not None and not rule[0](value):
        return f"{key}: {rule[1]}"
    return None


def check_dossier(item: Any, procedures: frozenset[str] | None) -> str | None:
    """Why a `DongBoHoSoMC` dossier is refused, or None when the portal would take it."""
    if not isinstance(item, dict):
        return "dossier is not a JSON object"
    for key, value in item.items():
        if key in LIST_FIELDS:
            problem = _check_list(key, value)
        elif key in HEADER_FIELDS:
            problem = check_value(key, value)
        else:
            problem = f"{key}: unknown field"
        if problem is not None:
            return problem
    return _missing(item, DOSSIER_REQUIRED) or _check_catalogue(item["MaTTHC"], procedures)


def check_step(item: Any) -> str | None:
    """Why a `CapNhatTienDoHoSoMC` step is refused, or None when the portal would take it."""
    if not isinstance(item, dict):
        return "step is not a JSON object"
    for key, value in item.items():
        problem = check_value(key, value) if key in STEP_FIELDS else f"{key}: unknown field"
        if problem is not None:
            return problem
    return _missing(item, STEP_REQUIRED)


def _missing(item: dict[str, Any], required: frozenset[str]) -> str | None:
    if required <= item.keys():
        return None
    return f"{min(required - item.keys())}: required field missing"


def _check_catalogue(code: str, procedures: frozenset[str] | None) -> str | None:
    # A code with a unit suffix (1.000948.H38) is known when its national part is.
    if procedures is None or code in procedures or code[:8] in procedures:
        return None
    return f"MaTTHC: {code} is not in the procedure catalogue"


def _check_list(key: str, value: Any) -> str | None:
    if value is None or value == "":
        return f"{key}: empty or null value (leave the key out instead)"
    if not isinstance(value, list):
        return f"{key}: must be a JSON array"
    return _check_items(key, value, LIST_FIELDS[key])


def _check_items(key: str, entries: list[Any], allowed: frozenset[str] | None) -> str | None:
    """Check a list's items; `allowed` None means any key (the open nested lists)."""
    for index, entry in enumerate(entries):
        where = f"{key}[{index}]"
        if not isinstance(entry, dict):
            return f"{where}: must be a JSON object"
        problem = _check_entry(entry, allowed)
        if problem is not None:
            return f"{where}.{problem}"
    return None


def _check_entry(entry: dict[str, Any], allowed: frozenset[str] | None) -> str | None:
    for key, value in entry.items():
        if allowed is not None and key not in allowed:
            return f"{key}: unknown field"
        if key in _OPEN_NESTED and isinstance(value, list):
            problem = _check_items(key, value, None)
        else:
            problem = check_value(key, value)
        if problem is not None:
            return problem
    return None
