"""What a state store keeps for good once its finished rows are purged, per dossier.

The outbox's acknowledged rows go after `state.retention_days`; what stays is what the
guarantees need: `known` (what the portal holds), `owners` (who owns each number),
`sent_steps` (8 bytes per acknowledged step) and the audit trail until it is archived.
This sizes the disk an IT centre must plan for. It works on a copy of a store, typically
the one a backfill left (`backfill.py --workdir`):

    python bench/backfill.py --dossiers 20000 --skip baseline,steady,drain --workdir /tmp/b
    python bench/storage.py /tmp/b/state.db

It purges every acknowledged and superseded row of the copy (as the purge would after the
retention period), compacts it (VACUUM) and prints the bytes of each table with its
indexes (SQLite's `dbstat`), per dossier the portal holds.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from pathlib import Path

from connector.store import SqlStore

#: The tables the guarantees keep for good, and the audit trail (kept until archived).
KEPT = ("known", "owners", "sent_steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("state", type=Path, help="a SQLite state store (it is not changed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "state.db"  # the folder is its owner's alone (0700)
        _copy(args.state, copy)
        before = _table_bytes(copy)
        purged = _purge_all(copy)
        with sqlite3.connect(copy) as conn:
            conn.execute("VACUUM")
            dossiers = conn.execute("SELECT count(*) FROM known").fetchone()[0]
        after = _table_bytes(copy)
        size = copy.stat().st_size
    outbox = before.get("outbox", 0) / 1e6
    print(f"before the purge: {sum(before.values()) / 1e6:.1f} MB, outbox {outbox:.1f} MB")
    print(f"purged {purged} finished outbox rows; {dossiers} dossiers held by the portal")
    for table in (*KEPT, "audit", "outbox"):
        print(f"  {table:10s} {after.get(table, 0) / 1e6:8.2f} MB  {_per(after, table, dossiers)}")
    kept = sum(after.get(t, 0) for t in KEPT)
    print(f"file after VACUUM: {size / 1e6:.2f} MB")
    each = kept / max(dossiers, 1)
    trail = after.get("audit", 0) / max(dossiers, 1)
    print(f"kept_bytes_per_dossier={each:.0f} audit_bytes_per_dossier={trail:.0f}")


def _copy(source: Path, target: Path) -> None:
    """A consistent copy, even of a store a daemon is writing (SQLite's online backup)."""
    if not source.exists():
        raise SystemExit(f"no state store at {source}")
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def _purge_all(path: Path) -> int:
    """Every acknowledged and superseded row, through the store's own purge."""
    store = SqlStore.open(f"sqlite:///{path}")
    try:
        total = 0
        while removed := store.purge(before=float("inf")):
            total += removed
        return total
    finally:
        store.close()


def _table_bytes(path: Path) -> dict[str, int]:
    """Bytes per table, its indexes counted with it."""
    with sqlite3.connect(path) as conn:
        owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master").fetchall())
        sizes: dict[str, int] = {}
        for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            table = owner.get(name, name)
            sizes[table] = sizes.get(table, 0) + size
    return sizes


def _per(sizes: dict[str, int], table: str, dossiers: int) -> str:
    return f"{sizes.get(table, 0) / max(dossiers, 1):7.0f} bytes per dossier"


if __name__ == "__main__":
    main()
