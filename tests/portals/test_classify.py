"""The pure reply verdicts that every portal profile shares."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.core.records import OutcomeStatus
from connector.errors import PortalRefused, PortalTransient
from connector.portals.classify import (
    Answer,
    ItemResult,
    ReplyCodes,
    Unsaid,
    align,
    decide_batch,
    expiry_reason,
    item_results,
    login_token,
    outcome_for,
    result_rows,
    retry_after,
    service_answer,
)

CODES = ReplyCodes(
    success=frozenset({"0", "00"}),
    session_expired=frozenset({"-1"}),
    transient=frozenset({"503"}),
    already_exists=frozenset({"409"}),
    not_found=frozenset({"404"}),
)
NOW = datetime(2026, 11, 27, 4, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 12 ", 12.0),
        ("-3", 0.0),
        ("Fri, 27 Nov 2026 04:00:30 GMT", 30.0),
        ("Fri, 27 Nov 2026 03:00:00 GMT", 0.0),
        ("Fri Nov 27 04:01:00 2026", 60.0),  # asctime form: no zone, GMT as every HTTP date
        ("soon", None),
        ("", None),
        (None, None),
        ("inf", None),
    ],
)
def test_retry_after_parsing(header: str | None, seconds: float | None) -> None:
    """Retry-After is read as delta-seconds or an HTTP-date; junk gives no hint."""
    assert retry_after(header, NOW) == seconds


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("0", OutcomeStatus.OK),
        ("00", OutcomeStatus.OK),
        ("409", OutcomeStatus.EXISTS),
        ("404", OutcomeStatus.MISSING),
        ("1", OutcomeStatus.REJECTED),
        ("", OutcomeStatus.REJECTED),
    ],
)
def test_outcome_for(code: str, status: OutcomeStatus) -> None:
    """Each code family maps onto its item verdict."""
    assert outcome_for(code, "m", CODES).status is status


def test_align_leaves_unnamed_items_unsaid() -> None:
    """Two results for three items decide the two they name; the third is not named."""
    results = [ItemResult(code="0", key="A"), ItemResult(code="1", key="B")]
    aligned = align(results, ["A", "B", "C"], CODES)
    assert aligned[:2] == results
    assert isinstance(aligned[2], Unsaid) and not aligned[2].ambiguous


def test_align_by_key_reorders() -> None:
    """Results naming every unique item are put in item order."""
    results = [ItemResult(code="1", key="B"), ItemResult(code="0", key="A")]
    aligned = align(results, ["A", "B"], CODES)
    assert [r.key for r in aligned if isinstance(r, ItemResult)] == ["A", "B"]


def test_per_item_transient_code_retries_the_call() -> None:
    """An item whose own code is transient has an unknown fate: the call is transient."""
    call = outcome_for("0", "", CODES)
    results = [ItemResult(code="0", key="A"), ItemResult(code="503", key="B")]
    with pytest.raises(PortalTransient):
        decide_batch(call, results, ["A", "B"], CODES)


def test_service_answer_session_expired_code() -> None:
    """A session-expired code asks for a new login rather than judging the items."""
    answer = service_answer(200, b'{"error_code": -1}', CODES, retry_after_s=None, service="S")
    assert answer.expired


def test_success_wins_over_overlapping_families() -> None:
    """A code configured both as success and elsewhere is success."""
    codes = ReplyCodes(success=frozenset({"0"}), transient=frozenset({"0"}))
    answer = service_answer(200, b'{"error_code": 0}', codes, retry_after_s=None, service="S")
    assert not answer.expired and answer.code == "0"


def test_login_without_session_is_transient() -> None:
    """A 'successful' login that hands out no token leaves the state unknown."""
    with pytest.raises(PortalTransient):
        login_token(200, b'{"error_code": 0}', CODES, retry_after_s=None)


def test_login_bad_request_is_refused() -> None:
    """A 400 on login (for instance a missing dstcode) is a configuration problem."""
    with pytest.raises(PortalRefused, match="HTTP 400"):
        login_token(400, b"{}", CODES, retry_after_s=None)


def test_reasons_mask_personal_data() -> None:
    """A portal message quoting an e-mail does not carry it into a transient reason."""
    raw = b'{"error_code": "503", "message": "busy for nguyen.van.a@example.vn"}'
    with pytest.raises(PortalTransient) as caught:
        service_answer(200, raw, CODES, retry_after_s=None, service="S")
    assert "nguyen.van.a@example.vn" not in str(caught.value)


# Per-item results that name only some items (F2).

OK = outcome_for("0", "ok", CODES)
FAILED = outcome_for("12", "Lỗi dữ liệu", CODES)


def _statuses(reply: object) -> list[OutcomeStatus]:
    return [o.status for o in getattr(reply, "outcomes", ())]


def test_partial_results_decide_named_items_and_a_successful_call_acks_the_rest() -> None:
    """A success call whose results name one failed item: it fails, the others are OK."""
    results = [ItemResult(code="99", message="Sai MaTTHC", key="B")]
    reply = decide_batch(OK, results, ["A", "B", "C"], CODES)
    assert reply.per_item is True
    assert _statuses(reply) == [OutcomeStatus.OK, OutcomeStatus.REJECTED, OutcomeStatus.OK]
    assert reply.outcomes[1].code == "99" and reply.outcomes[1].message == "Sai MaTTHC"


def test_partial_results_of_a_failed_call_leave_the_rest_unknown() -> None:
    """When the call failed, items no result names are unknown, never rejected."""
    results = [ItemResult(code="0", key="A")]
    reply = decide_batch(FAILED, results, ["A", "B", "C"], CODES)
    assert _statuses(reply) == [OutcomeStatus.OK, OutcomeStatus.UNKNOWN, OutcomeStatus.UNKNOWN]
    assert reply.outcomes[1].code == "12"


def test_a_one_item_batch_named_by_nothing_takes_the_call_outcome() -> None:
    """A batch of one is always decided: unnamed, it shares the call's (failed) outcome."""
    results = [ItemResult(code="0", key="Z")]
    assert decide_batch(FAILED, results, ["A"], CODES).outcomes == (FAILED,)


