"""What the sandbox portal holds, in its own SQLite file.

Besides the current headers and steps, the store keeps an `applications` row for every
header it applied (with the content hash and a `noop` flag) and an arrival `seq` for every
step, so a checker can prove after a crash test that no header version was applied twice in
effect and that each dossier's steps arrived in time order.

One connection, used only from the event loop's thread; each request commits once. WAL with
synchronous=NORMAL keeps a commit cheap while surviving a kill of the process.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, NamedTuple

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dossiers (
    ma_ho_so TEXT PRIMARY KEY, payload TEXT NOT NULL, hash TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, versions INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    ma_ho_so TEXT NOT NULL, thoi_diem TEXT NOT NULL, trang_thai TEXT NOT NULL,
    payload TEXT NOT NULL, seq INTEGER NOT NULL, received_count INTEGER NOT NULL,
    PRIMARY KEY (ma_ho_so, thoi_diem, trang_thai));
CREATE TABLE IF NOT EXISTS applications (
    seq INTEGER NOT NULL, ma_ho_so TEXT NOT NULL, hash TEXT NOT NULL,
    is_updating INTEGER NOT NULL, noop INTEGER NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rejections (
    at REAL NOT NULL, service TEXT NOT NULL, ma_ho_so TEXT, code TEXT NOT NULL,
    message TEXT NOT NULL);
"""

# Payloads arrive as orjson's UTF-8 bytes; CAST stores them as the same TEXT a str would give,
# without decoding them in Python only for sqlite3 to encode them again.
_INSERT_DOSSIER = (
    "INSERT INTO dossiers (ma_ho_so, payload, hash, created_at, updated_at, versions)"
    " VALUES (?, CAST(? AS TEXT), ?, ?, ?, 1)"
)
_UPDATE_DOSSIER = (
    "UPDATE dossiers SET payload = CAST(? AS TEXT), hash = ?, updated_at = ?,"
    " versions = versions + 1 WHERE ma_ho_so = ?"
)
_INSERT_APPLICATION = (
    "INSERT INTO applications (seq, ma_ho_so, hash, is_updating, noop, at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_UPSERT_STEP = (
    "INSERT INTO steps (ma_ho_so, thoi_diem, trang_thai, payload, seq, received_count)"
    " VALUES (?, ?, ?, CAST(? AS TEXT), ?, 1) ON CONFLICT (ma_ho_so, thoi_diem, trang_thai)"
    " DO UPDATE SET received_count = received_count + 1"
)
_IN_CHUNK = 500  # well under SQLite's bound-parameter limit


class Application(NamedTuple):
    """One header to apply: a create, an update, or an update that changes nothing.

    Named tuples, not dataclasses, for the per-item records: they are as immutable and
    several times cheaper to build, which counts at thousands of items per second.
    """

    ma_ho_so: str
    payload: bytes  # canonical JSON, UTF-8
    hash: str
    is_updating: bool
    noop: bool


class StepRow(NamedTuple):
    """One progress step to store under its identity (MaHoSo, ThoiDiemXuLy, TrangThai).

    The fields are in the order of the `steps` columns they fill.
    """

    ma_ho_so: str
    thoi_diem: str
    trang_thai: str
    payload: bytes  # canonical JSON, UTF-8


