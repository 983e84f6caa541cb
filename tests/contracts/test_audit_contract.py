"""The audit trail verified while the daemon writes to it, on every backend with more than
one connection: one snapshot, so a record appended meanwhile is not taken for a break."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connector.ports import AuditEvent
from connector.store import SqlStore
from connector.store import audit as audit_module
from connector.store.audit import verify_audit


def _event(n: int) -> AuditEvent:
    return AuditEvent(at=1000.0 + n, action="send", service="DongBoHoSoMC", keys=[f"D{n}"])


def test_a_record_appended_during_verify_is_not_a_break(
    store: SqlStore, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.callspec.id.endswith("memory"):
        pytest.skip("one shared connection: nothing can write while verify reads")
    store.audit([_event(n) for n in range(1, 6)])
    walk = audit_module._rows

    def appending_meanwhile(*args: Any, **kwargs: Any) -> Iterator[Any]:
        rows = walk(*args, **kwargs)
        yield next(rows)
        store.audit([_event(99)])  # the daemon, from its own connection
        yield from rows

    monkeypatch.setattr(audit_module, "_rows", appending_meanwhile)
    check = verify_audit(store)
    assert check.ok, check.reason
    assert check.checked == 5
    monkeypatch.undo()
    assert verify_audit(store).checked == 6


def test_the_trail_is_read_by_dossier_on_every_backend(store: SqlStore) -> None:
    """`audit show --dossier`: exact keys, LIKE's wildcards taken literally (`ESCAPE`)."""
    from connector.store.audit import read_audit

    store.audit(
        [
            AuditEvent(at=1.0, action="send", service="S", keys=["A_1", "A-1|20260101080000|2"]),
            AuditEvent(at=2.0, action="send", service="S", keys=["AX1"]),
            AuditEvent(at=3.0, action="reply", service="S", keys=["A-1"], outcome="ack=1"),
        ]
    )
    assert [r.seq for r in read_audit(store, dossier="A_1")] == [1]
    assert [r.seq for r in read_audit(store, dossier="A-1")] == [1, 3]
    assert [r.seq for r in read_audit(store, dossier="A-1", action="reply")] == [3]