def test_failures_for_dossiers_not_sent_do_not_let_a_success_ack_the_rest() -> None:
    """A rejection naming a MaHoSo that was not sent may be meant for one that was (a
    misspelt MaHoSo): the others are sent again alone, and a batch of one, which cannot be
    split further, takes the failure instead of the call's success."""
    results = [ItemResult(code="7", key="A "), ItemResult(code="7", key="Z")]
    reply = decide_batch(OK, results, ["A", "B"], CODES)
    assert _statuses(reply) == [OutcomeStatus.REJECTED, OutcomeStatus.UNKNOWN]
    single = decide_batch(OK, [ItemResult(code="7", message="sai", key="Z")], ["B"], CODES)
    assert single.outcomes == (outcome_for("7", "sai", CODES),)
    spelt = decide_batch(OK, [ItemResult(code="7", key="b")], ["B"], CODES)
    assert _statuses(spelt) == [OutcomeStatus.REJECTED]
    # Never taken for an "exists" about this item, nor as a refusal when it is transient.
    exists = decide_batch(OK, [ItemResult(code="409", key="b")], ["B"], CODES)
    assert _statuses(exists) == [OutcomeStatus.REJECTED]
    busy = decide_batch(OK, [ItemResult(code="503", key="b")], ["B"], CODES)
    assert _statuses(busy) == [OutcomeStatus.UNKNOWN]


# Step results matched by MaHoSo group and step identity, never by position (F3).

STEPS = [("20260101080000", "1"), ("20260101090000", "2"), ("20260101100000", "3")]


def _ids(*ids: tuple[str, str] | None) -> Callable[[], list[tuple[str, str] | None]]:
    return lambda: list(ids)


def test_reordered_step_results_are_matched_by_step_identity() -> None:
    """Results naming (MaHoSo, ThoiDiemXuLy, TrangThai) decide that step, in any order."""
    results = [
        ItemResult(code="7", message="sai", key="A", step=STEPS[1]),
        ItemResult(code="0", key="A", step=STEPS[0]),
    ]
    reply = decide_batch(OK, results, ["A", "A"], CODES, steps=_ids(*STEPS[:2]))
    assert _statuses(reply) == [OutcomeStatus.OK, OutcomeStatus.REJECTED]