class SandboxStore:
    """The sandbox's SQLite state; `:memory:` gives a throw-away store for tests."""

    def __init__(self, path: str, *, wall_clock: Callable[[], float] = time.time) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._open = True
        self._now = wall_clock
        # Only a new file takes it. A commit writes every changed page as its own WAL frame
        # (with its own write calls), so 16 KiB pages make a batch's commit a quarter as many.
        self._db.execute("PRAGMA page_size=16384")
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._seq = self._last_seq()

    def close(self) -> None:
        """Commit what is pending and release the file (a second call does nothing)."""
        if self._open:
            self._open = False
            self._db.commit()
            self._db.close()

    def commit(self) -> None:
        """End the request's transaction (one commit per request)."""
        self._db.commit()

    def next_seq(self) -> int:
        """The next arrival number; shared by requests and steps, increasing across restarts."""
        self._seq += 1
        return self._seq

    def held_hashes(self, codes: Collection[str]) -> dict[str, str]:
        """MaHoSo → content hash, for those of `codes` the sandbox holds."""
        return dict(self._select_in("SELECT ma_ho_so, hash FROM dossiers", codes))

    def held(self, codes: Collection[str]) -> set[str]:
        """Those of `codes` the sandbox holds."""
        return {row[0] for row in self._select_in("SELECT ma_ho_so FROM dossiers", codes)}

    def _select_in(self, select: str, codes: Collection[str]) -> list[Any]:
        rows: list[Any] = []
        unique = list(dict.fromkeys(codes))
        for start in range(0, len(unique), _IN_CHUNK):
            chunk = unique[start : start + _IN_CHUNK]
            sql = f"{select} WHERE ma_ho_so IN ({','.join('?' * len(chunk))})"
            rows.extend(self._db.execute(sql, chunk).fetchall())
        return rows

    def apply_dossiers(self, applications: Sequence[Application], request_seq: int) -> None:
        """Create or replace headers, in request order, and record every application."""
        now = self._now()
        creates = [
            (a.ma_ho_so, a.payload, a.hash, now, now) for a in applications if not a.is_updating
        ]
        updates = [
            (a.payload, a.hash, now, a.ma_ho_so)
            for a in applications
            if a.is_updating and not a.noop
        ]
        self._db.executemany(_INSERT_DOSSIER, creates)
        self._db.executemany(_UPDATE_DOSSIER, updates)
        self._db.executemany(
            _INSERT_APPLICATION,
            [(request_seq, a.ma_ho_so, a.hash, a.is_updating, a.noop, now) for a in applications],
        )

    def add_steps(self, steps: Sequence[StepRow]) -> None:
        """Store new steps with their arrival number; a known step only gets counted again."""
        first = self._seq + 1
        self._seq += len(steps)
        rows = [(*step, seq) for step, seq in zip(steps, range(first, self._seq + 1), strict=True)]
        self._db.executemany(_UPSERT_STEP, rows)

    def record_rejections(self, service: str, rows: Iterable[tuple[str | None, str, str]]) -> None:
        """Keep (MaHoSo, code, message) of each refusal, for the stats and for operators."""
        now = self._now()
        self._db.executemany(
            "INSERT INTO rejections (at, service, ma_ho_so, code, message) VALUES (?, ?, ?, ?, ?)",
            [(now, service, code, error, message) for code, error, message in rows],
        )

    def lookup(self, ma_ho_so: str) -> tuple[dict[str, Any], int] | None:
        """The held header and its count of distinct steps, or None when not held."""
        row = self._db.execute(
            "SELECT payload FROM dossiers WHERE ma_ho_so = ?", (ma_ho_so,)
        ).fetchone()
        if row is None:
            return None
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM steps WHERE ma_ho_so = ?", (ma_ho_so,)
        ).fetchone()
        return orjson.loads(row[0]), int(count)

    def dossier_view(self, ma_ho_so: str) -> dict[str, Any] | None:
        """Everything held about one dossier, steps in arrival order (for operators)."""
        row = self._db.execute(
            "SELECT payload, versions, created_at, updated_at FROM dossiers WHERE ma_ho_so = ?",
            (ma_ho_so,),
        ).fetchone()
        if row is None:
            return None
        steps = self._db.execute(
            "SELECT payload, seq, received_count FROM steps WHERE ma_ho_so = ? ORDER BY seq",
            (ma_ho_so,),
        ).fetchall()
        return {
            "dossier": orjson.loads(row[0]),
            "versions": row[1],
            "created_at": row[2],
            "updated_at": row[3],
            "steps": [{"step": orjson.loads(p), "seq": s, "received": n} for p, s, n in steps],
        }

    def counts(self) -> dict[str, Any]:
        """The persistent part of the stats."""
        one = self._scalar
        return {
            "dossiers": one("SELECT COUNT(*) FROM dossiers"),
            "steps": one("SELECT COUNT(*) FROM steps"),
            "duplicate_steps": one("SELECT COALESCE(SUM(received_count - 1), 0) FROM steps"),
            "header_updates": one(
                "SELECT COUNT(*) FROM applications WHERE is_updating = 1 AND noop = 0"
            ),
            "noop_updates": one("SELECT COUNT(*) FROM applications WHERE noop = 1"),
            "rejections": dict(
                self._db.execute("SELECT code, COUNT(*) FROM rejections GROUP BY code").fetchall()
            ),
        }

    def _scalar(self, sql: str) -> int:
        return int(self._db.execute(sql).fetchone()[0])

    def _last_seq(self) -> int:
        return self._scalar(
            "SELECT MAX(COALESCE((SELECT MAX(seq) FROM steps), 0),"
            " COALESCE((SELECT MAX(seq) FROM applications), 0))"
        )
