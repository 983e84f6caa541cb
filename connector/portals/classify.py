"""What a portal reply means, decided without any I/O so every profile shares the verdicts.

The REST adapter feeds these functions HTTP status codes and parsed JSON; a SOAP adapter can
feed `outcome_for`, `decide_batch`, `retry_after` and `ReplyCodes` from its own envelope.
Call-level failures are raised (`PortalTransient`, `PortalRefused`); item-level verdicts are
returned as `Outcome` values so one bad item never stops the others.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from connector.core.masking import scrub_text
from connector.core.records import BatchReply, Encoded, Outcome, OutcomeStatus, Outgoing
from connector.errors import PortalRefused, PortalTransient
from connector.settings import PortalSettings

#: Longest portal message copied into an exception reason (they end up in logs and status).
REASON_CHARS = 300


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyCodes:
    """The portal's configurable `error_code` families, compared as strings."""

    success: frozenset[str]
    session_expired: frozenset[str] = frozenset()
    transient: frozenset[str] = frozenset()
    already_exists: frozenset[str] = frozenset()
    not_found: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: PortalSettings) -> ReplyCodes:
        return cls(
            success=frozenset(settings.success_codes),
            session_expired=frozenset(settings.session_expired_codes),
            transient=frozenset(settings.transient_codes),
            already_exists=frozenset(settings.already_exists_codes),
            not_found=frozenset(settings.not_found_codes),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemResult:
    """One per-item verdict as the portal gave it; `key` is its MaHoSo when it named one."""

    code: str
    message: str = ""
    key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """A service reply that was neither transient nor refused, ready for a verdict.

    `expired` asks the caller to log in again and resend; `rejected` is the verdict an HTTP
    4xx passes on every item of the call; otherwise `body` holds the parsed JSON object.
    """

    status: int
    body: Mapping[str, Any] = field(default_factory=dict)
    expired: bool = False
    rejected: Outcome | None = None

    @property
    def code(self) -> str:
        return code_of(self.body.get("error_code"))

    @property
    def message(self) -> str:
        return message_of(self.body)


def code_of(value: object) -> str:
    """`0`, `"0"` and `" 00 "` all become comparable strings; a missing code becomes ""."""
    return "" if value is None else str(value).strip()


def message_of(body: Mapping[str, Any]) -> str:
    value = body.get("message")
    return "" if value is None else str(value)


def reason_text(message: str) -> str:
    """A portal message made safe for an exception reason: masked and bounded."""
    return scrub_text(message)[:REASON_CHARS]


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until(text, now)
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def _seconds_until(http_date: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - now).total_seconds(), 0.0)


def parse_object(raw: bytes) -> dict[str, Any]:
    """The reply as a JSON object; anything else means the outcome is unknown (transient)."""
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise PortalTransient(f"reply is not valid UTF-8 (byte {exc.start})") from None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise PortalTransient(f"reply is not JSON: {_preview(text)}") from None
    if not isinstance(value, dict):
        raise PortalTransient(f"reply is JSON but not an object ({type(value).__name__})")
    return value


def _preview(text: str) -> str:
    """The start of a non-JSON body, collapsed to one line, for the reason."""
    return reason_text(" ".join(text[:80].split())) or "(empty body)"


def _optional_object(raw: bytes) -> Mapping[str, Any]:
    try:
        return parse_object(raw)
    except PortalTransient:
        return {}


def check_http(status: int, raw: bytes, *, retry_after_s: float | None, what: str) -> None:
    """Raise for the HTTP statuses that are call-level on every call: 429, 408, 3xx, 5xx."""
    if status == 429:
        raise PortalTransient(f"{what}: throttled (HTTP 429)", retry_after=retry_after_s)
    if status == 408 or status >= 500:
        detail = reason_text(message_of(_optional_object(raw)))
        raise PortalTransient(f"{what}: HTTP {status} {detail}".rstrip())
    if 300 <= status < 400:
        raise PortalRefused(f"{what}: HTTP {status} redirect; check portal.base_url and paths")
    if status < 200:
        raise PortalTransient(f"{what}: unexpected HTTP {status}")


def service_answer(
    status: int, raw: bytes, codes: ReplyCodes, *, retry_after_s: float | None, service: str
) -> Answer:
    """Classify a service call's reply: raise call-level failures, return everything else."""
    check_http(status, raw, retry_after_s=retry_after_s, what=service)
    if status == 401:
        return Answer(status=status, expired=True)
    if status == 403:
        message = reason_text(message_of(_optional_object(raw)))
        raise PortalRefused(f"{service}: HTTP 403 forbidden {message}".rstrip())
    if 400 <= status < 500:
        message = message_of(_optional_object(raw))
        rejected = Outcome(status=OutcomeStatus.REJECTED, code=f"HTTP {status}", message=message)
        return Answer(status=status, rejected=rejected)
    return _coded_answer(status, parse_object(raw), codes, service)


def _coded_answer(status: int, body: dict[str, Any], codes: ReplyCodes, service: str) -> Answer:
    answer = Answer(status=status, body=body)
    code = answer.code
    if "error_code" not in body or not code:
        raise PortalTransient(f"{service}: reply has no error_code")
    if code in codes.success:
        return answer
    if code in codes.session_expired:
        return Answer(status=status, body=body, expired=True)
    if code in codes.transient:
        raise PortalTransient(
            f"{service}: error_code {code} {reason_text(answer.message)}".rstrip()
        )
    return answer


