"""The tamper-evident audit trail: every send and reply, chained by SHA-256.

Each row's hash covers the previous row's hash and the row's own fields (its sequence
number included), so editing a row breaks its hash, and deleting or reordering rows breaks
the next row's link. The newest link is also kept in `meta` (`audit_head`), so cutting rows
off the end is noticed too. The trail holds payload hashes, never payloads: no personal data.

`read_audit` is what an operator reads it with (`connector audit show`): every call that
carried a dossier, when, and what the portal answered.

The trail grows with every call, so old records can be moved out (`archive_audit`): they
go to a file of JSON lines, every field and both hashes kept, and the newest one moved
out becomes the store's `audit_base` in `meta`, from which the chain goes on. Verifying
with the archives (`verify_audit(..., archives=[...])`) walks the whole chain from its
first record; without them, from the base.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import orjson
import structlog
from sqlalchemy import Connection, Engine, RowMapping, delete, func, or_, select

from connector.errors import ConfigError, StoreError
from connector.ports import AuditEvent
from connector.store.engine import AUDIT_LOCK, READ_ONLY, serialized, upsert
from connector.store.schema import audit, meta

log = structlog.get_logger(__name__)

GENESIS = "0" * 64
HEAD_KEY = "audit_head"
BASE_KEY = "audit_base"  # "seq:hash" of the newest archived record
ARCHIVING_KEY = "audit_archiving"  # "seq:file" while an archive's records are being deleted
_PAGE = 1000
_FIELDS = ("seq", "at", "action", "service", "keys", "payload_hash", "outcome", "detail")
_RECORD = (*_FIELDS, "prev_hash", "hash")  # what an archive keeps of each row


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    """One row of the trail as an operator reads it."""

    seq: int
    at: float
    action: str
    service: str
    keys: tuple[str, ...]
    payload_hash: str
    outcome: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditCheck:
    """The verdict on the chain: where it first breaks and why."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str = ""
    #: The last archived record, whose hash the walk started from on trust (no archives
    #: given); 0 when the walk started from the first record ever written.
    trusted_up_to: int = 0


class HasEngine(Protocol):
    @property
    def engine(self) -> Engine: ...


def link(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """The hash of one row: SHA-256 over the previous hash and the row's canonical JSON."""
    body = orjson.dumps(dict(fields), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode("ascii") + body).hexdigest()


def append(conn: Connection, events: Sequence[AuditEvent]) -> None:
    """Chain `events` after the newest row (or the archived base, when every row was
    archived); run inside the store's write transaction, alone among appends."""
    serialized(conn, AUDIT_LOCK)
    last = conn.execute(select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1))
    head = last.first()
    seq, prev = (head.seq, head.hash) if head is not None else _base(conn)
    rows = []
    for event in events:
        seq += 1
        fields = _fields(seq, event)
        digest = link(prev, fields)
        rows.append({**fields, "prev_hash": prev, "hash": digest})
        prev = digest
    if rows:
        conn.execute(audit.insert(), rows)
        _set_head(conn, seq, prev)


def _fields(seq: int, event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": seq,
        "at": float(event.at),
        "action": event.action,
        "service": event.service,
        "keys": orjson.dumps(list(event.keys)).decode("utf-8"),
        "payload_hash": event.payload_hash,
        "outcome": event.outcome,
        "detail": event.detail,
    }


def _set_head(conn: Connection, seq: int, digest: str) -> None:
    _set_meta(conn, HEAD_KEY, f"{seq}:{digest}")


def _base(conn: Connection) -> tuple[int, str]:
    """Where the chain in the store starts: after the newest archived record, if any."""
    value = conn.scalar(select(meta.c.value).where(meta.c.key == BASE_KEY))
    if not value:
        return 0, GENESIS
    seq, _, digest = value.partition(":")
    return int(seq), digest


