"""How the push job settles replies that decide only some items, or none of a dossier's steps.

The REST client talks to a respx portal; the outbox is an in-memory stand-in for the store,
so each test sees every call, every settlement and every audit event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest
import respx
from pydantic import SecretStr

from connector.core.delivery import RetryPolicy
from connector.core.records import (
    BatchReply,
    Kind,
    Outcome,
    OutcomeStatus,
    Outgoing,
    PortalView,
    State,
)
from connector.jobs.health import Health
from connector.jobs.push import PushJob
from connector.metrics import Metrics
from connector.portals.rest import RestPortal
from connector.ports import AuditEvent, OutboxItem, Settlement
from tests.portals.portal_fakes import (
    BASE_URL,
    PASSWORD,
    FakeClock,
    FakeSleep,
    body_of,
    login_ok,
    make_settings,
)

Reply = Callable[[list[dict[str, Any]]], httpx.Response]


class Clock:
    def now(self) -> float:
        return 1_000_000.0

    def monotonic(self) -> float:
        return 1000.0


class MemoryOutbox:
    """Just enough of the store for the push job: claim, settle, audit, meta."""

    def __init__(self, items: Sequence[OutboxItem]) -> None:
        self.items = {i.id: i for i in items}
        self.events: list[AuditEvent] = []
        self.settlements: list[Settlement] = []
        self.facts: dict[str, str] = {}
        self.superseded: set[int] = set()  # newer versions queued while these were sent

    def claim(
        self, kind: Kind, limit: int, *, now: float, max_wait: float | None = None
    ) -> list[OutboxItem]:
        due = [
            i
            for i in self.items.values()
            if i.kind == kind and i.state == State.PENDING and i.next_attempt_at <= now
        ][:limit]
        return due  # left pending until settled, as `Store.claim` does

    def settle(self, settlements: Sequence[Settlement], *, now: float) -> frozenset[int]:
        for s in settlements:
            if s.item_id in self.superseded and s.state is not State.ACKED:
                continue  # as the store: only an acknowledgement overwrites a superseded item
            item = self.items[s.item_id]
            counted = s.state == State.PENDING and s.count_attempt
            self.items[s.item_id] = replace(
                item,
                state=s.state,
                last_code=s.code,
                last_message=s.message,
                attempts=item.attempts + (1 if counted else 0),
                next_attempt_at=s.next_attempt_at,
            )
        self.settlements.extend(settlements)
        dead = (State.REJECTED, State.PARKED)
        return frozenset(
            s.item_id for s in settlements if s.item_id in self.superseded and s.state in dead
        )

    def set_known(self, dossier: str, held: bool, *, now: float) -> None:
        pass

    def audit(self, events: Sequence[AuditEvent]) -> None:
        self.events.extend(events)

    def meta(self) -> dict[str, str]:
        return dict(self.facts)

    def put_meta(self, key: str, value: str) -> None:
        self.facts[key] = value

    def by_key(self) -> dict[str, OutboxItem]:
        return {i.key: i for i in self.items.values()}


def step(n: int, dossier: str, state: str) -> OutboxItem:
    when = f"202601010{n}0000"
    payload = {"MaHoSo": dossier, "ThoiDiemXuLy": when, "TrangThai": state}
    return _item(n, Kind.STEP, f"{dossier}|{when}|{state}", dossier, payload, when)


def header(n: int, dossier: str, procedure: str) -> OutboxItem:
    return _item(n, Kind.HEADER, dossier, dossier, {"MaHoSo": dossier, "MaTTHC": procedure})


def _item(
    n: int, kind: Kind, key: str, dossier: str, payload: dict[str, Any], when: str = ""
) -> OutboxItem:
    return OutboxItem(
        id=n,
        kind=kind,
        key=key,
        dossier=dossier,
        source_ref=f"src:{n}",
        body=orjson.dumps(payload),
        content_hash=f"h{n}",
        state=State.PENDING,
        attempts=0,
        next_attempt_at=0.0,
        event_time=when,
        last_code="",
        last_message="",
        created_at=999_000.0,
        updated_at=999_000.0,
    )


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def portal() -> Any:
    clock = FakeClock()
    rest = RestPortal(make_settings(), SecretStr(PASSWORD), sleep=FakeSleep(clock), clock=clock)
    yield rest
    await rest.aclose()


def serve(mock: respx.MockRouter, reply: Reply) -> list[list[dict[str, Any]]]:
    """Answer each push with `reply(data)`; returns the `data` of every call, in order."""
    sent: list[list[dict[str, Any]]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        data = body_of(request)["data"]
        sent.append(data)
        return reply(data)

    mock.post("/auth").mock(return_value=login_ok())
    mock.post("/integration").mock(side_effect=answer)
    return sent


def job(
    portal: Any, outbox: MemoryOutbox, health: Health | None = None, metrics: Metrics | None = None
) -> PushJob:
    return PushJob(
        portal=portal,
        store=outbox,  # type: ignore[arg-type]  # the push job uses only what it has
        clock=Clock(),
        metrics=metrics or Metrics(),
        health=health or Health(),
        policy=RetryPolicy(max_attempts=5, initial=10.0, cap=100.0),
        header_batch=50,
        step_batch=50,
    )


def calls(outbox: MemoryOutbox) -> list[tuple[str, list[str]]]:
    return [(e.action, list(e.keys)) for e in outbox.events]


async def test_reordered_step_results_never_swap_outcomes_within_a_dossier(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """A portal listing per-step results in reverse, naming only MaHoSo: the disagreeing
    dossier's steps are sent again one by one and each gets its own outcome (F3)."""
    sent = serve(mock, _reverse_results)
    outbox = MemoryOutbox([step(1, "A", "9"), step(2, "A", "2"), step(3, "B", "2")])
    assert await job(portal, outbox).round() == 3

    items = outbox.by_key()
    assert items["A|20260101010000|9"].state == State.REJECTED
    assert items["A|20260101010000|9"].last_code == "7"
    assert items["A|20260101020000|2"].state == State.ACKED
    assert items["B|20260101030000|2"].state == State.ACKED
    assert [[s["TrangThai"] for s in call] for call in sent] == [["9", "2", "2"], ["9"], ["2"]]
    a1, a2, b = (i.key for i in outbox.items.values())
    assert calls(outbox) == [
        ("send", [a1, a2, b]),
        ("reply", [a1, a2, b]),
        ("send", [a1]),
        ("reply", [a1]),
        ("send", [a2]),
        ("reply", [a2]),
    ]
    assert "resend" in outbox.events[1].outcome


