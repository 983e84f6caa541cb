"""What a portal reply means, decided without any I/O so every profile shares the verdicts.

The REST adapter feeds these functions HTTP status codes and parsed JSON; a SOAP adapter can
feed `outcome_for`, `decide_batch`, `retry_after` and `ReplyCodes` from its own envelope.
Call-level failures are raised (`PortalTransient`, `PortalRefused`); item-level verdicts are
returned as `Outcome` values so one bad item never stops the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
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


#: A progress step's identity within its dossier: (ThoiDiemXuLy, TrangThai).
StepId = tuple[str, str]
#: Each item's StepId (None for headers or when unknown), computed only when a reply needs it.
StepIds = Callable[[], Sequence[StepId | None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemResult:
    """One per-item verdict as the portal gave it; `key` is its MaHoSo when it named one,
    `step` the (ThoiDiemXuLy, TrangThai) it named too, if any."""

    code: str
    message: str = ""
    key: str | None = None
    step: StepId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Unsaid:
    """No per-item result decides this item: none names it, or those naming it disagree
    (`ambiguous`) and nothing tells which of its steps each one is about."""

    ambiguous: bool
    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """A service reply that was neither transient nor refused, ready for a verdict.

    `expired` asks the caller to log in again and resend; `rejected` is the verdict an HTTP
    4xx passes on the items of the call (per-item results in its body still decide the items
    they name); `body` holds the parsed JSON object (empty when the body was not one).
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
    """`0`, `0.0`, `"0"` and `" 00 "` all become comparable strings; a missing code becomes "".

    A whole number sent as a float (`0.0`, `409.0`, as some JSON writers do) is its integer.
    """
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


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
    if when.tzinfo is None:  # asctime form, or "-0000": HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
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
        raise PortalTransient(
            f"{what}: throttled (HTTP 429)", retry_after=retry_after_s, throttled=True
        )
    if status == 408 or status >= 500:
        detail = reason_text(message_of(_optional_object(raw)))
        raise PortalTransient(f"{what}: HTTP {status} {detail}".rstrip(), retry_after=retry_after_s)
    if 300 <= status < 400:
        raise PortalRefused(f"{what}: HTTP {status} redirect; check portal.base_url and paths")
    if status < 200:
        raise PortalTransient(f"{what}: unexpected HTTP {status}")


def service_answer(
    status: int, raw: bytes, codes: ReplyCodes, *, retry_after_s: float | None, service: str
) -> Answer:
    """Classify a service call's reply: raise call-level failures, return everything else.

    A 5xx carrying a configured session-expired `error_code` and no Retry-After is taken as
    an expired session: a portal that answers a stale token with a 500 is logged in again
    at once, not retried with the same token until the session's time runs out. With a
    Retry-After the portal asked for a wait, which is honoured. (If the fresh session meets
    the same 5xx, the portal is failing, not refusing: see `RestPortal._authorised`.)
    """
    if status >= 500 and retry_after_s is None:
        body = _optional_object(raw)
        if code_of(body.get("error_code")) in codes.session_expired:
            return Answer(status=status, body=body, expired=True)
    check_http(status, raw, retry_after_s=retry_after_s, what=service)
    if status == 401:
        return Answer(status=status, body=_optional_object(raw), expired=True)
    if status == 403:
        message = reason_text(message_of(_optional_object(raw)))
        raise PortalRefused(f"{service}: HTTP 403 forbidden {message}".rstrip())
    if 400 <= status < 500:
        return _rejected_answer(status, _optional_object(raw), codes, service)
    return _coded_answer(status, parse_object(raw), codes, service)


#: The one service whose "already exists" is about the call's isUpdating (see above).
HEADER_SERVICE = "DongBoHoSoMC"


