"""Where database errors become `StoreError`: the store's one translation point.

Only the driver's own message is kept: SQLAlchemy's full text carries the statement and
its parameters, and those hold dossier payloads with personal data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from connector.errors import StoreError


@contextmanager
def store_errors(action: str) -> Iterator[None]:
    """Run a store operation; any SQLAlchemy error leaves as a StoreError naming `action`."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreError(describe(action, exc)) from exc


def describe(action: str, exc: SQLAlchemyError) -> str:
    """A message an operator can act on, without statement or parameters."""
    detail = str(exc.orig) if isinstance(exc, DBAPIError) else type(exc).__name__
    lowered = detail.lower()
    if "full" in lowered and ("disk" in lowered or "database" in lowered):
        return f"state store {action} failed: the disk or the database is full ({detail})"
    if "locked" in lowered or "busy" in lowered:
        return (
            f"state store {action} failed: the database stayed locked by another process "
            f"or thread for too long ({detail})"
        )
    return f"state store {action} failed: {detail}"
