"""`connector outbox blocked`: the reason given for each dossier whose steps wait."""

from __future__ import annotations

import pytest

from connector.cli import blocked_reason
from connector.core.records import Kind, State
from connector.ports import BlockedDossier, OutboxItem


def _header(state: State, *, attempts: int = 0, code: str = "", message: str = "") -> OutboxItem:
    return OutboxItem(
        id=7, kind=Kind.HEADER, key="D1", dossier="D1", source_ref="dossiers:1", body=b"{}",
        content_hash="0" * 32, state=state, attempts=attempts, next_attempt_at=0.0,
        event_time="", last_code=code, last_message=message, created_at=0.0, updated_at=0.0,
    )  # fmt: skip


def _blocked(header: OutboxItem | None) -> BlockedDossier:
    return BlockedDossier(dossier="D1", steps=3, first_queued_at=0.0, header=header)


@pytest.mark.parametrize(
    ("header", "said"),
    [
        (None, "no header queued under this dossier number: check the steps' MaHoSo"),
        (_header(State.PENDING), "header queued, not yet acknowledged: the steps follow it"),
        (
            _header(State.PENDING, attempts=3, code="transient", message="HTTP 503"),
            "header being retried (3 attempts): HTTP 503",
        ),
        (
            _header(State.INVALID, code="invalid", message="MaTTHC: unknown"),
            "header refused by validation: MaTTHC: unknown; fix it, then "
            "`connector outbox retry 7`; if it will never be sent, "
            "`connector outbox dismiss 7 --reason …`",
        ),
        (
            _header(State.REJECTED, code="E12", message="bad agency"),
            "header rejected by the portal: E12 bad agency; fix it, then "
            "`connector outbox retry 7`; if it will never be sent, "
            "`connector outbox dismiss 7 --reason …`",
        ),
        (
            _header(State.PARKED, code="parked", message="too many attempts"),
            "header parked: too many attempts; fix it, then `connector outbox retry 7`; "
            "if it will never be sent, `connector outbox dismiss 7 --reason …`",
        ),
    ],
    ids=["no-header", "queued", "retrying", "invalid", "rejected", "parked"],
)
def test_each_header_state_gets_its_reason(header: OutboxItem | None, said: str) -> None:
    assert blocked_reason(_blocked(header)) == said
