"""Loading mapping files and their crosswalk CSVs from disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connector import mapfiles
from connector.errors import MappingError
from connector.mapfiles import check_mapping, load_mapping

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "mappings" / "demo.toml"
PROCEDURES = (
    "local_code,national_code,name,level,domain_code,domain_name,duration_days\n"
    "HN-HT-01,1.001193,Đăng ký khai sinh,commune,G09-HT,Hộ tịch,1\n"
    "HN-HT-02,1.000894,Đăng ký kết hôn,commune,G09-HT,Hộ tịch,3\n"
)
AGENCIES = "local_code,qcvn_code,name,level\nSTP,000.00.11.H26,Sở Tư pháp,department\n"


@pytest.fixture
def mapping_dir(tmp_path: Path) -> Path:
    """A copy of the demo mapping with small crosswalk CSVs beside it."""
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo.toml").write_text(DEMO.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "demo" / "procedures.csv").write_text(PROCEDURES, encoding="utf-8")
    (tmp_path / "demo" / "agencies.csv").write_text(AGENCIES, encoding="utf-8")
    return tmp_path


def test_loads_crosswalks_relative_to_the_file(mapping_dir: Path) -> None:
    """The CSVs are found beside the TOML file and feed the catalogue."""
    mapping = load_mapping(mapping_dir / "demo.toml")
    assert mapping.catalogue.procedures == frozenset({"1.001193", "1.000894"})
    assert mapping.catalogue.agencies == frozenset({"000.00.11.H26"})
    assert check_mapping(mapping_dir / "demo.toml") == []


def test_csv_with_byte_order_mark_is_read(mapping_dir: Path) -> None:
    """A spreadsheet-exported CSV with a UTF-8 BOM still has its first column."""
    (mapping_dir / "demo" / "agencies.csv").write_text("\ufeff" + AGENCIES, encoding="utf-8")
    assert load_mapping(mapping_dir / "demo.toml").catalogue.agencies == frozenset(
        {"000.00.11.H26"}
    )


def test_repeated_row_with_the_same_target_is_accepted(mapping_dir: Path) -> None:
    """A local code listed twice with the same target is harmless."""
    (mapping_dir / "demo" / "agencies.csv").write_text(
        AGENCIES + "STP,000.00.11.H26,Sở Tư pháp,department\n", encoding="utf-8"
    )
    assert load_mapping(mapping_dir / "demo.toml").catalogue.agencies == frozenset(
        {"000.00.11.H26"}
    )


@pytest.mark.parametrize(
    ("breakage", "words"),
    [
        (lambda d: (d / "demo.toml").unlink(), "cannot read the mapping file"),
        (lambda d: (d / "demo.toml").write_text("[mapping\n"), "not valid TOML"),
        (
            lambda d: (d / "demo" / "agencies.csv").unlink(),
            "[crosswalks.agencies] file",
        ),
        (
            lambda d: (d / "demo" / "agencies.csv").write_text("local,qcvn_code\nSTP,x\n"),
            "no column 'local_code'",
        ),
        (
            lambda d: (d / "demo" / "agencies.csv").write_text(
                AGENCIES + "STP,000.00.12.H26,Sở Xây dựng,department\n"
            ),
            "line 3: local code 'STP' maps to '000.00.12.H26' but line 2 maps it to "
            "'000.00.11.H26'",
        ),
        (
            lambda d: (d / "demo" / "agencies.csv").write_bytes(b"local_code,qcvn_code\n\xff\n"),
            "not a readable UTF-8 CSV",
        ),
        (
            lambda d: (d / "demo.toml").write_text(
                (d / "demo.toml").read_text(encoding="utf-8").replace('"nfc", "strip"', '"nfd"'),
                encoding="utf-8",
            ),
            "[dossier.fields] TenTTHC: unknown transform 'nfd'",
        ),
    ],
)
def test_broken_files_are_reported_with_their_name(
    mapping_dir: Path, breakage: Callable[[Path], object], words: str
) -> None:
    """load_mapping raises MappingError naming the file; check_mapping reports it instead."""
    breakage(mapping_dir)
    with pytest.raises(MappingError) as caught:
        load_mapping(mapping_dir / "demo.toml")
    assert words in str(caught.value)
    assert str(mapping_dir) in str(caught.value)
    assert check_mapping(mapping_dir / "demo.toml") == [str(caught.value)]


def test_check_warns_about_malformed_targets(mapping_dir: Path) -> None:
    """Crosswalk targets that are not portal codes are flagged with file and line."""
    (mapping_dir / "demo" / "procedures.csv").write_text(
        PROCEDURES + "HN-XX-09,1.00119,Sai mã,commune,G09-HT,Hộ tịch,1\n", encoding="utf-8"
    )
    (mapping_dir / "demo" / "agencies.csv").write_text(
        AGENCIES + "SXD,,Sở Xây dựng,department\n", encoding="utf-8"
    )
    findings = check_mapping(mapping_dir / "demo.toml")
    assert findings == [
        f"warning: {mapping_dir / 'demo' / 'procedures.csv'}:4: crosswalk procedures maps "
        "'HN-XX-09' to '1.00119', not a well-formed national procedure code",
        f"warning: {mapping_dir / 'demo' / 'agencies.csv'}:3: crosswalk agencies maps "
        "'SXD' to '', not a well-formed QCVN 102 agency code",
    ]


def test_check_warns_about_selections_a_stream_cannot_make(mapping_dir: Path) -> None:
    """A `select` without the change-time conditions still loads (resyncs by other
    selections work), but the check says which resyncs it will refuse."""
    path = mapping_dir / "demo.toml"
    text = path.read_text(encoding="utf-8")
    for line in (
        "  AND (:changed_since IS NULL OR s.modified_at >= :changed_since)\n",
        "  AND (:changed_until IS NULL OR s.modified_at < :changed_until)\n",
    ):
        assert line in text
        text = text.replace(line, "")
    path.write_text(text, encoding="utf-8")
    assert check_mapping(path) == [
        "warning: streams.steps.select does not use :changed_since, :changed_until: a "
        "resync selecting by them is refused (see mappings/README.md)"
    ]


def test_check_warns_when_one_dossier_is_read_by_select(mapping_dir: Path) -> None:
    """Without `select_dossier` a stream still loads, and every look at one dossier runs
    `select`, which reads the whole table: the check says so."""
    path = mapping_dir / "demo.toml"
    text = path.read_text(encoding="utf-8")
    start = text.index('select_dossier = """', text.index("[streams.steps]"))
    end = text.index('"""', start + len('select_dossier = """')) + 3
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    assert check_mapping(path) == [
        "warning: streams.steps: no 'select_dossier', so a retry, a trace, a resync of one "
        "dossier and the pull's re-reads run 'select' for one dossier, which reads the "
        "whole table (see mappings/README.md)"
    ]