def test_step_identity_first_then_the_group_decides_the_other_steps() -> None:
    """One result names a step exactly; the group's remaining result is one success for
    two steps: they share the call's outcome, as unnamed items do (unknown when it failed)."""
    results = [ItemResult(code="0", key="A"), ItemResult(code="7", key="A", step=STEPS[1])]
    failed = decide_batch(FAILED, results, ["A"] * 3, CODES, steps=_ids(*STEPS))
    unknown, rejected = OutcomeStatus.UNKNOWN, OutcomeStatus.REJECTED
    assert _statuses(failed) == [unknown, rejected, unknown]
    ok = decide_batch(OK, results, ["A"] * 3, CODES, steps=_ids(*STEPS))
    assert _statuses(ok) == [OutcomeStatus.OK, rejected, OutcomeStatus.OK]


def test_fewer_results_than_steps_decide_none_of_them() -> None:
    """One result naming only MaHoSo for a dossier's three steps does not say which step it
    is about: a failure leaves all three unknown (sent again, down to one a call), so two
    valid steps are not refused with the bad one; successes alone on a failed call do not
    acknowledge the step they leave out."""
    keys = ["A", "A", "A", "B"]
    failure = decide_batch(OK, [ItemResult(code="7", key="A")], keys, CODES)
    assert _statuses(failure) == [OutcomeStatus.UNKNOWN] * 3 + [OutcomeStatus.OK]
    successes = [ItemResult(code="0", key="A"), ItemResult(code="0", key="A")]
    partial = decide_batch(FAILED, successes, keys, CODES)
    assert _statuses(partial) == [OutcomeStatus.UNKNOWN] * 4
    with_foreign = [ItemResult(code="0", key="A"), ItemResult(code="7", key="Ax")]
    held_back = decide_batch(OK, with_foreign, keys, CODES)
    assert _statuses(held_back) == [OutcomeStatus.UNKNOWN] * 4, "a failure may be theirs"
    as_many = [ItemResult(code="7", key="A")] * 3
    assert _statuses(decide_batch(OK, as_many, keys, CODES))[:3] == [OutcomeStatus.REJECTED] * 3


def test_agreeing_results_decide_every_step_of_their_dossier() -> None:
    """One agreeing result per dossier decides all its steps, whatever the counts."""
    results = [ItemResult(code="0", key="B"), ItemResult(code="0", key="A")]
    reply = decide_batch(OK, results, ["A", "A", "B"], CODES)
    assert _statuses(reply) == [OutcomeStatus.OK] * 3


def test_disagreeing_results_for_several_steps_are_unknown() -> None:
    """Two steps of A, one ok and one rejected, nothing to tell which: both unknown."""
    results = [ItemResult(code="0", key="A"), ItemResult(code="7", key="A")]
    reply = decide_batch(OK, results, ["A", "A", "B"], CODES)
    statuses = [OutcomeStatus.UNKNOWN, OutcomeStatus.UNKNOWN, OutcomeStatus.OK]
    assert _statuses(reply) == statuses


def test_disagreeing_results_for_a_single_step_keep_the_failure() -> None:
    """A dossier with one step and two different results: the failure is kept (visible)."""
    results = [ItemResult(code="0", key="A"), ItemResult(code="7", message="x", key="A")]
    reply = decide_batch(OK, results, ["A", "B"], CODES)
    assert reply.outcomes[0] == outcome_for("7", "x", CODES)


def test_results_naming_no_ma_ho_so_are_not_matched_by_position() -> None:
    """Unnamed results that agree decide all items; disagreeing ones leave them unknown."""
    agree = [ItemResult(code="0"), ItemResult(code="0")]
    assert _statuses(decide_batch(FAILED, agree, ["A", "B"], CODES)) == [OutcomeStatus.OK] * 2
    differ = [ItemResult(code="0"), ItemResult(code="7")]
    statuses = _statuses(decide_batch(OK, differ, ["A", "B"], CODES))
    assert statuses == [OutcomeStatus.UNKNOWN] * 2
    one = decide_batch(OK, [ItemResult(code="7")], ["A"], CODES)
    assert _statuses(one) == [OutcomeStatus.REJECTED]


def test_item_results_read_the_step_identity() -> None:
    """An entry carrying ThoiDiemXuLy and TrangThai names its step, as strings."""
    body = {
        "result": [
            {"MaHoSo": " A ", "ThoiDiemXuLy": 20260101080000, "TrangThai": 1, "error_code": 0},
            {"MaHoSo": "A", "TrangThai": "1", "error_code": "7"},
        ]
    }
    parsed = item_results(body)
    assert parsed is not None
    assert (parsed[0].key, parsed[0].step) == ("A", ("20260101080000", "1"))
    assert parsed[1].step is None


