"""Compiling mapping documents and mapping source records through them."""

from __future__ import annotations

import tomllib
import unicodedata
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.core.mapping import CompiledMapping, compile_mapping
from connector.core.records import Kind
from connector.core.validation import check_header
from connector.errors import MappingError

DEMO = Path(__file__).resolve().parents[2] / "mappings" / "demo.toml"
CROSSWALKS = {
    "procedures": {"HN-HT-01": "1.001193", "HN-DD-02": "1.004227"},
    "agencies": {"STP": "000.00.11.H26", "SXD": "000.00.12.H26"},
}
DOSSIER_NO = "000.00.11.H26-261127-0001"


def demo_doc() -> dict[str, Any]:
    """A fresh parse of the demo mapping, safe to modify."""
    return tomllib.loads(DEMO.read_text(encoding="utf-8"))


def compiled(doc: dict[str, Any] | None = None) -> CompiledMapping:
    return compile_mapping(doc or demo_doc(), CROSSWALKS, origin="demo.toml")


def dossier_row(**changes: Any) -> dict[str, Any]:
    """A dossiers-stream record as the demo SQL returns it, with its child lists."""
    row: dict[str, Any] = {
        "id": 41,
        "dossier_no": DOSSIER_NO,
        "procedure_code": "HN-HT-01",
        "procedure_name": unicodedata.normalize("NFD", " Đăng ký khai sinh "),
        "domain_code": "G09-HT",
        "domain_name": "Hộ tịch",
        "agency_code": "STP",
        "agency_name": "Sở Tư pháp",
        "applicant_name": "Nguyễn Văn An",
        "applicant_kind": "citizen",
        "applicant_id": 1234567890,
        "phone": "0912345678",
        "email": " an.nguyen@example.vn ",
        "summary": "Đăng ký khai sinh cho con",
        "channel": "online",
        "return_by_post": 0,
        "submitted_at": "2026-11-26T17:30:00Z",
        "received_at": "2026-11-27 08:00:00",
        "due_at": datetime(2026, 11, 28, 17, 0),
        "finished_at": None,
        "returned_at": "",
        "status": "received",
        "note": None,
        "modified_at": "2026-11-27 08:00:00",
        "files": [
            {"dossier_id": 41, "id": 7, "name": "Tờ khai", "component_code": "TP1",
             "url": "https://files.example.vn/7", "digitised": True},
        ],
        "fees": [
            {"dossier_id": 41, "id": 3, "name": "Lệ phí", "code": "LP1", "amount": 8000.0,
             "method": 2, "kind": 1},
        ],
        "supplements": [],
        "results": None,
    }  # fmt: skip
    row.update(changes)
    return row


def step_row(**changes: Any) -> dict[str, Any]:
    """A steps-stream record as the demo SQL returns it."""
    row: dict[str, Any] = {
        "id": 9,
        "dossier_id": 7,
        "dossier_no": DOSSIER_NO,
        "actor": "Trần Thị Bình",
        "actor_title": "Chuyên viên",
        "department": "Bộ phận một cửa",
        "action_at": "2026-11-27 09:15:00",
        "content": "Tiếp nhận hồ sơ",
        "status": "received",
        "started_at": "2026-11-27 08:00:00",
        "deadline_at": None,
        "modified_at": "2026-11-27 09:15:00",
    }
    row.update(changes)
    return row


def test_demo_record_maps_to_the_exact_payload() -> None:
    """A full demo record becomes exactly this DongBoHoSoMC dossier."""
    mapped = compiled().map("dossiers", dossier_row())
    assert mapped.problems == ()
    assert mapped.payload == {
        "MaHoSo": "000.00.11.H26-261127-0001",
        "MaTTHC": "1.001193",
        "TenTTHC": "Đăng ký khai sinh",
        "MaLinhVuc": "G09-HT",
        "TenLinhVuc": "Hộ tịch",
        "KenhThucHien": "2",
        "ChuHoSo": "Nguyễn Văn An",
        "LoaiDoiTuong": "1",
        "MaDoiTuong": "1234567890",
        "Email": "an.nguyen@example.vn",
        "SoDienThoai": "0912345678",
        "TrichYeuHoSo": "Đăng ký khai sinh cho con",
        "NgayNopHoSo": "20261127003000",
        "NgayTiepNhan": "20261127080000",
        "NgayHenTra": "20261128170000",
        "TrangThaiHoSo": "2",
        "HinhThuc": "0",
        "DonViXuLy": "Sở Tư pháp",
        "TaiLieuNop": [
            {
                "TepDinhKemId": "7",
                "TenTepDinhKem": "Tờ khai",
                "IsDeleted": "False",
                "MaThanhPhanHoSo": "TP1",
                "DuongDanTaiTepTin": "https://files.example.vn/7",
                "DuocSoHoa": "1",
            }
        ],
        "DanhSachLePhi": [
            {
                "TenPhiLePhi": "Lệ phí",
                "MaPhiLePhi": "LP1",
                "HinhThucThu": "2",
                "Gia": "8000",
                "LoaiPhiLePhi": "1",
            }
        ],
    }