def _set_meta(conn: Connection, key: str, value: str) -> None:
    statement = upsert(conn, meta).values(key=key, value=value)
    conn.execute(statement.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


def verify_audit(source: Engine | HasEngine, *, archives: Sequence[Path] = ()) -> AuditCheck:
    """Walk the chain in order and report the first row that breaks it.

    With `archives` (the files `archive_audit` wrote, oldest first) the walk starts at the
    first record ever written and must reach the store's base exactly; without them it
    starts at the base, which is then taken on trust.
    """
    engine = source if isinstance(source, Engine) else source.engine
    with engine.connect() as conn:
        return _verify(_snapshot(conn), archives)


def _snapshot(conn: Connection) -> Connection:
    """A read-only connection that sees the trail as of one instant, so records a running
    daemon appends meanwhile are neither walked nor taken for a head that does not match.
    SQLite's read transaction is one already; PostgreSQL's default (READ COMMITTED) is not."""
    if conn.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    return conn.execution_options(**{READ_ONLY: True})


@dataclass(slots=True)
class _Walk:
    """Where a walk along the chain is: the next seq expected and the hash it links to."""

    expected: int
    prev: str
    checked: int = 0

    def over(self, rows: Iterable[Mapping[Any, Any]]) -> str:
        """Walk `rows`; the first problem found, or ''."""
        for row in rows:
            fields = {name: row[name] for name in _FIELDS}
            problem = _problem(row, self.expected, self.prev, link(row["prev_hash"], fields))
            if problem:
                return problem
            self.prev, self.expected, self.checked = (
                row["hash"],
                self.expected + 1,
                self.checked + 1,
            )
        return ""

    def broken(self, reason: str) -> AuditCheck:
        return AuditCheck(
            ok=False, checked=self.checked, first_bad_seq=self.expected, reason=reason
        )


def _verify(conn: Connection, archives: Sequence[Path]) -> AuditCheck:
    base_seq, base_hash = _base(conn)
    walk = _Walk(expected=1, prev=GENESIS) if archives else _Walk(base_seq + 1, base_hash)
    for path in archives:
        problem = walk.over(archived_rows(path))
        if problem:
            return walk.broken(f"{path}: {problem}")
    if archives and (walk.expected - 1, walk.prev) != (base_seq, base_hash):
        return walk.broken(
            f"the archives end at seq {walk.expected - 1} but the store's trail goes on "
            f"from seq {base_seq}: an archive is missing, or the base was moved"
        )
    problem = walk.over(_rows(conn, after=base_seq))
    if problem:
        return walk.broken(problem)
    last = walk.expected - 1
    head = conn.scalar(select(meta.c.value).where(meta.c.key == HEAD_KEY)) or f"0:{GENESIS}"
    if head != f"{last}:{walk.prev}":
        reason = f"the trail ends at seq {last} but its recorded head is {head.split(':')[0]}"
        return walk.broken(reason)
    return AuditCheck(ok=True, checked=walk.checked, trusted_up_to=0 if archives else base_seq)


# --- archiving --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Archived:
    """What `archive_audit` moved out: records `first_seq` to `last_seq`, into `path`."""

    path: Path
    records: int
    first_seq: int = 0
    last_seq: int = 0


def archive_audit(
    source: Engine | HasEngine, *, before: float, target: Path, chunk: int = 10_000
) -> Archived:
    """Move the records written before `before` out of the store into `target`.

    Only an intact trail is archived. What goes is the longest run of records from the
    oldest on whose times are all before `before` (a clock set back cannot split the
    chain). The file is written whole first (JSON lines, then renamed into place); the
    records are then deleted in chunks, each chunk in one transaction that also moves the
    base to its newest record, so the chain verifies at every moment, and a daemon that
    goes on writing waits for one chunk at most. Until the last chunk is gone, `meta`
    says which records the file holds (`audit_archiving`): an archive cut short (Ctrl-C,
    a crash) is finished by the next one before it starts, so no record is left in the
    store that a file also holds.
    """
    engine = source if isinstance(source, Engine) else source.engine
    if target.exists():
        raise ConfigError(f"{target} exists: archive to a new file")
    _finish_interrupted(engine, chunk)
    check = verify_audit(engine)
    if not check.ok:
        raise StoreError(
            f"the audit trail is broken at record {check.first_bad_seq} ({check.reason}); "
            "only an intact trail is archived"
        )
    with engine.connect() as conn:
        conn = conn.execution_options(**{READ_ONLY: True})
        base_seq, _ = _base(conn)
        last = _last_before(conn, base_seq, before)
        if last <= base_seq:
            return Archived(path=target, records=0)
        _write_archive(conn, target, after=base_seq, last=last)
    with engine.begin() as conn:
        _set_meta(conn, ARCHIVING_KEY, f"{last}:{target}")
    _delete_through(engine, last, chunk)
    return Archived(path=target, records=last - base_seq, first_seq=base_seq + 1, last_seq=last)


def _finish_interrupted(engine: Engine, chunk: int) -> None:
    """Delete what an archive cut short had already written to its file."""
    with engine.connect() as conn:
        pending = conn.scalar(select(meta.c.value).where(meta.c.key == ARCHIVING_KEY))
    if pending:
        last, _, path = pending.partition(":")
        log.warning("finishing an audit archive that was cut short", file=path, through=last)
        _delete_through(engine, int(last), chunk)


def _delete_through(engine: Engine, last: int, chunk: int) -> None:
    with engine.connect() as conn:
        base_seq, _ = _base(conn)
    for start in range(base_seq, last, chunk):
        end = min(start + chunk, last)
        with engine.begin() as conn:
            digest = conn.scalar(select(audit.c.hash).where(audit.c.seq == end))
            conn.execute(delete(audit).where(audit.c.seq > start, audit.c.seq <= end))
            _set_meta(conn, BASE_KEY, f"{end}:{digest}")
    with engine.begin() as conn:
        conn.execute(delete(meta).where(meta.c.key == ARCHIVING_KEY))


def _last_before(conn: Connection, base_seq: int, before: float) -> int:
    newer = select(func.min(audit.c.seq)).where(audit.c.seq > base_seq, audit.c.at >= before)
    first_newer = conn.scalar(newer)
    if first_newer is not None:
        return int(first_newer) - 1
    return int(conn.scalar(select(func.max(audit.c.seq))) or base_seq)


def _write_archive(conn: Connection, target: Path, *, after: int, last: int) -> None:
    part = target.with_name(target.name + ".part")
    try:
        with part.open("wb") as handle:
            for row in _rows(conn, after=after, last=last):
                handle.write(orjson.dumps({name: row[name] for name in _RECORD}) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def archived_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The records of an archive file, in order; a line that is not a record is reported
    as a broken chain by the walk (its fields do not hash)."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise StoreError(f"{path}:{number}: not a JSON record") from None
            if not isinstance(row, dict) or not set(_RECORD) <= set(row):
                raise StoreError(f"{path}:{number}: not an audit record")
            yield row


def read_audit(
    source: Engine | HasEngine,
    *,
    dossier: str | None = None,
    action: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 50,
    archives: Sequence[Path] = (),
) -> list[AuditRecord]:
    """The newest `limit` records that match, oldest first.

    `dossier` matches records whose keys name it: its header (`MaHoSo`) or one of its steps
    (`MaHoSo|ThoiDiemXuLy|TrangThai`). The keys are stored as a JSON array, so the match is
    a LIKE on the JSON-encoded key: exact, and the newest rows are read first, so a long
    trail is scanned only as far back as the records asked for. The `archives` (files
    `archive_audit` wrote, oldest first) hold older records still: they are read only when
    the store has fewer than `limit` that match.
    """
    stored = _read_stored(source, dossier, action, since, until, limit)
    if len(stored) >= limit or not archives:
        return stored
    wanted = partial(_matches, dossier=dossier, action=action, since=since, until=until)
    older: deque[AuditRecord] = deque(maxlen=limit - len(stored))
    for path in archives:
        older.extend(filter(wanted, map(_record, archived_rows(path))))
    return [*older, *stored]


def _matches(
    record: AuditRecord,
    *,
    dossier: str | None,
    action: str | None,
    since: float | None,
    until: float | None,
) -> bool:
    """`read_audit`'s filter, for records read from an archive file."""
    return (
        (dossier is None or bool(dossier_keys(record, dossier)))
        and (action is None or record.action == action)
        and (since is None or record.at >= since)
        and (until is None or record.at < until)
    )


def _read_stored(
    source: Engine | HasEngine,
    dossier: str | None,
    action: str | None,
    since: float | None,
    until: float | None,
    limit: int,
) -> list[AuditRecord]:
    engine = source if isinstance(source, Engine) else source.engine
    query = select(audit).order_by(audit.c.seq.desc()).limit(limit)
    if dossier is not None:
        quoted = _like_escaped(orjson.dumps(dossier).decode("utf-8")[:-1])  # '"MaHoSo'
        query = query.where(
            or_(
                audit.c["keys"].like(f'%{quoted}"%', escape="\\"),
                audit.c["keys"].like(f"%{quoted}|%", escape="\\"),
            )
        )
    if action is not None:
        query = query.where(audit.c.action == action)
    if since is not None:
        query = query.where(audit.c.at >= since)
    if until is not None:
        query = query.where(audit.c.at < until)
    with engine.connect() as conn:
        rows = conn.execution_options(**{READ_ONLY: True}).execute(query).mappings().all()
    return [_record(row) for row in reversed(rows)]


def dossier_keys(record: AuditRecord, dossier: str) -> list[str]:
    """The keys of `record` that belong to `dossier` (its header, its steps)."""
    return [k for k in record.keys if k == dossier or k.startswith(dossier + "|")]


def _record(row: Mapping[Any, Any]) -> AuditRecord:
    return AuditRecord(
        seq=row["seq"],
        at=row["at"],
        action=row["action"],
        service=row["service"],
        keys=tuple(orjson.loads(row["keys"])),
        payload_hash=row["payload_hash"],
        outcome=row["outcome"],
        detail=row["detail"],
    )


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _problem(row: Mapping[Any, Any], expected: int, prev: str, digest: str) -> str:
    if row["seq"] != expected:
        return f"seq {expected} is missing (next row is {row['seq']}): rows were deleted"
    if row["prev_hash"] != prev:
        return "the link to the previous row is broken: a row was deleted or moved"
    if row["hash"] != digest:
        return "the row's hash does not match its content: the row was edited"
    return ""


def _rows(conn: Connection, *, after: int = 0, last: int | None = None) -> Iterator[RowMapping]:
    while True:
        query = select(audit).where(audit.c.seq > after).order_by(audit.c.seq).limit(_PAGE)
        if last is not None:
            query = query.where(audit.c.seq <= last)
        page = conn.execute(query).mappings().all()
        yield from page
        if len(page) < _PAGE:
            return
        after = page[-1]["seq"]
