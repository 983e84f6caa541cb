"""The portal's services over the store: judge each item, apply the good ones, reply.

Every item gets a verdict first (the field rules, then what the sandbox holds); only then is
anything applied. With per-item replies the accepted items are applied and each item gets
its own outcome; without them the batch is all or nothing, as on a portal that answers a
batch with one code.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

import orjson

from connector.sandbox.catalogue import Catalogues
from connector.sandbox.rules import RULE_CODE, check_dossier, check_step
from connector.sandbox.state import Application, SandboxStore, StepRow

Reply = dict[str, Any]

SYNC = "DongBoHoSoMC"
PROGRESS = "CapNhatTienDoHoSoMC"
LOOKUP = "TraCuuHoSo"
#: Services on the integration path.
BUSINESS = frozenset({SYNC, PROGRESS, LOOKUP})
#: Services on the share path.
CATALOGUE = frozenset({"LayDanhSachTTHC", "LayDanhMucCoQuan", "LayDanhMucLinhVuc", "LayThuTuc"})

NOT_FOUND = "404"
ALREADY_EXISTS = "409"
_LOOKUP_FIELDS = ("MaHoSo", "TrangThaiHoSo", "NgayTiepNhan", "NgayHenTra", "NgayKetThucXuLy")

A = TypeVar("A", Application, StepRow)


class Verdict(NamedTuple, Generic[A]):
    """One item's outcome; `action` is what to apply when it was accepted."""

    ma_ho_so: str | None
    code: str  # "0" when accepted
    message: str
    action: A | None = None


class Refused(Exception):
    """A call refused as a whole (bad envelope, not one bad item)."""

    def __init__(self, message: str, code: str = RULE_CODE) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceRules:
    """The call-level limits the services apply."""

    madonvi: re.Pattern[str]
    per_item: bool
    max_batch: int


