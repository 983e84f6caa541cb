"""Crosswalk target codes against the portal's own catalogues (`mapping check --portal`).

The crosswalk CSVs say which national codes the connector will send (`MaTTHC`, the agency
in `MaHoSo`, `MaLinhVuc`). The portal publishes the codes it knows (contract §1:
`LayDanhSachTTHC` → `MATTHC`, `LayDanhMucCoQuan` → `MADONVI`, `LayDanhMucLinhVuc` →
`MALINHVUC`). This module says which crosswalk feeds which catalogue and which of their
target codes the portal does not list.

Pure: takes the parsed mapping document, the crosswalk rows and the catalogue rows
(`connector.mapfiles` reads the files, the portal adapter fetches the catalogues).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connector.core.validation import is_procedure_code


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogueKind:
    """One of the portal's catalogues: its service and the column holding the code."""

    name: str  # as in the mapping's [catalogue] section: procedures, agencies, domains
    service: str
    column: str  # upper case, as the contract writes it


PROCEDURES = CatalogueKind(name="procedures", service="LayDanhSachTTHC", column="MATTHC")
AGENCIES = CatalogueKind(name="agencies", service="LayDanhMucCoQuan", column="MADONVI")
DOMAINS = CatalogueKind(name="domains", service="LayDanhMucLinhVuc", column="MALINHVUC")
KINDS = (PROCEDURES, AGENCIES, DOMAINS)

#: [catalogue] keys of the mapping file and the catalogue their crosswalk's targets are in.
_SECTION_KINDS = {"procedures": PROCEDURES, "agencies": AGENCIES}
#: Header fields holding a catalogued code: a crosswalk in their `via` produces such codes.
_FIELD_KINDS = {"MaTTHC": PROCEDURES, "MaLinhVuc": DOMAINS}


