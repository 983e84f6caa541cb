"""Masking rules that keep personal data out of reasons and log lines (pure, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from connector.core.masking import mask, scrub_text, shown_value
from connector.core.validation import Catalogue, check_header, check_step
from connector.mapfiles import load_mapping
from tests.e2e.harness import MAPPING

RARE_NAME = "Khổng Thị Ánh Tuyết"
ID_NUMBER = "001203004567"
PHONE = "0912345678"
EMAIL = "tuyet.kt@thudan.vn"


@pytest.mark.parametrize(
    ("text", "hidden", "kept"),
    [
        ("Hồ sơ của Nguyễn Thị Ánh Tuyết, đã nhận", "Nguyễn Thị Ánh Tuyết", "Hồ sơ của"),
        ("NGUYỄN VĂN AN nộp hồ sơ", "NGUYỄN VĂN AN", "nộp hồ sơ"),
        ("from Tran Minh Duc: refused", "Tran Minh Duc", "refused"),
        ("Trả lời Lê Văn\tKhải", "Lê Văn", "Trả lời"),
    ],
)
def test_free_text_names_after_a_family_name_are_masked(text: str, hidden: str, kept: str) -> None:
    """A common family name and the capitalised words after it become one fingerprint."""
    scrubbed = scrub_text(text)
    assert hidden not in scrubbed
    assert kept in scrubbed
    assert "«masked:" in scrubbed


@pytest.mark.parametrize(
    "text",
    ["UBND TP Hà Nội", "Sở Tư pháp tỉnh Thái Bình", "portal call failed, will retry", "Le"],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    """Place names and plain messages are not mistaken for people."""
    assert scrub_text(text) == text


def test_decomposed_names_are_masked_too() -> None:
    """A name stored decomposed (NFD) is recognised as well."""
    import unicodedata

    scrubbed = scrub_text(unicodedata.normalize("NFD", "gọi Trần Thị Hằng"))
    assert "«masked:" in scrubbed and "Hằng" not in scrubbed


def test_fingerprints_are_keyed_so_a_guess_cannot_be_confirmed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the key, hashing a guessed phone number gives nothing to compare with; with
    one key a value always gets the same fingerprint, and another key gives another."""
    import hashlib

    from connector.core import masking

    monkeypatch.setattr(masking, "_key", masking._key)  # restored after the test
    masking.use_key(b"k" * 32)
    first = mask(PHONE)
    assert first == mask(PHONE) != mask("0912345679")
    assert first != f"«masked:{hashlib.sha256(PHONE.encode()).hexdigest()[:6]}»"
    masking.use_key(b"j" * 32)
    assert mask(PHONE) != first


@pytest.mark.parametrize(
    "text",
    [
        f'E77 (mã 77): {{"ChuHoSo":"{RARE_NAME}","MaTTHC":"1.001","GhiChu":"gọi {RARE_NAME}"}}',
        f'{{"ChuHoSo" : "{RARE_NAME}", "TrichYeuHoSo": "Đơn \\"{RARE_NAME}\\""}}',
        f"not in the catalogue (ChuHoSo={RARE_NAME}; MaTTHC=1.001)",
    ],
)
def test_a_record_quoted_back_by_field_name_is_masked(text: str) -> None:
    """A portal may quote the record in its message: a personal or free-text field named
    there is masked, even a name no family-name list knows; codes stay readable."""
    scrubbed = scrub_text(text)
    assert "Khổng" not in scrubbed and "Tuyết" not in scrubbed, scrubbed
    assert "«masked:" in scrubbed
    assert "1.001" in scrubbed or "1.001" not in text


def test_a_reason_naming_a_field_keeps_its_words() -> None:
    """`Field: what is wrong` is how reasons read; only quoted values are masked."""
    reason = "ChuHoSo: required by the portal but missing"
    assert scrub_text(reason) == reason


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("TrichYeuHoSo", f"Đơn của {RARE_NAME}", False),
        ("GhiChu", f"{RARE_NAME} {PHONE}", False),
        ("NoiDungXuLy", RARE_NAME, False),
        ("ThongTinKhac", RARE_NAME, False),
        ("ChuHoSo", RARE_NAME, False),
        ("TenTepDinhKem", f"CCCD_{RARE_NAME}.pdf", False),
        ("MaTTHC", "1.000948", True),
        ("NgayHenTra", "2026-13-01", True),
    ],
)
def test_reasons_show_only_code_like_values(field: str, value: str, shown: bool) -> None:
    """Free text and personal fields are fingerprints; codes and dates are shown."""
    result = shown_value(field, value)
    assert (result == value) is shown
    if not shown:
        assert result == mask(value)


def test_free_text_problems_never_show_the_text() -> None:
    """A refused summary, note or step content appears in the reason as a fingerprint."""
    header: dict[str, Any] = {
        "TrichYeuHoSo": f"{RARE_NAME}\r\n{ID_NUMBER}",
        "GhiChu": f"{RARE_NAME} " * 200,
        "Email": f"{RARE_NAME} <{EMAIL}",
        "SoDienThoai": f"{PHONE}x",
    }
    step = {"NoiDungXuLy": f"Trả lời\t{RARE_NAME}"}
    reasons = " ".join(str(p) for p in (*check_header(header, Catalogue()), *check_step(step)))
    for value in (RARE_NAME, ID_NUMBER, PHONE, EMAIL):
        assert value not in reasons
    assert reasons.count("«masked:") >= 5


def test_a_name_in_a_code_column_is_not_quoted_by_the_transform_reason() -> None:
    """A code transform that fails on a personal field shows neither the value nor its quote."""
    mapping = load_mapping(MAPPING)
    record = {
        "id": 1,
        "dossier_no": "000.00.01.H26-261120-0001",
        "applicant_name": RARE_NAME,
        "applicant_kind": f"Nguyễn {RARE_NAME}",
        "status": RARE_NAME,
    }
    reason = mapping.map("dossiers", record).reason()
    assert "LoaiDoiTuong" in reason and "TrangThaiHoSo" in reason
    assert RARE_NAME not in reason