@settings(deadline=None)  # a stall of the shared machine is no failure of the rule
@given(
    codes=st.lists(st.sampled_from(["0", "00", "7", "12", "404", "409"]), min_size=1),
    named=st.lists(st.sampled_from(["A", "Z", None]), min_size=1),
    call=st.sampled_from(["0", "12", "409"]),
)
def test_a_one_item_batch_is_never_unknown(
    codes: list[str], named: list[str | None], call: str
) -> None:
    """Whatever the reply says, a one-item batch gets a decided outcome: no endless resend."""
    results = [ItemResult(code=c, key=k) for c, k in zip(codes, named, strict=False)]
    reply = decide_batch(outcome_for(call, "", CODES), results, ["A"], CODES)
    assert reply.outcomes[0].status is not OutcomeStatus.UNKNOWN


# TraCuuHoSo's `result` as one object (F4).


@pytest.mark.parametrize(
    ("result", "rows"),
    [
        ({"MaHoSo": "A", "SoBuocXuLy": 2}, [{"MaHoSo": "A", "SoBuocXuLy": 2}]),
        ([{"MaHoSo": "A"}], [{"MaHoSo": "A"}]),
        ({}, []),
        ([], []),
        (None, []),
    ],
    ids=["object", "list-of-one", "empty-object", "empty-list", "null"],
)
def test_result_rows_accepts_an_object_or_a_list(result: object, rows: list[object]) -> None:
    """A dict is one row; {}, [] and null mean the portal holds nothing."""
    answer = Answer(status=200, body={"error_code": 0, "result": result})
    assert result_rows(answer, CODES, service="TraCuuHoSo") == rows


def test_result_rows_refuses_other_shapes() -> None:
    """A string or a list of non-objects says nothing about the portal's state."""
    for result in ("A", ["A"], 3):
        answer = Answer(status=200, body={"error_code": 0, "result": result})
        with pytest.raises(PortalTransient):
            result_rows(answer, CODES, service="TraCuuHoSo")


# HTTP 4xx rejections keep the portal's code and message (F8).


def test_4xx_rejection_keeps_the_portal_code_and_message() -> None:
    """A 4xx whose body is coded JSON is rejected with that code, verbatim."""
    raw = '{"error_code": "E-102", "message": "Sai định dạng NgayTiepNhan"}'.encode()
    answer = service_answer(422, raw, CODES, retry_after_s=None, service="S")
    assert answer.rejected is not None
    assert answer.rejected.status is OutcomeStatus.REJECTED
    assert answer.rejected.code == "E-102"
    assert answer.rejected.message == "Sai định dạng NgayTiepNhan (HTTP 422)"


def test_4xx_with_a_family_code_keeps_its_meaning() -> None:
    """Already-exists stays a repair, transient stays transient, whatever the HTTP status."""
    exists = service_answer(409, b'{"error_code": 409}', CODES, retry_after_s=None, service="S")
    assert exists.rejected is not None and exists.rejected.status is OutcomeStatus.EXISTS
    with pytest.raises(PortalTransient):
        service_answer(400, b'{"error_code": "503"}', CODES, retry_after_s=None, service="S")


def test_4xx_without_a_code_is_rejected_with_the_status() -> None:
    """No error_code (or a success code) in a 4xx body: the status is the code."""
    for raw in (b'{"message": "bad"}', b'{"error_code": 0, "message": "bad"}', b"<html>"):
        answer = service_answer(400, raw, CODES, retry_after_s=None, service="S")
        assert answer.rejected is not None and answer.rejected.code == "HTTP 400"


def test_expiry_reason_names_what_the_portal_said() -> None:
    """The refusal reason for a persisting expiry quotes the status or the code."""
    by_status = service_answer(401, b'{"message": "no"}', CODES, retry_after_s=None, service="S")
    assert expiry_reason(by_status) == "HTTP 401 no"
    by_code = service_answer(200, b'{"error_code": -1}', CODES, retry_after_s=None, service="S")
    assert expiry_reason(by_code) == "error_code -1"
