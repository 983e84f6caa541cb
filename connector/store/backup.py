"""A consistent copy of a SQLite state store, taken while the daemon runs.

SQLite's online backup copies the database inside one read transaction. In WAL mode the
daemon goes on pulling and pushing meanwhile, and the copy is the store as it was at one
instant: outbox, cursors, the audit trail and its head together. A `cp` of a live database
and its WAL file can give a torn copy instead. The copy is written beside the target and
renamed into place only once complete, then checked (`PRAGMA quick_check` and the audit
chain), so a file at the target's name is always a whole, checked backup.

PostgreSQL has its own tools for this (`pg_dump`, base backups), so a PostgreSQL store is
refused with that advice.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from connector.errors import ConfigError
from connector.store.audit import AuditCheck, verify_audit
from connector.store.engine import create_private, is_memory


@dataclass(frozen=True, slots=True, kw_only=True)
class Backup:
    """Where the copy went, how big and how long, and what checking it found."""

    path: Path
    size: int
    seconds: float
    integrity: str  # "ok", or SQLite's first complaint
    audit: AuditCheck

    @property
    def ok(self) -> bool:
        return self.integrity == "ok" and self.audit.ok


def back_up(engine: Engine, target: Path) -> Backup:
    """Copy the store behind `engine` to `target` (a new file), then check the copy."""
    if engine.dialect.name != "sqlite" or is_memory(engine.url):
        raise ConfigError(
            "state backup copies a SQLite state file; back a PostgreSQL store up with "
            "pg_dump (or the server's base backups)"
        )
    if target.exists():
        raise ConfigError(f"{target} exists: back up to a new file")
    if not target.parent.is_dir():
        raise ConfigError(f"{target.parent}: no such directory (create it first)")
    started = time.monotonic()
    part = target.with_name(target.name + ".part")
    _copy(engine, part)
    os.replace(part, target)
    seconds = time.monotonic() - started
    integrity, audit = _check(target)
    return Backup(
        path=target,
        size=target.stat().st_size,
        seconds=seconds,
        integrity=integrity,
        audit=audit,
    )


def _copy(engine: Engine, part: Path) -> None:
    """All pages in one step: one read transaction, so the copy is one instant's store."""
    part.unlink(missing_ok=True)  # left by an interrupted backup
    raw = engine.raw_connection()
    try:
        source = raw.driver_connection
        if not isinstance(source, sqlite3.Connection):
            raise ConfigError("state backup needs the sqlite3 driver")
        create_private(part)
        copy = sqlite3.connect(part)
        try:
            source.backup(copy)
        finally:
            copy.close()
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    finally:
        raw.close()


def _check(path: Path) -> tuple[str, AuditCheck]:
    """SQLite's quick check and the audit chain, read from the copy itself."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("PRAGMA quick_check")).scalars().all()
        integrity = "ok" if rows == ["ok"] else str(rows[0])
        return integrity, verify_audit(engine)
    except SQLAlchemyError as exc:  # a copy that cannot be read is not sound: say why
        reason = f"the copy cannot be read: {getattr(exc, 'orig', None) or exc}"
        return reason, AuditCheck(ok=False, checked=0, reason=reason)
    finally:
        engine.dispose()
