"""Masking of personal data for logs, reasons and status output.

A masked value keeps a short, stable fingerprint so an operator can tell two values apart
and find the record, without the value itself ever reaching a log line.
"""

from __future__ import annotations

import hashlib
import re
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

_PATTERNS = (
    re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),  # e-mail
    re.compile(r"(?<!\d)(?:\+?84|0)\d{9,10}(?!\d)"),  # Vietnamese phone
    re.compile(r"(?<!\d)\d{9}(?:\d{3})?(?!\d)"),  # 9- or 12-digit ID number
)


def mask(value: object) -> str:
    """`«masked:1a2b3c»`: a fingerprint of the value, never the value."""
    digest = hashlib.sha256(str(value).encode("utf-8")).hexdigest()[:6]
    return f"«masked:{digest}»"


def mask_field(name: str, value: Any) -> Any:
    """The value as it may be shown: masked when the field is personal."""
    if value is None or name not in PERSONAL_FIELDS:
        return value
    return mask(value)


def scrub_text(text: str) -> str:
    """Mask anything in free text that looks like an e-mail, phone or ID number."""
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: mask(m.group(0)), text)
    return text


def scrub_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a payload with every personal field masked (for previews in logs)."""
    out: dict[str, Any] = {}
    for key, value in payload.items():
        if isinstance(value, list):
            out[key] = [scrub_payload(v) if isinstance(v, Mapping) else v for v in value]
        else:
            out[key] = mask_field(key, value)
    return out