@dataclass(frozen=True, slots=True, kw_only=True)
class CrosswalkRow:
    """One row of a crosswalk CSV: its line in the file, the local code and the target."""

    line: int
    local: str
    code: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CrosswalkCodes:
    """The rows of one crosswalk whose targets must be in catalogue `kind`."""

    crosswalk: str
    file: str
    kind: CatalogueKind
    rows: tuple[CrosswalkRow, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Unknown:
    """A crosswalk target the portal's catalogue does not list."""

    crosswalk: str
    file: str
    line: int
    local: str
    code: str
    kind: CatalogueKind

    def describe(self) -> str:
        return (
            f"{self.file}:{self.line}: crosswalk {self.crosswalk} maps {self.local!r} to "
            f"{self.code!r}, which the portal's {self.kind.name} catalogue "
            f"({self.kind.service}) does not list"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class KindCount:
    """Per catalogue: how many codes it lists, how many rows were checked, how many failed."""

    kind: CatalogueKind
    listed: int
    checked: int
    unknown: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogueReport:
    """What the comparison found. `empty` names catalogues the portal returned without a
    single code: their rows are counted in `unchecked`, not as unknown, since an empty
    catalogue says more about the portal (or its share path) than about the crosswalk."""

    unknown: tuple[Unknown, ...]
    counts: tuple[KindCount, ...]
    empty: tuple[CatalogueKind, ...]
    unchecked: int

    @property
    def checked(self) -> int:
        return sum(c.checked for c in self.counts)

    @property
    def ok(self) -> bool:
        return not self.unknown and not self.empty


def catalogue_crosswalks(doc: Mapping[str, Any]) -> dict[str, tuple[CatalogueKind, ...]]:
    """Which crosswalks feed which catalogue, from a parsed (and already valid) mapping:
    `[catalogue] procedures/agencies`, and every `crosswalk:NAME` in the `via` of
    `[dossier.fields] MaTTHC` or `MaLinhVuc`. In the mapping's crosswalk order."""
    found: dict[str, list[CatalogueKind]] = {}

    def add(name: str, kind: CatalogueKind) -> None:
        kinds = found.setdefault(name, [])
        if kind not in kinds:
            kinds.append(kind)

    catalogue = doc.get("catalogue", {})
    if isinstance(catalogue, Mapping):
        for key, kind in _SECTION_KINDS.items():
            if isinstance(catalogue.get(key), str):
                add(catalogue[key], kind)
    dossier = doc.get("dossier", {})
    fields = dossier.get("fields", {}) if isinstance(dossier, Mapping) else {}
    if isinstance(fields, Mapping):
        for field, kind in _FIELD_KINDS.items():
            for name in _crosswalks_in(fields.get(field)):
                add(name, kind)
    declared = doc.get("crosswalks", {})
    order = list(declared) if isinstance(declared, Mapping) else []
    ranked = sorted(found, key=lambda n: order.index(n) if n in order else len(order))
    return {name: tuple(found[name]) for name in ranked}


def _crosswalks_in(spec: Any) -> list[str]:
    """The crosswalk names in a field spec's `via`, if it has one."""
    via = spec.get("via", []) if isinstance(spec, Mapping) else []
    if not isinstance(via, list):
        return []
    return [
        step.partition(":")[2]
        for step in via
        if isinstance(step, str) and step.startswith("crosswalk:")
    ]


def listed_codes(rows: Iterable[Any], column: str) -> frozenset[str]:
    """The codes in a catalogue's rows. The contract writes the column in upper case
    (`MATTHC`); `MaTTHC` or any other spelling of it is read too. Rows that are not
    objects, and values that are neither text nor whole numbers, are skipped."""
    wanted = column.upper()
    codes: set[str] = set()
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        value = row.get(column)
        if value is None:
            value = next(
                (v for k, v in row.items() if isinstance(k, str) and k.upper() == wanted), None
            )
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            value = str(value)
        if isinstance(value, str) and value.strip():
            codes.add(value.strip())
    return frozenset(codes)


def _known(code: str, kind: CatalogueKind, listed: frozenset[str]) -> bool:
    """As the validation before sending: a procedure code with a unit suffix
    (`1.000948.H38`) is known when its national part (`1.000948`) is."""
    if code in listed:
        return True
    return kind == PROCEDURES and is_procedure_code(code) and code[:8] in listed


def compare(
    crosswalks: Iterable[CrosswalkCodes], catalogues: Mapping[str, Sequence[Any]]
) -> CatalogueReport:
    """Every crosswalk row whose target code is not in its catalogue.

    `catalogues` maps a catalogue service (`LayDanhSachTTHC`, …) to the rows the portal
    returned; a service missing from it counts as an empty catalogue. Rows with an empty
    target are not codes at all (the offline check warns about them) and are skipped.
    """
    unknown: list[Unknown] = []
    checked: dict[CatalogueKind, int] = {}
    failed: dict[CatalogueKind, int] = {}
    empty: list[CatalogueKind] = []
    unchecked = 0
    listings = {kind: listed_codes(catalogues.get(kind.service, ()), kind.column) for kind in KINDS}
    for crosswalk in crosswalks:
        kind, listed = crosswalk.kind, listings[crosswalk.kind]
        rows = [row for row in crosswalk.rows if row.code]
        if not listed:
            if rows and kind not in empty:
                empty.append(kind)
            unchecked += len(rows)
            continue
        checked[kind] = checked.get(kind, 0) + len(rows)
        for row in rows:
            if not _known(row.code, kind, listed):
                failed[kind] = failed.get(kind, 0) + 1
                unknown.append(
                    Unknown(
                        crosswalk=crosswalk.crosswalk,
                        file=crosswalk.file,
                        line=row.line,
                        local=row.local,
                        code=row.code,
                        kind=kind,
                    )
                )
    counts = tuple(
        KindCount(
            kind=kind,
            listed=len(listings[kind]),
            checked=checked[kind],
            unknown=failed.get(kind, 0),
        )
        for kind in KINDS
        if kind in checked
    )
    return CatalogueReport(
        unknown=tuple(unknown), counts=counts, empty=tuple(empty), unchecked=unchecked
    )