def login_token(status: int, raw: bytes, codes: ReplyCodes, *, retry_after_s: float | None) -> str:
    """The session token from a login reply; a refusal names the portal's code and message."""
    check_http(status, raw, retry_after_s=retry_after_s, what="login")
    if status >= 400:
        message = reason_text(message_of(_optional_object(raw)))
        raise PortalRefused(f"login refused: HTTP {status} {message}".rstrip())
    body = parse_object(raw)
    code, message = code_of(body.get("error_code")), reason_text(message_of(body))
    if code in codes.transient:
        raise PortalTransient(f"login: error_code {code} {message}".rstrip())
    if code not in codes.success:
        raise PortalRefused(f"login refused: error_code {code or '(none)'} {message}".rstrip())
    token = body.get("session")
    if not isinstance(token, str) or not token:
        raise PortalTransient("login: success reply without a session token")
    return token


def outcome_for(code: str, message: str, codes: ReplyCodes) -> Outcome:
    """One item's verdict from its code; the code and message are kept verbatim."""
    if code in codes.success:
        status = OutcomeStatus.OK
    elif code in codes.already_exists:
        status = OutcomeStatus.EXISTS
    elif code in codes.not_found:
        status = OutcomeStatus.MISSING
    else:
        status = OutcomeStatus.REJECTED
    return Outcome(status=status, code=code, message=message)


def item_results(body: Mapping[str, Any]) -> list[ItemResult] | None:
    """The reply's per-item results, or None when `result` is not a list of coded objects."""
    entries = body.get("result")
    if not isinstance(entries, list) or not entries:
        return None
    if not all(isinstance(e, dict) and "error_code" in e for e in entries):
        return None
    return [
        ItemResult(
            code=code_of(e["error_code"]),
            message=message_of(e),
            key=None if e.get("MaHoSo") is None else str(e["MaHoSo"]),
        )
        for e in entries
    ]


def align(results: Sequence[ItemResult], keys: Sequence[str | None]) -> list[ItemResult] | None:
    """Results in item order: by MaHoSo when that is unambiguous, else by position.

    None when the results do not cover every item, or when a result placed by position names
    another dossier than the item there: then they cannot decide the batch.
    """
    unique = len(set(keys)) == len(keys) and None not in keys
    named = {r.key: r for r in results if r.key is not None}
    if unique and len(named) == len(results) and set(keys) <= named.keys():
        return [named[k] for k in keys if k is not None]
    if len(results) == len(keys) and all(
        r.key is None or k is None or r.key == k for r, k in zip(results, keys, strict=True)
    ):
        return list(results)
    return None


def decide_batch(
    call: Outcome,
    results: Sequence[ItemResult] | None,
    keys: Sequence[str | None],
    codes: ReplyCodes,
    *,
    http_status: int = 200,
) -> BatchReply:
    """The batch's verdicts: per-item results when they cover the batch, else the call's own.

    A per-item transient code leaves that item's fate unknown, so the whole call is retried
    (a resent header replaces itself, a resent step is recognised by the portal). So does a
    success code whose per-item results do not match the batch: which items succeeded is
    unknown, and acknowledging them all could acknowledge one the portal never took.
    """
    aligned = align(results, keys) if results else None
    if aligned is None:
        if results and call.status is OutcomeStatus.OK:
            raise PortalTransient("per-item results do not match the batch: outcome unknown")
        return BatchReply(per_item=False, outcomes=(call,) * len(keys), http_status=http_status)
    for result in aligned:
        if result.code in codes.transient:
            raise PortalTransient(f"item error_code {result.code} {reason_text(result.message)}")
    outcomes = tuple(outcome_for(r.code, r.message, codes) for r in aligned)
    return BatchReply(per_item=True, outcomes=outcomes, http_status=http_status)


def push_reply(answer: Answer, keys: Sequence[str | None], codes: ReplyCodes) -> BatchReply:
    """A push call's `BatchReply` from its (non-expired) answer."""
    if answer.rejected is not None:
        outcomes = (answer.rejected,) * len(keys)
        return BatchReply(per_item=False, outcomes=outcomes, http_status=answer.status)
    call = outcome_for(answer.code, answer.message, codes)
    results = item_results(answer.body)
    return decide_batch(call, results, keys, codes, http_status=answer.status)


def result_rows(answer: Answer, codes: ReplyCodes, *, service: str) -> list[dict[str, Any]] | None:
    """A lookup's `result` rows; None when the portal says it holds nothing.

    A lookup that is neither a success nor a not-found code tells nothing about the portal's
    state, so it is transient rather than an answer.
    """
    if answer.rejected is not None:
        detail = reason_text(answer.rejected.message)
        raise PortalTransient(f"{service}: {answer.rejected.code} {detail}".rstrip())
    code = answer.code
    if code in codes.not_found and code not in codes.success:
        return None
    if code not in codes.success:
        raise PortalTransient(f"{service}: error_code {code} {reason_text(answer.message)}")
    rows = answer.body.get("result")
    if rows is None:
        return []
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise PortalTransient(f"{service}: result is not a list of objects")
    return rows


def collect_keys(items: Collection[Outgoing]) -> list[str | None]:
    """Each item's MaHoSo (None when absent), for matching per-item results."""
    return [_ma_ho_so(item) for item in items]


def _ma_ho_so(item: Outgoing) -> str | None:
    if isinstance(item, Encoded):
        return item.ma_ho_so or None
    return None if item.get("MaHoSo") is None else str(item["MaHoSo"])