def _rejected_answer(
    status: int, body: Mapping[str, Any], codes: ReplyCodes, service: str
) -> Answer:
    """An HTTP 4xx: the portal's own `error_code` and message when the body has them (kept
    verbatim, the status noted after the message), else the status as the code.

    A code from the configured families keeps its meaning (session expired, transient,
    already exists, not found) whatever HTTP status carried it.
    """
    code, message = code_of(body.get("error_code")), message_of(body)
    if not code or code in codes.success:
        # The status alone is the signal. On DongBoHoSoMC a 409 listed among the
        # already-exists codes keeps that meaning: a create resent after its reply was lost
        # is then repaired (looked up first), not dead-lettered. Nowhere else: a conflict on
        # steps confirms nothing. A bare 404 is not taken as not-found: a wrong path
        # answers 404 too, and a lookup reading it as "not held" would resend what is held.
        exists = service == HEADER_SERVICE and str(status) in codes.already_exists
        family = OutcomeStatus.EXISTS if exists else OutcomeStatus.REJECTED
        outcome = Outcome(status=family, code=f"HTTP {status}", message=message)
        return Answer(status=status, body=body, rejected=outcome)
    if code in codes.session_expired:
        return Answer(status=status, body=body, expired=True)
    if code in codes.transient:
        detail = reason_text(message)
        raise PortalTransient(f"{service}: HTTP {status} error_code {code} {detail}".rstrip())
    noted = f"{message} (HTTP {status})" if message else f"(HTTP {status})"
    return Answer(status=status, body=body, rejected=outcome_for(code, noted, codes))


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


def expiry_reason(answer: Answer) -> str:
    """What the portal said when it declared the session invalid (masked and bounded)."""
    said = f"HTTP {answer.status}" if answer.status == 401 else f"error_code {answer.code}"
    return f"{said} {reason_text(answer.message)}".rstrip()


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
    if isinstance(entries, dict):  # one result sent as an object, not in a list
        entries = [entries]
    if not isinstance(entries, list) or not entries:
        return None
    if not all(isinstance(e, dict) and "error_code" in e for e in entries):
        return None
    return [
        ItemResult(
            code=code_of(e["error_code"]),
            message=message_of(e),
            key=_text(e.get("MaHoSo")),
            step=_step_named(e),
        )
        for e in entries
    ]


def _text(value: object) -> str | None:
    """A MaHoSo or step field compared as the portal may spell it: a trimmed string."""
    return None if value is None else str(value).strip()


def _step_named(entry: Mapping[str, Any]) -> StepId | None:
    when, state = _text(entry.get("ThoiDiemXuLy")), _text(entry.get("TrangThai"))
    return None if when is None or state is None else (when, state)


def align(
    results: Sequence[ItemResult],
    keys: Sequence[str | None],
    codes: ReplyCodes,
    *,
    steps: StepIds | None = None,
) -> list[ItemResult | Unsaid]:
    """For each item, the result that decides it, or why none does (`Unsaid`).

    Results are matched by MaHoSo, never by position: a batch of steps repeats MaHoSo and a
    portal may list its results in any order. Within one MaHoSo, a result that also names
    the step (`ThoiDiemXuLy` and `TrangThai`) decides that step first; the other results
    of the group decide its other steps when they all agree, or when the group has a single
    item; if they disagree over several steps, those steps are ambiguous. Results naming no
    MaHoSo are matched the same way against the items nothing named, when they are as many
    or there is one such item. Results naming a MaHoSo not sent decide nothing, but a
    failure among them leaves the items nothing named ambiguous.
    """
    norm = [_text(k) for k in keys]
    members: dict[str, list[int]] = {}
    for index, key in enumerate(norm):
        if key is not None:
            members.setdefault(key, []).append(index)
    grouped: dict[str, list[ItemResult]] = {}
    loose: list[ItemResult] = []  # results naming no MaHoSo
    foreign: list[ItemResult] = []  # results naming a MaHoSo that was not sent
    for result in results:
        key = _text(result.key)
        if key is None:
            loose.append(result)
        elif key in members:
            grouped.setdefault(key, []).append(result)
        else:
            foreign.append(result)
    decided: list[ItemResult | Unsaid | None] = [None] * len(keys)
    ids = steps() if steps is not None and any(r.step for r in results) else None
    for key, entries in grouped.items():
        group = members[key]
        if ids is not None:
            entries, group = _by_step(entries, group, ids, decided, codes)
        _decide_group(entries, group, decided, codes, what=f"MaHoSo {key}")
    rest = [i for i, d in enumerate(decided) if d is None]
    if loose and rest:
        if len(loose) == len(rest) or len(rest) == 1:
            _decide_group(loose, rest, decided, codes, what="results naming no MaHoSo")
        else:
            _leave(rest, decided, "results naming no MaHoSo do not match the items")
    if any(r.code not in codes.success for r in foreign):
        # A failure for a dossier not sent may be meant for one of these (a misspelt
        # MaHoSo): acknowledging them on the call's success could lose a rejection.
        rest = [i for i, d in enumerate(decided) if d is None]
        _leave(rest, decided, "the reply reports failures for dossiers not sent")
    nothing = Unsaid(ambiguous=False, why="not named in the reply's per-item results")
    return [nothing if d is None else d for d in decided]


