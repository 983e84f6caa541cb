"""A corpus of bad local records in a demo-like local database, with the good ones they sit
among, and what the connector must say about each.

The database uses the demo schema without its constraints or column types, so a record can
hold what a careless local system holds: NULLs, numbers or bytes where text belongs, two
dossiers with one number. The mapping is the demo's, except that `TrichYeuHoSo` has no
`nfc` transform (so decomposed text there must be refused, not fixed).
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connector.demo.schema import COLUMNS, DDL

ROOT = Path(__file__).resolve().parents[2]
DEMO_MAPPING = ROOT / "mappings" / "demo.toml"
AGENCY = "000.00.11.H26"  # STP in the demo crosswalk
LONG = 100_000
NFD_SUMMARY = unicodedata.normalize("NFD", "Đăng ký khai sinh cho con")

GOOD_DOSSIER: dict[str, Any] = {
    "procedure_code": "HN-HT-01",
    "agency_code": "STP",
    "applicant_name": "Nguyễn Văn An",
    "applicant_kind": "citizen",
    "applicant_id": "001090012345",
    "phone": "0912345678",
    "email": "an.nguyen@example.vn",
    "summary": "Đăng ký khai sinh cho con",
    "channel": "online",
    "return_by_post": 0,
    "submitted_at": "2026-11-26 17:30:00",
    "received_at": "2026-11-27 08:00:00",
    "due_at": "2026-11-28 17:00:00",
    "finished_at": None,
    "returned_at": None,
    "status": "received",
    "note": None,
}

GOOD_STEP: dict[str, Any] = {
    "actor": "Trần Thị Bình",
    "actor_title": "Chuyên viên",
    "department": "Bộ phận một cửa",
    "action_at": "2026-11-27 09:15:00",
    "content": "Tiếp nhận hồ sơ",
    "status": "received",
    "started_at": "2026-11-27 08:00:00",
    "deadline_at": None,
}


@dataclass(frozen=True)
class Case:
    """One bad record: which stream, what differs from a good one, and the dead letter's
    field and words."""

    name: str
    stream: str
    changes: dict[str, Any]
    field: str
    words: str


#: Bad dossiers (each on its own number) and bad steps (each on a good dossier).
CASES: tuple[Case, ...] = (
    Case("no procedure", "dossiers", {"procedure_code": None}, "MaTTHC", "required"),
    Case("no receipt date", "dossiers", {"received_at": None}, "NgayTiepNhan", "required"),
    Case("no e-mail", "dossiers", {"email": None}, "Email", "required"),
    Case("no status", "dossiers", {"status": None}, "TrangThaiHoSo", "required"),
    Case(
        "30 February",
        "dossiers",
        {"due_at": "2026-02-30 08:00:00"},
        "NgayHenTra",
        "not a recognised date or time",
    ),
    Case(
        "25:61",
        "dossiers",
        {"received_at": "2026-11-27 25:61:00"},
        "NgayTiepNhan",
        "not a recognised date or time",
    ),
    Case("unknown status", "dossiers", {"status": "archived"}, "TrangThaiHoSo", "no code"),
    Case("unknown channel", "dossiers", {"channel": "fax"}, "KenhThucHien", "no code"),
    Case(
        "unknown applicant kind", "dossiers", {"applicant_kind": "alien"}, "LoaiDoiTuong", "no code"
    ),
    Case("unknown procedure", "dossiers", {"procedure_code": "ZZ-99"}, "MaTTHC", "no crosswalk"),
    Case("unknown agency", "dossiers", {"agency_code": "ZZZ"}, "DonViXuLy", "required"),
    Case(
        "number of an unknown agency",
        "dossiers",
        {"dossier_no": "000.00.99.H26-261127-0999"},
        "MaHoSo",
        "not in the agency catalogue",
    ),
    Case("int name", "dossiers", {"applicant_name": 12345}, "ChuHoSo", "got int"),
    Case("float summary", "dossiers", {"summary": 3.5}, "TrichYeuHoSo", "got float"),
    Case("bytes name", "dossiers", {"applicant_name": b"Nguy\xe1\xbb\x85n"}, "ChuHoSo", "bytes"),
    Case("bytes id", "dossiers", {"applicant_id": b"001090012345"}, "MaDoiTuong", "bytes"),
    Case("NFD summary", "dossiers", {"summary": NFD_SUMMARY}, "TrichYeuHoSo", "not Unicode NFC"),
    Case("100 KB summary", "dossiers", {"summary": "Đ" * LONG}, "TrichYeuHoSo", "longer than"),
    Case("100 KB note", "dossiers", {"note": "n" * LONG}, "GhiChu", "longer than"),
    Case(
        "CR/LF in name",
        "dossiers",
        {"applicant_name": "Nguyễn\r\nVăn An"},
        "ChuHoSo",
        "control character",
    ),
    Case("tab in name", "dossiers", {"applicant_name": "Nguyễn\tVăn"}, "ChuHoSo", "control"),
    Case("NUL in name", "dossiers", {"applicant_name": "Nguyen\x00An"}, "ChuHoSo", "control"),
    Case("NEL in name", "dossiers", {"applicant_name": "Nguyễn\x85An"}, "ChuHoSo", "control"),
    Case("step on 30 February", "steps", {"action_at": "2026-02-30 09:00:00"}, "ThoiDiemXuLy", ""),
    Case("step unknown status", "steps", {"status": "archived"}, "TrangThai", "no code"),
    Case("step CR/LF actor", "steps", {"actor": "Trần\nBình"}, "NguoiXuLy", "control"),
    Case("step 100 KB content", "steps", {"content": "c" * LONG}, "NoiDungXuLy", "longer than"),
    Case("step without actor", "steps", {"actor": None}, "NguoiXuLy", "required"),
    Case("step bytes content", "steps", {"content": b"\x00\x01"}, "NoiDungXuLy", "bytes"),
)

#: Values near the limits that are valid and must arrive exactly as the source holds them.
EDGE_GOOD: tuple[dict[str, Any], ...] = (
    {"summary": "Đ" * 2000},
    {"note": "Ghi chú: hồ sơ đầy đủ, đã đối chiếu bản chính."},
    {"applicant_name": "Hoàng Thị Ánh Tuyết", "phone": "+84912345678"},
)


@dataclass
class Corpus:
    """The local database's records, by source reference, and the expected verdicts."""

    db: Path
    mapping: Path
    dossiers: dict[str, dict[str, Any]] = field(default_factory=dict)  # ref -> row
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    bad: dict[str, Case] = field(default_factory=dict)  # ref -> case
    duplicate: tuple[str, str] = ("", "")  # (owner ref, duplicate ref)
    duplicate_step: str = ""  # ref of a step of the duplicate, under the owner's number
    renumbered: str = ""  # ref of the dossier whose number changes later

    def good_dossiers(self) -> dict[str, dict[str, Any]]:
        return {r: row for r, row in self.dossiers.items() if r not in self.bad_refs()}

    def good_steps(self) -> dict[str, dict[str, Any]]:
        return {r: row for r, row in self.steps.items() if r not in self.bad_refs()}

    def bad_refs(self) -> set[str]:
        return {*self.bad, self.duplicate[1], self.duplicate_step}


