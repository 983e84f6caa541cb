"""The pure reply verdicts that every portal profile shares."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.core.records import OutcomeStatus
from connector.errors import PortalRefused, PortalTransient
from connector.portals.classify import (
    ItemResult,
    ReplyCodes,
    align,
    decide_batch,
    login_token,
    outcome_for,
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


def test_align_ignores_results_that_do_not_cover_the_batch() -> None:
    """Two results for three items decide nothing."""
    results = [ItemResult(code="0", key="A"), ItemResult(code="0", key="B")]
    assert align(results, ["A", "B", "C"]) is None


def test_align_by_key_reorders() -> None:
    """Results naming every unique item are put in item order."""
    results = [ItemResult(code="1", key="B"), ItemResult(code="0", key="A")]
    aligned = align(results, ["A", "B"])
    assert aligned is not None and [r.key for r in aligned] == ["A", "B"]


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