def _leave(group: Sequence[int], decided: list[ItemResult | Unsaid | None], why: str) -> None:
    unsaid = Unsaid(ambiguous=True, why=why)
    for index in group:
        decided[index] = unsaid


def _by_step(
    entries: list[ItemResult],
    group: list[int],
    ids: Sequence[StepId | None],
    decided: list[ItemResult | Unsaid | None],
    codes: ReplyCodes,
) -> tuple[list[ItemResult], list[int]]:
    """Decide the group's steps that results name exactly; return what is left of both."""
    named: dict[StepId, list[ItemResult]] = {}
    left: list[ItemResult] = []
    for entry in entries:
        if entry.step is not None and any(ids[i] == entry.step for i in group):
            named.setdefault(entry.step, []).append(entry)
        else:
            left.append(entry)
    for step, same in named.items():
        steps = [i for i in group if ids[i] == step]
        _decide_group(same, steps, decided, codes, what=f"step {step[0]}/{step[1]}")
    return left, [i for i in group if ids[i] not in named]


def _decide_group(
    entries: Sequence[ItemResult],
    group: Sequence[int],
    decided: list[ItemResult | Unsaid | None],
    codes: ReplyCodes,
    *,
    what: str,
) -> None:
    """Results that agree decide every item of the group, when there is one for each item
    or a lone item; a lone item takes the first that is not a success; disagreeing results
    leave several items ambiguous.

    Fewer results than items (one entry for a dossier's three steps, naming only MaHoSo)
    do not say which items they are about. Successes only: the items are not named, and
    share the call's outcome as unnamed items do. A failure among them: every item of the
    group is ambiguous and sent again in smaller batches, until each is alone in its call.
    """
    if not entries or not group:
        return
    verdicts = {_gist(e, codes) for e in entries}
    if len(group) == 1:
        chosen = entries[0] if len(verdicts) == 1 else _first_failure(entries, codes)
    elif len(verdicts) > 1:
        _leave(group, decided, f"the reply's results for {what} disagree")
        return
    elif len(entries) < len(group):
        if entries[0].code not in codes.success:  # successes alone: left as unnamed items
            why = f"{len(entries)} failure(s) for {len(group)} items of {what}, not told apart"
            _leave(group, decided, why)
        return
    else:
        chosen = entries[0]
    for index in group:
        decided[index] = chosen


def _first_failure(entries: Sequence[ItemResult], codes: ReplyCodes) -> ItemResult:
    return next(e for e in entries if e.code not in codes.success)


def _gist(result: ItemResult, codes: ReplyCodes) -> tuple[str, str]:
    """What makes two results the same verdict: any success is one; a failure's message
    counts too, since it is kept verbatim with the item."""
    return ("", "") if result.code in codes.success else (result.code, result.message)


