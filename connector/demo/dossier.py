"""Turn one planned dossier life into the rows a local one-stop system would hold.

Shared by the generator (whole histories, cut at "now") and the live activity (dossiers
arriving now). Ids and daily sequence numbers come from the caller, so both can keep them
unique in their own way.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connector.demo import lifecycle as lc
from connector.demo import people
from connector.demo.catalogue import UNLISTED, Agency, Catalogue, Procedure
from connector.demo.officers import Officer, Offices
from connector.demo.schema import COLUMNS, local_text

Row = tuple[Any, ...]
Rows = dict[str, list[Row]]
#: (agency qcvn code, yyMMdd) → the next daily sequence number.
Sequencer = Callable[[str, str], int]
#: A step's action time → its `modified_at` text.
Stamper = Callable[[datetime], str]

FILE_HOST = "https://dichvucong.hanoi.gov.vn/files"
CHANNELS = (("online", 0.60), ("counter", 0.95), ("post", 1.0))
INVALID_UNLISTED = "unlisted"  # procedure missing from the crosswalk
INVALID_NO_DUE = "no_due"  # received but without a due date
_COMPONENTS = (
    "Đơn đề nghị",
    "Bản sao Căn cước công dân",
    "Tờ khai theo mẫu",
    "Giấy tờ chứng minh quyền sử dụng đất",
    "Bản vẽ thiết kế",
    "Giấy ủy quyền",
)
_FEES = (("Lệ phí giải quyết thủ tục", "LP01", "2"), ("Phí thẩm định hồ sơ", "PHI01", "1"))
_AMOUNTS = (10_000, 25_000, 50_000, 75_000, 100_000, 150_000, 500_000)


def new_rows() -> Rows:
    return {table: [] for table in COLUMNS}


class Ids:
    """The next free id of every table."""

    def __init__(self, start: dict[str, int] | None = None) -> None:
        self._next = {table: 1 for table in COLUMNS} | (start or {})

    def take(self, table: str) -> int:
        value = self._next[table]
        self._next[table] = value + 1
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Draft:
    """What is decided about a dossier before its rows are written."""

    id: int
    number: str
    procedure: Procedure
    agency: Agency
    applicant: people.Applicant
    channel: str
    received: datetime
    due: datetime | None


class DossierFactory:
    """Makes a dossier and its children as rows, from a plan cut at `now`."""

    def __init__(self, catalogue: Catalogue, *, ids: Ids, sequence: Sequencer) -> None:
        self._catalogue = catalogue
        self._ids = ids
        self._sequence = sequence
        self._offices = Offices()

    def make(
        self,
        rows: Rows,
        rng: random.Random,
        *,
        received: datetime,
        now: datetime,
        invalid: str = "",
        stamper: Stamper,
    ) -> None:
        """Append one dossier's rows to `rows`."""
        procedure, agency = self._choose(rng, invalid)
        channel = _channel(rng)
        has_fee = rng.random() < 0.4
        trail = lc.plan_trail(
            rng,
            received=received,
            online=channel == "online",
            duration_days=procedure.duration_days,
            has_fee=has_fee,
        )
        kept = [e for e in trail.events if e.at <= now]
        draft = Draft(
            id=self._ids.take("dossiers"),
            number=self._number(agency, received),
            procedure=procedure,
            agency=agency,
            applicant=people.applicant(rng),
            channel=channel,
            received=received,
            due=None if invalid == INVALID_NO_DUE else _due(trail, now),
        )
        last = self._steps(rows, rng, draft, kept, stamper)
        self._children(rows, rng, draft, trail, kept, has_fee=has_fee, now=now)
        rows["dossiers"].append(_dossier_row(rng, draft, kept, last))

    def officer(self, rng: random.Random, agency: Agency, role: str) -> Officer:
        return self._offices.pick(agency.local_code, agency.level, role, rng)

    def _choose(self, rng: random.Random, invalid: str) -> tuple[Procedure, Agency]:
        if invalid == INVALID_UNLISTED:
            return UNLISTED, rng.choice(self._catalogue.agencies_at(UNLISTED.level))
        procedure = rng.choice(self._catalogue.procedures)
        department = self._catalogue.department_for(procedure)
        if procedure.level == "department" and department is not None:
            return procedure, department
        return procedure, rng.choice(self._catalogue.agencies_at(procedure.level))

    def _number(self, agency: Agency, received: datetime) -> str:
        day = received.strftime("%y%m%d")
        return f"{agency.qcvn_code}-{day}-{self._sequence(agency.qcvn_code, day):04d}"

    def _steps(
        self,
        rows: Rows,
        rng: random.Random,
        draft: Draft,
        kept: list[lc.Event],
        stamper: Stamper,
    ) -> str:
        """Append the step rows; returns the last step's `modified_at`."""
        modified = ""
        previous: datetime | None = None
        for event in kept:
            modified = stamper(event.at)
            actor = self._actor(rng, draft, event.status)
            text = lc.RESUMED if event.resumed else lc.content(event.status, rng)
            rows["steps"].append(
                (
                    self._ids.take("steps"), draft.id, actor.name, actor.title, actor.department,
                    local_text(event.at), people.maybe_nfd(text, rng), event.status,
                    _text(previous), _deadline(draft, event), modified,
                )
            )  # fmt: skip
            previous = event.at
        return modified

    def _actor(self, rng: random.Random, draft: Draft, status: str) -> Officer:
        role = lc.ROLE[status]
        if role == "applicant":
            return Officer(
                name=draft.applicant.name, title="Người nộp hồ sơ", department="Cổng Dịch vụ công"
            )
        return self.officer(rng, draft.agency, role)

    def _children(
        self,
        rows: Rows,
        rng: random.Random,
        draft: Draft,
        trail: lc.Trail,
        kept: list[lc.Event],
        *,
        has_fee: bool,
        now: datetime,
    ) -> None:
        names = rng.sample(_COMPONENTS, rng.randint(1, 4))
        for n, name in enumerate(names, start=1):
            rows["dossier_files"].append(self._file_row(rng, draft, n, name))
        if has_fee:
            rows["fees"].append(self._fee_row(rng, draft))
        for round_ in trail.rounds:
            if round_.asked <= now:
                rows["supplements"].append(self._supplement_row(rng, draft, round_, now))
        if any(e.status == lc.DONE for e in kept):
            rows["results"].append(self.result_row(draft))

    def _file_row(self, rng: random.Random, draft: Draft, n: int, name: str) -> Row:
        url = f"{FILE_HOST}/{draft.received:%Y/%m}/{draft.number}/tp{n:02d}.pdf"
        digitised = 1 if rng.random() < 0.7 else 0
        return (self._ids.take("dossier_files"), draft.id, name, f"TP{n:02d}", url, digitised)

    def _fee_row(self, rng: random.Random, draft: Draft) -> Row:
        name, code, kind = rng.choice(_FEES)
        method = "2" if draft.channel == "online" and rng.random() < 0.7 else "1"
        amount = rng.choice(_AMOUNTS)
        return (self._ids.take("fees"), draft.id, name, code, amount, method, kind)

    def result_row(self, draft: Draft) -> Row:
        values = result_values(draft.id, draft.number, draft.received, draft.procedure.name)
        return (self._ids.take("results"), *values)

    def _supplement_row(
        self, rng: random.Random, draft: Draft, round_: lc.Round, now: datetime
    ) -> Row:
        asker = self.officer(rng, draft.agency, "specialist").name
        closed = round_.answered <= now
        receiver = self.officer(rng, draft.agency, "intake").name if closed else None
        return (
            self._ids.take("supplements"), draft.id, asker,
            lc.content(lc.SUPPLEMENT, rng), local_text(round_.asked), receiver,
            _text(round_.answered if closed else None), "closed" if closed else "open",
            local_text(round_.old_due), local_text(round_.new_due) if closed else None,
        )  # fmt: skip


