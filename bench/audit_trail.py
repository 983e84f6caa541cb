"""Audit trail benchmark: how long verifying and archiving take on a long trail.

    python bench/audit_trail.py --records 1000000 --workdir /tmp/audit-bench

Writes `--records` audit records (three step keys each, as a small push call has) into a
new SQLite state store, in the store's own way (hash-chained, 10,000 per transaction),
then times `audit verify`, `audit archive` of the older half (which verifies the whole
chain first) and `audit verify --archive` through the file.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.ports import AuditEvent
from connector.store import SqlStore
from connector.store.audit import archive_audit, verify_audit

BATCH = 10_000


def _events(start: int, end: int) -> list[AuditEvent]:
    return [
        AuditEvent(
            at=1_000.0 + i,
            action="send",
            service="CapNhatTienDoHoSoMC",
            keys=[f"000.00.01.H26-240101-{i % 10_000:04d}|2026111608062{n}|4" for n in range(3)],
            payload_hash=f"{i:032x}",
            outcome="ack=3",
        )
        for i in range(start, end)
    ]


def run(records: int, workdir: Path) -> None:
    db, archive = workdir / "state.db", workdir / "archive.jsonl"
    for path in (db, archive):
        path.unlink(missing_ok=True)
    store = SqlStore.open(f"sqlite:///{db}")
    started = time.perf_counter()
    for start in range(0, records, BATCH):
        store.audit(_events(start, min(records, start + BATCH)))
    elapsed = time.perf_counter() - started
    print(f"wrote {records} records in {elapsed:.1f} s; store {db.stat().st_size / 1e6:.0f} MB")
    started = time.perf_counter()
    check = verify_audit(store)
    print(f"verify: {check.checked} records, ok={check.ok}, {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    done = archive_audit(store, before=1_000.0 + records // 2, target=archive)
    elapsed, size = time.perf_counter() - started, archive.stat().st_size / 1e6
    print(f"archive: {done.records} records in {elapsed:.1f} s (the whole chain verified first);"
          f" file {size:.0f} MB")  # fmt: skip
    started = time.perf_counter()
    check = verify_audit(store, archives=[archive])
    elapsed = time.perf_counter() - started
    print(f"verify through the archive: {check.checked} records, ok={check.ok}, {elapsed:.1f} s")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        run(args.records, args.workdir)
        return
    with tempfile.TemporaryDirectory() as tmp:
        run(args.records, Path(tmp))


if __name__ == "__main__":
    main()