def test_header_identity_fields() -> None:
    """A header's key and dossier are its MaHoSo; its event time is NgayTiepNhan."""
    mapped = compiled().map("dossiers", dossier_row())
    assert mapped.kind is Kind.HEADER
    assert (mapped.key, mapped.dossier) == (DOSSIER_NO, DOSSIER_NO)
    assert mapped.source_ref == "dossiers:41"
    assert mapped.event_time == "20261127080000"


def test_step_key_and_event_time() -> None:
    """A step's key is MaHoSo|ThoiDiemXuLy|TrangThai and its event time ThoiDiemXuLy."""
    mapped = compiled().map("steps", step_row())
    assert mapped.ok, mapped.reason()
    assert mapped.kind is Kind.STEP
    assert mapped.key == f"{DOSSIER_NO}|20261127091500|2"
    assert mapped.dossier == DOSSIER_NO
    assert mapped.source_ref == "steps:9"
    assert mapped.event_time == "20261127091500"
    assert mapped.payload == {
        "MaHoSo": DOSSIER_NO,
        "NguoiXuLy": "Trần Thị Bình",
        "ChucDanh": "Chuyên viên",
        "ThoiDiemXuLy": "20261127091500",
        "PhongBanXuLy": "Bộ phận một cửa",
        "NoiDungXuLy": "Tiếp nhận hồ sơ",
        "TrangThai": "2",
        "NgayBatDau": "20261127080000",
    }


def test_step_names_its_dossier_record() -> None:
    """With `[step] dossier_record`, a step carries its dossier record's reference, in the
    form the dossier stream's records have; headers carry none."""
    assert compiled().map("steps", step_row()).dossier_ref == "dossiers:7"
    assert compiled().map("dossiers", dossier_row()).dossier_ref == ""
    doc = demo_doc()
    del doc["step"]["dossier_record"]
    mapped = compiled(doc).map("steps", step_row(dossier_id=None))
    assert mapped.ok and mapped.dossier_ref == ""


@pytest.mark.parametrize("empty", [None, ""])
def test_step_without_its_dossier_record_is_refused(empty: Any) -> None:
    """A step whose dossier record column is empty cannot be checked against the record
    owning its MaHoSo: refused, naming the column, with its other problems too."""
    mapped = compiled().map("steps", step_row(dossier_id=empty))
    assert mapped.reason() == (
        "MaHoSo: the step's dossier record is not known: column dossier_id is empty"
    )
    both = compiled().map("steps", step_row(dossier_id=empty, dossier_no="HS-1"))
    assert [p.field for p in both.problems] == ["MaHoSo", "MaHoSo"], both.reason()
    assert "HS-1" in both.problems[0].reason + str(both.problems[0].value)


def test_step_without_time_falls_back_to_source_ref() -> None:
    """A step whose time is missing keeps a usable key and is invalid."""
    mapped = compiled().map("steps", step_row(action_at=None))
    assert mapped.key == "steps:9"
    assert mapped.event_time == ""
    assert [p.field for p in mapped.problems] == ["ThoiDiemXuLy"]


def test_unknown_stream_is_a_programming_error() -> None:
    """Mapping a stream the file does not map raises instead of inventing a kind."""
    with pytest.raises(ValueError, match="files"):
        compiled().map("files", {})