async def test_reordered_results_for_one_dossier_never_ack_its_rejected_step(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """Matched by position, reversed results would acknowledge the rejected step (lost)
    and reject the good one; matched by MaHoSo they are resent one by one (F3)."""
    serve(mock, _reverse_results)
    outbox = MemoryOutbox([step(1, "A", "9"), step(2, "A", "2")])
    await job(portal, outbox).round()
    items = outbox.by_key()
    assert items["A|20260101010000|9"].state == State.REJECTED
    assert items["A|20260101020000|2"].state == State.ACKED


def _reverse_results(data: list[dict[str, Any]]) -> httpx.Response:
    """Per-step results naming MaHoSo only, in reverse order; TrangThai "9" is refused."""
    result = [
        {"MaHoSo": s["MaHoSo"], "error_code": "7" if s["TrangThai"] == "9" else "0"}
        for s in reversed(data)
    ]
    return httpx.Response(200, json={"error_code": 0, "result": result})


async def test_partial_results_of_a_successful_call_settle_every_item_at_once(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """A success reply naming only the bad header: it is rejected, the others acked (F2)."""

    def name_the_bad(data: list[dict[str, Any]]) -> httpx.Response:
        bad = [d for d in data if d["MaTTHC"] == "BAD"]
        result = [{"MaHoSo": d["MaHoSo"], "error_code": "99", "message": "Sai"} for d in bad]
        return httpx.Response(200, json={"error_code": "0", "result": result})

    sent = serve(mock, name_the_bad)
    outbox = MemoryOutbox([header(1, "H1", "1.1"), header(2, "H2", "BAD"), header(3, "H3", "1.1")])
    await job(portal, outbox).round()

    states = {k: (i.state, i.last_code) for k, i in outbox.by_key().items()}
    assert states == {
        "H1": (State.ACKED, "0"),
        "H2": (State.REJECTED, "99"),
        "H3": (State.ACKED, "0"),
    }
    assert len(sent) == 1


async def test_items_a_failed_call_does_not_name_are_resent_in_halves(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """A failed call naming only the bad header: the others are unknown and sent again in
    halves (not split from the top, not rejected) (F2)."""

    def name_the_bad(data: list[dict[str, Any]]) -> httpx.Response:
        bad = [d for d in data if d["MaTTHC"] == "BAD"]
        if not bad:
            return httpx.Response(200, json={"error_code": 0})
        result = [{"MaHoSo": d["MaHoSo"], "error_code": "99", "message": "Sai"} for d in bad]
        return httpx.Response(200, json={"error_code": "12", "message": "lỗi", "result": result})

    sent = serve(mock, name_the_bad)
    heads = [
        header(1, "H1", "1.1"),
        header(2, "H2", "BAD"),
        header(3, "H3", "1"),
        header(4, "H4", "1"),
    ]
    outbox = MemoryOutbox(heads)
    await job(portal, outbox).round()

    states = {k: i.state for k, i in outbox.by_key().items()}
    assert states == {"H1": State.ACKED, "H2": State.REJECTED, "H3": State.ACKED, "H4": State.ACKED}
    assert outbox.by_key()["H2"].last_code == "99"
    assert [[d["MaHoSo"] for d in call] for call in sent] == [
        ["H1", "H2", "H3", "H4"],
        ["H1"],
        ["H3", "H4"],
    ]


async def test_resending_unknown_steps_terminates_in_one_item_batches_in_time_order(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """A portal that never names what it was sent: every batch shrinks until a batch of one
    takes the call's outcome; the dossier's steps go out in their time order."""

    sent = serve(mock, _names_nothing)
    outbox = MemoryOutbox([step(n, "A", str(n)) for n in range(1, 5)])
    await job(portal, outbox).round()

    assert {i.state for i in outbox.items.values()} == {State.REJECTED}
    assert {i.last_code for i in outbox.items.values()} == {"12"}
    assert [[s["TrangThai"] for s in call] for call in sent] == [
        ["1", "2", "3", "4"],
        ["1", "2"],
        ["1"],
        ["2"],
        ["3", "4"],
        ["3"],
        ["4"],
    ]


async def test_when_a_resent_half_fails_the_later_half_waits_for_a_later_round(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """A dossier's four steps come back undecided and are resent in halves. The call with
    the first half fails (503): the second half is not sent in that round. Sent then, the
    dossier's later steps would reach the portal before its earlier ones."""
    replies = iter([_names_nothing])

    def reply(data: list[dict[str, Any]]) -> httpx.Response:
        first = next(replies, None)
        if first is not None:
            return first(data)
        if data[0]["TrangThai"] == "1":
            return httpx.Response(503, text="busy")
        return httpx.Response(200, json={"error_code": 0})

    sent = serve(mock, reply)
    outbox = MemoryOutbox([step(n, "A", str(n)) for n in range(1, 5)])
    await job(portal, outbox).round()

    firsts = [call[0]["TrangThai"] for call in sent]
    assert firsts[0] == "1" and len(sent[0]) == 4
    assert set(firsts[1:]) == {"1"} and {len(call) for call in sent[1:]} == {2}
    items = sorted(outbox.items.values(), key=lambda i: i.id)
    assert [(i.state, i.attempts) for i in items] == [(State.PENDING, 1)] * 2 + [
        (State.PENDING, 0)
    ] * 2
    assert [i.last_code for i in items] == ["transient", "transient", "", ""]


def _names_nothing(data: list[dict[str, Any]]) -> httpx.Response:
    """A failure naming none of the items sent: every one of them is undecided."""
    result = [{"MaHoSo": "OTHER", "error_code": "12"}]
    return httpx.Response(200, json={"error_code": "12", "message": "x", "result": result})


class UnknownPortal:
    """A portal adapter that never decides anything, not even for one item."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    async def push_steps(self, items: Sequence[Outgoing]) -> BatchReply:
        self.batches.append(len(items))
        unknown = Outcome(status=OutcomeStatus.UNKNOWN, code="12", message="?")
        return BatchReply(per_item=True, outcomes=(unknown,) * len(items))

    async def push_headers(self, items: Sequence[Outgoing], *, updating: bool) -> BatchReply:
        raise AssertionError("no headers here")

    async def lookup(self, ma_ho_so: str) -> PortalView | None:
        raise AssertionError("no lookups here")

    def session_state(self) -> str:
        return "active"

    async def aclose(self) -> None:
        pass


async def test_an_unknown_single_item_is_retried_later_not_resent_forever() -> None:
    """A batch of one cannot shrink: an unknown outcome there waits for a later attempt."""
    portal = UnknownPortal()
    outbox = MemoryOutbox([step(1, "A", "1"), step(2, "A", "2")])
    await job(portal, outbox).round()
    assert portal.batches == [2, 1, 1]
    for item in outbox.items.values():
        assert (item.state, item.attempts, item.last_code) == (State.PENDING, 1, "transient")


async def test_a_session_refused_after_a_fresh_login_keeps_items_queued(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """401 again right after a new login: a refusal, no attempt counted, status 'refused'
    (F5)."""
    auth = mock.post("/auth").mock(return_value=login_ok())
    mock.post("/integration").mock(return_value=httpx.Response(401))
    outbox = MemoryOutbox([step(1, "A", "1"), step(2, "A", "2")])
    health = Health()
    assert await job(portal, outbox, health).round() == 0

    assert {(i.state, i.attempts) for i in outbox.items.values()} == {(State.PENDING, 0)}
    assert health.push.state == "refused"
    assert "right after a fresh login" in (health.push.last_error or "")
    assert auth.call_count == 2


async def test_one_failure_for_a_dossier_s_steps_refuses_only_the_bad_one(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """The portal names only the failing step, by MaHoSo alone: which of A's three steps it
    is about is not known, so they are sent again until each is alone in its call; the
    bad one is refused, the two valid ones acknowledged, none of B's held up."""

    def name_the_bad(data: list[dict[str, Any]]) -> httpx.Response:
        bad = [s for s in data if s["TrangThai"] == "9"]
        result = [{"MaHoSo": s["MaHoSo"], "error_code": "7", "message": "Sai"} for s in bad]
        return httpx.Response(200, json={"error_code": "0", "result": result})

    sent = serve(mock, name_the_bad)
    items = [step(1, "A", "2"), step(2, "A", "9"), step(3, "A", "4"), step(4, "B", "2")]
    outbox = MemoryOutbox(items)
    await job(portal, outbox).round()
    states = {k: (i.state, i.last_code) for k, i in outbox.by_key().items()}
    assert states == {
        "A|20260101010000|2": (State.ACKED, "0"),
        "A|20260101020000|9": (State.REJECTED, "7"),
        "A|20260101030000|4": (State.ACKED, "0"),
        "B|20260101040000|2": (State.ACKED, "0"),
    }
    assert [[s["TrangThai"] for s in call] for call in sent] == [
        ["2", "9", "4", "2"],
        ["2"],  # A's steps again, in halves that keep their time order
        ["9", "4"],
        ["9"],
        ["4"],
    ]


async def test_a_step_the_portal_says_it_already_holds_is_acknowledged(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """A resent step (its first reply lost) answered with an already-exists code: the portal
    holds that very step, so it is acknowledged, not retried until parked."""
    exists = make_settings().already_exists_codes[0]

    def already_held(data: list[dict[str, Any]]) -> httpx.Response:
        result = [{"MaHoSo": s["MaHoSo"], "error_code": exists} for s in data]
        return httpx.Response(200, json={"error_code": "0", "result": result})

    serve(mock, already_held)
    outbox = MemoryOutbox([step(1, "A", "2")])
    await job(portal, outbox).round()
    (item,) = outbox.items.values()
    assert (item.state, item.attempts, item.last_code) == (State.ACKED, 0, exists)


async def test_a_refused_version_already_replaced_is_not_counted_as_a_dead_letter(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """The store kept header 1 superseded (its dossier's newer version was queued while it
    was in flight): the portal's refusal made no dead letter, so the metric operators alert
    on does not count one. Header 2's refusal is a dead letter."""
    serve(mock, refuse_all)
    outbox = MemoryOutbox([header(1, "A", "1.1"), header(2, "B", "1.1")])
    outbox.superseded.add(1)
    metrics = Metrics()
    await job(portal, outbox, metrics=metrics).round()
    dead = metrics.registry.get_sample_value(
        "connector_dead_lettered_items_total", {"kind": "header", "reason": "rejected"}
    )
    assert dead == 1


def refuse_all(data: list[dict[str, Any]]) -> httpx.Response:
    results = [{"MaHoSo": d["MaHoSo"], "error_code": "E21", "message": "sai"} for d in data]
    return httpx.Response(200, json={"error_code": 0, "result": results})


async def test_a_header_parked_when_its_repair_look_up_fails_counts_as_a_dead_letter(
    mock: respx.MockRouter, portal: RestPortal
) -> None:
    """ "Already exists" sends the header to a look-up; the look-up fails on its last
    attempt, so the header parks: a new dead letter, on /metrics like any other."""
    mock.post("/auth").mock(return_value=login_ok())
    mock.post("/integration").mock(
        side_effect=[httpx.Response(409), *[httpx.Response(503)] * 3]  # 3 in-call tries
    )
    outbox = MemoryOutbox([replace(header(1, "A", "1.1"), attempts=4)])  # max_attempts 5
    metrics = Metrics()
    await job(portal, outbox, metrics=metrics).round()
    assert outbox.items[1].state == State.PARKED
    dead = metrics.registry.get_sample_value(
        "connector_dead_lettered_items_total", {"kind": "header", "reason": "parked"}
    )
    assert dead == 1