def decide_batch(
    call: Outcome,
    results: Sequence[ItemResult] | None,
    keys: Sequence[str | None],
    codes: ReplyCodes,
    *,
    http_status: int = 200,
    steps: StepIds | None = None,
) -> BatchReply:
    """The batch's verdicts: each item by the per-item result that names it, else the call's.

    Without per-item results every item shares the call's outcome. With them, an item no
    result names shares the call's outcome when that is a success; when it is not, or when
    the results naming the item disagree, the item's fate is UNKNOWN (the push job sends it
    again in a smaller batch). A batch of one item is always decided: if nothing names it,
    it takes the call's outcome. A per-item transient code leaves that item's fate unknown,
    so the whole call is retried (a resent header replaces itself, a resent step is
    recognised by the portal).
    """
    if not results:
        return BatchReply(per_item=False, outcomes=(call,) * len(keys), http_status=http_status)
    outcomes: list[Outcome] = []
    for match in align(results, keys, codes, steps=steps):
        if isinstance(match, ItemResult):
            if match.code in codes.transient:
                detail = reason_text(match.message)
                raise PortalTransient(f"item error_code {match.code} {detail}".rstrip())
            outcomes.append(outcome_for(match.code, match.message, codes))
        elif len(keys) == 1:
            outcomes.append(_lone(call, match, results, codes))
        elif call.status is OutcomeStatus.OK and not match.ambiguous:
            outcomes.append(call)
        else:
            why = f"{match.why}; call error_code {call.code} {call.message}".rstrip()
            outcomes.append(Outcome(status=OutcomeStatus.UNKNOWN, code=call.code, message=why))
    return BatchReply(per_item=True, outcomes=tuple(outcomes), http_status=http_status)


def _lone(
    call: Outcome, match: Unsaid, results: Sequence[ItemResult], codes: ReplyCodes
) -> Outcome:
    """A batch of one, which cannot be split further, that no result decides: it takes the
    call's outcome, unless the call succeeded while the reply reports a failure that may be
    this item's (a misspelt MaHoSo). That failure is never taken for a success, nor for an
    "already exists" or "not found" about this item: it refuses the item with the
    portal's code and message, or leaves its fate unknown when the code is a transient or
    session one (tried again later, as for a call that failed)."""
    failure = next((r for r in results if r.code not in codes.success), None)
    if call.status is not OutcomeStatus.OK or not match.ambiguous or failure is None:
        return call
    if failure.code in codes.transient or failure.code in codes.session_expired:
        why = f"a result for a dossier not sent: error_code {failure.code} {failure.message}"
        return Outcome(status=OutcomeStatus.UNKNOWN, code=failure.code, message=why.rstrip())
    return Outcome(status=OutcomeStatus.REJECTED, code=failure.code, message=failure.message)


def push_reply(
    answer: Answer,
    keys: Sequence[str | None],
    codes: ReplyCodes,
    *,
    steps: StepIds | None = None,
) -> BatchReply:
    """A push call's `BatchReply` from its (non-expired) answer; `steps` gives each item's
    step identity when the items are progress steps."""
    if answer.rejected is not None:
        call = answer.rejected
    else:
        call = outcome_for(answer.code, answer.message, codes)
    results = item_results(answer.body)
    return decide_batch(call, results, keys, codes, http_status=answer.status, steps=steps)


def result_rows(answer: Answer, codes: ReplyCodes, *, service: str) -> list[dict[str, Any]] | None:
    """A lookup's `result` rows; None or [] when the portal says it holds nothing.

    `result` may be one object (TraCuuHoSo's documented shape; `{}` holds nothing) or a
    list of objects; null or absent holds nothing. A lookup that is neither a success nor a
    not-found code tells nothing about the portal's state, so it is transient rather than
    an answer.
    """
    if answer.rejected is not None:
        if answer.rejected.status is OutcomeStatus.MISSING:
            return None
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
    if isinstance(rows, dict):
        return [rows] if rows else []
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise PortalTransient(f"{service}: result is neither an object nor a list of objects")
    return rows


def collect_keys(items: Collection[Outgoing]) -> list[str | None]:
    """Each item's MaHoSo (None when absent), for matching per-item results."""
    return [_ma_ho_so(item) for item in items]


def step_identities(items: Sequence[Outgoing]) -> StepIds:
    """Each step's (ThoiDiemXuLy, TrangThai), decoded only if a reply's results name steps."""

    def identities() -> list[StepId | None]:
        return [_step_of(item) for item in items]

    return identities


def _step_of(item: Outgoing) -> StepId | None:
    payload: object = item
    if isinstance(item, Encoded):
        try:
            payload = orjson.loads(item.json)
        except orjson.JSONDecodeError:
            return None
    return _step_named(payload) if isinstance(payload, dict) else None


def _ma_ho_so(item: Outgoing) -> str | None:
    if isinstance(item, Encoded):
        return item.ma_ho_so or None
    return None if item.get("MaHoSo") is None else str(item["MaHoSo"])
