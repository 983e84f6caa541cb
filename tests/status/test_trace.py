"""`connector trace`'s verdict: one line for each way a dossier can stand."""

from __future__ import annotations

from connector.core.records import Kind, Mapped, PortalView, Problem, State
from connector.ports import OutboxItem
from connector.trace import Trace, verdict

NUMBER = "000.00.01.H26-261120-0001"


def _mapped(kind: Kind, n: int = 0, *, refused: str = "") -> Mapped:
    problems = (Problem(field="NgayHenTra", reason=refused),) if refused else ()
    key = NUMBER if kind is Kind.HEADER else f"{NUMBER}|2026112008000{n}|2"
    return Mapped(
        kind=kind, key=key, dossier=NUMBER, source_ref=f"{kind.value}s:{n}", payload={},
        problems=problems,
    )  # fmt: skip


def _row(kind: Kind, state: State, item_id: int = 7, **extra: object) -> OutboxItem:
    fields: dict[str, object] = {
        "id": item_id, "kind": kind, "key": NUMBER, "dossier": NUMBER, "source_ref": "x",
        "body": b"{}", "content_hash": "h", "state": state, "attempts": 0,
        "next_attempt_at": 0.0, "event_time": "", "last_code": "", "last_message": "",
        "created_at": 0.0, "updated_at": 0.0,
    }  # fmt: skip
    return OutboxItem(**{**fields, **extra})  # type: ignore[arg-type]


LOCAL = [_mapped(Kind.HEADER), _mapped(Kind.STEP, 1), _mapped(Kind.STEP, 2)]
ACKED = [_row(Kind.HEADER, State.ACKED), _row(Kind.STEP, State.ACKED, 8)]


def _trace(**given: object) -> Trace:
    base: dict[str, object] = {"dossier": NUMBER, "local": LOCAL, "outbox": [], "calls": []}
    return Trace(**{**base, **given})  # type: ignore[arg-type]


def test_a_number_nobody_knows() -> None:
    assert verdict(_trace(local=[])) == (
        "not in the local system under this number, and never queued"
    )


def test_a_refused_local_record_says_why_and_how_to_send_it_again() -> None:
    refused = [_mapped(Kind.HEADER, refused="required by the portal but missing")]
    said = verdict(_trace(local=refused))
    assert said.startswith("the local record is refused: NgayHenTra: required by the portal")
    assert said.endswith(
        f"then `connector resync --dossier {NUMBER}` (it reads and maps the record again)"
    )
    dead = _row(Kind.HEADER, State.INVALID, 15)
    assert "then `connector outbox retry 15`" in verdict(_trace(local=refused, outbox=[dead]))


def test_a_record_never_queued_points_at_a_resync() -> None:
    assert verdict(_trace()).startswith("in the local system but never queued: `connector resync")


def test_a_dossier_whose_rows_were_purged_is_still_known_as_acknowledged() -> None:
    held = PortalView(ma_ho_so=NUMBER, fields={"TrangThaiHoSo": "10"}, step_count=2)
    said = verdict(_trace(acked_at=1_700_000_000.0, portal=held, looked_up=True))
    assert said == "the portal holds it (TrangThaiHoSo 10) with 2 of 2 steps"


def test_a_dead_header_names_the_retry() -> None:
    dead = _row(Kind.HEADER, State.REJECTED, 12, last_code="E21", last_message="sai mã")
    said = verdict(_trace(outbox=[dead]))
    assert said == (
        "header rejected: E21 sai mã; fix it, then `connector outbox retry 12`; "
        "if it will never be sent, `connector outbox dismiss 12 --reason …`"
    )


def test_a_queued_header_counts_the_steps_behind_it() -> None:
    pending = _row(Kind.HEADER, State.PENDING, attempts=2, last_message="portal 503")
    steps = [_row(Kind.STEP, State.PENDING, 8), _row(Kind.STEP, State.PENDING, 9)]
    said = verdict(_trace(outbox=[pending, *steps]))
    assert said == (
        "header queued, not acknowledged yet (2 attempts; last: portal 503); 2 step(s) wait for it"
    )


def test_an_acknowledged_dossier_is_checked_against_the_portal() -> None:
    held = PortalView(ma_ho_so=NUMBER, fields={"TrangThaiHoSo": "4"}, step_count=2)
    assert verdict(_trace(outbox=ACKED, portal=held, looked_up=True)) == (
        "the portal holds it (TrangThaiHoSo 4) with 2 of 2 steps"
    )
    short = PortalView(ma_ho_so=NUMBER, fields={"TrangThaiHoSo": "4"}, step_count=1)
    assert verdict(_trace(outbox=ACKED, portal=short, looked_up=True)).endswith(
        "with 1 of 2 steps, and none is queued: "
        f"`connector resync --dossier {NUMBER} --missing-only`"
    )
    assert verdict(_trace(outbox=ACKED, looked_up=True)) == (
        f"header acknowledged, but the portal does not hold it: "
        f"`connector resync --dossier {NUMBER}`"
    )
    assert verdict(_trace(outbox=ACKED, portal_said="unreachable: timeout")) == (
        "header acknowledged; portal not looked up (unreachable: timeout)"
    )


def test_steps_the_portal_lost_after_acknowledging_them_need_a_plain_resync() -> None:
    """`--missing-only` skips acknowledged steps, so it is advised only for steps never
    queued; when the portal acknowledged every step (rows kept or purged) and holds fewer,
    the advice is a plain resync."""
    short = PortalView(ma_ho_so=NUMBER, fields={"TrangThaiHoSo": "4"}, step_count=1)
    keys = [m.key for m in LOCAL if m.kind is Kind.STEP]
    rows = [_row(Kind.HEADER, State.ACKED)] + [
        _row(Kind.STEP, State.ACKED, 8 + n, key=key) for n, key in enumerate(keys)
    ]
    lost = f", though it acknowledged every one: `connector resync --dossier {NUMBER}` sends"
    assert lost in verdict(_trace(outbox=rows, portal=short, looked_up=True))
    purged = _trace(acked_at=1.0, purged=frozenset(keys), portal=short, looked_up=True)
    assert lost in verdict(purged)
    one_missed = _trace(acked_at=1.0, purged=frozenset(keys[:1]), portal=short, looked_up=True)
    assert verdict(one_missed).endswith(f"`connector resync --dossier {NUMBER} --missing-only`")


def test_steps_short_on_the_portal_because_they_are_dead_name_the_retry() -> None:
    """A step the portal refused is not "acknowledged": the advice is the retry of it; a
    step an operator retired counts as never queued (`--missing-only` queues it again)."""
    short = PortalView(ma_ho_so=NUMBER, fields={"TrangThaiHoSo": "4"}, step_count=1)
    keys = [m.key for m in LOCAL if m.kind is Kind.STEP]
    rows = [
        _row(Kind.HEADER, State.ACKED),
        _row(Kind.STEP, State.ACKED, 8, key=keys[0]),
        _row(Kind.STEP, State.REJECTED, 9, key=keys[1]),
    ]
    assert verdict(_trace(outbox=rows, portal=short, looked_up=True)).endswith(
        "; 1 step(s) dead: fix them, then `connector outbox retry 9`; if they will never "
        "be sent, `connector outbox dismiss 9 --reason …`"
    )
    rows[2] = _row(Kind.STEP, State.SUPERSEDED, 9, key=keys[1])
    assert verdict(_trace(outbox=rows, portal=short, looked_up=True)).endswith(
        f"`connector resync --dossier {NUMBER} --missing-only`"
    )
