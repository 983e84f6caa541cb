"""The portal's field rules, as the sandbox enforces them.

This is a second, independent reading of the contract (portal-protocol.md §1 and §3 and the
field tables of dvcqg-reference.md §4–§6). It deliberately shares no code with the
connector's own validation: the sandbox exists to catch the connector's mistakes, which a
shared rule would repeat on both sides.

Each check returns a message naming the offending field, or None; the portal code for a rule
failure is always "400". The checks run for every item of every batch, so there are two
readings of the rules: a fast one that can only say "accepted" (per order of keys, a cached
verdict on the keys and one regex for all the texts; one NFC test for them all), and the
exact field-by-field one, which runs when the fast one declines and names the first offending
field. The fast reading never accepts what the exact one refuses; anything unusual (a nested
list, a NUL in a value, a leap day) makes it decline.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from operator import itemgetter
from typing import Any, NamedTuple
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


class _Format(NamedTuple):
    """A field's exact test, the message when it fails, and the fast reading's regex.

    `fast` matches only values `test` accepts (it may leave a rare one to `test`), and never
    matches a NUL, so several values can be matched at once joined by NUL.
    """

    test: Callable[[str], bool]
    message: str
    fast: str


def _one_of(values: frozenset[str], message: str) -> _Format:
    longest_first = sorted(values, key=len, reverse=True)
    return _Format(values.__contains__, message, "|".join(map(re.escape, longest_first)))


def _matching(pattern: re.Pattern[str], message: str) -> _Format:
    return _Format(lambda v: pattern.fullmatch(v) is not None, message, pattern.pattern)


#: Every real time but 29 February, which `is_portal_date` settles with the leap-year rule.
_PLAIN_DATE = (
    r"(?!0000)[0-9]{4}"
    r"(?:(?:0[1-9]|1[0-2])(?:0[1-9]|1[0-9]|2[0-8])"  # day 01-28 of any month
    r"|(?:0[13-9]|1[0-2])(?:29|30)"  # 29 and 30 outside February
    r"|(?:0[13578]|1[02])31)"  # 31 of the long months
    r"(?:[01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]"
)
_DATE = _Format(is_portal_date, "not a yyyyMMddHHmmss date", _PLAIN_DATE)
_FORMATS: Mapping[str, _Format] = {
    "MaHoSo": _matching(_MA_HO_SO, "not a dossier code like 000.00.01.H26-220713-0001"),
    "MaTTHC": _matching(_MA_TTHC, "not a code like 1.000948"),
    "TrangThaiHoSo": _one_of(_STATUS, "not a status code 1..10"),
    "TrangThai": _one_of(_STATUS, "not a status code 1..10"),
    "LoaiDoiTuong": _one_of(frozenset({"1", "2"}), "not 1 or 2"),
    "KenhThucHien": _one_of(frozenset({"1", "2", "3"}), "not 1, 2 or 3"),
    "HinhThuc": _one_of(frozenset({"0", "1"}), "not 0 or 1"),
    **dict.fromkeys(
        (
            "NgayTiepNhan", "NgayHenTra", "NgayTra", "NgayKetThucXuLy", "NgayNopHoSo",
            "NgayTuChoi", "NgayBoSung", "NgayTiepNhanBoSung", "NgayHenTraTruoc",
            "NgayHenTraMoi", "ThoiDiemXuLy", "NgayBatDau", "NgayKetThucTheoQuyDinh",
        ),
        _DATE,
    ),
}  # fmt: skip
_DOSSIER_KEYS = HEADER_FIELDS | LIST_FIELDS.keys()
#: Key orders learnt per kind of item: real clients use a handful. Past that many, a new
#: order gets the exact reading only, so ever new orders never cost a regex compile each.
_SHAPES_HELD = 512


class _Shape(NamedTuple):
    """How the fast reading tests the items whose keys come in one given order.

    `pattern` matches the item's texts joined by NUL, in that order: a formatted key's part
    is its fast regex, any other key's part is non-empty text. As no part matches a NUL, one
    match tests every text. It is None when no key is formatted: the texts then need only be
    non-empty. `texts` takes those texts from the item; `lists` are its list fields (read
    entry by entry).
    """

    pattern: re.Pattern[str] | None
    texts: Callable[[dict[str, Any]], Iterable[Any]]
    lists: tuple[str, ...] = ()


_KeyOrder = tuple[str, ...]
_Shapes = dict[_KeyOrder, _Shape | None]
_STEP_SHAPES: _Shapes = {}
_DOSSIER_SHAPES: _Shapes = {}
_ENTRY_SHAPES: dict[str, _Shapes] = {field: {} for field in LIST_FIELDS}


def _learnt(
    shapes: _Shapes, keys: _KeyOrder, build: Callable[[_KeyOrder], _Shape | None]
) -> _Shape | None:
    """`build(keys)`, kept in `shapes` (called when `shapes` has no shape for `keys`)."""
    if keys in shapes or len(shapes) >= _SHAPES_HELD:
        return None
    shape = shapes[keys] = build(keys)
    return shape


def _texts_pattern(keys: Sequence[str]) -> re.Pattern[str] | None:
    if _FORMATS.keys().isdisjoint(keys):
        return None
    parts = (f"(?:{_FORMATS[key].fast})" if key in _FORMATS else "[^\0]+" for key in keys)
    return re.compile("\0".join(parts))


def _step_shape(keys: _KeyOrder) -> _Shape | None:
    """The fast reading of steps with keys in this order; None when the keys are wrong."""
    if not (STEP_FIELDS.issuperset(keys) and STEP_REQUIRED.issubset(keys)):
        return None
    return _Shape(_texts_pattern(keys), dict.values)


def _dossier_shape(keys: _KeyOrder) -> _Shape | None:
    """The fast reading of dossiers with keys in this order; None when the keys are wrong."""
    if not (_DOSSIER_KEYS.issuperset(keys) and DOSSIER_REQUIRED.issubset(keys)):
        return None
    texts = [key for key in keys if key not in LIST_FIELDS]
    lists = tuple(key for key in keys if key in LIST_FIELDS)
    # With no list field the texts are all the values; otherwise at least the 14 required
    # keys are texts, so itemgetter returns them as a tuple.
    getter = dict.values if not lists else itemgetter(*texts)
    return _Shape(_texts_pattern(texts), getter, lists)


def _entry_shape(field: str, keys: _KeyOrder) -> _Shape | None:
    """The fast reading of entries of list `field` with keys in this order; None: wrong keys."""
    if not LIST_FIELDS[field].issuperset(keys):
        return None
    return _Shape(_texts_pattern(keys), dict.values)


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
    if _dossier_passes(item, procedures):
        return None
    return _dossier_problem(item, procedures)


def check_step(item: Any) -> str | None:
    """Why a `CapNhatTienDoHoSoMC` step is refused, or None when the portal would take it."""
    if _step_passes(item):
        return None
    return _step_problem(item)


def _dossier_passes(item: Any, procedures: frozenset[str] | None) -> bool:
    """True only for a dossier the exact reading accepts; False means "ask it"."""
    if type(item) is not dict:
        return False
    keys = tuple(item)
    shape = _DOSSIER_SHAPES.get(keys) or _learnt(_DOSSIER_SHAPES, keys, _dossier_shape)
    if shape is None or not _texts_pass(shape.texts(item), shape.pattern):
        return False
    for field in shape.lists:
        if not _entries_pass(item[field], field):
            return False
    return _check_catalogue(item["MaTTHC"], procedures) is None


def _step_passes(item: Any) -> bool:
    """True only for a step the exact reading accepts; False means "ask it"."""
    if type(item) is not dict:
        return False
    keys = tuple(item)
    shape = _STEP_SHAPES.get(keys) or _learnt(_STEP_SHAPES, keys, _step_shape)
    return shape is not None and _texts_pass(shape.texts(item), shape.pattern)


def _entries_pass(entries: Any, field: str) -> bool:
    """Every entry of list `field` has known keys and good texts (a nested list declines)."""
    if type(entries) is not list:
        return False
    shapes = _ENTRY_SHAPES[field]
    for entry in entries:
        if type(entry) is not dict:
            return False
        keys = tuple(entry)
        shape = shapes.get(keys) or _learnt(shapes, keys, partial(_entry_shape, field))
        if shape is None or not _texts_pass(shape.texts(entry), shape.pattern):
            return False
    return True


def _texts_pass(texts: Iterable[Any], pattern: re.Pattern[str] | None) -> bool:
    """True when the texts are non-empty NFC strings that, joined by NUL, match `pattern`.

    NUL is a starter that composes with nothing, so the whole is NFC exactly when every part
    is; `join` refuses anything but strings.
    """
    try:
        joined = "\0".join(texts)
    except TypeError:
        return False
    well_formed = all(texts) if pattern is None else pattern.fullmatch(joined) is not None
    return well_formed and (joined.isascii() or is_normalized("NFC", joined))


def _dossier_problem(item: Any, procedures: frozenset[str] | None) -> str | None:
    """The exact reading of a dossier: its first offending field, in the item's order."""
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


def _step_problem(item: Any) -> str | None:
    """The exact reading of a step: its first offending field, in the item's order."""
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