def problems_of(row: dict[str, Any], mapping: CompiledMapping | None = None) -> list[str]:
    mapped = (mapping or compiled()).map("dossiers", row)
    return [str(p) for p in mapped.problems]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"procedure_code": "ZZ-99"},
            "MaTTHC: no crosswalk entry in procedures for local code 'ZZ-99' "
            "(column procedure_code) (value 'ZZ-99')",
        ),
        ({"due_at": None}, "NgayHenTra: required by the portal but missing"),
        (
            {"dossier_no": "HS-2026-1"},
            "MaHoSo: not a dossier code <agency>-<yyMMdd>-<4 digits> (value 'HS-2026-1')",
        ),
        (
            {"received_at": "27/11/2026"},
            "NgayTiepNhan: not a recognised date or time (column received_at) (value '27/11/2026')",
        ),
        (
            {"status": "archived"},
            "TrangThaiHoSo: no code in table status for value 'archived' (column status) "
            "(value 'archived')",
        ),
        (
            {"summary": "x" * 100_000},
            "TrichYeuHoSo: longer than 2000 characters (100000)",
        ),
        (
            {"due_at": "2026-11-26 08:00:00"},
            "NgayHenTra: earlier than NgayTiepNhan (20261127080000) (value '20261126080000')",
        ),
    ],
)
def test_invalid_records_yield_specific_problems(changes: dict[str, Any], expected: str) -> None:
    """Bad data never raises: it becomes a problem naming the field and the rule."""
    found = problems_of(dossier_row(**changes))
    assert any(p.startswith(expected) for p in found), found


def test_fault_in_mapping_is_not_reported_twice() -> None:
    """An unknown procedure is one problem, not also 'MaTTHC required'."""
    found = problems_of(dossier_row(procedure_code="ZZ-99"))
    assert len(found) == 1


def test_crlf_in_name_is_a_masked_problem() -> None:
    """A CR/LF inside the applicant's name is refused and the name never shown."""
    (problem,) = compiled().map("dossiers", dossier_row(applicant_name="Nguyễn\r\nVăn An")).problems
    assert problem.field == "ChuHoSo"
    assert "control character" in problem.reason
    assert problem.value is not None and problem.value.startswith("«masked:")
    assert "Nguyễn" not in str(problem)


def test_non_nfc_text_without_nfc_transform_is_a_problem() -> None:
    """Decomposed text is refused, not silently fixed, when the mapping forgets `nfc`."""
    doc = demo_doc()
    doc["dossier"]["fields"]["TrichYeuHoSo"] = {"from": "summary", "via": ["strip"]}
    mapping = compiled(doc)
    row = dossier_row(summary=unicodedata.normalize("NFD", "Hộ tịch"))
    (problem,) = mapping.map("dossiers", row).problems
    assert (problem.field, problem.reason) == (
        "TrichYeuHoSo",
        "text is not Unicode NFC (add the 'nfc' transform)",
    )
    assert compiled().map("dossiers", row).ok


def test_personal_values_are_masked_in_mapping_problems() -> None:
    """A bad e-mail or phone is reported with a fingerprint only."""
    row = dossier_row(email="an.nguyen(at)example.vn", phone="09-123-456")
    text = " ".join(problems_of(row))
    assert "Email" in text and "SoDienThoai" in text
    assert "an.nguyen" not in text and "09-123-456" not in text


def test_missing_optional_dates_and_empty_lists_are_left_out() -> None:
    """None, '' and empty child lists never reach the payload."""
    payload = compiled().map("dossiers", dossier_row(fees=[], submitted_at="")).payload
    assert "NgayNopHoSo" not in payload and "NgayTra" not in payload
    assert "DanhSachLePhi" not in payload and "DanhSachGiayToKetQua" not in payload
    assert "" not in payload.values() and None not in payload.values()


def test_required_in_the_mapping_is_enforced() -> None:
    """`required = true` makes an optional portal field mandatory for this source."""
    doc = demo_doc()
    doc["dossier"]["fields"]["GhiChu"] = {"from": "note", "required": True}
    assert problems_of(dossier_row(), compiled(doc)) == [
        "GhiChu: required by the mapping but empty (column note)"
    ]