def result_values(dossier_id: int, number: str, received: datetime, procedure: str) -> Row:
    """A result document's columns after `id`: one signed PDF per finished dossier."""
    url = f"{FILE_HOST}/ketqua/{number}.pdf"
    doc_code = f"KQ-{received:%y}-{dossier_id:07d}"
    return (dossier_id, f"Kết quả: {procedure}", "KQ01", doc_code, url)


def _channel(rng: random.Random) -> str:
    draw = rng.random()
    return next(name for name, limit in CHANNELS if draw < limit)


def _due(trail: lc.Trail, now: datetime) -> datetime:
    """The due date as known at `now`: moved only by supplement rounds already answered."""
    due = trail.due
    for round_ in reversed(trail.rounds):
        if round_.answered > now:
            due = round_.old_due
    return due


def _deadline(draft: Draft, event: lc.Event) -> str | None:
    if event.status == lc.REGISTERED or draft.due is None:
        return None
    return local_text(draft.due)


def _text(moment: datetime | None) -> str | None:
    return None if moment is None else local_text(moment)


def _first(kept: list[lc.Event], statuses: frozenset[str]) -> datetime | None:
    return next((e.at for e in kept if e.status in statuses), None)


def _submitted(rng: random.Random, draft: Draft, kept: list[lc.Event]) -> datetime:
    if draft.channel == "online":
        return kept[0].at
    if draft.channel == "post":
        return draft.received - timedelta(days=rng.uniform(1, 3))
    return draft.received


def _dossier_row(rng: random.Random, draft: Draft, kept: list[lc.Event], modified: str) -> Row:
    status = kept[-1].status
    applicant = draft.applicant
    by_post = draft.channel == "post" or rng.random() < 0.1
    summary = people.maybe_nfd(f"Đề nghị giải quyết: {draft.procedure.name}", rng)
    note = lc.content(status, rng) if status in {lc.REFUSED, lc.WITHDRAWN, lc.STOPPED} else None
    return (
        draft.id, draft.number, draft.procedure.local_code, draft.agency.local_code,
        applicant.name, applicant.kind, applicant.id_number, applicant.phone, applicant.email,
        summary, draft.channel, int(by_post), local_text(_submitted(rng, draft, kept)),
        local_text(draft.received), _text(draft.due), _text(_first(kept, lc.FINISHING)),
        _text(_first(kept, frozenset({lc.RETURNED}))), status, note, modified,
    )  # fmt: skip


def invalid_kind(ordinal: int) -> str:
    """Which dossiers are deliberately invalid: one in 200, alternating the two defects."""
    if ordinal % 200 != 100:
        return ""
    return INVALID_UNLISTED if (ordinal // 200) % 2 == 0 else INVALID_NO_DUE