class Services:
    """Dispatches a service call, records refusals and commits once per call."""

    def __init__(self, store: SandboxStore, catalogues: Catalogues, rules: ServiceRules) -> None:
        self._store = store
        self._catalogues = catalogues
        self._rules = rules
        self._handlers: dict[str, Callable[[Reply], Reply]] = {
            SYNC: self._sync,
            PROGRESS: self._progress,
            LOOKUP: self._lookup,
            "LayDanhSachTTHC": lambda _: _listing(catalogues.procedures),
            "LayDanhMucCoQuan": lambda _: _listing(catalogues.agencies),
            "LayDanhMucLinhVuc": lambda _: _listing(catalogues.domains),
            "LayThuTuc": self._procedure,
        }

    def handle(self, body: Reply, allowed: frozenset[str]) -> Reply:
        """The reply to one authenticated service call."""
        name = body.get("service")
        service = name if isinstance(name, str) else "?"
        try:
            reply = self._dispatch(service, body, allowed)
        except Refused as refused:
            self._store.record_rejections(service, [(None, refused.code, refused.message)])
            reply = {"error_code": refused.code, "message": refused.message}
        self._store.commit()
        return reply

    def _dispatch(self, service: str, body: Reply, allowed: frozenset[str]) -> Reply:
        madonvi = body.get("madonvi")
        if not isinstance(madonvi, str) or self._rules.madonvi.fullmatch(madonvi) is None:
            raise Refused("madonvi missing or not a unit code like 000.00.01.H26")
        if service not in allowed:
            raise Refused(f"unknown service {service[:64]!r} on this path")
        return self._handlers[service](body)

    def _sync(self, body: Reply) -> Reply:
        flag = body.get("isUpdating")
        if flag not in ("True", "False"):
            raise Refused('isUpdating must be the string "True" or "False"')
        items = self._batch(body)
        held = self._store.held_hashes([c for c in map(_code_of, items) if c is not None])
        verdicts = [self._judge_dossier(item, flag == "True", held) for item in items]
        seq = self._store.next_seq()
        return self._finish(SYNC, verdicts, lambda apps: self._store.apply_dossiers(apps, seq))

    def _judge_dossier(
        self, item: Any, updating: bool, held: dict[str, str]
    ) -> Verdict[Application]:
        problem = check_dossier(item, self._catalogues.procedure_codes)
        code = _code_of(item)
        if problem is not None or code is None:
            return Verdict(code, RULE_CODE, problem or "MaHoSo: required field missing")
        canonical = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
        digest = hashlib.sha256(canonical).hexdigest()
        current = held.get(code)
        if updating and current is None:
            return Verdict(code, NOT_FOUND, "dossier not held: send it with isUpdating False")
        if not updating and current is not None:
            return Verdict(code, ALREADY_EXISTS, "dossier already exists: send isUpdating True")
        held[code] = digest  # a later item of this batch sees this version
        noop = current == digest
        app = Application(
            ma_ho_so=code, payload=canonical, hash=digest, is_updating=updating, noop=noop
        )
        message = "unchanged" if noop else "updated" if updating else "created"
        return Verdict(code, "0", message, app)

    def _progress(self, body: Reply) -> Reply:
        items = self._batch(body)
        codes = [_code_of(item) for item in items]
        held = self._store.held([c for c in codes if c is not None])
        verdicts = [_judge_step(item, c, held) for item, c in zip(items, codes, strict=True)]
        return self._finish(PROGRESS, verdicts, self._store.add_steps)

    def _lookup(self, body: Reply) -> Reply:
        code = body.get("mahoso")
        if not isinstance(code, str) or not code:
            raise Refused("mahoso missing")
        found = self._store.lookup(code)
        if found is None:
            return {"error_code": "0", "message": "ok", "result": []}
        header, steps = found
        view = {key: header[key] for key in _LOOKUP_FIELDS if key in header}
        return {"error_code": "0", "message": "ok", "result": [{**view, "SoBuocXuLy": steps}]}

    def _procedure(self, body: Reply) -> Reply:
        """LayThuTuc: one procedure of the catalogue by its code (`maTTHC`), [] if unknown."""
        code = body.get("maTTHC")
        if not isinstance(code, str) or not code:
            raise Refused("maTTHC missing")
        found = [row for row in self._catalogues.procedures if row["MATTHC"] == code]
        return _listing(tuple(found))

    def _batch(self, body: Reply) -> list[Any]:
        items = body.get("data")
        if not isinstance(items, list) or not items:
            raise Refused("data must be a non-empty JSON array")
        if len(items) > self._rules.max_batch:
            raise Refused(
                f"batch of {len(items)} items exceeds the limit of {self._rules.max_batch}"
            )
        return items

    def _finish(
        self, service: str, verdicts: Sequence[Verdict[A]], apply: Callable[[list[A]], None]
    ) -> Reply:
        failed = [v for v in verdicts if v.code != "0"]
        if failed:
            self._store.record_rejections(
                service, [(v.ma_ho_so, v.code, v.message) for v in failed]
            )
        if not self._rules.per_item:
            if failed:
                return {"error_code": failed[0].code, "message": failed[0].message}
            apply([v.action for v in verdicts if v.action is not None])
            return {"error_code": "0", "message": "ok"}
        apply([v.action for v in verdicts if v.action is not None])
        message = f"{len(failed)} of {len(verdicts)} items rejected" if failed else "ok"
        return {
            "error_code": "1" if failed else "0",
            "message": message,
            "result": [
                {"MaHoSo": v.ma_ho_so, "error_code": v.code, "message": v.message} for v in verdicts
            ],
        }


def _judge_step(item: Any, code: str | None, held: set[str]) -> Verdict[StepRow]:
    problem = check_step(item)
    if problem is not None or code is None:
        return Verdict(code, RULE_CODE, problem or "MaHoSo: required field missing")
    if code not in held:
        return Verdict(code, NOT_FOUND, "dossier not held: send its header first")
    payload = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
    return Verdict(code, "0", "ok", StepRow(code, item["ThoiDiemXuLy"], item["TrangThai"], payload))


def _code_of(item: Any) -> str | None:
    code = item.get("MaHoSo") if isinstance(item, dict) else None
    return code if isinstance(code, str) else None


def _listing(rows: tuple[dict[str, str], ...]) -> Reply:
    return {"error_code": "0", "message": "ok", "result": list(rows)}