def corpus_mapping(folder: Path) -> Path:
    """The demo mapping, without `nfc` on TrichYeuHoSo, with its crosswalks beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(DEMO_MAPPING.parent / "demo", folder / "demo", dirs_exist_ok=True)
    text = DEMO_MAPPING.read_text(encoding="utf-8")
    text = text.replace(
        'TrichYeuHoSo = { from = "summary", via = ["nfc", "strip"] }',
        'TrichYeuHoSo = { from = "summary", via = ["strip"] }',
    )
    assert 'via = ["strip"] }' in text
    path = folder / "mapping.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _loose_ddl() -> str:
    """The demo DDL without NOT NULL, UNIQUE or column types (ids stay integer keys)."""
    ddl = DDL.replace(" NOT NULL", "").replace(" UNIQUE", "").replace(" DEFAULT 0", "")
    ddl = re.sub(r"(\w+) (?:TEXT|INTEGER)(?! PRIMARY)", r"\1", ddl)
    return ddl


def _stamp(n: int) -> str:
    """A `modified_at` for the n-th change: UTC, fixed width, increasing."""
    return f"2026-11-27T01:{n // 60:02d}:{n % 60:02d}.000000Z"


class _Writer:
    def __init__(self, conn: sqlite3.Connection, corpus: Corpus) -> None:
        self.conn = conn
        self.corpus = corpus
        self.changes = 0

    def dossier(self, number: int, **changes: Any) -> str:
        row = {"id": number, "dossier_no": f"{AGENCY}-261127-{number:04d}", **GOOD_DOSSIER}
        row.update(changes)
        self.changes += 1
        row["modified_at"] = _stamp(self.changes)
        self._insert("dossiers", row)
        ref = f"dossiers:{number}"
        self.corpus.dossiers[ref] = row
        return ref

    def step(self, number: int, dossier: int, **changes: Any) -> str:
        row = {"id": number, "dossier_id": dossier, **GOOD_STEP}
        row["action_at"] = f"2026-11-27 09:{number % 60:02d}:00"
        row.update(changes)
        self.changes += 1
        row["modified_at"] = _stamp(self.changes)
        self._insert("steps", row)
        ref = f"steps:{number}"
        self.corpus.steps[ref] = {**row, "dossier_no": self._number_of(dossier)}
        return ref

    def _number_of(self, dossier: int) -> str:
        return str(self.corpus.dossiers[f"dossiers:{dossier}"]["dossier_no"])

    def _insert(self, table: str, row: dict[str, Any]) -> None:
        columns = [c for c in COLUMNS[table] if c in row]
        marks = ", ".join("?" for _ in columns)
        self.conn.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
            [row[c] for c in columns],
        )


def build_corpus(folder: Path) -> Corpus:
    """Write the local database and the mapping: good and bad records interleaved."""
    corpus = Corpus(db=folder / "local.db", mapping=corpus_mapping(folder / "mapping"))
    conn = sqlite3.connect(corpus.db, isolation_level=None)
    try:
        conn.executescript(_loose_ddl())
        conn.execute("BEGIN")
        _catalogue(conn)
        _records(_Writer(conn, corpus))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return corpus


def _catalogue(conn: sqlite3.Connection) -> None:
    import csv

    crosswalks = DEMO_MAPPING.parent / "demo"
    with (crosswalks / "agencies.csv").open(encoding="utf-8") as f:
        agencies = [(r["local_code"], r["name"], r["level"]) for r in csv.DictReader(f)]
    with (crosswalks / "procedures.csv").open(encoding="utf-8") as f:
        procedures = [
            (r["local_code"], r["name"], r["level"], r["domain_code"], r["domain_name"], 1)
            for r in csv.DictReader(f)
        ]
    conn.executemany("INSERT INTO agencies VALUES (?, ?, ?)", agencies)
    conn.executemany("INSERT INTO procedures VALUES (?, ?, ?, ?, ?, ?)", procedures)


def _records(w: _Writer) -> None:
    corpus = w.corpus
    number, step = 1, 1
    for index, case in enumerate(CASES):
        good = w.dossier(number, **EDGE_GOOD[index % len(EDGE_GOOD)])
        number += 1
        w.step(step, number - 1)
        step += 1
        if case.stream == "dossiers":
            corpus.bad[w.dossier(number, **case.changes)] = case
            number += 1
        else:
            corpus.bad[w.step(step, number - 1, **case.changes)] = case
            step += 1
        assert good not in corpus.bad
    owner = w.dossier(number)
    same = corpus.dossiers[owner]["dossier_no"]
    duplicate = w.dossier(number + 1, dossier_no=same, status="done", summary="Trùng số hồ sơ")
    corpus.duplicate = (owner, duplicate)
    corpus.duplicate_step = w.step(step, number + 1)
    corpus.renumbered = w.dossier(number + 2)
    w.step(step + 1, number + 2)


def renumber(corpus: Corpus, new_number: str) -> None:
    """The local system gives the dossier `corpus.renumbered` a new number, after it was sent."""
    ref = corpus.renumbered
    row_id = int(ref.split(":")[1])
    conn = sqlite3.connect(corpus.db, isolation_level=None)
    try:
        conn.execute(
            "UPDATE dossiers SET dossier_no = ?, status = 'processing', modified_at = ?"
            " WHERE id = ?",
            (new_number, "2026-11-28T00:00:00.000000Z", row_id),
        )
    finally:
        conn.close()
