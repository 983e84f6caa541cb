"""The portal's field rules, checked before anything is queued for sending.

A record the portal would refuse is caught here, with a reason that names the field, so it
goes to the dead-letter list at once instead of costing a round trip and a rejection. The
rules return `Problem` values and never raise on bad data. Only code-like values are shown
in a problem; personal data and free text appear as fingerprints (`connector.core.masking`).

The field lists are the reference's (dvcqg-reference.md §4 and §6, with the newer fields):
a strict portal refuses keys it does not know, so an unknown key is a problem too. Nor
does it take `""` or blank text for a value that is simply unknown: a blank value
(`connector.core.transforms.is_blank`, whitespace only) counts as missing, so a required
field holding one is missing and any other is a problem (the key must be left out).
"""

from __future__ import annotations

import re
import unicodedata
from calendar import monthrange
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from connector.core.masking import SHOWABLE_FIELDS, mask, shown_value
from connector.core.records import Problem
from connector.core.transforms import is_blank

HEADER_FIELDS = frozenset(
    {
        "MaHoSo", "MaTTHC", "TenTTHC", "MaLinhVuc", "TenLinhVuc", "SoBienNhan", "ChuHoSo",
        "LoaiDoiTuong", "MaDoiTuong", "ThongTinKhac", "Email", "Fax", "SoDienThoai",
        "TrichYeuHoSo", "NgayTiepNhan", "NgayHenTra", "TrangThaiHoSo", "NgayTra",
        "ThongTinTra", "HinhThuc", "NgayKetThucXuLy", "DonViXuLy", "GhiChu",
        "KenhThucHien", "NgayNopHoSo", "NgayTuChoi", "NoiNopHoSo", "HoSoCoThanhPhanSoHoa",
        "TaiKhoanDuocXacThucVoiVNeID", "DuocThanhToanTrucTuyen", "LoaiDinhDanh",
        "SoDinhDanh", "MaCSDL", "ThoiGianGiaiQuyet", "DonViTinh",
    }
)  # fmt: skip

STEP_FIELDS = frozenset(
    {
        "MaHoSo", "NguoiXuLy", "ChucDanh", "ThoiDiemXuLy", "PhongBanXuLy", "NoiDungXuLy",
        "TrangThai", "NgayBatDau", "NgayKetThucTheoQuyDinh",
    }
)  # fmt: skip

#: The header's lists and the fields of their items.
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
            "NguoiTiepNhanBoSung", "ThongTinTiepNhan", "NgayTiepNhanBoSung",
            "TrangThaiBoSung", "NgayHenTraTruoc", "NgayHenTraMoi",
        }
    ),
    "DanhSachGiayToKetQua": frozenset(
        {
            "TenGiayTo", "MaThanhPhanHoSo", "GiayToId", "DuongDanTepTinKetQua",
            "MaGiayToKetQua", "MaKetQua",
        }
    ),
}  # fmt: skip

HEADER_REQUIRED = (
    "MaHoSo", "MaTTHC", "TenTTHC", "MaLinhVuc", "TenLinhVuc", "LoaiDoiTuong", "Email",
    "SoDienThoai", "TrichYeuHoSo", "NgayTiepNhan", "NgayHenTra", "TrangThaiHoSo", "HinhThuc",
    "DonViXuLy",
)  # fmt: skip
STEP_REQUIRED = ("MaHoSo", "NguoiXuLy", "ThoiDiemXuLy", "NoiDungXuLy", "TrangThai")

#: Free text may be long; names and codes may not (the portal's columns are short).
FREE_TEXT = frozenset(
    {
        "TrichYeuHoSo", "NoiDungXuLy", "GhiChu", "ThongTinKhac", "ThongTinTra",
        "NoiDungBoSung", "ThongTinTiepNhan", "DuongDanTaiTepTin", "DuongDanTepTinKetQua",
    }
)  # fmt: skip
FREE_TEXT_CAP = 2000
SHORT_CAP = 255

