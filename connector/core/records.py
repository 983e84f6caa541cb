"""Frozen value objects passed between the jobs, the core and the adapters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

#: A row pulled from a local system, with child lists attached under their stream names.
SourceRecord = Mapping[str, Any]
#: A portal message (one dossier header or one progress step) as plain JSON-able data.
Payload = dict[str, Any]


class Encoded:
    """A payload as the outbox stores it: canonical JSON bytes, sent without decoding.

    Decoding thousands of stored payloads a second only to encode them again for the wire
    costs more than the rest of a push; the portal client splices `json` into the request
    body instead. `ma_ho_so` is the one field the client reads, to match per-item results.
    Deliberately not a dataclass: JSON encoders turn dataclasses into objects by themselves.
    """

    __slots__ = ("json", "ma_ho_so")

    def __init__(self, json: bytes, ma_ho_so: str) -> None:
        self.json = json
        self.ma_ho_so = ma_ho_so

    def __repr__(self) -> str:
        return f"Encoded({len(self.json)} bytes, ma_ho_so={self.ma_ho_so!r})"


#: What a push call takes: a payload as data, or one already encoded.
Outgoing = Payload | Encoded
#: Where an incremental stream stopped: e.g. ("2026-11-27T01:02:03.000000Z", 1234).
Cursor = tuple[Any, ...]


class Kind(StrEnum):
    """What an outbox item carries."""

    HEADER = "header"  # a DongBoHoSoMC dossier (one row per header version)
    STEP = "step"  # a CapNhatTienDoHoSoMC progress step


class State(StrEnum):
    """Life of an outbox item."""

    PENDING = "pending"  # waiting to be sent (or re-sent after next_attempt_at)
    IN_FLIGHT = "in_flight"  # handed to the portal client; back to pending after a crash
    ACKED = "acked"  # the portal confirmed it with a parsed success reply
    REJECTED = "rejected"  # the portal refused it for good: dead letter with its code
    INVALID = "invalid"  # failed mapping or validation, never sent: dead letter with reason
    PARKED = "parked"  # retries exhausted: dead letter until an operator retries it
    SUPERSEDED = "superseded"  # replaced by a newer header version or by an operator retry


DEAD_STATES = frozenset({State.REJECTED, State.INVALID, State.PARKED})


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """Why a record cannot be sent: the field, the value (masked if personal), the rule."""

    field: str
    reason: str
    value: str | None = None

    def __str__(self) -> str:
        shown = "" if self.value is None else f" (value {self.value!r})"
        return f"{self.field}: {self.reason}{shown}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Mapped:
    """The outcome of mapping one source record: a payload, or the problems that stop it.

    `key` is the portal identity (MaHoSo for headers; MaHoSo|ThoiDiemXuLy|TrangThai for
    steps) when it could be computed, else the source reference. `dossier` is the MaHoSo the
    item belongs to (empty when unknown). `source_ref` names the local record, e.g.
    "dossiers:1234". `event_time` orders steps within a dossier (yyyyMMddHHmmss).
    `dossier_ref` is, for a step, the source reference of its dossier record when the
    mapping names it (`[step] dossier_record`), else "".
    """

    kind: Kind
    key: str
    dossier: str
    source_ref: str
    payload: Payload
    problems: tuple[Problem, ...] = ()
    event_time: str = ""
    dossier_ref: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def reason(self) -> str:
        return "; ".join(str(p) for p in self.problems)


class OutcomeStatus(StrEnum):
    """The portal's verdict on one item."""

    OK = "ok"  # success code (0, "0", "00")
    REJECTED = "rejected"  # any other business code: permanent for this item
    EXISTS = "exists"  # isUpdating=False but the portal already holds the dossier
    MISSING = "missing"  # isUpdating=True but the portal does not hold the dossier
    UNKNOWN = "unknown"  # the reply did not say what became of this item: send it again


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """The portal's answer for one item, with its code and message kept verbatim."""

    status: OutcomeStatus
    code: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchReply:
    """Answer to one push call; `outcomes` is aligned with the items sent.

    `per_item` is False when the reply had no per-item results, so every item got the
    call's single outcome (and a rejected batch should be split to find the bad items).
    """

    per_item: bool
    outcomes: tuple[Outcome, ...]
    http_status: int = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class PortalView:
    """What `TraCuuHoSo` says the portal holds for one dossier."""

    ma_ho_so: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    step_count: int = 0
