"""Crosswalk target codes against the portal's catalogues: which crosswalks are checked,
against which catalogue, and which codes the portal does not list. No I/O."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connector.core.catalogue_check import (
    AGENCIES,
    DOMAINS,
    PROCEDURES,
    CrosswalkCodes,
    CrosswalkRow,
    catalogue_crosswalks,
    compare,
    listed_codes,
)
from connector.mapfiles import catalogue_codes

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "mappings" / "demo.toml"

PROCEDURE_ROWS = [
    {"MATTHC": "1.001193", "TENTTHC": "Đăng ký khai sinh"},
    {"MATTHC": "1.000894", "TENTTHC": "Đăng ký kết hôn"},
]
AGENCY_ROWS = [{"MADONVI": "000.00.11.H26", "TENDONVI": "Sở Tư pháp", "CAPDONVI": "department"}]


def procedures(*rows: tuple[int, str, str]) -> CrosswalkCodes:
    return CrosswalkCodes(
        crosswalk="procedures",
        file="demo/procedures.csv",
        kind=PROCEDURES,
        rows=tuple(CrosswalkRow(line=n, local=local, code=code) for n, local, code in rows),
    )


def agencies(*rows: tuple[int, str, str]) -> CrosswalkCodes:
    return CrosswalkCodes(
        crosswalk="agencies",
        file="demo/agencies.csv",
        kind=AGENCIES,
        rows=tuple(CrosswalkRow(line=n, local=local, code=code) for n, local, code in rows),
    )


CATALOGUES: dict[str, list[dict[str, Any]]] = {
    "LayDanhSachTTHC": PROCEDURE_ROWS,
    "LayDanhMucCoQuan": AGENCY_ROWS,
}


def test_every_code_listed_is_clean() -> None:
    """Codes the catalogues list give no finding; every row is counted as checked."""
    report = compare(
        [
            procedures((2, "HN-HT-01", "1.001193"), (3, "HN-HT-02", "1.000894")),
            agencies((2, "STP", "000.00.11.H26")),
        ],
        CATALOGUES,
    )
    assert report.ok and report.unknown == () and report.empty == ()
    assert report.checked == 3
    assert [(c.kind, c.listed, c.checked, c.unknown) for c in report.counts] == [
        (PROCEDURES, 2, 2, 0),
        (AGENCIES, 1, 1, 0),
    ]


def test_unlisted_codes_are_named_with_file_line_and_local_code() -> None:
    """Each unlisted target is one finding naming the crosswalk, its file and row."""
    report = compare(
        [
            procedures((2, "HN-HT-01", "1.001193"), (7, "HN-XD-01", "1.009994")),
            agencies((2, "STP", "000.00.11.H26"), (3, "SXD", "000.00.12.H26")),
        ],
        CATALOGUES,
    )
    assert not report.ok
    found = [(u.crosswalk, u.file, u.line, u.local, u.code, u.kind) for u in report.unknown]
    assert found == [
        ("procedures", "demo/procedures.csv", 7, "HN-XD-01", "1.009994", PROCEDURES),
        ("agencies", "demo/agencies.csv", 3, "SXD", "000.00.12.H26", AGENCIES),
    ]
    assert report.unknown[0].describe() == (
        "demo/procedures.csv:7: crosswalk procedures maps 'HN-XD-01' to '1.009994', "
        "which the portal's procedures catalogue (LayDanhSachTTHC) does not list"
    )
    assert report.checked == 4
    assert [c.unknown for c in report.counts] == [1, 1]


def test_each_row_sharing_an_unlisted_code_is_reported() -> None:
    """Two local codes mapped to the same unlisted code are two findings, two rows to fix."""
    report = compare(
        [procedures((2, "A", "1.999999"), (3, "B", "1.999999"))],
        {"LayDanhSachTTHC": PROCEDURE_ROWS},
    )
    assert [(u.line, u.local) for u in report.unknown] == [(2, "A"), (3, "B")]


@pytest.mark.parametrize(
    "rows",
    [
        [{"MATTHC": "1.001193"}],
        [{"MaTTHC": "1.001193"}],
        [{"maTTHC": " 1.001193 "}],
        [{"TENTTHC": "x", "matthc": "1.001193"}],
    ],
    ids=["contract-upper", "camel", "lower-padded", "all-lower"],
)
def test_column_name_case_does_not_matter(rows: list[dict[str, Any]]) -> None:
    """The contract writes MATTHC; a portal writing MaTTHC (or padding the value) is read."""
    assert listed_codes(rows, "MATTHC") == frozenset({"1.001193"})
    report = compare([procedures((2, "HN-HT-01", "1.001193"))], {"LayDanhSachTTHC": rows})
    assert report.ok and report.checked == 1


def test_junk_catalogue_rows_are_skipped() -> None:
    """Rows that are not objects, lack the column or hold no text add no code."""
    rows: list[Any] = [
        "1.001193",
        None,
        {"TENTTHC": "no code"},
        {"MATTHC": None},
        {"MATTHC": ""},
        {"MATTHC": True},
        {"MATTHC": ["1.001193"]},
        {"MATTHC": "1.000894"},
    ]
    assert listed_codes(rows, "MATTHC") == frozenset({"1.000894"})
    assert listed_codes([{"MADONVI": 12}], "MADONVI") == frozenset({"12"})


def test_procedure_code_with_unit_suffix_is_known_by_its_national_part() -> None:
    """As before sending: 1.001193.H26 is known when the portal lists 1.001193."""
    report = compare(
        [procedures((2, "HN-HT-01", "1.001193.H26"), (3, "X", "1.001194.H26"))], CATALOGUES
    )
    assert [u.code for u in report.unknown] == ["1.001194.H26"]


def test_suffix_rule_is_only_for_procedures() -> None:
    """An agency code is compared whole: a prefix of it being listed is not enough."""
    rows = [{"MADONVI": "000.00.11"}]
    report = compare([agencies((2, "STP", "000.00.11.H26"))], {"LayDanhMucCoQuan": rows})
    assert [u.code for u in report.unknown] == ["000.00.11.H26"]


def test_codes_are_compared_exactly() -> None:
    """The portal is the authority on spelling: another case is another code."""
    report = compare([agencies((2, "STP", "000.00.11.h26"))], CATALOGUES)
    assert [u.code for u in report.unknown] == ["000.00.11.h26"]


def test_empty_catalogue_is_reported_not_every_code() -> None:
    """A catalogue with no code at all (wrong share path, not served) is one problem, and
    its rows are 'not checked' rather than each 'unknown'."""
    report = compare(
        [procedures((2, "HN-HT-01", "1.001193")), agencies((2, "STP", "000.00.11.H26"))],
        {"LayDanhSachTTHC": PROCEDURE_ROWS, "LayDanhMucCoQuan": []},
    )
    assert report.unknown == ()
    assert report.empty == (AGENCIES,)
    assert report.unchecked == 1 and report.checked == 1
    assert not report.ok


def test_missing_catalogue_counts_as_empty() -> None:
    """A service absent from the answers is not silently passed."""
    report = compare([agencies((2, "STP", "000.00.11.H26"))], {"LayDanhSachTTHC": PROCEDURE_ROWS})
    assert report.empty == (AGENCIES,) and not report.ok


def test_rows_without_a_target_are_not_codes() -> None:
    """A local code mapped to nothing is the offline check's business, not the portal's."""
    report = compare([procedures((2, "HN-HT-01", "1.001193"), (3, "HN-X", ""))], CATALOGUES)
    assert report.ok and report.checked == 1


def test_which_crosswalks_feed_which_catalogue() -> None:
    """[catalogue] names procedure and agency crosswalks; a crosswalk in MaTTHC's or
    MaLinhVuc's `via` feeds the procedure or domain catalogue; other crosswalks are not
    catalogued codes."""
    doc: dict[str, Any] = {
        "crosswalks": {"units": {}, "procs": {}, "domains": {}, "fees": {}},
        "catalogue": {"procedures": "procs", "agencies": "units"},
        "dossier": {
            "fields": {
                "MaTTHC": {"from": "p", "via": ["strip", "crosswalk:procs"]},
                "MaLinhVuc": {"from": "d", "via": ["upper", "crosswalk:domains"]},
                "MaHoSo": "dossier_no",
                "GhiChu": {"from": "fee", "via": ["crosswalk:fees"]},
            }
        },
    }
    assert catalogue_crosswalks(doc) == {
        "units": (AGENCIES,),
        "procs": (PROCEDURES,),
        "domains": (DOMAINS,),
    }


def test_no_catalogued_crosswalk() -> None:
    """A mapping that feeds no catalogue asks nothing of the portal."""
    doc = {"dossier": {"fields": {"MaTTHC": "procedure_code"}}}
    assert catalogue_crosswalks(doc) == {}


def test_domain_crosswalk_checked_against_domains() -> None:
    """A MaLinhVuc crosswalk is compared with LayDanhMucLinhVuc's MALINHVUC."""
    domains = CrosswalkCodes(
        crosswalk="domains",
        file="d.csv",
        kind=DOMAINS,
        rows=(
            CrosswalkRow(line=2, local="ht", code="G09-HT"),
            CrosswalkRow(line=3, local="xd", code="G09-XD"),
        ),
    )
    report = compare(
        [domains], {"LayDanhMucLinhVuc": [{"MaLinhVuc": "G09-HT", "TenLinhVuc": "Hộ tịch"}]}
    )
    assert [(u.local, u.code, u.kind) for u in report.unknown] == [("xd", "G09-XD", DOMAINS)]


def test_demo_mapping_rows_come_from_its_csvs() -> None:
    """`catalogue_codes` (the file side) gives the demo's two crosswalks, every CSV row with
    its line number, so findings can point at the line to fix."""
    found = {c.crosswalk: c for c in catalogue_codes(DEMO)}
    assert set(found) == {"procedures", "agencies"}
    assert found["procedures"].kind == PROCEDURES and found["agencies"].kind == AGENCIES
    assert found["procedures"].file.endswith("procedures.csv")
    first = found["procedures"].rows[0]
    assert (first.line, first.local, first.code) == (2, "HN-HT-01", "1.001193")
    csv_rows = (REPO / "mappings" / "demo" / "procedures.csv").read_text("utf-8").splitlines()
    assert len(found["procedures"].rows) == len(csv_rows) - 1
