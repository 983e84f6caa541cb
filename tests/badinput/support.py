"""Configuration files and expectations shared by the bad-input tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.badinput.corpus import Corpus

CONFIG = """
[state]
url = "sqlite:///{state}"

[source]
url = "sqlite:///{db}"
mapping = "{mapping}"
page_size = {page_size}

[portal]
base_url = "{portal}"
username = "demo"
password = {{ env = "CONNECTOR_PORTAL_PASSWORD" }}
dstcode = "TEST-DST"
madonvi = "000.00.01.H26"
session_expired_codes = ["-1"]
transient_codes = ["503"]

[portal.retry]
attempts = 3
max_seconds = 5
backoff_initial = 0.05
backoff_max = 0.5

[delivery]
backoff_initial = 0.2
backoff_max = 2

[schedule]
pull_seconds = 0.5
push_seconds = 0.5

[status]
port = {status_port}

[logging]
format = "json"
"""


def write_config(
    path: Path,
    corpus: Corpus,
    *,
    portal: str = "http://127.0.0.1:9",
    status_port: int = 0,
    page_size: int = 7,
) -> Path:
    """A configuration reading the corpus; small pages so good and bad records share them."""
    path.write_text(
        CONFIG.format(
            state=path.parent / "state.db",
            db=corpus.db,
            mapping=corpus.mapping,
            portal=portal,
            status_port=status_port,
            page_size=page_size,
        ),
        encoding="utf-8",
    )
    return path


def portal_time(local: str) -> str:
    """'2026-11-27 08:00:00' (naive Vietnam time) as the portal writes it."""
    return "".join(ch for ch in local if ch.isdigit())[:14]


def source_fields(row: dict[str, Any]) -> dict[str, str]:
    """The header fields a good dossier row must arrive with, exactly as the source holds
    them (the demo mapping strips blanks, and the corpus has none)."""
    expected = {
        "MaHoSo": row["dossier_no"],
        "ChuHoSo": row["applicant_name"],
        "MaDoiTuong": row["applicant_id"],
        "SoDienThoai": row["phone"],
        "Email": row["email"],
        "TrichYeuHoSo": row["summary"],
        "NgayTiepNhan": portal_time(row["received_at"]),
        "NgayHenTra": portal_time(row["due_at"]),
    }
    if row.get("note"):
        expected["GhiChu"] = row["note"]
    return expected


def step_fields(row: dict[str, Any]) -> dict[str, str]:
    """The step fields a good step row must arrive with."""
    return {
        "MaHoSo": row["dossier_no"],
        "NguoiXuLy": row["actor"],
        "NoiDungXuLy": row["content"],
        "ThoiDiemXuLy": portal_time(row["action_at"]),
    }