def test_const_and_default() -> None:
    """`const` always sends its literal; `default:` fills only a missing value."""
    doc = demo_doc()
    doc["dossier"]["fields"]["ThongTinKhac"] = {"const": "demo"}
    doc["dossier"]["fields"]["GhiChu"] = {"from": "note", "via": ["default:none"]}
    payload = compiled(doc).map("dossiers", dossier_row()).payload
    assert (payload["ThongTinKhac"], payload["GhiChu"]) == ("demo", "none")


def test_list_item_problems_name_the_item() -> None:
    """A bad child row is reported with the list name and its index."""
    files = [{"id": 1, "name": "a", "digitised": True}, {"id": 2, "name": "b", "digitised": 7}]
    found = problems_of(dossier_row(files=files))
    assert found == ["TaiLieuNop[1].DuocSoHoa: not one of the portal's codes (0, 1) (value '7')"]


#: What padded CHAR columns and careless forms hold when they hold nothing.
BLANKS = [" ", "   ", "\t", " \r\n ", "\u00a0", "\u3000", "\u2003 \u2009"]


def no_blank_anywhere(payload: dict[str, Any]) -> None:
    """No value of the payload or of its list items is None, blank or an empty list/item."""
    for value in payload.values():
        if isinstance(value, list):
            assert value and all(value), payload
            for item in value:
                no_blank_anywhere(item)
        else:
            assert isinstance(value, str) and value.strip(), payload


def unstripped(doc: dict[str, Any]) -> dict[str, Any]:
    """The demo mapping with the optional GhiChu and ChucDanh, and the required MaHoSo and
    NguoiXuLy, taken from their columns as they are (no `strip`)."""
    doc["dossier"]["fields"]["GhiChu"] = "note"
    doc["step"]["fields"]["ChucDanh"] = "actor_title"
    doc["step"]["fields"]["NguoiXuLy"] = "actor"
    return doc


@pytest.mark.parametrize("blank", BLANKS)
def test_a_blank_optional_header_field_is_left_out(blank: str) -> None:
    """A field holding only whitespace is missing: no key, and the record is still valid."""
    mapping = compiled(unstripped(demo_doc()))
    row = dossier_row(note=blank, channel=blank)
    mapped = mapping.map("dossiers", row)
    assert mapped.ok, mapped.reason()
    assert "GhiChu" not in mapped.payload and "KenhThucHien" not in mapped.payload
    no_blank_anywhere(mapped.payload)
    assert mapping.header.fused(row) == mapped.payload  # the one-pass path takes it


@pytest.mark.parametrize("blank", BLANKS)
def test_a_blank_required_header_field_is_missing(blank: str) -> None:
    """A required field holding only whitespace refuses the record, naming the field."""
    assert problems_of(dossier_row(domain_code=blank)) == [
        "MaLinhVuc: required by the portal but missing"
    ]
    assert problems_of(dossier_row(dossier_no=blank)) == [
        "MaHoSo: required by the portal but missing"
    ]


def test_a_blank_field_the_mapping_requires_is_empty() -> None:
    """`required = true` refuses a blank value as it refuses an empty one."""
    doc = demo_doc()
    doc["dossier"]["fields"]["GhiChu"] = {"from": "note", "required": True}
    assert problems_of(dossier_row(note="   "), compiled(doc)) == [
        "GhiChu: required by the mapping but empty (column note)"
    ]


@pytest.mark.parametrize("blank", BLANKS)
def test_blank_list_item_fields_are_left_out(blank: str) -> None:
    """In list items too; an item left with nothing is dropped, and so is a list."""
    files = [
        {"id": 7, "name": "Tờ khai", "component_code": blank, "url": blank, "digitised": blank},
    ]
    fees = [{"id": 3, "name": "Lệ phí", "code": blank, "amount": 8000, "method": blank}]
    results = [{"id": None, "name": blank, "component_code": blank, "doc_code": blank}]
    row = dossier_row(files=files, fees=fees, results=results)
    mapped = compiled().map("dossiers", row)
    assert mapped.ok, mapped.reason()
    assert mapped.payload["TaiLieuNop"] == [
        {"TepDinhKemId": "7", "TenTepDinhKem": "Tờ khai", "IsDeleted": "False"}
    ]
    assert mapped.payload["DanhSachLePhi"] == [{"TenPhiLePhi": "Lệ phí", "Gia": "8000"}]
    assert "DanhSachGiayToKetQua" not in mapped.payload
    assert compiled().header.fused(row) == mapped.payload


