"""How a dossier moves through a one-stop office: planned trails and single next steps.

Pure: given a random source and times, it decides statuses and when they happen; the
generator and the live activity turn those decisions into rows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

REGISTERED = "registered"
RECEIVED = "received"
REFUSED = "refused"
PROCESSING = "processing"
SUPPLEMENT = "supplement"
AWAITING_FEE = "awaiting_fee"
WITHDRAWN = "withdrawn"
STOPPED = "stopped"
DONE = "done"
RETURNED = "returned"

#: Every local status, in the order of the mapping's code table ("1".."10").
STATUSES = (
    REGISTERED, RECEIVED, REFUSED, PROCESSING, SUPPLEMENT,
    AWAITING_FEE, WITHDRAWN, STOPPED, DONE, RETURNED,
)  # fmt: skip
#: A dossier in one of these states never moves again.
TERMINAL = frozenset({REFUSED, WITHDRAWN, STOPPED, RETURNED})
#: The first step in one of these states sets the dossier's `finished_at`.
FINISHING = frozenset({REFUSED, WITHDRAWN, STOPPED, DONE})

#: Who acts for each status (a role of `officers.Offices`, or the applicant online).
ROLE = {
    REGISTERED: "applicant",
    RECEIVED: "intake",
    REFUSED: "intake",
    PROCESSING: "specialist",
    SUPPLEMENT: "specialist",
    AWAITING_FEE: "specialist",
    WITHDRAWN: "intake",
    STOPPED: "leader",
    DONE: "leader",
    RETURNED: "intake",
}

_CONTENT = {
    REGISTERED: ("Nộp hồ sơ trực tuyến trên Cổng Dịch vụ công",),
    RECEIVED: ("Tiếp nhận hồ sơ, chuyển phòng chuyên môn xử lý", "Tiếp nhận hồ sơ hợp lệ"),
    REFUSED: ("Từ chối tiếp nhận: hồ sơ không đủ thành phần theo quy định",),
    PROCESSING: (
        "Thẩm định hồ sơ",
        "Kiểm tra, xác minh thông tin",
        "Xem xét, cho ý kiến",
        "Trình lãnh đạo phê duyệt",
    ),
    SUPPLEMENT: (
        "Yêu cầu bổ sung bản sao giấy tờ tùy thân",
        "Yêu cầu bổ sung bản vẽ thiết kế",
        "Yêu cầu bổ sung giấy xác nhận thông tin cư trú",
    ),
    AWAITING_FEE: ("Thông báo nộp phí, lệ phí",),
    WITHDRAWN: ("Công dân có đơn đề nghị rút hồ sơ",),
    STOPPED: ("Dừng xử lý do hồ sơ không đủ điều kiện giải quyết",),
    DONE: ("Phê duyệt, ký kết quả giải quyết",),
    RETURNED: ("Trả kết quả cho người nộp hồ sơ",),
}
RESUMED = "Tiếp nhận hồ sơ bổ sung, tiếp tục xử lý"


def content(status: str, rng: random.Random) -> str:
    """What an officer typically writes for a step ending in `status`."""
    return rng.choice(_CONTENT[status])


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One planned step: the status after it and when it happens."""

    status: str
    at: datetime
    resumed: bool = False  # processing that resumes after a supplement round


@dataclass(frozen=True, slots=True, kw_only=True)
class Round:
    """One supplement round: asked at `asked`, answered at `answered`, moving the due date."""

    asked: datetime
    answered: datetime
    old_due: datetime
    new_due: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Trail:
    """A dossier's whole planned life; the due date grows with each supplement round."""

    events: list[Event]
    due: datetime
    rounds: list[Round] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class Odds:
    """How often each fate happens; the defaults give ≈99.8 % on time among finished."""

    refused: float = 0.02
    withdrawn: float = 0.01
    stopped: float = 0.005
    supplement: float = 0.05
    awaiting_fee: float = 0.5  # among dossiers that carry fees
    late: float = 0.002


