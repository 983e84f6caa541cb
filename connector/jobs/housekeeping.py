"""Housekeeping: keep the outbox small by dropping old acknowledged and superseded rows.

What the portal holds stays in the `known` table, so an unchanged header is still not
sent again after its row is gone; the audit trail is never purged (an operator moves old
records out with `connector audit archive`).
"""

from __future__ import annotations

import structlog

from connector.ports import Clock, Store

log = structlog.get_logger(__name__)


def housekeeping(store: Store, clock: Clock, *, retention_days: int) -> int:
    removed = store.purge(before=clock.now() - retention_days * 86400)
    if removed:
        log.info("outbox purged", rows=removed, retention_days=retention_days)
    return removed
