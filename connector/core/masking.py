"""Masking of personal data for logs, reasons and status output.

A masked value keeps a short, stable fingerprint so an operator can tell two values apart
and find the record, without the value itself ever reaching a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Mapping
from typing import Any

#: Portal fields that carry personal data (names, ID numbers, phones, e-mails).
PERSONAL_FIELDS = frozenset(
    {
        "ChuHoSo",
        "MaDoiTuong",
        "Email",
        "SoDienThoai",
        "Fax",
        "SoDinhDanh",
        "NguoiXuLy",
        "NguoiYeuCauBoSung",
        "NguoiTiepNhanBoSung",
        "password",
        "session",
    }
)

#: Fields whose values are codes, dates, amounts or catalogue names: safe to show in a
#: reason. Every other field (names, IDs, contacts, and free text such as TrichYeuHoSo,
#: GhiChu, NoiDungXuLy or ThongTinKhac, which may quote anyone) is shown as a fingerprint.
SHOWABLE_FIELDS = frozenset(
    {
        "MaHoSo", "MaTTHC", "TenTTHC", "MaLinhVuc", "TenLinhVuc", "SoBienNhan",
        "LoaiDoiTuong", "NgayTiepNhan", "NgayHenTra", "TrangThaiHoSo", "NgayTra", "HinhThuc",
        "NgayKetThucXuLy", "DonViXuLy", "KenhThucHien", "NgayNopHoSo", "NgayTuChoi",
        "HoSoCoThanhPhanSoHoa", "TaiKhoanDuocXacThucVoiVNeID", "DuocThanhToanTrucTuyen",
        "LoaiDinhDanh", "MaCSDL", "ThoiGianGiaiQuyet", "DonViTinh", "ChucDanh",
        "ThoiDiemXuLy", "PhongBanXuLy", "TrangThai", "NgayBatDau", "NgayKetThucTheoQuyDinh",
        "TepDinhKemId", "IsDeleted", "MaThanhPhanHoSo", "DuocSoHoa", "DuocLayTuKhoDMQG",
        "MaPhiLePhi", "HinhThucThu", "Gia", "LoaiPhiLePhi", "SoLuong", "LoaiGiayTo",
        "HoSoBoSungId", "NgayBoSung", "NgayTiepNhanBoSung", "TrangThaiBoSung",
        "NgayHenTraTruoc", "NgayHenTraMoi", "GiayToId", "MaGiayToKetQua", "MaKetQua",
    }
)  # fmt: skip

#: Fields whose value is masked wherever free text quotes it by name (`"ChuHoSo": "…"` or
#: `ChuHoSo=…`), as a portal's rejection may quote the record back: personal data, and
#: the free text that may hold it. A name without a common family name is caught this way.
QUOTED_FIELDS = PERSONAL_FIELDS | {"TrichYeuHoSo", "GhiChu", "NoiDungXuLy", "ThongTinKhac"}
_FIELD_NAMES = "|".join(sorted(QUOTED_FIELDS))
_QUOTED = (
    # JSON: the key and the value in quotes.
    re.compile(r'"(?:' + _FIELD_NAMES + r')"\s*:\s*"((?:[^"\\]|\\.)*)"'),
    # key=value, the value up to the next separator. `Key: text` is left alone: that is
    # how a reason names a field ("ChuHoSo: required by the portal but missing").
    re.compile(r"\b(?:" + _FIELD_NAMES + r")\s*=\s*([^;,&)}\]\r\n]+)"),
)

_PATTERNS = (
    re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),  # e-mail
    re.compile(r"(?<!\d)(?:\+?84|0)\d{9,10}(?!\d)"),  # Vietnamese phone
    re.compile(r"(?<!\d)\d{9}(?:\d{3})?(?!\d)"),  # 9- or 12-digit ID number
)


#: Common Vietnamese family names (with and without diacritics). A capitalised word after
#: one of them is taken as part of a person's name in free text. Family names that also
#: open province names (Hà, Cao, Lâm, Thái) are left out: "Hà Nội" is not a person.
_SURNAMES = (
    "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi",
    "Đỗ", "Hồ", "Ngô", "Dương", "Lý", "Đào", "Đoàn", "Đinh", "Lương", "Trương", "Trịnh",
    "Vương", "Phùng", "Mai", "Tô", "Tạ", "Lưu", "Quách", "Châu", "Kiều", "Triệu", "Nghiêm",
    "Doãn", "Nguyen", "Tran", "Pham", "Hoang", "Huynh", "Dang", "Bui", "Duong", "Truong",
    "Trinh", "Vuong", "Luong", "Quach", "Ngo", "Dinh", "Doan",
)  # fmt: skip
_SURNAME = re.compile(r"\b(?:" + "|".join(_SURNAMES) + r")\b", re.IGNORECASE)
_NEXT_WORD = re.compile(r"[ \t]+([^\W\d_]+)")
_NAME_WORDS = 4  # at most this many words after the family name


def _mask_names(text: str) -> str:
    """Mask each family name followed by capitalised words, and those words."""
    out: list[str] = []
    pos = 0
    for found in _SURNAME.finditer(text):
        if found.start() < pos or not found.group(0)[0].isupper():
            continue
        end, words = found.end(), 0
        while words < _NAME_WORDS:
            nxt = _NEXT_WORD.match(text, end)
            if nxt is None or not nxt.group(1)[0].isupper():
                break
            end, words = nxt.end(), words + 1
        if words:
            out += [text[pos : found.start()], mask(text[found.start() : end])]
            pos = end
    out.append(text[pos:])
    return "".join(out)


#: The installation's fingerprint key (`use_key`); until a store gives it, one of this
#: process's own, so that no fingerprint is ever one anyone could compute.
_key = secrets.token_bytes(32)


def use_key(key: bytes) -> None:
    """Key every fingerprint from now on with `key` (the state store's own, made at its
    first use: `Store.fingerprint_key`).

    A plain hash of a phone or ID number can be confirmed by anyone reading the logs: those
    have few enough possible values to hash a guess, or all of them, and compare. Keyed,
    a fingerprint still tells two values apart and is the same in every process using the
    store, but only someone holding the store's key can link it to a value.
    """
    global _key
    _key = key


def mask(value: object) -> str:
    """`«masked:1a2b3c»`: a fingerprint of the value, never the value."""
    data = str(value).encode("utf-8", "surrogatepass")
    digest = hmac.new(_key, data, hashlib.sha256).hexdigest()[:6]
    return f"«masked:{digest}»"


def mask_field(name: str, value: Any) -> Any:
    """The value as it may be shown: masked when the field is personal."""
    if value is None or name not in PERSONAL_FIELDS:
        return value
    return mask(value)


def shown_value(name: str, value: Any) -> Any:
    """A field's value as a reason may show it: scrubbed when the field is showable (codes,
    dates, catalogue names), a fingerprint otherwise (personal data and free text)."""
    if value is None:
        return None
    if name not in SHOWABLE_FIELDS:
        return mask(value)
    return _mask_capitalised_runs(scrub_text(value)) if isinstance(value, str) else value


_WORD = re.compile(r"[^\W\d_]+")


def _mask_capitalised_runs(text: str) -> str:
    """In a code-like value, two or more capitalised words in a row look like someone's
    name typed into the wrong column: they become a fingerprint."""
    words = [w for w in _WORD.finditer(text) if w.group(0)[0].isupper()]
    runs: list[tuple[int, int]] = []
    for word in words:
        gap = text[runs[-1][1] : word.start()] if runs else None
        if gap is not None and gap.strip(" \t") == "":
            runs[-1] = (runs[-1][0], word.end())
        else:
            runs.append((word.start(), word.end()))
    for start, end in reversed(runs):
        if any(c in " \t" for c in text[start:end]):
            text = text[:start] + mask(text[start:end]) + text[end:]
    return text


def scrub_text(text: str) -> str:
    """Mask anything in free text that looks like an e-mail, phone, ID number or a
    Vietnamese person's name (a common family name followed by capitalised words), and
    the value of any personal or free-text field quoted by name (`QUOTED_FIELDS`)."""
    for quoted in _QUOTED:
        text = quoted.sub(_mask_value, text)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: mask(m.group(0)), text)
    return _mask_names(text if text.isascii() else unicodedata.normalize("NFC", text))


def _mask_value(found: re.Match[str]) -> str:
    """The match with its value (group 1, trailing blanks kept out) as a fingerprint."""
    whole, value = found.group(0), found.group(1).rstrip()
    if not value:
        return whole
    at = found.start(1) - found.start(0)
    return whole[:at] + mask(value) + whole[at + len(value) :]


def scrub_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a payload with every personal field masked (for previews in logs)."""
    out: dict[str, Any] = {}
    for key, value in payload.items():
        if isinstance(value, list):
            out[key] = [scrub_payload(v) if isinstance(v, Mapping) else v for v in value]
        else:
            out[key] = mask_field(key, value)
    return out
