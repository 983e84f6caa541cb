"""Plausible Vietnamese people, companies and officers for the demo data.

About one text in ten is stored decomposed (NFD), as some real one-stop systems do, so the
connector's NFC normalisation is exercised on every run.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass

FAMILY = (
    "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng",
    "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý", "Đinh", "Trịnh", "Mai", "Tạ",
)  # fmt: skip
MIDDLE = (
    "Văn", "Thị", "Đức", "Minh", "Thanh", "Quốc", "Hữu", "Ngọc", "Thu", "Hoài",
    "Gia", "Bảo", "Xuân", "Phương", "Kim", "Mạnh",
)  # fmt: skip
GIVEN = (
    "An", "Anh", "Bình", "Châu", "Cường", "Dũng", "Duyên", "Đạt", "Giang", "Hà",
    "Hải", "Hạnh", "Hiếu", "Hoa", "Hùng", "Hương", "Khánh", "Lan", "Linh", "Long",
    "Mai", "Nam", "Nga", "Ngân", "Nhung", "Phong", "Phúc", "Quân", "Quyên", "Sơn",
    "Tâm", "Thảo", "Thắng", "Trang", "Trung", "Tuấn", "Tùng", "Vân", "Việt", "Yến",
)  # fmt: skip
COMPANY_FORMS = ("Công ty TNHH", "Công ty Cổ phần", "Công ty TNHH MTV", "Doanh nghiệp tư nhân")
COMPANY_WORDS = (
    "Xây dựng", "Thương mại", "Dịch vụ", "Đầu tư", "Công nghệ", "Vận tải", "Thực phẩm",
    "Dược phẩm", "Kiến trúc", "Môi trường", "Giáo dục", "Du lịch",
)  # fmt: skip
COMPANY_NAMES = (
    "Hồng Hà", "Thăng Long", "Sông Đà", "Phú Thịnh", "An Khang", "Đông Á", "Hải Đăng",
    "Minh Phát", "Trường Sơn", "Bắc Việt", "Hưng Thịnh", "Sao Mai",
)  # fmt: skip
MOBILE_PREFIXES = ("09", "03", "08")
MAIL_HOSTS = ("gmail.com", "yahoo.com.vn", "outlook.com", "hanoi.gov.vn")
NFD_SHARE = 0.1


@dataclass(frozen=True, slots=True, kw_only=True)
class Applicant:
    """The owner of a dossier: a citizen or an organisation, with contacts."""

    name: str
    kind: str  # 'citizen' | 'organisation'
    id_number: str  # 12-digit citizen ID or 10-digit tax code
    phone: str
    email: str


def maybe_nfd(text: str, rng: random.Random) -> str:
    """The text, decomposed about one time in ten."""
    return unicodedata.normalize("NFD", text) if rng.random() < NFD_SHARE else text


def ascii_fold(text: str) -> str:
    """Strip diacritics (and đ) for e-mail local parts."""
    text = text.replace("đ", "d").replace("Đ", "D")
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def person_name(rng: random.Random) -> str:
    return f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"


def company_name(rng: random.Random) -> str:
    words = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_NAMES)}"
    return f"{rng.choice(COMPANY_FORMS)} {words}"


def phone(rng: random.Random) -> str:
    return rng.choice(MOBILE_PREFIXES) + "".join(rng.choices("0123456789", k=8))


def email(name: str, rng: random.Random) -> str:
    parts = ascii_fold(name).lower().split()
    local = parts[-1] + "".join(p[0] for p in parts[:-1]) + str(rng.randrange(10, 999))
    return f"{local}@{rng.choice(MAIL_HOSTS)}"


def applicant(rng: random.Random, *, organisation_share: float = 0.2) -> Applicant:
    """A citizen (12-digit ID) or, sometimes, a company (10-digit tax code)."""
    if rng.random() < organisation_share:
        name = company_name(rng)
        kind, id_number = "organisation", "01" + "".join(rng.choices("0123456789", k=8))
    else:
        name = person_name(rng)
        kind, id_number = "citizen", "001" + "".join(rng.choices("0123456789", k=9))
    return Applicant(
        name=maybe_nfd(name, rng),
        kind=kind,
        id_number=id_number,
        phone=phone(rng),
        email=email(name, rng),
    )