@pytest.mark.parametrize("blank", BLANKS)
def test_blank_step_fields(blank: str) -> None:
    """A blank optional step field is left out; a blank required one refuses the step."""
    mapping = compiled(unstripped(demo_doc()))
    mapped = mapping.map("steps", step_row(actor_title=blank))
    assert mapped.ok, mapped.reason()
    assert "ChucDanh" not in mapped.payload
    assert mapping.step.fused(step_row(actor_title=blank)) == mapped.payload
    for changes, field in [({"actor": blank}, "NguoiXuLy"), ({"dossier_no": blank}, "MaHoSo")]:
        refused = mapping.map("steps", step_row(**changes))
        assert [str(p) for p in refused.problems] == [
            f"{field}: required by the portal but missing"
        ]


def test_text_around_real_content_is_sent_as_it_is() -> None:
    """Only blank text is missing: surrounding spaces stay unless the mapping says `strip`."""
    mapping = compiled(unstripped(demo_doc()))
    row = dossier_row(note=" ghi chú ", domain_code=" G09-HT ")
    mapped = mapping.map("dossiers", row)
    assert mapped.ok, mapped.reason()
    assert (mapped.payload["GhiChu"], mapped.payload["MaLinhVuc"]) == (" ghi chú ", " G09-HT ")
    assert mapping.header.fused(row) == mapped.payload


def test_a_blank_code_from_a_table_is_missing_on_both_paths() -> None:
    """A code table may hold a blank code: what it yields is left out, by the one-pass path
    too (which tests for blanks only where the transforms could yield one)."""
    doc = demo_doc()
    doc["codes"]["channel"]["kiosk"] = "  "
    doc["dossier"]["fields"]["GhiChu"] = {"from": "note", "via": ["default: "]}
    mapping = compiled(doc)
    row = dossier_row(channel="kiosk")
    mapped = mapping.map("dossiers", row)
    assert mapped.ok, mapped.reason()
    assert "KenhThucHien" not in mapped.payload and "GhiChu" not in mapped.payload
    assert mapping.header.fused(row) == mapped.payload


def test_default_fills_a_blank_value() -> None:
    """A blank value is missing, so `default:` fills it."""
    doc = demo_doc()
    doc["dossier"]["fields"]["GhiChu"] = {"from": "note", "via": ["default:không"]}
    assert compiled(doc).map("dossiers", dossier_row(note="  ")).payload["GhiChu"] == "không"