def test_check_warns_when_steps_do_not_name_their_dossier_record(mapping_dir: Path) -> None:
    """A mapping without `[step] dossier_record` loads, with a warning saying what it risks."""
    path = mapping_dir / "demo.toml"
    text = path.read_text(encoding="utf-8")
    line = 'dossier_record = "dossier_id"\n'
    assert line in text
    path.write_text(text.replace(line, ""), encoding="utf-8")
    assert load_mapping(path).step.dossier_column == ""
    (finding,) = check_mapping(path)
    assert finding.startswith("warning: [step] names no dossier_record: a step of a second")


def test_the_shipped_demo_mapping_loads() -> None:
    """mappings/demo.toml with its real crosswalks compiles and maps a demo record."""
    csvs = [DEMO.parent / "demo" / "procedures.csv", DEMO.parent / "demo" / "agencies.csv"]
    if not all(path.exists() for path in csvs):
        pytest.skip("the demo crosswalk CSVs are not written yet")
    mapping = load_mapping(DEMO)
    assert mapping.catalogue.procedures and mapping.catalogue.agencies
    errors = [f for f in check_mapping(DEMO) if not f.startswith("warning:")]
    assert errors == []
    agency = sorted(mapping.catalogue.agencies)[0]
    step = {
        "id": 1,
        "dossier_id": 1,
        "dossier_no": f"{agency}-261127-0001",
        "actor": "Trần Thị Bình",
        "action_at": "2026-11-27 09:15:00",
        "content": "Tiếp nhận hồ sơ",
        "status": "received",
    }
    assert mapping.map("steps", step).ok


def test_check_compiles_the_streams_once(
    mapping_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The streams' SQL is compiled once per check, and its warnings come from that one."""
    calls: list[int] = []
    real = mapfiles.compile_streams

    def counted(streams: Any) -> Any:
        calls.append(1)
        return real(streams)

    monkeypatch.setattr(mapfiles, "compile_streams", counted)
    text = (mapping_dir / "demo.toml").read_text(encoding="utf-8")
    start = text.index('select_dossier = """', text.index("[streams.steps]"))
    end = text.index('"""', start + len('select_dossier = """')) + 3
    (mapping_dir / "demo.toml").write_text(text[:start] + text[end:], encoding="utf-8")
    findings = check_mapping(mapping_dir / "demo.toml")
    assert len(calls) == 1
    assert [f for f in findings if "streams.steps: no 'select_dossier'" in f], findings
