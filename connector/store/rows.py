"""Converting between outbox rows and the values the jobs see."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Row

from connector.core.hashing import canonical_json, digest
from connector.core.records import Kind, Mapped, State
from connector.ports import OutboxItem
from connector.store.schema import outbox

#: How many values one `IN (...)` list carries: far below every backend's parameter limit.
CHUNK = 500

T = TypeVar("T")


def chunks(values: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """Split `values` into lists of at most `size` for `IN (...)` look-ups."""
    batch: list[T] = []
    for value in values:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def new_row(item: Mapped, state: State, *, now: float) -> dict[str, Any]:
    """The outbox row for a freshly mapped item (its payload stored even when invalid).

    The payload is stored as the canonical JSON its hash was taken over, so it is
    serialised once on the hot path.
    """
    data = canonical_json(item.payload)
    return {
        "kind": item.kind.value,
        "key": item.key,
        "dossier": item.dossier,
        "source_ref": item.source_ref,
        "payload": data,
        "content_hash": digest(data),
        "state": state.value,
        "attempts": 0,
        "next_attempt_at": now,
        "event_time": item.event_time,
        "last_code": "invalid" if state is State.INVALID else "",
        "last_message": item.reason() if state is State.INVALID else "",
        "created_at": now,
        "updated_at": now,
        "dossier_ref": item.dossier_ref,
    }


_WIDTH = len(outbox.columns)
_KINDS = {kind.value: kind for kind in Kind}
_STATES = {state.value: state for state in State}


def to_item(row: Row[Any], *, updating: bool = False) -> OutboxItem:
    """An `OutboxItem` from a full outbox row (`select(outbox)`, columns in table order,
    maybe followed by others, which are ignored).

    Unpacked by position: on the claim path a row's attribute access by name costs more
    than everything else done with it.
    """
    (
        item_id,
        kind,
        key,
        dossier,
        source_ref,
        body,
        content_hash,
        state,
        attempts,
        next_attempt_at,
        event_time,
        last_code,
        last_message,
        created_at,
        updated_at,
        _dossier_ref,
    ) = row[:_WIDTH]
    return OutboxItem(
        id=item_id,
        kind=_KINDS[kind],
        key=key,
        dossier=dossier,
        source_ref=source_ref,
        body=body,
        content_hash=content_hash,
        state=_STATES[state],
        attempts=attempts,
        next_attempt_at=next_attempt_at,
        event_time=event_time,
        last_code=last_code,
        last_message=last_message,
        created_at=created_at,
        updated_at=updated_at,
        updating=updating,
    )


def to_items(rows: Sequence[Row[Any]]) -> list[OutboxItem]:
    return [to_item(row) for row in rows]
