"""A fast generator of large local systems in the demo schema, for the benchmarks.

The demo generator writes realistic dossiers at about 0.5 ms each, too slow for a million.
This one has it write a small template (a few thousand dossiers), then clones the template
with fresh ids, dossier numbers and `modified_at` stamps, so `mappings/demo.toml` applies
unchanged and the data keeps the demo's shape (about five steps and a few files per
dossier, one dossier in 200 deliberately invalid). Indexes are built after the rows.
"""

from __future__ import annotations

import csv
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connector.demo.generate import init_demo
from connector.demo.schema import COLUMNS, DDL, connect, insert_sql

ROOT = Path(__file__).resolve().parents[1]
MAPPING = ROOT / "mappings" / "demo.toml"
CROSSWALKS = ROOT / "mappings" / "demo"
CHILDREN = ("steps", "dossier_files", "fees", "supplements", "results")
_MAX_DAILY = 9999  # a dossier number carries a 4-digit daily sequence
_CHUNK = 5000

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Template:
    """One template dossier: its row, its children's rows and whether the portal takes it."""

    dossier: Row
    children: dict[str, list[Row]]
    valid: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Generated:
    """What a generated system holds; `valid_*` is what must reach the portal."""

    dossiers: int
    steps: int
    valid_dossiers: int
    valid_steps: int


def load_templates(path: Path, *, dossiers: int, seed: int) -> list[Template]:
    """Have the demo generator write `dossiers` realistic dossiers and read them back."""
    init_demo(path, CROSSWALKS, dossiers=dossiers, seed=seed, overwrite=True)
    known = _crosswalked()
    db = sqlite3.connect(path)
    try:
        children: dict[str, dict[int, list[Row]]] = {}
        for table in CHILDREN:
            grouped: dict[int, list[Row]] = defaultdict(list)
            columns = ", ".join(COLUMNS[table])
            for row in db.execute(f"SELECT {columns} FROM {table} ORDER BY id"):
                grouped[row[1]].append(row)
            children[table] = grouped
        columns = ", ".join(COLUMNS["dossiers"])
        out = []
        for row in db.execute(f"SELECT {columns} FROM dossiers ORDER BY id"):
            valid = row[2] in known and row[13] is not None and row[14] is not None
            kids = {table: children[table].get(row[0], []) for table in CHILDREN}
            out.append(Template(dossier=row, children=kids, valid=valid))
        return out
    finally:
        db.close()


def _crosswalked() -> set[str]:
    with (CROSSWALKS / "procedures.csv").open(encoding="utf-8") as handle:
        return {row["local_code"] for row in csv.DictReader(handle)}


class Cloner:
    """Turns template dossiers into new ones: new ids, a unique number, new stamps."""

    def __init__(self, templates: list[Template], *, first_id: int = 1, day0: str = "240101"):
        self.templates = templates
        self._next = {table: first_id for table in COLUMNS}
        self._daily: dict[str, int] = defaultdict(int)
        self._day0 = datetime.strptime(day0, "%y%m%d")
        self._days: dict[int, str] = {}

    def clone(self, ordinal: int, stamp_of: Any) -> tuple[dict[str, list[Row]], Template]:
        """The rows of clone `ordinal`; `stamp_of(j)` gives the j-th step's `modified_at`."""
        template = self.templates[ordinal % len(self.templates)]
        rows: dict[str, list[Row]] = {}
        dossier_id = self.take("dossiers")
        last = ""
        steps = []
        for j, step in enumerate(template.children["steps"]):
            last = stamp_of(j)
            steps.append((self.take("steps"), dossier_id, *step[2:10], last))
        rows["steps"] = steps
        for table in CHILDREN[1:]:
            rows[table] = [
                (self.take(table), dossier_id, *child[2:]) for child in template.children[table]
            ]
        source = template.dossier
        number = self._number(source[1])
        rows["dossiers"] = [(dossier_id, number, *source[2:19], last or stamp_of(0))]
        return rows, template

    def take(self, table: str) -> int:
        value = self._next[table]
        self._next[table] = value + 1
        return value

    def _number(self, template_number: str) -> str:
        agency = template_number.rsplit("-", 2)[0]
        count = self._daily[agency]
        self._daily[agency] = count + 1
        day_index, sequence = divmod(count, _MAX_DAILY)
        day = self._days.get(day_index)
        if day is None:
            day = (self._day0 + timedelta(days=day_index)).strftime("%y%m%d")
            self._days[day_index] = day
        return f"{agency}-{day}-{sequence + 1:04d}"


