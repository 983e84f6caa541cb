"""The procedures and agencies of the demo world, read from the operators' crosswalk CSVs.

The demo database carries only local codes; reading the same CSVs the mapping uses keeps the
two worlds consistent, so every generated dossier (but the deliberately invalid ones)
translates cleanly.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

LEVELS = ("department", "district", "commune")

#: Which department (Sở) handles a domain; other levels pick any agency of their level.
DEPARTMENT_BY_DOMAIN = {
    "G01": "SXD",
    "G09": "STP",
    "G05": "SKHDT",
    "G10": "STNMT",
    "G07": "SGTVT",
    "G15": "SYT",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Procedure:
    """One administrative procedure as the local system knows it."""

    local_code: str
    name: str
    level: str
    domain_code: str
    domain_name: str
    duration_days: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Agency:
    """One receiving agency; `qcvn_code` prefixes its dossier numbers."""

    local_code: str
    qcvn_code: str
    name: str
    level: str


#: A procedure the local system uses but the crosswalk does not list: its dossiers are invalid.
UNLISTED = Procedure(
    local_code="HN-XX-99",
    name="Thủ tục thí điểm chưa công bố",
    level="district",
    domain_code="G99-TD",
    domain_name="Thí điểm",
    duration_days=10,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalogue:
    """The demo world's procedures and agencies, with the agencies grouped by level."""

    procedures: tuple[Procedure, ...]
    agencies: tuple[Agency, ...]

    def agencies_at(self, level: str) -> tuple[Agency, ...]:
        return tuple(a for a in self.agencies if a.level == level)

    def agency(self, local_code: str) -> Agency:
        return next(a for a in self.agencies if a.local_code == local_code)

    def procedure(self, local_code: str) -> Procedure:
        if local_code == UNLISTED.local_code:
            return UNLISTED
        return next(p for p in self.procedures if p.local_code == local_code)

    def department_for(self, procedure: Procedure) -> Agency | None:
        """The Sở in charge of a department-level procedure's domain, if the demo has it."""
        code = DEPARTMENT_BY_DOMAIN.get(procedure.domain_code[:3])
        return None if code is None else self.agency(code)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def load_catalogue(crosswalk_dir: Path) -> Catalogue:
    """Read `procedures.csv` and `agencies.csv` from a crosswalk folder."""
    procedures = tuple(
        Procedure(
            local_code=r["local_code"],
            name=r["name"],
            level=r["level"],
            domain_code=r["domain_code"],
            domain_name=r["domain_name"],
            duration_days=int(r["duration_days"]),
        )
        for r in _rows(crosswalk_dir / "procedures.csv")
    )
    agencies = tuple(
        Agency(
            local_code=r["local_code"], qcvn_code=r["qcvn_code"], name=r["name"], level=r["level"]
        )
        for r in _rows(crosswalk_dir / "agencies.csv")
    )
    return Catalogue(procedures=procedures, agencies=agencies)