def _hours(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(hours=rng.uniform(low, high))


def plan_trail(
    rng: random.Random,
    *,
    received: datetime,
    online: bool,
    duration_days: int,
    has_fee: bool,
    odds: Odds = Odds(),
) -> Trail:
    """The statuses a dossier received at `received` will go through, with their times."""
    due = received + timedelta(days=duration_days)
    events = [Event(status=REGISTERED, at=received - _hours(rng, 0.2, 30))] if online else []
    if rng.random() < odds.refused:
        return Trail(events=[*events, Event(status=REFUSED, at=received)], due=due)
    events.append(Event(status=RECEIVED, at=received))
    late = rng.random() < odds.late
    share = rng.uniform(1.05, 1.4) if late else rng.uniform(0.25, 0.9)
    finish = received + timedelta(days=duration_days * share)
    return _process(rng, events, received, finish, due, has_fee, odds)


def _process(
    rng: random.Random,
    events: list[Event],
    received: datetime,
    finish: datetime,
    due: datetime,
    has_fee: bool,
    odds: Odds,
) -> Trail:
    span = finish - received
    points = sorted(rng.uniform(0.05, 0.8) for _ in range(rng.randint(1, 3)))
    events.extend(Event(status=PROCESSING, at=received + span * p) for p in points)
    fate = rng.random()
    if fate < odds.withdrawn + odds.stopped:
        status = WITHDRAWN if fate < odds.withdrawn else STOPPED
        events.append(Event(status=status, at=received + span * 0.85))
        return Trail(events=events, due=due)
    if has_fee and rng.random() < odds.awaiting_fee:
        events.append(Event(status=AWAITING_FEE, at=received + span * 0.9))
    events.append(Event(status=DONE, at=finish))
    events.append(Event(status=RETURNED, at=finish + _hours(rng, 0.5, 72)))
    trail = Trail(events=events, due=due)
    return _with_supplement(rng, trail) if rng.random() < odds.supplement else trail


def _with_supplement(rng: random.Random, trail: Trail) -> Trail:
    """Insert a supplement round after the first processing step; later steps and the due
    date move by the time the dossier was paused."""
    events = trail.events
    first = next(i for i, e in enumerate(events) if e.status == PROCESSING)
    asked = events[first].at + _hours(rng, 0.5, 4)
    resumed = Event(status=PROCESSING, at=asked + timedelta(days=rng.uniform(1, 5)), resumed=True)
    pause = resumed.at - events[first].at
    shifted = [Event(status=e.status, at=e.at + pause) for e in events[first + 1 :]]
    return Trail(
        events=[*events[: first + 1], Event(status=SUPPLEMENT, at=asked), resumed, *shifted],
        due=trail.due + pause,
        rounds=[
            Round(asked=asked, answered=resumed.at, old_due=trail.due, new_due=trail.due + pause)
        ],
    )


def next_status(current: str, rng: random.Random, *, fee_due: bool) -> str | None:
    """The status a live dossier moves to next, or None when it is finished for good."""
    if current in TERMINAL:
        return None
    fixed = {
        REGISTERED: RECEIVED,
        SUPPLEMENT: PROCESSING,
        AWAITING_FEE: DONE,
        DONE: RETURNED,
    }
    if current in fixed:
        return fixed[current]
    if current == RECEIVED:
        return WITHDRAWN if rng.random() < 0.02 else PROCESSING
    return _after_processing(rng.random(), fee_due=fee_due)


def _after_processing(draw: float, *, fee_due: bool) -> str:
    choices = (
        (0.01, STOPPED),
        (0.02, WITHDRAWN),
        (0.07, SUPPLEMENT),
        (0.37, PROCESSING),
        (0.52 if fee_due else 0.37, AWAITING_FEE),
    )
    return next((status for limit, status in choices if draw < limit), DONE)
