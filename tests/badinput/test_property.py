"""Any source record either maps to a payload that passes the connector's validation and the
sandbox portal's independent rules, or is refused with reasons; mapping never raises, and
the outcome can always be stored."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.core.hashing import canonical_json
from connector.core.mapping import CompiledMapping
from connector.core.records import Mapped, Payload
from connector.core.transforms import is_blank
from connector.core.validation import check_header, check_step
from connector.mapfiles import load_mapping
from connector.sandbox import rules
from connector.store.existing import Seen
from connector.store.ingest import Planner
from tests.badinput.corpus import DEMO_MAPPING, GOOD_DOSSIER, GOOD_STEP

MAPPING: CompiledMapping = load_mapping(DEMO_MAPPING)
PROCEDURES = MAPPING.catalogue.procedures
NUMBER = "000.00.11.H26-261127-0001"

BASE_DOSSIER: dict[str, Any] = {
    "id": 1,
    "dossier_no": NUMBER,
    **GOOD_DOSSIER,
    "procedure_name": "Đăng ký khai sinh",
    "domain_code": "G09-HT",
    "domain_name": "Hộ tịch",
    "agency_name": "Sở Tư pháp",
    "modified_at": "2026-11-27T01:00:00.000000Z",
}
BASE_STEP: dict[str, Any] = {"id": 1, "dossier_id": 1, "dossier_no": NUMBER, **GOOD_STEP}

#: Values a careless source holds, plus good ones so that many records are valid.
TEXT = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(max_codepoint=0x2030), max_size=30),  # C0/C1 controls, CR/LF
    st.text(max_size=30).map(lambda t: unicodedata.normalize("NFD", t)),
    st.sampled_from(["Nguyễn\r\nVăn", unicodedata.normalize("NFD", "Hộ tịch"), "a\u2028b"]),
    st.sampled_from(["\ud800", "x\udfffy"]),  # lone surrogates
    st.integers(min_value=250, max_value=100_000).map(lambda n: "Đ" * n),
)
GOOD = st.sampled_from(
    [
        "received", "done", "citizen", "organisation", "online", "counter", "HN-HT-01",
        NUMBER, "0", "1", "2026-11-27 08:00:00", "2026-11-28T17:00:00+07:00",
        "2026-02-30 08:00:00", "2026-11-27 25:61:00", "an@example.vn", "0912345678",
        " Sở Tư pháp ",
    ]
)  # fmt: skip
#: Blank text (whitespace only, the no-break spaces included) is missing, as None is; text
#: with a zero-width space or a BOM, or with something between blanks, is not blank.
BLANK = st.one_of(
    st.sampled_from(["", " ", "   ", "\t", "\r\n", "\u00a0", "\u3000", " \u2003\t"]),
    st.text(
        st.sampled_from(" \t\n\r\x0b\x0c\x1c\x85\u00a0\u1680\u2009\u2028\u202f\u3000"), min_size=1
    ),
)
NEAR_BLANK = st.sampled_from(["\u200b", "\ufeff", " \u200b ", " x ", "\u00a0Hộ tịch\u00a0"])
ANY = st.one_of(
    st.none(),
    TEXT,
    GOOD,
    BLANK,
    NEAR_BLANK,
    st.integers(),
    st.integers(min_value=2**64),
    st.floats(),
    st.booleans(),
    st.binary(max_size=8),
    st.datetimes(),
    st.datetimes(timezones=st.timezones()),
    st.datetimes(min_value=datetime(9999, 12, 31), timezones=st.timezones()),
    st.lists(st.one_of(st.integers(), st.text(max_size=3)), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
CHILD = st.dictionaries(
    st.sampled_from(
        ["id", "name", "component_code", "url", "digitised", "amount", "state", "code", "doc_code"]
    ),
    st.one_of(BLANK, ANY),
    max_size=5,
)
CHILDREN = st.one_of(st.none(), st.lists(CHILD, max_size=3), ANY)


def _nothing_missing_sent(payload: Payload) -> None:
    """No value, in the payload or its list items, is None, blank, an empty list or item."""
    for value in payload.values():
        if isinstance(value, list):
            assert value and all(value), payload
            for item in value:
                _nothing_missing_sent(item)
        else:
            assert value is not None and not is_blank(value), payload


def _check(mapped: Mapped) -> None:
    """The verdict's promises: valid means the portal's rules pass; refused has reasons."""
    if mapped.ok:
        payload = mapped.payload
        if mapped.kind.value == "header":
            assert check_header(payload, MAPPING.catalogue) == ()
            assert rules.check_dossier(payload, PROCEDURES) is None, payload
        else:
            assert check_step(payload) == ()
            assert rules.check_step(payload) is None, payload
        canonical_json(payload)
    else:
        assert all(p.field and p.reason for p in mapped.problems)
        assert len(mapped.reason()) < 20_000, "a reason repeats a huge value"
    _nothing_missing_sent(mapped.payload)
    Planner(Seen(), now=0.0, force=False).add(mapped)  # storable, valid or not


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(sorted(BASE_DOSSIER)), st.one_of(GOOD, BLANK, ANY), max_size=4),
    st.dictionaries(st.sampled_from(["files", "fees", "supplements", "results"]), CHILDREN),
)
def test_any_dossier_record_maps_to_a_verdict(
    changes: dict[str, Any], children: dict[str, Any]
) -> None:
    """Whatever the dossier record and its child rows hold, the verdict keeps its promises."""
    _check(MAPPING.map("dossiers", {**BASE_DOSSIER, **changes, **children}))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(sorted(BASE_STEP)), st.one_of(GOOD, BLANK, ANY), max_size=4))
def test_any_step_record_maps_to_a_verdict(changes: dict[str, Any]) -> None:
    """Whatever the step record holds, the verdict keeps its promises."""
    _check(MAPPING.map("steps", {**BASE_STEP, **changes}))


def test_the_base_records_are_valid() -> None:
    """The records the properties vary start valid, so the valid branch is exercised."""
    assert MAPPING.map("dossiers", BASE_DOSSIER).ok
    assert MAPPING.map("steps", BASE_STEP).ok


def _paths_agree(stream: str, record: dict[str, Any]) -> None:
    """The one-pass path accepts only what the field-by-field path accepts, with the same
    payload; when it declines, the field-by-field path decides (see `CompiledMapping.map`)."""
    shape = MAPPING.header if stream == "dossiers" else MAPPING.step
    fast = shape.fused(record)
    if fast is None:
        return
    payload, problems = shape.build(record)
    if stream == "dossiers":
        checked = check_header(payload, MAPPING.catalogue)
    else:
        checked = check_step(payload)
    assert problems == [] and checked == (), (problems, checked)
    assert fast == payload
    _nothing_missing_sent(fast)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(sorted(BASE_DOSSIER)), st.one_of(GOOD, BLANK, ANY), max_size=4),
    st.dictionaries(st.sampled_from(["files", "fees", "supplements", "results"]), CHILDREN),
)
def test_one_pass_dossier_mapping_agrees_with_the_field_by_field_path(
    changes: dict[str, Any], children: dict[str, Any]
) -> None:
    _paths_agree("dossiers", {**BASE_DOSSIER, **changes, **children})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(sorted(BASE_STEP)), st.one_of(GOOD, BLANK, ANY), max_size=4))
def test_one_pass_step_mapping_agrees_with_the_field_by_field_path(
    changes: dict[str, Any],
) -> None:
    _paths_agree("steps", {**BASE_STEP, **changes})


#: Child rows of one list, each column blank, nearly blank, or as in a good row.
BLANK_CHILD = st.dictionaries(
    st.sampled_from(["id", "name", "component_code", "url", "code", "doc_code", "amount"]),
    st.one_of(BLANK, NEAR_BLANK, st.sampled_from(["TP1", "Tờ khai", "8000", "https://x.vn/1"])),
    max_size=5,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(sorted(BASE_DOSSIER)), st.one_of(BLANK, NEAR_BLANK)),
    st.dictionaries(
        st.sampled_from(["files", "fees", "results"]), st.lists(BLANK_CHILD, max_size=3)
    ),
)
def test_both_paths_treat_blank_dossier_values_alike(
    changes: dict[str, Any], children: dict[str, Any]
) -> None:
    """Mostly valid records with blank values: both paths leave them out, or both refuse."""
    record = {**BASE_DOSSIER, **changes, **children}
    _paths_agree("dossiers", record)
    _check(MAPPING.map("dossiers", record))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(sorted(BASE_STEP)), st.one_of(BLANK, NEAR_BLANK)))
def test_both_paths_treat_blank_step_values_alike(changes: dict[str, Any]) -> None:
    """The same for steps."""
    record = {**BASE_STEP, **changes}
    _paths_agree("steps", record)
    _check(MAPPING.map("steps", record))


def test_the_base_records_take_the_one_pass_path() -> None:
    """So the agreement properties above exercise the one-pass path, not only its refusals."""
    assert MAPPING.header.fused(BASE_DOSSIER) is not None
    assert MAPPING.step.fused(BASE_STEP) is not None


def test_blank_values_take_the_one_pass_path() -> None:
    """A record whose optional fields are blank is valid and does not need the slow path."""
    blank_children = {
        "files": [{"id": 1, "name": "Tờ khai", "component_code": "   ", "url": "\u00a0"}],
        "results": [{"id": 2, "name": " ", "doc_code": "\t", "url": "\u3000"}],
    }
    record = {**BASE_DOSSIER, "note": "   ", "channel": " ", **blank_children}
    fast = MAPPING.header.fused(record)
    assert fast is not None and fast == MAPPING.map("dossiers", record).payload
    assert "GhiChu" not in fast and "KenhThucHien" not in fast
    assert fast["TaiLieuNop"] == [
        {"TepDinhKemId": "1", "TenTepDinhKem": "Tờ khai", "IsDeleted": "False"}
    ]
    assert fast["DanhSachGiayToKetQua"] == [{"GiayToId": "2"}]
    step = {**BASE_STEP, "actor_title": "\u00a0"}
    assert MAPPING.step.fused(step) == MAPPING.map("steps", step).payload