def edit(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change to a parsed document at a dotted path (None deletes the key)."""

    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node[part]
        if value is None:
            del node[last]
        else:
            node[last] = value

    return apply


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            edit("dossier.fields.TenTTHC", {"from": "procedure_name", "via": ["frobnicate"]}),
            "demo.toml: [dossier.fields] TenTTHC: unknown transform 'frobnicate'",
        ),
        (
            edit("dossier.fields.KenhThucHien", {"from": "channel", "via": ["code:chanel"]}),
            "demo.toml: [dossier.fields] KenhThucHien: unknown code table 'chanel'",
        ),
        (
            edit("dossier.fields.MaTTHC", {"from": "x", "via": ["crosswalk:nope"]}),
            "demo.toml: [dossier.fields] MaTTHC: unknown crosswalk 'nope'",
        ),
        (
            edit("dossier.fields.TenKhac", "note"),
            "demo.toml: [dossier.fields] TenKhac: not a field the portal knows",
        ),
        (
            edit("step.fields.TrangThaiHoSo", "status"),
            "demo.toml: [step.fields] TrangThaiHoSo: not a field the portal knows",
        ),
        (
            edit("dossier.lists.TaiLieuNop.fields.Ten", "name"),
            "demo.toml: [dossier.lists.TaiLieuNop.fields] Ten: not a field the portal knows",
        ),
        (
            edit("dossier.fields.GhiChu", {"via": ["strip"]}),
            "demo.toml: [dossier.fields] GhiChu: needs from",
        ),
        (
            edit("dossier.fields.GhiChu", {"form": "note"}),
            "demo.toml: [dossier.fields] GhiChu: unknown keys ['form']",
        ),
        (
            edit("dossier.fields.GhiChu", {"const": 1}),
            "demo.toml: [dossier.fields] GhiChu: const must be a string",
        ),
        (
            edit("dossier.lists.TaiLieuNop.from", None),
            "demo.toml: [dossier.lists.TaiLieuNop] from: missing",
        ),
        (
            edit("dossier.lists.TaiLieuNop.from", "attachments"),
            "demo.toml: [dossier.lists.TaiLieuNop] from: no child stream 'attachments'",
        ),
        (
            edit("dossier.lists.Files", {"from": "files", "fields": {"x": "y"}}),
            "demo.toml: [dossier.lists] Files: not a list the portal knows",
        ),
        (
            edit("dossier.stream", "cases"),
            "demo.toml: [dossier] stream: no [streams.cases]",
        ),
        (edit("step", None), "demo.toml: [step]: missing"),
        (edit("step.dossier_record", 3), "demo.toml: [step] dossier_record: must be a column"),
        (edit("step.record", "dossier_id"), "demo.toml: [step] record: unknown key"),
        (edit("catalogue.procedures", "procs"), "demo.toml: [catalogue] procedures: unknown"),
        (edit("mapping.timezone", "Mars/Base"), "demo.toml: [mapping] timezone: unknown"),
        (edit("mapping.name", None), "demo.toml: [mapping] name: missing"),
        (edit("extra", {}), "demo.toml: [extra]: unknown section"),
        (edit("codes.status.done", 9), "demo.toml: [codes.status] done: portal codes must be"),
    ],
)
def test_compile_errors_name_file_section_and_field(
    change: Callable[[dict[str, Any]], None], words: str
) -> None:
    """Every mistake in the file is a MappingError naming where it is."""
    doc = demo_doc()
    change(doc)
    with pytest.raises(MappingError) as caught:
        compile_mapping(doc, CROSSWALKS, origin="demo.toml")
    assert str(caught.value).startswith(words), str(caught.value)


def test_declared_crosswalk_must_be_loaded() -> None:
    """A [crosswalks.X] the loader did not supply is an error, not an empty table."""
    with pytest.raises(MappingError, match=r"\[crosswalks.agencies\]: not loaded"):
        compile_mapping(demo_doc(), {"procedures": {}}, origin="demo.toml")


def test_compiled_mapping_exposes_streams_and_catalogue() -> None:
    """The [streams] section passes through untouched; the catalogue holds the targets."""
    mapping = compiled()
    assert mapping.name == "demo-onestop"
    assert (mapping.dossier_stream, mapping.step_stream) == ("dossiers", "steps")
    assert mapping.streams == demo_doc()["streams"]
    assert mapping.catalogue.procedures == frozenset({"1.001193", "1.004227"})
    assert mapping.catalogue.agencies == frozenset({"000.00.11.H26", "000.00.12.H26"})


DEMO_COLUMNS = [
    "dossier_no", "procedure_code", "procedure_name", "domain_code", "domain_name",
    "agency_code", "agency_name", "applicant_name", "applicant_kind", "applicant_id", "phone",
    "email", "summary", "channel", "return_by_post", "submitted_at", "received_at", "due_at",
    "finished_at", "returned_at", "status", "note",
]  # fmt: skip
ANY_VALUE = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.sampled_from(BLANKS),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.datetimes(),
    st.sampled_from(["received", "citizen", "online", "HN-HT-01", DOSSIER_NO, "0"]),
)
PROPERTY_MAPPING = compiled()


FILE_ROW = st.fixed_dictionaries(
    {}, optional={c: ANY_VALUE for c in ("id", "name", "component_code", "url", "digitised")}
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(st.sampled_from(DEMO_COLUMNS), ANY_VALUE),
    st.one_of(st.none(), st.lists(FILE_ROW, max_size=3)),
)
def test_any_record_maps_without_raising(
    changes: dict[str, Any], files: list[dict[str, Any]] | None
) -> None:
    """Whatever the source holds, mapping returns a verdict and never raises."""
    mapped = PROPERTY_MAPPING.map("dossiers", dossier_row(**changes, files=files))
    if mapped.ok:
        assert check_header(mapped.payload, PROPERTY_MAPPING.catalogue) == ()
    else:
        assert all(p.field and p.reason for p in mapped.problems)
    no_blank_anywhere(mapped.payload)
