"""The state store's tables, in portable SQLAlchemy Core (SQLite and PostgreSQL alike).

`outbox` holds every message ever queued, one row per header version or step; `known` is
what the portal is known to hold; `owners` is which local record each dossier number the
portal acknowledged belongs to; `sent_steps` keeps the acknowledged steps whose rows were
purged; `rereads` lists dossiers whose steps the pull is to read again; `waiting` lists
dossiers whose steps were set aside until the portal holds them; `cursors` is where each
source stream stopped; `audit` is a hash-chained trail of sends and replies; `meta` holds
the schema version and small facts.
"""

from __future__ import annotations

import structlog
from sqlalchemy import (
    Column,
    ColumnClause,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
    inspect,
    literal_column,
    select,
)
from sqlalchemy.schema import CreateColumn

from connector.core.records import Kind, State
from connector.store.engine import SCHEMA_LOCK, serialized, upsert

log = structlog.get_logger(__name__)

SCHEMA_VERSION = "1"

metadata = MetaData()

#: 'pending' spelt as a literal: a partial index is only used by a query whose WHERE clause
#: repeats its condition, and a bound parameter may not be seen as equal (PostgreSQL's
#: generic plans). Queries meant to read `ix_outbox_pending` compare `state` with this.
PENDING_LITERAL: ColumnClause[str] = literal_column(f"'{State.PENDING.value}'")
_PENDING_ROW = literal_column("state") == PENDING_LITERAL
#: 'invalid' and 'step' spelt as literals, for `ix_outbox_refused_steps` as above.
INVALID_LITERAL: ColumnClause[str] = literal_column(f"'{State.INVALID.value}'")
STEP_LITERAL: ColumnClause[str] = literal_column(f"'{Kind.STEP.value}'")
_REFUSED_STEP = (literal_column("state") == INVALID_LITERAL) & (
    literal_column("kind") == STEP_LITERAL
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("key", String(255), nullable=False),
    Column("dossier", String(255), nullable=False),
    Column("source_ref", String(255), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("content_hash", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("event_time", String(32), nullable=False, default=""),
    Column("last_code", String(64), nullable=False, default=""),
    Column("last_message", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # A step's dossier record ("dossiers:7"), when the mapping names it; "" otherwise. Last,
    # because a store made before it gets it by `ALTER TABLE ... ADD COLUMN`.
    Column("dossier_ref", String(255), nullable=False, default="", server_default=""),
    Index("ix_outbox_due", "state", "kind", "next_attempt_at"),
    Index("ix_outbox_kind_key", "kind", "key"),
    Index("ix_outbox_dossier", "dossier"),
    Index("ix_outbox_state_updated", "state", "updated_at"),
    Index("ix_outbox_kind_ref", "kind", "source_ref"),
    # Only the rows waiting to go, so the status's backlog figures cost what the backlog
    # holds, not what the store ever held (see `reports.oldest_pending_age`). `state` is
    # constant in it, yet listed: with it, SQLite's planner prefers this index to `due`.
    Index(
        "ix_outbox_pending",
        "state",
        "kind",
        "created_at",
        "dossier",
        sqlite_where=_PENDING_ROW,
        postgresql_where=_PENDING_ROW,
    ),
    # Refused steps by their dossier record: when a record's header is fixed, whether any
    # of its steps were refused for its sake (`existing.records_with_refused_steps`).
    # `state` and `kind` are constant in it, listed for the planner as in `pending`.
    Index(
        "ix_outbox_refused_steps",
        "state",
        "kind",
        "dossier_ref",
        sqlite_where=_REFUSED_STEP,
        postgresql_where=_REFUSED_STEP,
    ),
)

known = Table(
    "known",
    metadata,
    Column("dossier", String(255), primary_key=True),
    Column("acked_hash", String(32), nullable=False, default=""),
    Column("acked_at", Float, nullable=False),
)

# Kept for good (never purged with the outbox rows), so a second local record can never take
# over a dossier number, nor a record change its number, once the portal holds it.
owners = Table(
    "owners",
    metadata,
    Column("dossier", String(255), primary_key=True),
    Column("source_ref", String(255), nullable=False),
    Column("acked_at", Float, nullable=False),
    Index("ix_owners_source_ref", "source_ref", unique=True),
)

# Dossiers whose steps the pull is to read again: their record's refused header was fixed
# while some of its steps were refused for its sake (see `PullJob.read_steps_again`).
# Written in the ingest's transaction, so a crash before the reading does not lose it.
rereads = Table(
    "rereads",
    metadata,
    Column("dossier", String(255), primary_key=True),
    Column("queued_at", Float, nullable=False),
)

# The steps the portal acknowledged whose outbox rows were purged, per dossier it holds: the
# concatenated `hashing.step_digest` of their keys (8 bytes a step). An unforced ingest (the
# pull, `resync --missing-only`) takes a step found here as sent, as it would its row.
sent_steps = Table(
    "sent_steps",
    metadata,
    Column("dossier", String(255), primary_key=True),
    Column("digests", LargeBinary, nullable=False),
)

# Dossiers a claim found steps of while the portal did not hold them, and set those steps
# aside (`delivery.release_steps`): the acknowledgement of a header need only look for steps
# to bring back when its dossier is here, which it seldom is.
waiting = Table(
    "waiting",
    metadata,
    Column("dossier", String(255), primary_key=True),
)

cursors = Table(
    "cursors",
    metadata,
    Column("stream", String(128), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

audit = Table(
    "audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", Float, nullable=False),
    Column("action", String(32), nullable=False),
    Column("service", String(64), nullable=False),
    Column("keys", Text, nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("outcome", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("value", Text, nullable=False),
)


def create_schema(engine: Engine) -> None:
    """Create missing tables and record the schema version; safe to run at every start,
    by several processes at once (the first creates, the others find it done)."""
    with engine.begin() as conn:
        serialized(conn, SCHEMA_LOCK)
        present = set(inspect(conn).get_table_names())
        for table in metadata.sorted_tables:
            if present and table.name not in present:  # a store made by an earlier version
                log.info("adding a new table to the state store", table=table.name)
        fill_owners = "owners" not in present
        metadata.create_all(conn)
        _add_missing_columns(conn)
        _add_missing_indexes(conn)
        if fill_owners:
            _fill_owners(conn)
        _record_version(conn)


def _add_missing_columns(conn: Connection) -> None:
    """Columns added since a store was made: `create_all` only creates whole tables.

    Each has a constant server default that suits the old rows, so adding it rewrites
    nothing (SQLite, PostgreSQL 11+).
    """
    for table in metadata.sorted_tables:
        present = {column["name"] for column in inspect(conn).get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                log.info("adding a new column to the state store", column=column.name)
                spec = CreateColumn(column).compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {spec}")


def _add_missing_indexes(conn: Connection) -> None:
    """Indexes added since a store was made: `create_all` only creates whole tables.

    Building one reads the whole table once, at the first start of the version adding it.
    """
    for table in metadata.sorted_tables:
        present = {ix["name"] for ix in inspect(conn).get_indexes(table.name)}
        for index in sorted(table.indexes, key=lambda ix: str(ix.name)):
            if index.name not in present:
                log.info("building a new index of the state store, once", index=index.name)
                index.create(conn)


def _fill_owners(conn: Connection) -> None:
    """Give a store made before `owners` existed the owners its acknowledged rows show.

    The first acknowledged header version of each dossier names its owner; rows already
    purged cannot be recovered, which is why `owners` exists.
    """
    first = (
        select(outbox.c.dossier, func.min(outbox.c.id).label("id"))
        .where(outbox.c.kind == Kind.HEADER.value, outbox.c.state == State.ACKED.value)
        .group_by(outbox.c.dossier)
        .subquery()
    )
    rows = (
        select(outbox.c.dossier, outbox.c.source_ref, outbox.c.updated_at)
        .join(first, first.c.id == outbox.c.id)
        .where(outbox.c.kind == Kind.HEADER.value)  # SQLite needs a WHERE before ON CONFLICT
    )
    columns = [owners.c.dossier, owners.c.source_ref, owners.c.acked_at]
    conn.execute(upsert(conn, owners).from_select(columns, rows).on_conflict_do_nothing())


def _record_version(conn: Connection) -> None:
    stored = conn.scalar(select(meta.c.value).where(meta.c.key == "schema_version"))
    if stored is None:
        row = {"key": "schema_version", "value": SCHEMA_VERSION}
        conn.execute(upsert(conn, meta).values(row).on_conflict_do_nothing())