class Stamper:
    """`modified_at` values on a synthetic past timeline: one millisecond per dossier."""

    def __init__(self, start: datetime) -> None:
        self._start = start
        self._second = -1
        self._prefix = ""

    def for_dossier(self, ordinal: int) -> Any:
        second, millis = divmod(ordinal, 1000)
        if second != self._second:
            moment = self._start + timedelta(seconds=second)
            self._second, self._prefix = second, moment.strftime("%Y-%m-%dT%H:%M:%S")
        prefix = self._prefix
        return lambda j: f"{prefix}.{millis:03d}{j:03d}Z"


def generate(
    path: Path,
    dossiers: int,
    *,
    template_dossiers: int = 2000,
    seed: int = 11,
    workdir: Path | None = None,
) -> tuple[Generated, Cloner]:
    """Write a local system of `dossiers` cloned dossiers to `path` (replacing it).

    The stamps lie on a timeline in the past, so later changes stamped now come after them.
    The returned `Cloner` makes more dossiers with numbers that do not collide.
    """
    template_path = (workdir or path.parent) / "template.db"
    templates = load_templates(template_path, dossiers=template_dossiers, seed=seed)
    cloner = Cloner(templates)
    start = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(days=40)
    return populate(path, cloner, dossiers, Stamper(start), template_path), cloner


def populate(
    path: Path, cloner: Cloner, dossiers: int, stamper: Stamper, template_path: Path
) -> Generated:
    """A new database at `path` holding `dossiers` clones (indexes built after the rows)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = connect(path)
    totals = [0, 0, 0, 0]
    try:
        tables, indexes = _split_ddl()
        conn.executescript(tables)
        _copy_catalogue(template_path, conn)
        for batch in _batches(cloner, stamper, dossiers, totals):
            _write(conn, batch)
        conn.executescript(indexes)
    finally:
        conn.close()
    return Generated(
        dossiers=totals[0], steps=totals[1], valid_dossiers=totals[2], valid_steps=totals[3]
    )


def _batches(
    cloner: Cloner, stamper: Stamper, count: int, totals: list[int]
) -> Iterator[dict[str, list[Row]]]:
    batch: dict[str, list[Row]] = {table: [] for table in COLUMNS}
    for ordinal in range(count):
        rows, template = cloner.clone(ordinal, stamper.for_dossier(ordinal))
        for table, new in rows.items():
            batch[table].extend(new)
        steps = len(rows["steps"])
        totals[0] += 1
        totals[1] += steps
        if template.valid:
            totals[2] += 1
            totals[3] += steps
        if len(batch["dossiers"]) >= _CHUNK:
            yield batch
            batch = {table: [] for table in COLUMNS}
    yield batch


def _write(conn: sqlite3.Connection, batch: dict[str, list[Row]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    for table, rows in batch.items():
        if rows:
            conn.executemany(insert_sql(table), rows)
    conn.execute("COMMIT")


def _split_ddl() -> tuple[str, str]:
    statements = [s.strip() for s in DDL.split(";") if s.strip()]
    tables = ";\n".join(s for s in statements if not s.startswith("CREATE INDEX")) + ";"
    indexes = ";\n".join(s for s in statements if s.startswith("CREATE INDEX")) + ";"
    return tables, indexes


def _copy_catalogue(template_path: Path, conn: sqlite3.Connection) -> None:
    source = sqlite3.connect(template_path)
    try:
        for table in ("agencies", "procedures"):
            rows = source.execute(f"SELECT * FROM {table}").fetchall()
            marks = ", ".join("?" for _ in rows[0])
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    finally:
        source.close()
