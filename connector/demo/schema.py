"""The demo database's schema, connection settings and time formats.

Business times are naive Vietnam local time, as most local systems store them; `modified_at`
is UTC in a fixed-width ISO form so that string order is time order and the connector can
page on it.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

VN_OFFSET = timedelta(hours=7)
LOCAL_FORMAT = "%Y-%m-%d %H:%M:%S"
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

DDL = """
CREATE TABLE agencies (local_code TEXT PRIMARY KEY, name TEXT NOT NULL, level TEXT NOT NULL);
CREATE TABLE procedures (
    local_code TEXT PRIMARY KEY, name TEXT NOT NULL, level TEXT NOT NULL,
    domain_code TEXT, domain_name TEXT, duration_days INTEGER NOT NULL);
CREATE TABLE dossiers (
    id INTEGER PRIMARY KEY, dossier_no TEXT NOT NULL UNIQUE, procedure_code TEXT NOT NULL,
    agency_code TEXT NOT NULL, applicant_name TEXT NOT NULL, applicant_kind TEXT NOT NULL,
    applicant_id TEXT, phone TEXT, email TEXT, summary TEXT, channel TEXT NOT NULL,
    return_by_post INTEGER NOT NULL DEFAULT 0, submitted_at TEXT, received_at TEXT,
    due_at TEXT, finished_at TEXT, returned_at TEXT, status TEXT NOT NULL, note TEXT,
    modified_at TEXT NOT NULL);
CREATE TABLE steps (
    id INTEGER PRIMARY KEY, dossier_id INTEGER NOT NULL REFERENCES dossiers(id),
    actor TEXT, actor_title TEXT, department TEXT, action_at TEXT NOT NULL, content TEXT,
    status TEXT NOT NULL, started_at TEXT, deadline_at TEXT, modified_at TEXT NOT NULL);
CREATE TABLE dossier_files (
    id INTEGER PRIMARY KEY, dossier_id INTEGER NOT NULL REFERENCES dossiers(id), name TEXT,
    component_code TEXT, url TEXT, digitised INTEGER NOT NULL DEFAULT 0);
CREATE TABLE fees (
    id INTEGER PRIMARY KEY, dossier_id INTEGER NOT NULL REFERENCES dossiers(id), name TEXT,
    code TEXT, amount INTEGER, method TEXT, kind TEXT);
CREATE TABLE supplements (
    id INTEGER PRIMARY KEY, dossier_id INTEGER NOT NULL REFERENCES dossiers(id),
    requested_by TEXT, content TEXT, requested_at TEXT, received_by TEXT, received_at TEXT,
    state TEXT NOT NULL, old_due_at TEXT, new_due_at TEXT);
CREATE TABLE results (
    id INTEGER PRIMARY KEY, dossier_id INTEGER NOT NULL REFERENCES dossiers(id), name TEXT,
    component_code TEXT, doc_code TEXT, url TEXT);
CREATE INDEX ix_dossiers_modified ON dossiers (modified_at, id);
CREATE INDEX ix_dossiers_status ON dossiers (status);
CREATE INDEX ix_steps_modified ON steps (modified_at, id);
CREATE INDEX ix_steps_dossier ON steps (dossier_id);
CREATE INDEX ix_files_dossier ON dossier_files (dossier_id);
CREATE INDEX ix_fees_dossier ON fees (dossier_id);
CREATE INDEX ix_supplements_dossier ON supplements (dossier_id);
CREATE INDEX ix_results_dossier ON results (dossier_id);
"""

#: Column order of the rows the generator and the live activity insert.
COLUMNS = {
    "dossiers": (
        "id", "dossier_no", "procedure_code", "agency_code", "applicant_name", "applicant_kind",
        "applicant_id", "phone", "email", "summary", "channel", "return_by_post",
        "submitted_at", "received_at", "due_at", "finished_at", "returned_at", "status",
        "note", "modified_at",
    ),
    "steps": (
        "id", "dossier_id", "actor", "actor_title", "department", "action_at", "content",
        "status", "started_at", "deadline_at", "modified_at",
    ),
    "dossier_files": ("id", "dossier_id", "name", "component_code", "url", "digitised"),
    "fees": ("id", "dossier_id", "name", "code", "amount", "method", "kind"),
    "supplements": (
        "id", "dossier_id", "requested_by", "content", "requested_at", "received_by",
        "received_at", "state", "old_due_at", "new_due_at",
    ),
    "results": ("id", "dossier_id", "name", "component_code", "doc_code", "url"),
}  # fmt: skip


def insert_sql(table: str) -> str:
    columns = COLUMNS[table]
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"


def connect(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode, so a reader (the connector) never blocks the writer."""
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def local_text(moment: datetime) -> str:
    """A naive Vietnam local time as the local system stores it (LOCAL_FORMAT)."""
    return moment.isoformat(sep=" ", timespec="seconds")


def parse_local(text: str) -> datetime:
    return datetime.strptime(text, LOCAL_FORMAT)


def stamp(moment: datetime) -> str:
    """`modified_at` for a naive Vietnam local time: UTC, fixed width, microseconds."""
    return (moment - VN_OFFSET).isoformat(timespec="microseconds") + "Z"


def parse_stamp(text: str) -> datetime:
    """A `modified_at` back to a naive Vietnam local time."""
    return datetime.strptime(text, STAMP_FORMAT) + VN_OFFSET


def after(modified_at: str) -> str:
    """The smallest `modified_at` strictly later than the given one."""
    moment = datetime.strptime(modified_at, STAMP_FORMAT) + timedelta(microseconds=1)
    return moment.strftime(STAMP_FORMAT)


def vn_now(now: datetime | None = None) -> datetime:
    """Naive Vietnam local time for an aware `now` (default: the system clock)."""
    moment = now if now is not None else datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return moment.astimezone(UTC).replace(tzinfo=None) + VN_OFFSET