_DOSSIER_CODE = re.compile(r"(\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2})-(\d{6})-\d{4}", re.ASCII)
_PROCEDURE_CODE = re.compile(r"\d\.\d{6}(\.[A-Z0-9.]+)?", re.ASCII)
_AGENCY_CODE = re.compile(r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}", re.ASCII)
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
_PHONE = re.compile(r"\+?[0-9]+", re.ASCII)
#: C0 and C1 controls, the Unicode line and paragraph separators, and lone surrogates.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_TIME = re.compile(
    r"(?!0000)\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])([01]\d|2[0-3])[0-5]\d[0-5]\d", re.ASCII
)
_CONTROL_REASON = "contains a control character (e.g. CR/LF, tab)"
_SURROGATE_REASON = "not valid Unicode (contains a lone surrogate)"
_UNKNOWN_REASON = "unknown field: the portal refuses keys it does not know"
_BLANK_REASON = "empty or blank: the portal refuses it (leave the key out instead)"
_MISSING_REASON = "required by the portal but missing"
_SHOWN = 60

_STATUS = frozenset(str(n) for n in range(1, 11))
_ENUMS: Mapping[str, frozenset[str]] = {
    "TrangThaiHoSo": _STATUS,
    "TrangThai": _STATUS,
    "LoaiDoiTuong": frozenset({"1", "2"}),
    "KenhThucHien": frozenset({"1", "2", "3"}),
    "HinhThuc": frozenset({"0", "1"}),
    "DuocThanhToanTrucTuyen": frozenset({"0", "1", "2"}),
    "IsDeleted": frozenset({"True", "False"}),
    "DuocSoHoa": frozenset({"0", "1"}),
    "DuocLayTuKhoDMQG": frozenset({"0", "1"}),
    "HoSoCoThanhPhanSoHoa": frozenset({"0", "1"}),
    "TaiKhoanDuocXacThucVoiVNeID": frozenset({"0", "1"}),
}
_DATES = frozenset(
    {
        "NgayTiepNhan", "NgayHenTra", "NgayTra", "NgayKetThucXuLy", "NgayNopHoSo",
        "NgayTuChoi", "ThoiDiemXuLy", "NgayBatDau", "NgayKetThucTheoQuyDinh", "NgayBoSung",
        "NgayTiepNhanBoSung", "NgayHenTraTruoc", "NgayHenTraMoi",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalogue:
    """Codes the portal knows; None means that kind of code is not checked."""

    procedures: frozenset[str] | None = None
    agencies: frozenset[str] | None = None


def is_procedure_code(text: str) -> bool:
    """A national procedure code such as '1.000948' or '1.000948.H38'."""
    return _PROCEDURE_CODE.fullmatch(text) is not None


def is_agency_code(text: str) -> bool:
    """A QCVN 102 unit code such as '000.00.01.H26'."""
    return _AGENCY_CODE.fullmatch(text) is not None


def is_portal_time(text: str) -> bool:
    """Exactly 14 digits (yyyyMMddHHmmss) naming a real calendar time."""
    if _TIME.fullmatch(text) is None:
        return False
    day = text[6:8]
    return day <= "28" or int(day) <= monthrange(int(text[:4]), int(text[4:6]))[1]


def _problem(field: str, reason: str, value: Any) -> Problem:
    """A problem whose value is shown only for code-like fields, kept short; personal data
    and free text appear as a fingerprint of the whole value."""
    name = field.rpartition(".")[2]
    if value is None:
        return Problem(field=field, reason=reason)
    if name not in SHOWABLE_FIELDS:
        return Problem(field=field, reason=reason, value=mask(value))
    shown = str(value)
    shown = shown if len(shown) <= _SHOWN else shown[:_SHOWN] + "…"
    return Problem(field=field, reason=reason, value=shown_value(name, shown))


def shown_problem(field: str, reason: str, value: Any) -> Problem:
    """A problem built by the mapping, with the same rules for showing the value."""
    return _problem(field, reason, value)


#: A rule sees a value already known to be a str, and not blank; it returns a reason or None.
Rule = Callable[[str, Catalogue], str | None]


def _text_rule(cap: int) -> Rule:
    """Rules every text shares: within its cap, no control characters, NFC."""

    def rule(value: str, _: Catalogue) -> str | None:
        if len(value) > cap:
            return f"longer than {cap} characters ({len(value)})"
        # Controls, separators and surrogates are never printable: a printable text (the
        # usual one) is clear of them without running the pattern.
        if not value.isprintable():
            found = _CONTROL.search(value)
            if found is not None:
                return _SURROGATE_REASON if found.group() >= "\ud800" else _CONTROL_REASON
        if value.isascii() or unicodedata.is_normalized("NFC", value):
            return None
        return "text is not Unicode NFC (add the 'nfc' transform)"

    return rule


def _enum_rule(allowed: frozenset[str]) -> Rule:
    listed = ", ".join(sorted(allowed, key=lambda v: (len(v), v)))
    reason = f"not one of the portal's codes ({listed})"
    return lambda value, _: None if value in allowed else reason


def _time_rule(value: str, _: Catalogue) -> str | None:
    return None if is_portal_time(value) else "not a real time in yyyyMMddHHmmss form"


@lru_cache(maxsize=4096)
def _is_real_day(day: str) -> bool:
    """Whether yyMMdd names a real date; dossiers of the same day share the answer."""
    return is_portal_time(f"20{day}000000")


def _dossier_code_rule(value: str, catalogue: Catalogue) -> str | None:
    found = _DOSSIER_CODE.fullmatch(value)
    if found is None:
        return "not a dossier code <agency>-<yyMMdd>-<4 digits>"
    agency, day = found.group(1), found.group(2)
    if not _is_real_day(day):
        return f"date part {day!r} is not a real yyMMdd date"
    if catalogue.agencies is not None and agency not in catalogue.agencies:
        return f"agency {agency!r} is not in the agency catalogue"
    return None


def _procedure_rule(value: str, catalogue: Catalogue) -> str | None:
    if not is_procedure_code(value):
        return "not a national procedure code (d.dddddd[.SUFFIX])"
    known = catalogue.procedures
    if known is not None and value not in known and value[:8] not in known:
        return "procedure code is not in the procedure catalogue"
    return None


def _phone_rule(value: str, _: Catalogue) -> str | None:
    if _PHONE.fullmatch(value) is None or not 8 <= len(value) <= 15:
        return "not a phone number (8-15 digits, optional leading +)"
    return None


_short_text = _text_rule(SHORT_CAP)


def _email_rule(value: str, catalogue: Catalogue) -> str | None:
    reason = _short_text(value, catalogue)
    if reason is None and _EMAIL.fullmatch(value) is None:
        return "not a plausible e-mail address"
    return reason


def _rule_for(name: str) -> Rule:
    """The one rule a field's value must pass (strict patterns imply the text rules)."""
    special: Mapping[str, Rule] = {
        "MaHoSo": _dossier_code_rule,
        "MaTTHC": _procedure_rule,
        "SoDienThoai": _phone_rule,
        "Email": _email_rule,
    }
    if name in special:
        return special[name]
    if name in _DATES:
        return _time_rule
    if name in _ENUMS:
        return _enum_rule(_ENUMS[name])
    return _text_rule(FREE_TEXT_CAP) if name in FREE_TEXT else _short_text


_HEADER_RULES = {name: _rule_for(name) for name in HEADER_FIELDS}
_STEP_RULES = {name: _rule_for(name) for name in STEP_FIELDS}
_ITEM_RULES = {
    list_name: {name: _rule_for(name) for name in fields}
    for list_name, fields in LIST_FIELDS.items()
}


def _check_fields(
    payload: Mapping[str, Any],
    rules: Mapping[str, Rule],
    catalogue: Catalogue,
    where: str,
    required: tuple[str, ...] = (),
) -> list[Problem]:
    """Every key known, every value a non-blank str passing its field's rule (a blank
    `required` field is left to `_missing`)."""
    problems: list[Problem] = []
    for key, value in payload.items():
        rule = rules.get(key)
        if rule is None:
            if not where and key in LIST_FIELDS and rules is _HEADER_RULES:
                problems.extend(_check_list(key, value, catalogue))
            else:
                problems.append(_problem(where + key, _UNKNOWN_REASON, None))
        elif type(value) is not str:
            wrong = f"must be a string, got {type(value).__name__}"
            problems.append(_problem(where + key, wrong, value))
        elif not value or value.isspace():
            if key not in required:
                problems.append(_problem(where + key, _BLANK_REASON, None))
        else:
            reason = rule(value, catalogue)
            if reason is not None:
                problems.append(_problem(where + key, reason, value))
    return problems


def _check_list(name: str, items: Any, catalogue: Catalogue) -> list[Problem]:
    if type(items) is not list:
        return [_problem(name, f"must be a list, got {type(items).__name__}", None)]
    rules = _ITEM_RULES[name]
    problems: list[Problem] = []
    for index, item in enumerate(items):
        where = f"{name}[{index}]."
        if not isinstance(item, Mapping):
            problems.append(_problem(where[:-1], "must be an object of fields", None))
        else:
            problems.extend(_check_fields(item, rules, catalogue, where))
    return problems


def _missing(payload: Mapping[str, Any], required: tuple[str, ...]) -> list[Problem]:
    """A required field is missing when absent, None, or blank text."""
    problems: list[Problem] = []
    for name in required:
        value = payload.get(name)
        if value is None or is_blank(value):
            problems.append(Problem(field=name, reason=_MISSING_REASON))
    return problems


def _due_before_receipt(payload: Mapping[str, Any]) -> list[Problem]:
    received, due = payload.get("NgayTiepNhan"), payload.get("NgayHenTra")
    if not (type(received) is str and type(due) is str):
        return []
    if is_portal_time(received) and is_portal_time(due) and due < received:
        return [_problem("NgayHenTra", f"earlier than NgayTiepNhan ({received})", due)]
    return []


def check_header(payload: Mapping[str, Any], catalogue: Catalogue) -> tuple[Problem, ...]:
    """Every reason the portal would refuse this DongBoHoSoMC dossier; () when none."""
    problems = _missing(payload, HEADER_REQUIRED)
    problems += _check_fields(payload, _HEADER_RULES, catalogue, "", HEADER_REQUIRED)
    problems += _due_before_receipt(payload)
    return tuple(problems)


def check_step(payload: Mapping[str, Any]) -> tuple[Problem, ...]:
    """Every reason the portal would refuse this CapNhatTienDoHoSoMC step; () when none."""
    problems = _missing(payload, STEP_REQUIRED)
    problems += _check_fields(payload, _STEP_RULES, _NO_CATALOGUE, "", STEP_REQUIRED)
    return tuple(problems)


_NO_CATALOGUE = Catalogue()


_TIME_FIELDS = frozenset(
    name
    for rules in (_HEADER_RULES, _STEP_RULES, *_ITEM_RULES.values())
    for name, rule in rules.items()
    if rule is _time_rule
)


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldPlan:
    """The rules `check_header` or `check_step` apply, laid out field by field.

    A mapping can test each value with its field's rule as soon as it produces it, instead of
    walking the finished payload again: a payload whose values are non-blank strings that
    pass their rules, with every required field present and not refused by `across`, is
    exactly one the check function returns () for. Only a payload that fails needs the check
    function itself, for the reasons.
    """

    rules: Mapping[str, Rule]
    items: Mapping[str, Mapping[str, Rule]]
    required: tuple[str, ...]
    catalogue: Catalogue
    #: Fields whose rule asks only that the value be a real time (`is_portal_time`).
    times: frozenset[str]
    #: True when fields that each pass their rule are refused together.
    across: Callable[[Mapping[str, Any]], bool] | None = None


def header_plan(catalogue: Catalogue) -> FieldPlan:
    """What `check_header(payload, catalogue)` demands of a DongBoHoSoMC dossier."""
    return FieldPlan(
        rules=_HEADER_RULES,
        items=_ITEM_RULES,
        required=HEADER_REQUIRED,
        catalogue=catalogue,
        times=_TIME_FIELDS,
        across=_refused_together,
    )


def step_plan() -> FieldPlan:
    """What `check_step(payload)` demands of a CapNhatTienDoHoSoMC step."""
    return FieldPlan(
        rules=_STEP_RULES,
        items={},
        required=STEP_REQUIRED,
        catalogue=_NO_CATALOGUE,
        times=_TIME_FIELDS,
    )


def _refused_together(payload: Mapping[str, Any]) -> bool:
    return bool(_due_before_receipt(payload))
