"""The tamper-evident audit trail: every send and reply, chained by SHA-256.

Each row's hash covers the previous row's hash and the row's own fields (its sequence
number included), so editing a row breaks its hash, and deleting or reordering rows breaks
the next row's link. The newest link is also kept in `meta` (`audit_head`), so cutting rows
off the end is noticed too. The trail holds payload hashes, never payloads: no personal data.

`read_audit` is what an operator reads it with (`connector audit show`): every call that
carried a dossier, when, and what the portal answered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, Engine, RowMapping, or_, select

from connector.ports import AuditEvent
from connector.store.engine import READ_ONLY, upsert
from connector.store.schema import audit, meta

GENESIS = "0" * 64
HEAD_KEY = "audit_head"
_PAGE = 1000
_FIELDS = ("seq", "at", "action", "service", "keys", "payload_hash", "outcome", "detail")


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


class HasEngine(Protocol):
    @property
    def engine(self) -> Engine: ...


def link(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """The hash of one row: SHA-256 over the previous hash and the row's canonical JSON."""
    body = orjson.dumps(dict(fields), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode("ascii") + body).hexdigest()


def append(conn: Connection, events: Sequence[AuditEvent]) -> None:
    """Chain `events` after the newest row; run inside the store's write transaction."""
    last = conn.execute(select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1))
    head = last.first()
    seq, prev = (head.seq, head.hash) if head is not None else (0, GENESIS)
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
    value = f"{seq}:{digest}"
    statement = upsert(conn, meta).values(key=HEAD_KEY, value=value)
    conn.execute(statement.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


def verify_audit(source: Engine | HasEngine) -> AuditCheck:
    """Walk the whole chain in order and report the first row that breaks it."""
    engine = source if isinstance(source, Engine) else source.engine
    with engine.connect() as conn:
        return _verify(conn.execution_options(**{READ_ONLY: True}))


def _verify(conn: Connection) -> AuditCheck:
    expected, prev, checked = 1, GENESIS, 0
    for row in _rows(conn):
        fields = {name: row[name] for name in _FIELDS}
        problem = _problem(row, expected, prev, link(row["prev_hash"], fields))
        if problem:
            return AuditCheck(ok=False, checked=checked, first_bad_seq=expected, reason=problem)
        prev, expected, checked = row["hash"], expected + 1, checked + 1
    head = conn.scalar(select(meta.c.value).where(meta.c.key == HEAD_KEY)) or f"0:{GENESIS}"
    if head != f"{checked}:{prev}":
        reason = f"the trail ends at seq {checked} but its recorded head is {head.split(':')[0]}"
        return AuditCheck(ok=False, checked=checked, first_bad_seq=checked + 1, reason=reason)
    return AuditCheck(ok=True, checked=checked)


def read_audit(
    source: Engine | HasEngine,
    *,
    dossier: str | None = None,
    action: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 50,
) -> list[AuditRecord]:
    """The newest `limit` records that match, oldest first.

    `dossier` matches records whose keys name it: its header (`MaHoSo`) or one of its steps
    (`MaHoSo|ThoiDiemXuLy|TrangThai`). The keys are stored as a JSON array, so the match is
    a LIKE on the JSON-encoded key: exact, and the newest rows are read first, so a long
    trail is scanned only as far back as the records asked for.
    """
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


def _record(row: RowMapping) -> AuditRecord:
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


def _problem(row: RowMapping, expected: int, prev: str, digest: str) -> str:
    if row["seq"] != expected:
        return f"seq {expected} is missing (next row is {row['seq']}): rows were deleted"
    if row["prev_hash"] != prev:
        return "the link to the previous row is broken: a row was deleted or moved"
    if row["hash"] != digest:
        return "the row's hash does not match its content: the row was edited"
    return ""


def _rows(conn: Connection) -> Iterator[RowMapping]:
    after = 0
    while True:
        query = select(audit).where(audit.c.seq > after).order_by(audit.c.seq).limit(_PAGE)
        page = conn.execute(query).mappings().all()
        yield from page
        if len(page) < _PAGE:
            return
        after = page[-1]["seq"]
