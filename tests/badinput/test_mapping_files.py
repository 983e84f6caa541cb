"""Broken mapping files and crosswalks: each is refused at load with a message naming the
file and the key, through the Python API and `connector mapping check` (exit code 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from connector.errors import MappingError
from connector.mapfiles import check_mapping, load_mapping
from tests.badinput.corpus import corpus_mapping


def edit(old: str, new: str) -> Callable[[Path], Path]:
    """Replace text in the mapping file; returns the file the message must name."""

    def apply(folder: Path) -> Path:
        path = folder / "mapping.toml"
        text = path.read_text(encoding="utf-8")
        assert old in text, old
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        return path

    return apply


def csv(name: str, body: str) -> Callable[[Path], Path]:
    """Replace a crosswalk CSV; the message must name the CSV."""

    def apply(folder: Path) -> Path:
        path = folder / "demo" / f"{name}.csv"
        path.write_text(body, encoding="utf-8")
        return path

    return apply


AGENCIES = "local_code,qcvn_code,name,level\nSTP,000.00.11.H26,Sở Tư pháp,department\n"
NAME = 'name = "demo-onestop"'

BROKEN: list[tuple[str, Callable[[Path], Path], str]] = [
    ("unknown transform", edit('via = ["nfc", "strip"] }', 'via = ["nfc", "trim"] }'),
     "[dossier.fields] TenTTHC: unknown transform 'trim'"),
    ("unknown code table", edit('via = ["code:channel"]', 'via = ["code:chanel"]'),
     "[dossier.fields] KenhThucHien: unknown code table 'chanel'"),
    ("unknown crosswalk", edit('via = ["crosswalk:procedures"]', 'via = ["crosswalk:procs"]'),
     "[dossier.fields] MaTTHC: unknown crosswalk 'procs'"),
    ("catalogue of unknown crosswalk", edit('procedures = "procedures"', 'procedures = "procs"'),
     "[catalogue] procedures: unknown crosswalk 'procs'"),
    ("crosswalk CSV missing a column", csv("agencies", "local_code,code\nSTP,000.00.11.H26\n"),
     "[crosswalks.agencies] file"),
    ("crosswalk column not declared", edit('to = "qcvn_code"', 'to = "qcvn"'),
     "no column 'qcvn'"),
    ("crosswalk file missing", edit('file = "demo/agencies.csv"', 'file = "demo/none.csv"'),
     "[crosswalks.agencies] file"),
    ("duplicate local code", csv("agencies", AGENCIES + "STP,000.00.12.H26,Sở Xây dựng,x\n"),
     "local code 'STP' maps to '000.00.12.H26' but line 2 maps it to '000.00.11.H26'"),
    ("field unknown to the portal", edit('MaLinhVuc = "domain_code"', 'MaLinhVuc = "domain_code"\n'
     'MaLinhVucCon = "domain_code"'), "[dossier.fields] MaLinhVucCon: not a field the portal"),
    ("step field unknown to the portal", edit('ChucDanh = {', 'ChucVu = {'),
     "[step.fields] ChucVu: not a field the portal knows"),
    ("list field unknown to the portal", edit('MaPhiLePhi = "code"', 'MaPhi = "code"'),
     "[dossier.lists.DanhSachLePhi.fields] MaPhi: not a field the portal knows"),
    ("list from an unknown child stream", edit('from = "fees"', 'from = "charges"'),
     "[dossier.lists.DanhSachLePhi] from: no child stream 'charges'"),
    ("bad TOML syntax", edit("[dossier.fields]", "[dossier.fields"), "not valid TOML"),
    ("unknown field key",
     edit('MaHoSo = "dossier_no"\nMaTTHC', 'MaHoSo = { form = "dossier_no" }\nMaTTHC'),
     "[dossier.fields] MaHoSo: unknown keys ['form']"),
    ("stream without pull", edit('pull = """\nSELECT s.id', 'pul = """\nSELECT s.id'),
     "streams.steps: 'pull' is missing"),
    ("stream without key", edit('[streams.steps]\nkey = "id"\n', '[streams.steps]\n'),
     "[streams.steps] key: missing"),
    ("stream without cursor", edit('[streams.steps]\nkey = "id"\ncursor = ["modified_at", "id"]\n',
     '[streams.steps]\nkey = "id"\n'), "streams.steps: 'cursor' is missing"),
    ("cursor and start disagree", edit('start = ["", 0]', 'start = [""]'),
     "streams.dossiers: 'start' must have one value per 'cursor' column"),
    ("child without query", edit('parent = "dossier_id"\nquery', 'parent = "dossier_id"\nsql'),
     "streams.dossiers.children.files: 'query' is missing"),
    ("one-dossier select without the dossier",
     edit("WHERE d.dossier_no = :dossier AND s.id > :after", "WHERE s.id > :after"),
     "streams.steps.select_dossier: must select by :dossier and page with :after and :limit"),
    ("mapping without name", edit(NAME, ""), "[mapping] name: missing"),
    ("unknown time zone", edit('timezone = "Asia/Ho_Chi_Minh"', 'timezone = "Asia/Hanoi_City"'),
     "[mapping] timezone: unknown time zone"),
    ("code not a string", edit('citizen = "1"', "citizen = 1"),
     "[codes.applicant_kind] citizen: portal codes must be strings"),
]  # fmt: skip


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    corpus_mapping(tmp_path)
    return tmp_path


def test_the_starting_mapping_is_clean(folder: Path) -> None:
    """The table's starting point loads and checks clean, so each breakage is the only fault."""
    load_mapping(folder / "mapping.toml")
    assert check_mapping(folder / "mapping.toml") == []


@pytest.mark.parametrize(("breakage", "words"), [(b, w) for _, b, w in BROKEN],
                         ids=[n for n, _, _ in BROKEN])  # fmt: skip
def test_broken_mapping_names_file_and_key(
    folder: Path, breakage: Callable[[Path], Path], words: str
) -> None:
    """`load_mapping` raises MappingError naming the file and the key; `check_mapping`
    reports the same message."""
    named = breakage(folder)
    with pytest.raises(MappingError) as caught:
        load_mapping(folder / "mapping.toml")
    message = str(caught.value)
    assert str(named) in message and words in message, message
    assert check_mapping(folder / "mapping.toml") == [message]


@pytest.mark.parametrize(
    "name",
    ["unknown transform", "duplicate local code", "stream without cursor", "bad TOML syntax"],
)
def test_mapping_check_exits_2_naming_the_key(folder: Path, name: str) -> None:
    """`connector mapping check FILE` exits 2 with the message on stderr."""
    ((breakage, words),) = [(b, w) for n, b, w in BROKEN if n == name]
    breakage(folder)
    result = subprocess.run(
        [sys.executable, "-m", "connector", "mapping", "check", str(folder / "mapping.toml")],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert words in " ".join(result.stderr.split())
