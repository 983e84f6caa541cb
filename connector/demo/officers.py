"""Who acts on a dossier at each stage, per agency: a small, stable roster per office.

Each agency gets its own few officers (seeded by the agency code) so trails look like a real
office's: the same intake clerks and the same approving leader recur.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from connector.demo.people import maybe_nfd, person_name

INTAKE_DEPARTMENT = "Bộ phận Tiếp nhận và Trả kết quả"
_SPECIALIST_DEPARTMENTS = {
    "department": ("Phòng Hành chính - Tổng hợp", "Phòng Nghiệp vụ", "Phòng Quản lý chuyên ngành"),
    "district": (
        "Phòng Quản lý đô thị",
        "Phòng Tư pháp",
        "Phòng Tài chính - Kế hoạch",
        "Phòng Tài nguyên và Môi trường",
    ),
    "commune": ("Công chức Tư pháp - Hộ tịch", "Công chức Địa chính - Xây dựng"),
}
_LEADER_TITLES = {
    "department": ("Giám đốc Sở", "Phó Giám đốc Sở"),
    "district": ("Chủ tịch UBND", "Phó Chủ tịch UBND"),
    "commune": ("Chủ tịch UBND", "Phó Chủ tịch UBND"),
}
_LEADER_OFFICE = {
    "department": "Ban Giám đốc",
    "district": "Lãnh đạo UBND",
    "commune": "Lãnh đạo UBND",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Officer:
    name: str
    title: str
    department: str


def _roster(agency: str, level: str) -> dict[str, tuple[Officer, ...]]:
    rng = random.Random(f"roster:{agency}")
    specialists = _SPECIALIST_DEPARTMENTS[level]
    return {
        "intake": tuple(
            Officer(name=person_name(rng), title="Chuyên viên", department=INTAKE_DEPARTMENT)
            for _ in range(3)
        ),
        "specialist": tuple(
            Officer(name=person_name(rng), title="Chuyên viên", department=rng.choice(specialists))
            for _ in range(4)
        ),
        "head": tuple(
            Officer(name=person_name(rng), title="Trưởng phòng", department=d) for d in specialists
        ),
        "leader": tuple(
            Officer(name=person_name(rng), title=t, department=_LEADER_OFFICE[level])
            for t in _LEADER_TITLES[level]
        ),
    }


class Offices:
    """Rosters built on first use; `pick` returns an officer of a role, maybe decomposed."""

    def __init__(self) -> None:
        self._rosters: dict[str, dict[str, tuple[Officer, ...]]] = {}

    def pick(self, agency: str, level: str, role: str, rng: random.Random) -> Officer:
        roster = self._rosters.get(agency)
        if roster is None:
            roster = self._rosters[agency] = _roster(agency, level)
        officer = rng.choice(roster[role])
        return Officer(
            name=maybe_nfd(officer.name, rng), title=officer.title, department=officer.department
        )
