"""One worker per state store: the lock `connector run` holds while it pulls and pushes.

Two processes pushing from one outbox would break what the outbox promises: each resets
the other's in-flight items at start (`recover`), and a dossier's later step could be
claimed by one while its earlier step is still in flight with the other. So `connector
run` (the daemon, or `--once`) takes this lock first and keeps it until it stops.

The lock is one the operating system or the database server drops by itself when its
holder dies, so a restart after a crash or `SIGKILL` never waits for it:

- a SQLite file: `flock` on `<database>.worker-lock` beside it;
- PostgreSQL: a session advisory lock on a connection kept open (in autocommit, so no
  transaction stays open with it);
- SQLite in memory: nothing to share, nothing to lock.

Who holds the lock is written to `meta` (`worker`), so the refusal says who to stop.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine, select, text

from connector.errors import StoreBusy
from connector.ports import WorkerLock
from connector.store.engine import is_memory, upsert
from connector.store.schema import meta

try:  # not on Windows, where only the PostgreSQL store can be shared between processes
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

#: The advisory lock's key on PostgreSQL: fixed, so every connector process agrees on it.
ADVISORY_KEY = 0x636F6E6E6563  # "connec"
HOLDER_KEY = "worker"
#: How often a waiting process tries the lock again.
RETRY_SECONDS = 0.2


def describe_holder() -> str:
    """Who this process is, for the refusal another process prints."""
    since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return f"pid {os.getpid()} on host {socket.gethostname()}, running since {since}"


def acquire(
    engine: Engine,
    *,
    wait: float = 0.0,
    on_wait: Callable[[str], None] = lambda message: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WorkerLock:
    """Take the store's worker lock, waiting up to `wait` seconds for its holder to let go
    (a process killed a moment ago may not be quite gone); then raise `StoreBusy` naming
    the holder. `on_wait` hears the refusal once, when the waiting starts."""
    deadline = clock() + wait
    told = False
    while True:
        try:
            return _acquire_once(engine)
        except StoreBusy as busy:
            if clock() >= deadline:
                raise
            if not told:
                on_wait(str(busy))
                told = True
        sleep(RETRY_SECONDS)


def _acquire_once(engine: Engine) -> WorkerLock:
    if engine.dialect.name == "postgresql":
        lock: WorkerLock = _AdvisoryLock.take(engine)
    elif engine.dialect.name == "sqlite" and not is_memory(engine.url):
        lock = _FileLock.take(engine, Path(str(engine.url.database)).expanduser())
    else:
        lock = _NoLock()
    _write_holder(engine, describe_holder())
    return lock


class _NoLock:
    def release(self) -> None:
        return None


class _FileLock:
    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def take(cls, engine: Engine, database: Path) -> _FileLock:
        path = database.with_name(database.name + ".worker-lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if fcntl is None:  # pragma: no cover
            return cls(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _busy(engine, str(database)) from None
        return cls(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


class _AdvisoryLock:
    def __init__(self, conn: Connection) -> None:
        self._conn: Connection | None = conn

    @classmethod
    def take(cls, engine: Engine) -> _AdvisoryLock:
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            taken = conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY})
        except Exception:
            conn.close()
            raise
        if not taken:
            conn.close()
            raise _busy(engine, engine.url.render_as_string(hide_password=True))
        return cls(conn)

    def release(self) -> None:
        if self._conn is not None:
            # Unlocked explicitly: closing only hands the session back to the pool.
            self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
            self._conn.close()
            self._conn = None


def _busy(engine: Engine, where: str) -> StoreBusy:
    with engine.connect() as conn:
        holder = conn.scalar(select(meta.c.value).where(meta.c.key == HOLDER_KEY))
    return StoreBusy(
        f"another connector process is working on the state store {where} "
        f"({holder or 'holder unknown'}); stop it first, or use its status endpoint's "
        "actions (retry, resync), which need no second process"
    )


def _write_holder(engine: Engine, holder: str) -> None:
    with engine.begin() as conn:
        statement = upsert(conn, meta).values(key=HOLDER_KEY, value=holder)
        conn.execute(
            statement.on_conflict_do_update(index_elements=["key"], set_={"value": holder})
        )
