"""The sandbox's field rules, checked directly (no HTTP)."""

from __future__ import annotations

import copy
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.sandbox import rules
from connector.sandbox.rules import check_dossier, check_step, is_portal_date
from tests.sandbox.sandbox_support import code, dossier, step

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


# The checks answer through a fast reading that may only accept, and fall back on the exact
# field-by-field reading (`_dossier_problem`, `_step_problem`) otherwise. Whatever the item,
# their answer must be the exact reading's: the fast one never accepts what it refuses.

#: Values at the edges of the rules, including those the fast reading leaves to the exact one.
EDGES: list[Any] = [
    "", None, 0, 1.5, True, [], {}, [{}], ["x"], [[]], [{"Ten": "a"}],
    "e\u0301", "\u0301x", DECOMPOSED, "x\0y", "\0", "a\u0301\u0323",
    "20240229120000", "20230229120000", "20240230000000", "20241131000000",
    "20241231235959", "20241231240000", "20241231236000", "00000101000000",
    "٢٠٢٤٠١٠١٠٠٠٠٠٠", "2024010100000", "1", "2", "3", "0", "10", "11", "01",
    "1.000948", "1.000948.H26", "2.002492", "1.000948.", f"{code(1)}x", code(2),
]  # fmt: skip
VALUES = st.one_of(st.sampled_from(EDGES), st.text(max_size=8))
CATALOGUE = frozenset({"1.000948"})
STEP_FORMATTED = ["MaHoSo", "ThoiDiemXuLy", "TrangThai", "NgayBatDau", "NgayKetThucTheoQuyDinh"]
DOSSIER_FORMATTED = [
    "MaHoSo", "MaTTHC", "TrangThaiHoSo", "LoaiDoiTuong", "KenhThucHien", "HinhThuc",
    "NgayTiepNhan", "NgayHenTra", "NgayTra", "NgayKetThucXuLy", "NgayNopHoSo", "NgayTuChoi",
]  # fmt: skip
STEP_KEYS = st.one_of(
    st.sampled_from(STEP_FORMATTED), st.sampled_from(sorted({*rules.STEP_FIELDS, "Foo"}))
)
DOSSIER_KEYS = st.one_of(
    st.sampled_from(DOSSIER_FORMATTED),
    st.sampled_from(sorted({*rules.HEADER_FIELDS, *rules.LIST_FIELDS, "Foo", "NgayBoSung"})),
)
ENTRY_KEYS = st.one_of(
    st.just("NgayBoSung"),
    st.sampled_from(sorted({k for keys in rules.LIST_FIELDS.values() for k in keys} | {"Size"})),
)


def _rich_dossier() -> dict[str, Any]:
    return dossier(
        KenhThucHien="2",
        NgayTra="20220721100000",
        TaiLieuNop=[{"TepDinhKemId": "1", "TenTepDinhKem": "đơn.pdf", "DuocSoHoa": "1"}],
        DanhSachLePhi=[{"TenPhiLePhi": "Lệ phí", "Gia": "0"}],
        DanhSachHoSoBoSung=[{"HoSoBoSungId": "1", "NgayBoSung": "20220714080000"}],
    )


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any], keys: st.SearchStrategy[str]) -> dict[str, Any]:
    """`base` with a few keys set, removed or reordered, or a list entry changed."""
    item = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        action = draw(st.sampled_from(["set", "set", "drop", "reorder", "entry"]))
        if action == "set":
            item[draw(keys)] = draw(VALUES)
        elif action == "drop" and item:
            del item[draw(st.sampled_from(sorted(item)))]
        elif action == "reorder":
            item = dict(draw(st.permutations(list(item.items()))))
        elif action == "entry":
            lists = [v for v in item.values() if isinstance(v, list) and v]
            entry = draw(st.sampled_from(lists))[0] if lists else None
            if isinstance(entry, dict):
                entry[draw(ENTRY_KEYS)] = draw(VALUES)
    return item


@settings(max_examples=400, deadline=None)
@given(item=mutated(step(), STEP_KEYS))
def test_a_step_gets_the_exact_readings_answer(item: dict[str, Any]) -> None:
    """check_step answers what the field-by-field reading answers, for any item."""
    assert check_step(item) == rules._step_problem(item)


@settings(max_examples=400, deadline=None)
@given(item=mutated(_rich_dossier(), DOSSIER_KEYS), catalogue=st.sampled_from([None, CATALOGUE]))
def test_a_dossier_gets_the_exact_readings_answer(
    item: dict[str, Any], catalogue: frozenset[str] | None
) -> None:
    """check_dossier answers what the field-by-field reading answers, for any item."""
    assert check_dossier(item, catalogue) == rules._dossier_problem(item, catalogue)


@pytest.mark.parametrize(
    "fields",
    [
        {"ChuHoSo": "Nguyễn Văn An\0"},  # a NUL is text like any other
        {"NgayHenTra": "20240229170000"},  # a leap day
        {"ChuHoSo": "An e", "TrichYeuHoSo": "\u0301 cấp phép"},  # NFC each, not joined
        {"TaiLieuNop": []},
        {"DanhSachHoSoBoSung": [{"DanhSachGiayToBoSung": [{"Ten": "a"}]}]},
    ],
)
def test_dossiers_the_fast_reading_leaves_to_the_exact_one_pass(fields: dict[str, Any]) -> None:
    """Unusual but valid content is still accepted."""
    assert check_dossier(dossier(**fields), None) is None


def test_each_edge_value_in_each_field_gets_the_exact_readings_answer() -> None:
    """Every edge value, alone in any field of a step, a dossier or a list entry."""
    for key in sorted({*rules.STEP_FIELDS, "Foo"}):
        for value in EDGES:
            item = step(**{key: value})
            assert check_step(item) == rules._step_problem(item), (key, value)
    for key in sorted({*rules.HEADER_FIELDS, *rules.LIST_FIELDS, "Foo"}):
        for value in EDGES:
            item = _rich_dossier() | {key: value}
            assert check_dossier(item, CATALOGUE) == rules._dossier_problem(item, CATALOGUE)
    for field, allowed in rules.LIST_FIELDS.items():
        for key in sorted({*allowed, "Size"}):
            for value in EDGES:
                item = _rich_dossier() | {field: [{"TenGiayTo": "Đơn", key: value}]}
                assert check_dossier(item, None) == rules._dossier_problem(item, None)
